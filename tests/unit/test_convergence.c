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

/* The rows below were written for the "force" policy with limits set;
 * the policy and limit rows further down vary them. */
static const struct conv_params P = {
	.downtime_ms = 300, .max_rounds = 30, .timeout_ns = 600 * S,
	.switchover = CONV_FORCE, .state_bytes = 131072,
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

/*
 * The switch-over policy, when the rest does not fit.  Each row runs under
 * the parameters it names: the defaults (wait, no limits), wait with the
 * user's limits, force and abort.
 */
static const struct conv_params DEFAULTS = {   /* mig_params_default */
	.downtime_ms = 300, .max_rounds = 0, .timeout_ns = 0,
	.switchover = CONV_WAIT, .state_bytes = 131072,
};
static const struct conv_params RAISED = {   /* defaults, limit raised to 500 */
	.downtime_ms = 500, .max_rounds = 0, .timeout_ns = 0,
	.switchover = CONV_WAIT, .state_bytes = 131072,
};
static const struct conv_params WAIT_LIMITS = {
	.downtime_ms = 300, .max_rounds = 30, .timeout_ns = 600 * S,
	.switchover = CONV_WAIT, .state_bytes = 131072,
};
static const struct conv_params ABORT = {
	.downtime_ms = 300, .max_rounds = 30, .timeout_ns = 600 * S,
	.switchover = CONV_ABORT, .state_bytes = 131072,
};

struct policy_row {
	const char *what;
	const struct conv_params *p;
	struct conv_history h;
	uint32_t round;
	uint64_t dirty;
	double bw;
	uint64_t elapsed_ns;
	/* expected */
	bool stop, forced, give_up;
	const char *why, *waiting;
};

static const struct policy_row policy_rows[] = {
	/* The defaults never switch over while the rest does not fit. */
	{ "defaults: flat twice, no fit: wait", &DEFAULTS, H(100000, 1, 0), 4, 100000, 1e9, S,
	  false, false, false, NOPE, "the dirty set stopped shrinking" },
	{ "defaults: flat for 1000 rounds: still wait", &DEFAULTS, H(100000, 999, 0), 1000, 100000, 1e9, S,
	  false, false, false, NOPE, "the dirty set stopped shrinking" },
	{ "defaults: round 10000, a day in: no limit, wait", &DEFAULTS, H(100000, 5, 0), 10000, 100000, 1e9, 86400 * S,
	  false, false, false, NOPE, "the dirty set stopped shrinking" },
	{ "defaults: the issue's case, 8 MiB/s, 33 MB dirty: wait", &DEFAULTS, H(8200, 3, 0), 5, 8000, 8388608, 20 * S,
	  false, false, false, NOPE, "the dirty set stopped shrinking" },
	{ "defaults: no fit, shrinking: go on, not waiting", &DEFAULTS, H(200000, 0, 0), 2, 100000, 1e9, S,
	  false, false, false, NOPE, NOPE },
	{ "defaults: the limit raised to 500 ms, the rest (410) fits now: switch over", &RAISED, H(100000, 7, 0), 9, 100000, 1e9, S,
	  true, false, false, "the rest fits the downtime limit and stopped shrinking", NOPE },
	{ "defaults: fits and small: switch over", &DEFAULTS, H(100000, 0, 0), 1, 1000, 1e9, S,
	  true, false, false, "the rest is small", NOPE },
	{ "defaults: fits, shrinking, 3 extra rounds: switch over", &DEFAULTS, H(20000, 0, 2), 5, 10000, 1e9, S,
	  true, false, false, "the rest fits the downtime limit (enough extra rounds)", NOPE },
	{ "defaults: fits, shrinking, round 40: no limit to hit, go on", &DEFAULTS, H(20000, 0, 39), 40, 10000, 1e9, S,
	  false, false, false, NOPE, NOPE },
	/* wait with the user's limits: a limit fails, never forces */
	{ "wait: round limit, no fit: give up", &WAIT_LIMITS, H(200000, 0, 0), 30, 100000, 1e9, S,
	  true, false, true, "round limit", NOPE },
	{ "wait: time limit, no fit: give up", &WAIT_LIMITS, H(200000, 0, 0), 3, 100000, 1e9, 600 * S,
	  true, false, true, "time limit", NOPE },
	{ "wait: flat twice and round limit: the limit gives up", &WAIT_LIMITS, H(100000, 1, 0), 30, 100000, 1e9, S,
	  true, false, true, "round limit", NOPE },
	{ "wait: round limit, fits: switch over", &WAIT_LIMITS, H(20000, 0, 29), 30, 10000, 1e9, S,
	  true, false, false, "the rest fits the downtime limit (enough extra rounds)", NOPE },
	{ "wait: flat twice under the limits: wait", &WAIT_LIMITS, H(100000, 1, 0), 4, 100000, 1e9, S,
	  false, false, false, NOPE, "the dirty set stopped shrinking" },
	/* force: as before */
	{ "force: flat twice: forced", &P, H(100000, 1, 0), 4, 100000, 1e9, S,
	  true, true, false, "the dirty set stopped shrinking", NOPE },
	{ "force: round limit: forced", &P, H(200000, 0, 0), 30, 100000, 1e9, S,
	  true, true, false, "round limit", NOPE },
	/* abort: fails at the first sign */
	{ "abort: flat twice: give up", &ABORT, H(100000, 1, 0), 4, 100000, 1e9, S,
	  true, false, true, "the dirty set stopped shrinking", NOPE },
	{ "abort: time limit: give up", &ABORT, H(200000, 0, 0), 3, 100000, 1e9, 600 * S,
	  true, false, true, "time limit", NOPE },
	{ "abort: fits and small: switch over", &ABORT, H(100000, 0, 0), 1, 1000, 1e9, S,
	  true, false, false, "the rest is small", NOPE },
	{ "abort: one flat round: go on", &ABORT, H(100000, 0, 0), 3, 100000, 1e9, S,
	  false, false, false, NOPE, NOPE },
};

Test(convergence, policy_table)
{
	for (size_t i = 0; i < sizeof(policy_rows) / sizeof(policy_rows[0]); i++) {
		const struct policy_row *w = &policy_rows[i];
		struct conv_round r = { .round = w->round, .dirty_pages = w->dirty,
					.bandwidth = w->bw, .elapsed_ns = w->elapsed_ns };
		struct conv_decision d = convergence_decide(w->p, &w->h, &r);
		cr_expect_eq(d.stop, w->stop, "%s: stop %d", w->what, d.stop);
		cr_expect_eq(d.forced, w->forced, "%s: forced %d", w->what, d.forced);
		cr_expect_eq(d.give_up, w->give_up, "%s: give up %d", w->what, d.give_up);
		if (w->why)
			cr_expect(d.why && !strcmp(d.why, w->why), "%s: why '%s'",
				  w->what, d.why ? d.why : "(none)");
		else
			cr_expect_null(d.why, "%s: why '%s'", w->what, d.why);
		if (w->waiting)
			cr_expect(d.waiting && !strcmp(d.waiting, w->waiting),
				  "%s: waiting '%s'", w->what,
				  d.waiting ? d.waiting : "(none)");
		else
			cr_expect_null(d.waiting, "%s: waiting '%s'", w->what, d.waiting);
		/* Only "force" may switch over with a rest that does not fit. */
		if (d.stop && !d.give_up && !d.fits)
			cr_expect_eq(w->p->switchover, CONV_FORCE,
				     "%s: switched over without fitting", w->what);
	}
}

/*
 * A guest that never lets pre-copy converge, under the defaults: whatever
 * the number of rounds and time, no decision switches over while the rest
 * does not fit; once the downtime limit is raised to what the rest needs,
 * the next decision switches over.
 */
Test(convergence, defaults_never_exceed_the_limit)
{
	struct conv_params p = DEFAULTS;
	struct conv_history h;
	struct conv_decision d;
	convergence_init(&h);
	for (uint32_t round = 0; round < 5000; round++) {
		struct conv_round r = { .round = round, .dirty_pages = 500000 + round % 7,
					.bandwidth = 8388608, .elapsed_ns = round * 10 * S };
		d = convergence_decide(&p, &h, &r);
		h = d.next;
		cr_assert_not(d.stop, "round %u stopped (%s) with the rest at %llu ms "
			      "against 300 ms", round, d.why,
			      (unsigned long long)d.expect_ms);
		cr_assert(round < 3 || d.waiting, "round %u: not saying it waits", round);
	}
	cr_assert_gt(d.expect_ms, 200000);
	p.downtime_ms = d.expect_ms + 1000; /* migrate-set-parameters, live */
	struct conv_round r = { .round = 5000, .dirty_pages = 500000,
				.bandwidth = 8388608, .elapsed_ns = 50000 * S };
	d = convergence_decide(&p, &h, &r);
	cr_assert(d.stop && !d.forced && !d.give_up && d.fits,
		  "the raised limit did not let it switch over: %s",
		  d.why ? d.why : "(none)");
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
