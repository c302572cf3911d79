/*
 * The machine description's check (vmm/machine_desc.h) with the host's
 * facts passed in as data: memory against what the host can give (with
 * and without --max-memory), the CPUID list's JSON, and the CPUID rule
 * reached through the description, as a HELLO or a snapshot carries it.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/kvm.h>

#include "devices/device.h"
#include "vmm/machine_desc.h"
#include "vmm/memory.h"
#include "vmm/vcpu.h"
#include "vmm/vm.h"
#include "util/log.h"

#define MIB (1ULL << 20)

/* A description of a 16 MiB one-vCPU machine with @cpuid (JSON). */
static json_t *desc(unsigned long long memory, const char *cpuid)
{
	char txt[4096];
	snprintf(txt, sizeof(txt),
		 "{\"memory\": %llu, \"vcpus\": 1, \"page-size\": 4096,"
		 " \"slots\": [{\"gpa\": 0, \"size\": %llu}],"
		 " \"vcpu-state-version\": %d, \"devices\": [], \"cpuid\": %s}",
		 memory, memory, VCPU_STATE_VERSION, cpuid);
	json_error_t e;
	json_t *d = json_loads(txt, 0, &e);
	cr_assert(d, "%s: %s", txt, e.text);
	return d;
}

#define LEAF1 "{\"function\": 1, \"index\": 0, \"flags\": 0, \"eax\": 1, \"ebx\": 0, \"ecx\": 1, \"edx\": 1}"

static int check(json_t *d, const struct machine_host *host, char *err)
{
	struct vm_config cfg = { 0 };
	struct kvm_cpuid2 *cpuid = NULL;
	int r = machine_desc_check(d, host, &cfg, &cpuid, err);
	if (r)
		cr_expect_null(cpuid, "a refused description left a CPUID list");
	else
		cr_expect_eq(cfg.ram_size, 16 * MIB);
	free(cpuid);
	json_decref(d);
	return r;
}

Test(machine_desc, fits_the_host)
{
	struct machine_host h = { .memory = 64 * MIB };
	char err[ERR_MAX] = "";
	cr_expect_eq(check(desc(16 * MIB, "[" LEAF1 "]"), &h, err), 0, "%s", err);
}

/* No --max-memory: the host's own memory is the limit. */
Test(machine_desc, memory_beyond_the_host_is_refused_by_default)
{
	struct machine_host h = { .memory = 8 * MIB };
	char err[ERR_MAX] = "";
	cr_expect_eq(check(desc(16 * MIB, "[" LEAF1 "]"), &h, err), -ENOMEM);
	cr_expect(strstr(err, "16.0 MiB") && strstr(err, "this host can give 8.0 MiB"),
		  "%s", err);
}

/* A host whose memory cannot be read takes nothing rather than anything. */
Test(machine_desc, unknown_host_memory_refuses)
{
	struct machine_host h = { .memory = 0 };
	char err[ERR_MAX] = "";
	cr_expect_eq(check(desc(16 * MIB, "[" LEAF1 "]"), &h, err), -ENOMEM);
	cr_expect(strstr(err, "how much memory this host can give is unknown"),
		  "%s", err);
}

Test(machine_desc, max_memory_is_a_lower_limit)
{
	struct machine_host h = { .memory = 64 * MIB, .max_memory = 8 * MIB };
	char err[ERR_MAX] = "";
	cr_expect_eq(check(desc(16 * MIB, "[" LEAF1 "]"), &h, err), -ENOMEM);
	cr_expect(strstr(err, "hosts at most 8.0 MiB"), "%s", err);
}

Test(machine_desc, cpuid_values_must_be_32_bit)
{
	static const char *const bad[][2] = {
		{ "[{\"function\": 1, \"index\": 0, \"flags\": 0, \"eax\": 4294967296, \"ebx\": 0, \"ecx\": 0, \"edx\": 0}]", "'eax'" },
		{ "[{\"function\": -1, \"index\": 0, \"flags\": 0, \"eax\": 0, \"ebx\": 0, \"ecx\": 0, \"edx\": 0}]", "'function'" },
		{ "[{\"function\": 1, \"index\": 0, \"eax\": 0, \"ebx\": 0, \"ecx\": 0, \"edx\": 0}]", "'flags'" },
		{ "[]", "0 entries" },
		{ "{}", "0 entries" },
	};
	struct machine_host h = { .memory = 64 * MIB };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char err[ERR_MAX] = "";
		cr_expect_eq(check(desc(16 * MIB, bad[i][0]), &h, err), -EPROTO,
			     "%s accepted", bad[i][0]);
		cr_expect(strstr(err, bad[i][1]), "'%s' does not name %s", err,
			  bad[i][1]);
	}
}

Test(machine_desc, cpuid_list_longer_than_kvm_takes)
{
	size_t cap = 300 * 120 + 8;
	char *l = malloc(cap), *p = l;
	p += sprintf(p, "[");
	for (int i = 0; i < 300; i++)
		p += sprintf(p, "%s{\"function\": %d, \"index\": 0, \"flags\": 0, \"eax\": 0, \"ebx\": 0, \"ecx\": 0, \"edx\": 0}",
			     i ? "," : "", 0x40000000 + i);
	sprintf(p, "]");
	/* desc() has a fixed buffer: build this one by hand. */
	json_t *d = desc(16 * MIB, "[" LEAF1 "]");
	json_object_set_new(d, "cpuid", json_loads(l, 0, NULL));
	free(l);
	struct machine_host h = { .memory = 64 * MIB };
	char err[ERR_MAX] = "";
	cr_expect_eq(check(d, &h, err), -EPROTO);
	cr_expect(strstr(err, "300 entries"), "%s", err);
}

