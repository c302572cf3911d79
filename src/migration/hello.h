/*
 * hello.h - the negotiation: the source describes the VM (memory layout,
 * vCPUs, CPUID, devices and their state versions); the destination checks
 * it can host exactly that before anything is paused or sent.
 */
#ifndef FERRY_MIG_HELLO_H
#define FERRY_MIG_HELLO_H

#include <stdint.h>

#include <jansson.h>

struct vm;
struct vm_config;
struct kvm_cpuid2;

json_t *hello_build(struct vm *vm);
/* Checks what can be checked before the VM exists: layout, size against
 * max_memory and the host, state versions, CPUID against this host's KVM.
 * Fills cfg->ram_size/vcpus and *cpuid (the guest's CPUID, to be given to
 * the new vCPUs; caller frees). */
int hello_check(json_t *hello, int kvm_fd, uint64_t max_memory,
		struct vm_config *cfg, struct kvm_cpuid2 **cpuid, char *err);
/* Checks the device set of the VM just built against the source's. */
int hello_check_devices(json_t *hello, struct vm *vm, char *err);

#endif
