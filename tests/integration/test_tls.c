/*
 * Encrypted and authenticated migration (--tls-creds DIR, --tls-psk FILE)
 * against real ferry destinations: a peer without the right credentials
 * (plain, another CA, another key, silent) is refused with a clear
 * message and the destination waits on for the real source; a peer with
 * the right ones gets as far as HELLO, where the usual checks judge it.
 * Credentials are made by the test (scripts/tls-make-creds.sh).
 *
 * All but the last need no guest; the last migrates a real one over TLS
 * and compares memory digests (skipped without KVM).
 */
#include "harness/harness.h"
#include "harness/wire.h"

#include <string.h>

TestSuite(tls, H_FIXTURES, .timeout = 90);

static json_t *ferry_of(json_t *q)
{
	return json_object_get(q, "ferry");
}

static long long dropped_peers(struct h_vm *dst)
{
	json_t *q = h_query_migrate(dst);
	long long n = json_integer_value(json_object_get(ferry_of(q), "dropped-peers"));
	json_decref(q);
	return n;
}

static bool listening(struct h_vm *dst)
{
	json_t *q = h_query_migrate(dst);
	bool ok = !strcmp(h_str(q, "status"), "setup") &&
		  !strcmp(h_str(ferry_of(q), "state"), "listening");
	json_decref(q);
	return ok;
}

/* Back to waiting for the source (a drop is logged a moment after the
 * peer sees its connection closed). */
static void still_waiting(struct h_vm *dst)
{
	bool ok = h_wait_for(listening(dst), 10);
	h_assert(!h_vm_exited(dst), "the destination ended");
	json_t *q = h_query_migrate(dst);
	char *s = h_dump(q);
	h_assert(ok, "the destination is not waiting: %s", s);
	free(s);
	json_decref(q);
}

/*
 * The right credentials, then a crafted HELLO (the plausible one of
 * wire.h, which no destination builds: REFUSE) sent inside TLS: the
 * destination must answer REFUSE inside TLS, which proves it got past
 * the handshake, decrypted the preamble and judged HELLO.
 */
static void hello_refused_over_tls(struct h_vm *dst, const struct w_tls_creds *c)
{
	char err[256] = "";
	struct w_tls *t = w_tls_connect(dst->port, c, 10, err, sizeof(err));
	h_assert(t, "the handshake with the right credentials failed: %s", err);
	h_assert(!strcmp(w_tls_version(t), "TLSv1.3"), "version %s", w_tls_version(t));
	struct w_buf b = { 0 };
	w_put_plausible_hello(&b);
	w_tls_send_all(t, b.p, b.len);
	w_free(&b);
	uint32_t type = 0, len;
	char *payload = NULL;
	h_assert(w_tls_recv_record(t, &type, &payload, &len, 20),
		 "no answer to HELLO inside TLS");
	h_assert(type == W_REC_REFUSE, "answer 0x%x to a HELLO no VM can match: %s",
		 type, payload);
	free(payload);
	h_assert(w_tls_wait_closed(t, 10), "the refused peer was not dropped");
	w_tls_close(t);
}

/* ---- X.509 ------------------------------------------------------------------- */

Test(tls, x509_right_peer_reaches_hello_and_is_judged_there)
{
	const char *creds = w_make_creds("creds", false);
	struct h_vm *dst = h_incoming("dst", H_CONTROL, "--tls-creds", creds, NULL);
	json_t *q = h_query_migrate(dst);
	json_t *tls = json_object_get(ferry_of(q), "tls");
	char *s = h_dump(q);
	h_assert(json_is_true(json_object_get(tls, "required")) &&
		 !strcmp(h_str(tls, "credentials"), "x509"),
		 "query-migrate does not say TLS is required: %s", s);
	free(s);
	json_decref(q);

	struct w_tls_creds c = { .dir = creds };
	hello_refused_over_tls(dst, &c);
	h_assert(h_wait_stderr(dst, "TLS TLSv1.3", 10), "the handshake was not logged");
	h_assert(h_wait_stderr(dst, "peer /CN=ferry-client", 10),
		 "the log does not name the peer's certificate");
	h_assert(h_wait_for(dropped_peers(dst) == 1, 10), "dropped-peers %lld",
		 dropped_peers(dst));
	still_waiting(dst);
	/* And again: the destination still serves a real source. */
	hello_refused_over_tls(dst, &c);
	still_waiting(dst);
	h_quit_ok(dst);
}

