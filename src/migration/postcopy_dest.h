/*
 * postcopy_dest.h - demand paging at a post-copy destination: guest RAM is
 * registered with userfaultfd (MISSING mode), a fault thread turns each
 * first touch of a page that has not arrived into a request, and arriving
 * pages are placed atomically (UFFDIO_COPY; UFFDIO_ZEROPAGE for zero
 * pages).  A received-page bitmap says what has arrived.
 *
 *   vCPU / VMM thread          fault thread            receivers (any number)
 *   touches page P  --fault--> request(P) --wire-->    ...
 *   (sleeps in the kernel)                             pcd_place(P, data)
 *   <------------------------ UFFDIO_COPY wakes it --- (bitmap, waiters)
 *
 * Pages the VMM itself reads or writes (device emulation, the digest,
 * x-guest-memory-write) go through pcd_ensure_present() first: it requests
 * what is missing and waits, so no host code works on a page that has not
 * arrived (a plain read would also fault and wait, but code that asks the
 * kernel instead - pagemap, as the digest does - would see a hole).
 *
 * Several threads may fault at once: each fault is requested as soon as
 * it is read, and placements from several receiver threads run in
 * parallel (the kernel serialises per page).  A page pushed while it was
 * also requested arrives twice: the second placement finds it present
 * (EEXIST, or the bitmap) and is counted as a crossing, not an error.
 *
 * The fault thread never touches guest memory itself.  The request
 * callback runs on the fault thread and on ensure_present callers; it
 * must be thread-safe and must not touch registered memory.
 */
#ifndef FERRY_MIG_POSTCOPY_DEST_H
#define FERRY_MIG_POSTCOPY_DEST_H

#include <stdbool.h>
#include <stdint.h>

#include "vmm/memory.h"

struct pc_dest;

#define PCD_MAX_RUN 4096  /* pages per request call (PCP_REQ_MAX_PAGES) */

/* Ask the source for npages (1..PCD_MAX_RUN) pages from gpa, inside one
 * slot. */
typedef void (*pcd_request_fn)(void *opaque, uint64_t gpa, uint32_t npages);

struct pcd_stats {
	uint64_t pages;          /* guest pages in all */
	uint64_t missing;        /* not yet arrived */
	uint64_t faults;         /* fault messages read */
	uint64_t requested;      /* pages asked for (faults + ensure_present) */
	uint64_t placed;         /* pages placed with data */
	uint64_t zero_placed;    /* pages placed as zero pages */
	uint64_t crossings;      /* arrived already present (EEXIST/bitmap) */
	uint64_t named_zero;     /* not here when PUSH_ZERO named them zero */
	uint64_t ensure_calls;   /* ensure_present calls that had to wait */
	uint64_t confirmed;      /* pages told to the source (PAGES_HAVE) */
	/* from a request to its page placed, over requested pages */
	uint64_t lat_samples;
	uint64_t lat_p50_ns, lat_p99_ns, lat_max_ns;
	/* the sum over requested pages (every one, beyond the samples): what
	 * the faulting threads waited at most (waits may overlap) */
	uint64_t lat_total_ns;
};

/**
 * pcd_available() - can this process serve post-copy: open a userfaultfd
 * and register anonymous memory with it (tried on one page)?  Returns 0,
 * or a negative errno with why ("post-copy needs userfaultfd: ...").
 */
int pcd_available(char *why);

/**
 * pcd_new() - register every slot of mem with a new userfaultfd; every
 * page counts as missing, so the slots must hold no page yet (fresh
 * anonymous memory, or pages discarded with MADV_DONTNEED).  Requests go
 * to request(opaque, ...).  Installs pcd_ensure_present() as mem's
 * memory_ensure() hook (removed by pcd_free).  Returns 0 and *out, or a negative errno with
 * a message (no userfaultfd, registration refused).
 */
int pcd_new(struct guest_memory *mem, pcd_request_fn request, void *opaque,
	    struct pc_dest **out, char *err);

/**
 * pcd_mark_present() - pages [gpa, gpa+len) are already in memory (they
 * arrived before post-copy, as in a hybrid migration): they count as
 * received.  Call before the guest or any thread touches memory.  A
 * page counted present that the kernel has no page for (never written)
 * faults once and gets the zero page, without a request.
 */
void pcd_mark_present(struct pc_dest *d, uint64_t gpa, uint64_t len);

/**
 * pcd_discard() - pages [gpa, gpa+len) (page aligned) hold stale data (a
 * hybrid migration: written by pre-copy, dirtied again at the source):
 * drop them, so the next touch faults and asks for the current copy.
 * Only while nothing else uses them (the guest not yet resumed).
 * Returns 0, -EINVAL outside guest RAM, or madvise's error.
 */
