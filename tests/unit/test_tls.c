/*
 * Unit tests of the TLS channel (io/tls.h) over real socketpairs, with
 * credentials the test makes itself (scripts/tls-make-creds.sh, which
 * uses the openssl command): both credential kinds work both ways, and
 * a wrong CA, a wrong key, an unknown identity, a mismatched kind and a
 * plain peer are each refused on both sides with a message saying so.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "io/channel.h"
#include "io/record.h"
#include "io/tls.h"
#include "migration/secure.h"
#include "util/log.h"

static char tmp[256];

static void make_dir(void)
{
	const char *t = getenv("TMPDIR");
	snprintf(tmp, sizeof(tmp), "%s/ferry-tls-XXXXXX", t ? t : "/tmp");
	cr_assert_not_null(mkdtemp(tmp));
	/* A vanished peer must be an EPIPE, not the end of the test. */
	signal(SIGPIPE, SIG_IGN);
}

static void remove_dir(void)
{
	char cmd[400];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmp);
	cr_assert_eq(system(cmd), 0);
}

/* Credentials of kind "x509" (a directory, its own CA) or "psk". */
static struct tls_creds *creds(const char *name, const char *psk_line)
{
	char path[400], cmd[600], err[ERR_MAX] = "";
	struct tls_creds *c = NULL;

	snprintf(path, sizeof(path), "%s/%s", tmp, name);
	if (psk_line) {
		FILE *f = fopen(path, "w");
		cr_assert_not_null(f);
		fprintf(f, "%s\n", psk_line);
		fclose(f);
		cr_assert_eq(tls_creds_load_psk(&c, path, err), 0, "%s", err);
	} else {
		snprintf(cmd, sizeof(cmd), "scripts/tls-make-creds.sh '%s'", path);
		cr_assert_eq(system(cmd), 0, "cannot make credentials (openssl installed?)");
		cr_assert_eq(tls_creds_load_x509(&c, path, err), 0, "%s", err);
	}
	return c;
}

#define KEY_A "ferry:00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"
#define KEY_B "ferry:ffeeddccbbaa99887766554433221100ffeeddccbbaa99887766554433221100"

struct side {
	struct channel *ch;
	int r;
	char err[ERR_MAX];
};

static void *server_thread(void *arg)
{
	struct side *s = arg;
	s->r = channel_tls_handshake(s->ch, NULL, s->err);
	return NULL;
}

static void timeouts(int fd)
{
	struct timeval tv = { .tv_sec = 5 };
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
}

/* A handshake between a client with cc and a server with sc over a
 * socketpair; both results in cli and srv.  On failure the failing side
 * closes at once, as the migration code does, so the other ends too. */
static void shake(struct tls_creds *cc, struct tls_creds *sc, struct side *cli,
		  struct side *srv)
{
	int fd[2];
	pthread_t t;

	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fd), 0);
	timeouts(fd[0]);
	timeouts(fd[1]);
	memset(cli, 0, sizeof(*cli));
	memset(srv, 0, sizeof(*srv));
	cli->ch = channel_tls_new(cc, fd[0], true, false);
	srv->ch = channel_tls_new(sc, fd[1], true, true);
	cr_assert(cli->ch && srv->ch);
	pthread_create(&t, NULL, server_thread, srv);
	cli->r = channel_tls_handshake(cli->ch, NULL, cli->err);
	if (cli->r)
		channel_shutdown(cli->ch);
	pthread_join(t, NULL);
	if (srv->r)
		channel_shutdown(srv->ch);
}

static void unshake(struct side *cli, struct side *srv)
{
	channel_close(cli->ch);
	channel_close(srv->ch);
}

