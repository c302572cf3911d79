/* The stop rule of pre-copy (convergence.h): pure, table-tested. */
#include "migration/convergence.h"

void convergence_init(struct conv_history *h)
{
	h->prev_dirty = UINT64_MAX;
	h->flat_rounds = 0;
	h->first_fit_round = 0;
}

struct conv_decision convergence_decide(const struct conv_params *p,
					const struct conv_history *h,
					const struct conv_round *r)
{
	struct conv_decision d = { .next = *h };
	double bw = r->bandwidth > 0 ? r->bandwidth : 1e9;
	uint64_t bytes = r->dirty_pages * CONV_PAGE_SIZE + p->state_bytes;
	uint64_t dirty = r->dirty_pages, prev = h->prev_dirty;

	d.expect_ms = (uint64_t)(bytes * 1000.0 / bw) + 1;
	d.fits = d.expect_ms <= p->downtime_ms;
	d.next.prev_dirty = dirty;
	if (r->round == 0)
		return d; /* everything goes once, whatever the numbers */

	bool still_shrinking = dirty < prev * 3 / 4;
	bool round_limit = p->max_rounds && r->round >= p->max_rounds;
	bool time_limit = p->timeout_ns && r->elapsed_ns >= p->timeout_ns;
	bool at_limit = round_limit || time_limit;
	/* Each extra round costs about the downtime it saves in total time;
	 * a few pay, a long tail does not. */
	if (d.fits && !d.next.first_fit_round)
		d.next.first_fit_round = r->round;
	bool extra_spent = d.fits &&
			   r->round - d.next.first_fit_round >= CONV_EXTRA_ROUNDS;

	if (dirty >= prev * 9 / 10)
		d.next.flat_rounds++;
	else
		d.next.flat_rounds = 0;

	if (d.fits) {
		if (d.expect_ms <= CONV_SMALL_DOWNTIME_MS)
			d.why = "the rest is small";
		else if (!still_shrinking)
			d.why = "the rest fits the downtime limit and stopped shrinking";
		else if (at_limit || extra_spent)
			d.why = "the rest fits the downtime limit (enough extra rounds)";
		d.stop = d.why != NULL;
		return d;
	}

	/* The rest does not fit: only the policy may let the pause run over. */
	const char *flat = d.next.flat_rounds >= 2 ? "the dirty set stopped shrinking" : NULL;
	const char *limit = round_limit ? "round limit" : time_limit ? "time limit" : NULL;
	switch (p->switchover) {
	case CONV_FORCE:
		d.why = flat ? flat : limit;
		d.forced = d.why != NULL;
		break;
	case CONV_ABORT:
		d.why = flat ? flat : limit;
		d.give_up = d.why != NULL;
		break;
	case CONV_WAIT:
		/* A limit the user set ends the wait; a flat dirty set does
		 * not: the limit may be raised, or the guest calm down. */
		d.why = limit;
		d.give_up = limit != NULL;
		d.waiting = limit ? NULL : flat;
		break;
	}
	d.stop = d.why != NULL;
	return d;
}
