/*
 * A migration destination is a live process before its VM arrives: its
 * control socket answers from the start (query-status "inmigrate",
 * query-migrate, query-vm, migrate-cancel, quit, migrate-incoming with
 * --incoming defer), it refuses to start at all when something it needs
 * is taken, and peers that are not a real source (silent, garbage,
 * refused) are dropped while it goes on waiting for the real one.
 *
 * Most of these need no guest: they run on a machine without KVM.  The
 * two at the end migrate a real guest and are skipped there.
 */
#include "harness/harness.h"
#include "harness/wire.h"

#include <errno.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>

TestSuite(destination, H_FIXTURES, .timeout = 60);

static json_t *ferry_of(json_t *q)
{
	return json_object_get(q, "ferry");
}

/* query-migrate's "status" and ferry.state, checked together. */
static void expect_migrate_state(struct h_vm *dst, const char *status,
				 const char *state)
{
	json_t *q = h_query_migrate(dst);
	char *s = h_dump(q);
	h_assert(!strcmp(h_str(q, "status"), status) &&
		 !strcmp(h_str(ferry_of(q), "state"), state),
		 "%s: wanted status '%s' state '%s': %s", dst->name, status,
		 state, s);
	free(s);
	json_decref(q);
}

static void expect_error_has(struct h_vm *vm, const char *req,
			     const char *needle)
{
	json_t *e = h_qmp_err(vm, "%s", req);
	h_assert(strcasestr(h_str(e, "desc"), needle),
		 "%s: error '%s' does not mention '%s'", req, h_str(e, "desc"),
		 needle);
	json_decref(e);
}

/* The number of connections the destination has dropped so far. */
static long long dropped_peers(struct h_vm *dst)
{
	json_t *q = h_query_migrate(dst);
	long long n = json_integer_value(json_object_get(ferry_of(q),
							 "dropped-peers"));
	json_decref(q);
	return n;
}

/* ---- a destination before its VM ------------------------------------------ */

Test(destination, answers_while_waiting)
{
	struct h_vm *dst = h_incoming("dst", H_CONTROL, NULL);

	json_t *st = h_qmp_ok(dst, "{\"execute\":\"query-status\"}");
	json_t *want = json_pack("{s:s,s:b,s:b}", "status", "inmigrate",
				 "running", 0, "singlestep", 0);
	char *s = h_dump(st);
	h_assert(json_equal(st, want), "query-status while waiting: %s", s);
	free(s);
	json_decref(want);
	json_decref(st);

	json_t *q = h_query_migrate(dst);
	s = h_dump(q);
	h_assert(!strcmp(h_str(q, "status"), "setup") &&
		 !strcmp(h_str(ferry_of(q), "role"), "destination") &&
		 !strcmp(h_str(ferry_of(q), "state"), "listening") &&
		 json_integer_value(json_object_get(ferry_of(q), "listen-port")) ==
			 dst->port &&
		 json_integer_value(json_object_get(json_object_get(q, "ram"),
						    "transferred")) == 0,
		 "query-migrate while waiting: %s", s);
	free(s);
	json_decref(q);

	json_t *v = h_qmp_ok(dst, "{\"execute\":\"query-vm\"}");
	s = h_dump(v);
	h_assert(!strcmp(h_str(v, "status"), "inmigrate") &&
		 json_is_object(json_object_get(v, "incoming")),
		 "query-vm while waiting: %s", s);
	free(s);
	json_decref(v);

	/* What needs a VM says there is none, and the process lives on. */
	expect_error_has(dst, "{\"execute\":\"snapshot-save\",\"arguments\":"
			 "{\"path\":\"/nonexistent/x\"}}", "no VM here yet");
	expect_error_has(dst, "{\"execute\":\"x-guest-memory-write\",\"arguments\":"
			 "{\"gpa\":0,\"hex\":\"00\"}}", "no VM here yet");
	expect_error_has(dst, "{\"execute\":\"migrate\",\"arguments\":"
			 "{\"uri\":\"tcp:127.0.0.1:1\"}}", "no VM here yet");
	expect_error_has(dst, "{\"execute\":\"migrate-incoming\",\"arguments\":"
			 "{\"uri\":\"tcp:127.0.0.1:0\"}}", "already");
	h_assert(!h_vm_exited(dst), "the destination exited");

	/* stop and cont choose how the guest will arrive (QEMU's -S). */
	json_decref(h_qmp_ok(dst, "{\"execute\":\"stop\"}"));
	q = h_query_migrate(dst);
	h_assert(json_is_false(json_object_get(ferry_of(q), "autostart")),
		 "stop while waiting did not clear autostart");
	json_decref(q);
	json_decref(h_qmp_ok(dst, "{\"execute\":\"cont\"}"));
	q = h_query_migrate(dst);
	h_assert(json_is_true(json_object_get(ferry_of(q), "autostart")),
		 "cont while waiting did not set autostart");
	json_decref(q);
	h_quit_ok(dst);
}

