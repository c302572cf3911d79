/*
 * Live migration between real `ferry` processes over real TCP sockets.
 *
 * The guest checks itself (verify=1): every page it wrote carries its
 * address, generation and checksum, and it re-reads all of them every
 * verify_ms and whenever 'v' arrives on its console.  After a migration
 * the destination's guest must verify clean and its counters must go on
 * from where the source left them; after any failure before COMMIT the
 * source must run the guest on, unharmed, and say what went wrong.
 *
 * Destinations listen on port 0 (h_incoming reads the port back), so tests
 * running side by side (--jobs 2) never collide.
 */
#include "harness/harness.h"

#include <string.h>
#include <strings.h>

#define MIG_S  90.0
#define LLU(x) ((unsigned long long)(x))

TestSuite(migration, H_FIXTURES, .timeout = 120);
TestSuite(migration_faults, H_FIXTURES, .timeout = 120);
TestSuite(migration_cli, H_FIXTURES, .timeout = 90);

/* ---- helpers ------------------------------------------------------------- */

/* query-vm .guest at one moment. */
struct counters {
	uint64_t reports, pages, checks, errors, ticks, uptime, asserts, vcpus;
};

static struct counters counters_of(json_t *g)
{
	struct counters c = {
#define G(k) (uint64_t)json_integer_value(json_object_get(g, k))
		.reports = G("progress-reports"), .pages = G("pages-written"),
		.checks = G("checks-done"), .errors = G("errors"),
		.ticks = G("ticks"), .uptime = G("uptime-ms"),
		.asserts = G("asserts"), .vcpus = G("vcpus-online"),
#undef G
	};
	return c;
}

static struct counters read_counters(struct h_vm *vm)
{
	json_t *g = h_guest_info(vm);
	struct counters c = counters_of(g);
	json_decref(g);
	return c;
}

/* `migrate` over the control socket; @extra is more JSON members
 * (",\"max-bandwidth\":1000") or "". */
static void start_migration(struct h_vm *src, int port, const char *extra)
{
	json_decref(h_qmp_ok(src, "{\"execute\":\"migrate\",\"arguments\":"
			     "{\"uri\":\"%s\"%s}}", h_mig_uri(port), extra));
}

/* Run one migration to its end: returns the final query-migrate and, in
 * *last, the source's guest counters as last seen (after "completed" they
 * are the final ones: the guest is paused for good there). */
static json_t *migrate(struct h_vm *src, int port, const char *extra,
		       struct counters *last)
{
	json_t *g = NULL;
	start_migration(src, port, extra);
	json_t *q = h_wait_migration(src, MIG_S, &g);
	h_assert(g, "no query-vm answer from %s during the migration", src->name);
	*last = counters_of(g);
	json_decref(g);
	return q;
}

/*
 * After a completed migration: the guest runs at @dst, its counters
 * continue from @last (the source's final ones), it keeps working and
 * checking, and the source process ends by itself with 0.  Returns the
 * destination's counters at the end (the next hop's lower bound).
 */
