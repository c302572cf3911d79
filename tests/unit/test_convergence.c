/*
 * The pre-copy stop rule (migration/convergence.h), rule by rule, with
 * expected values.  Numbers: 4096-byte pages, 128 KiB of state, 1 GB/s
 * unless a row says otherwise; expect_ms = (dirty * 4096 + 131072) bytes
 * at the bandwidth, in whole ms, + 1.
 */
#include <criterion/criterion.h>
#include <string.h>

#include "migration/convergence.h"

#define S 1000000000ULL
#define NOPE NULL

static const struct conv_params P = {
	.downtime_ms = 300, .max_rounds = 30, .timeout_ns = 600 * S,
	.state_bytes = 131072,
};

struct row {
	const char *what;
	/* in */
	struct conv_history h;
	uint32_t round;
	uint64_t dirty;
	double bw;
	uint64_t elapsed_ns;
	/* expected */
	bool stop, forced;
	uint64_t expect_ms;
	const char *why;
	unsigned flat;
	uint32_t first_fit;
};

#define H(prev, flat, ff) { .prev_dirty = (prev), .flat_rounds = (flat), .first_fit_round = (ff) }

static const struct row rows[] = {
	/* round 0 always goes on, whatever the numbers say */
	{ "round 0, tiny", H(UINT64_MAX, 0, 0), 0, 10, 1e9, 0,
	  false, false, 1, NOPE, 0, 0 },
	{ "round 0, past every limit", H(UINT64_MAX, 5, 0), 0, 100000, 1e9, 700 * S,
	  false, false, 410, NOPE, 5, 0 },
	/* fits and small */
	{ "small", H(100000, 0, 0), 1, 1000, 1e9, S,
	  true, false, 5, "the rest is small", 0, 1 },
	{ "small beats not shrinking", H(1000, 0, 0), 1, 1000, 1e9, S,
	  true, false, 5, "the rest is small", 1, 1 },
	{ "small: exactly 10 ms", H(100000, 0, 0), 1, 2167, 1e9, S,
	  true, false, 10, "the rest is small", 0, 1 },
	{ "not small: 11 ms, shrinking, first fit: go on", H(100000, 0, 0), 1, 2410, 1e9, S,
	  false, false, 11, NOPE, 0, 1 },
	/* fits, not small */
	{ "fits, stopped shrinking", H(10000, 0, 0), 2, 9000, 1e9, S,
	  true, false, 37, "the rest fits the downtime limit and stopped shrinking", 1, 2 },
	{ "fits, exactly 3/4 is not shrinking", H(12000, 0, 0), 2, 9000, 1e9, S,
	  true, false, 37, "the rest fits the downtime limit and stopped shrinking", 0, 2 },
	{ "fits, just under 3/4 shrinks: go on", H(12000, 0, 0), 2, 8999, 1e9, S,
	  false, false, 37, NOPE, 0, 2 },
	{ "fits, shrinking, 2 rounds after the first fit: go on", H(20000, 0, 2), 4, 10000, 1e9, S,
	  false, false, 42, NOPE, 0, 2 },
	{ "fits, shrinking, 3 extra rounds spent", H(20000, 0, 2), 5, 10000, 1e9, S,
	  true, false, 42, "the rest fits the downtime limit (enough extra rounds)", 0, 2 },
	{ "fits, shrinking, round limit", H(20000, 0, 29), 30, 10000, 1e9, S,
	  true, false, 42, "the rest fits the downtime limit (enough extra rounds)", 0, 29 },
	{ "fits, shrinking, time limit", H(20000, 0, 0), 2, 10000, 1e9, 600 * S,
	  true, false, 42, "the rest fits the downtime limit (enough extra rounds)", 0, 2 },
	{ "fits exactly at the limit", H(200000, 0, 0), 1, 73000, 1e9, S,
	  false, false, 300, NOPE, 0, 1 },
	/* does not fit */
	{ "no fit: one flat round, go on", H(100000, 0, 0), 3, 100000, 1e9, S,
	  false, false, 410, NOPE, 1, 0 },
	{ "no fit: second flat round", H(100000, 1, 0), 4, 100000, 1e9, S,
	  true, true, 410, "the dirty set stopped shrinking", 2, 0 },
	{ "no fit: exactly 9/10 is flat", H(100000, 1, 0), 4, 90000, 1e9, S,
	  true, true, 369, "the dirty set stopped shrinking", 2, 0 },
	{ "no fit: under 9/10 resets flat", H(100000, 1, 0), 4, 89999, 1e9, S,
	  false, false, 369, NOPE, 0, 0 },
	{ "no fit: round limit", H(200000, 0, 0), 30, 100000, 1e9, S,
	  true, true, 410, "round limit", 0, 0 },
	{ "no fit: past the round limit", H(200000, 0, 0), 31, 100000, 1e9, S,
	  true, true, 410, "round limit", 0, 0 },
	{ "no fit: time limit", H(200000, 0, 0), 3, 100000, 1e9, 600 * S,
	  true, true, 410, "time limit", 0, 0 },
	{ "no fit: flat beats the round limit", H(100000, 1, 0), 30, 100000, 1e9, S,
	  true, true, 410, "the dirty set stopped shrinking", 2, 0 },
	/* bandwidth */
	{ "unknown bandwidth counts as 1 GB/s", H(100000, 0, 0), 1, 1000, 0, S,
	  true, false, 5, "the rest is small", 0, 1 },
	{ "slow link: 1000 pages at 1 MB/s do not fit", H(100000, 0, 0), 1, 1000, 1e6, S,
	  false, false, 4228, NOPE, 0, 0 },
	/* a fit is remembered from its first round on */
	{ "first fit is kept", H(20000, 0, 1), 2, 10000, 1e9, S,
	  false, false, 42, NOPE, 0, 1 },
};

