/*
 * dirty_limit.h - hold each vCPU to a dirty rate (QEMU's "dirty-limit"
 * with "vcpu-dirty-limit"): the way to converge a guest that dirties
 * faster than the link without slowing the vCPUs that do not.
 *
 * A controller thread measures each vCPU's dirty rate from KVM's dirty
 * ring (what was harvested from that vCPU's ring per period: the ring
 * says who dirtied a page, the bitmap cannot) and gives each vCPU its own
 * throttle share (vm_throttle_set_vcpu): one over the limit at once the
 * share that should bring it to the limit, one under it half the way
 * back (dirty_limit_step, a pure function with table tests).  A vCPU that
 * dirties nothing is never slowed.  Needs the ring (`--dirty-ring`).
 */
#ifndef FERRY_VMM_DIRTY_LIMIT_H
#define FERRY_VMM_DIRTY_LIMIT_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#define DIRTY_LIMIT_VCPUS 64   /* VM_MAX_VCPUS */
#define DIRTY_LIMIT_PERIOD_DEFAULT_MS 1000  /* x-vcpu-dirty-limit-period */
#define DIRTY_LIMIT_DEFAULT_MBPS      1     /* vcpu-dirty-limit, MiB/s (QEMU: "MB/s", 2^20) */

struct vm;

struct dirty_limit {
	pthread_mutex_t lock;    /* all below */
	pthread_cond_t cond;     /* CLOCK_MONOTONIC: wakes the controller */
	pthread_t thread;
	bool running, stop;
	uint64_t limit;          /* bytes/s per vCPU */
	uint64_t period_ns;
	uint64_t rate[DIRTY_LIMIT_VCPUS];   /* last measured, bytes/s */
	uint64_t taken[DIRTY_LIMIT_VCPUS];  /* ring entries at the last look */
	uint64_t t_last;
};

void dirty_limit_init(struct dirty_limit *d);
void dirty_limit_fini(struct vm *vm);

/**
 * dirty_limit_start() - hold every vCPU to @limit bytes/s, looking every
 * @period_ms.  Fails (with @err) without the dirty ring.
 */
int dirty_limit_start(struct vm *vm, uint64_t limit, uint64_t period_ms,
		      char *err);
/* A new limit for a running controller (no-op when stopped). */
void dirty_limit_set(struct vm *vm, uint64_t limit);
/* Stop and lift every vCPU's share. */
void dirty_limit_stop(struct vm *vm);
bool dirty_limit_running(struct vm *vm);

/* vCPU @index's last measured dirty rate in bytes/s, and the limit
 * (0 when not running). */
uint64_t dirty_limit_rate(struct vm *vm, unsigned index, uint64_t *limit);

/**
 * dirty_limit_step() - the share (0..99) a vCPU gives next, from the
 * share it gives now, its measured dirty rate and the limit (bytes/s).
 */
unsigned dirty_limit_step(unsigned percent, uint64_t rate, uint64_t limit);

#endif