static struct counters expect_arrived(struct h_vm *src, struct h_vm *dst,
				      json_t *q, const struct counters *last,
				      bool busy)
{
	char *s = h_dump(q);
	h_assert(!strcmp(h_str(q, "status"), "completed"),
		 "migration %s -> %s did not complete: %s", src->name,
		 dst->name, s);
	free(s);

	h_wait_control(dst, 30);
	h_expect_status(dst, "running");
	struct counters now = read_counters(dst);
	h_assert(now.pages >= last->pages && now.uptime >= last->uptime &&
		 now.ticks >= last->ticks && now.checks >= last->checks &&
		 now.reports >= last->reports,
		 "%s: counters went back across the migration: pages %llu<%llu "
		 "uptime %llu<%llu ticks %llu<%llu checks %llu<%llu reports "
		 "%llu<%llu", dst->name, LLU(now.pages), LLU(last->pages),
		 LLU(now.uptime), LLU(last->uptime), LLU(now.ticks),
		 LLU(last->ticks), LLU(now.checks), LLU(last->checks),
		 LLU(now.reports), LLU(last->reports));
	h_assert(now.vcpus == last->vcpus, "vcpus-online %llu -> %llu",
		 LLU(last->vcpus), LLU(now.vcpus));
	h_assert(now.errors == 0 && now.asserts == 0,
		 "%s: errors %llu asserts %llu on arrival", dst->name,
		 LLU(now.errors), LLU(now.asserts));

	h_expect_verifies(dst);
	/* It noticed the move by itself too (resume generation) and has
	 * checked every page since. */
	h_assert(h_wait_resume_verified(dst, 30) == 0, "%s: errors in the "
		 "full pass after arriving", dst->name);
	h_assert(h_file_contains(dst->serial, "resume: generation"),
		 "%s: no resume line on the console", dst->name);

	h_wait_guest_ge(dst, "progress-reports", now.reports + 2, 20);
	now = read_counters(dst);
	h_assert(now.uptime > last->uptime && now.ticks > last->ticks,
		 "%s: the guest's clock stands still after arriving: uptime "
		 "%llu -> %llu, ticks %llu -> %llu", dst->name,
		 LLU(last->uptime), LLU(now.uptime), LLU(last->ticks),
		 LLU(now.ticks));
	/* The guest's clock paused with the VM: no jump either. */
	h_assert(now.uptime < last->uptime + 30000,
		 "uptime-ms jumped from %llu to %llu", LLU(last->uptime),
		 LLU(now.uptime));
	if (busy)
		h_assert(now.pages > last->pages, "%s: pages-written %llu -> %llu: "
			 "the workload does not run after arriving", dst->name,
			 LLU(last->pages), LLU(now.pages));
	h_assert(now.errors == 0, "%s: %llu bad pages", dst->name, LLU(now.errors));

	int rc = h_vm_wait(src, 20);
	h_assert(rc == 0, "source %s exited %d after a completed migration",
		 src->name, rc);
	return now;
}

/* `migrate` members that keep the source after completion, paused in
 * postmigrate: its RAM is then the RAM it sent at stop-and-copy. */
#define KEEP_SOURCE ",\"x-keep-source\":true"

/* One source, one destination, one migration, every check. */
static json_t *migrate_verifying_guest_with(const char *cmdline, const char *memory,
					    const char *vcpus, bool busy, const char *extra)
{
	struct h_vm *src = h_boot_verifying("src", cmdline, memory, vcpus);
	h_wait_progress(src, 1, 20);
	struct h_vm *dst = h_incoming("dst", H_CONTROL | H_CONSOLE, "--paused",
				      NULL);
	struct counters last;
	json_t *q = migrate(src, dst->port, extra, &last);
	if (!strcmp(h_str(q, "status"), "completed"))
		h_expect_same_memory(src, dst);
	expect_arrived(src, dst, q, &last, busy);
	return q;
}

static json_t *migrate_verifying_guest(const char *cmdline, const char *memory,
				       const char *vcpus, bool busy)
{
	return migrate_verifying_guest_with(cmdline, memory, vcpus, busy, KEEP_SOURCE);
}

/* ---- migrations that complete --------------------------------------------- */

Test(migration, idle_guest)
{
	json_decref(migrate_verifying_guest(
		"workload=idle wss=32M verify=1 verify_ms=500", "256M", "1", false));
}

Test(migration, busy_guest_64M_unlimited_rate)
{
	json_t *q = migrate_verifying_guest(
		"workload=dirty wss=64M rate=0 pattern=seq verify=1 verify_ms=500",
		"512M", "1", true);
	/* A guest rewriting 64 MiB needs more than one round. */
	json_t *ram = json_object_get(q, "ram");
	h_assert(json_integer_value(json_object_get(ram, "dirty-sync-count")) >= 2,
		 "a busy guest went in fewer than 2 rounds");
	h_assert(json_integer_value(json_object_get(ram, "transferred")) >=
		 64 << 20, "less than the working set went on the wire");
	json_decref(q);
}

Test(migration, pattern_random)
{
	json_decref(migrate_verifying_guest(
		"workload=dirty wss=64M rate=0 pattern=random fill=random verify=1 verify_ms=500",
		"512M", "1", true));
}

Test(migration, pattern_hot)
{
	json_decref(migrate_verifying_guest(
		"workload=dirty wss=64M rate=0 pattern=hot verify=1 verify_ms=500",
		"512M", "1", true));
}

