/*
 * A migration's secondary connections (migration/conns.h,
 * migration/incoming_conns.h) over real TCP sockets: the destination's
 * listener, its acceptor thread and the source's mig_conn_open(), as a
 * post-copy or a parallel-channel migration uses them after ACCEPT.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "io/channel.h"
#include "migration/channel.h"
#include "migration/conns.h"
#include "migration/incoming_conns.h"
#include "migration/incoming_listener.h"
#include "migration/preamble.h"
#include "migration/protocol.h"
#include "migration/stream.h"
#include "util/log.h"

static struct incoming_listener lst;
static struct inconns *conns;
static uint8_t sid[MIG_SESSION_ID_LEN];
static char uri[64];

static void setup(void)
{
	char err[ERR_MAX] = "";
	log_set_level(LOG_ERROR);
	cr_assert_eq(listener_open(&lst, "tcp:127.0.0.1:0", 2000000000ULL, NULL, err),
		     0, "%s", err);
	snprintf(uri, sizeof(uri), "tcp:127.0.0.1:%d", lst.port);
	cr_assert_eq(inconns_new(&conns, &lst, err), 0, "%s", err);
	mig_session_new(sid);
	cr_assert_eq(inconns_open(conns, sid, err), 0, "%s", err);
}

static void teardown(void)
{
	inconns_free(conns);
	listener_close(&lst);
}

TestSuite(incoming_conns, .init = setup, .fini = teardown, .timeout = 30);

static uint64_t in_ms(unsigned ms)
{
	return mig_now_ns() + ms * 1000000ULL;
}

/* Bytes written on one end arrive on the other: the same connection. */
static void same_connection(struct mig_conn *src, struct mig_conn *dst,
			    const char *msg)
{
	char got[64] = "";
	cr_assert_eq(channel_write_all(src->ch, msg, strlen(msg)), 0);
	cr_assert_eq(mig_conn_read_exact(dst->ch, got, strlen(msg)), 0);
	cr_assert_str_eq(got, msg);
	/* and back */
	memset(got, 0, sizeof(got));
	cr_assert_eq(channel_write_all(dst->ch, "ack", 3), 0);
	cr_assert_eq(mig_conn_read_exact(src->ch, got, 3), 0);
	cr_assert_str_eq(got, "ack");
}

Test(incoming_conns, a_connection_of_the_session_is_accepted_and_taken_by_role)
{
	struct mig_conn src, dst;
	char err[ERR_MAX] = "";

	cr_assert_eq(mig_conn_open(uri, NULL, MIG_ROLE_PAGE_REQUESTS, sid, 2000, &src,
				   err), 0, "%s", err);
	cr_assert_eq(src.role, MIG_ROLE_PAGE_REQUESTS);
	cr_assert_eq(inconns_wait(conns, MIG_ROLE_PAGE_REQUESTS, in_ms(2000), &dst, err),
		     0, "%s", err);
	cr_assert_eq(dst.role, MIG_ROLE_PAGE_REQUESTS);
	same_connection(&src, &dst, "request");
	json_t *j = inconns_json(conns);
	cr_assert_eq(json_integer_value(json_object_get(j, "accepted")), 1);
	cr_assert_eq(json_integer_value(json_object_get(j, "waiting")), 0);
	json_decref(j);
	mig_conn_close(&src);
	mig_conn_close(&dst);
}

Test(incoming_conns, several_of_one_role_come_in_arrival_order_beside_others)
{
	struct mig_conn src[4], dst[4];
	char err[ERR_MAX] = "";

	for (int i = 0; i < 3; i++)
		cr_assert_eq(mig_conn_open(uri, NULL, MIG_ROLE_BULK_PAGES, sid, 2000,
					   &src[i], err), 0, "%s", err);
	cr_assert_eq(mig_conn_open(uri, NULL, MIG_ROLE_PAGE_REQUESTS, sid, 2000, &src[3],
				   err), 0, "%s", err);
	/* The other role first, though it came last. */
	cr_assert_eq(inconns_wait(conns, MIG_ROLE_PAGE_REQUESTS, in_ms(2000), &dst[3],
				  err), 0, "%s", err);
	same_connection(&src[3], &dst[3], "requests");
	for (int i = 0; i < 3; i++) {
		char msg[16];
		snprintf(msg, sizeof(msg), "bulk %d", i);
		cr_assert_eq(inconns_wait(conns, MIG_ROLE_BULK_PAGES, in_ms(2000), &dst[i],
					  err), 0, "%s", err);
		same_connection(&src[i], &dst[i], msg);
	}
	for (int i = 0; i < 4; i++) {
		mig_conn_close(&src[i]);
		mig_conn_close(&dst[i]);
	}
}

