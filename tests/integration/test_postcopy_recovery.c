/*
 * Post-copy recovery between real `ferry` processes (docs/postcopy-design.md,
 * "Recovery"): once the guest runs at the destination a broken link must
 * lose nothing.  Both sides go to postcopy-paused and keep what they hold;
 * migrate-recover at the destination and migrate with "resume": true at the
 * source reconnect (same session only), the destination says which pages it
 * has, the source pushes the rest again, and post-copy completes.
 *
 * The link is cut by the source's test hook x-fault "postcopy-cut" (both
 * post-copy connections shut down after 2048 pushed pages, once): post-copy
 * uses three connections, more than the harness proxy follows, and the hook
 * lands mid-way every time.  x-fault "postcopy-hold" holds the push, so a
 * post-copy lasts until the test kills its source.
 */
#include "harness/harness.h"
#include "harness/wire.h"

#include <signal.h>
#include <string.h>
#include <unistd.h>

TestSuite(postcopy_recovery, H_FIXTURES, .timeout = 180);

#define MIG_S  90.0
#define LLU(x) ((unsigned long long)(x))
#define KEEP_SOURCE ",\"x-keep-source\":true"
#define GUEST "workload=dirty wss=64M rate=0 pattern=random verify=1 verify_ms=500"

/* Wait until vm's query-migrate status is @want; returns that answer. */
static json_t *wait_status(struct h_vm *vm, const char *want, double timeout_s)
{
	json_t *q = NULL;
	bool ok = h_wait_for(({ json_decref(q); q = h_query_migrate(vm);
				!strcmp(h_str(q, "status"), want); }), timeout_s);
	char *s = h_dump(q);
	h_assert(ok, "%s: status never became %s: %s", vm->name, want, s);
	free(s);
	return q;
}

static void expect_error_desc(json_t *q, const char *vm, const char *needle)
{
	char *s = h_dump(q);
	h_assert(strstr(h_str(q, "error-desc"), needle),
		 "%s: error-desc does not say '%s': %s", vm, needle, s);
	free(s);
}

static void expect_refused(struct h_vm *vm, const char *needle, const char *fmt)
{
	json_t *e = h_qmp_err(vm, "%s", fmt);
	h_assert(strstr(h_str(e, "desc"), needle), "%s: %s was answered '%s', wanted '%s'",
		 vm->name, fmt, h_str(e, "desc"), needle);
	json_decref(e);
}

/* Both sides paused by the cut: each says why, answers, and refuses what
 * would lose the guest. */
static void expect_both_paused(struct h_vm *src, struct h_vm *dst)
{
	json_t *q = wait_status(src, "postcopy-paused", MIG_S);
	expect_error_desc(q, "src", "the connection to the destination broke");
	json_decref(q);
	h_wait_control(dst, 30);
	q = wait_status(dst, "postcopy-paused", 30);
	expect_error_desc(q, "dst", "the connection to the source broke");
	json_t *pc = json_object_get(json_object_get(q, "ferry"), "postcopy");
	h_assert(pc && h_int(pc, "pages-still-missing") > 0 && h_int(pc, "pauses") == 1,
		 "dst: paused with nothing missing, or pauses not counted");
	json_decref(q);
	h_assert(h_wait_stderr(dst, "post-copy paused: the connection to the source broke", 10),
		 "dst: the log does not say why post-copy paused");
	/* Neither exits; the source's guest never resumes. */
	h_expect_status(src, "finish-migrate");
	h_assert(!h_vm_exited(src) && !h_vm_exited(dst), "a side exited while paused");
	expect_refused(src, "post-copy cannot be cancelled",
		       "{\"execute\":\"migrate-cancel\"}");
	expect_refused(dst, "post-copy cannot be cancelled",
		       "{\"execute\":\"migrate-cancel\"}");
	expect_refused(src, "post-copy is postcopy-paused",
		       "{\"execute\":\"migrate\",\"arguments\":{\"uri\":\"tcp:127.0.0.1:1\"}}");
	expect_refused(src, "post-copy cannot be cancelled",
		       "{\"execute\":\"migrate-cancel\"}");
}