Test(tls, plain_source_is_told_tls_is_required)
{
	const char *creds = w_make_creds("creds", false);
	struct h_vm *dst = h_incoming("dst", H_CONTROL, "--tls-creds", creds, NULL);
	int fd = w_connect(dst->port);
	struct w_buf b = { 0 };
	w_put_plausible_hello(&b);
	w_send_all(fd, b.p, b.len);
	w_free(&b);
	/* In plain words, so that the source can say why. */
	uint32_t type = 0, len;
	char *payload = NULL;
	h_assert(w_recv_record(fd, &type, &payload, &len, 10),
		 "a plain source was not told anything");
	h_assert(type == W_REC_REFUSE && strstr(payload, "requires TLS"),
		 "answer 0x%x '%s'", type, payload);
	free(payload);
	h_assert(w_wait_closed(fd, 10), "the plain peer was not dropped");
	close(fd);
	h_assert(h_wait_stderr(dst, "a plain (unencrypted) migration, but this destination "
			       "requires TLS", 10), "the destination did not say why");
	h_assert(h_wait_for(dropped_peers(dst) == 1, 10), "dropped-peers %lld",
		 dropped_peers(dst));
	still_waiting(dst);
	struct w_tls_creds c = { .dir = creds };
	hello_refused_over_tls(dst, &c);
	h_quit_ok(dst);
}

/* The magic arriving in pieces is judged once whole (or once the peer
 * stops), not taken for a TLS client. */
Test(tls, plain_source_in_pieces_is_told_too)
{
	const char *creds = w_make_creds("creds", false);
	struct h_vm *dst = h_incoming("dst", H_CONTROL, "--tls-creds", creds, NULL);
	int fd = w_connect(dst->port);
	struct w_buf b = { 0 };
	w_put_plausible_hello(&b);
	w_send_all(fd, b.p, 3);
	h_sleep_ms(300);
	w_send_all(fd, b.p + 3, b.len - 3);
	w_free(&b);
	uint32_t type = 0, len;
	char *payload = NULL;
	h_assert(w_recv_record(fd, &type, &payload, &len, 10),
		 "a plain source was not told anything");
	h_assert(type == W_REC_REFUSE && strstr(payload, "requires TLS"),
		 "answer 0x%x '%s'", type, payload);
	free(payload);
	close(fd);
	still_waiting(dst);
	h_quit_ok(dst);
}

/* Every role shakes hands first: a return-path connection (which a real
 * source would open beside its main one) is judged inside TLS too. */
Test(tls, other_roles_also_inside_tls)
{
	const char *creds = w_make_creds("creds", false);
	struct h_vm *dst = h_incoming("dst", H_CONTROL, "--tls-creds", creds, NULL);
	struct w_tls_creds c = { .dir = creds };
	char err[256] = "";
	struct w_tls *t = w_tls_connect(dst->port, &c, 10, err, sizeof(err));
	h_assert(t, "handshake: %s", err);
	struct w_buf b = { 0 };
	w_put(&b, W_MAGIC, 8);
	w_put_u32(&b, W_VERSION);
	w_put_u32(&b, 2); /* return-path */
	w_put(&b, "0123456789abcdef", 16);
	w_tls_send_all(t, b.p, b.len);
	w_free(&b);
	uint32_t type = 0, len;
	char *payload = NULL;
	h_assert(w_tls_recv_record(t, &type, &payload, &len, 10), "no answer inside TLS");
	h_assert(type == W_REC_REFUSE && strstr(payload, "return-path"),
		 "answer 0x%x '%s'", type, payload);
	free(payload);
	w_tls_close(t);
	/* The same role in plain is told TLS is required first. */
	int fd = w_connect(dst->port);
	w_send_all(fd, W_MAGIC, 8);
	h_assert(w_recv_record(fd, &type, &payload, &len, 10) && type == W_REC_REFUSE &&
		 strstr(payload, "requires TLS"), "plain return path: 0x%x", type);
	free(payload);
	close(fd);
	still_waiting(dst);
	h_quit_ok(dst);
}