Test(incoming_conns, an_unknown_session_is_refused_and_the_real_one_still_joins)
{
	struct mig_conn src, dst;
	uint8_t other[MIG_SESSION_ID_LEN];
	char err[ERR_MAX] = "", hex[33];

	memcpy(other, sid, sizeof(other));
	other[0] ^= 1;
	mig_session_hex(other, hex);
	cr_assert_eq(mig_conn_open(uri, NULL, MIG_ROLE_BULK_PAGES, other, 2000, &src, err),
		     -EPERM, "%s", err);
	cr_assert(strstr(err, "refused the bulk-pages connection"), "%s", err);
	cr_assert(strstr(err, hex), "the refusal names the session: %s", err);
	cr_assert(strstr(err, "not the migration under way"), "%s", err);
	/* Nothing was queued for it. */
	cr_assert_eq(inconns_wait(conns, MIG_ROLE_BULK_PAGES, in_ms(100), &dst, err),
		     -ETIMEDOUT);
	cr_assert_eq(mig_conn_open(uri, NULL, MIG_ROLE_BULK_PAGES, sid, 2000, &src, err),
		     0, "%s", err);
	cr_assert_eq(inconns_wait(conns, MIG_ROLE_BULK_PAGES, in_ms(2000), &dst, err), 0,
		     "%s", err);
	same_connection(&src, &dst, "pages");
	json_t *j = inconns_json(conns);
	cr_assert_eq(json_integer_value(json_object_get(j, "refused")), 1);
	cr_assert_eq(json_integer_value(json_object_get(j, "accepted")), 1);
	json_decref(j);
	mig_conn_close(&src);
	mig_conn_close(&dst);
}

Test(incoming_conns, an_unknown_role_and_a_second_main_are_refused)
{
	struct mig_conn src;
	char err[ERR_MAX] = "";

	cr_assert_eq(mig_conn_open(uri, NULL, 77, sid, 2000, &src, err), -EPERM);
	cr_assert(strstr(err, "connection role 77 is unknown"), "%s", err);
	cr_assert_eq(mig_conn_open(uri, NULL, MIG_ROLE_MAIN, sid, 2000, &src, err), -EPERM);
	cr_assert(strstr(err, "already under way"), "%s", err);
	/* the accepted session's id is what admits a connection: never told */
	char hex[33];
	mig_session_hex(sid, hex);
	uint8_t other[MIG_SESSION_ID_LEN] = { 1 };
	cr_assert_eq(mig_conn_open(uri, NULL, MIG_ROLE_MAIN, other, 2000, &src, err), -EPERM);
	cr_assert_null(strstr(err, hex), "%s", err);
	cr_assert_eq(mig_conn_open(uri, NULL, MIG_ROLE_BULK_PAGES, other, 2000, &src, err),
		     -EPERM);
	cr_assert_null(strstr(err, hex), "%s", err);
	cr_assert_eq(mig_conn_open(uri, NULL, 0, sid, 2000, &src, err), -EPERM);
	cr_assert(strstr(err, "role 0 is unknown"), "%s", err);
}

/* Bytes the source sends right behind its preamble are not swallowed by
 * the preamble's reader: they are the new owner's. */