/* migrate-recover on an ephemeral port; returns the port it listens on. */
static int recover_dst(struct h_vm *dst)
{
	json_decref(h_qmp_ok(dst, "{\"execute\":\"migrate-recover\","
			     "\"arguments\":{\"uri\":\"tcp:127.0.0.1:0\"}}"));
	json_t *q = h_query_migrate(dst);
	char *s = h_dump(q);
	h_assert(!strcmp(h_str(q, "status"), "postcopy-recover"), "dst after migrate-recover: %s",
		 s);
	int port = (int)h_int(json_object_get(q, "ferry"), "listen-port");
	h_assert(port > 0, "dst listens on no port after migrate-recover: %s", s);
	free(s);
	json_decref(q);
	expect_refused(dst, "a recovery is under way already",
		       "{\"execute\":\"migrate-recover\",\"arguments\":{\"uri\":\"tcp:127.0.0.1:0\"}}");
	return port;
}

/* A connection of another migration session is refused; the destination
 * keeps waiting for the right one. */
static void foreign_session_refused(struct h_vm *dst, int port)
{
	int fd = w_connect(port);
	struct w_buf b = { 0 };
	w_put_preamble_role(&b, W_VERSION, 3 /* page-requests */);
	w_send_all(fd, b.p, b.len);
	w_free(&b);
	uint32_t type = 0, len;
	char *why = NULL;
	h_assert(w_recv_record(fd, &type, &why, &len, 20), "no answer to a foreign session");
	h_assert(type == W_REC_REFUSE && strstr(why, "not the migration under way here"),
		 "a foreign session was answered 0x%x '%s'", type, why);
	free(why);
	close(fd);
	json_t *q = h_query_migrate(dst);
	h_assert(!strcmp(h_str(q, "status"), "postcopy-recover"),
		 "dst left postcopy-recover after a foreign session: %s", h_str(q, "status"));
	json_decref(q);
}

static void resume_src(struct h_vm *src, int port)
{
	json_decref(h_qmp_ok(src, "{\"execute\":\"migrate\",\"arguments\":"
			     "{\"uri\":\"%s\",\"resume\":true}}", h_mig_uri(port)));
}

/* Both completed after one recovery; returns the source's answer. */
static json_t *expect_both_completed(struct h_vm *src, struct h_vm *dst)
{
	json_t *q = h_wait_migration(src, MIG_S, NULL);
	char *s = h_dump(q);
	h_assert(!strcmp(h_str(q, "status"), "completed"), "src not completed: %s", s);
	json_t *pc = json_object_get(json_object_get(q, "ferry"), "postcopy");
	h_assert(pc && h_int(pc, "recoveries") == 1, "src: recoveries not 1: %s", s);
	free(s);
	json_t *dq = wait_status(dst, "completed", 60);
	s = h_dump(dq);
	json_t *dpc = json_object_get(json_object_get(dq, "ferry"), "postcopy");
	h_assert(dpc && h_int(dpc, "pages-still-missing") == 0 &&
		 h_int(dpc, "recoveries") == 1 && h_int(dpc, "pauses") == 1,
		 "dst's post-copy figures after the recovery: %s", s);
	free(s);
	json_decref(dq);
	return q;
}

/* A post-copy from src to dst cut part-way (both pause), recovered at
 * once, and completed on both sides. */
static void cut_and_recover(struct h_vm *src, struct h_vm *dst)
{
	json_decref(h_qmp_ok(src, "{\"execute\":\"migrate\",\"arguments\":{\"uri\":\"%s\","
			     "\"mode\":\"postcopy\",\"x-fault\":\"postcopy-cut\"" KEEP_SOURCE "}}",
			     h_mig_uri(dst->port)));
	json_decref(wait_status(src, "postcopy-paused", MIG_S));
	h_wait_control(dst, 30);
	json_decref(wait_status(dst, "postcopy-paused", 30));
	resume_src(src, recover_dst(dst));
	json_decref(expect_both_completed(src, dst));
}

/*
 * The guest runs at the destination and faults on pages it lacks when the
 * link is cut: both sides pause, the guest is kept; a resume to a port
 * nobody listens on fails and pauses again; migrate-recover, a foreign
 * session refused, then the real resume: post-copy completes and the
 * guest finds every page as it left it.
 */