/* Four vCPUs rewriting 64 MiB on a 2-core host leave the migration thread
 * a third of a core: the whole set stays dirty round after round and its
 * pause sits near 300 ms with the load of the moment.  What this proves is
 * four writers' pages all arriving, so it allows a pause that fits. */
Test(migration, four_vcpus_all_writing)
{
	json_t *q = migrate_verifying_guest_with(
		"workload=dirty wss=64M rate=0 verify=1 verify_ms=500", "512M", "4",
		true, KEEP_SOURCE ",\"downtime-ms\":2000");
	json_decref(q);
}

Test(migration, four_gib_mostly_untouched, .timeout = 150)
{
	json_t *q = migrate_verifying_guest(
		"workload=dirty wss=16M rate=50 verify=1 verify_ms=500", "4G", "1",
		true);
	json_t *ram = json_object_get(q, "ram");
	json_int_t total = json_integer_value(json_object_get(ram, "total"));
	json_int_t sent = json_integer_value(json_object_get(ram, "transferred"));
	h_assert(total == 4LL << 30, "ram.total %lld, wanted 4 GiB", (long long)total);
	/* Untouched memory is not worth sending page by page. */
	h_assert(sent < 1LL << 30, "%lld bytes on the wire for 4 GiB of which "
		 "~20 MiB were ever written", (long long)sent);
	/* Nor naming page by page: round 0 leaves the ~1M untouched pages
	 * out (8 MiB of descriptors), yet counts them as zero pages. */
	json_int_t data = h_int(ram, "normal-bytes"), zero = h_int(ram, "duplicate");
	h_assert(sent - data < 2LL << 20, "%lld bytes on the wire besides %lld of page "
		 "data", (long long)(sent - data), (long long)data);
	h_assert(zero > 1000000, "%lld zero pages counted of ~1M untouched",
		 (long long)zero);
	json_decref(q);
}

Test(migration, ten_hops_back_and_forth, .timeout = 170)
{
	struct h_vm *cur = h_boot_verifying("h0",
		"workload=dirty wss=16M rate=100 verify=1 verify_ms=200",
		"256M", "2");
	h_wait_progress(cur, 1, 20);
	for (int hop = 1; hop <= 10; hop++) {
		char name[8];
		snprintf(name, sizeof(name), "h%d", hop);
		struct h_vm *dst = h_incoming(name, H_CONTROL | H_CONSOLE,
					      "--paused", NULL);
		struct counters last;
		json_t *q = migrate(cur, dst->port, KEEP_SOURCE, &last);
		char *s = h_dump(q);
		h_assert(!strcmp(h_str(q, "status"), "completed"),
			 "hop %d (%s -> %s): %s", hop, cur->name, name, s);
		free(s);
		json_decref(q);
		h_expect_same_memory(cur, dst);
		struct counters now = read_counters(dst);
		h_assert(now.pages >= last.pages && now.uptime >= last.uptime &&
			 now.ticks >= last.ticks && now.checks >= last.checks,
			 "hop %d: counters went back", hop);
		h_assert(now.errors == 0 && now.asserts == 0,
			 "hop %d: errors %llu asserts %llu", hop,
			 LLU(now.errors), LLU(now.asserts));
		/* It checks itself between hops, not only at the end. */
		h_wait_guest_ge(dst, "checks-done", now.checks + 1, 20);
		h_assert(h_guest_u64(dst, "pages-written") > last.pages,
			 "hop %d: the workload does not run at %s", hop, name);
		int rc = h_vm_wait(cur, 20);
		h_assert(rc == 0, "hop %d: source %s exited %d", hop, cur->name, rc);
		cur = dst;
	}
	h_expect_verifies(cur);
	h_assert(h_guest_u64(cur, "errors") == 0, "errors after ten hops");
}

/* ---- failures: the source keeps the guest ------------------------------- */

static bool desc_has(const char *desc, const char *const *words)
{
	for (; *words; words++)
		if (strcasestr(desc, *words))
			return true;
	return false;
}

