/*
 * Post-copy and hybrid migrations between real `ferry` processes
 * (migrate's "mode", migrate-start-postcopy, docs/postcopy-design.md).
 *
 * Without a guest: a destination that cannot use userfaultfd refuses a
 * source that insists on post-copy, naming why; the options and commands
 * refuse what makes no sense.  With a guest (skipped without KVM): the
 * self-checking test guest moves by post-copy and by hybrid, and the
 * memory of the paused source and the `--paused` destination must hash
 * alike; migrate-start-postcopy rescues a pre-copy that cannot converge;
 * the source's statuses run setup/active/device/postcopy-active/completed
 * in that order.  Every post-copy puts each page on the wire once, but for
 * the pages asked for while their push still sat in the source's socket;
 * pages scattered over a 4 GiB guest all arrive (the source lists them
 * from the page tables as runs); a preallocated destination still drops
 * what the source lists.
 */
#include "harness/harness.h"
#include "harness/wire.h"

#include <string.h>
#include <strings.h>
#include <unistd.h>

TestSuite(postcopy_mig, H_FIXTURES, .timeout = 120);

#define MIG_S  90.0
#define LLU(x) ((unsigned long long)(x))
/* `migrate` members that keep the source after completion, paused in
 * postmigrate, so that its memory can be compared. */
#define KEEP_SOURCE ",\"x-keep-source\":true"

/* ---- without a guest ------------------------------------------------------ */

/* A HELLO that insists on post-copy; it describes no VM this ferry can
 * build, so a destination that gets past the capabilities refuses it for
 * another reason. */
static void send_postcopy_hello(int fd)
{
	struct w_buf b = { 0 };
	const char *hello = "{\"memory\": 16777216, \"capabilities\": "
			    "{\"postcopy\": {\"value\": true, \"mandatory\": true}}}";
	w_put_preamble(&b, W_VERSION);
	w_put_record(&b, W_REC_HELLO, hello, (uint32_t)strlen(hello));
	w_send_all(fd, b.p, b.len);
	w_free(&b);
}

static char *refusal(int fd)
{
	uint32_t type = 0, len;
	char *why = NULL;
	h_assert(w_recv_record(fd, &type, &why, &len, 20), "no answer to HELLO");
	h_assert(type == W_REC_REFUSE, "HELLO answered 0x%x '%s', wanted REFUSE", type, why);
	return why;
}

Test(postcopy_mig, destination_without_userfaultfd_refuses_postcopy)
{
	struct h_vm *dst = h_incoming("dst", H_CONTROL, "--x-no-userfaultfd", NULL);
	int fd = w_connect(dst->port);
	send_postcopy_hello(fd);
	char *why = refusal(fd);
	h_assert(strstr(why, "capability 'postcopy' = true is mandatory for the source "
			"and not supported here") &&
		 strstr(why, "post-copy needs userfaultfd") &&
		 strstr(why, "--x-no-userfaultfd"),
		 "the refusal does not say why post-copy cannot be: %s", why);
	free(why);
	close(fd);
	/* Dropped like any refused peer: the destination waits on. */
	h_assert(h_wait_stderr(dst, "dropped, still waiting for the source", 20),
		 "the refused source was not dropped");
	h_assert(!h_vm_exited(dst), "the destination ended");
	json_t *q = h_query_migrate(dst);
	h_assert(!strcmp(h_str(q, "status"), "setup"), "status '%s' after a refusal",
		 h_str(q, "status"));
	json_decref(q);
	h_quit_ok(dst);
}

/* Where userfaultfd works, the same HELLO gets past the capabilities (and
 * is refused for what it lacks); where it does not, it says so. */
Test(postcopy_mig, destination_with_userfaultfd_gets_past_postcopy)
{
	struct h_vm *dst = h_incoming("dst", H_CONTROL, NULL);
	int fd = w_connect(dst->port);
	send_postcopy_hello(fd);
	char *why = refusal(fd);
	h_assert(!strstr(why, "'postcopy'") || strstr(why, "post-copy needs userfaultfd: "),
		 "refused for post-copy without a reason: %s", why);
	free(why);
	close(fd);
	h_quit_ok(dst);
}