Test(postcopy_recovery, link_cut_with_the_guest_running_recovers)
{
	struct h_vm *src = h_boot_verifying("src", GUEST, "256M", "1");
	struct h_vm *dst = h_incoming("dst", H_CONTROL | H_CONSOLE, NULL);
	expect_refused(dst, "migrate-recover continues a paused post-copy",
		       "{\"execute\":\"migrate-recover\",\"arguments\":{\"uri\":\"tcp:127.0.0.1:0\"}}");
	expect_refused(src, "no post-copy is paused here",
		       "{\"execute\":\"migrate\",\"arguments\":{\"uri\":\"tcp:127.0.0.1:1\","
		       "\"resume\":true}}");
	json_decref(h_qmp_ok(src, "{\"execute\":\"migrate\",\"arguments\":{\"uri\":\"%s\","
			     "\"mode\":\"postcopy\",\"x-fault\":\"postcopy-cut\"" KEEP_SOURCE "}}",
			     h_mig_uri(dst->port)));
	expect_both_paused(src, dst);
	h_assert(h_file_contains(src->err_path, "fault injection: post-copy's connections are cut"),
		 "the cut did not happen where the hook is");

	/* Nobody listens there any more: the attempt fails, paused again. */
	resume_src(src, dst->port);
	json_t *q = wait_status(src, "postcopy-paused", 30);
	expect_error_desc(q, "src", "the recovery failed");
	json_decref(q);

	int port = recover_dst(dst);
	foreign_session_refused(dst, port);
	resume_src(src, port);
	q = expect_both_completed(src, dst);
	json_decref(q);
	expect_refused(src, "no post-copy is paused here",
		       "{\"execute\":\"migrate\",\"arguments\":{\"uri\":\"tcp:127.0.0.1:1\","
		       "\"resume\":true}}");
	h_assert(h_wait_resume_verified(dst, 60) == 0,
		 "errors in the guest's full pass after arriving");
	h_expect_verifies(dst);
	h_expect_guest_runs(dst);
	h_assert(h_guest_u64(dst, "errors") == 0, "bad pages after the recovery");
	json_decref(h_qmp_ok(src, "{\"execute\":\"quit\"}"));
	h_assert(h_vm_wait(src, 20) == 0, "the kept source did not quit cleanly");
	h_quit_ok(dst);
}

/*
 * The same cut with a --paused destination, whose memory must then hash
 * like the kept source's once post-copy completed after the recovery:
 * every page lost in flight at the break was pushed again.
 */
Test(postcopy_recovery, link_cut_then_recovery_same_memory)
{
	struct h_vm *src = h_boot_verifying("src", GUEST, "256M", "1");
	struct h_vm *dst = h_incoming("dst", H_CONTROL | H_CONSOLE, "--paused", NULL);
	json_decref(h_qmp_ok(src, "{\"execute\":\"migrate\",\"arguments\":{\"uri\":\"%s\","
			     "\"mode\":\"postcopy\",\"x-fault\":\"postcopy-cut\"" KEEP_SOURCE "}}",
			     h_mig_uri(dst->port)));
	expect_both_paused(src, dst);
	/* This time through the command line: ferry migrate --resume. */
	int port = recover_dst(dst);
	char *out = NULL, *err = NULL;
	int rc = h_run(20, &out, &err, "migrate", "--control", src->control, "--to",
		       h_mig_uri(port), "--resume", NULL);
	h_assert(rc == 0, "ferry migrate --resume exited %d: %s%s", rc, out, err);
	free(out);
	free(err);
	json_decref(expect_both_completed(src, dst));
	h_expect_status(dst, "paused");
	h_expect_same_memory(src, dst);
	h_expect_status(dst, "running");
	h_assert(h_wait_resume_verified(dst, 60) == 0,
		 "errors in the guest's full pass after arriving");
	h_expect_verifies(dst);
	h_assert(h_guest_u64(dst, "errors") == 0, "bad pages after the recovery");
	h_quit_ok(dst);
}

