/*
 * postcopy_incoming.h - the destination's switch to post-copy, between
 * the main connection (incoming.c) and demand paging (postcopy_recv.c):
 *
 *   POSTCOPY_MISSING (first)  take the page-requests and postcopy-push
 *                             connections of the session (incoming_conns.h),
 *                             register guest RAM (pcr_new) with every page
 *                             present, before any vCPU runs
 *   POSTCOPY_MISSING (each)   drop the listed pages (pcd_discard): they
 *                             fault and are pulled from the source
 *   after RUNNING             pci_wait: until every page is here
 *
 * Pages not listed are the ones pre-copy sent and the guest has not
 * written since (a hybrid); pure post-copy lists all of memory.
 */
#ifndef FERRY_MIG_POSTCOPY_INCOMING_H
#define FERRY_MIG_POSTCOPY_INCOMING_H

#include <stdint.h>

#include <jansson.h>

#include "vmm/memory.h"

struct inconns;
struct pci;

/**
 * pci_begin() - take the session's page-requests and postcopy-push
 * connections from conns (each within wait_ms), register mem for
 * post-copy with every page present, and start the fault thread and the
 * receivers.  idle_ms bounds a silence of the push connection (0: none).
 * Returns 0 and *out, or a negative errno with a message.
 */
int pci_begin(struct pci **out, struct guest_memory *mem, struct inconns *conns,
	      int wait_ms, int idle_ms, char *err);

/* One POSTCOPY_MISSING payload: check it whole, then discard its runs.
 * Only before the guest runs.  0 or -EPROTO/-errno with a message. */
/* release-ram was agreed: confirm placed pages to the source. */
void pci_confirm(struct pci *p);
int pci_missing(struct pci *p, const uint8_t *payload, uint32_t len, char *err);

/* Pages listed missing so far. */
/* POSTCOPY_PREPARE, before the pause: learn whether this side holds any
 * page yet (pcd_check_pristine), so that applying the list is cheap. */
void pci_prepare(struct pci *p);

/* Every POSTCOPY_MISSING record is applied (at STATE_END): pages that
 * arrive, even before COMMIT, are placed from now on. */
void pci_open(struct pci *p);
/* With early push: wait (bounded) until the pages the guest needs first
 * are placed, so that it does not fault on them as soon as it runs.
 * True if they are. */
bool pci_wait_first_pages(struct pci *p, unsigned timeout_ms);

uint64_t pci_missing_pages(const struct pci *p);

/* What pci_wait() tells its owner about a pause and a recovery (on
 * its thread). */
struct pci_events {
	/* The connections broke: post-copy waits for a recovery (the owner
	 * shows postcopy-paused with why and listens again after
	 * migrate-recover). */
	void (*paused)(void *opaque, const char *why);
	/* A recovery's connections came and post-copy runs again. */
	void (*resumed)(void *opaque);
	void *opaque;
};

/**
 * pci_wait() - the guest runs: wait until every page arrived (PAGES_DONE
 * sent, connections ended).  When the connections break (not for a bad
 * record: that ends post-copy), post-copy pauses (ev->paused; faulting
 * vCPUs wait) and waits for a recovery: the same session's page-request
 * and push connections from conns, taken as they come; RECV_BITMAP tells
 * the source what is here, the outstanding faults are asked again, and
 * the wait goes on (ev->resumed).  Returns 0, or the first error that
 * ends post-copy with its message (a bad record, pci_stop()).
 */
int pci_wait(struct pci *p, const struct pci_events *ev, char *err);

/* After pci_wait() returned 0: the memory is the guest's again (no hook,
 * no registration); pci_free() later touches neither it nor the VM. */
void pci_retire(struct pci *p);

/* End post-copy now (any thread): pci_wait returns with an error. */
void pci_stop(struct pci *p);

/* query-migrate's ferry.postcopy at the destination: missing-pages,
 * pages-arrived, faults, pages-requested, pages-placed, zero-placed,
 * crossings, ensure-waits, fault-latency-us {p50, p99, max, samples},
 * pauses, recoveries, waited-ms (request-to-page times summed: vCPUs' blocked time at most), and
 * once it ended bytes-answers / bytes-push.  Any thread; a new reference. */
json_t *pci_json(struct pci *p);

/* Unregister (vCPUs asleep on a missing page then get zero pages: only
 * when the VM is going away or every page arrived), close, free.  NULL
 * is a no-op. */
void pci_free(struct pci *p);

#endif