/*
 * The reproduction of "a guest destroyed after hand-over": a destination
 * whose control socket path is taken by a live ferry must refuse to start
 * before it listens, so no source can ever hand it a guest.
 */
Test(destination, control_path_taken_fails_before_listening)
{
	struct h_vm *first = h_spawn("first", H_CONTROL, "run", "--incoming",
				     "defer", NULL);
	h_wait_control(first, 20);
	int port = h_free_port();
	char uri[64];
	snprintf(uri, sizeof(uri), "tcp:127.0.0.1:%d", port);
	struct h_vm *second = h_spawn("second", 0, "run", "--incoming", uri,
				      "--control", first->control, NULL);
	int rc = h_vm_wait(second, 20);
	char *e = h_vm_stderr(second);
	h_assert(rc == H_EXIT_VMM, "second destination exited %d, wanted %d: %s",
		 rc, H_EXIT_VMM, e);
	h_assert(strstr(e, "another process is listening"),
		 "the message does not say the path is taken: %s", e);
	h_assert(!strstr(e, "waiting for an incoming migration"),
		 "it listened for a migration before failing: %s", e);
	free(e);
	int fd = w_try_connect(port);
	h_assert(fd == -ECONNREFUSED, "port %d answers (%s)", port,
		 fd >= 0 ? "connected" : strerror(-fd));
	/* The first one keeps its socket. */
	json_t *st = h_qmp_ok(first, "{\"execute\":\"query-status\"}");
	h_assert(!strcmp(h_str(st, "status"), "inmigrate"), "first: %s",
		 h_str(st, "status"));
	json_decref(st);
	h_quit_ok(first);
}

Test(destination, query_migrate_names_a_connected_peer)
{
	struct h_vm *dst = h_incoming("dst", H_CONTROL, NULL);
	int fd = w_connect(dst->port);
	struct sockaddr_in me;
	socklen_t ml = sizeof(me);
	h_assert(getsockname(fd, (struct sockaddr *)&me, &ml) == 0, "getsockname");
	char want[64];
	snprintf(want, sizeof(want), "127.0.0.1:%d", ntohs(me.sin_port));

	json_t *q = NULL;
	bool seen = h_wait_for(({
		json_decref(q);
		q = h_query_migrate(dst);
		json_t *pend = json_object_get(ferry_of(q), "pending-peers");
		json_array_size(pend) == 1 &&
		!strcmp(json_string_value(json_array_get(pend, 0)) ?: "", want); }),
		10);
	char *s = h_dump(q);
	h_assert(seen, "query-migrate does not list peer %s: %s", want, s);
	h_assert(!strcmp(h_str(q, "status"), "setup"), "status: %s", s);
	free(s);
	json_decref(q);
	close(fd);
	h_quit_ok(dst);
}

/* ---- ending an incoming migration -------------------------------------------- */

static void expect_cancelled_exit(struct h_vm *dst)
{
	int rc = h_vm_wait(dst, 20);
	char *e = h_vm_stderr(dst);
	h_assert(rc == H_EXIT_VMM, "destination exited %d after migrate-cancel, "
		 "wanted %d: %s", rc, H_EXIT_VMM, e);
	h_assert(strstr(e, "cancel"), "stderr does not say it was cancelled: %s", e);
	free(e);
}