/* Records both ways through the TLS channels, pending input included. */
static void exchange(struct side *cli, struct side *srv)
{
	struct rec_writer *w = rec_writer_new(cli->ch, 1 << 20);
	struct rec_reader *r = rec_reader_new(srv->ch, 1 << 20);
	static uint8_t big[200000];
	uint32_t type, len;
	const uint8_t *p;

	for (size_t i = 0; i < sizeof(big); i++)
		big[i] = (uint8_t)(i * 7);
	rec_put(w, 1, "hello", 5);
	rec_put(w, 2, "world", 5);
	rec_put(w, 3, big, sizeof(big));
	cr_assert_eq(rec_flush(w), 0, "%s", rec_writer_errmsg(w));
	cr_assert_eq(rec_read(r, &type, &p, &len), 0, "%s", rec_reader_errmsg(r));
	cr_assert_eq(type, 1);
	cr_assert_eq(memcmp(p, "hello", 5), 0);
	/* The rest is decrypted and held: poll on the fd would miss it. */
	cr_assert(channel_poll_in(srv->ch, 0));
	cr_assert_eq(rec_read(r, &type, &p, &len), 0);
	cr_assert_eq(type, 2);
	cr_assert_eq(rec_read(r, &type, &p, &len), 0);
	cr_assert_eq(type, 3);
	cr_assert_eq(len, sizeof(big));
	cr_assert_eq(memcmp(p, big, sizeof(big)), 0);
	rec_writer_free(w);
	rec_reader_free(r);

	/* And back. */
	w = rec_writer_new(srv->ch, 1 << 20);
	r = rec_reader_new(cli->ch, 1 << 20);
	rec_put(w, 9, "back", 4);
	cr_assert_eq(rec_flush(w), 0);
	cr_assert_eq(rec_read(r, &type, &p, &len), 0);
	cr_assert_eq(type, 9);
	rec_writer_free(w);
	rec_reader_free(r);
}

TestSuite(tls, .init = make_dir, .fini = remove_dir, .timeout = 60);

Test(tls, x509_both_ways)
{
	struct tls_creds *c = creds("ca1", NULL);
	struct side cli, srv;
	struct tls_info info;

	shake(c, c, &cli, &srv);
	cr_assert_eq(cli.r, 0, "%s", cli.err);
	cr_assert_eq(srv.r, 0, "%s", srv.err);
	cr_assert(channel_is_tls(cli.ch));
	cr_assert_str_eq(cli.ch->ops->kind, "tls");
	cr_assert_eq(channel_tls_info(srv.ch, &info), 0);
	cr_assert_str_eq(info.version, "TLSv1.3");
	cr_assert_eq(info.auth, TLS_AUTH_X509);
	cr_assert(strstr(info.peer_id, "ferry-client"), "%s", info.peer_id);
	cr_assert(strstr(info.cipher, "TLS_"), "%s", info.cipher);
	cr_assert_eq(channel_tls_info(cli.ch, &info), 0);
	cr_assert(strstr(info.peer_id, "ferry-server"), "%s", info.peer_id);
	exchange(&cli, &srv);
	unshake(&cli, &srv);
	tls_creds_free(c);
}

Test(tls, psk_both_ways)
{
	struct tls_creds *c = creds("keys.psk", KEY_A);
	struct side cli, srv;
	struct tls_info info;

	shake(c, c, &cli, &srv);
	cr_assert_eq(cli.r, 0, "%s", cli.err);
	cr_assert_eq(srv.r, 0, "%s", srv.err);
	cr_assert_eq(channel_tls_info(srv.ch, &info), 0);
	cr_assert_str_eq(info.version, "TLSv1.3");
	cr_assert_eq(info.auth, TLS_AUTH_PSK);
	cr_assert_str_eq(info.peer_id, "psk identity ferry");
	/* The key's hash is SHA-256: only those suites can use it. */
	cr_assert(strstr(info.cipher, "SHA256"), "%s", info.cipher);
	exchange(&cli, &srv);
	unshake(&cli, &srv);
	tls_creds_free(c);
}