/* Inside TLS, the usual judgement: garbage is no migration. */
Test(tls, garbage_inside_tls_dropped)
{
	const char *creds = w_make_creds("creds", false);
	struct h_vm *dst = h_incoming("dst", H_CONTROL, "--tls-creds", creds, NULL);
	struct w_tls_creds c = { .dir = creds };
	char err[256] = "";
	struct w_tls *t = w_tls_connect(dst->port, &c, 10, err, sizeof(err));
	h_assert(t, "handshake: %s", err);
	static const char junk[] = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
	w_tls_send_all(t, junk, sizeof(junk) - 1);
	h_assert(w_tls_wait_closed(t, 10), "the garbage peer was not dropped");
	w_tls_close(t);
	h_assert(h_wait_stderr(dst, "bad magic", 10), "the drop does not name the magic");
	still_waiting(dst);
	h_quit_ok(dst);
}

Test(tls, untrusted_certificate_dropped_both_ways)
{
	const char *mine = w_make_creds("mine", false);
	const char *theirs = w_make_creds("theirs", false);
	struct h_vm *dst = h_incoming("dst", H_CONTROL, "--tls-creds", mine, NULL);
	char err[256] = "";

	/* A peer of another CA: it does not trust the destination either,
	 * and says so first. */
	struct w_tls_creds other = { .dir = theirs };
	struct w_tls *t = w_tls_connect(dst->port, &other, 10, err, sizeof(err));
	h_assert(!t, "a peer of another CA got through");
	h_assert(strstr(err, "certificate verify failed"), "peer's error: %s", err);
	h_assert(h_wait_stderr(dst, "refused our certificate", 10),
		 "the destination did not say its certificate was refused");

	/* A peer that trusts the destination, with a certificate of another
	 * CA: the destination refuses it. */
	char cmd[2048];
	const char *mixed = h_path("mixed");
	snprintf(cmd, sizeof(cmd), "mkdir -p '%s' && cp '%s/ca-cert.pem' '%s/' && "
		 "cp '%s/client-cert.pem' '%s/client-key.pem' '%s/'",
		 mixed, mine, mixed, theirs, theirs, mixed);
	h_assert(system(cmd) == 0, "%s", cmd);
	struct w_tls_creds m = { .dir = mixed };
	t = w_tls_connect(dst->port, &m, 10, err, sizeof(err));
	h_assert(!t, "a client certificate of another CA got through");
	h_assert(strstr(err, "confirmation") && strstr(err, "unknown ca"),
		 "peer's error: %s", err);
	h_assert(h_wait_stderr(dst, "its certificate is not trusted", 10),
		 "the destination did not say the certificate is untrusted");
	h_assert(h_wait_for(dropped_peers(dst) == 2, 10), "dropped-peers %lld",
		 dropped_peers(dst));
	still_waiting(dst);
	struct w_tls_creds c = { .dir = mine };
	hello_refused_over_tls(dst, &c);
	h_quit_ok(dst);
}

Test(tls, silent_peer_dropped_at_the_handshake_deadline)
{
	const char *creds = w_make_creds("creds", false);
	struct h_vm *dst = h_incoming("dst", H_CONTROL, "--tls-creds", creds,
				      "--handshake-timeout", "1", NULL);
	int fd = w_connect(dst->port);
	double t0 = h_now();
	h_assert(w_wait_closed(fd, 10), "the silent peer was never dropped");
	double took = h_now() - t0;
	close(fd);
	h_assert(took > 0.8 && took < 5, "dropped after %.2f s with a 1 s deadline", took);
	h_assert(h_wait_stderr(dst, "no TLS handshake within 1.00 s", 10),
		 "the drop was not logged");
	still_waiting(dst);
	h_quit_ok(dst);
}