Test(destination, migrate_cancel_while_waiting)
{
	struct h_vm *dst = h_incoming("dst", H_CONTROL, NULL);
	json_decref(h_qmp_ok(dst, "{\"execute\":\"migrate-cancel\"}"));
	expect_cancelled_exit(dst);
	int fd = w_try_connect(dst->port);
	h_assert(fd < 0, "the port still answers after the destination ended");
}

/* An incoming migration that ended without a VM is still reported for a
 * moment before the process ends: query-migrate says how and why. */
Test(destination, query_migrate_tells_why_it_ended)
{
	struct h_vm *dst = h_incoming("dst", H_CONTROL, NULL);
	json_decref(h_qmp_ok(dst, "{\"execute\":\"migrate-cancel\"}"));
	/* The cancel is carried out by the destination's thread (as in
	 * QEMU, migrate-cancel returns at once): soon, not at once. */
	json_t *q = NULL;
	h_wait_for(({ json_decref(q); q = h_query_migrate(dst);
		!strcmp(h_str(q, "status"), "cancelled"); }), 5);
	char *s = h_dump(q);
	h_assert(!strcmp(h_str(q, "status"), "cancelled") &&
		 strstr(h_str(q, "error-desc"), "migrate-cancel"),
		 "after migrate-cancel, query-migrate says: %s", s);
	free(s);
	json_decref(q);
	expect_cancelled_exit(dst);
}

Test(destination, quit_while_waiting)
{
	struct h_vm *dst = h_incoming("dst", H_CONTROL, NULL);
	h_quit_ok(dst);
}

/* A peer that has sent its preamble and part of HELLO is mid-handshake. */
static int half_handshake(struct h_vm *dst)
{
	struct w_buf b = { 0 };
	w_put_plausible_hello(&b);
	int fd = w_connect(dst->port);
	w_send_all(fd, b.p, b.len - 10);
	w_free(&b);
	json_t *q = NULL;
	h_assert(h_wait_for(({
		json_decref(q);
		q = h_query_migrate(dst);
		json_array_size(json_object_get(ferry_of(q), "pending-peers")) == 1; }),
		10), "the half-sent HELLO is not being waited for");
	json_decref(q);
	return fd;
}

Test(destination, migrate_cancel_mid_handshake)
{
	struct h_vm *dst = h_incoming("dst", H_CONTROL, NULL);
	int fd = half_handshake(dst);
	json_decref(h_qmp_ok(dst, "{\"execute\":\"migrate-cancel\"}"));
	expect_cancelled_exit(dst);
	h_assert(w_wait_closed(fd, 10), "the peer's connection stayed open");
	close(fd);
}

Test(destination, quit_mid_handshake)
{
	struct h_vm *dst = h_incoming("dst", H_CONTROL, NULL);
	int fd = half_handshake(dst);
	h_quit_ok(dst);
	h_assert(w_wait_closed(fd, 10), "the peer's connection stayed open");
	close(fd);
}

/* ---- --incoming defer, migrate-incoming, tcp::PORT ------------------------------ */

