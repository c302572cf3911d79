/*
 * postcopy_source.h - the source's side of post-copy: a page server that
 * answers the destination's PAGE_REQUESTs from guest memory on the
 * page-request connection, and a background push of every other page on
 * its own connection, in the order the pre-paging policy (prepage.h)
 * chooses: each request moves the push to the neighbourhood of the fault.
 *
 *   request thread:  PAGE_REQUEST in  ->  PAGE (answer) out, same connection
 *   push thread:     PAGE ... PAGE, PUSH_END            on the push connection
 *
 * A request for a page the push took already is a pre-paging hit.  It is
 * answered on the request connection only if that push has not left this
 * host yet (the socket still holds it); otherwise it is at the
 * destination's socket already (whose queue is kept short) or placed,
 * and is not sent twice.  After a recovery only the new push counts.
 *
 * The guest must stay still on the source (it is paused for good once
 * post-copy starts); pages are read from mem directly.
 */
#ifndef FERRY_MIG_POSTCOPY_SOURCE_H
#define FERRY_MIG_POSTCOPY_SOURCE_H

#include <stdbool.h>
#include <stdint.h>

#include "io/channel.h"
#include "migration/postcopy_proto.h"
#include "migration/prepage.h"
#include "vmm/memory.h"

struct pc_source;

struct pcs_stats {
	uint64_t pages;          /* guest pages in all */
	uint64_t pushed;         /* sent by the push */
	uint64_t requested;      /* pages asked for */
	uint64_t prepage_hits;   /* asked for, but already pushed */
	uint64_t not_resent;     /* of those, delivered already: not sent again */
	uint64_t zero_pages;     /* sent without data (both connections) */
	uint64_t bytes_answers;  /* bytes out on the request connection */
	uint64_t bytes_push;     /* bytes out on the push connection */
	uint64_t present;        /* already at the destination (pcs_skip) */
	uint64_t named_zero;     /* of those, named zero (pcs_zero_runs) */
	uint64_t zero_runs;      /* runs in PUSH_ZERO records, */
	uint64_t zero_records;   /* in so many records */
	uint64_t marks;          /* PUSH_MARK records */
	uint64_t released;       /* confirmed by the destination, dropped here */
	uint64_t window;         /* the policy's window now */
	uint64_t widened, narrowed;
};

/**
 * pcs_new() - a page server for mem with push policy parameters prm (NULL:
 * defaults).  Every page counts as unsent.  Returns 0 and *out, or a
 * negative errno with a message.
 */
int pcs_new(const struct guest_memory *mem, const struct prepage_params *prm,
	    struct pc_source **out, char *err);

/**
 * pcs_start() - serve requests read from req (answers go back on req) and
 * push on push (not owned; both connected, preambles already exchanged).
 * Returns 0 or a negative errno with a message.
 */
int pcs_start(struct pc_source *s, struct channel *req, struct channel *push,
	      char *err);

/**
 * pcs_wait() - wait for the end: the push has sent every page and the
 * destination closed the request connection.  Returns 0, or the first
 * error with its message (a bad request, a broken connection before the
 * destination had everything, pcs_stop()).
 */
int pcs_wait(struct pc_source *s, char *err);

/**
 * pcs_skip() - the destination holds [gpa, gpa + npages pages) already (a
 * hybrid's pre-copy sent them): neither push nor count them.  Before
 * pcs_start; the range must lie inside one slot.
 */
void pcs_skip(struct pc_source *s, uint64_t gpa, uint64_t npages);

/* Has post-copy ended (every page out and PAGES_DONE in, or an error)?
 * pcs_wait() then returns at once. */
bool pcs_finished(struct pc_source *s);

/* These runs are zero here (never written): they count as present at
 * the destination, and the push names them there (PUSH_ZERO) before any
 * further page, even while held.  Once, for a source that listed all of
 * RAM missing.  *named: how many of their pages had not been sent yet.
 * 0 or -ENOMEM. */
int pcs_zero_runs(struct pc_source *s, const struct pcp_run *runs, size_t n,
		  uint64_t *named);

/* The push takes these pages (guest-physical addresses; those already
 * sent or present are passed over) before any other, in this order, and
 * even while it is held (pcs_hold_push); at most PCS_FIRST_MAX.  Before
 * pcs_start. */
#define PCS_FIRST_MAX 512
void pcs_push_first(struct pc_source *s, const uint64_t *gpas, size_t n);

/* After the pages pcs_push_first has taken so far, the push sends
 * PUSH_MARK (the destination may wait for them).  Once, before
 * pcs_start. */
void pcs_first_mark(struct pc_source *s);

/* Hold the push back (before pcs_start: it starts held) or let it go:
 * only requests are served meanwhile.  For measuring the request path
 * alone, and for a migration that wants the first faults served first. */
void pcs_hold_push(struct pc_source *s, bool hold);

/**
 * pcs_restart() - post-copy recovery: after pcs_wait() failed with the
 * connections broken, serve and push again on new ones (not owned;
 * preambles done, the destination's RECV_BITMAP already read off req).
 * have (memory_npages bits): the pages the destination holds; every
 * other page counts as unsent and is pushed again (what went out before
 * the break may have been lost).  Returns 0 or a negative errno with a
 * message.
 */
int pcs_restart(struct pc_source *s, struct channel *req, struct channel *push,
		const uint64_t *have, char *err);

/* Tests: shut both connections down (a cut link) once the push has sent
 * pages pages, once in the server's life. */
void pcs_cut_after(struct pc_source *s, uint64_t pages);

/* End both threads now (shuts the channels down). */
void pcs_stop(struct pc_source *s);

/* release-ram: drop each page the destination confirms (PAGES_HAVE),
 * and all of RAM at PAGES_DONE (postcopy_release.h).  Before pcs_start.
 * 0 or -errno with a message. */
int pcs_release_ram(struct pc_source *s, char *err);

void pcs_stats(struct pc_source *s, struct pcs_stats *out);
void pcs_free(struct pc_source *s);

#endif
