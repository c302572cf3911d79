#include "vmm/kvm.h"
#include "util/log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/ioctl.h>
#include <linux/kvm.h>

int kvm_open(char *err)
{
	int fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (fd < 0) {
		int e = errno;
		/* The usual cause here is a host without KVM at all (on PVM
		 * hosts kvm_pvm may refuse to bind; dmesg says why). */
		return err_set(err, -e, "cannot open /dev/kvm: %s%s", strerror(e),
			       e == ENOENT ? " (no KVM on this host: is a KVM module "
			       "loaded? see dmesg)" : "");
	}
	int api = ioctl(fd, KVM_GET_API_VERSION, 0);
	if (api != KVM_API_VERSION) {
		close(fd);
		return err_set(err, -ENOTSUP, "KVM API version %d, need %d",
			       api, KVM_API_VERSION);
	}
	static const struct { int cap; const char *name; } needed[] = {
		{ KVM_CAP_IRQCHIP, "IRQCHIP" },
		{ KVM_CAP_PIT2, "PIT2" },
		{ KVM_CAP_USER_MEMORY, "USER_MEMORY" },
		{ KVM_CAP_EXT_CPUID, "EXT_CPUID" },
		{ KVM_CAP_VCPU_EVENTS, "VCPU_EVENTS" },
		{ KVM_CAP_XSAVE, "XSAVE" },
		{ KVM_CAP_XCRS, "XCRS" },
		{ KVM_CAP_ADJUST_CLOCK, "ADJUST_CLOCK" },
		{ KVM_CAP_IMMEDIATE_EXIT, "IMMEDIATE_EXIT" },
	};
	for (size_t i = 0; i < sizeof(needed) / sizeof(needed[0]); i++) {
		if (!kvm_has_cap(fd, needed[i].cap)) {
			close(fd);
			return err_set(err, -ENOTSUP,
				       "KVM lacks capability %s", needed[i].name);
		}
	}
	return fd;
}

bool kvm_has_cap(int kvm_fd, int cap)
{
	return ioctl(kvm_fd, KVM_CHECK_EXTENSION, cap) > 0;
}

struct kvm_cpuid2 *kvm_supported_cpuid(int kvm_fd, char *err)
{
	/* Grow until KVM stops saying E2BIG. */
	for (unsigned n = 64; n <= 4096; n *= 2) {
		struct kvm_cpuid2 *c = calloc(1, sizeof(*c) +
					      n * sizeof(c->entries[0]));
		if (!c) {
			err_set(err, -ENOMEM, "out of memory");
			return NULL;
		}
		c->nent = n;
		if (ioctl(kvm_fd, KVM_GET_SUPPORTED_CPUID, c) == 0)
			return c;
		int e = errno;
		free(c);
		if (e != E2BIG) {
			err_set(err, -e, "KVM_GET_SUPPORTED_CPUID: %s",
				strerror(e));
			return NULL;
		}
	}
	err_set(err, -E2BIG, "KVM_GET_SUPPORTED_CPUID: too many entries");
	return NULL;
}

int cpuid_set_for_vcpu(int vcpu_fd, const struct kvm_cpuid2 *base,
		       unsigned index, unsigned nvcpus)
{
	size_t size = sizeof(*base) + base->nent * sizeof(base->entries[0]);
	struct kvm_cpuid2 *c = malloc(size);
	if (!c)
		return -ENOMEM;
	memcpy(c, base, size);
	for (unsigned i = 0; i < c->nent; i++) {
		struct kvm_cpuid_entry2 *e = &c->entries[i];
		switch (e->function) {
		case 1:
			/* Initial APIC ID and logical processor count. */
			e->ebx = (e->ebx & 0x0000ffff) | (index << 24) |
				 ((nvcpus & 0xff) << 16);
			if (nvcpus > 1)
				e->edx |= 1u << 28; /* HTT: count is valid */
			break;
		case 0xb:
		case 0x1f:
			e->edx = index; /* x2APIC ID */
			break;
		default:
			break;
		}
	}
	int r = ioctl(vcpu_fd, KVM_SET_CPUID2, c) < 0 ? -errno : 0;
	if (r)
		log_error("KVM_SET_CPUID2 for vCPU %u: %s", index, strerror(-r));
	free(c);
	return r;
}
