/* The machine description (machine_desc.h). */
#include "vmm/machine_desc.h"
#include "devices/device.h"
#include "vmm/cpuid_check.h"
#include "vmm/kvm.h"
#include "vmm/memory.h"
#include "vmm/vcpu.h"
#include "vmm/vm.h"
#include "util/log.h"

#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/kvm.h>

json_t *machine_desc_build(struct vm *vm)
{
	json_t *slots = json_array(), *devs = json_array(), *cpuid = json_array();

	for (unsigned i = 0; i < vm->mem.nslots; i++)
		json_array_append_new(slots, json_pack(
			"{s:I, s:I}", "gpa", (json_int_t)vm->mem.slots[i].gpa,
			"size", (json_int_t)vm->mem.slots[i].size));
	for (unsigned i = 0; i < vm->ndevices; i++)
		json_array_append_new(devs, json_pack(
			"{s:s, s:i}", "name", vm->devices[i]->ops->name,
			"version", (int)vm->devices[i]->ops->state_version));
	for (unsigned i = 0; i < vm->cpuid->nent; i++) {
		const struct kvm_cpuid_entry2 *e = &vm->cpuid->entries[i];
		json_array_append_new(cpuid, json_pack(
			"{s:I, s:I, s:I, s:I, s:I, s:I, s:I}",
			"function", (json_int_t)e->function,
			"index", (json_int_t)e->index, "flags", (json_int_t)e->flags,
			"eax", (json_int_t)e->eax, "ebx", (json_int_t)e->ebx,
			"ecx", (json_int_t)e->ecx, "edx", (json_int_t)e->edx));
	}
	return json_pack("{s:I, s:i, s:i, s:o, s:i, s:o, s:o, s:s}",
			 "memory", (json_int_t)vm->mem.ram_size,
			 "vcpus", (int)vm->nvcpus, "page-size", 4096,
			 "slots", slots, "vcpu-state-version", VCPU_STATE_VERSION,
			 "devices", devs, "cpuid", cpuid,
			 "exit-port", vm_exit_port_name(vm->exit_port));
}

uint64_t machine_host_memory_parse(const char *meminfo)
{
	uint64_t avail = 0, swap = 0, kib;
	bool seen = false;

	for (const char *l = meminfo; l && *l; l = strchr(l, '\n'), l = l ? l + 1 : NULL) {
		if (sscanf(l, "MemAvailable: %" SCNu64 " kB", &kib) == 1) {
			avail = kib * 1024;
			seen = true;
		} else if (sscanf(l, "SwapFree: %" SCNu64 " kB", &kib) == 1)
			swap = kib * 1024;
	}
	return seen ? avail + swap : 0;
}

uint64_t machine_host_memory(void)
{
	char text[8192];
	FILE *f = fopen("/proc/meminfo", "r");
	if (!f)
		return 0;
	size_t n = fread(text, 1, sizeof(text) - 1, f);
	fclose(f);
	text[n] = '\0';
	return machine_host_memory_parse(text);
}

/* A JSON integer that must fit a u32 register. */
static bool get_u32(json_t *o, const char *key, uint32_t *out)
{
	json_t *v = json_object_get(o, key);
	if (!json_is_integer(v) || json_integer_value(v) < 0 ||
	    json_integer_value(v) > UINT32_MAX)
		return false;
	*out = (uint32_t)json_integer_value(v);
	return true;
}

static int parse_cpuid(json_t *arr, struct kvm_cpuid2 **out, char *err)
{
	static const char *const keys[] = { "function", "index", "flags",
					    "eax", "ebx", "ecx", "edx" };
	size_t n = json_array_size(arr);
	if (!json_is_array(arr) || n == 0 || n > CPUID_MAX_ENTRIES)
		return err_set(err, -EPROTO,
			       "machine description: the cpuid list has %zu entries (1 to %u allowed)",
			       n, CPUID_MAX_ENTRIES);
	struct kvm_cpuid2 *c = calloc(1, sizeof(*c) + n * sizeof(c->entries[0]));
	if (!c)
		return err_set(err, -ENOMEM, "out of memory");
	c->nent = (uint32_t)n;
	for (size_t i = 0; i < n; i++) {
		json_t *e = json_array_get(arr, i);
		uint32_t v[7];
		for (size_t k = 0; k < 7; k++)
			if (!get_u32(e, keys[k], &v[k])) {
				free(c);
				return err_set(err, -EPROTO,
					       "machine description: cpuid entry %zu: '%s' is missing or not a 32-bit value",
					       i, keys[k]);
			}
		c->entries[i] = (struct kvm_cpuid_entry2){
			.function = v[0], .index = v[1], .flags = v[2],
			.eax = v[3], .ebx = v[4], .ecx = v[5], .edx = v[6] };
	}
	*out = c;
	return 0;
}

int machine_desc_check(json_t *desc, const struct machine_host *host,
		       struct vm_config *cfg, struct kvm_cpuid2 **cpuid, char *err)
{
	json_int_t mem, page, vcpus, vver;
	json_t *slots, *cpuid_arr;