Test(tls, wrong_ca_refused_both_sides)
{
	struct tls_creds *a = creds("ca1", NULL), *b = creds("ca2", NULL);
	struct side cli, srv;

	shake(a, b, &cli, &srv);
	cr_assert_neq(cli.r, 0);
	cr_assert_neq(srv.r, 0);
	/* The client checks the server first: it finds it untrusted and
	 * says so with an alert, which the server reports. */
	cr_assert(strstr(cli.err, "certificate is not trusted"), "%s", cli.err);
	cr_assert(strstr(srv.err, "refused our certificate"), "%s", srv.err);
	unshake(&cli, &srv);

	/* A client whose certificate the server does not trust, talking to
	 * a server it trusts: the server refuses it, the client learns of
	 * it through the confirmation it never gets. */
	char cmd[3000];
	snprintf(cmd, sizeof(cmd),
		 "mkdir -p %s/mix && cp %s/ca1/ca-cert.pem %s/ca1/server-cert.pem %s/ca1/server-key.pem %s/mix/ && "
		 "cat %s/ca2/ca-cert.pem >> %s/mix/ca-cert.pem && "
		 "cp %s/ca2/client-cert.pem %s/ca2/client-key.pem %s/mix/",
		 tmp, tmp, tmp, tmp, tmp, tmp, tmp, tmp, tmp, tmp);
	cr_assert_eq(system(cmd), 0);
	struct tls_creds *mix = NULL;
	char err[ERR_MAX];
	snprintf(cmd, sizeof(cmd), "%s/mix", tmp);
	cr_assert_eq(tls_creds_load_x509(&mix, cmd, err), 0, "%s", err);
	shake(mix, a, &cli, &srv);
	cr_assert_neq(srv.r, 0);
	cr_assert_neq(cli.r, 0);
	cr_assert(strstr(srv.err, "certificate is not trusted"), "%s", srv.err);
	cr_assert(strstr(cli.err, "refused our certificate"), "%s", cli.err);
	unshake(&cli, &srv);
	tls_creds_free(mix);
	tls_creds_free(a);
	tls_creds_free(b);
}

Test(tls, wrong_psk_refused_both_sides)
{
	struct tls_creds *a = creds("a.psk", KEY_A), *b = creds("b.psk", KEY_B);
	struct side cli, srv;

	shake(a, b, &cli, &srv);
	cr_assert_neq(cli.r, 0);
	cr_assert_neq(srv.r, 0);
	cr_assert(strstr(srv.err, "pre-shared key differs"), "%s", srv.err);
	cr_assert(strstr(cli.err, "pre-shared key differs"), "%s", cli.err);
	unshake(&cli, &srv);
	tls_creds_free(a);
	tls_creds_free(b);
}

Test(tls, unknown_psk_identity_refused)
{
	struct tls_creds *a = creds("a.psk", "someone:00112233445566778899aabbccddeeff");
	struct tls_creds *b = creds("b.psk", KEY_A);
	struct side cli, srv;

	shake(a, b, &cli, &srv);
	cr_assert_neq(cli.r, 0);
	cr_assert_neq(srv.r, 0);
	cr_assert(strstr(srv.err, "identity 'someone' is not in"), "%s", srv.err);
	unshake(&cli, &srv);
	tls_creds_free(a);
	tls_creds_free(b);
}

Test(tls, psk_against_x509_refused)
{
	struct tls_creds *x = creds("ca1", NULL), *k = creds("k.psk", KEY_A);
	struct side cli, srv;

	/* A PSK client must not settle for a certificate it cannot check. */
	shake(k, x, &cli, &srv);
	cr_assert_neq(cli.r, 0);
	cr_assert_neq(srv.r, 0);
	unshake(&cli, &srv);
	shake(x, k, &cli, &srv);
	cr_assert_neq(cli.r, 0);
	cr_assert_neq(srv.r, 0);
	unshake(&cli, &srv);
	tls_creds_free(x);
	tls_creds_free(k);
}

