/*
 * KVM's dirty ring as the tracking backend (`ferry run --dirty-ring N`):
 * a busy verifying guest migrates with the ring, and the memory digests of
 * the paused source and the --paused destination match; a ring small
 * enough to fill makes vCPUs harvest it themselves, and nothing is lost.
 * The option's checks need no guest and run everywhere; the migrations
 * need KVM (skipped without it).
 */
#include "harness/harness.h"

#include <string.h>

TestSuite(dirty_ring, H_FIXTURES, .timeout = 150);

Test(dirty_ring, bad_sizes_are_refused_before_anything_runs)
{
	const char *bad[] = { "100", "128", "131072", "1000", "x", "-256" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct h_vm *vm = h_spawn("bad", 0, "run", "--kernel", h_guest(),
					  "--dirty-ring", bad[i], NULL);
		int rc = h_vm_wait(vm, 20);
		char *e = h_vm_stderr(vm);
		h_assert(rc == H_EXIT_USAGE, "--dirty-ring %s: exit %d, wanted %d: %s",
			 bad[i], rc, H_EXIT_USAGE, e);
		h_assert(strstr(e, "--dirty-ring") && strstr(e, "power of two"),
			 "--dirty-ring %s: %s", bad[i], e);
		free(e);
	}
}

/* ---- migrations (need KVM) ------------------------------------------------- */

/*
 * Source with the ring of @entries, a guest rewriting 32 MiB: completed,
 * the ring said so, RAM equal from outside, the guest sound there.
 * Returns the source's final query-migrate.
 */
static json_t *migrate_with_ring(const char *entries, const char *vcpus)
{
	struct h_vm *src = h_boot("src", H_CONTROL | H_CONSOLE,
		"workload=dirty wss=32M rate=0 verify=1 verify_ms=500",
		"--memory", "256M", "--vcpus", vcpus, "--dirty-ring", entries, NULL);
	h_wait_ready(src, 60);
	/* A KVM without the ring is not a failure: ferry fell back. */
	if (h_file_contains(src->err_path, "tracking dirty pages with the bitmap"))
		cr_skip_test("this host's KVM has no dirty ring (ferry fell back "
			     "to the bitmap, as it should)");
	h_wait_guest_ge(src, "checks-done", 1, 30);
	h_wait_progress(src, 1, 20);
	struct h_vm *dst = h_incoming("dst", H_CONTROL | H_CONSOLE, "--paused", NULL);
	json_t *q = h_migrate_kept(src, dst, 120);
	char *s = h_dump(q);
	json_t *t = json_object_get(json_object_get(q, "ferry"), "dirty-tracking");
	h_assert(!strcmp(h_str(t, "method"), "ring") &&
		 h_int(t, "ring-entries") == atoi(entries) &&
		 h_int(t, "harvested") > 0,
		 "the ring did not track this migration: %s", s);
	h_assert(json_integer_value(json_object_get(json_object_get(q, "ram"),
						    "dirty-sync-count")) >= 2,
		 "a busy guest in one round: %s", s);
	free(s);

	h_expect_same_memory(src, dst);
	h_expect_guest_runs(dst);
	h_expect_verifies(dst);
	h_assert(h_guest_u64(dst, "errors") == 0, "bad pages after arriving");
	return q;
}

Test(dirty_ring, a_busy_guest_migrates_with_the_ring)
{
	json_decref(migrate_with_ring("4096", "2"));
}

/* 1024 entries per vCPU fill within a round of a guest rewriting 32 MiB
 * (8192 pages): the vCPUs harvest them themselves, and still nothing is
 * lost.  Not fewer: KVM keeps 64 entries in reserve plus, on Intel with
 * PML, the 512 of the PML buffer, and refuses a ring without room for
 * them (256 entries would fall back to the bitmap there and skip). */
Test(dirty_ring, a_ring_that_fills_loses_nothing)
{
	json_t *q = migrate_with_ring("1024", "1");
	json_t *t = json_object_get(json_object_get(q, "ferry"), "dirty-tracking");
	char *s = h_dump(t);
	h_assert(h_int(t, "ring-full-exits") > 0, "the ring never filled: %s", s);
	free(s);
	json_decref(q);
}

/*
 * The dirty limit: two vCPUs rewrite 64 MiB as fast as they can against a
 * 48 MiB/s link, which never fits 300 ms; once the trigger fires each
 * vCPU is held to 8 MiB/s of dirtied memory, and the migration completes
 * within the limit, equal from outside.  Without the ring it is refused,
 * and it excludes auto-converge.
 */