	*cpuid = NULL;
	/* All integers as json_int_t: "i" would truncate 2^32 + 1 to 1. */
	if (json_unpack(desc, "{s:I, s:I, s:I, s:o, s:I, s:o}", "memory", &mem,
			"vcpus", &vcpus, "page-size", &page, "slots", &slots,
			"vcpu-state-version", &vver, "cpuid", &cpuid_arr))
		return err_set(err, -EPROTO, "the machine description lacks a field or has a wrong type");
	if (page != 4096)
		return err_set(err, -EPROTO, "page size %lld is not 4096", (long long)page);
	if (mem < (2 << 20) || mem % 4096)
		return err_set(err, -EPROTO, "bad memory size %lld", (long long)mem);
	if (vcpus < 1 || vcpus > VM_MAX_VCPUS)
		return err_set(err, -EPROTO, "%lld vCPUs: this ferry hosts 1 to %d",
			       (long long)vcpus, VM_MAX_VCPUS);
	if (vver != VCPU_STATE_VERSION)
		return err_set(err, -EPROTO, "vCPU state version %lld unknown (this ferry has %d)",
			       (long long)vver, VCPU_STATE_VERSION);
	if (host->max_memory && (uint64_t)mem > host->max_memory)
		return err_set(err, -ENOMEM,
			       "the VM has %lld MiB of memory; this destination hosts at most %llu MiB",
			       (long long)mem >> 20, (unsigned long long)host->max_memory >> 20);
	/* Without --max-memory too: a guest the host cannot back would be
	 * killed (or kill others) half way through its first round. */
	if (!host->memory || (uint64_t)mem > host->memory)
		return err_set(err, -ENOMEM,
			       "the VM has %lld MiB of memory; this host can give %llu MiB",
			       (long long)mem >> 20, (unsigned long long)host->memory >> 20);
	struct guest_memory layout;
	memory_layout(&layout, (uint64_t)mem);
	if (json_array_size(slots) != layout.nslots)
		return err_set(err, -EPROTO, "memory layout has %zu slots, expected %u",
			       json_array_size(slots), layout.nslots);
	for (unsigned i = 0; i < layout.nslots; i++) {
		json_int_t gpa, size;
		if (json_unpack(json_array_get(slots, i), "{s:I, s:I}", "gpa", &gpa,
				"size", &size) ||
		    (uint64_t)gpa != layout.slots[i].gpa ||
		    (uint64_t)size != layout.slots[i].size)
			return err_set(err, -EPROTO, "memory slot %u differs from this ferry's layout", i);
	}
	/* The exit convention is part of the machine (it decides which
	 * device owns port 0xf4); absent means Ferry's own. */
	enum vm_exit_port exit_port = VM_EXIT_PORT_FERRY;
	json_t *ep = json_object_get(desc, "exit-port");
	if (ep && (!json_is_string(ep) ||
		   vm_parse_exit_port(json_string_value(ep), &exit_port)))
		return err_set(err, -EPROTO, "exit-port %s is unknown here",
			       json_is_string(ep) ? json_string_value(ep)
						  : "(not a string)");
	int r = parse_cpuid(cpuid_arr, cpuid, err);
	if (!r)
		r = cpuid_check_shape(*cpuid, err);
	if (!r && host->cpuid)
		r = cpuid_check(*cpuid, host->cpuid, err);
	if (r) {
		free(*cpuid);
		*cpuid = NULL;
		return r;
	}
	cfg->ram_size = (uint64_t)mem;
	cfg->vcpus = (unsigned)vcpus;
	cfg->exit_port = exit_port;
	return 0;
}

int machine_desc_check_cpuid(const struct kvm_cpuid2 *guest, int kvm_fd,
			     char *err)
{
	struct kvm_cpuid2 *host = kvm_supported_cpuid(kvm_fd, err);
	if (!host)
		return -EIO;
	int r = cpuid_check(guest, host, err);
	free(host);
	return r;
}

int machine_desc_check_devices(json_t *desc, struct vm *vm, char *err)
{
	json_t *devs = json_object_get(desc, "devices");
	size_t i;
	json_t *d;

	if (!json_is_array(devs))
		return err_set(err, -EPROTO, "the machine description lacks the device list");
	if (json_array_size(devs) != vm->ndevices)
		return err_set(err, -EPROTO, "the VM has %zu devices, this ferry builds %u",
			       json_array_size(devs), vm->ndevices);
	json_array_foreach(devs, i, d) {
		const char *name;
		int version;
		if (json_unpack(d, "{s:s, s:i}", "name", &name, "version", &version))
			return err_set(err, -EPROTO, "machine description: bad device entry %zu", i);
		struct device *dev = vm_find_device(vm, name);
		if (!dev)
			return err_set(err, -EPROTO, "device '%s' is unknown here", name);
		if ((uint32_t)version != dev->ops->state_version)
			return err_set(err, -EPROTO,
				       "device '%s' state version %d is unknown here (this ferry has %u)",
				       name, version, dev->ops->state_version);
	}
	return 0;
}