Test(tls, plain_peer_refused)
{
	struct tls_creds *c = creds("ca1", NULL);
	char err[ERR_MAX] = "";
	int fd[2];

	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fd), 0);
	timeouts(fd[1]);
	struct channel *srv = channel_tls_new(c, fd[1], true, true);
	/* What a plain migration source sends first. */
	static const char pre[] = "FERRYMIG\002\0\0\0\001\0\0\0................";
	cr_assert_eq(write(fd[0], pre, sizeof(pre)), (ssize_t)sizeof(pre));
	int r = channel_tls_handshake(srv, NULL, err);
	cr_assert_neq(r, 0);
	cr_assert(strstr(err, "does not speak TLS"), "%s", err);
	channel_close(srv);
	close(fd[0]);

	/* A plain server sees a TLS handshake record (0x16 0x03 ...) and the
	 * client a closed connection, with a hint. */
	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fd), 0);
	timeouts(fd[0]);
	struct channel *cli = channel_tls_new(c, fd[0], true, false);
	uint8_t got[2];
	pthread_t t;
	struct side s = { .ch = cli };
	pthread_create(&t, NULL, server_thread, &s); /* runs the client here */
	cr_assert_eq(read(fd[1], got, 2), 2);
	cr_assert_eq(got[0], 0x16);
	cr_assert_eq(got[1], 0x03);
	close(fd[1]);
	pthread_join(t, NULL);
	cr_assert_neq(s.r, 0);
	cr_assert(strstr(s.err, "closed the connection"), "%s", s.err);
	channel_close(cli);
	tls_creds_free(c);
}

/* The listener's way: a non-blocking server driven by poll, then the
 * plaintext prefetched and read back through the channel. */
Test(tls, nonblocking_handshake_and_prefetch)
{
	struct tls_creds *c = creds("ca1", NULL);
	char err[ERR_MAX] = "";
	int fd[2];

	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fd), 0);
	timeouts(fd[0]);
	fcntl(fd[1], F_SETFL, O_NONBLOCK);
	struct side cli = { .ch = channel_tls_new(c, fd[0], true, false) };
	struct channel *srv = channel_tls_new(c, fd[1], true, true);
	pthread_t t;
	int r;
	short ev = 0;
	/* Before the client says anything the server must wait: without
	 * this first call a fast client could let the server through in one
	 * call, and the test would prove nothing about EAGAIN. */
	cr_assert_eq(channel_tls_handshake(srv, &ev, err), -EAGAIN, "%s", err);
	pthread_create(&t, NULL, server_thread, &cli); /* the client, blocking */
	while ((r = channel_tls_handshake(srv, &ev, err)) == -EAGAIN) {
		struct pollfd p = { .fd = fd[1], .events = ev };
		cr_assert_eq(poll(&p, 1, 5000), 1);
	}
	cr_assert_eq(r, 0, "%s", err);
	pthread_join(t, NULL);
	cr_assert_eq(cli.r, 0, "%s", cli.err);

	cr_assert_eq(channel_write_all(cli.ch, "0123456789", 10), 0);
	const unsigned char *d;
	size_t n = 0;
	for (int i = 0; i < 100 && n < 10; i++) {
		cr_assert_eq(channel_tls_prefetch(srv, 64, &d, &n), 0);
		if (n < 10)
			usleep(10000);
	}
	cr_assert_eq(n, 10);
	cr_assert_eq(memcmp(d, "0123456789", 10), 0);
	cr_assert(channel_poll_in(srv, 0));
	char buf[16];
	cr_assert_eq(channel_read(srv, buf, 4), 4);
	cr_assert_eq(memcmp(buf, "0123", 4), 0);
	cr_assert_eq(channel_read(srv, buf, 16), 6);
	/* Then the peer closes: the end comes after the held bytes. */
	channel_close(cli.ch);
	for (int i = 0; i < 100; i++) {
		if (channel_tls_prefetch(srv, 64, &d, &n) == -EPIPE)
			break;
		usleep(10000);
	}
	cr_assert_eq(channel_tls_prefetch(srv, 64, &d, &n), -EPIPE);
	cr_assert_eq(channel_read(srv, buf, 16), 0);
	channel_close(srv);
	tls_creds_free(c);
}