/*
 * DISABLED: it shows an open defect.  With dirty-limit on the ring the
 * destination's memory differed from the source's in 4 of 5 runs on a PVM
 * host (runs of consecutive pages several generations stale: writes KVM
 * never reported), so `migrate` refuses dirty-limit (the test below) and
 * this runs it with x-dirty-limit-unsafe.  Enable it to work on the fix.
 */
Test(dirty_ring, dirty_limit_holds_each_vcpu_until_it_fits, .disabled = true)
{
	struct h_vm *src = h_boot("src", H_CONTROL | H_CONSOLE,
		"workload=dirty wss=64M rate=0 verify=1 verify_ms=500",
		"--memory", "256M", "--vcpus", "2", "--dirty-ring", "4096", NULL);
	h_wait_ready(src, 60);
	if (h_file_contains(src->err_path, "tracking dirty pages with the bitmap"))
		cr_skip_test("this host's KVM has no dirty ring");
	h_wait_guest_ge(src, "checks-done", 1, 30);
	struct h_vm *dst = h_incoming("dst", H_CONTROL | H_CONSOLE, "--paused", NULL);

	json_t *e = h_qmp_err(src, "{\"execute\":\"migrate\",\"arguments\":"
			      "{\"uri\":\"%s\",\"dirty-limit\":true,\"auto-converge\":true}}",
			      h_mig_uri(dst->port));
	char *s = h_dump(e);
	h_assert(strstr(s, "exclude each other"), "both at once: %s", s);
	free(s);
	json_decref(e);

	json_decref(h_qmp_ok(src, "{\"execute\":\"migrate-set-parameters\",\"arguments\":"
			     "{\"vcpu-dirty-limit\":8,\"x-vcpu-dirty-limit-period\":500}}"));
	json_decref(h_qmp_ok(src, "{\"execute\":\"migrate\",\"arguments\":"
			     "{\"uri\":\"%s\",\"dirty-limit\":true,\"x-keep-source\":true,"
			     "\"x-dirty-limit-unsafe\":true,"
			     "\"max-bandwidth\":50331648,\"downtime-ms\":300}}",
			     h_mig_uri(dst->port)));
	json_t *q = h_wait_migration(src, 130, NULL);
	s = h_dump(q);
	json_t *f = json_object_get(q, "ferry"), *dl = json_object_get(f, "dirty-limit");
	h_assert(!strcmp(h_str(q, "status"), "completed"), "not completed: %s", s);
	h_assert(json_is_false(json_object_get(f, "downtime-exceeded")),
		 "converged only by forcing: %s", s);
	h_assert(json_is_object(dl) && h_int(dl, "limit-bytes-per-second") == 8 << 20 &&
		 json_array_size(json_object_get(dl, "vcpus")) == 2 &&
		 h_int(json_object_get(f, "throttle"), "throttled-ms") > 0,
		 "the vCPUs were never held: %s", s);
	free(s);
	json_decref(q);
	h_assert(h_file_contains(src->err_path, "holding each vCPU to 8 MiB/s"),
		 "the source does not log the dirty limit");

	h_expect_same_memory(src, dst);
	h_expect_guest_runs(dst);
	h_assert(h_guest_u64(dst, "errors") == 0, "bad pages after arriving");
}

/* Until the defect above is fixed, dirty-limit is refused, saying why,
 * and the guest runs on. */
Test(dirty_ring, dirty_limit_is_refused_while_it_can_lose_pages)
{
	struct h_vm *src = h_boot("src", H_CONTROL, "workload=idle wss=16M",
		"--memory", "64M", "--dirty-ring", "4096", NULL);
	h_wait_ready(src, 60);
	json_t *e = h_qmp_err(src, "{\"execute\":\"migrate\",\"arguments\":"
			      "{\"uri\":\"tcp:127.0.0.1:1\",\"dirty-limit\":true}}");
	char *s = h_dump(e);
	h_assert(strstr(s, "dirty-limit is disabled") && strstr(s, "stale pages"),
		 "refusal: %s", s);
	free(s);
	json_decref(e);
	h_expect_status(src, "running");
}

/* Without the ring there is nothing to measure each vCPU with. */
Test(dirty_ring, dirty_limit_needs_the_ring)
{
	struct h_vm *src = h_boot("src", H_CONTROL, "workload=idle wss=16M", "--memory", "64M",
				  NULL);
	h_wait_ready(src, 60);
	json_t *e = h_qmp_err(src, "{\"execute\":\"migrate\",\"arguments\":"
			      "{\"uri\":\"tcp:127.0.0.1:1\",\"dirty-limit\":true}}");
	char *s = h_dump(e);
	h_assert(strstr(s, "--dirty-ring"), "refusal: %s", s);
	free(s);
	json_decref(e);
	h_expect_status(src, "running");
}