Test(tls, tls_peer_at_a_plain_destination_dropped)
{
	const char *creds = w_make_creds("creds", false);
	struct h_vm *dst = h_incoming("dst", H_CONTROL, NULL);
	struct w_tls_creds c = { .dir = creds };
	char err[256] = "";
	struct w_tls *t = w_tls_connect(dst->port, &c, 10, err, sizeof(err));
	h_assert(!t, "a TLS handshake succeeded with a plain destination");
	h_assert(h_wait_stderr(dst, "starts a TLS handshake, but this destination has no "
			       "--tls-creds or --tls-psk", 10),
		 "the destination did not say why");
	still_waiting(dst);
	h_quit_ok(dst);
}

/* ---- PSK ---------------------------------------------------------------------- */

Test(tls, psk_right_key_reaches_hello)
{
	const char *psk = w_make_creds("keys.psk", true);
	struct h_vm *dst = h_incoming("dst", H_CONTROL, "--tls-psk", psk, NULL);
	struct w_tls_creds c = { .psk_file = psk };
	hello_refused_over_tls(dst, &c);
	h_assert(h_wait_stderr(dst, "psk (peer psk identity ferry)", 10),
		 "the handshake was not logged as PSK");
	still_waiting(dst);
	h_quit_ok(dst);
}

Test(tls, psk_wrong_key_dropped)
{
	const char *psk = w_make_creds("keys.psk", true);
	const char *other = w_make_creds("other.psk", true);
	struct h_vm *dst = h_incoming("dst", H_CONTROL, "--tls-psk", psk, NULL);
	struct w_tls_creds c = { .psk_file = other };
	char err[256] = "";
	struct w_tls *t = w_tls_connect(dst->port, &c, 10, err, sizeof(err));
	h_assert(!t, "a peer with another key got through");
	h_assert(h_wait_stderr(dst, "its pre-shared key differs from ours", 10),
		 "the destination did not say the key differs");
	h_assert(h_wait_for(dropped_peers(dst) == 1, 10), "dropped-peers %lld",
		 dropped_peers(dst));
	still_waiting(dst);
	/* An identity the file does not have. */
	const char *stranger = h_path("stranger.psk");
	h_write_file(stranger, "someone:00112233445566778899aabbccddeeff\n", 41);
	c.psk_file = stranger;
	t = w_tls_connect(dst->port, &c, 10, err, sizeof(err));
	h_assert(!t, "a peer with an unknown identity got through");
	h_assert(h_wait_stderr(dst, "identity 'someone' is not in", 10),
		 "the destination did not name the unknown identity");
	still_waiting(dst);
	c.psk_file = psk;
	hello_refused_over_tls(dst, &c);
	h_quit_ok(dst);
}

/* ---- options ------------------------------------------------------------------ */

Test(tls, bad_credentials_refused_at_start)
{
	char *out = NULL, *err = NULL;
	int rc = h_run(20, &out, &err, "run", "--incoming", "tcp:127.0.0.1:0",
		       "--tls-creds", h_path("nowhere"), NULL);
	h_assert(rc == H_EXIT_USAGE && strstr(err, "ca-cert.pem"),
		 "missing credentials: exit %d, '%s'", rc, err);
	free(out);
	free(err);
	const char *bad = h_path("bad.psk");
	h_write_file(bad, "ferry:abc\n", 10);
	rc = h_run(20, &out, &err, "run", "--incoming", "tcp:127.0.0.1:0",
		   "--tls-psk", bad, NULL);
	h_assert(rc == H_EXIT_USAGE && strstr(err, "line 1"),
		 "a bad key: exit %d, '%s'", rc, err);
	free(out);
	free(err);
	rc = h_run(20, &out, &err, "run", "--incoming", "tcp:127.0.0.1:0",
		   "--tls-psk", bad, "--tls-creds", h_path("x"), NULL);
	h_assert(rc == H_EXIT_USAGE && strstr(err, "exclude each other"),
		 "both kinds: exit %d, '%s'", rc, err);
	free(out);
	free(err);
}

/* ---- a real migration over TLS (needs KVM) ------------------------------------------ */

#define GUEST "workload=dirty wss=16M rate=100 verify=1 verify_ms=500"