/*
 * After a failed or cancelled migration: query-migrate says so (with an
 * error-desc naming one of @words when it failed), the VM runs here, the
 * guest goes on working, and a full check passes.
 */
static void expect_source_kept(struct h_vm *src, json_t *q, const char *want,
			       const char *const *words, bool busy)
{
	char *s = h_dump(q);
	h_assert(!strcmp(h_str(q, "status"), want), "wanted %s, got %s", want, s);
	if (words) {
		const char *desc = h_str(q, "error-desc");
		h_assert(*desc && desc_has(desc, words),
			 "error-desc does not say what happened: %s", s);
	}
	free(s);
	h_expect_status(src, "running");
	struct counters before = read_counters(src);
	h_wait_guest_ge(src, "progress-reports", before.reports + 2, 20);
	struct counters now = read_counters(src);
	h_assert(now.ticks > before.ticks && now.uptime > before.uptime,
		 "the source's guest does not run on");
	if (busy)
		h_assert(now.pages > before.pages, "pages-written %llu -> %llu: "
			 "the source's workload stopped", LLU(before.pages),
			 LLU(now.pages));
	h_expect_verifies(src);
	/* The source does not end by itself after a failure. */
	h_assert(!h_vm_exited(src), "the source exited");
}

#define FAULT_GUEST "workload=dirty wss=32M rate=0 verify=1 verify_ms=500"

static const char *const killed_words[] = {
	"closed", "reset", "broken pipe", "destination", NULL,
};

static void destination_dies(const char *point)
{
	struct h_vm *src = h_boot_verifying("src", FAULT_GUEST, "256M", "1");
	struct h_vm *dst = h_incoming("dst", H_CONTROL, "--x-fault", point, NULL);
	start_migration(src, dst->port, "");
	json_t *q = h_wait_migration(src, MIG_S, NULL);
	int rc = h_vm_wait(dst, 30);
	h_assert(rc == 99, "destination with --x-fault %s exited %d, wanted 99",
		 point, rc);
	h_assert(h_file_contains(dst->err_path, "fault injection"),
		 "the destination did not die where asked");
	expect_source_kept(src, q, "failed", killed_words, true);
	json_decref(q);
}

Test(migration_faults, destination_dies_in_round0)
{
	destination_dies("round0");
}

Test(migration_faults, destination_dies_in_round1)
{
	destination_dies("round1");
}

Test(migration_faults, destination_dies_in_stop_and_copy)
{
	destination_dies("device");
}

/*
 * The destination dies after READY, before it could have read COMMIT: it
 * never ran the guest, and the issue asks that the source resume.
 */
Test(migration_faults, destination_dies_before_commit)
{
	destination_dies("before-commit");
}

/*
 * After COMMIT the source cannot know whether the destination runs the
 * guest: it must keep it paused (never two copies running), in a state of
 * its own that refuses a plain cont and a second migrate, and say what it
 * knows; the operator, who knows the destination is dead, resumes it with
 * cont and force.
 */