Test(destination, defer_then_migrate_incoming)
{
	struct h_vm *dst = h_spawn("dst", H_CONTROL, "run", "--incoming", "defer",
				   NULL);
	h_wait_control(dst, 20);
	expect_migrate_state(dst, "none", "deferred");
	json_t *st = h_qmp_ok(dst, "{\"execute\":\"query-status\"}");
	h_assert(!strcmp(h_str(st, "status"), "inmigrate"), "status %s",
		 h_str(st, "status"));
	json_decref(st);

	/* A bad address is refused with a reason; nothing else changes. */
	expect_error_has(dst, "{\"execute\":\"migrate-incoming\",\"arguments\":"
			 "{\"uri\":\"udp:127.0.0.1:4444\"}}", "tcp:HOST:PORT");
	expect_error_has(dst, "{\"execute\":\"migrate-incoming\",\"arguments\":"
			 "{\"uri\":\"tcp:127.0.0.1:99999\"}}", "port");
	expect_error_has(dst, "{\"execute\":\"migrate-incoming\"}", "uri");
	h_assert(!h_vm_exited(dst), "a bad URI ended the destination");
	expect_migrate_state(dst, "none", "deferred");

	json_decref(h_qmp_ok(dst, "{\"execute\":\"migrate-incoming\",\"arguments\":"
			     "{\"uri\":\"tcp:127.0.0.1:0\"}}"));
	json_t *q = h_query_migrate(dst);
	int port = (int)json_integer_value(json_object_get(ferry_of(q), "listen-port"));
	char *s = h_dump(q);
	h_assert(!strcmp(h_str(q, "status"), "setup") && port > 0,
		 "after migrate-incoming: %s", s);
	free(s);
	json_decref(q);
	h_assert(h_wait_stderr(dst, "waiting for an incoming migration on", 10),
		 "no 'waiting' line after migrate-incoming");
	int fd = w_connect(port);
	close(fd);
	expect_error_has(dst, "{\"execute\":\"migrate-incoming\",\"arguments\":"
			 "{\"uri\":\"tcp:127.0.0.1:0\"}}", "already");
	h_quit_ok(dst);
}

Test(destination, tcp_any_address_form)
{
	struct h_vm *dst = h_spawn("dst", H_CONTROL, "run", "--incoming",
				   "tcp::0", NULL);
	h_wait_control(dst, 20);
	/* The control socket comes up before the listener (by design), so
	 * the port may take a moment to appear. */
	int port = 0;
	h_wait_for(({ json_t *q = h_query_migrate(dst);
		port = (int)json_integer_value(json_object_get(ferry_of(q),
							       "listen-port"));
		json_decref(q);
		port > 0; }), 20);
	h_assert(port > 0, "tcp::0 does not listen");
	int fd = w_connect(port);   /* any address includes the loopback */
	close(fd);
	h_quit_ok(dst);
}

Test(destination, bad_incoming_options_are_usage_errors)
{
	static const char *const bad[][4] = {
		{ "--incoming", "udp:127.0.0.1:4444", NULL, NULL },
		{ "--incoming", "tcp:127.0.0.1", NULL, NULL },
		{ "--incoming", "defer", "--idle-timeout", "0" },
		{ "--incoming", "defer", "--idle-timeout", "soon" },
		{ "--incoming", "defer", "--handshake-timeout", "-1" },
		{ "--incoming", "defer", "--handshake-timeout", "nan" },
		{ "--idle-timeout", "5", NULL, NULL },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char *err = NULL;
		int rc = h_run(20, NULL, &err, "run", bad[i][0], bad[i][1],
			       bad[i][2], bad[i][3], NULL);
		h_assert(rc == H_EXIT_USAGE && strstr(err, "ferry:"),
			 "ferry run %s %s %s %s exited %d (wanted %d): %s",
			 bad[i][0], bad[i][1], bad[i][2] ?: "", bad[i][3] ?: "",
			 rc, H_EXIT_USAGE, err);
		free(err);
	}
	/* Decimals are fine. */
	struct h_vm *dst = h_incoming("dst", H_CONTROL, "--handshake-timeout", "2.5",
				      "--idle-timeout", "0.75", NULL);
	json_t *q = h_query_migrate(dst);
	json_t *f = ferry_of(q);
	h_assert(json_integer_value(json_object_get(f, "handshake-timeout-ms")) == 2500 &&
		 json_integer_value(json_object_get(f, "idle-timeout-ms")) == 750,
		 "timeouts not as given");
	json_decref(q);
	h_quit_ok(dst);
}

/* ---- peers that are not the source ------------------------------------------- */

/* Send a plausible preamble and HELLO on fd and expect an answer (ACCEPT,
 * or REFUSE: without KVM the destination cannot build the VM) within
 * timeout_s; returns the record type. */