Test(convergence, rules_table)
{
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		const struct row *w = &rows[i];
		struct conv_round r = { .round = w->round, .dirty_pages = w->dirty,
					.bandwidth = w->bw, .elapsed_ns = w->elapsed_ns };
		struct conv_decision d = convergence_decide(&P, &w->h, &r);
		cr_expect_eq(d.stop, w->stop, "%s: stop %d", w->what, d.stop);
		cr_expect_eq(d.forced, w->forced, "%s: forced %d", w->what, d.forced);
		cr_expect_eq(d.expect_ms, w->expect_ms, "%s: expect %llu ms", w->what,
			     (unsigned long long)d.expect_ms);
		if (w->why)
			cr_expect(d.why && !strcmp(d.why, w->why), "%s: why '%s'",
				  w->what, d.why ? d.why : "(none)");
		else
			cr_expect_null(d.why, "%s: why '%s'", w->what, d.why);
		cr_expect_eq(d.next.prev_dirty, w->dirty, "%s: prev", w->what);
		cr_expect_eq(d.next.flat_rounds, w->flat, "%s: flat %u", w->what,
			     d.next.flat_rounds);
		cr_expect_eq(d.next.first_fit_round, w->first_fit, "%s: first fit %u",
			     w->what, d.next.first_fit_round);
	}
}

/* The same inputs give the same answer: nothing hidden is consulted. */
Test(convergence, pure)
{
	struct conv_history h = H(20000, 1, 2);
	struct conv_round r = { .round = 4, .dirty_pages = 10000, .bandwidth = 1e9,
				.elapsed_ns = S };
	struct conv_decision a = convergence_decide(&P, &h, &r);
	struct conv_decision b = convergence_decide(&P, &h, &r);
	cr_assert(a.stop == b.stop && a.forced == b.forced && a.fits == b.fits &&
		  a.expect_ms == b.expect_ms && a.why == b.why &&
		  a.next.prev_dirty == b.next.prev_dirty &&
		  a.next.flat_rounds == b.next.flat_rounds &&
		  a.next.first_fit_round == b.next.first_fit_round);
	cr_assert_eq(h.flat_rounds, 1, "the history passed in is not changed");
}

/* A run of rounds as precopy feeds them: a guest whose dirty set halves
 * each round stops once the rest fits and three extra rounds are spent;
 * one that never shrinks stops forced after two flat rounds. */
Test(convergence, sequences)
{
	struct conv_history h;
	convergence_init(&h);
	cr_assert_eq(h.prev_dirty, UINT64_MAX);
	uint64_t dirty = 1 << 20;
	uint32_t round = 0;
	struct conv_decision d;
	for (;; round++, dirty /= 2) {
		struct conv_round r = { .round = round, .dirty_pages = dirty,
					.bandwidth = 1e9, .elapsed_ns = round * S };
		d = convergence_decide(&P, &h, &r);
		h = d.next;
		if (d.stop)
			break;
		cr_assert_lt(round, 30);
	}
	/* 1M pages halving: fits (<= 300 ms) first at 65536 pages (round 4,
	 * 269 ms); rounds 5 and 6 still > 10 ms; round 7 (8192 pages, 34 ms)
	 * is the third extra round. */
	cr_assert_eq(h.first_fit_round, 4);
	cr_assert_eq(round, 7);
	cr_assert_str_eq(d.why, "the rest fits the downtime limit (enough extra rounds)");
	cr_assert_not(d.forced);

	convergence_init(&h);
	for (round = 0;; round++) {
		struct conv_round r = { .round = round, .dirty_pages = 500000,
					.bandwidth = 1e9, .elapsed_ns = round * S };
		d = convergence_decide(&P, &h, &r);
		h = d.next;
		if (d.stop)
			break;
	}
	cr_assert_eq(round, 2, "round 0 never stops; rounds 1 and 2 are flat");
	cr_assert(d.forced);
	cr_assert_str_eq(d.why, "the dirty set stopped shrinking");
}