Test(migration_faults, destination_dies_after_commit_source_stays_paused)
{
	struct h_vm *src = h_boot_verifying("src", FAULT_GUEST, "256M", "1");
	struct h_vm *dst = h_incoming("dst", H_CONTROL, "--x-fault",
				      "after-commit", NULL);
	start_migration(src, dst->port, "");
	json_t *q = h_wait_migration(src, MIG_S, NULL);
	int rc = h_vm_wait(dst, 30);
	h_assert(rc == 99, "destination with --x-fault after-commit exited %d", rc);
	char *s = h_dump(q);
	h_assert(!strcmp(h_str(q, "status"), "failed") &&
		 strstr(h_str(q, "error-desc"), "COMMIT"),
		 "wanted failed with an error-desc about COMMIT: %s", s);
	json_t *h = json_object_get(json_object_get(q, "ferry"), "handover");
	h_assert(json_is_true(json_object_get(h, "commit-sent")) &&
		 json_is_false(json_object_get(h, "confirmed")) &&
		 !strcmp(h_str(h, "outcome"), "unknown"),
		 "ferry.handover does not say COMMIT went out unconfirmed: %s", s);
	free(s);
	json_decref(q);
	h_expect_status(src, "postmigrate-unknown");
	/* Neither a plain cont nor a migration to a second destination may
	 * start a second copy. */
	json_t *e = h_qmp_err(src, "{\"execute\":\"cont\"}");
	h_assert(strstr(h_str(e, "desc"), "force"), "cont refused without "
		 "saying how to force it: %s", h_str(e, "desc"));
	json_decref(e);
	struct h_vm *dst2 = h_incoming("dst2", H_CONTROL, NULL);
	e = h_qmp_err(src, "{\"execute\":\"migrate\",\"arguments\":{\"uri\":\"%s\"}}",
		      h_mig_uri(dst2->port));
	h_assert(strstr(h_str(e, "desc"), "COMMIT"), "migrate refused without "
		 "saying why: %s", h_str(e, "desc"));
	json_decref(e);
	h_expect_status(src, "postmigrate-unknown");
	struct counters a = read_counters(src);
	h_sleep_ms(1500);
	struct counters b = read_counters(src);
	h_assert(b.reports == a.reports && b.uptime == a.uptime,
		 "the guest runs at the source after COMMIT went out");
	h_assert(!h_vm_exited(src), "the source exited: the guest would be lost");
	json_decref(h_qmp_ok(src, "{\"execute\":\"cont\",\"arguments\":{\"force\":true}}"));
	h_expect_status(src, "running");
	h_wait_guest_ge(src, "progress-reports", b.reports + 2, 20);
	h_assert(h_guest_u64(src, "pages-written") > b.pages,
		 "the workload does not run after cont");
	h_expect_verifies(src);
}

Test(migration_faults, connection_cut_in_round0)
{
	struct h_vm *src = h_boot_verifying("src", FAULT_GUEST, "256M", "1");
	struct h_vm *dst = h_incoming("dst", H_CONTROL, NULL);
	/* 32 MiB of written pages at 16 MiB/s: round 0 lasts ~2 s; the
	 * link breaks after 4 MiB of it.  One stream: the proxy forwards
	 * one connection, and the pages must be on it. */
	struct h_proxy *px = h_proxy_start(dst->port, 4 << 20);
	start_migration(src, h_proxy_port(px),
			",\"max-bandwidth\":16777216,\"multifd-channels\":1");
	json_t *q = h_wait_migration(src, MIG_S, NULL);
	h_assert(h_proxy_was_cut(px), "the proxy was not cut");
	json_t *rounds = json_object_get(json_object_get(q, "ferry"), "rounds");
	char *s = h_dump(q);
	h_assert(json_array_size(rounds) == 0,
		 "the cut was meant to happen in round 0: %s", s);
	free(s);
	static const char *const words[] = {
		"closed", "reset", "broken pipe", "connection", NULL,
	};
	int rc = h_vm_wait(dst, 30);
	h_assert(rc == H_EXIT_VMM, "destination exited %d after the cut, wanted %d",
		 rc, H_EXIT_VMM);
	h_assert(h_file_contains(dst->err_path, "closed"),
		 "the destination's stderr does not say the connection closed");
	expect_source_kept(src, q, "failed", words, true);
	json_decref(q);
}

Test(migration_faults, destination_refuses_too_much_memory)
{
	struct h_vm *src = h_boot_verifying("src",
		"workload=dirty wss=16M rate=50 verify=1 verify_ms=500", "512M", "1");
	struct h_vm *dst = h_incoming("dst", H_CONTROL, "--max-memory", "256M",
				      NULL);
	start_migration(src, dst->port, "");
	json_t *q = h_wait_migration(src, MIG_S, NULL);
	static const char *const words[] = { "memory", NULL };
	const char *desc = h_str(q, "error-desc");
	h_assert(strstr(desc, "512") && strstr(desc, "256"),
		 "error-desc should give both sizes: %s", desc);
	/* A refused source is dropped; the destination waits on for one it
	 * can host. */
	h_assert(h_wait_stderr(dst, "dropped, still waiting", 20) &&
		 h_file_contains(dst->err_path, "memory"),
		 "the destination's stderr does not name the memory");
	h_assert(!h_vm_exited(dst), "the refusing destination ended");
	json_t *dq = h_query_migrate(dst);
	h_assert(!strcmp(h_str(dq, "status"), "setup"),
		 "the refusing destination is not waiting: %s", h_str(dq, "status"));
	json_decref(dq);
	expect_source_kept(src, q, "failed", words, true);
	json_decref(q);
}