Test(tls, bad_credentials_named)
{
	struct tls_creds *c = NULL;
	char path[400], err[ERR_MAX] = "";

	snprintf(path, sizeof(path), "%s/none", tmp);
	cr_assert_lt(tls_creds_load_x509(&c, path, err), 0);
	cr_assert(strstr(err, "ca-cert.pem"), "%s", err);
	cr_assert_lt(tls_creds_load_psk(&c, path, err), 0);
	cr_assert(strstr(err, "No such file"), "%s", err);

	static const char *const bad[] = {
		"nocolon", ":0011223344556677889900aabbccddee", "id:0011",
		"id:zz112233445566778899aabbccddeeff", "id:0011223344556677889900aabbccddee0",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		FILE *f = fopen(path, "w");
		fprintf(f, "%s\n", bad[i]);
		fclose(f);
		err[0] = '\0';
		cr_assert_lt(tls_creds_load_psk(&c, path, err), 0, "%s", bad[i]);
		cr_assert(strstr(err, "line 1"), "%s: %s", bad[i], err);
	}

	/* A directory whose client certificate another CA signed. */
	tls_creds_free(creds("ca1", NULL));
	tls_creds_free(creds("ca2", NULL));
	char cmd[3000];
	snprintf(cmd, sizeof(cmd), "cp %s/ca2/client-cert.pem %s/ca2/client-key.pem %s/ca1/",
		 tmp, tmp, tmp);
	cr_assert_eq(system(cmd), 0);
	snprintf(path, sizeof(path), "%s/ca1", tmp);
	cr_assert_lt(tls_creds_load_x509(&c, path, err), 0);
	cr_assert(strstr(err, "client-cert.pem does not verify against ca-cert.pem"), "%s", err);
}

/* ---- integrity: a byte changed on the wire --------------------------------- */

struct relay {
	int a, b;                /* the client's and the server's far ends */
	volatile int flip;       /* flip a byte of the next client chunk */
};

static void *relay_thread(void *arg)
{
	struct relay *r = arg;
	char buf[65536];
	for (;;) {
		struct pollfd p[2] = { { .fd = r->a, .events = POLLIN },
				       { .fd = r->b, .events = POLLIN } };
		if (poll(p, 2, 5000) <= 0)
			return NULL;
		for (int i = 0; i < 2; i++) {
			if (!p[i].revents)
				continue;
			ssize_t n = read(i ? r->b : r->a, buf, sizeof(buf));
			if (n <= 0)
				return NULL;
			if (!i && r->flip && n > 10) {
				buf[10] ^= 0x01; /* inside the ciphertext */
				r->flip = 0;
			}
			if (write(i ? r->a : r->b, buf, (size_t)n) != n)
				return NULL;
		}
	}
}

Test(tls, changed_byte_on_the_wire_detected)
{
	struct tls_creds *c = creds("ca1", NULL);
	int a[2], b[2];
	pthread_t t, rt;

	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, a), 0);
	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, b), 0);
	timeouts(a[0]);
	timeouts(b[1]);
	struct relay r = { .a = a[1], .b = b[0] };
	pthread_create(&rt, NULL, relay_thread, &r);
	struct side cli = { .ch = channel_tls_new(c, a[0], true, false) };
	struct side srv = { .ch = channel_tls_new(c, b[1], true, true) };
	pthread_create(&t, NULL, server_thread, &srv);
	cli.r = channel_tls_handshake(cli.ch, NULL, cli.err);
	pthread_join(t, NULL);
	cr_assert_eq(cli.r, 0, "%s", cli.err);
	cr_assert_eq(srv.r, 0, "%s", srv.err);

	/* Untouched first, then one bit flipped: the record is refused,
	 * never handed up changed. */
	struct rec_writer *w = rec_writer_new(cli.ch, 1 << 20);
	struct rec_reader *rd = rec_reader_new(srv.ch, 1 << 20);
	uint32_t type, len;
	const uint8_t *p;
	static uint8_t payload[1000];
	rec_put(w, 1, payload, sizeof(payload));
	cr_assert_eq(rec_flush(w), 0);
	cr_assert_eq(rec_read(rd, &type, &p, &len), 0, "%s", rec_reader_errmsg(rd));
	r.flip = 1;
	rec_put(w, 2, payload, sizeof(payload));
	cr_assert_eq(rec_flush(w), 0);
	cr_assert_neq(rec_read(rd, &type, &p, &len), 0, "a changed record was accepted");
	cr_assert_eq(rec_reader_error(rd), -EBADMSG, "%s", rec_reader_errmsg(rd));
	rec_writer_free(w);
	rec_reader_free(rd);
	channel_close(cli.ch);
	channel_close(srv.ch);
	pthread_join(rt, NULL); /* it ends at the closed ends */
	close(a[1]);
	close(b[0]);
	tls_creds_free(c);
}