static void expect_tls(struct h_vm *vm, json_t *q, const char *auth)
{
	json_t *tls = json_object_get(ferry_of(q), "tls");
	char *s = h_dump(q);
	h_assert(json_is_true(json_object_get(tls, "enabled")) &&
		 !strcmp(h_str(tls, "version"), "TLSv1.3") &&
		 !strcmp(h_str(tls, "auth"), auth) &&
		 strstr(h_str(tls, "cipher"), "TLS_"),
		 "%s: query-migrate does not report TLS 1.3 with %s: %s", vm->name,
		 auth, s);
	free(s);
}

static void migrate_over_tls(const char *opt, const char *creds, const char *auth)
{
	struct h_vm *src = h_boot("src", H_CONTROL | H_CONSOLE, GUEST, "--memory", "64M",
				  opt, creds, NULL);
	h_wait_ready(src, 60);
	h_wait_guest_ge(src, "checks-done", 1, 30);
	struct h_vm *dst = h_incoming("dst", H_CONTROL | H_CONSOLE, "--paused",
				      opt, creds, NULL);
	/* One migration's own credentials (test_soak.c switches with
	 * them): refused, saying why, when they do not load or are two,
	 * and the migration after that is the process's own. */
	json_t *e = h_qmp_err(src, "{\"execute\":\"migrate\",\"arguments\":"
			      "{\"uri\":\"%s\",\"tls-creds\":\"%s\"}}",
			      h_mig_uri(dst->port), h_path("nowhere"));
	h_assert(strstr(h_str(e, "desc"), "tls-creds") &&
		 strstr(h_str(e, "desc"), "ca-cert.pem"), "a missing directory: %s",
		 h_str(e, "desc"));
	json_decref(e);
	e = h_qmp_err(src, "{\"execute\":\"migrate\",\"arguments\":{\"uri\":\"%s\","
		      "\"tls-creds\":\"%s\",\"tls-psk\":\"%s\"}}",
		      h_mig_uri(dst->port), creds, creds);
	h_assert(strstr(h_str(e, "desc"), "exclude each other"), "both kinds: %s",
		 h_str(e, "desc"));
	json_decref(e);
	json_t *q = h_migrate_kept(src, dst, 120);
	expect_tls(src, q, auth);
	json_decref(q);

	h_wait_control(dst, 30);
	q = h_query_migrate(dst);
	expect_tls(dst, q, auth);
	json_decref(q);
	h_expect_same_memory(src, dst);
	h_expect_verifies(dst);
	h_quit_ok(dst);
}

/* `ferry migrate --tls-psk`: a source started plain migrates this once
 * over TLS to a destination that demands it; the CLI's path reaches the
 * source process whole, and the destination reports TLS and verifies.
 * (The CLI cannot keep the source to compare memories from outside;
 * migrate_over_tls does that for TLS migrations.) */
Test(tls, migrate_cli_with_a_key_for_this_migration)
{
	h_require_kvm();
	const char *psk = w_make_creds("keys.psk", true);
	struct h_vm *src = h_boot("src", H_CONTROL | H_CONSOLE, GUEST, "--memory", "64M", NULL);
	h_wait_ready(src, 60);
	h_wait_guest_ge(src, "checks-done", 1, 30);
	struct h_vm *dst = h_incoming("dst", H_CONTROL | H_CONSOLE, "--tls-psk", psk, NULL);
	char *out = NULL, *err = NULL;
	int rc = h_run(120, &out, &err, "migrate", "--control", src->control, "--to",
		       h_mig_uri(dst->port), "--tls-psk", psk, "--wait", "--json", NULL);
	h_assert(rc == 0, "ferry migrate --tls-psk exited %d: %s %s", rc, out, err);
	free(out);
	free(err);
	h_wait_control(dst, 30);
	json_t *q = h_query_migrate(dst);
	expect_tls(dst, q, "psk");
	json_decref(q);
	h_expect_verifies(dst);
	h_quit_ok(dst);
}

Test(tls, migration_with_certificates_same_memory)
{
	h_require_kvm();
	migrate_over_tls("--tls-creds", w_make_creds("creds", false), "x509");
}

Test(tls, migration_with_psk_same_memory)
{
	h_require_kvm();
	migrate_over_tls("--tls-psk", w_make_creds("keys.psk", true), "psk");
}