Test(migration_faults, cancel_slow_migration_then_migrate_again)
{
	struct h_vm *src = h_boot_verifying("src", FAULT_GUEST, "256M", "1");
	struct h_vm *dst = h_incoming("dst", H_CONTROL, NULL);
	/* 4 MiB/s: round 0 alone would take ~8 s. */
	start_migration(src, dst->port, ",\"max-bandwidth\":4194304");
	json_t *q = NULL;
	h_assert(h_wait_for(({
		json_decref(q);
		q = h_query_migrate(src);
		!strcmp(h_str(q, "status"), "active") &&
		json_integer_value(json_object_get(json_object_get(q, "ram"),
						   "transferred")) > 1 << 20; }),
		20), "the migration did not get going");
	json_decref(q);
	json_decref(h_qmp_ok(src, "{\"execute\":\"migrate-cancel\"}"));
	q = h_wait_migration(src, 20, NULL);
	expect_source_kept(src, q, "cancelled", NULL, true);
	json_decref(q);
	int rc = h_vm_wait(dst, 30);
	h_assert(rc != 0, "the abandoned destination exited 0");

	/* Nothing is left over: the next migration goes through. */
	struct h_vm *dst2 = h_incoming("dst2", H_CONTROL | H_CONSOLE, NULL);
	struct counters last;
	q = migrate(src, dst2->port, "", &last);
	expect_arrived(src, dst2, q, &last, true);
	json_decref(q);
}

/* A 1 ms limit alone is not enough: a vCPU starved by a busy host may
 * dirty nothing for a round, and then the rest fits.  At 48 MiB/s even the
 * device and vCPU state take longer than 1 ms, so this can never fit. */
#define NONCONVERGING ",\"downtime-ms\":1,\"max-rounds\":3,\"max-bandwidth\":50331648"

Test(migration_faults, policy_abort_when_not_converging)
{
	struct h_vm *src = h_boot_verifying("src",
		"workload=dirty wss=16M rate=0 verify=1 verify_ms=500", "256M", "1");
	struct h_vm *dst = h_incoming("dst", H_CONTROL, NULL);
	start_migration(src, dst->port, NONCONVERGING ",\"switchover\":\"abort\"");
	json_t *q = h_wait_migration(src, MIG_S, NULL);
	static const char *const words[] = { "converge", NULL };
	expect_source_kept(src, q, "failed", words, true);
	json_decref(q);
	int rc = h_vm_wait(dst, 30);
	h_assert(rc != 0, "the abandoned destination exited 0");
	/* The source said why before it hung up. */
	h_assert(h_file_contains(dst->err_path, "the source failed: pre-copy did not "
				 "converge") &&
		 h_file_contains(dst->err_path, "the guest stays at the source"),
		 "the destination does not say why the source gave up");
}

Test(migration_faults, policy_force_when_not_converging)
{
	struct h_vm *src = h_boot_verifying("src",
		"workload=dirty wss=16M rate=0 verify=1 verify_ms=500", "256M", "1");
	struct h_vm *dst = h_incoming("dst", H_CONTROL | H_CONSOLE, NULL);
	struct counters last;
	json_t *q = migrate(src, dst->port, NONCONVERGING ",\"switchover\":\"force\"",
			    &last);
	char *s = h_dump(q);
	h_assert(!strcmp(h_str(q, "status"), "completed"),
		 "with switchover force it should have switched over: %s", s);
	json_t *f = json_object_get(q, "ferry");
	const char *why = h_str(f, "convergence-reason");
	h_assert(strstr(why, "forced"), "convergence-reason '%s': the switch-over "
		 "was meant to be forced", why);
	h_assert(json_is_true(json_object_get(f, "switchover-forced")) &&
		 json_is_true(json_object_get(f, "downtime-exceeded")),
		 "a forced switch-over over a 1 ms limit is not reported as such: %s", s);
	free(s);
	h_assert(h_file_contains(src->err_path, "exceeded the 1.0 ms downtime limit"),
		 "the source does not warn that the pause exceeded the limit");
	expect_arrived(src, dst, q, &last, true);
	json_decref(q);
}