/* ---- the source's side (migration/secure.h) ------------------------------ */

Test(tls, source_handshake_bounded_by_its_timeout)
{
	struct tls_creds *c = creds("ca1", NULL);
	struct channel *ch = NULL;
	char err[ERR_MAX] = "";
	int fd[2];

	/* A destination that accepts the connection and says nothing. */
	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fd), 0);
	struct timespec a, b;
	clock_gettime(CLOCK_MONOTONIC, &a);
	int r = mig_secure_client(fd[0], c, "127.0.0.1", 300, &ch, err);
	clock_gettime(CLOCK_MONOTONIC, &b);
	double took = (double)(b.tv_sec - a.tv_sec) + (b.tv_nsec - a.tv_nsec) / 1e9;
	cr_assert_eq(r, -ETIMEDOUT, "%d %s", r, err);
	cr_assert_null(ch);
	cr_assert(strstr(err, "no answer in time"), "%s", err);
	cr_assert(took > 0.2 && took < 3, "took %.2f s with a 0.3 s limit", took);

	/* Without credentials: a plain socket channel, nothing sent. */
	cr_assert_eq(mig_secure_client(fd[0], NULL, "127.0.0.1", 300, &ch, err), 0);
	cr_assert_str_eq(ch->ops->kind, "socket");
	channel_close(ch);
	close(fd[0]);
	close(fd[1]);
	tls_creds_free(c);
}

/* The client checks the server's certificate names the host it meant
 * (the script's certificates name localhost, 127.0.0.1 and ::1). */
static void shake_host(struct tls_creds *c, const char *host, struct side *cli,
		       struct side *srv)
{
	int fd[2];
	pthread_t t;

	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fd), 0);
	timeouts(fd[0]);
	timeouts(fd[1]);
	memset(cli, 0, sizeof(*cli));
	memset(srv, 0, sizeof(*srv));
	cli->ch = channel_tls_new(c, fd[0], true, false);
	srv->ch = channel_tls_new(c, fd[1], true, true);
	cr_assert_eq(channel_tls_expect_host(cli->ch, host), 0);
	pthread_create(&t, NULL, server_thread, srv);
	cli->r = channel_tls_handshake(cli->ch, NULL, cli->err);
	if (cli->r)
		channel_shutdown(cli->ch);
	pthread_join(t, NULL);
}

Test(tls, server_certificate_must_name_the_host)
{
	struct tls_creds *c = creds("ca1", NULL);
	struct side cli, srv;
	static const char *const good[] = { "127.0.0.1", "localhost", "::1" };
	static const char *const bad[] = { "10.1.2.3", "elsewhere.example" };

	for (size_t i = 0; i < 3; i++) {
		shake_host(c, good[i], &cli, &srv);
		cr_assert_eq(cli.r, 0, "%s: %s", good[i], cli.err);
		cr_assert_eq(srv.r, 0, "%s: %s", good[i], srv.err);
		unshake(&cli, &srv);
	}
	for (size_t i = 0; i < 2; i++) {
		shake_host(c, bad[i], &cli, &srv);
		cr_assert_neq(cli.r, 0, "%s accepted", bad[i]);
		cr_assert(strstr(cli.err, "does not name") && strstr(cli.err, bad[i]),
			  "%s", cli.err);
		cr_assert_neq(srv.r, 0);
		unshake(&cli, &srv);
	}
	tls_creds_free(c);
}
