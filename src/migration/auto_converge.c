/* The auto-converge rules (auto_converge.h). */
#include "migration/auto_converge.h"

void ac_params_default(struct ac_params *p)
{
	*p = (struct ac_params){
		.enabled = false,
		.initial = AC_INITIAL_DEFAULT,
		.increment = AC_INCREMENT_DEFAULT,
		.max = AC_MAX_DEFAULT,
		.trigger = AC_TRIGGER_DEFAULT,
		.tailslow = false,
	};
}

void ac_state_init(struct ac_state *s)
{
	*s = (struct ac_state){ 0 };
}

/* The step past the first with tailslow: the guest keeps 100 - pct of
 * its vCPU time and dirties `dirty` bytes per round with it; to dirty no
 * more than `goal` it should keep (100 - pct) * goal / dirty. */
static unsigned tail_step(unsigned pct, unsigned increment, uint64_t dirty,
			  uint64_t goal)
{
	unsigned keep = 100 - pct;
	unsigned want = (unsigned)((uint64_t)keep * goal / dirty);
	unsigned step = keep - want;   /* want < keep: dirty > goal */
	if (step > increment)
		step = increment;
	return step ? step : 1;
}

struct ac_state ac_decide(const struct ac_params *p, const struct ac_state *s,
			  const struct ac_round *r)
{
	struct ac_state n = *s;

	if (!p->enabled)
		return n;
	/* In bytes of 1/100: no overflow below 2^57 bytes sent. */
	uint64_t goal = r->sent_bytes / 100 * p->trigger +
			r->sent_bytes % 100 * p->trigger / 100;
	if (r->dirty_bytes <= goal || r->fits) {
		n.too_dirty = 0;
		return n;
	}
	if (++n.too_dirty < AC_TOO_DIRTY_ROUNDS)
		return n;
	n.too_dirty = 0;
	unsigned max = p->max < 100 ? p->max : 99;
	unsigned next;
	if (!s->percent)
		next = p->initial;
	else if (p->tailslow && goal)
		next = s->percent + tail_step(s->percent, p->increment,
					      r->dirty_bytes, goal);
	else
		next = s->percent + p->increment;
	if (next > max)
		next = max;
	if (next > n.percent) {
		n.percent = next;
		n.steps++;
	}
	return n;
}