Test(postcopy_mig, no_userfaultfd_switch_is_for_a_destination)
{
	char *err = NULL;
	int rc = h_run(20, NULL, &err, "run", "--x-no-userfaultfd", "--memory", "64M", NULL);
	h_assert(rc == 2, "exit %d, wanted 2 (usage): %s", rc, err);
	h_assert(strstr(err, "--x-no-userfaultfd"), "the message does not name it: %s", err);
	free(err);
}

Test(postcopy_mig, start_postcopy_on_a_destination_is_refused)
{
	struct h_vm *dst = h_incoming("dst", H_CONTROL, NULL);
	json_t *e = h_qmp_err(dst, "{\"execute\":\"migrate-start-postcopy\"}");
	h_assert(strstr(h_str(e, "desc"), "goes to the source"),
		 "migrate-start-postcopy on a destination: %s", h_str(e, "desc"));
	json_decref(e);
	/* Its further connections are counted from the start. */
	json_t *q = h_query_migrate(dst);
	json_t *c = json_object_get(json_object_get(q, "ferry"), "connections");
	h_assert(c && h_int(c, "accepted") == 0 && h_int(c, "refused") == 0 &&
		 h_int(c, "waiting") == 0, "ferry.connections missing or not zero");
	json_decref(q);
	h_quit_ok(dst);
}

Test(postcopy_mig, migrate_cli_refuses_bad_modes)
{
	static const struct { const char *opt, *val, *msg; } rows[] = {
		{ "--mode", "copy", "--mode wants precopy, postcopy or hybrid, not 'copy'" },
		{ "--precopy-rounds", "3", "go with --mode hybrid" },
		{ "--precopy-ms", "100", "go with --mode hybrid" },
	};
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		char *err = NULL;
		int rc = h_run(20, NULL, &err, "migrate", "--control", "/nonexistent",
			       "--to", "tcp:127.0.0.1:1", rows[i].opt, rows[i].val, NULL);
		h_assert(rc == 2 && strstr(err, rows[i].msg),
			 "%s %s: exit %d, '%s'", rows[i].opt, rows[i].val, rc, err);
		free(err);
	}
	/* hybrid with its limits is fine up to the connection */
	char *err = NULL;
	int rc = h_run(20, NULL, &err, "migrate", "--control", "/nonexistent", "--to",
		       "tcp:127.0.0.1:1", "--mode", "hybrid", "--precopy-rounds", "3",
		       "--precopy-ms", "500", NULL);
	h_assert(rc == 1 && !strstr(err, "usage"), "exit %d: %s", rc, err);
	free(err);
}

/* ---- with a guest (skipped without KVM) -----------------------------------
 * Read twice: they cannot run where they were written. */

/* The destination completed too (it has every page, said PAGES_DONE and
 * retired post-copy): its query-migrate. */
static json_t *dst_completed(struct h_vm *dst)
{
	h_wait_control(dst, 30);
	json_t *dq = NULL;
	bool done = h_wait_for(({ json_decref(dq); dq = h_query_migrate(dst);
				  !strcmp(h_str(dq, "status"), "completed"); }), 30);
	char *s = h_dump(dq);
	h_assert(done, "the destination did not complete: %s", s);
	free(s);
	return dq;
}

/*
 * Migrate src to a --paused dst with @args (more migrate members after the
 * URI) and the source kept; then: both sides completed, the paused
 * memories hash alike, the guest verifies clean at the destination once
 * running, and post-copy's figures add up.  Returns the source's final
 * query-migrate.
 */
