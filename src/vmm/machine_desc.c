/* The machine description (machine_desc.h). */
#include "vmm/machine_desc.h"
#include "devices/device.h"
#include "vmm/cpuid_check.h"
#include "vmm/kvm.h"
#include "vmm/memory.h"
#include "vmm/vcpu.h"
#include "vmm/vm.h"
#include "util/log.h"
#include "util/units.h"

#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdint.h>
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

/* The line "KEY: N kB" of /proc/meminfo's text, in bytes; 0 if absent. */
static uint64_t meminfo_field(const char *meminfo, const char *key, bool *seen)
{
	size_t klen = strlen(key);
	uint64_t kib;

	for (const char *l = meminfo; l && *l; l = strchr(l, '\n'), l = l ? l + 1 : NULL)
		if (!strncmp(l, key, klen) && l[klen] == ':' &&
		    sscanf(l + klen + 1, " %" SCNu64 " kB", &kib) == 1) {
			if (seen)
				*seen = true;
			return kib * 1024;
		}
	return 0;
}

uint64_t machine_host_memory_parse(const char *meminfo)
{
	bool seen = false;
	uint64_t avail = meminfo_field(meminfo, "MemAvailable", &seen);
	return seen ? avail + meminfo_field(meminfo, "SwapFree", NULL) : 0;
}

uint64_t machine_host_memory_total_parse(const char *meminfo)
{
	uint64_t total = meminfo_field(meminfo, "MemTotal", NULL);
	return total ? total + meminfo_field(meminfo, "SwapTotal", NULL) : 0;
}

/* /proc/meminfo's text through @parse; 0 if unreadable. */
static uint64_t meminfo(uint64_t (*parse)(const char *))
{
	char text[8192];
	FILE *f = fopen("/proc/meminfo", "r");
	if (!f)
		return 0;
	size_t n = fread(text, 1, sizeof(text) - 1, f);
	fclose(f);
	text[n] = '\0';
	return parse(text);
}

uint64_t machine_host_memory(void)
{
	return meminfo(machine_host_memory_parse);
}

uint64_t machine_host_memory_total(void)
{
	return meminfo(machine_host_memory_total_parse);
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

	json_error_t jerr;

	*cpuid = NULL;
	/* All integers as json_int_t: "i" would truncate 2^32 + 1 to 1.
	 * jansson's text names the field ("Object item not found: vcpus"). */
	if (json_unpack_ex(desc, &jerr, 0, "{s:I, s:I, s:I, s:o, s:I, s:o}",
			   "memory", &mem, "vcpus", &vcpus, "page-size", &page,
			   "slots", &slots, "vcpu-state-version", &vver,
			   "cpuid", &cpuid_arr))
		return err_set(err, -EPROTO,
			       "the machine description lacks a field or has a wrong type: %s",
			       jerr.text);
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
	char vm_mem[UNITS_LEN], limit[UNITS_LEN];
	units_size(vm_mem, sizeof(vm_mem), (double)mem);
	if (host->max_memory && (uint64_t)mem > host->max_memory)
		return err_set(err, -ENOMEM,
			       "the VM has %s of memory; this destination hosts at most %s",
			       vm_mem, units_size(limit, sizeof(limit),
						  (double)host->max_memory));
	/* Without --max-memory too: a guest the host cannot back would be
	 * killed (or kill others) half way through its first round. */
	if (!host->memory)
		return err_set(err, -ENOMEM,
			       "the VM has %s of memory; how much memory this host "
			       "can give is unknown (no MemAvailable in /proc/meminfo)",
			       vm_mem);
	if ((uint64_t)mem > host->memory)
		return err_set(err, -ENOMEM,
			       "the VM has %s of memory; this host can give %s",
			       vm_mem, units_size(limit, sizeof(limit),
						  (double)host->memory));
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

/* Whether devs lists a device called name (at another index than skip). */
static bool listed(json_t *devs, const char *name, size_t skip)
{
	size_t i;
	json_t *d;

	json_array_foreach(devs, i, d) {
		const char *n = json_string_value(json_object_get(d, "name"));
		if (i != skip && n && !strcmp(n, name))
			return true;
	}
	return false;
}

/*
 * Each entry first, so that the message names the device at fault (an
 * unknown one, a wrong version), then what is missing.  The messages name
 * the field; the caller says whose description it is (a snapshot's, a
 * migration's HELLO).
 */
int machine_desc_check_devices(json_t *desc, struct vm *vm, char *err)
{
	json_t *devs = json_object_get(desc, "devices");
	size_t i;
	json_t *d;

	if (!json_is_array(devs))
		return err_set(err, -EPROTO, "field 'devices' is missing or not a list");
	json_array_foreach(devs, i, d) {
		const char *name;
		json_int_t version; /* "i" would truncate 2^32 + 1 to 1 */
		if (json_unpack(d, "{s:s, s:I}", "name", &name, "version", &version))
			return err_set(err, -EPROTO,
				       "devices[%zu] lacks a string 'name' or a number 'version'",
				       i);
		struct device *dev = vm_find_device(vm, name);
		if (!dev)
			return err_set(err, -EPROTO,
				       "devices[%zu].name: device '%s' is unknown to this ferry",
				       i, name);
		if (version != (json_int_t)dev->ops->state_version)
			return err_set(err, -EPROTO,
				       "devices[%zu].version: device '%s' state version %lld is "
				       "unknown to this ferry (it has %u)",
				       i, name, (long long)version, dev->ops->state_version);
		if (listed(devs, name, i))
			return err_set(err, -EPROTO,
				       "devices[%zu].name: device '%s' is listed twice", i, name);
	}
	for (unsigned k = 0; k < vm->ndevices; k++)
		if (!listed(devs, vm->devices[k]->ops->name, SIZE_MAX))
			return err_set(err, -EPROTO,
				       "field 'devices' lacks '%s', which this ferry builds "
				       "for this machine", vm->devices[k]->ops->name);
	return 0;
}
