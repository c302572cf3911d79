/* The machine description (machine_desc.h). */
#include "vmm/machine_desc.h"
#include "devices/device.h"
#include "vmm/kvm.h"
#include "vmm/memory.h"
#include "vmm/vcpu.h"
#include "vmm/vm.h"
#include "util/log.h"
#include "util/units.h"

#include <errno.h>
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

uint64_t machine_host_memory(void)
{
	FILE *f = fopen("/proc/meminfo", "r");
	char line[128];
	uint64_t total = 0, kib;
	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f)) {
		if (sscanf(line, "MemTotal: %lu kB", &kib) == 1 ||
		    sscanf(line, "SwapTotal: %lu kB", &kib) == 1)
			total += kib * 1024;
	}
	fclose(f);
	return total;
}

static int parse_cpuid(json_t *arr, struct kvm_cpuid2 **out, char *err)
{
	size_t n = json_array_size(arr);
	if (!json_is_array(arr) || n == 0 || n > 4096)
		return err_set(err, -EPROTO, "machine description: bad cpuid list");
	struct kvm_cpuid2 *c = calloc(1, sizeof(*c) + n * sizeof(c->entries[0]));
	if (!c)
		return err_set(err, -ENOMEM, "out of memory");
	c->nent = (uint32_t)n;
	for (size_t i = 0; i < n; i++) {
		json_int_t f, idx, fl, a, b, cc, d;
		if (json_unpack(json_array_get(arr, i), "{s:I, s:I, s:I, s:I, s:I, s:I, s:I}",
				"function", &f, "index", &idx, "flags", &fl,
				"eax", &a, "ebx", &b, "ecx", &cc, "edx", &d)) {
			free(c);
			return err_set(err, -EPROTO, "machine description: bad cpuid entry %zu", i);
		}
		c->entries[i] = (struct kvm_cpuid_entry2){
			.function = (uint32_t)f, .index = (uint32_t)idx,
			.flags = (uint32_t)fl, .eax = (uint32_t)a, .ebx = (uint32_t)b,
			.ecx = (uint32_t)cc, .edx = (uint32_t)d };
	}
	*out = c;
	return 0;
}

static const struct kvm_cpuid_entry2 *find_leaf(const struct kvm_cpuid2 *c,
						uint32_t fn, uint32_t idx)
{
	for (unsigned i = 0; i < c->nent; i++)
		if (c->entries[i].function == fn && c->entries[i].index == idx)
			return &c->entries[i];
	return NULL;
}

/* Every feature bit the guest was given must exist here too, or the guest
 * would find an instruction gone after it moved. */
static int check_cpu_features(const struct kvm_cpuid2 *guest, int kvm_fd,
			      char *err)
{
	static const struct { uint32_t fn, idx; int reg; } leaves[] = {
		{ 1, 0, 2 }, { 1, 0, 3 }, { 7, 0, 1 }, { 7, 0, 2 }, { 7, 0, 3 },
		{ 0xd, 1, 0 }, { 0x80000001, 0, 2 }, { 0x80000001, 0, 3 },
	};
	static const char *const regs[] = { "eax", "ebx", "ecx", "edx" };
	struct kvm_cpuid2 *host = kvm_supported_cpuid(kvm_fd, err);
	if (!host)
		return -EIO;
	int r = 0;
	for (size_t i = 0; i < sizeof(leaves) / sizeof(leaves[0]) && !r; i++) {
		const struct kvm_cpuid_entry2 *g = find_leaf(guest, leaves[i].fn, leaves[i].idx);
		const struct kvm_cpuid_entry2 *h = find_leaf(host, leaves[i].fn, leaves[i].idx);
		if (!g)
			continue;
		uint32_t gv = (&g->eax)[leaves[i].reg];
		uint32_t hv = h ? (&h->eax)[leaves[i].reg] : 0;
		if (leaves[i].fn == 1 && leaves[i].reg == 3)
			hv |= 1u << 28; /* HTT is ours to set */
		if (gv & ~hv)
			r = err_set(err, -ENOTSUP,
				    "CPU features missing here: CPUID leaf 0x%x.%u %s bits 0x%08x",
				    leaves[i].fn, leaves[i].idx, regs[leaves[i].reg],
				    gv & ~hv);
	}
	free(host);
	return r;
}

int machine_desc_check(json_t *desc, int kvm_fd, uint64_t max_memory,
		       struct vm_config *cfg, struct kvm_cpuid2 **cpuid, char *err)
{
	json_int_t mem, page;
	int vcpus, vver;
	json_t *slots, *cpuid_arr;

	json_error_t jerr;

	/* jansson's text names the field ("Object item not found: vcpus"). */
	if (json_unpack_ex(desc, &jerr, 0, "{s:I, s:i, s:I, s:o, s:i, s:o}",
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
		return err_set(err, -EPROTO, "%d vCPUs: this ferry hosts 1 to %d",
			       vcpus, VM_MAX_VCPUS);
	if (vver != VCPU_STATE_VERSION)
		return err_set(err, -EPROTO, "vCPU state version %d unknown (this ferry has %d)",
			       vver, VCPU_STATE_VERSION);
	char vm_mem[UNITS_LEN], limit[UNITS_LEN];
	units_size(vm_mem, sizeof(vm_mem), (double)mem);
	if (max_memory && (uint64_t)mem > max_memory)
		return err_set(err, -ENOMEM,
			       "the VM has %s of memory; this destination hosts at most %s",
			       vm_mem, units_size(limit, sizeof(limit), (double)max_memory));
	uint64_t host = machine_host_memory();
	if (host && (uint64_t)mem > host)
		return err_set(err, -ENOMEM,
			       "the VM has %s of memory; this host has %s of RAM and swap",
			       vm_mem, units_size(limit, sizeof(limit), (double)host));
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
	if (r)
		return r;
	/* Without KVM (kvm_fd < 0) the caller checks the CPU later, with
	 * machine_desc_check_cpu(): what needs no KVM is checked first. */
	r = kvm_fd < 0 ? 0 : check_cpu_features(*cpuid, kvm_fd, err);
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

int machine_desc_check_cpu(const struct kvm_cpuid2 *cpuid, int kvm_fd,
			   char *err)
{
	return check_cpu_features(cpuid, kvm_fd, err);
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
		int version;
		if (json_unpack(d, "{s:s, s:i}", "name", &name, "version", &version))
			return err_set(err, -EPROTO,
				       "devices[%zu] lacks a string 'name' or a number 'version'",
				       i);
		struct device *dev = vm_find_device(vm, name);
		if (!dev)
			return err_set(err, -EPROTO,
				       "devices[%zu].name: device '%s' is unknown to this ferry",
				       i, name);
		if ((uint32_t)version != dev->ops->state_version)
			return err_set(err, -EPROTO,
				       "devices[%zu].version: device '%s' state version %d is "
				       "unknown to this ferry (it has %u)",
				       i, name, version, dev->ops->state_version);
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