/*
 * The case: a guest that dirties faster than the link, with the
 * default policy.  Pre-copy never switches over while the rest does not
 * fit - however many rounds - and says it waits; the guest runs on.  Then
 * migrate-set-parameters, live, raises the limit and lifts the rate: the
 * migration completes, within the limit in force, not forced.
 */
Test(migration_faults, default_never_exceeds_the_downtime_limit)
{
	struct h_vm *src = h_boot_verifying("src",
		"workload=dirty wss=16M rate=0 verify=1 verify_ms=500", "256M", "1");
	struct h_vm *dst = h_incoming("dst", H_CONTROL | H_CONSOLE, NULL);
	/* 1 ms at 48 MiB/s: even the vCPU state does not fit. */
	start_migration(src, dst->port, ",\"downtime-ms\":1,\"max-bandwidth\":50331648");
	json_t *q = NULL;
	bool waiting = h_wait_for(({
		json_decref(q);
		q = h_query_migrate(src);
		json_integer_value(json_object_get(json_object_get(q, "ram"),
						   "dirty-sync-count")) >= 6 &&
		*h_str(json_object_get(q, "ferry"), "not-converging"); }), 60);
	char *s = h_dump(q);
	h_assert(waiting, "no sign of waiting after 6 rounds: %s", s);
	h_assert(!strcmp(h_str(q, "status"), "active"),
		 "the default policy stopped pushing: %s", s);
	free(s);
	json_decref(q);
	h_expect_status(src, "running");
	h_assert(h_file_contains(src->err_path, "pushing on until it fits"),
		 "the source does not log that it waits for a fit");

	/* As QEMU: the running migration takes the new values. */
	json_decref(h_qmp_ok(src, "{\"execute\":\"migrate-set-parameters\","
			     "\"arguments\":{\"downtime-limit\":60000,\"max-bandwidth\":0}}"));
	q = h_wait_migration(src, MIG_S, NULL);
	s = h_dump(q);
	json_t *f = json_object_get(q, "ferry");
	h_assert(!strcmp(h_str(q, "status"), "completed"), "not completed: %s", s);
	h_assert(json_is_false(json_object_get(f, "switchover-forced")) &&
		 json_is_false(json_object_get(f, "downtime-exceeded")) &&
		 json_integer_value(json_object_get(f, "downtime-limit-ms")) == 60000 &&
		 json_integer_value(json_object_get(f, "max-bandwidth")) == 0,
		 "the raised limit did not apply, or it was forced: %s", s);
	h_assert(!strstr(h_str(f, "convergence-reason"), "forced"), "forced: %s", s);
	free(s);
	json_decref(q);
	h_wait_control(dst, 30);
	h_expect_status(dst, "running");
}

/*
 * Progress from the first second: at 4 MiB/s round 0 lasts ~8 s; within
 * it, query-migrate's bytes, rate, pages left and ETA move, and the
 * round is 0.  Then a cancel: the destination is told, and says so.
 */
