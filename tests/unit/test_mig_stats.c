/*
 * What query-migrate says while a migration runs and when it ends
 * (migration/stats.c): figures that move within a round, the round being
 * sent, a wait for the rest to fit, and a forced switch-over that ran
 * over the downtime limit.
 */
#include <criterion/criterion.h>
#include <string.h>

#include "migration/stats.h"

static json_t *ferry_of(json_t *j)
{
	return json_object_get(j, "ferry");
}

static double num(json_t *obj, const char *key)
{
	json_t *v = json_object_get(obj, key);
	cr_assert(json_is_number(v), "no number '%s'", key);
	return json_number_value(v);
}

/* Round 0 in progress: the round's own rate is reported, not the
 * (unmeasured) whole-round figure; the ETA is the pages left at it. */
Test(mig_stats, round0_in_progress_moves)
{
	static struct mig_stats s;
	memset(&s, 0, sizeof(s));
	s.status = MIG_STATUS_ACTIVE;
	s.start_ns = 1;
	s.wire_bytes = 30 << 20;
	s.remaining_pages = 2560;           /* 10 MiB */
	s.live_bandwidth = 10485760;        /* 10 MiB/s */
	s.current_round = 0;
	json_t *j = mig_stats_json(&s, 1000000000);
	json_t *ram = json_object_get(j, "ram"), *f = ferry_of(j);
	cr_assert_eq(num(ram, "transferred"), 30 << 20);
	cr_assert_eq(num(ram, "remaining"), 10 << 20);
	cr_assert_float_eq(num(ram, "mbps"), 10485760 * 8 / 1e6, 1e-6);
	cr_assert_eq(num(f, "bandwidth-bytes-per-second"), 10485760);
	cr_assert_eq(num(f, "current-round"), 0);
	cr_assert_eq(num(f, "current-round-eta-ms"), 1000);
	cr_assert_null(json_object_get(f, "not-converging"));
	cr_assert_null(json_object_get(j, "expected-downtime"),
		       "no decision yet: no expected downtime");
	json_decref(j);

	/* Between rounds, the last whole round's figure. */
	s.live_bandwidth = 0;
	s.bandwidth = 5e8;
	j = mig_stats_json(&s, 1000000000);
	cr_assert_eq(num(ferry_of(j), "bandwidth-bytes-per-second"), 5e8);
	json_decref(j);
}

Test(mig_stats, waiting_is_said_while_active_only)
{
	static struct mig_stats s;
	memset(&s, 0, sizeof(s));
	s.status = MIG_STATUS_ACTIVE;
	strcpy(s.waiting, "the dirty set stopped shrinking: ...");
	json_t *j = mig_stats_json(&s, 1);
	cr_assert_str_eq(json_string_value(json_object_get(ferry_of(j), "not-converging")),
			 "the dirty set stopped shrinking: ...");
	json_decref(j);
	s.status = MIG_STATUS_CANCELLED;
	j = mig_stats_json(&s, 1);
	cr_assert_null(json_object_get(ferry_of(j), "not-converging"));
	cr_assert_null(json_object_get(ferry_of(j), "current-round"));
	json_decref(j);
}

Test(mig_stats, forced_switchover_over_the_limit)
{
	static struct mig_stats s;
	memset(&s, 0, sizeof(s));
	s.status = MIG_STATUS_COMPLETED;
	s.downtime_limit_ms = 300;
	s.forced = true;
	s.downtime_ns = 8161700000ULL;
	cr_assert(mig_stats_downtime_exceeded(&s));
	json_t *j = mig_stats_json(&s, 1);
	json_t *f = ferry_of(j);
	cr_assert(json_is_true(json_object_get(f, "switchover-forced")));
	cr_assert(json_is_true(json_object_get(f, "downtime-exceeded")));
	cr_assert_eq(num(f, "downtime-limit-ms"), 300);
	json_decref(j);
	/* Exactly the limit is within it. */
	s.downtime_ns = 300000000ULL;
	cr_assert_not(mig_stats_downtime_exceeded(&s));
}
