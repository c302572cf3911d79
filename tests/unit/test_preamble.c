/*
 * A connection's preamble (migration/preamble.h) and the migration
 * connection (migration/stream.h) over real sockets.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "io/channel.h"
#include "io/pacing.h"
#include "io/record.h"
#include "migration/preamble.h"
#include "migration/protocol.h"
#include "migration/stream.h"
#include "util/log.h"

struct conn {
	int fd[2];
	struct channel *ch;
	struct rec_reader *r;
};

/* A reader on one end of a socketpair, bytes already sent from the other. */
static void conn_with(struct conn *c, const void *bytes, size_t len)
{
	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, c->fd), 0);
	cr_assert_eq(write(c->fd[0], bytes, len), (ssize_t)len);
	shutdown(c->fd[0], SHUT_WR);
	c->ch = channel_socket_new(c->fd[1], true);
	c->r = rec_reader_new(c->ch, MIG_MAX_RECORD);
}

static void conn_close(struct conn *c)
{
	rec_reader_free(c->r);
	channel_close(c->ch);
	close(c->fd[0]);
}

Test(preamble, version_2_roundtrip)
{
	int fd[2];
	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, fd), 0);
	struct channel *a = channel_socket_new(fd[0], true);
	struct channel *b = channel_socket_new(fd[1], true);
	struct rec_writer *w = rec_writer_new(a, 1024);
	struct rec_reader *r = rec_reader_new(b, 1024);
	uint8_t sid[MIG_SESSION_ID_LEN], other[MIG_SESSION_ID_LEN];
	mig_session_new(sid);
	mig_session_new(other);
	cr_assert_neq(memcmp(sid, other, sizeof(sid)), 0, "two sessions, one id");
	mig_preamble_write(w, MIG_ROLE_BULK_PAGES, sid);
	rec_put(w, MIG_REC_HELLO, "{}", 2);
	cr_assert_eq(rec_flush(w), 0);
	cr_assert_eq(rec_writer_bytes_out(w), 32 + 12 + 2, "the preamble is 32 bytes");
	struct mig_preamble p;
	char err[ERR_MAX] = "";
	cr_assert_eq(mig_preamble_read(r, &p, err), 0, "%s", err);
	cr_assert_eq(p.version, MIG_VERSION);
	cr_assert_eq(p.role, MIG_ROLE_BULK_PAGES);
	cr_assert_eq(memcmp(p.session, sid, sizeof(sid)), 0);
	/* the records follow */
	uint32_t type, len;
	const uint8_t *pl;
	cr_assert_eq(rec_read(r, &type, &pl, &len), 0);
	cr_assert_eq(type, MIG_REC_HELLO);
	char hex[33];
	mig_session_hex(sid, hex);
	cr_assert_eq(strlen(hex), 32);
	rec_writer_free(w);
	rec_reader_free(r);
	channel_close(a);
	channel_close(b);
}

Test(preamble, version_1_reads_as_main)
{
	uint8_t b[12];
	uint32_t v = 1;
	memcpy(b, "FERRYMIG", 8);
	memcpy(b + 8, &v, 4);
	struct conn c;
	conn_with(&c, b, sizeof(b));
	struct mig_preamble p;
	char err[ERR_MAX] = "";
	cr_assert_eq(mig_preamble_read(c.r, &p, err), 0, "%s", err);
	cr_assert_eq(p.version, 1);
	cr_assert_eq(p.role, MIG_ROLE_MAIN);
	uint8_t zero[MIG_SESSION_ID_LEN] = { 0 };
	cr_assert_eq(memcmp(p.session, zero, sizeof(zero)), 0);
	conn_close(&c);
}

struct bad_row {
	const char *magic;
	uint32_t version, role;
	size_t cut;         /* send only this many bytes (0 = all 32) */
	int rc;
	const char *msg;
};

static const struct bad_row bad_rows[] = {
	{ "FERRYMIX", 2, 1, 0, -EPROTO, "bad magic" },
	{ "FERRYMIG", 0, 1, 0, -EPROTONOSUPPORT, "stream version 0 is not in 1..2" },
	{ "FERRYMIG", 3, 1, 0, -EPROTONOSUPPORT, "stream version 3 is not in 1..2" },
	{ "FERRYMIG", 2, 0, 0, -EPROTO, "connection role 0 is unknown" },
	{ "FERRYMIG", 2, 6, 0, -EPROTO, "connection role 6 is unknown" },
	{ "FERRYMIG", 2, 1, 20, -ECONNRESET, "closed by the peer" },
	{ "FERRYMIG", 2, 1, 4, -ECONNRESET, "after 4 of 8 bytes" },
};

Test(preamble, bad_preambles)
{
	for (size_t i = 0; i < sizeof(bad_rows) / sizeof(bad_rows[0]); i++) {
		const struct bad_row *w = &bad_rows[i];
		uint8_t b[32] = { 0 };
		memcpy(b, w->magic, 8);
		memcpy(b + 8, &w->version, 4);
		memcpy(b + 12, &w->role, 4);
		struct conn c;
		conn_with(&c, b, w->cut ? w->cut : sizeof(b));
		struct mig_preamble p;
		char err[ERR_MAX] = "";
		int rc = mig_preamble_read(c.r, &p, err);
		cr_expect_eq(rc, w->rc, "row %zu: rc %d (%s)", i, rc, err);
		cr_expect(strstr(err, w->msg), "row %zu: '%s' lacks '%s'", i, err, w->msg);
		conn_close(&c);
	}
}

