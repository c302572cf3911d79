/*
 * Auto-converge between real ferry processes: a guest that dirties memory
 * faster than the link is slowed until pre-copy converges, within its
 * downtime limit; the throttle ends with the migration, whatever the
 * outcome.
 *
 * The parameters are checked on a real destination's control socket (no
 * guest needed, runs everywhere).  The migrations need KVM (skipped
 * without it).
 */
#include "harness/harness.h"

#include <string.h>

TestSuite(auto_converge, H_FIXTURES, .timeout = 150);

/* QEMU's names and defaults, on a real control socket (a destination
 * waiting: no guest needed). */
Test(auto_converge, throttle_parameters_default_to_qemus)
{
	struct h_vm *vm = h_incoming("dst", H_CONTROL, NULL);
	json_t *p = h_qmp_ok(vm, "{\"execute\":\"query-migrate-parameters\"}");
	char *s = h_dump(p);
	h_assert(h_int(p, "cpu-throttle-initial") == 20 &&
		 h_int(p, "cpu-throttle-increment") == 10 &&
		 h_int(p, "max-cpu-throttle") == 99 &&
		 h_int(p, "throttle-trigger-threshold") == 50 &&
		 json_is_false(json_object_get(p, "cpu-throttle-tailslow")),
		 "QEMU's defaults: %s", s);
	free(s);
	json_decref(p);

	h_quit_ok(vm);
}

/* ---- migrations (need KVM) ------------------------------------------------- */

/* A guest rewriting 64 MiB as fast as it can, against a 48 MiB/s link:
 * without help the rest never fits 300 ms. */
#define DIRTY_GUEST "workload=dirty wss=64M rate=0 verify=1 verify_ms=500"
#define SLOW_LINK   ",\"max-bandwidth\":50331648,\"downtime-ms\":300"

/* The share of one core vCPU 0's thread used over @ms, from /proc: what
 * the throttle takes, seen from outside it (the guest's own write rate
 * also moves with the dirty log's write faults and with how often its
 * timer interrupts reach it). */
static double vcpu_share(struct h_vm *vm, unsigned ms)
{
	double c0 = h_thread_cpu_s(vm, "vcpu0"), t0 = h_now();
	h_sleep_ms(ms);
	return (h_thread_cpu_s(vm, "vcpu0") - c0) / (h_now() - t0);
}

/* migrate-set-parameters takes them, query-migrate-parameters shows
 * them, an out-of-range one is refused naming it. */
static void set_and_check_params(struct h_vm *src)
{
	json_decref(h_qmp_ok(src, "{\"execute\":\"migrate-set-parameters\",\"arguments\":"
			     "{\"cpu-throttle-initial\":40,\"max-cpu-throttle\":90,"
			     "\"cpu-throttle-tailslow\":true}}"));
	json_t *p = h_qmp_ok(src, "{\"execute\":\"query-migrate-parameters\"}");
	char *s = h_dump(p);
	h_assert(h_int(p, "cpu-throttle-initial") == 40 &&
		 h_int(p, "max-cpu-throttle") == 90 &&
		 json_is_true(json_object_get(p, "cpu-throttle-tailslow")),
		 "not taken: %s", s);
	free(s);
	json_decref(p);

	json_t *e = h_qmp_err(src, "{\"execute\":\"migrate-set-parameters\",\"arguments\":"
			      "{\"max-cpu-throttle\":100}}");
	s = h_dump(e);
	h_assert(strstr(s, "max-cpu-throttle") && strstr(s, "between 1 and 99"),
		 "error: %s", s);
	free(s);
	json_decref(e);
}

