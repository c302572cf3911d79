/*
 * postcopy_recv.h - the destination's two post-copy connections around a
 * pc_dest (postcopy_dest.h):
 *
 *   page-request connection:  PAGE_REQUEST out (from faults and
 *                             ensure_present), PAGE answers in, and
 *                             PAGES_DONE out once every page is here
 *   push connection:          PAGE ... PAGE, PUSH_END in
 *
 * One receiver thread per connection places pages as they come, so an
 * answer never waits behind pushed pages.  A bad record or a broken
 * connection ends the receive with a message and pauses demand paging
 * (pcd_pause: faulting threads sleep on, ensure_present fails); the owner
 * either ends post-copy (pcr_stop) or recovers it on new connections
 * (pcr_resume; docs/postcopy-design.md, "Recovery").
 */
#ifndef FERRY_MIG_POSTCOPY_RECV_H
#define FERRY_MIG_POSTCOPY_RECV_H

#include "io/channel.h"
#include "migration/postcopy_dest.h"
#include "vmm/memory.h"

struct pc_recv;

/**
 * pcr_new() - register mem for post-copy (every page missing) and start
 * the fault thread and both receivers on req and push (not owned;
 * connected, preambles done).  The receivers place nothing until
 * pcr_open().  Returns 0 and *out, or a negative errno with a message.
 */
int pcr_new(struct guest_memory *mem, struct channel *req,
	    struct channel *push, struct pc_recv **out, char *err);

/* The list of missing pages is applied (their stale copies dropped):
 * arriving pages may be placed from now on. */
void pcr_open(struct pc_recv *rv);

/* Wait up to timeout_ms for the push's PUSH_MARK (the pages the guest
 * needs first are placed: the push places in order).  True if it came. */
bool pcr_wait_mark(struct pc_recv *rv, unsigned timeout_ms);

/* The demand-paging object: pcd_ensure_present() for VMM reads. */
struct pc_dest *pcr_dest(struct pc_recv *rv);

/* release-ram agreed: while pcr_wait() waits, tell the source every
 * CONFIRM_NS which pages were placed (PAGES_HAVE). */
void pcr_set_confirm(struct pc_recv *rv, bool on);

/**
 * pcr_wait() - wait until every page arrived, tell the source
 * (PAGES_DONE), and wait for both connections to end.  Returns 0 or the
 * first error with its message.
 */
int pcr_wait(struct pc_recv *rv, char *err);

/* Bytes read on the page-request and push connections; only once
 * pcr_wait() returned (its readers have ended). */
void pcr_bytes(struct pc_recv *rv, uint64_t *answers, uint64_t *push);

/**
 * pcr_resume() - after pcr_wait() failed with the connections broken
 * (no page comes meanwhile: pcd_pause), go on with new ones (not owned;
 * connected, preambles done): send RECV_BITMAP (what has arrived) first
 * on req, start new receivers, and ask again for every page requested
 * and not yet here.  pcr_wait() may then be called again.  Returns 0 or
 * a negative errno with a message (the connections failed again).
 */
int pcr_resume(struct pc_recv *rv, struct channel *req, struct channel *push,
	       char *err);

/* Stop now (shuts the connections down); pcr_wait() then fails. */
void pcr_stop(struct pc_recv *rv);
/* Has pcr_stop() been called (post-copy is over, whatever broke)? */
bool pcr_stopped(struct pc_recv *rv);

/* After a successful pcr_wait(): pcd_retire() (the memory is the
 * guest's again); pcr_free() later frees the rest without touching it. */
void pcr_retire(struct pc_recv *rv);

/* Unregisters the memory (threads asleep on a missing page then find a
 * zero page: only for teardown after pcr_wait or a failure). */
void pcr_free(struct pc_recv *rv);

#endif