Test(protocol, record_names_and_known_types)
{
	cr_assert_str_eq(mig_record_name(MIG_REC_RAM_PAGES), "RAM_PAGES");
	cr_assert(mig_record_known(MIG_REC_COMMIT));
	cr_assert(mig_record_known(MIG_REC_RUNNING));
	cr_assert_not(mig_record_known(0x4f));
	cr_assert_not(mig_record_known(REC_OPTIONAL | 0x4f));
	cr_assert_str_eq(mig_record_name(REC_OPTIONAL | 0x4f), "unknown optional");
	cr_assert_str_eq(mig_role_name(MIG_ROLE_PAGE_REQUESTS), "page-requests");
	cr_assert_str_eq(mig_role_name(MIG_ROLE_POSTCOPY_PUSH), "postcopy-push");
	cr_assert_str_eq(mig_record_name(MIG_REC_POSTCOPY_MISSING), "POSTCOPY_MISSING");
	/* no defined type is optional: an old peer must not skip any */
	static const uint32_t all[] = { 0x01, 0x02, 0x03, 0x10, 0x11, 0x20, 0x21, 0x22,
					0x30, 0x41, 0x42, 0x43, 0x81, 0x82, 0x83, 0x84,
					0x85 };
	for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++) {
		cr_assert(mig_record_known(all[i]), "0x%x", all[i]);
		cr_assert_not(rec_type_optional(all[i]), "0x%x", all[i]);
	}
}

/* ---- the migration connection ------------------------------------------ */

Test(stream, first_error_of_either_direction_is_the_streams)
{
	int fd[2];
	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, fd), 0);
	struct mig_stream s;
	cr_assert_eq(stream_init(&s, fd[0]), 0);
	cr_assert_eq(s.fd, fd[0]);
	stream_put(&s, MIG_REC_COMMIT, NULL, 0);
	cr_assert_eq(stream_flush(&s), 0);
	cr_assert_eq(s.bytes_out, 12);
	/* a bad record from the peer: the reader's error becomes the stream's */
	uint8_t junk[12] = { 0x84, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4 };
	cr_assert_eq(write(fd[1], junk, sizeof(junk)), 12);
	uint32_t type, len;
	const uint8_t *p;
	cr_assert_eq(stream_read(&s, &type, &p, &len), -EPROTO);
	cr_assert(strstr(s.errmsg, "RUNNING (0x84, 0 bytes): checksum mismatch"), "%s",
		  s.errmsg);
	cr_assert_eq(s.bytes_in, 12);
	/* sticky: later failures do not replace it */
	cr_assert_eq(stream_fail(&s, -EIO, "later"), -EPROTO);
	stream_put(&s, MIG_REC_COMMIT, NULL, 0);
	cr_assert_eq(stream_flush(&s), -EPROTO);
	cr_assert_eq(s.bytes_out, 12, "nothing is sent after the error");
	stream_free(&s);
	/* the caller's fd stays open */
	cr_assert_eq(write(fd[0], "x", 1), 1);
	close(fd[0]);
	close(fd[1]);
}

struct later {
	bool *flag;
};

static void *set_later(void *arg)
{
	struct later *l = arg;
	usleep(100000);
	__atomic_store_n(l->flag, true, __ATOMIC_RELAXED);
	return NULL;
}

/* migrate-cancel at max-bandwidth 1 byte/s: the source's flush ends within
 * a slice of the cancel, not after hours. */
Test(stream, cancel_at_a_bandwidth_near_zero)
{
	int fd[2];
	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, fd), 0);
	struct mig_stream s;
	bool cancel = false;
	cr_assert_eq(stream_init(&s, fd[0]), 0);
	s.max_bandwidth = 1;
	s.cancel = &cancel;
	static uint8_t page[3 * 4096];
	stream_put(&s, MIG_REC_RAM_PAGES, page, sizeof(page));
	struct later l = { .flag = &cancel };
	pthread_t t;
	pthread_create(&t, NULL, set_later, &l);
	uint64_t t0 = pacer_now_ns();
	cr_assert_eq(stream_flush(&s), -ECANCELED);
	uint64_t dt = pacer_now_ns() - t0;
	pthread_join(t, NULL);
	cr_assert_lt(dt, 100000000ULL + 5 * PACER_MAX_SLEEP_NS, "took %llu ns",
		     (unsigned long long)dt);
	cr_assert_str_eq(s.errmsg, "cancelled");
	stream_free(&s);
	close(fd[0]);
	close(fd[1]);
}

/* A reader waiting for the peer stops when the abort fd (a signalfd in
 * ferry) becomes readable. */
Test(stream, abort_fd_ends_a_wait)
{
	int fd[2], ab[2];
	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, fd), 0);
	cr_assert_eq(pipe(ab), 0);
	struct mig_stream s;
	cr_assert_eq(stream_init(&s, fd[0]), 0);
	s.abort_fd = ab[0];
	cr_assert_eq(write(ab[1], "x", 1), 1);
	uint32_t type, len;
	const uint8_t *p;
	cr_assert_eq(stream_read(&s, &type, &p, &len), -EINTR);
	cr_assert(strstr(s.errmsg, "interrupted"), "%s", s.errmsg);
	stream_free(&s);
	close(fd[0]);
	close(fd[1]);
	close(ab[0]);
	close(ab[1]);
}
