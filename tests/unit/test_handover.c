/*
 * Unit tests for what query-migrate says about the hand-over
 * (ferry.handover): after COMMIT, "unknown" must be told apart from a
 * confirmed or refused hand-over, and before COMMIT nothing may look sent.
 */
#include <criterion/criterion.h>
#include <string.h>

#include "migration/stats.h"

static const char *outcome(bool started, bool sent, bool confirmed,
			   bool failed, enum mig_status st)
{
	static struct mig_stats s;
	memset(&s, 0, sizeof(s));
	s.commit_started = started;
	s.commit_sent = sent;
	s.confirmed = confirmed;
	s.dest_failed = failed;
	s.status = st;
	return mig_handover_outcome(&s);
}

Test(handover, outcomes)
{
	cr_assert_str_eq(outcome(false, false, false, false, MIG_STATUS_ACTIVE),
			 "not-committed");
	cr_assert_str_eq(outcome(false, false, false, false, MIG_STATUS_CANCELLED),
			 "not-committed");
	cr_assert_str_eq(outcome(true, false, false, false, MIG_STATUS_DEVICE),
			 "committing");
	cr_assert_str_eq(outcome(true, true, false, false, MIG_STATUS_DEVICE),
			 "awaiting-confirmation");
	cr_assert_str_eq(outcome(true, true, true, false, MIG_STATUS_COMPLETED),
			 "destination-running");
	cr_assert_str_eq(outcome(true, true, false, true, MIG_STATUS_FAILED),
			 "destination-failed");
	cr_assert_str_eq(outcome(true, true, false, false, MIG_STATUS_FAILED),
			 "unknown");
}

Test(handover, query_migrate_carries_it)
{
	struct mig_stats s;
	memset(&s, 0, sizeof(s));
	s.status = MIG_STATUS_FAILED;
	s.commit_started = s.commit_sent = true;
	strcpy(s.handover_error, "receiving: timed out");
	json_t *j = mig_stats_json(&s, 1000);
	json_t *h = json_object_get(json_object_get(j, "ferry"), "handover");
	cr_assert(json_is_true(json_object_get(h, "commit-sent")));
	cr_assert(json_is_false(json_object_get(h, "confirmed")));
	cr_assert_str_eq(json_string_value(json_object_get(h, "outcome")), "unknown");
	cr_assert_str_eq(json_string_value(json_object_get(h, "error")),
			 "receiving: timed out");
	json_decref(j);
}