/* Issue 9's hole, in the description: leaf 1 index 1, first, with every
 * feature.  With the host's CPUID passed in, it is refused. */
Test(machine_desc, cpuid_checked_against_the_host_given)
{
	static const struct kvm_cpuid_entry2 host_leaf1 = {
		.function = 1, .eax = 1, .ecx = 1, .edx = 1 };
	struct kvm_cpuid2 *hc = calloc(1, sizeof(*hc) + sizeof(host_leaf1));
	hc->nent = 1;
	hc->entries[0] = host_leaf1;
	struct machine_host h = { .memory = 64 * MIB, .cpuid = hc };
	char err[ERR_MAX] = "";
	cr_expect_eq(check(desc(16 * MIB, "[" LEAF1 "]"), &h, err), 0, "%s", err);
	cr_expect_eq(check(desc(16 * MIB,
		"[{\"function\": 1, \"index\": 1, \"flags\": 0, \"eax\": 1, \"ebx\": 0,"
		" \"ecx\": 4294967295, \"edx\": 4294967295}, " LEAF1 "]"), &h, err),
		-EPROTO);
	cr_expect(strstr(err, "leaf 0x1"), "%s", err);
	free(hc);
}

Test(machine_desc, host_memory_from_meminfo)
{
	cr_expect_eq(machine_host_memory_parse(
		"MemTotal:       24000000 kB\nMemFree:  100 kB\n"
		"MemAvailable:    1000 kB\nSwapTotal: 5000 kB\nSwapFree:  24 kB\n"),
		1024 * 1024);
	cr_expect_eq(machine_host_memory_parse("MemTotal: 24000000 kB\n"), 0,
		     "no MemAvailable must mean unknown, not all of MemTotal");
	cr_expect_eq(machine_host_memory_parse(""), 0);
	cr_expect_gt(machine_host_memory(), 0, "this machine's /proc/meminfo");
}

/* `ferry run --memory`'s bound: all of RAM and swap, not what is free. */
Test(machine_desc, host_memory_total_from_meminfo)
{
	cr_expect_eq(machine_host_memory_total_parse(
		"MemTotal:       1000 kB\nMemFree:  100 kB\n"
		"MemAvailable:    500 kB\nSwapTotal: 24 kB\nSwapFree:  2 kB\n"),
		1024 * 1024);
	cr_expect_eq(machine_host_memory_total_parse("SwapTotal: 5 kB\n"), 0,
		     "no MemTotal must mean unknown");
	cr_expect_eq(machine_host_memory_total_parse(""), 0);
	cr_expect_geq(machine_host_memory_total(), machine_host_memory(),
		      "this machine's /proc/meminfo");
}

/* Counts beyond an int are refused, not truncated (2^32 + 1 is not 1). */
Test(machine_desc, vcpus_beyond_an_int_are_refused)
{
	json_t *d = desc(16 * MIB, "[" LEAF1 "]");
	json_object_set_new(d, "vcpus", json_integer(4294967297LL));
	struct machine_host h = { .memory = 64 * MIB };
	char err[ERR_MAX] = "";
	cr_expect_eq(check(d, &h, err), -EPROTO);
	cr_expect(strstr(err, "4294967297 vCPUs"), "%s", err);
}

/* The cap is what a real machine needs, with room: the largest CPUID list
 * KVM takes (256 entries, every value at its widest), the most slots and
 * devices this ferry builds, stay well under it (29.6 KiB of 64). */
Test(machine_desc, the_largest_real_description_fits_the_cap)
{
	struct vm *vm = calloc(1, sizeof(*vm));
	vm->cpuid = calloc(1, sizeof(*vm->cpuid) + 256 * sizeof(vm->cpuid->entries[0]));
	vm->cpuid->nent = 256;
	for (unsigned i = 0; i < 256; i++)
		vm->cpuid->entries[i] = (struct kvm_cpuid_entry2){
			.function = 0x80000000u + i, .index = 0,
			.flags = 0, .eax = UINT32_MAX, .ebx = UINT32_MAX,
			.ecx = UINT32_MAX, .edx = UINT32_MAX };
	memory_layout(&vm->mem, 4ULL << 40);
	static const struct device_ops ops = { .name = "a-device-with-a-long-name",
					       .state_version = 1 };
	struct device devs[VM_MAX_DEVICES];
	for (unsigned i = 0; i < VM_MAX_DEVICES; i++) {
		devs[i] = (struct device){ .ops = &ops };
		vm->devices[i] = &devs[i];
	}
	vm->ndevices = VM_MAX_DEVICES;
	vm->nvcpus = VM_MAX_VCPUS;
	json_t *d = machine_desc_build(vm);
	cr_assert_not_null(d);
	char *txt = json_dumps(d, JSON_COMPACT);
	size_t n = strlen(txt);
	cr_log_info("largest machine description: %zu bytes (cap %u)", n,
		    MACHINE_DESC_MAX);
	cr_expect_lt(n, MACHINE_DESC_MAX * 3 / 4,
		     "a real description of %zu bytes is near the cap %u", n,
		     MACHINE_DESC_MAX);
	free(txt);
	json_decref(d);
	free(vm->cpuid);
	free(vm);
}