static json_t *postcopy_verified_to(struct h_vm *src, struct h_vm *dst, const char *args)
{
	json_decref(h_qmp_ok(src, "{\"execute\":\"migrate\",\"arguments\":"
			     "{\"uri\":\"%s\"%s" KEEP_SOURCE "}}", h_mig_uri(dst->port), args));
	json_t *q = h_wait_migration(src, MIG_S, NULL);
	char *s = h_dump(q);
	h_assert(!strcmp(h_str(q, "status"), "completed"), "not completed: %s", s);
	json_t *pc = json_object_get(json_object_get(q, "ferry"), "postcopy");
	h_assert(pc, "no ferry.postcopy at the source: %s", s);
	long long missing = h_int(pc, "missing-pages");
	h_assert(missing > 0 &&
		 h_int(pc, "pages-pushed") + h_int(pc, "pages-requested") -
		 h_int(pc, "prepage-hits") == missing,
		 "pushed + requested - hits is not the missing pages: %s", s);
	h_assert(h_int(pc, "bytes-push") > 0, "nothing on the push connection: %s", s);
	/* On the wire: each page pushed, each page answered - not a request
	 * for a page the push had delivered already - with its data unless
	 * zero, 20 bytes of framing (record header and CRC, descriptor), and
	 * PUSH_END's 12; PUSH_MARK's 12 after the pages the guest needs
	 * first, and PUSH_ZERO's 20 and 16 a run naming the zero pages.  A
	 * page goes twice only when it was asked for while its push still
	 * sat in the source's socket. */
	long long resent = h_int(pc, "prepage-hits") - h_int(pc, "prepage-not-resent");
	long long sent = missing + resent, zero = h_int(pc, "zero-pages");
	long long want = (sent - zero) * 4096 + sent * 20 + 12 + 12 * h_int(pc, "push-marks") +
			 20 * h_int(pc, "zero-run-records") + 16 * h_int(pc, "zero-runs");
	h_assert(h_int(pc, "push-marks") == 1, "no PUSH_MARK between two ferries: %s", s);
	h_assert(h_int(pc, "bytes-push") + h_int(pc, "bytes-answers") == want,
		 "post-copy sent %lld bytes, not %lld (%lld pages, %lld twice): %s",
		 h_int(pc, "bytes-push") + h_int(pc, "bytes-answers"), want, sent,
		 resent, s);
	free(s);

	/* The destination has every page (it said PAGES_DONE) and retires
	 * post-copy: completed there too. */
	json_t *dq = dst_completed(dst);
	s = h_dump(dq);
	json_t *dpc = json_object_get(json_object_get(dq, "ferry"), "postcopy");
	h_assert(dpc && h_int(dpc, "pages-still-missing") == 0 &&
		 h_int(dpc, "missing-pages") == missing &&
		 h_int(dpc, "crossings") == resent,
		 "destination's post-copy figures disagree: %s", s);
	free(s);
	json_decref(dq);

	h_expect_status(dst, "paused");
	h_expect_same_memory(src, dst);
	h_expect_status(dst, "running");
	h_expect_verifies(dst);
	h_assert(h_wait_resume_verified(dst, 30) == 0, "errors in the guest's full pass "
		 "after arriving");
	h_expect_guest_runs(dst);
	return q;
}

static json_t *postcopy_verified(struct h_vm *src, const char *args)
{
	struct h_vm *dst = h_incoming("dst", H_CONTROL | H_CONSOLE, "--paused", NULL);
	return postcopy_verified_to(src, dst, args);
}

Test(postcopy_mig, postcopy_idle_guest_same_memory)
{
	struct h_vm *src = h_boot_verifying("src",
		"workload=idle wss=32M verify=1 verify_ms=500", "256M", "1");
	json_t *q = postcopy_verified(src, ",\"mode\":\"postcopy\"");
	/* Pure post-copy: no round; every page the guest touched listed
	 * missing, the never-touched rest (zero on both sides) not. */
	json_t *pc = json_object_get(json_object_get(q, "ferry"), "postcopy");
	h_assert(h_int(json_object_get(q, "ram"), "dirty-sync-count") == 0,
		 "pure post-copy ran pre-copy rounds");
	h_assert(h_int(pc, "missing-pages") > 0 &&
		 h_int(pc, "missing-pages") + h_int(pc, "pages-present") == (256 << 20) / 4096,
		 "pure post-copy: missing %lld + present %lld is not all of memory",
		 h_int(pc, "missing-pages"), h_int(pc, "pages-present"));
	json_decref(q);
}

Test(postcopy_mig, postcopy_busy_four_vcpus_same_memory)
{
	struct h_vm *src = h_boot_verifying("src",
		"workload=dirty wss=64M rate=0 pattern=random verify=1 verify_ms=500",
		"512M", "4");
	json_decref(postcopy_verified(src, ",\"mode\":\"postcopy\""));
}