static uint32_t hello_answered(int fd, double timeout_s)
{
	struct w_buf b = { 0 };
	w_put_plausible_hello(&b);
	w_send_all(fd, b.p, b.len);
	w_free(&b);
	uint32_t type = 0, len;
	char *why = NULL;
	double t0 = h_now();
	h_assert(w_recv_record(fd, &type, &why, &len, timeout_s),
		 "no answer to HELLO within %.1f s (waited %.1f s)", timeout_s,
		 h_now() - t0);
	h_assert(type == W_REC_ACCEPT || type == W_REC_REFUSE,
		 "HELLO answered with 0x%x '%s'", type, why);
	free(why);
	return type;
}

Test(destination, silent_peer_does_not_block_the_source)
{
	struct h_vm *dst = h_incoming("dst", H_CONTROL, "--handshake-timeout", "4",
				      NULL);
	int silent = w_connect(dst->port);
	h_sleep_ms(200);
	/* Served while the silent one is still within its deadline. */
	int real = w_connect(dst->port);
	double t0 = h_now();
	uint32_t t = hello_answered(real, 10);
	double took = h_now() - t0;
	close(real);
	if (t == W_REC_ACCEPT) {
		/* A KVM host built the VM; the peer hanging up ends it. */
		h_vm_wait(dst, 30);
		close(silent);
		return;
	}
	h_assert(took < 3, "the second peer waited %.1f s: it was held up by "
		 "the silent one", took);
	/* The silent one goes once its deadline has passed. */
	h_assert(w_wait_closed(silent, 10), "the silent peer was never dropped");
	close(silent);
	h_assert(h_wait_stderr(dst, "no preamble and HELLO within 4.00 s", 10),
		 "the drop was not logged");
	/* And the destination still waits: the next peer is served too. */
	int next = w_connect(dst->port);
	hello_answered(next, 10);
	close(next);
	h_assert(!h_vm_exited(dst), "the destination ended");
	h_assert(h_wait_for(dropped_peers(dst) >= 3, 10),
		 "dropped-peers %lld, wanted 3", dropped_peers(dst));
	expect_migrate_state(dst, "setup", "listening");
	h_quit_ok(dst);
}

Test(destination, silent_peer_dropped_after_deadline_then_source_served)
{
	struct h_vm *dst = h_incoming("dst", H_CONTROL, "--handshake-timeout", "1",
				      NULL);
	int silent = w_connect(dst->port);
	double t0 = h_now();
	h_assert(w_wait_closed(silent, 10), "the silent peer was never dropped");
	double took = h_now() - t0;
	close(silent);
	h_assert(took > 0.8 && took < 5, "dropped after %.2f s with a 1 s deadline",
		 took);
	int real = w_connect(dst->port);
	hello_answered(real, 10);
	close(real);
	h_quit_ok(dst);
}

Test(destination, garbage_preamble_dropped)
{
	struct h_vm *dst = h_incoming("dst", H_CONTROL, NULL);
	int fd = w_connect(dst->port);
	static const char junk[] = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
	w_send_all(fd, junk, sizeof(junk) - 1);
	h_assert(w_wait_closed(fd, 10), "the garbage peer was not dropped");
	close(fd);
	h_assert(h_wait_stderr(dst, "magic", 10), "the drop does not name the magic");
	h_assert(!h_vm_exited(dst), "garbage ended the destination");
	h_assert(h_wait_for(dropped_peers(dst) == 1, 10), "dropped-peers %lld",
		 dropped_peers(dst));
	expect_migrate_state(dst, "setup", "listening");
	int real = w_connect(dst->port);
	hello_answered(real, 10);
	close(real);
	h_quit_ok(dst);
}

/* ---- with a guest (skipped without KVM) ---------------------------------------- */

#define GUEST "workload=dirty wss=8M rate=100 verify=1 verify_ms=500"

/* Boot a source, migrate it to dst (started with @extra options) and wait
 * until the source reports completed. */
