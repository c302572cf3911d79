/*
 * throttle.h - slow a running guest by taking a share of its vCPU time
 * (auto-converge: a guest dirtying memory faster than pre-copy sends it).
 *
 * How: a kicker thread interrupts each throttled vCPU once per period;
 * the vCPU, out of KVM_RUN, then sleeps its share before it re-enters.  At
 * p percent a vCPU runs VM_THROTTLE_SLICE_NS and sleeps slice * p /
 * (100 - p), so it keeps 100 - p percent of its time (QEMU slows vCPUs the
 * same way).  The sleep ends early when the VM is paused or quits, so a
 * stop-and-copy never waits for a throttled vCPU.
 *
 * Two users: auto-converge sets one share for the whole VM
 * (vm_throttle_set), the dirty limit one per vCPU (vm_throttle_set_vcpu);
 * a vCPU gives the larger of the two.
 */
#ifndef FERRY_VMM_THROTTLE_H
#define FERRY_VMM_THROTTLE_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#define VM_THROTTLE_SLICE_NS 10000000ULL  /* 10 ms of running per period */
#define VM_THROTTLE_MAX      99

#define VM_THROTTLE_VCPUS    64   /* VM_MAX_VCPUS */

struct vm;
struct vcpu;

struct vm_throttle {
	pthread_mutex_t lock;      /* guards thread, running, stop */
	pthread_cond_t cond;       /* CLOCK_MONOTONIC: wakes the kicker */
	pthread_t thread;
	bool running, stop;
	unsigned percent;          /* atomic: the whole VM's share */
	unsigned vcpu_percent[VM_THROTTLE_VCPUS]; /* atomic: each vCPU's own */
	uint64_t next_kick[VM_THROTTLE_VCPUS];    /* the kicker's own */
	uint64_t throttled_ns;     /* atomic: vCPU time spent asleep, all vCPUs */
	uint64_t vcpu_throttled_ns[VM_THROTTLE_VCPUS]; /* atomic: the same per vCPU */
};

/* Once, with the VM; vm_throttle_fini at its end (stops the kicker). */
void vm_throttle_init(struct vm_throttle *t);
void vm_throttle_fini(struct vm *vm);

/**
 * vm_throttle_set() - take @percent (0..99; more is taken as 99) of
 * every vCPU's time from now on; 0 lifts the throttle and stops the
 * kicker.  Returns 0 or a negative errno (the kicker thread could not
 * start: the guest runs unthrottled).
 */
int vm_throttle_set(struct vm *vm, unsigned percent);
unsigned vm_throttle_percent(struct vm *vm);
/**
 * vm_throttle_set_vcpu() - the same for vCPU @index alone (the dirty
 * limit); the vCPU gives the larger of this and the VM's share.
 */
int vm_throttle_set_vcpu(struct vm *vm, unsigned index, unsigned percent);
/* What vCPU @index gives now: the larger of the two shares. */
unsigned vm_throttle_vcpu_percent(struct vm *vm, unsigned index);
/* Lift every share, the VM's and each vCPU's, and stop the kicker. */
void vm_throttle_clear(struct vm *vm);
/* vCPU time all vCPUs have slept for the throttle since the VM began. */
uint64_t vm_throttle_ns(struct vm *vm);
uint64_t vm_throttle_vcpu_ns(struct vm *vm, unsigned index);

/**
 * vm_throttle_point() - on a vCPU thread, outside KVM_RUN: sleep this
 * vCPU's share if the kicker asked for it since the last call.  Returns
 * true if it slept.
 */
bool vm_throttle_point(struct vcpu *v);

/* The sleep for one period at @percent (for the tests). */
uint64_t vm_throttle_sleep_ns(unsigned percent);

#endif