Test(postcopy_mig, hybrid_busy_guest_same_memory)
{
	struct h_vm *src = h_boot_verifying("src",
		"workload=dirty wss=64M rate=0 pattern=seq verify=1 verify_ms=500",
		"512M", "1");
	json_t *q = postcopy_verified(src, ",\"mode\":\"hybrid\",\"precopy-rounds\":2");
	json_t *pc = json_object_get(json_object_get(q, "ferry"), "postcopy");
	/* At most two rounds (fewer when pre-copy would have stopped
	 * anyway: a hybrid switches then too), then only what the guest
	 * dirtied went as post-copy. */
	long long rounds = h_int(json_object_get(q, "ram"), "dirty-sync-count");
	h_assert(rounds >= 1 && rounds <= 2, "hybrid ran %lld rounds, wanted 1 or 2",
		 rounds);
	h_assert(h_int(pc, "pages-present") > 0 &&
		 h_int(pc, "missing-pages") + h_int(pc, "pages-present") == (512 << 20) / 4096,
		 "hybrid: missing %lld + present %lld is not all of memory",
		 h_int(pc, "missing-pages"), h_int(pc, "pages-present"));
	json_decref(q);
}

/*
 * A hybrid of a paused guest: pre-copy sends every page and nothing is
 * dirtied, so no page is left for post-copy.  Both sides must complete
 * (the source used to wait for the destination's PAGES_DONE on page
 * connections the destination never took, and failed once it closed
 * them).
 */
Test(postcopy_mig, hybrid_with_nothing_left_completes)
{
	struct h_vm *src = h_boot_verifying("src",
		"workload=idle wss=32M verify=1 verify_ms=500", "256M", "1");
	json_decref(h_qmp_ok(src, "{\"execute\":\"stop\"}"));
	struct h_vm *dst = h_incoming("dst", H_CONTROL | H_CONSOLE, "--paused", NULL);
	json_decref(h_qmp_ok(src, "{\"execute\":\"migrate\",\"arguments\":{\"uri\":\"%s\","
			     "\"mode\":\"hybrid\",\"precopy-rounds\":5" KEEP_SOURCE "}}",
			     h_mig_uri(dst->port)));
	json_t *q = h_wait_migration(src, MIG_S, NULL);
	char *s = h_dump(q);
	h_assert(!strcmp(h_str(q, "status"), "completed"), "not completed: %s", s);
	free(s);
	json_decref(q);
	json_decref(dst_completed(dst));
	h_expect_same_memory(src, dst);
	h_expect_verifies(dst);
}

/*
 * A pre-copy that cannot converge (1 ms downtime limit at 48 MiB/s, a
 * guest rewriting 16 MiB): it waits, as the default policy does; then
 * migrate-start-postcopy switches it, and it completes.  A second one is
 * refused as already asked for or started.
 */
Test(postcopy_mig, start_postcopy_rescues_a_precopy_that_cannot_converge)
{
	struct h_vm *src = h_boot_verifying("src",
		"workload=dirty wss=16M rate=0 verify=1 verify_ms=500", "256M", "1");
	json_t *e = h_qmp_err(src, "{\"execute\":\"migrate-start-postcopy\"}");
	h_assert(strstr(h_str(e, "desc"), "no migration is in progress"),
		 "before any migration: %s", h_str(e, "desc"));
	json_decref(e);
	struct h_vm *dst = h_incoming("dst", H_CONTROL | H_CONSOLE, "--paused", NULL);
	json_decref(h_qmp_ok(src, "{\"execute\":\"migrate\",\"arguments\":{\"uri\":\"%s\","
			     "\"downtime-ms\":1,\"max-bandwidth\":50331648" KEEP_SOURCE "}}",
			     h_mig_uri(dst->port)));
	json_t *q = NULL;
	bool waiting = h_wait_for(({ json_decref(q); q = h_query_migrate(src);
		h_int(json_object_get(q, "ram"), "dirty-sync-count") >= 3 &&
		!strcmp(h_str(q, "status"), "active"); }), 60);
	char *s = h_dump(q);
	h_assert(waiting, "pre-copy did not run 3 rounds: %s", s);
	free(s);
	json_decref(q);
	json_decref(h_qmp_ok(src, "{\"execute\":\"migrate-start-postcopy\"}"));
	/* Refused: asked for already (or, on a very fast host, over). */
	e = h_qmp_try(src, "{\"execute\":\"migrate-start-postcopy\"}");
	const char *desc = e ? h_str(json_object_get(e, "error"), "desc") : "";
	h_assert(strstr(desc, "post-copy has already") ||
		 strstr(desc, "no migration is in progress"),
		 "a second migrate-start-postcopy was not refused: '%s'", desc);
	json_decref(e);
	q = h_wait_migration(src, MIG_S, NULL);
	s = h_dump(q);
	h_assert(!strcmp(h_str(q, "status"), "completed") &&
		 json_object_get(json_object_get(q, "ferry"), "postcopy"),
		 "migrate-start-postcopy did not complete it by post-copy: %s", s);
	free(s);
	json_decref(q);
	h_wait_control(dst, 30);
	h_wait_for(({ json_t *d = h_query_migrate(dst);
		      bool c = !strcmp(h_str(d, "status"), "completed");
		      json_decref(d); c; }), 30);
	h_expect_same_memory(src, dst);
	h_expect_verifies(dst);
}

