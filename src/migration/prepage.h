/*
 * prepage.h - the order in which a post-copy source pushes pages: a pure
 * policy (no threads, no I/O), so each rule is tested with tables.
 *
 * The background push sweeps memory from the lowest page up.  A fault at
 * page P (the destination asked for P) starts a "bubble" around P, as in
 * Hines & Gopalan's pre-paging (VEE 2009): the push continues with P+1,
 * P-1, P+2, P-2, ... spreading outward in both directions up to `window`
 * pages on each side, then returns to the sweep where it left off.  The
 * window adapts to the locality the faults show:
 *   - a fault within `window` pages of the previous fault (the bubble was
 *     near the mark) doubles it, up to wmax;
 *   - a fault further away halves it, down to wmin (the neighbourhood did
 *     not predict the next fault: spend less of the push on it).
 * Two more rules follow the faults' direction:
 *   - a fault within `window` above the previous one (a reader moving
 *     up) makes the bubble push upwards only; below, downwards only; a
 *     far fault spreads both ways again;
 *   - a fault on a page the bubble already covers (pushed, still in
 *     flight) continues the bubble where its frontiers are instead of
 *     starting over at the fault: its reach becomes fault +- window.
 * Pages already sent (pushed, or answered on request) are skipped
 * everywhere; every page is handed out exactly once.
 */
#ifndef FERRY_MIG_PREPAGE_H
#define FERRY_MIG_PREPAGE_H

#include <stdbool.h>
#include <stdint.h>

struct prepage_params {
	uint64_t window;   /* initial reach on each side of a fault (pages) */
	uint64_t wmin, wmax;
};

#define PREPAGE_WINDOW_DEFAULT 64
#define PREPAGE_WMIN_DEFAULT   8
#define PREPAGE_WMAX_DEFAULT   8192  /* 32 MiB each side */

struct prepage {
	uint64_t npages;
	uint64_t *sent;      /* bitmap: handed out or answered */
	uint64_t nsent;
	uint64_t sweep;      /* no page below it is unsent */
	struct prepage_params prm;
	uint64_t window;
	/* the bubble: next candidates lo (downwards) and hi (upwards), each
	 * side ending at its limit */
	bool bubble;
	int64_t lo, hi, lim_lo, lim_hi;
	int dir;             /* +1 upwards only, -1 downwards only, 0 both */
	bool back;           /* both ways: the lower side comes next */
	bool have_last;
	uint64_t last_fault;
	/* counters */
	uint64_t faults, widened, narrowed, bubble_pages;
};

void prepage_params_default(struct prepage_params *p);

/**
 * prepage_init() - a policy for npages pages, none sent.  prm NULL means
 * the defaults; windows are clamped so that wmin <= window <= wmax and
 * wmin >= 1.  Returns 0 or -ENOMEM.
 */
int prepage_init(struct prepage *p, uint64_t npages,
		 const struct prepage_params *prm);
void prepage_free(struct prepage *p);

/**
 * prepage_restart() - post-copy recovery: exactly the pages set in have
 * (a bitmap of npages bits: what the destination holds) count as sent,
 * every other page is unsent again (whatever was sent before the break
 * may have been lost on the way), and the push starts over with a sweep
 * from the lowest page.  The window and counters stay.
 */
void prepage_restart(struct prepage *p, const uint64_t *have);

/**
 * prepage_fault() - the destination faulted on page (asked for it): adapt
 * the window and start a bubble there.  Out-of-range pages are ignored.
 */
void prepage_fault(struct prepage *p, uint64_t page);

/**
 * prepage_mark_sent() - page went out by another way (an answer to a
 * request).  Returns true if it had been sent already (a pre-paging
 * hit: the push was ahead of the fault).
 */
bool prepage_mark_sent(struct prepage *p, uint64_t page);
/* The same for pages [first, first+n) (clipped to the policy's pages), a
 * word at a time; returns how many were not sent before. */
uint64_t prepage_mark_sent_range(struct prepage *p, uint64_t first, uint64_t n);

/**
 * prepage_next() - the next page to push, marked sent.  Returns false
 * when every page has been sent.
 */
bool prepage_next(struct prepage *p, uint64_t *page);

static inline bool prepage_is_sent(const struct prepage *p, uint64_t page)
{
	return (p->sent[page / 64] >> (page % 64)) & 1;
}

static inline bool prepage_done(const struct prepage *p)
{
	return p->nsent == p->npages;
}

#endif