int pcd_discard(struct pc_dest *d, uint64_t gpa, uint64_t len);
/* Pages [gpa, gpa + npages pages) are zero at the source (PUSH_ZERO):
 * those not here yet count as here (a fault on one fills it with zeros
 * locally), and those a vCPU asked for are placed as zero pages now.
 * 0, or a negative errno with a message. */
int pcd_mark_zero(struct pc_dest *d, uint64_t gpa, uint64_t npages, char *err);

/* Before the switchover's pause (post-copy's PREPARE): if no page of
 * guest RAM is populated here (a fresh destination), remember it, so the
 * listed runs cost no page-table scan to drop - until a page is filled
 * (a fault or a placement). */
void pcd_check_pristine(struct pc_dest *d);

/* The same for many runs: queue each (checked as pcd_discard), then
 * drop them all with a few system calls (memory_zap.h) - a hybrid's
 * switch lists tens of thousands. */
int pcd_discard_queue(struct pc_dest *d, uint64_t gpa, uint64_t len);
int pcd_discard_flush(struct pc_dest *d);

/* Start the fault thread.  Returns 0 or a negative errno with a message. */
int pcd_start(struct pc_dest *d, char *err);

/**
 * pcd_place() - a page arrived: place it (data NULL: a zero page) and wake
 * whoever waits on it.  Thread-safe.  Returns 0 when placed here, 1 when
 * it was present already (a crossing), or a negative errno with a message.
 */
int pcd_place(struct pc_dest *d, uint64_t gpa, const void *data, char *err);

/**
 * pcd_place_run() - n consecutive pages from gpa (inside one slot, data
 * n x 4 KiB) arrived together: place them with as few copies as the
 * kernel allows.  Pages already present count as crossings.  Returns the
 * pages placed here, or a negative errno with a message.
 */
int pcd_place_run(struct pc_dest *d, uint64_t gpa, const void *data,
		  unsigned n, char *err);

/**
 * pcd_ensure_present() - make [gpa, gpa+len) present before host code
 * uses it: request what is missing and not yet requested, then wait until
 * it has all arrived.  Returns 0, -EINVAL for a range outside guest RAM,
 * or -ECANCELED when pcd_cancel() ended the wait.
 */
int pcd_ensure_present(struct pc_dest *d, uint64_t gpa, uint64_t len);

/**
 * pcd_retire() - every page has arrived: stop the fault thread, remove the
 * memory_ensure() hook and unregister, but keep d itself (a VMM thread
 * that read the hook a moment before still finds it, every page present)
 * until pcd_free, which then touches neither mem nor the VM.
 */
void pcd_retire(struct pc_dest *d);

/* End every pcd_ensure_present() wait with -ECANCELED (teardown). */
void pcd_cancel(struct pc_dest *d);

/**
 * pcd_pause() - post-copy's connections broke: no page comes until
 * pcd_unpause().  Faulting threads simply stay asleep (their faults are
 * recorded as requested, pcd_rerequest() asks again); ensure_present
 * waits end, and new ones that would have to wait fail at once, with
 * -EAGAIN (host code such as the digest must not hang the control
 * socket); pcd_wait_complete() returns -EAGAIN.
 */
void pcd_pause(struct pc_dest *d);
void pcd_unpause(struct pc_dest *d);

/* A copy of the received bitmap (npages bits, npages/64 + 1 words;
 * malloc'd) with *npages, or NULL without memory. */
uint64_t *pcd_received_bitmap(struct pc_dest *d, uint64_t *npages);

/* Ask again for every page requested and not arrived (the requests may
 * have died with a broken connection): in runs through the request
 * callback.  Returns the pages asked for. */
uint64_t pcd_rerequest(struct pc_dest *d);

/* Has every page arrived? */
bool pcd_complete(struct pc_dest *d);
bool pcd_received(struct pc_dest *d, uint64_t gpa);

/* Block until every page arrived, pcd_cancel() or pcd_pause(); 0,
 * -ECANCELED or -EAGAIN.  _for: at most @ns, then -ETIMEDOUT. */
int pcd_wait_complete(struct pc_dest *d);
int pcd_wait_complete_for(struct pc_dest *d, uint64_t ns);

/*
 * pcd_confirmations() - the pages that arrived since the last call (the
 * first call: every page present), as runs each inside one memory slot
 * (*runs malloc'd, NULL when none).  For release-ram: the source lets go
 * of what the destination confirms.  0 or -ENOMEM.
 */
struct pcp_run;
int pcd_confirmations(struct pc_dest *d, struct pcp_run **runs, size_t *n);

void pcd_stats(struct pc_dest *d, struct pcd_stats *out);

/**
 * pcd_free() - stop the fault thread and unregister (threads still asleep
 * on a missing page wake and find a zero page: only for teardown).
 */
void pcd_free(struct pc_dest *d);

#endif