/* The source's statuses, polled as fast as the control socket answers,
 * only ever move forward through QEMU's post-copy sequence. */
Test(postcopy_mig, query_migrate_status_sequence)
{
	static const char *const order[] = { "setup", "active", "device",
					      "postcopy-active", "completed" };
	struct h_vm *src = h_boot_verifying("src",
		"workload=dirty wss=64M rate=0 verify=1 verify_ms=500", "1G", "1");
	struct h_vm *dst = h_incoming("dst", H_CONTROL | H_CONSOLE, NULL);
	json_decref(h_qmp_ok(src, "{\"execute\":\"migrate\",\"arguments\":{\"uri\":\"%s\","
			     "\"mode\":\"hybrid\",\"precopy-rounds\":1" KEEP_SOURCE "}}",
			     h_mig_uri(dst->port)));
	int at = 0;
	bool seen[5] = { false };
	double t0 = h_now();
	for (;;) {
		json_t *q = h_query_migrate(src);
		const char *st = h_str(q, "status");
		int k = -1;
		for (int i = 0; i < 5; i++)
			if (!strcmp(st, order[i]))
				k = i;
		char *s = h_dump(q);
		h_assert(k >= 0, "status '%s' is not in the post-copy sequence: %s", st, s);
		h_assert(k >= at, "status went back from %s to %s", order[at], st);
		free(s);
		json_decref(q);
		if (k < 0)
			break;   /* failed above */
		at = k;
		seen[k] = true;
		if (k == 4)
			break;
		h_assert(h_now() - t0 < MIG_S, "no completion within %.0f s", MIG_S);
	}
	h_assert(seen[4], "never completed");
	/* The destination went through postcopy-active too, by its log. */
	h_wait_control(dst, 30);
	h_assert(h_wait_stderr(dst, "post-copy: every page has arrived", 30),
		 "the destination did not say post-copy ended");
	h_assert(h_wait_stderr(dst, "; then post-copy)", 30),
		 "the destination's summary does not say post-copy ran");
	h_assert(h_file_contains(src->err_path, "post-copy: the guest runs at the destination"),
		 "the source did not say it served post-copy");
	json_decref(h_qmp_ok(src, "{\"execute\":\"quit\"}"));
	h_vm_wait(src, 20);
	h_expect_status(dst, "running");
}

/*
 * The source lists the pages its guest populated from the page tables,
 * as runs (PAGEMAP_SCAN: the switchover's pause must not pass over every
 * page of a big guest).  Pages the host wrote at hundreds of places
 * scattered over a 4 GiB guest - both memory slots, more runs than one
 * scan returns at once - must all be listed and arrive: a page left off
 * the list would stay zero at the destination and the digests differ.
 */
Test(postcopy_mig, scattered_pages_of_a_big_guest_all_arrive)
{
	struct h_vm *src = h_boot_verifying("src",
		"workload=dirty wss=32M rate=8 pattern=random verify=1 verify_ms=500",
		"4G", "1");
	/* 600 pages from 512 MiB up to the 3 GiB hole, 300 above 4 GiB:
	 * never the guest's own (its working set is low), each its own run. */
	unsigned n = 0;
	for (unsigned long long gpa = 512ULL << 20; gpa < (3ULL << 30); gpa += (4ULL << 20) + 4096, n++)
		json_decref(h_qmp_ok(src, "{\"execute\":\"x-guest-memory-write\",\"arguments\":"
				     "{\"gpa\":%llu,\"hex\":\"%08x5aa5\"}}", gpa + 8 * (n % 500), n));
	for (unsigned long long gpa = 4ULL << 30; gpa < (5ULL << 30); gpa += (3ULL << 20) + 8192, n++)
		json_decref(h_qmp_ok(src, "{\"execute\":\"x-guest-memory-write\",\"arguments\":"
				     "{\"gpa\":%llu,\"hex\":\"%08xa55a\"}}", gpa, n));
	h_assert(n > 2 * 256, "only %u scattered pages", n);
	json_t *q = postcopy_verified(src, ",\"mode\":\"postcopy\"");
	json_t *pc = json_object_get(json_object_get(q, "ferry"), "postcopy");
	h_assert(h_int(pc, "missing-pages") > n &&
		 h_int(pc, "missing-pages") + h_int(pc, "pages-present") == (4LL << 30) / 4096,
		 "missing %lld (with %u scattered) + present %lld is not all of memory",
		 h_int(pc, "missing-pages"), n, h_int(pc, "pages-present"));
	json_decref(q);
}

