/*
 * machine_desc.h - the machine description: memory layout, vCPUs, CPUID,
 * devices and their state versions, as JSON.  A migration's HELLO carries
 * it (and the destination checks it can host exactly that before
 * anything is paused or sent); a snapshot's CONFIG record is it (and a
 * restore checks it the same way).
 */
#ifndef FERRY_VMM_MACHINE_DESC_H
#define FERRY_VMM_MACHINE_DESC_H

#include <stdint.h>

#include <jansson.h>

struct vm;
struct vm_config;
struct kvm_cpuid2;

/**
 * machine_host_memory() - the most guest RAM this host can back: its RAM
 * plus swap, from /proc/meminfo (0 when unknown).  A destination refuses
 * a larger VM; `ferry run --memory` refuses one too.
 */
uint64_t machine_host_memory(void);

/* The description of vm (a new reference; NULL on ENOMEM). */
json_t *machine_desc_build(struct vm *vm);
/* Checks what can be checked before the VM exists: layout, size against
 * max_memory and the host, state versions, CPUID against this host's KVM
 * (with kvm_fd < 0: not the CPU, machine_desc_check_cpu() does it later).
 * Fills cfg->ram_size/vcpus/exit_port and *cpuid (the guest's CPUID, to
 * be given to the new vCPUs; caller frees). */
int machine_desc_check(json_t *desc, int kvm_fd, uint64_t max_memory,
		       struct vm_config *cfg, struct kvm_cpuid2 **cpuid, char *err);
/* Every CPU feature of cpuid exists on this host's KVM (kvm_fd). */
int machine_desc_check_cpu(const struct kvm_cpuid2 *cpuid, int kvm_fd,
			   char *err);
/* Checks the device set of vm (built, or only its devices: see
 * vm_check_described_devices()) against the described one: every listed
 * device known here at its state version, none twice, none missing.
 * Messages name the field (devices[3].name ...). */
int machine_desc_check_devices(json_t *desc, struct vm *vm, char *err);

#endif
