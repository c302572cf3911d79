/*
 * auto_converge.h - when and how much to slow a guest that dirties memory
 * faster than pre-copy can send it (QEMU's "auto-converge").
 *
 * A pure decision, like convergence.c: the answer depends only on the
 * parameters, the round just measured and the state the previous call
 * returned, so every rule has a table test (tests/unit/test_auto_converge.c).
 *
 * After each round that did not end pre-copy:
 *   - the round is "too dirty" when the guest wrote more bytes during it
 *     than trigger% of what the round sent (the dirty set grows faster
 *     than the link drains it), unless the rest already fits the
 *     downtime limit (pre-copy is about to stop: slowing gains nothing);
 *   - two too-dirty rounds in a row (one alone may be a burst) throttle:
 *     first to `initial` percent, then `increment` more each time, never
 *     above `max`; a round that is not too dirty resets the count;
 *   - with `tailslow`, a step past the first is not the full increment but
 *     what should be enough by the ratio measured: the vCPU time the guest
 *     keeps is scaled by sent/dirtied (a guest only a little too fast is
 *     slowed a little more, not 10 points more), at most `increment`.
 *     QEMU has the same option; its idea, computed here our own way.
 * The throttle is never lowered during a migration (a guest that fits only
 * because it is slowed would stop fitting), and is lifted when the
 * migration ends, whatever the outcome.
 */
#ifndef FERRY_MIG_AUTO_CONVERGE_H
#define FERRY_MIG_AUTO_CONVERGE_H

#include <stdbool.h>
#include <stdint.h>

/* QEMU's defaults for the parameters of the same names. */
#define AC_INITIAL_DEFAULT    20  /* cpu-throttle-initial */
#define AC_INCREMENT_DEFAULT  10  /* cpu-throttle-increment */
#define AC_MAX_DEFAULT        99  /* max-cpu-throttle */
#define AC_TRIGGER_DEFAULT    50  /* throttle-trigger-threshold */
#define AC_TOO_DIRTY_ROUNDS   2   /* too-dirty rounds in a row to act */

struct ac_params {
	bool enabled;          /* the "auto-converge" capability */
	unsigned initial;      /* 1..99 */
	unsigned increment;    /* 1..99 */
	unsigned max;          /* 1..99 */
	unsigned trigger;      /* 1..100: percent of the bytes sent */
	bool tailslow;
};

struct ac_state {
	unsigned percent;      /* the throttle in force, 0 = none */
	unsigned too_dirty;    /* too-dirty rounds in a row */
	unsigned steps;        /* times the throttle was raised */
};

/* The round just measured. */
struct ac_round {
	uint64_t dirty_bytes;  /* written by the guest while the round ran */
	uint64_t sent_bytes;   /* what the round sent */
	bool fits;             /* the rest fits the downtime limit */
};

void ac_params_default(struct ac_params *p);
void ac_state_init(struct ac_state *s);

/**
 * ac_decide() - apply the rules above to one round.  Returns the state
 * for the next call; its percent is the throttle to put in force (the
 * same as before when nothing changes).
 */
struct ac_state ac_decide(const struct ac_params *p, const struct ac_state *s,
			  const struct ac_round *r);

#endif
