/*
 * Fault injection points (tests only): the source's migrate "x-fault"
 * dies exactly at its own point with status 99 and nowhere else; the
 * destination's --x-fault knows every point the fault table uses.
 */
#include <criterion/criterion.h>
#include <criterion/redirect.h>

#include "migration/incoming.h"
#include "migration/source.h"

Test(mig_fault, other_points_pass)
{
	struct migration m = { 0 };
	mig_params_default(&m.p);
	cr_assert_eq(m.p.fault, MIG_FAULT_NONE);
	for (int here = MIG_FAULT_NONE; here <= MIG_FAULT_AFTER_COMMIT; here++)
		cr_assert_eq(migration_fault_point(&m, (enum mig_fault)here), 0);
	m.p.fault = MIG_FAULT_DEVICE;
	cr_assert_eq(migration_fault_point(&m, MIG_FAULT_NONE), 0);
	cr_assert_eq(migration_fault_point(&m, MIG_FAULT_ROUND0), 0);
	cr_assert_eq(migration_fault_point(&m, MIG_FAULT_AFTER_READY), 0);
}

static void quiet(void)
{
	cr_redirect_stderr();
}

Test(mig_fault, armed_point_exits_99, .init = quiet, .exit_code = 99)
{
	struct migration m = { 0 };
	mig_params_default(&m.p);
	m.p.fault = MIG_FAULT_AFTER_COMMIT;
	migration_fault_point(&m, MIG_FAULT_AFTER_COMMIT);
	cr_assert_fail("still alive after the armed fault point");
}

Test(mig_fault, destination_points)
{
	static const char *const names[] = { "round0", "round1", "device",
		"before-commit", "after-ready", "after-commit" };
	enum incoming_fault f;
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		cr_assert_eq(incoming_parse_fault(names[i], &f), 0, "%s", names[i]);
	cr_assert_eq(incoming_parse_fault("after-ready", &f), 0);
	cr_assert_eq(f, FAULT_AFTER_READY);
	cr_assert_neq(incoming_parse_fault("later", &f), 0);
}

/* The post-copy hooks are not deaths: they parse, and every death point
 * passes with one of them armed. */
Test(mig_fault, postcopy_hooks_are_not_death_points)
{
	struct migration m = { 0 };
	mig_params_default(&m.p);
	cr_assert_eq(mig_fault_parse("postcopy-cut", &m.p.fault), 0);
	cr_assert_eq(m.p.fault, MIG_FAULT_POSTCOPY_CUT);
	cr_assert_eq(mig_fault_parse("postcopy-hold", &m.p.fault), 0);
	cr_assert_eq(m.p.fault, MIG_FAULT_POSTCOPY_HOLD);
	for (int here = MIG_FAULT_NONE; here <= MIG_FAULT_AFTER_COMMIT; here++)
		cr_assert_eq(migration_fault_point(&m, (enum mig_fault)here), 0);
	cr_assert_neq(mig_fault_parse("postcopy", &m.p.fault), 0);
}
