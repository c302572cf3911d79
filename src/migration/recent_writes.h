/*
 * recent_writes.h - the pages a guest wrote in the last few milliseconds
 * before a post-copy switchover: its working set of the moment (counters,
 * locks, stacks, the buffers it is filling), which the guest writes
 * again as soon as it runs at the destination.  Pure post-copy sends
 * them first, beside each vCPU's own pages (vmm/x86/vcpu_pages.h), so
 * the resumed guest does not fault on them one round trip after another.
 *
 * KVM's dirty log (dirty_log.h) is turned on and armed just before the
 * switch and read once the vCPUs are parked - after the machine state
 * has gone out, so none of it lengthens the pause - and turned off at
 * the migration's end.
 */
#ifndef FERRY_MIG_RECENT_WRITES_H
#define FERRY_MIG_RECENT_WRITES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct vm;

struct recent_writes {
	struct vm *vm;
	uint64_t **bm;       /* per slot */
	uint64_t armed_ns;
	bool on;             /* dirty logging is on for it */
};

/* Turn dirty logging on and re-arm every page: from now on only writes
 * count.  0, or a negative errno with a message (logging left off). */
int recent_writes_arm(struct recent_writes *rw, struct vm *vm, char *err);

/* Milliseconds since recent_writes_arm. */
double recent_writes_age_ms(const struct recent_writes *rw);

/* With the vCPUs parked: up to max guest-physical addresses of pages
 * written since arming, lowest first.  Returns how many (0 on error). */
size_t recent_writes_take(struct recent_writes *rw, uint64_t *gpas, size_t max);

/* Logging off, bitmaps freed; harmless when never armed. */
void recent_writes_end(struct recent_writes *rw);

#endif