Test(migration_faults, progress_moves_during_round0_and_cancel_is_told)
{
	struct h_vm *src = h_boot_verifying("src", FAULT_GUEST, "256M", "1");
	struct h_vm *dst = h_incoming("dst", H_CONTROL, NULL);
	start_migration(src, dst->port, ",\"max-bandwidth\":4194304");
	json_int_t seen[4] = { 0 }, left_first = 0, left_last = 0;
	unsigned n = 0;
	double t0 = h_now();
	while (n < 4 && h_now() - t0 < 6) {
		json_t *q = h_query_migrate(src);
		json_t *ram = json_object_get(q, "ram"), *f = json_object_get(q, "ferry");
		json_int_t sent = json_integer_value(json_object_get(ram, "transferred"));
		char *s = h_dump(q);
		h_assert(json_array_size(json_object_get(f, "rounds")) == 0,
			 "round 0 ended within %.1f s at 4 MiB/s: %s", h_now() - t0, s);
		/* The rate needs a first 50 ms of the round to be measured. */
		if (!strcmp(h_str(q, "status"), "active") && sent > 0 &&
		    json_number_value(json_object_get(ram, "mbps")) > 0 &&
		    (n == 0 || sent > seen[n - 1])) {
			h_assert(json_integer_value(json_object_get(f, "current-round")) == 0 &&
				 json_integer_value(json_object_get(ram, "remaining")) > 0 &&
				 json_object_get(f, "current-round-eta-ms"),
				 "round 0 running, but not all figures move: %s", s);
			json_int_t left = json_integer_value(json_object_get(ram, "remaining"));
			if (!n)
				left_first = left;
			left_last = left;
			seen[n++] = sent;
		}
		free(s);
		json_decref(q);
		h_sleep_ms(250);
	}
	h_assert(n == 4, "transferred moved only %u times in round 0's first 6 s", n);
	h_assert(left_last < left_first, "remaining did not go down in round 0: "
		 "%lld -> %lld", (long long)left_first, (long long)left_last);

	json_decref(h_qmp_ok(src, "{\"execute\":\"migrate-cancel\"}"));
	json_t *q = h_wait_migration(src, 20, NULL);
	expect_source_kept(src, q, "cancelled", NULL, true);
	json_decref(q);
	int rc = h_vm_wait(dst, 30);
	h_assert(rc != 0, "the abandoned destination exited 0");
	h_assert(h_file_contains(dst->err_path, "the source cancelled the migration"),
		 "the destination does not say the source cancelled");
}

/* ---- the command line ------------------------------------------------------ */

/* The last non-empty line of s, parsed. */
static json_t *last_json_line(char *s)
{
	size_t n = strlen(s);
	while (n && (s[n - 1] == '\n' || s[n - 1] == ' '))
		s[--n] = '\0';
	char *line = strrchr(s, '\n');
	line = line ? line + 1 : s;
	return json_loads(line, 0, NULL);
}

Test(migration_cli, migrate_wait_json_completes)
{
	struct h_vm *src = h_boot_verifying("src",
		"workload=dirty wss=16M rate=100 verify=1 verify_ms=500", "256M", "1");
	struct h_vm *dst = h_incoming("dst", H_CONTROL | H_CONSOLE, NULL);
	struct counters last = read_counters(src);
	char *out = NULL, *err = NULL;
	int rc = h_run(60, &out, &err, "migrate", "--control", src->control,
		       "--to", h_mig_uri(dst->port), "--wait", "--json", NULL);
	h_assert(rc == 0, "ferry migrate --wait --json exited %d; stdout: %s "
		 "stderr: %s", rc, out, err);
	json_t *j = last_json_line(out);
	h_assert(json_is_object(j), "the last line of stdout is not JSON: %s", out);
	h_assert(!strcmp(h_str(j, "status"), "completed"), "status '%s'",
		 h_str(j, "status"));
	h_assert(json_is_object(json_object_get(j, "ram")), "no ram object");
	expect_arrived(src, dst, j, &last, true);
	json_decref(j);
	free(out);
	free(err);
}

Test(migration_cli, migrate_to_closed_port_exits_1)
{
	struct h_vm *src = h_boot_verifying("src",
		"workload=dirty wss=16M rate=100 verify=1 verify_ms=500", "256M", "1");
	int port = h_free_port();
	char *out = NULL, *err = NULL;
	int rc = h_run(60, &out, &err, "migrate", "--control", src->control,
		       "--to", h_mig_uri(port), "--wait", "--json", NULL);
	h_assert(rc == 1, "ferry migrate to a closed port exited %d, wanted 1; "
		 "stdout: %s stderr: %s", rc, out, err);
	json_t *j = last_json_line(out);
	h_assert(json_is_object(j) && !strcmp(h_str(j, "status"), "failed"),
		 "no final JSON with status failed: %s", out);
	const char *desc = h_str(j, "error-desc");
	h_assert(strcasestr(desc, "refused") || strcasestr(desc, "connect"),
		 "error-desc does not say the connection was refused: %s", desc);
	json_decref(j);
	free(out);
	free(err);
	json_t *q = h_query_migrate(src);
	static const char *const words[] = { "refused", "connect", NULL };
	expect_source_kept(src, q, "failed", words, true);
	json_decref(q);
}
