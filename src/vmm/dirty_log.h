/*
 * dirty_log.h - which guest pages were written since they were last sent.
 *
 * KVM's dirty log with KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2: turning logging
 * on write-protects every page the guest has mapped, in one pass; the first
 * sync after that reports every page dirty (round 0 sends all memory), and
 * a page is write-protected again only when its bit is cleared
 * (dirty_log_clear), which the sender does chunk by chunk just before
 * sending the chunk.  Pages the VMM itself writes are tracked in a bitmap of
 * its own and merged at each sync.
 *
 * Not INITIALLY_SET (QEMU's choice, which marks every page dirty in KVM and
 * protects nothing until cleared): then round 0's clears make KVM visit
 * every page of every slot, mapped or not, 64 at a time - measured here
 * 111 against 72 ms for round 0 of an untouched 8 GiB guest.  Without it
 * KVM's bitmap holds only pages really written since logging began, and a
 * clear costs only those.
 *
 * With `--dirty-ring` the same calls run on KVM's dirty ring instead
 * (dirty_ring.h): sync harvests the rings, clear has nothing to do (the
 * harvest re-protects), and the first sync after start reports every page.
 */
#ifndef FERRY_DIRTY_LOG_H
#define FERRY_DIRTY_LOG_H

#include <stdbool.h>
#include <stdint.h>

struct vm;
struct guest_memory;

/* Once per VM, at creation: ask KVM for manual protection. */
int dirty_log_enable_cap(struct vm *vm);
int dirty_log_start(struct vm *vm, char *err);
void dirty_log_stop(struct vm *vm);
/* Fetch slot's dirty bitmap (1 bit per page, 64-bit words) into out and
 * merge the VMM's own writes; the first sync after start: every page. */
int dirty_log_sync(struct vm *vm, unsigned slot, uint64_t *out);
/* Re-arm tracking for pages [first, first+n) of slot whose bits are set in
 * bits (bit 0 = page first); first is a multiple of 64. */
int dirty_log_clear(struct vm *vm, unsigned slot, uint64_t first,
		    uint64_t n, uint64_t *bits);

/* The VMM wrote guest memory: remember it when logging is on. */
void memory_mark_dirty(struct guest_memory *mem, uint64_t gpa, uint64_t len);

static inline uint64_t dirty_bitmap_words(uint64_t npages)
{
	return (npages + 63) / 64;
}

#endif
