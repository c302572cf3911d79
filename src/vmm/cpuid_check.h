/*
 * cpuid_check.h - may a guest that was given CPUID @guest (by another
 * host, or in a snapshot) be given exactly that here?  A pure decision on
 * data: the caller passes this host's KVM_GET_SUPPORTED_CPUID.
 */
#ifndef FERRY_VMM_CPUID_CHECK_H
#define FERRY_VMM_CPUID_CHECK_H

struct kvm_cpuid2;

/* KVM_MAX_CPUID_ENTRIES: KVM_SET_CPUID2 takes no more. */
#define CPUID_MAX_ENTRIES 256

/**
 * cpuid_check() - check every entry of @guest against @host.
 * @guest: the guest's CPUID, in the order it will be given to KVM
 * @host: this host's supported CPUID
 * @err: ERR_MAX bytes; names the entry, leaf, sub-leaf and register
 *
 * Return: 0, or -EPROTO for a list KVM would read differently than this
 * check does, or -ENOTSUP for a leaf or feature this host cannot offer.
 */
int cpuid_check(const struct kvm_cpuid2 *guest, const struct kvm_cpuid2 *host,
		char *err);

/**
 * cpuid_check_shape() - the part of cpuid_check() that needs no host:
 * 1 to CPUID_MAX_ENTRIES entries, known flags, and no entry that KVM
 * would never use (a repeat, or one hidden behind an earlier entry for
 * the same leaf).  Returns 0 or -EPROTO.
 */
int cpuid_check_shape(const struct kvm_cpuid2 *guest, char *err);

#endif
