/*
 * fault_ahead.h - the destination faults in the memory round 0 will fill,
 * on a thread of its own, ahead of the stream.
 *
 * Why: a destination's guest memory is fresh, and the kernel backs each
 * page at its first touch.  Receiving into such memory, the page channels
 * pay that cost one page at a time, inside their copy, on their own
 * threads; on this project's hosts it is most of what a migration of
 * data-heavy memory costs the destination (docs/results.md).  Faulting in
 * 2 MiB at a time (MADV_POPULATE_WRITE) on another thread costs less per
 * page and runs beside the receivers, on another core where there is one.
 *
 * Which memory: only what round 0 will carry.  With the "fault-ahead"
 * capability (caps.h) the source sends RAM_AHEAD before round 0's pages:
 * the runs of guest memory it has populated (memory_runs.h), in the order
 * round 0 sends them, as POSTCOPY_MISSING's payload (postcopy_proto.h).
 * Memory the guest never touched is neither sent nor faulted in, so a big
 * guest that uses little costs the destination little.
 *
 * The thread keeps FA_LEAD ahead of the highest address the receivers
 * have reached (struct ram_decoder's frontier): right in front of them
 * they fault in what they write anyway, and two threads on one page only
 * wait for each other.  It ends at its list's end, or when round 0 ends
 * (every page the list names has arrived by then), or on fa_stop.
 */
#ifndef FERRY_MIG_FAULT_AHEAD_H
#define FERRY_MIG_FAULT_AHEAD_H

#include <stddef.h>
#include <stdint.h>

#include "migration/postcopy_proto.h"
#include "vmm/memory.h"

#define FA_LEAD  (32ULL << 20)  /* measured: 8 MiB gained less (docs/multifd.md) */
#define FA_CHUNK (2ULL << 20)   /* one madvise: a huge page's worth */
/* A shorter list starts no thread: it would fault in less than three
 * quarters of it, and on a short round 0 it took the receivers and the
 * guest more time than it saved (65 MiB listed: 1.07-1.10x the total;
 * 193 MiB listed: 0.86x; docs/multifd.md). */
#define FA_MIN   (4 * FA_LEAD)
/* At most this many runs in RAM_AHEAD (one record): a guest whose
 * populated memory is more broken up than that has runs joined across
 * their gaps, the smallest gaps first. */
#define FA_MAX_RUNS PCP_MISSING_MAX_RUNS

struct fault_ahead;

/* Source: the populated runs of mem, at most FA_MAX_RUNS (joined across
 * the smallest gaps, never across a slot's end).  Returns the count
 * (*out malloc'd, NULL for 0) or a negative errno. */
long fa_source_runs(const struct guest_memory *mem, struct pcp_run **out);

/* Destination: check a RAM_AHEAD payload against mem (pcp_parse_runs)
 * and start faulting in its runs (when they are FA_MIN or more);
 * frontier is the receivers' (read atomically).  0, or -EPROTO with err
 * set for a bad payload.  A list too short or a thread that cannot start
 * is no error: *fa stays NULL (logged), and the receivers fault in their
 * pages as they always could. */
int fa_start(struct guest_memory *mem, const uint8_t *p, uint32_t len,
	     const uint64_t *frontier, struct fault_ahead **fa, char *err);
/* Ask the thread to end after its current chunk, and return at once;
 * NULL is fine. */
void fa_finish(struct fault_ahead *fa);
/* fa_finish, wait for the thread, log what it did and free it; NULL is
 * fine.  Before post-copy registers the memory (the thread must not
 * fault on a registered page) and before the memory goes. */
void fa_stop(struct fault_ahead *fa);

/* The receivers' side: raise *frontier to gpa_end (atomic maximum). */
void fa_note_frontier(uint64_t *frontier, uint64_t gpa_end);

#endif
