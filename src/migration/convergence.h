/*
 * convergence.h - when should pre-copy stop pushing and stop-and-copy?
 *
 * A pure decision: its answer depends only on the parameters, the round
 * just harvested and the history the previous call returned - no clock,
 * no I/O, no locks - so each rule is tested with a table of expected
 * values (tests/unit/test_convergence.c).  The rules, in order:
 *
 *   round 0                  never stop: all memory must go once
 *   fits, expect <= 10 ms    stop: "the rest is small"
 *   fits, not shrinking      stop: "... fits the downtime limit and stopped shrinking"
 *   fits, at a limit or      stop: "... fits the downtime limit (enough extra rounds)"
 *     3 rounds since it first fitted
 *   !fits, flat twice        "the dirty set stopped shrinking": by policy
 *   !fits, round limit       "round limit": by policy
 *   !fits, time limit        "time limit": by policy
 *   otherwise                go on
 *
 * "fits": the rest (dirty pages and the vCPU state estimate) would go in
 * the downtime limit at the measured bandwidth.  "shrinking": below 3/4 of
 * the previous round's dirty set.  "flat": at least 9/10 of it.  The
 * downtime limit is a ceiling, not a goal: while the rest already fits but
 * still shrinks fast, a few more rounds cost little total time and take
 * the stop-and-copy down with them.
 *
 * When the rest does not fit, the switch-over policy decides, and only it
 * may let the pause exceed the limit:
 *   CONV_WAIT (the default)  never exceed: go on pushing while the dirty
 *                            set is flat (d.waiting says why it would have
 *                            stopped), until the rest fits - the limit may
 *                            be raised meanwhile - or the migration is
 *                            cancelled; a round or time limit the user set
 *                            ends it without switching over (d.give_up)
 *   CONV_FORCE               switch over anyway (d.forced): the pause may
 *                            exceed the limit, and the report says so
 *   CONV_ABORT               give up at the first of these (d.give_up)
 * A round or time limit of 0 means none (the default: QEMU has neither).
 */
#ifndef FERRY_MIG_CONVERGENCE_H
#define FERRY_MIG_CONVERGENCE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CONV_SMALL_DOWNTIME_MS 10  /* below this, more rounds are not worth it */
#define CONV_EXTRA_ROUNDS      3   /* rounds pushed after the rest first fits */
#define CONV_PAGE_SIZE         4096ULL

/* What to do when the rest does not fit (see above). */
enum conv_switchover {
	CONV_WAIT,
	CONV_FORCE,
	CONV_ABORT,
};

struct conv_params {
	uint64_t downtime_ms;   /* the limit */
	uint64_t max_rounds;    /* 0 = no limit */
	uint64_t timeout_ns;    /* the whole pre-copy phase; 0 = no limit */
	enum conv_switchover switchover;
	uint64_t state_bytes;   /* estimate of the vCPU and device state */
};

/* What the rules remember from round to round. */
struct conv_history {
	uint64_t prev_dirty;       /* the previous round's dirty pages */
	unsigned flat_rounds;      /* rounds in a row that did not shrink */
	uint32_t first_fit_round;  /* when the rest first fitted; 0 = not yet */
};

/* The round just harvested. */
struct conv_round {
	uint32_t round;         /* 0 = the first, full round */
	uint64_t dirty_pages;   /* left to send */
	double bandwidth;       /* bytes/s measured so far; <= 0: unknown (1 GB/s) */
	uint64_t elapsed_ns;    /* since pre-copy began */
};

struct conv_decision {
	bool stop;              /* stop pushing: switch over, or give up */
	bool forced;            /* switch over although the rest does not fit */
	bool give_up;           /* stop without switching over: fail */
	bool fits;
	uint64_t expect_ms;     /* expected stop-and-copy time */
	const char *why;        /* the rule that stopped, or NULL */
	/* Going on although a rule would have stopped under "force": the
	 * rest does not fit and the policy waits; NULL otherwise. */
	const char *waiting;
	struct conv_history next; /* pass to the next call */
};

/* The history before round 0. */
void convergence_init(struct conv_history *h);

/**
 * convergence_decide() - apply the rules above to round r.
 * Returns the decision and the history for the next round.
 */
struct conv_decision convergence_decide(const struct conv_params *p,
					const struct conv_history *h,
					const struct conv_round *r);

#endif