/*
 * A destination whose memory is all populated already (--prealloc: zero
 * pages in place, which userfaultfd would never report missing).  The
 * destination drops the listed pages only where its page tables hold
 * some (a drop over never-touched memory costs the pause for nothing):
 * here that is every listed page, and each must fault and arrive.
 */
Test(postcopy_mig, postcopy_into_a_preallocated_destination)
{
	struct h_vm *src = h_boot_verifying("src",
		"workload=dirty wss=64M rate=0 pattern=random verify=1 verify_ms=500",
		"512M", "1");
	struct h_vm *dst = h_incoming("dst", H_CONTROL | H_CONSOLE, "--paused",
				      "--prealloc", "--memory", "512M", NULL);
	json_decref(postcopy_verified_to(src, dst, ",\"mode\":\"postcopy\""));
}

/* VmRSS of a process, in KiB (0 if unreadable). */
static long long rss_kib(pid_t pid)
{
	char path[64], line[256];
	long long kib = 0;
	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	FILE *f = fopen(path, "r");
	while (f && fgets(line, sizeof(line), f))
		if (sscanf(line, "VmRSS: %lld kB", &kib) == 1)
			break;
	if (f)
		fclose(f);
	return kib;
}

/*
 * release-ram (QEMU's capability): the source lets go of each page the
 * destination has, so the two hold about one copy.  The source's memory
 * is then no longer the guest's, so the oracle is its digest taken
 * paused before the move: the destination's must equal it.  Afterwards
 * the source no longer holds the working set; the destination confirmed
 * pages and the guest checks itself clean there.
 */
Test(postcopy_mig, release_ram_leaves_one_copy_and_the_same_memory)
{
	struct h_vm *src = h_boot_verifying("src",
		"workload=dirty wss=64M rate=0 pattern=random verify=1 verify_ms=500",
		"512M", "1");
	json_t *before = h_release_ram_and_pause(src);
	long long rss0 = rss_kib(src->pid);
	struct h_vm *dst = h_incoming("dst", H_CONTROL | H_CONSOLE, "--paused", NULL);
	json_decref(h_qmp_ok(src, "{\"execute\":\"migrate\",\"arguments\":{\"uri\":\"%s\","
			     "\"mode\":\"postcopy\"" KEEP_SOURCE "}}", h_mig_uri(dst->port)));
	json_t *q = h_wait_migration(src, MIG_S, NULL);
	char *s = h_dump(q);
	h_assert(!strcmp(h_str(q, "status"), "completed"), "not completed: %s", s);
	json_t *pc = json_object_get(json_object_get(q, "ferry"), "postcopy");
	h_assert(pc && json_is_integer(json_object_get(pc, "pages-released")),
		 "no pages-released at the source: %s", s);
	free(s);
	json_decref(q);
	json_t *dq = dst_completed(dst);
	s = h_dump(dq);
	json_t *dpc = json_object_get(json_object_get(dq, "ferry"), "postcopy");
	h_assert(dpc && h_int(dpc, "pages-confirmed") > 0,
		 "the destination confirmed nothing: %s", s);
	free(s);
	json_decref(dq);
	/* The source dropped its copy of the guest's 64 MiB working set
	 * (the drop may end just after completion); what stays is the
	 * process's own. */
	long long rss1 = rss_kib(src->pid);
	for (int k = 0; k < 200 && rss0 - rss1 < 56 * 1024; k++) {
		usleep(50 * 1000);
		rss1 = rss_kib(src->pid);
	}
	h_assert(rss0 - rss1 >= 56 * 1024,
		 "the source still holds %lld KiB of %lld", rss1, rss0);
	h_expect_memory_was(src, before, dst);
	h_expect_guest_runs(dst);
}