Test(incoming_conns, bytes_behind_the_preamble_stay_for_the_owner)
{
	struct mig_uri u;
	char err[ERR_MAX] = "", got[8] = "";
	uint8_t pre[32];
	uint32_t v = MIG_VERSION, role = MIG_ROLE_BULK_PAGES;
	struct mig_conn dst;

	memcpy(pre, MIG_MAGIC, 8);
	memcpy(pre + 8, &v, 4);
	memcpy(pre + 12, &role, 4);
	memcpy(pre + 16, sid, 16);
	cr_assert_eq(channel_parse_uri(uri, &u, err), 0);
	int fd = channel_connect(&u, 2000, err);
	cr_assert_geq(fd, 0, "%s", err);
	uint8_t buf[32 + 5];
	memcpy(buf, pre, 32);
	memcpy(buf + 32, "hello", 5);
	cr_assert_eq(write(fd, buf, sizeof(buf)), (ssize_t)sizeof(buf));
	cr_assert_eq(inconns_wait(conns, MIG_ROLE_BULK_PAGES, in_ms(2000), &dst, err), 0,
		     "%s", err);
	cr_assert_eq(mig_conn_read_exact(dst.ch, got, 5), 0);
	cr_assert_str_eq(got, "hello");
	mig_conn_close(&dst);
	close(fd);
}

Test(incoming_conns, a_wait_ends_at_its_deadline)
{
	struct mig_conn dst;
	char err[ERR_MAX] = "";
	uint64_t t0 = mig_now_ns();

	cr_assert_eq(inconns_wait(conns, MIG_ROLE_RETURN_PATH, in_ms(200), &dst, err),
		     -ETIMEDOUT);
	uint64_t took = (mig_now_ns() - t0) / 1000000;
	cr_assert(took >= 190 && took < 2000, "waited %llu ms", (unsigned long long)took);
	cr_assert(strstr(err, "no return-path connection"), "%s", err);
}

static void *cancel_later(void *arg)
{
	usleep(100 * 1000);
	inconns_cancel(arg);
	return NULL;
}

Test(incoming_conns, a_cancel_ends_a_wait_and_later_connections_are_not_taken)
{
	struct mig_conn dst, src;
	char err[ERR_MAX] = "";
	pthread_t t;

	pthread_create(&t, NULL, cancel_later, conns);
	cr_assert_eq(inconns_wait(conns, MIG_ROLE_BULK_PAGES, in_ms(10000), &dst, err),
		     -ECANCELED);
	pthread_join(t, NULL);
	/* Nobody answers any more: the connection gets no ACCEPT. */
	int r = mig_conn_open(uri, NULL, MIG_ROLE_BULK_PAGES, sid, 300, &src, err);
	cr_assert_neq(r, 0, "accepted after the cancel");
}

/* Waiting on an object no migration was accepted for says so at once. */
Test(incoming_conns, before_open_nothing_can_come)
{
	struct inconns *t;
	struct mig_conn dst;
	char err[ERR_MAX] = "";

	cr_assert_eq(inconns_new(&t, &lst, err), 0);
	cr_assert_eq(inconns_wait(t, MIG_ROLE_BULK_PAGES, in_ms(5000), &dst, err), -EBADF);
	cr_assert(strstr(err, "no migration was accepted"), "%s", err);
	inconns_free(t);
}

/* Connections accepted and never taken are closed with the object. */
Test(incoming_conns, untaken_connections_are_closed_at_the_end)
{
	struct mig_conn src;
	char err[ERR_MAX] = "", b;

	cr_assert_eq(mig_conn_open(uri, NULL, MIG_ROLE_BULK_PAGES, sid, 2000, &src, err),
		     0, "%s", err);
	inconns_stop(conns);
	channel_set_timeout(src.fd, 2000);
	cr_assert_eq(channel_read(src.ch, &b, 1), 0, "the connection was not closed");
	mig_conn_close(&src);
}

/* ---- over TLS ---------------------------------------------------------------
 * A TLS migration's further connections are TLS from their first byte,
 * the preamble inside; a source with another key is dropped in the
 * handshake and never reaches the session. */

#include "io/tls.h"
#include <signal.h>
#include <stdlib.h>

static struct tls_creds *psk_creds(const char *dir, const char *name, const char *line)
{
	char path[400], err[ERR_MAX] = "";
	struct tls_creds *c = NULL;
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	FILE *f = fopen(path, "w");
	cr_assert_not_null(f);
	fprintf(f, "%s\n", line);
	fclose(f);
	cr_assert_eq(tls_creds_load_psk(&c, path, err), 0, "%s", err);
	return c;
}

