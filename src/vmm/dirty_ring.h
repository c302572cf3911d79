/*
 * dirty_ring.h - KVM's dirty ring (KVM_CAP_DIRTY_LOG_RING) as the way to
 * learn which pages the guest wrote, beside the bitmap (dirty_log.h).
 *
 * With the ring, KVM appends each page a vCPU dirties to that vCPU's ring
 * (an array of struct kvm_dirty_gfn mapped from the vCPU fd) instead of
 * setting a bit; the VMM harvests entries in order (DIRTY -> RESET) and
 * KVM_RESET_DIRTY_RINGS write-protects those pages again.  The cost
 * follows what the guest dirtied, not the size of its memory: a sync of a
 * big, mostly idle guest reads a few entries instead of whole bitmaps.
 * A vCPU whose ring fills exits (KVM_EXIT_DIRTY_RING_FULL) and harvests
 * every ring itself before it goes on.
 *
 * It is chosen when the VM is created (`ferry run --dirty-ring N`: N
 * entries per vCPU, a power of two from 256 to 65536, QEMU's
 * dirty-ring-size), before any vCPU exists, as KVM requires; a KVM
 * without it (or refusing the size: KVM wants room for 64 reserved
 * entries plus, on Intel with PML, the 512 of the PML buffer, so 1024 at
 * least there) falls back to the bitmap with a log line.  Once on, KVM's
 * bitmap calls are off for the VM, manual protection is not enabled, and
 * the first sync after dirty_log_start reports every page (a full round 0,
 * as the bitmap's first sync does).
 *
 * Harvested pages gather in one bitmap per slot (under the ring's lock)
 * until dirty_log_sync hands them over: several harvesters - the
 * migration thread and vCPUs with a full ring - never lose an entry.
 */
#ifndef FERRY_VMM_DIRTY_RING_H
#define FERRY_VMM_DIRTY_RING_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "vmm/memory.h"

#define DIRTY_RING_MIN_ENTRIES 256      /* 4 KiB of entries */
#define DIRTY_RING_MAX_ENTRIES 65536    /* KVM's limit */

struct vm;
struct vcpu;
struct kvm_dirty_gfn;

struct dirty_ring {
	uint32_t entries;         /* per vCPU; 0: the bitmap is in use */
	pthread_mutex_t lock;     /* harvesting, acc, full */
	uint64_t *acc[MEM_MAX_SLOTS];  /* harvested, not yet synced */
	bool full[MEM_MAX_SLOTS]; /* next sync reports every page */
	uint64_t harvested;       /* entries taken, all time */
	uint64_t full_exits;      /* KVM_EXIT_DIRTY_RING_FULL, all time */
	uint64_t ignored;         /* entries naming no page of ours */
};

/* Is n a ring size `--dirty-ring` takes (0 included: off)? */
bool dirty_ring_size_ok(uint64_t n);

/**
 * dirty_ring_enable() - at VM creation, after the memory layout and
 * before any vCPU: ask KVM for rings of @entries.  Returns 0 (on),
 * -ENOTSUP (this KVM has no ring, or refused the size: @err says why;
 * the caller uses the bitmap) or another negative errno.
 */
int dirty_ring_enable(struct vm *vm, uint32_t entries, char *err);
void dirty_ring_free(struct vm *vm);
static inline bool dirty_ring_on(const struct dirty_ring *r)
{
	return r->entries != 0;
}

/* Map / unmap one vCPU's ring (vcpu_create, vcpu_destroy). */
int dirty_ring_map_vcpu(struct vcpu *v);
void dirty_ring_unmap_vcpu(struct vcpu *v);

/**
 * dirty_ring_reap() - harvest every vCPU's ring into the per-slot
 * bitmaps and let KVM re-protect those pages.  Any thread; @full_exit
 * counts a vCPU's KVM_EXIT_DIRTY_RING_FULL.  0 or a negative errno.
 */
int dirty_ring_reap(struct vm *vm, bool full_exit);

/* Entries harvested from vCPU @index's ring so far (0 when off). */
uint64_t dirty_ring_vcpu_taken(struct vm *vm, unsigned index);
/* Entries harvested and full-ring exits so far (0s when off). */
void dirty_ring_counts(struct vm *vm, uint64_t *harvested, uint64_t *full_exits);

/* dirty_log_start: the next sync of each slot reports every page. */
void dirty_ring_start(struct vm *vm);
/* dirty_log_stop: drop what was harvested. */
void dirty_ring_stop(struct vm *vm);
/**
 * dirty_ring_sync() - reap, then OR slot's harvested pages (all pages on
 * the first sync after start) into @out and forget them.
 */
int dirty_ring_sync(struct vm *vm, unsigned slot, uint64_t *out);

/**
 * dirty_ring_collect() - the harvest of one ring, without KVM: take the
 * entries from *fetch on while they are DIRTY, set each page's bit in
 * acc (slot ids are mem's), mark the entry RESET, advance *fetch.  An
 * entry naming no slot or a page past its end is reset and counted in
 * *ignored, never written anywhere.  Returns the entries taken.
 */
uint32_t dirty_ring_collect(struct kvm_dirty_gfn *gfns, uint32_t entries,
			    uint32_t *fetch, const struct guest_memory *mem,
			    uint64_t *const acc[MEM_MAX_SLOTS], uint64_t *ignored);

#endif
