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

/* The largest description a real machine needs: 256 CPUID entries (KVM's
 * limit) at about 110 bytes of JSON each, plus a few devices, is under
 * 30 KiB.  Anything longer is refused unread. */
#define MACHINE_DESC_MAX (64u << 10)

/* The description of vm (a new reference; NULL on ENOMEM). */
json_t *machine_desc_build(struct vm *vm);
/* What this host can give a guest: facts the caller gathers. */
struct machine_host {
	uint64_t memory;      /* bytes it can back now (machine_host_memory) */
	uint64_t max_memory;  /* --max-memory; 0: no limit of the user's */
	/* KVM_GET_SUPPORTED_CPUID, or NULL to check CPUID later with
	 * machine_desc_check_cpuid() (once KVM is open). */
	const struct kvm_cpuid2 *cpuid;
};

/**
 * machine_desc_check() - can this host build the machine @desc describes?
 * Checks what needs no KVM: fields and their types, layout, memory
 * against --max-memory and against what the host can give (always: an
 * unknown amount refuses), state versions, the exit convention, the
 * CPUID list's shape, and (if host->cpuid) the CPUID against the host's.
 * Fills cfg->ram_size/vcpus/exit_port and *cpuid (the guest's CPUID, to
 * be given to the new vCPUs; caller frees).  Returns 0 or -errno with
 * @err saying why.
 */
int machine_desc_check(json_t *desc, const struct machine_host *host,
		       struct vm_config *cfg, struct kvm_cpuid2 **cpuid, char *err);
/**
 * machine_desc_check_cpuid() - the guest's CPUID against this host's
 * KVM_GET_SUPPORTED_CPUID (vmm/cpuid_check.h).
 */
int machine_desc_check_cpuid(const struct kvm_cpuid2 *guest, int kvm_fd,
			     char *err);
/**
 * machine_host_memory() - bytes this host can give a new guest now:
 * MemAvailable plus SwapFree from /proc/meminfo; 0 if unknown.
 * machine_host_memory_parse() reads them from the file's text.
 */
uint64_t machine_host_memory(void);
uint64_t machine_host_memory_parse(const char *meminfo);
/**
 * machine_host_memory_total() - all the guest RAM this host could ever
 * back: MemTotal plus SwapTotal; 0 if unknown.  `ferry run --memory`
 * above it is refused (a guest's memory is reserved lazily, so what is
 * free now is not the bound for a guest booted here).
 */
uint64_t machine_host_memory_total(void);
uint64_t machine_host_memory_total_parse(const char *meminfo);
/* Checks the device set of vm (built, or only its devices: see
 * vm_check_described_devices()) against the described one: every listed
 * device known here at its state version, none twice, none missing.
 * Messages name the field (devices[3].name ...). */
int machine_desc_check_devices(json_t *desc, struct vm *vm, char *err);

#endif
