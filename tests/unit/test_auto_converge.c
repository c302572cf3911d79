/*
 * The auto-converge rules (migration/auto_converge.h), one by one, with
 * expected values: a round is "too dirty" when it dirtied more than
 * trigger% of what it sent; two in a row raise the throttle.
 */
#include <criterion/criterion.h>

#include "migration/auto_converge.h"

#define MB (1ULL << 20)

static struct ac_params on(void)
{
	struct ac_params p;
	ac_params_default(&p);
	p.enabled = true;
	return p;
}

static struct ac_state run(const struct ac_params *p, struct ac_state s,
			   uint64_t dirty, uint64_t sent)
{
	const struct ac_round r = { .dirty_bytes = dirty, .sent_bytes = sent };
	return ac_decide(p, &s, &r);
}

Test(auto_converge, defaults_are_qemus)
{
	struct ac_params p;
	ac_params_default(&p);
	cr_assert(!p.enabled);
	cr_assert_eq(p.initial, 20);
	cr_assert_eq(p.increment, 10);
	cr_assert_eq(p.max, 99);
	cr_assert_eq(p.trigger, 50);
	cr_assert(!p.tailslow);
}

Test(auto_converge, off_never_throttles)
{
	struct ac_params p;
	ac_params_default(&p);
	struct ac_state s;
	ac_state_init(&s);
	for (int i = 0; i < 10; i++)
		s = run(&p, s, 1000 * MB, 10 * MB);
	cr_assert_eq(s.percent, 0);
	cr_assert_eq(s.steps, 0);
}

Test(auto_converge, one_dirty_round_is_a_burst_two_throttle)
{
	struct ac_params p = on();
	struct ac_state s;
	ac_state_init(&s);
	s = run(&p, s, 60 * MB, 100 * MB);   /* 60% > 50%: too dirty */
	cr_assert_eq(s.percent, 0);
	cr_assert_eq(s.too_dirty, 1);
	s = run(&p, s, 60 * MB, 100 * MB);
	cr_assert_eq(s.percent, 20, "initial");
	cr_assert_eq(s.too_dirty, 0);
	cr_assert_eq(s.steps, 1);
}

Test(auto_converge, at_the_threshold_is_not_too_dirty)
{
	struct ac_params p = on();
	struct ac_state s;
	ac_state_init(&s);
	for (int i = 0; i < 5; i++)
		s = run(&p, s, 50 * MB, 100 * MB);   /* exactly 50% */
	cr_assert_eq(s.percent, 0);
	cr_assert_eq(s.too_dirty, 0);
}

Test(auto_converge, a_calm_round_resets_the_count)
{
	struct ac_params p = on();
	struct ac_state s;
	ac_state_init(&s);
	s = run(&p, s, 90 * MB, 100 * MB);
	s = run(&p, s, 10 * MB, 100 * MB);
	s = run(&p, s, 90 * MB, 100 * MB);
	cr_assert_eq(s.percent, 0, "never two too-dirty rounds in a row");
	cr_assert_eq(s.too_dirty, 1);
}

Test(auto_converge, steps_by_the_increment_up_to_the_max)
{
	struct ac_params p = on();
	p.max = 45;
	struct ac_state s;
	ac_state_init(&s);
	const unsigned want[] = { 20, 30, 40, 45, 45 };
	for (unsigned i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
		s = run(&p, s, 200 * MB, 100 * MB);
		s = run(&p, s, 200 * MB, 100 * MB);
		cr_assert_eq(s.percent, want[i], "step %u: %u", i, s.percent);
	}
	cr_assert_eq(s.steps, 4, "a step at the max changes nothing");
}

Test(auto_converge, never_above_99_whatever_the_max)
{
	struct ac_params p = on();
	p.initial = 95;
	p.max = 100;
	struct ac_state s;
	ac_state_init(&s);
	for (int i = 0; i < 6; i++)
		s = run(&p, s, 200 * MB, 100 * MB);
	cr_assert_eq(s.percent, 99);
}