Test(auto_converge, a_guest_faster_than_the_link_converges_within_the_limit)
{
	struct h_vm *src = h_boot_verifying("src", DIRTY_GUEST, "256M", "1");
	h_wait_progress(src, 1, 20);
	struct h_vm *dst = h_incoming("dst", H_CONTROL | H_CONSOLE, "--paused", NULL);
	set_and_check_params(src);
	/* Bigger steps than QEMU's defaults: the test should not take 20
	 * rounds to get there. */
	json_decref(h_qmp_ok(src, "{\"execute\":\"migrate-set-parameters\",\"arguments\":"
			     "{\"cpu-throttle-initial\":50,\"cpu-throttle-increment\":20,"
			     "\"cpu-throttle-tailslow\":false,\"max-cpu-throttle\":99}}"));
	json_decref(h_qmp_ok(src, "{\"execute\":\"migrate\",\"arguments\":"
			     "{\"uri\":\"%s\",\"auto-converge\":true,\"x-keep-source\":true%s}}",
			     h_mig_uri(dst->port), SLOW_LINK));
	json_t *q = h_wait_migration(src, 120, NULL);
	char *s = h_dump(q);
	json_t *f = json_object_get(q, "ferry"), *t = json_object_get(f, "throttle");
	h_assert(!strcmp(h_str(q, "status"), "completed"), "not completed: %s", s);
	h_assert(json_is_false(json_object_get(f, "switchover-forced")) &&
		 json_is_false(json_object_get(f, "downtime-exceeded")),
		 "converged only by forcing: %s", s);
	h_assert(json_is_true(json_object_get(t, "auto-converge")) &&
		 h_int(t, "max-percentage") >= 50 && h_int(t, "steps") >= 1 &&
		 h_int(t, "throttled-ms") > 0,
		 "the guest was never slowed: %s", s);
	h_assert(h_int(t, "percentage") == 0 &&
		 h_int(q, "cpu-throttle-percentage") == 0,
		 "the throttle outlived the migration: %s", s);
	free(s);
	json_decref(q);
	h_assert(h_file_contains(src->err_path, "slowing it to"),
		 "the source does not log the throttle");

	/* RAM equality from outside, then the guest runs there at full
	 * speed: the throttle is the source's, it does not travel. */
	h_expect_same_memory(src, dst);
	h_expect_guest_runs(dst);
	h_expect_verifies(dst);
	h_assert(h_guest_u64(dst, "errors") == 0, "bad pages after arriving");
}

/*
 * Cancelled while throttled: the guest stays at the source and gets its
 * whole vCPU back.  A 1 ms limit never fits, so the throttle goes to its
 * maximum (90%: the guest keeps a tenth).  After the cancel the vCPU
 * thread runs about as much as before the migration: a throttle left on
 * would keep it near a tenth of that.
 */
Test(auto_converge, the_throttle_ends_with_a_cancelled_migration)
{
	struct h_vm *src = h_boot_verifying("src", DIRTY_GUEST, "256M", "1");
	h_wait_progress(src, 1, 20);
	struct h_vm *dst = h_incoming("dst", H_CONTROL, NULL);
	double before = vcpu_share(src, 2000);
	json_decref(h_qmp_ok(src, "{\"execute\":\"migrate-set-parameters\",\"arguments\":"
			     "{\"cpu-throttle-initial\":90,\"max-cpu-throttle\":90}}"));
	json_decref(h_qmp_ok(src, "{\"execute\":\"migrate\",\"arguments\":"
			     "{\"uri\":\"%s\",\"auto-converge\":true,"
			     "\"max-bandwidth\":50331648,\"downtime-ms\":1}}",
			     h_mig_uri(dst->port)));
	json_t *q = NULL;
	bool slowed = h_wait_for(({
		json_decref(q);
		q = h_query_migrate(src);
		h_int(q, "cpu-throttle-percentage") == 90; }), 90);
	char *s = h_dump(q);
	h_assert(slowed, "never throttled to 90%%: %s", s);
	free(s);
	json_decref(q);
	double during = vcpu_share(src, 2000);
	json_decref(h_qmp_ok(src, "{\"execute\":\"migrate-cancel\"}"));
	q = h_wait_migration(src, 30, NULL);
	s = h_dump(q);
	h_assert(!strcmp(h_str(q, "status"), "cancelled"), "not cancelled: %s", s);
	h_assert(h_int(q, "cpu-throttle-percentage") == 0, "still throttled: %s", s);
	free(s);
	json_decref(q);
	h_expect_status(src, "running");
	double after = vcpu_share(src, 2000);
	/* 90% taken: about a tenth of what it had; then back near it.  The
	 * bounds leave room for a host whose other tests take cores from
	 * the vCPU before or after (2 tests run at once on 2 cores). */
	h_assert(during < before / 2 && after > before / 3,
		 "vCPU thread's share of a core: before %.2f, throttled %.2f, "
		 "after the cancel %.2f", before, during, after);
	h_assert(h_guest_u64(src, "errors") == 0, "bad pages at the source");
}