static struct h_vm *migrate_into_from(const char *extra, bool stop_source)
{
	struct h_vm *src = h_boot("src", H_CONTROL, GUEST, "--memory", "64M", NULL);
	h_wait_ready(src, 60);
	if (stop_source)
		json_decref(h_qmp_ok(src, "{\"execute\":\"stop\"}"));
	struct h_vm *dst = h_incoming("dst", H_CONTROL, extra, NULL);
	json_decref(h_qmp_ok(src, "{\"execute\":\"migrate\",\"arguments\":"
			     "{\"uri\":\"%s\"}}", h_mig_uri(dst->port)));
	json_t *q = h_wait_migration(src, 90, NULL);
	char *s = h_dump(q);
	h_assert(!strcmp(h_str(q, "status"), "completed"), "migration: %s", s);
	free(s);
	json_decref(q);
	h_assert(h_vm_wait(src, 20) == 0, "the source did not end with 0");
	return dst;
}

static struct h_vm *migrate_into(const char *extra)
{
	return migrate_into_from(extra, false);
}

Test(destination, migration_completes_into_a_live_destination)
{
	struct h_vm *dst = migrate_into(NULL);
	char *st = h_status(dst);
	h_assert(!strcmp(st, "running"), "destination status '%s'", st);
	free(st);
	json_t *q = h_query_migrate(dst);
	char *s = h_dump(q);
	h_assert(!strcmp(h_str(q, "status"), "completed") &&
		 json_integer_value(json_object_get(json_object_get(q, "ram"),
						    "transferred")) > (1 << 20) &&
		 strstr(h_str(ferry_of(q), "peer"), "127.0.0.1:"),
		 "destination's query-migrate after the migration: %s", s);
	free(s);
	json_decref(q);
	uint64_t r = h_guest_u64(dst, "progress-reports");
	h_wait_guest_ge(dst, "progress-reports", r + 2, 20);
	h_quit_ok(dst);
}

Test(destination, paused_destination_keeps_the_guest_paused)
{
	struct h_vm *dst = migrate_into("--paused");
	char *st = h_status(dst);
	h_assert(!strcmp(st, "paused"), "with --paused the guest arrived '%s'", st);
	free(st);
	uint64_t a = h_guest_u64(dst, "uptime-ms");
	h_sleep_ms(1000);
	uint64_t b = h_guest_u64(dst, "uptime-ms");
	h_assert(a == b, "the guest ran while paused: uptime %llu -> %llu",
		 (unsigned long long)a, (unsigned long long)b);
	json_decref(h_qmp_ok(dst, "{\"execute\":\"cont\"}"));
	st = h_status(dst);
	h_assert(!strcmp(st, "running"), "after cont: '%s'", st);
	free(st);
	uint64_t r = h_guest_u64(dst, "progress-reports");
	h_wait_guest_ge(dst, "progress-reports", r + 2, 20);
	h_quit_ok(dst);
}

/* A guest paused at the source arrives paused, without --paused (as
 * QEMU's destination keeps the source's run state); cont runs it. */
Test(destination, guest_paused_at_the_source_arrives_paused)
{
	struct h_vm *dst = migrate_into_from(NULL, true);
	char *st = h_status(dst);
	h_assert(!strcmp(st, "paused"), "a guest paused at the source arrived '%s'", st);
	free(st);
	uint64_t a = h_guest_u64(dst, "uptime-ms");
	h_sleep_ms(1000);
	uint64_t b = h_guest_u64(dst, "uptime-ms");
	h_assert(a == b, "the guest ran while paused: uptime %llu -> %llu",
		 (unsigned long long)a, (unsigned long long)b);
	json_decref(h_qmp_ok(dst, "{\"execute\":\"cont\"}"));
	uint64_t r = h_guest_u64(dst, "progress-reports");
	h_wait_guest_ge(dst, "progress-reports", r + 2, 20);
	h_quit_ok(dst);
}

/* ---- ending an incoming migration while it receives (needs KVM) ------------ */

/*
 * Start a slow migration (4 MiB/s against a 32 MiB working set: round 0
 * alone takes ~8 s, as in migration_faults) and wait until the destination reports it receiving,
 * with bytes counted and the source named.
 */