Test(incoming_conns, tls_connections_join_and_a_wrong_key_does_not)
{
	char dir[256], err[ERR_MAX] = "", cmd[300];
	const char *t = getenv("TMPDIR");
	snprintf(dir, sizeof(dir), "%s/ferry-conns-XXXXXX", t ? t : "/tmp");
	cr_assert_not_null(mkdtemp(dir));
	signal(SIGPIPE, SIG_IGN);
	struct tls_creds *ok = psk_creds(dir, "a.psk",
		"ferry:00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff");
	struct tls_creds *bad = psk_creds(dir, "b.psk",
		"ferry:ffeeddccbbaa99887766554433221100ffeeddccbbaa99887766554433221100");

	/* A TLS listener of its own, its session open. */
	struct incoming_listener tl;
	struct inconns *tc;
	cr_assert_eq(listener_open(&tl, "tcp:127.0.0.1:0", 2000000000ULL, NULL, err), 0);
	listener_set_tls(&tl, ok);
	char turi[64];
	snprintf(turi, sizeof(turi), "tcp:127.0.0.1:%d", tl.port);
	cr_assert_eq(inconns_new(&tc, &tl, err), 0);
	cr_assert_eq(inconns_open(tc, sid, err), 0, "%s", err);

	struct mig_conn src, dst;
	cr_assert_neq(mig_conn_open(turi, bad, MIG_ROLE_BULK_PAGES, sid, 2000, &src, err), 0,
		      "a source with another key joined");
	cr_assert_neq(mig_conn_open(turi, NULL, MIG_ROLE_BULK_PAGES, sid, 2000, &src, err), 0,
		      "a plain source joined a TLS migration");
	cr_assert_eq(mig_conn_open(turi, ok, MIG_ROLE_BULK_PAGES, sid, 2000, &src, err), 0,
		     "%s", err);
	cr_assert_eq(inconns_wait(tc, MIG_ROLE_BULK_PAGES, in_ms(2000), &dst, err), 0,
		     "%s", err);
	cr_assert_str_eq(dst.ch->ops->kind, "tls");
	same_connection(&src, &dst, "encrypted pages");
	mig_conn_close(&dst);
	/* only the good one was queued */
	struct mig_conn none;
	cr_assert_eq(inconns_wait(tc, MIG_ROLE_BULK_PAGES, in_ms(100), &none, err),
		     -ETIMEDOUT);
	mig_conn_close(&src);
	inconns_free(tc);
	listener_close(&tl);
	tls_creds_free(ok);
	tls_creds_free(bad);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	cr_assert_eq(system(cmd), 0);
}

/* A cancel shuts the socket being opened: mig_conn_open_watched ends at
 * once, not at its timeout, against a destination that never answers. */
static int watched_fd = -1;

static void watch(void *opaque, int fd)
{
	(void)opaque;
	__atomic_store_n(&watched_fd, fd, __ATOMIC_SEQ_CST);
}

static void *shut_later(void *arg)
{
	(void)arg;
	usleep(150 * 1000);
	int fd = __atomic_load_n(&watched_fd, __ATOMIC_SEQ_CST);
	if (fd >= 0)
		shutdown(fd, SHUT_RDWR);
	return NULL;
}

Test(incoming_conns, a_connection_being_opened_can_be_cut_short)
{
	char err[ERR_MAX] = "", u[64];
	struct mig_uri mu;
	/* A socket that listens and never answers (the backlog accepts). */
	cr_assert_eq(channel_parse_uri("tcp:127.0.0.1:0", &mu, err), 0);
	int lfd = channel_listen(&mu, err);
	cr_assert_geq(lfd, 0, "%s", err);
	snprintf(u, sizeof(u), "tcp:127.0.0.1:%d", channel_local_port(lfd));
	struct mig_conn c;
	pthread_t t;
	watched_fd = -1;
	pthread_create(&t, NULL, shut_later, NULL);
	uint64_t t0 = mig_now_ns();
	int r = mig_conn_open_watched(u, NULL, MIG_ROLE_BULK_PAGES, sid, 5000, watch, NULL,
				      &c, err);
	uint64_t ms = (mig_now_ns() - t0) / 1000000;
	pthread_join(t, NULL);
	cr_assert_neq(r, 0, "opened against a silent peer");
	cr_assert_lt(ms, 2000, "took %llu ms: the shutdown did not end the wait",
		     (unsigned long long)ms);
	cr_assert_eq(watched_fd, -1, "the hook was not told the end");
	close(lfd);
}
