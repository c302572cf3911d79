/*
 * state_check.h - every piece of CPU and platform state a peer or a file
 * hands over is judged here before it reaches KVM.  Pure functions on the
 * decoded structs; what they need to know about this host (its MSR list,
 * the XCR0 bits the guest's CPUID offers) is passed in as data, gathered
 * by the caller.  Each refusal names the structure and the field
 * ("sregs: cr0 0x... has reserved bits 0x...").
 *
 * The rules are the architecture's and KVM's own invariants: what a real
 * KVM_GET_* can return.  Fields a guest may set to anything (the IOAPIC's
 * redirection entries, most LAPIC registers) are left to KVM, which masks
 * them the same way on every guest write.
 */
#ifndef FERRY_VMM_STATE_CHECK_H
#define FERRY_VMM_STATE_CHECK_H

#include <stddef.h>
#include <stdint.h>

#include <linux/kvm.h>

/* What this host and the guest's CPUID allow a vCPU's state to hold. */
struct vcpu_state_facts {
	const uint32_t *msrs;     /* MSR indices this host can set */
	unsigned nmsrs;
	uint64_t xcr0;            /* XCR0 bits the guest's CPUID offers */
	unsigned va_bits;         /* 48, or 57 with LA57 */
};

/* The MSRs every x86-64 guest's state holds (system call entry points,
 * the kernel's GS base, the TSC): a vCPU state without one of those this
 * host lists is not a whole vCPU. */
extern const uint32_t vcpu_required_msrs[];
extern const unsigned vcpu_required_msrs_count;

int state_check_regs(const struct kvm_regs *r, char *err);
int state_check_sregs(const struct kvm_sregs *s, char *err);
int state_check_events(const struct kvm_vcpu_events *e, char *err);
int state_check_mp_state(const struct kvm_mp_state *m, char *err);
int state_check_debugregs(const struct kvm_debugregs *d, char *err);
int state_check_xcrs(const struct kvm_xcrs *x, const struct vcpu_state_facts *f,
		     char *err);
/* @xsave: @len bytes of KVM_GET_XSAVE(2) output. */
int state_check_xsave(const void *xsave, size_t len,
		      const struct vcpu_state_facts *f, char *err);
int state_check_msrs(const struct kvm_msrs *m, const struct vcpu_state_facts *f,
		     char *err);
int state_check_lapic(const struct kvm_lapic_state *l, char *err);

/* Platform state (platform_state.c). */
int state_check_pit(const struct kvm_pit_state2 *p, char *err);
/* @chip: KVM_IRQCHIP_PIC_MASTER or KVM_IRQCHIP_PIC_SLAVE */
int state_check_pic(const struct kvm_pic_state *p, int chip, char *err);
int state_check_ioapic(const struct kvm_ioapic_state *io, char *err);
int state_check_kvmclock(uint64_t clock_ns, char *err);

#endif