/*
 * The same cut with release-ram: the source drops each page the
 * destination confirmed, and only those, so the recovery still finds
 * every page the destination lacks.  The source is paused first, so its
 * digest then is the oracle (its memory is not the guest's afterwards).
 */
Test(postcopy_recovery, link_cut_with_release_ram_loses_no_page)
{
	struct h_vm *src = h_boot_verifying("src", GUEST, "256M", "1");
	json_t *before = h_release_ram_and_pause(src);
	struct h_vm *dst = h_incoming("dst", H_CONTROL | H_CONSOLE, "--paused", NULL);
	cut_and_recover(src, dst);
	h_expect_memory_was(src, before, dst);
	h_quit_ok(dst);
}

/*
 * The source dies (SIGKILL) while the destination runs the guest and still
 * lacks pages: the destination pauses post-copy, keeps the guest (its vCPU
 * asleep on a missing page), says why, and goes on answering.
 */
Test(postcopy_recovery, source_killed_destination_stays_paused_and_says_why)
{
	struct h_vm *src = h_boot_verifying("src", GUEST, "256M", "1");
	struct h_vm *dst = h_incoming("dst", H_CONTROL | H_CONSOLE, NULL);
	json_decref(h_qmp_ok(src, "{\"execute\":\"migrate\",\"arguments\":{\"uri\":\"%s\","
			     "\"mode\":\"postcopy\",\"x-fault\":\"postcopy-hold\"}}",
			     h_mig_uri(dst->port)));
	json_decref(wait_status(src, "postcopy-active", MIG_S));
	h_wait_control(dst, 30);
	json_decref(wait_status(dst, "postcopy-active", 30));
	kill(src->pid, SIGKILL);
	h_assert(h_vm_wait(src, 20) == 128 + SIGKILL, "the source did not die by SIGKILL");

	json_t *q = wait_status(dst, "postcopy-paused", 30);
	expect_error_desc(q, "dst", "post-copy paused: the connection to the source broke");
	json_t *pc = json_object_get(json_object_get(q, "ferry"), "postcopy");
	h_assert(pc && h_int(pc, "pages-still-missing") > 0,
		 "dst: paused with nothing missing");
	json_decref(q);
	/* It stays, answers, and its guest makes no progress (asleep on a
	 * page that cannot come). */
	h_sleep_ms(1500);
	h_assert(!h_vm_exited(dst), "the destination exited");
	uint64_t t0 = h_guest_u64(dst, "ticks");
	h_sleep_ms(1000);
	h_assert(h_guest_u64(dst, "ticks") == t0, "the guest runs on without its memory");
	char *st = h_status(dst);
	h_assert(st[0], "query-status does not answer");
	free(st);
	q = h_query_migrate(dst);
	h_assert(!strcmp(h_str(q, "status"), "postcopy-paused"), "dst left postcopy-paused: %s",
		 h_str(q, "status"));
	json_decref(q);
	expect_refused(dst, "post-copy cannot be cancelled", "{\"execute\":\"migrate-cancel\"}");
	h_quit_ok(dst);
}

/*
 * Over TLS (PSK), where the destination's requests go through the
 * answers' receiver (one thread per TLS session): the recovery's
 * connections are TLS too, and the guest, running and faulting at the
 * destination, finds every page.
 */
Test(postcopy_recovery, link_cut_over_tls_recovers)
{
	const char *psk = w_make_creds("keys.psk", true);
	struct h_vm *src = h_boot("src", H_CONTROL | H_CONSOLE, GUEST, "--memory", "256M",
				  "--tls-psk", psk, NULL);
	h_wait_ready(src, 60);
	h_wait_guest_ge(src, "checks-done", 1, 30);
	struct h_vm *dst = h_incoming("dst", H_CONTROL | H_CONSOLE, "--tls-psk", psk, NULL);
	cut_and_recover(src, dst);
	h_assert(h_wait_resume_verified(dst, 60) == 0,
		 "errors in the guest's full pass after arriving");
	h_expect_verifies(dst);
	json_decref(h_qmp_ok(src, "{\"execute\":\"quit\"}"));
	h_assert(h_vm_wait(src, 20) == 0, "the kept source did not quit cleanly");
	h_quit_ok(dst);
}
