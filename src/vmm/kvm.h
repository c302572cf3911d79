/* kvm.h - the KVM device: open, check the API and the capabilities we need. */
#ifndef FERRY_KVM_H
#define FERRY_KVM_H

#include <stdbool.h>

int kvm_open(char *err);
bool kvm_has_cap(int kvm_fd, int cap);
/* CPUID the host supports, adjusted per vCPU index by cpuid_for_vcpu. */
struct kvm_cpuid2 *kvm_supported_cpuid(int kvm_fd, char *err);
int cpuid_set_for_vcpu(int vcpu_fd, const struct kvm_cpuid2 *base,
		       unsigned index, unsigned nvcpus);

#endif
