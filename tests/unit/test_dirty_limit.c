/*
 * The dirty limit's rule (vmm/dirty_limit.h), with expected values, and
 * its refusal without the dirty ring.  Rates in bytes/s; "keep" is 100
 * minus the share, the vCPU time a vCPU keeps.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

#include "util/log.h"
#include "vmm/dirty_limit.h"
#include "vmm/throttle.h"
#include "vmm/vm.h"

#define MB 1000000ULL

struct row {
	unsigned pct;
	uint64_t rate, limit;
	unsigned want;
	const char *why;
};

static const struct row rows[] = {
	{ 0, 0, 1 * MB, 0, "dirtying nothing: never slowed" },
	{ 0, 1 * MB, 1 * MB, 0, "at the limit: as it is" },
	{ 0, 4 * MB, 1 * MB, 75, "4x over: keep a quarter at once" },
	{ 0, 1000 * MB, 1 * MB, 99, "far over: the most there is" },
	{ 50, 2 * MB, 1 * MB, 75, "at 50 it still dirties 2x: keep 25" },
	{ 75, 1 * MB, 1 * MB, 75, "held at the limit: stays" },
	{ 75, MB / 2, 1 * MB, 62, "under: half the way back (keep 25 -> 38 of 50)" },
	{ 75, 0, 1 * MB, 37, "idle now: half the way back to 100 (keep 63)" },
	{ 1, 0, 1 * MB, 0, "the last point goes too" },
	{ 99, 1 * MB, 1 * MB, 99, "at 99 and at the limit" },
	{ 120, 1 * MB, 1 * MB, 99, "a share above 99 is read as 99" },
	{ 30, UINT64_MAX, UINT64_MAX / 2, 66, "no overflow: keep 70 -> 34 (rounded down)" },
	{ 40, 5 * MB, 0, 0, "no limit: nothing" },
};

Test(dirty_limit, rule_table)
{
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		const struct row *r = &rows[i];
		unsigned got = dirty_limit_step(r->pct, r->rate, r->limit);
		cr_assert_eq(got, r->want, "row %zu (%s): %u%% at %llu B/s, limit %llu: "
			     "got %u, want %u", i, r->why, r->pct,
			     (unsigned long long)r->rate, (unsigned long long)r->limit,
			     got, r->want);
	}
}

/* A vCPU dirtying at a steady 3 MB/s per point of vCPU time... held to
 * the limit in one step, and released step by step once it is idle. */
Test(dirty_limit, converges_and_releases)
{
	unsigned pct = 0;
	pct = dirty_limit_step(pct, 300 * MB, 30 * MB);   /* 3 MB/s per point */
	cr_assert_eq(pct, 90);
	pct = dirty_limit_step(pct, 30 * MB, 30 * MB);
	cr_assert_eq(pct, 90, "held");
	unsigned prev = pct;
	for (int i = 0; i < 8; i++) {
		pct = dirty_limit_step(pct, 0, 30 * MB);
		cr_assert(pct < prev || pct == 0, "step %d: %u after %u", i, pct, prev);
		prev = pct;
	}
	cr_assert_eq(pct, 0, "released in a few looks");
}

Test(dirty_limit, needs_the_ring)
{
	struct vm_config cfg = { .ram_size = 2u << 20, .vcpus = 2,
				 .serial = "none", .heartbeat = "none" };
	char err[ERR_MAX] = "";
	struct vm *vm = NULL;

	cr_assert_eq(vm_create_offline(&vm, &cfg, err), 0, "%s", err);
	cr_assert_eq(dirty_limit_start(vm, MB, 1000, err), -ENOTSUP);
	cr_assert(strstr(err, "--dirty-ring"), "%s", err);
	cr_assert(!dirty_limit_running(vm));
	uint64_t limit = 7;
	cr_assert_eq(dirty_limit_rate(vm, 0, &limit), 0);
	cr_assert_eq(limit, 0);
	vm_destroy(vm);
}

/* The vCPU's share is its own: one vCPU throttled, the other not, and a
 * VM-wide share under it does not lower it. */
Test(dirty_limit, per_vcpu_shares)
{
	struct vm_config cfg = { .ram_size = 2u << 20, .vcpus = 2,
				 .serial = "none", .heartbeat = "none" };
	char err[ERR_MAX] = "";
	struct vm *vm = NULL;

	cr_assert_eq(vm_create_offline(&vm, &cfg, err), 0, "%s", err);
	cr_assert_eq(vm_throttle_set_vcpu(vm, 0, 80), 0);
	cr_assert_eq(vm_throttle_vcpu_percent(vm, 0), 80);
	cr_assert_eq(vm_throttle_vcpu_percent(vm, 1), 0);
	cr_assert_eq(vm_throttle_set(vm, 30), 0);
	cr_assert_eq(vm_throttle_vcpu_percent(vm, 0), 80, "the larger share");
	cr_assert_eq(vm_throttle_vcpu_percent(vm, 1), 30);
	cr_assert_eq(vm_throttle_set_vcpu(vm, 2, 10), -EINVAL, "no vCPU 2");
	vm_throttle_clear(vm);
	cr_assert_eq(vm_throttle_vcpu_percent(vm, 0), 0);
	cr_assert_eq(vm_throttle_vcpu_percent(vm, 1), 0);
	vm_destroy(vm);
}
