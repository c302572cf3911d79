/*
 * vcpu.h - one KVM vCPU, its thread, and its complete architectural state.
 */
#ifndef FERRY_VCPU_H
#define FERRY_VCPU_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "util/buf.h"

struct vm;
struct kvm_run;
struct kvm_dirty_gfn;

struct vcpu {
	struct vm *vm;
	unsigned index;
	int fd;
	struct kvm_run *run;
	size_t run_size;
	pthread_t thread;
	bool thread_started;
	bool io_pending;    /* last exit was I/O: KVM must complete it */
	int throttle_due;   /* atomic: the throttle asks for a sleep (throttle.h) */
	struct kvm_dirty_gfn *ring; /* KVM's dirty ring, or NULL (dirty_ring.h) */
	uint32_t ring_fetch;        /* the next entry to harvest */
	uint64_t ring_taken;        /* entries harvested from it (ring lock) */
};

int vcpu_create(struct vm *vm, unsigned index, struct vcpu **out);
void vcpu_destroy(struct vcpu *vcpu);
int vcpu_start_thread(struct vcpu *vcpu);
/* Interrupt KVM_RUN on this vCPU's thread (signal + immediate_exit). */
void vcpu_kick(struct vcpu *vcpu);
/* Install the signal handler used by vcpu_kick; once per process. */
int vcpu_signals_init(void);

/* Multiboot entry state for the boot vCPU (32-bit flat protected mode). */
int vcpu_set_multiboot_entry(struct vcpu *vcpu, uint32_t entry,
			     uint32_t mbi);

/* Complete state (registers, FPU/XSAVE, XCRs, MSRs, LAPIC, events, MP
 * state, debug registers) as a versioned blob.  vCPU must be parked. */
#define VCPU_STATE_VERSION 1
int vcpu_save_state(struct vcpu *vcpu, struct buf *out);
int vcpu_load_state(struct vcpu *vcpu, uint32_t version, const void *data,
		    size_t len, char *err);

/* The MSRs this host lets us read and write (probed once). */
int vcpu_msr_list_init(int kvm_fd, int vcpu_fd);
/* Test hook: take this list as the host's (a host without KVM: the fuzz
 * targets' offline machines); later probes keep it.  0 or -ENOMEM. */
int vcpu_msr_list_set(const uint32_t *indices, unsigned n);

#endif