Test(auto_converge, never_lowered_during_a_migration)
{
	struct ac_params p = on();
	struct ac_state s;
	ac_state_init(&s);
	s = run(&p, s, 200 * MB, 100 * MB);
	s = run(&p, s, 200 * MB, 100 * MB);
	cr_assert_eq(s.percent, 20);
	for (int i = 0; i < 5; i++)
		s = run(&p, s, 0, 100 * MB);
	cr_assert_eq(s.percent, 20);
}

Test(auto_converge, a_rest_that_fits_is_never_throttled)
{
	struct ac_params p = on();
	struct ac_state s;
	ac_state_init(&s);
	const struct ac_round fits = { .dirty_bytes = 90 * MB,
				       .sent_bytes = 100 * MB, .fits = true };
	for (int i = 0; i < 4; i++)
		s = ac_decide(&p, &s, &fits);
	cr_assert_eq(s.percent, 0);
	cr_assert_eq(s.too_dirty, 0, "and it resets the count");
}

Test(auto_converge, the_trigger_is_a_parameter)
{
	struct ac_params p = on();
	p.trigger = 100;
	struct ac_state s;
	ac_state_init(&s);
	s = run(&p, s, 90 * MB, 100 * MB);
	s = run(&p, s, 90 * MB, 100 * MB);
	cr_assert_eq(s.percent, 0, "90%% is below a trigger of 100%%");
	s = run(&p, s, 101 * MB, 100 * MB);
	s = run(&p, s, 101 * MB, 100 * MB);
	cr_assert_eq(s.percent, 20);
}

Test(auto_converge, nothing_sent_and_anything_dirtied_is_too_dirty)
{
	struct ac_params p = on();
	struct ac_state s;
	ac_state_init(&s);
	s = run(&p, s, 4096, 0);
	s = run(&p, s, 4096, 0);
	cr_assert_eq(s.percent, 20);
	ac_state_init(&s);
	s = run(&p, s, 0, 0);
	s = run(&p, s, 0, 0);
	cr_assert_eq(s.percent, 0);
}

/*
 * tailslow: at 20% the guest keeps 80 points of vCPU time; dirtying 60 MB
 * against a goal of 50 MB (half of 100 MB sent) it should keep
 * 80 * 50 / 60 = 66, so the step is 14, capped at the increment (10).
 * Dirtying 55 MB: keep 80 * 50 / 55 = 72, step 8.
 */
Test(auto_converge, tailslow_steps_by_what_the_ratio_needs)
{
	struct ac_params p = on();
	p.tailslow = true;
	struct ac_state s = { .percent = 20 };
	s = run(&p, s, 60 * MB, 100 * MB);
	s = run(&p, s, 60 * MB, 100 * MB);
	cr_assert_eq(s.percent, 30, "capped at the increment: %u", s.percent);
	s = (struct ac_state){ .percent = 20 };
	s = run(&p, s, 55 * MB, 100 * MB);
	s = run(&p, s, 55 * MB, 100 * MB);
	cr_assert_eq(s.percent, 28, "%u", s.percent);
	/* barely too dirty: at least one point */
	s = (struct ac_state){ .percent = 20 };
	s = run(&p, s, 50 * MB + 1, 100 * MB);
	s = run(&p, s, 50 * MB + 1, 100 * MB);
	cr_assert_eq(s.percent, 21, "%u", s.percent);
}

Test(auto_converge, tailslow_first_step_is_the_initial)
{
	struct ac_params p = on();
	p.tailslow = true;
	struct ac_state s;
	ac_state_init(&s);
	s = run(&p, s, 55 * MB, 100 * MB);
	s = run(&p, s, 55 * MB, 100 * MB);
	cr_assert_eq(s.percent, 20);
}

Test(auto_converge, huge_numbers_do_not_overflow)
{
	struct ac_params p = on();
	struct ac_state s;
	ac_state_init(&s);
	s = run(&p, s, UINT64_MAX, UINT64_MAX - 1);
	s = run(&p, s, UINT64_MAX, UINT64_MAX - 1);
	cr_assert_eq(s.percent, 20);
	ac_state_init(&s);
	s = run(&p, s, UINT64_MAX / 2, UINT64_MAX);
	s = run(&p, s, UINT64_MAX / 2, UINT64_MAX);
	cr_assert_eq(s.percent, 0);
}
