/*
 * vcpu_pages.h - the guest-physical pages a parked x86 vCPU touches first
 * when it runs again: the pages around its instruction pointer and under
 * its stack pointer, its descriptor tables and task state segment, the
 * per-CPU areas its segment bases point at, the stack an interrupt
 * switches to - and every page-table page on the way to each of them.
 *
 * Post-copy uses them: a guest resumed at the destination faults on
 * exactly these pages first, one after another, each a round trip to
 * the source; sent ahead with the state they are there when it resumes.
 * Only the vCPU's architectural state is read (no knowledge of the
 * guest), so it holds for any guest; a page it gets wrong is merely sent
 * early.
 */
#ifndef FERRY_VMM_X86_VCPU_PAGES_H
#define FERRY_VMM_X86_VCPU_PAGES_H

#include <stddef.h>
#include <stdint.h>

#include <linux/kvm.h>

#include "vmm/memory.h"

struct vcpu;

/* Pages per vCPU, at most: fifteen addresses, each with up to five
 * levels of page tables above it. */
#define VCPU_PAGES_MAX 96

/* What the walk needs of a vCPU's state (filled by vcpu_pages_state). */
struct vcpu_pages_state {
	struct kvm_regs regs;
	struct kvm_sregs sregs;
	uint64_t kernel_gs_base, lstar;
};

/* Read it from a parked vCPU: 0 or a negative errno. */
int vcpu_pages_state(struct vcpu *v, struct vcpu_pages_state *st);

/**
 * vcpu_pages() - the page-aligned guest-physical addresses st touches
 * first, read through mem (paging structures the guest set up), no
 * duplicates, at most max (VCPU_PAGES_MAX is always enough).  Addresses
 * outside guest RAM are left out.  Returns how many.
 */
size_t vcpu_pages(const struct vcpu_pages_state *st, const struct guest_memory *mem,
		  uint64_t *gpas, size_t max);

#endif