static struct h_vm *receiving(struct h_vm **src_out)
{
	struct h_vm *src = h_boot("src", H_CONTROL,
				  "workload=dirty wss=32M rate=0 verify=1 verify_ms=500",
				  "--memory", "256M", NULL);
	h_wait_ready(src, 60);
	struct h_vm *dst = h_incoming("dst", H_CONTROL, NULL);
	json_decref(h_qmp_ok(src, "{\"execute\":\"migrate\",\"arguments\":"
			     "{\"uri\":\"%s\",\"max-bandwidth\":4194304}}",
			     h_mig_uri(dst->port)));
	json_t *q = NULL;
	bool seen = h_wait_for(({
		json_decref(q);
		q = h_query_migrate(dst);
		!strcmp(h_str(q, "status"), "active") &&
		json_integer_value(json_object_get(json_object_get(q, "ram"),
						   "transferred")) > (1 << 20) &&
		strstr(h_str(ferry_of(q), "peer"), "127.0.0.1:") != NULL; }), 30);
	char *s = h_dump(q);
	h_assert(seen, "the destination does not report receiving: %s", s);
	free(s);
	json_decref(q);
	*src_out = src;
	return dst;
}

/*
 * The source's migration fails, it resumes its guest and stays.  @why, if
 * not NULL, must be in its error: a REFUSE is read whole; after a cancel
 * mid-stream the source may see only the broken connection.
 */
static void expect_source_resumed(struct h_vm *src, const char *why)
{
	json_t *q = h_wait_migration(src, 30, NULL);
	char *s = h_dump(q);
	h_assert(!strcmp(h_str(q, "status"), "failed") &&
		 (!why || strstr(h_str(q, "error-desc"), why)),
		 "source's migration after the destination ended: %s", s);
	free(s);
	json_decref(q);
	char *st = h_status(src);
	h_assert(!strcmp(st, "running"), "the source is '%s', not running", st);
	free(st);
	uint64_t r = h_guest_u64(src, "progress-reports");
	h_wait_guest_ge(src, "progress-reports", r + 2, 20);
	h_quit_ok(src);
}

Test(destination, migrate_cancel_while_receiving)
{
	struct h_vm *src;
	struct h_vm *dst = receiving(&src);
	json_decref(h_qmp_ok(dst, "{\"execute\":\"migrate-cancel\"}"));
	expect_cancelled_exit(dst);
	expect_source_resumed(src, NULL);
}

Test(destination, quit_while_receiving)
{
	struct h_vm *src;
	struct h_vm *dst = receiving(&src);
	h_quit_ok(dst);
	expect_source_resumed(src, NULL);
}

/*
 * The destination creates every vCPU thread before it accepts: one that
 * cannot start refuses in HELLO (naming the thread), the source keeps its
 * guest, and the destination waits on for another source.
 */
Test(destination, vcpu_thread_failure_refuses_before_accept)
{
	struct h_vm *src = h_boot("src", H_CONTROL,
				  "workload=dirty wss=8M rate=100 verify=1 verify_ms=500",
				  "--memory", "64M", "--vcpus", "2", NULL);
	h_wait_ready(src, 60);
	struct h_vm *dst = h_incoming("dst", H_CONTROL, "--x-fail-vcpu-thread", "1",
				      NULL);
	json_decref(h_qmp_ok(src, "{\"execute\":\"migrate\",\"arguments\":"
			     "{\"uri\":\"%s\"}}", h_mig_uri(dst->port)));
	h_assert(h_wait_stderr(dst, "dropped, still waiting for the source", 30),
		 "the destination did not drop the source it could not start for");
	h_assert(!h_vm_exited(dst), "the destination ended");
	json_t *q = h_query_migrate(dst);
	h_assert(!strcmp(h_str(q, "status"), "setup"),
		 "the destination is not waiting any more: %s", h_str(q, "status"));
	json_decref(q);
	expect_source_resumed(src, "vCPU thread 1");
	h_quit_ok(dst);
}
