/*
 * Unit tests of the transport (io/channel.h), the record framing
 * (io/record.h) and pacing (io/pacing.h), over real sockets (socketpair)
 * and real files.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "io/channel.h"
#include "io/pacing.h"
#include "io/record.h"
#include "util/crc32c.h"

struct pair {
	int fd[2];
	struct channel *ch[2];
};

static void pair_open(struct pair *p)
{
	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, p->fd), 0);
	p->ch[0] = channel_socket_new(p->fd[0], true);
	p->ch[1] = channel_socket_new(p->fd[1], true);
	cr_assert(p->ch[0] && p->ch[1]);
}

static void pair_close(struct pair *p)
{
	channel_close(p->ch[0]);
	channel_close(p->ch[1]);
}

static void write_raw(int fd, const void *data, size_t len)
{
	cr_assert_eq(write(fd, data, len), (ssize_t)len);
}

/* One record's bytes, built by hand from the documented layout. */
static size_t frame(uint8_t *out, uint32_t type, const void *payload,
		    uint32_t len)
{
	memcpy(out, &type, 4);
	memcpy(out + 4, &len, 4);
	memcpy(out + 8, payload, len);
	uint32_t crc = crc32c(0, out, 8 + len);
	memcpy(out + 8 + len, &crc, 4);
	return 12 + len;
}

/* ---- channels ---------------------------------------------------------- */

Test(channel, socket_both_ways_and_peer)
{
	struct pair p;
	pair_open(&p);
	cr_assert_str_eq(p.ch[0]->ops->kind, "socket");
	cr_assert_str_eq(p.ch[0]->peer, "a local socket");
	cr_assert_eq(channel_write_all(p.ch[0], "hello", 5), 0);
	char buf[8] = { 0 };
	cr_assert(channel_poll_in(p.ch[1], 1000));
	cr_assert_eq(channel_read(p.ch[1], buf, sizeof(buf)), 5);
	cr_assert_str_eq(buf, "hello");
	/* nothing more: not readable */
	cr_assert_not(channel_poll_in(p.ch[1], 0));
	pair_close(&p);
}

Test(channel, closed_peer_reads_end_and_writes_fail)
{
	struct pair p;
	pair_open(&p);
	channel_close(p.ch[1]);
	char c;
	cr_assert_eq(channel_read(p.ch[0], &c, 1), 0);
	/* EPIPE, not a SIGPIPE that would kill the test */
	cr_assert_eq(channel_write_all(p.ch[0], "x", 1), -EPIPE);
	channel_close(p.ch[0]);
}

struct blocked_read {
	struct channel *ch;
	ssize_t got;
};

static void *read_one(void *arg)
{
	struct blocked_read *b = arg;
	char c;
	b->got = channel_read(b->ch, &c, 1);
	return NULL;
}

Test(channel, shutdown_unblocks_a_reader)
{
	struct pair p;
	pair_open(&p);
	struct blocked_read b = { .ch = p.ch[0], .got = -1 };
	pthread_t t;
	pthread_create(&t, NULL, read_one, &b);
	usleep(50000);
	cr_assert_eq(channel_shutdown(p.ch[0]), 0);
	pthread_join(t, NULL);
	cr_assert_eq(b.got, 0, "a shut-down channel reads as ended");
	pair_close(&p);
}

Test(channel, borrowed_fd_stays_open)
{
	int fd[2];
	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, fd), 0);
	struct channel *ch = channel_socket_new(fd[0], false);
	channel_close(ch);
	cr_assert_eq(write(fd[0], "x", 1), 1, "the caller's fd was closed");
	close(fd[0]);
	close(fd[1]);
}

static int temp_file(void)
{
	char path[] = "/tmp/ferry-io-test-XXXXXX";
	int fd = mkstemp(path);
	cr_assert(fd >= 0);
	unlink(path);
	return fd;
}

Test(channel, file_window)
{
	int fd = temp_file();
	cr_assert_eq(write(fd, "0123456789abcdef", 16), 16);
	/* a window [4, 10) */
	struct channel *ch = channel_file_new(fd, false, 4, 6, "test file");
	cr_assert_str_eq(ch->ops->kind, "file");
	cr_assert_str_eq(ch->peer, "test file");
	cr_assert(channel_poll_in(ch, 0), "files never block");
	char buf[32] = { 0 };
	cr_assert_eq(channel_read(ch, buf, 4), 4);
	cr_assert_eq(channel_read(ch, buf + 4, 20), 2);
	cr_assert_str_eq(buf, "456789");
	cr_assert_eq(channel_read(ch, buf, 20), 0, "the window ends at 10");
	/* writes go to the window's start, and not past its end */
	cr_assert_eq(channel_write_all(ch, "WXYZ", 4), 0);
	cr_assert_eq(channel_write_all(ch, "123", 3), -EFBIG);
	cr_assert_eq(pread(fd, buf, 16, 0), 16);
	cr_assert_eq(memcmp(buf, "0123WXYZ89abcdef", 16), 0);
	/* the fd's own offset did not move */
	cr_assert_eq(lseek(fd, 0, SEEK_CUR), 16);
	channel_close(ch);
	close(fd);
}

/* ---- records ----------------------------------------------------------- */

static const char *namer(uint32_t type)
{
	return type == 7 ? "SEVEN" : NULL;
}

struct sender {
	struct rec_writer *w;
	unsigned n;
	int result;
};

/* Records of growing sizes: i bytes of (i + k) for record i, and one
 * larger than the writer's flush threshold. */
static void *send_many(void *arg)
{
	struct sender *s = arg;
	static uint8_t big[3 << 20];
	for (unsigned i = 0; i < s->n; i++) {
		uint8_t *p = rec_begin(s->w, 100 + i, i);
		for (unsigned k = 0; k < i; k++)
			p[k] = (uint8_t)(i + k);
		rec_end(s->w, i);
	}
	memset(big, 0x5a, sizeof(big));
	rec_put(s->w, 1, big, sizeof(big));
	rec_put(s->w, 2, NULL, 0);
	s->result = rec_flush(s->w);
	return NULL;
}

Test(record, many_records_roundtrip_over_a_socket)
{
	struct pair p;
	pair_open(&p);
	struct rec_writer *w = rec_writer_new(p.ch[0], 4 << 20);
	struct rec_reader *r = rec_reader_new(p.ch[1], 4 << 20);
	struct sender s = { .w = w, .n = 3000 };
	pthread_t t;
	pthread_create(&t, NULL, send_many, &s);
	uint64_t total = 0;
	for (unsigned i = 0; i < s.n; i++) {
		uint32_t type, len;
		const uint8_t *pl;
		cr_assert_eq(rec_read(r, &type, &pl, &len), 0, "record %u: %s", i,
			     rec_reader_errmsg(r));
		cr_assert_eq(type, 100 + i);
		cr_assert_eq(len, i);
		for (unsigned k = 0; k < i; k++)
			cr_assert_eq(pl[k], (uint8_t)(i + k), "record %u byte %u", i, k);
		total += 12 + i;
	}
	uint32_t type, len;
	const uint8_t *pl;
	cr_assert_eq(rec_read(r, &type, &pl, &len), 0, "%s", rec_reader_errmsg(r));
	cr_assert_eq(type, 1);
	cr_assert_eq(len, 3u << 20);
	cr_assert_eq(pl[0], 0x5a);
	cr_assert_eq(pl[len - 1], 0x5a);
	cr_assert_eq(rec_read(r, &type, &pl, &len), 0);
	cr_assert_eq(type, 2);
	cr_assert_eq(len, 0);
	pthread_join(t, NULL);
	cr_assert_eq(s.result, 0, "%s", rec_writer_errmsg(w));
	total += 12 + (3u << 20) + 12;
	cr_assert_eq(rec_writer_bytes_out(w), total);
	cr_assert_eq(rec_reader_bytes_in(r), total);
	cr_assert_eq(rec_reader_records(r), s.n + 2);
	cr_assert_eq(rec_writer_buffered(w), 0);
	rec_writer_free(w);
	rec_reader_free(r);
	pair_close(&p);
}

Test(record, wire_layout_is_the_documented_one)
{
	struct pair p;
	pair_open(&p);
	struct rec_writer *w = rec_writer_new(p.ch[0], 1024);
	rec_put_raw(w, "RAW!", 4);
	rec_put(w, 0x10, "abc", 3);
	cr_assert_eq(rec_flush(w), 0);
	uint8_t got[64], want[64];
	memcpy(want, "RAW!", 4);
	size_t n = 4 + frame(want + 4, 0x10, "abc", 3);
	cr_assert_eq(read(p.fd[1], got, sizeof(got)), (ssize_t)n);
	cr_assert_eq(memcmp(got, want, n), 0);
	rec_writer_free(w);
	pair_close(&p);
}

static struct rec_reader *reader_of(struct pair *p, const void *bytes,
				    size_t len, bool close_after)
{
	pair_open(p);
	write_raw(p->fd[0], bytes, len);
	if (close_after)
		shutdown(p->fd[0], SHUT_WR);
	struct rec_reader *r = rec_reader_new(p->ch[1], 1024);
	rec_reader_set_namer(r, namer);
	return r;
}

Test(record, checksum_mismatch_names_the_record)
{
	uint8_t b[64];
	size_t n = frame(b, 7, "payload", 7);
	b[10] ^= 0x20;
	struct pair p;
	struct rec_reader *r = reader_of(&p, b, n, true);
	uint32_t type, len;
	const uint8_t *pl;
	cr_assert_eq(rec_read(r, &type, &pl, &len), -EPROTO);
	cr_assert(strstr(rec_reader_errmsg(r), "SEVEN (0x7, 7 bytes): checksum mismatch"),
		  "%s", rec_reader_errmsg(r));
	rec_reader_free(r);
	pair_close(&p);
}

Test(record, truncated_record)
{
	uint8_t b[64];
	size_t n = frame(b, 7, "payload", 7);
	struct pair p;
	struct rec_reader *r = reader_of(&p, b, n - 3, true);
	uint32_t type, len;
	const uint8_t *pl;
	cr_assert_eq(rec_read(r, &type, &pl, &len), -ECONNRESET);
	cr_assert(strstr(rec_reader_errmsg(r), "truncated: connection closed by the peer"),
		  "%s", rec_reader_errmsg(r));
	rec_reader_free(r);
	pair_close(&p);
}

Test(record, end_between_records)
{
	uint8_t b[64];
	size_t n = frame(b, 7, "x", 1);
	struct pair p;
	struct rec_reader *r = reader_of(&p, b, n, true);
	uint32_t type, len;
	const uint8_t *pl;
	cr_assert_eq(rec_read(r, &type, &pl, &len), 0);
	cr_assert_eq(rec_read(r, &type, &pl, &len), -ECONNRESET);
	cr_assert(strstr(rec_reader_errmsg(r), "closed by the peer before record 1"),
		  "%s", rec_reader_errmsg(r));
	rec_reader_free(r);
	pair_close(&p);
}

Test(record, too_long_a_record)
{
	uint32_t hdr[2] = { 7, 1025 };
	struct pair p;
	struct rec_reader *r = reader_of(&p, hdr, 8, false);
	uint32_t type, len;
	const uint8_t *pl;
	cr_assert_eq(rec_read(r, &type, &pl, &len), -EPROTO);
	cr_assert(strstr(rec_reader_errmsg(r), "claims 1025 bytes, more than 1024"),
		  "%s", rec_reader_errmsg(r));
	rec_reader_free(r);
	pair_close(&p);
}

/* ---- a record read in parts (rec_part_*: RAM_PAGES into guest memory) */

#define PART_LEN (192u << 10)   /* more than the reader buffers at a peek */

struct part_feed {
	int fd;
	uint8_t *bytes;
	size_t len;
};

static void *feed(void *arg)
{
	struct part_feed *f = arg;
	for (size_t off = 0; off < f->len;) {
		/* MSG_NOSIGNAL: a reader that stopped early closes its end */
		ssize_t n = send(f->fd, f->bytes + off, f->len - off, MSG_NOSIGNAL);
		if (n <= 0)
			break;
		off += (size_t)n;
	}
	shutdown(f->fd, SHUT_WR);
	return NULL;
}

/* A big record then a small one, fed by a thread; @cut bytes left off
 * the end, byte @flip of the big payload flipped after framing (-1: no). */
static struct rec_reader *parts_reader(struct pair *p, pthread_t *t, struct part_feed *f,
				       uint8_t *payload, size_t cut, long flip)
{
	for (size_t i = 0; i < PART_LEN; i++)
		payload[i] = (uint8_t)(i * 7 + i / 4096);
	f->bytes = malloc(PART_LEN + 64);
	cr_assert_not_null(f->bytes);
	size_t n = frame(f->bytes, 7, payload, PART_LEN);
	if (flip >= 0)
		f->bytes[8 + flip] ^= 1;
	n += frame(f->bytes + n, 0x10, "abc", 3);
	f->len = n - cut;
	pair_open(p);
	f->fd = p->fd[0];
	cr_assert_eq(pthread_create(t, NULL, feed, f), 0);
	struct rec_reader *r = rec_reader_new(p->ch[1], 1u << 20);
	rec_reader_set_namer(r, namer);
	return r;
}

/* parts_reader's undoing: the reader, the pair, the feeding thread. */
static void parts_done(struct rec_reader *r, struct pair *p, pthread_t t,
		       struct part_feed *f)
{
	rec_reader_free(r);
	pair_close(p);
	pthread_join(t, NULL);
	free(f->bytes);
}

Test(record, a_record_read_in_parts_then_the_next_whole)
{
	static uint8_t payload[PART_LEN], got[PART_LEN];
	struct pair p;
	pthread_t t;
	struct part_feed f;
	struct rec_reader *r = parts_reader(&p, &t, &f, payload, 0, -1);
	uint32_t type, len;
	const uint8_t *peek, *pl;
	cr_assert_eq(rec_peek(r, &type, &len), 0);
	cr_assert_eq(type, 7);
	cr_assert_eq(len, PART_LEN);
	cr_assert_eq(rec_peek_payload(r, 16, &peek), 0);
	cr_assert_eq(memcmp(peek, payload, 16), 0);
	cr_assert_eq(rec_part_begin(r), 0);
	/* in three pieces: from the buffer, across its end, from the socket */
	cr_assert_eq(rec_part_read(r, got, 10), 0);
	cr_assert_eq(rec_part_read(r, got + 10, 100000), 0);
	cr_assert_eq(rec_part_read(r, got + 100010, PART_LEN - 100010), 0);
	cr_assert_eq(rec_part_end(r), 0, "%s", rec_reader_errmsg(r));
	cr_assert_eq(memcmp(got, payload, PART_LEN), 0);
	cr_assert_eq(rec_read(r, &type, &pl, &len), 0, "%s", rec_reader_errmsg(r));
	cr_assert_eq(type, 0x10);
	cr_assert_eq(memcmp(pl, "abc", 3), 0);
	cr_assert_eq(rec_reader_records(r), 2);
	cr_assert_eq(rec_reader_bytes_in(r), f.len);
	parts_done(r, &p, t, &f);
}

Test(record, a_record_read_in_parts_is_checked_at_its_end)
{
	static uint8_t payload[PART_LEN], got[PART_LEN];
	struct pair p;
	pthread_t t;
	struct part_feed f;
	/* a byte flipped far into the payload: found only at the end */
	struct rec_reader *r = parts_reader(&p, &t, &f, payload, 0, 150000);
	cr_assert_eq(rec_part_begin(r), 0);
	cr_assert_eq(rec_part_read(r, got, PART_LEN), 0);
	cr_assert_eq(rec_part_end(r), -EPROTO);
	cr_assert(strstr(rec_reader_errmsg(r), "record 0, SEVEN (0x7, 196608 bytes): "
			 "checksum mismatch"), "%s", rec_reader_errmsg(r));
	parts_done(r, &p, t, &f);

	/* cut inside the payload: the read says so */
	r = parts_reader(&p, &t, &f, payload, 12 + 15 + 1000, -1);
	cr_assert_eq(rec_part_begin(r), 0);
	cr_assert_eq(rec_part_read(r, got, PART_LEN), -ECONNRESET);
	cr_assert(strstr(rec_reader_errmsg(r), "record 0, SEVEN (0x7, 196608 bytes), is "
			 "truncated"), "%s", rec_reader_errmsg(r));
	parts_done(r, &p, t, &f);

	/* reading past the payload, or ending early, is the caller's bug */
	r = parts_reader(&p, &t, &f, payload, 0, -1);
	cr_assert_eq(rec_part_begin(r), 0);
	cr_assert_eq(rec_part_read(r, got, 100), 0);
	cr_assert_eq(rec_part_end(r), -EINVAL);
	cr_assert(strstr(rec_reader_errmsg(r), "left unread"), "%s", rec_reader_errmsg(r));
	parts_done(r, &p, t, &f);
}

/* A header can be judged before its payload is there: peek returns type
 * and length from the header alone (the peer has sent nothing more and
 * keeps the connection open), and the record is read whole later. */
Test(record, peek_needs_only_the_header)
{
	uint8_t b[64];
	size_t n = frame(b, 7, "payload", 7);
	struct pair p;
	struct rec_reader *r = reader_of(&p, b, 8, false);
	uint32_t type = 0, len = 0;
	cr_assert_eq(rec_peek(r, &type, &len), 0, "%s", rec_reader_errmsg(r));
	cr_assert_eq(type, 7);
	cr_assert_eq(len, 7);
	write_raw(p.fd[0], b + 8, n - 8);
	const uint8_t *pl;
	cr_assert_eq(rec_read(r, &type, &pl, &len), 0, "%s", rec_reader_errmsg(r));
	cr_assert_eq(len, 7);
	cr_assert_eq(memcmp(pl, "payload", 7), 0);
	cr_assert_eq(rec_reader_records(r), 1);
	/* At the end of input, peek says so. */
	shutdown(p.fd[0], SHUT_WR);
	cr_assert_eq(rec_peek(r, &type, &len), -ECONNRESET);
	cr_assert(strstr(rec_reader_errmsg(r), "before record 1"), "%s",
		  rec_reader_errmsg(r));
	rec_reader_free(r);
	pair_close(&p);
}

Test(record, reader_error_is_sticky)
{
	uint8_t b[128];
	size_t n = frame(b, 7, "bad", 3);
	b[8] ^= 1;
	n += frame(b + n, 8, "good", 4);
	struct pair p;
	struct rec_reader *r = reader_of(&p, b, n, true);
	uint32_t type, len;
	const uint8_t *pl;
	cr_assert_eq(rec_read(r, &type, &pl, &len), -EPROTO);
	char first[256];
	snprintf(first, sizeof(first), "%s", rec_reader_errmsg(r));
	/* the good record after it is not read: the first error stays */
	cr_assert_eq(rec_read(r, &type, &pl, &len), -EPROTO);
	cr_assert_eq(rec_reader_fail(r, -EIO, "later"), -EPROTO);
	cr_assert_str_eq(rec_reader_errmsg(r), first);
	rec_reader_free(r);
	pair_close(&p);
}

Test(record, writer_and_reader_errors_are_separate)
{
	struct pair p;
	pair_open(&p);
	/* one channel, both directions: the writer fails, the reader goes on */
	struct rec_writer *w = rec_writer_new(p.ch[0], 1024);
	struct rec_reader *r = rec_reader_new(p.ch[0], 1024);
	cr_assert_eq(rec_writer_fail(w, -ETIMEDOUT, "first"), -ETIMEDOUT);
	cr_assert_eq(rec_writer_fail(w, -EIO, "second"), -ETIMEDOUT);
	cr_assert_str_eq(rec_writer_errmsg(w), "first");
	rec_put(w, 7, "x", 1); /* ignored after the error */
	cr_assert_eq(rec_writer_buffered(w), 0);
	cr_assert_eq(rec_flush(w), -ETIMEDOUT);
	uint8_t b[32];
	size_t n = frame(b, 7, "ok", 2);
	write_raw(p.fd[1], b, n);
	uint32_t type, len;
	const uint8_t *pl;
	cr_assert_eq(rec_read(r, &type, &pl, &len), 0);
	cr_assert_eq(len, 2);
	cr_assert_eq(rec_reader_error(r), 0);
	rec_writer_free(w);
	rec_reader_free(r);
	pair_close(&p);
}

Test(record, in_place_record_cannot_overrun)
{
	struct pair p;
	pair_open(&p);
	struct rec_writer *w = rec_writer_new(p.ch[0], 1024);
	cr_assert_null(rec_begin(w, 7, 2048), "larger than the maximum");
	cr_assert_eq(rec_writer_error(w), -E2BIG);
	rec_writer_free(w);

	w = rec_writer_new(p.ch[0], 1024);
	uint8_t *q = rec_begin(w, 7, 16);
	cr_assert_not_null(q);
	rec_end(w, 17);
	cr_assert_eq(rec_writer_error(w), -EOVERFLOW);
	cr_assert_eq(rec_writer_buffered(w), 0, "the broken record was dropped");
	rec_writer_free(w);

	/* a shorter payload than reserved is fine */
	w = rec_writer_new(p.ch[0], 1024);
	q = rec_begin(w, 7, 100);
	memcpy(q, "abc", 3);
	rec_end(w, 3);
	cr_assert_eq(rec_flush(w), 0);
	uint8_t got[32], want[32];
	size_t n = frame(want, 7, "abc", 3);
	cr_assert_eq(read(p.fd[1], got, sizeof(got)), (ssize_t)n);
	cr_assert_eq(memcmp(got, want, n), 0);
	rec_writer_free(w);
	pair_close(&p);
}

Test(record, optional_and_mandatory_unknown_types)
{
	uint8_t b[64];
	size_t n = frame(b, REC_OPTIONAL | 0x42, "opt", 3);
	n += frame(b + n, 0x1234, "man", 3);
	struct pair p;
	struct rec_reader *r = reader_of(&p, b, n, true);
	uint32_t type, len;
	const uint8_t *pl;
	cr_assert_eq(rec_read(r, &type, &pl, &len), 0);
	cr_assert(rec_type_optional(type));
	cr_assert_eq(rec_unknown(r, type, len), 0, "an optional type is skipped");
	cr_assert_eq(rec_reader_skipped(r), 1);
	cr_assert_eq(rec_read(r, &type, &pl, &len), 0);
	cr_assert_not(rec_type_optional(type));
	cr_assert_eq(rec_unknown(r, type, len), -EPROTO);
	cr_assert(strstr(rec_reader_errmsg(r), "unknown mandatory type 0x1234"),
		  "%s", rec_reader_errmsg(r));
	rec_reader_free(r);
	pair_close(&p);
}

Test(record, send_to_a_closed_peer_fails_with_a_message)
{
	struct pair p;
	pair_open(&p);
	struct rec_writer *w = rec_writer_new(p.ch[0], 1024);
	close(p.fd[1]);
	rec_put(w, 7, "x", 1);
	cr_assert_eq(rec_flush(w), -EPIPE);
	cr_assert(strstr(rec_writer_errmsg(w), "sending to a local socket"), "%s",
		  rec_writer_errmsg(w));
	rec_writer_free(w);
	channel_close(p.ch[0]);
	free(p.ch[1]); /* its fd is gone already */
}

Test(record, raw_bytes_and_short_raw_read)
{
	struct pair p;
	struct rec_reader *r = reader_of(&p, "FERRY", 5, true);
	char buf[8];
	cr_assert_eq(rec_read_raw(r, buf, 3), 0);
	cr_assert_eq(memcmp(buf, "FER", 3), 0);
	cr_assert_eq(rec_read_raw(r, buf, 4), -ECONNRESET);
	cr_assert(strstr(rec_reader_errmsg(r), "after 2 of 4 bytes"), "%s",
		  rec_reader_errmsg(r));
	rec_reader_free(r);
	pair_close(&p);
}

Test(record, over_a_file_channel)
{
	int fd = temp_file();
	struct channel *wc = channel_file_new(fd, false, 64, UINT64_MAX, "snap");
	struct rec_writer *w = rec_writer_new(wc, 1 << 20);
	rec_put(w, 1, "config", 6);
	rec_put(w, 4, NULL, 0);
	cr_assert_eq(rec_flush(w), 0);
	uint64_t len = rec_writer_bytes_out(w);
	cr_assert_eq(len, 12 + 6 + 12);
	rec_writer_free(w);
	channel_close(wc);

	/* read back exactly the window; then its end reads as truncation */
	struct channel *rc = channel_file_new(fd, false, 64, len, "snap");
	struct rec_reader *r = rec_reader_new(rc, 1 << 20);
	uint32_t type, l;
	const uint8_t *pl;
	cr_assert_eq(rec_read(r, &type, &pl, &l), 0);
	cr_assert_eq(type, 1);
	cr_assert_eq(memcmp(pl, "config", 6), 0);
	cr_assert_eq(rec_read(r, &type, &pl, &l), 0);
	cr_assert_eq(type, 4);
	cr_assert_neq(rec_read(r, &type, &pl, &l), 0);
	cr_assert(strstr(rec_reader_errmsg(r), "the file ends here (truncated)"), "%s",
		  rec_reader_errmsg(r));
	rec_reader_free(r);
	channel_close(rc);
	close(fd);
}

/* ---- pacing ------------------------------------------------------------ */

Test(pacing, charge_table)
{
	static const struct {
		uint64_t rate, now; size_t n; uint64_t due;
	} rows[] = {
		/* unlimited: at once */
		{ 0, 5000, 1 << 20, 5000 },
		/* 1 MB/s: the first 1000 bytes of a fresh window may go at
		 * window start + 1 ms */
		{ 1000000, 1000, 1000, 1000 + 1000000 },
		/* the same window (10 ms later), 1000 bytes more: + 2 ms */
		{ 1000000, 11000, 1000, 1000 + 2000000 },
		/* past the 100 ms window: a fresh one, no saved burst */
		{ 1000000, 1000 + PACER_WINDOW_NS + 1, 1000,
		  1000 + PACER_WINDOW_NS + 1 + 1000000 },
		/* 1 byte/s: 4096 bytes take 4096 s */
		{ 1, 10, 4096, 10 + 4096ULL * 1000000000ULL },
	};
	struct pacer p;
	uint64_t last_rate = ~0ULL;
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		if (rows[i].rate != last_rate)
			pacer_init(&p, rows[i].rate);
		last_rate = rows[i].rate;
		cr_assert_eq(pacer_charge(&p, rows[i].now, rows[i].n), rows[i].due,
			     "row %zu", i);
	}
}

Test(pacing, slices)
{
	struct pacer p;
	pacer_init(&p, 0);
	cr_assert_eq(pacer_slice(&p), SIZE_MAX);
	pacer_init(&p, 1);
	cr_assert_eq(pacer_slice(&p), PACER_MIN_SLICE);
	pacer_init(&p, 100 << 20);
	cr_assert_eq(pacer_slice(&p), (100u << 20) / 50);
}

Test(pacing, wait_returns_at_cancel_within_a_slice)
{
	bool cancel = true;
	uint64_t t0 = pacer_now_ns();
	cr_assert_eq(pacer_wait(t0 + 3600ULL * 1000000000ULL, &cancel), -ECANCELED);
	cr_assert_lt(pacer_now_ns() - t0, PACER_MAX_SLEEP_NS);
	cancel = false;
	t0 = pacer_now_ns();
	cr_assert_eq(pacer_wait(t0 + 30000000ULL, &cancel), 0);
	cr_assert_geq(pacer_now_ns() - t0, 30000000ULL);
}

struct canceller {
	bool *flag;
	unsigned delay_ms;
};

static void *cancel_later(void *arg)
{
	struct canceller *c = arg;
	usleep(c->delay_ms * 1000);
	__atomic_store_n(c->flag, true, __ATOMIC_RELAXED);
	return NULL;
}

/* max-bandwidth near zero: a flush that would take an hour ends within a
 * slice of the cancel. */
Test(pacing, cancel_ends_a_nearly_stalled_flush)
{
	struct pair p;
	pair_open(&p);
	struct rec_writer *w = rec_writer_new(p.ch[0], 1 << 20);
	static uint8_t data[64 << 10];
	bool cancel = false;
	rec_writer_set_rate(w, 1);
	rec_writer_set_cancel(w, &cancel);
	rec_put(w, 7, data, sizeof(data));
	struct canceller c = { .flag = &cancel, .delay_ms = 100 };
	pthread_t t;
	pthread_create(&t, NULL, cancel_later, &c);
	uint64_t t0 = pacer_now_ns();
	cr_assert_eq(rec_flush(w), -ECANCELED);
	uint64_t dt = pacer_now_ns() - t0;
	pthread_join(t, NULL);
	cr_assert_geq(dt, 90000000ULL, "returned before the cancel (%llu ns)",
		      (unsigned long long)dt);
	cr_assert_lt(dt, 100000000ULL + 5 * PACER_MAX_SLEEP_NS,
		     "cancel took %llu ns", (unsigned long long)dt);
	cr_assert_str_eq(rec_writer_errmsg(w), "cancelled");
	rec_writer_free(w);
	pair_close(&p);
}

/*
 * migrate-set-parameters' max-bandwidth during a migration: a flush paced
 * at 1 byte/s (an hour for what it holds) finishes soon after another
 * thread raises the rate source to unlimited.
 */
struct rate_raiser {
	uint64_t *rate;
	unsigned delay_ms;
};

static void *raise_later(void *arg)
{
	struct rate_raiser *r = arg;
	usleep(r->delay_ms * 1000);
	__atomic_store_n(r->rate, 0, __ATOMIC_RELAXED);
	return NULL;
}

Test(pacing, rate_source_applies_during_a_flush)
{
	struct pair p;
	pair_open(&p);
	int big = 4 << 20;
	setsockopt(p.fd[1], SOL_SOCKET, SO_RCVBUF, &big, sizeof(big));
	setsockopt(p.fd[0], SOL_SOCKET, SO_SNDBUF, &big, sizeof(big));
	struct rec_writer *w = rec_writer_new(p.ch[0], 1 << 20);
	static uint8_t data[64 << 10];
	uint64_t rate = 1;
	rec_writer_set_rate_source(w, &rate);
	rec_put(w, 7, data, sizeof(data));
	struct rate_raiser rr = { .rate = &rate, .delay_ms = 100 };
	pthread_t t;
	pthread_create(&t, NULL, raise_later, &rr);
	uint64_t t0 = pacer_now_ns();
	cr_assert_eq(rec_flush(w), 0, "%s", rec_writer_errmsg(w));
	uint64_t dt = pacer_now_ns() - t0;
	pthread_join(t, NULL);
	cr_assert_geq(dt, 90000000ULL, "the 1 byte/s limit was not kept before "
		      "the change (%llu ns)", (unsigned long long)dt);
	cr_assert_lt(dt, 100000000ULL + 5 * PACER_MAX_SLEEP_NS,
		     "the raised rate took %llu ns to apply", (unsigned long long)dt);
	struct rec_reader *r = rec_reader_new(p.ch[1], 1 << 20);
	uint32_t type, len;
	const uint8_t *pl;
	cr_assert_eq(rec_read(r, &type, &pl, &len), 0);
	cr_assert_eq(len, sizeof(data));
	rec_reader_free(r);
	rec_writer_free(w);
	pair_close(&p);
}

/* The other way: a source that starts unlimited and is lowered paces the
 * next flush. */
Test(pacing, rate_source_lowered_paces)
{
	struct pair p;
	pair_open(&p);
	int big = 4 << 20;
	setsockopt(p.fd[1], SOL_SOCKET, SO_RCVBUF, &big, sizeof(big));
	setsockopt(p.fd[0], SOL_SOCKET, SO_SNDBUF, &big, sizeof(big));
	struct rec_writer *w = rec_writer_new(p.ch[0], 1 << 20);
	static uint8_t data[300000];
	uint64_t rate = 0;
	rec_writer_set_rate_source(w, &rate);
	rec_put(w, 7, data, 1000);
	cr_assert_eq(rec_flush(w), 0);
	rate = 2000000;
	rec_put(w, 7, data, sizeof(data));
	uint64_t t0 = pacer_now_ns();
	cr_assert_eq(rec_flush(w), 0, "%s", rec_writer_errmsg(w));
	cr_assert_geq(pacer_now_ns() - t0, 120000000ULL, "300 KB at 2 MB/s were not paced");
	rec_writer_free(w);
	pair_close(&p);
}

static void count_progress(void *opaque, uint64_t bytes_out)
{
	uint64_t *calls = opaque;
	calls[0]++;
	calls[1] = bytes_out;
}

/* Progress moves during one long paced flush, slice by slice. */
Test(pacing, progress_hook_moves_during_a_flush)
{
	struct pair p;
	pair_open(&p);
	int big = 4 << 20;
	setsockopt(p.fd[1], SOL_SOCKET, SO_RCVBUF, &big, sizeof(big));
	setsockopt(p.fd[0], SOL_SOCKET, SO_SNDBUF, &big, sizeof(big));
	struct rec_writer *w = rec_writer_new(p.ch[0], 1 << 20);
	static uint8_t data[300000];
	uint64_t calls[2] = { 0, 0 };
	rec_writer_set_rate(w, 2000000);
	rec_writer_set_progress(w, count_progress, calls);
	rec_put(w, 7, data, sizeof(data));
	cr_assert_eq(rec_flush(w), 0);
	/* ~20 ms worth per write: 40 KB slices, so 8 writes. */
	cr_assert_geq(calls[0], 5, "%llu progress calls", (unsigned long long)calls[0]);
	cr_assert_eq(calls[1], rec_writer_bytes_out(w));
	cr_assert_eq(calls[1], sizeof(data) + REC_OVERHEAD);
	rec_writer_free(w);
	pair_close(&p);
}

/*
 * A cancelled flush keeps what it did not send: the stream can be ended
 * at a record boundary with one more record (the source's "why"), and a
 * reader sees every record whole.
 */
Test(pacing, cancelled_flush_can_be_finished_cleanly)
{
	struct pair p;
	pair_open(&p);
	int big = 4 << 20;
	setsockopt(p.fd[1], SOL_SOCKET, SO_RCVBUF, &big, sizeof(big));
	setsockopt(p.fd[0], SOL_SOCKET, SO_SNDBUF, &big, sizeof(big));
	struct rec_writer *w = rec_writer_new(p.ch[0], 1 << 20);
	static uint8_t data[200000];
	memset(data, 0x5a, sizeof(data));
	bool cancel = false;
	rec_writer_set_rate(w, 1000000);
	rec_writer_set_cancel(w, &cancel);
	rec_put(w, 7, data, sizeof(data));
	struct canceller c = { .flag = &cancel, .delay_ms = 50 };
	pthread_t t;
	pthread_create(&t, NULL, cancel_later, &c);
	cr_assert_eq(rec_flush(w), -ECANCELED);
	pthread_join(t, NULL);
	uint64_t sent = rec_writer_bytes_out(w);
	cr_assert_gt(sent, 0, "nothing went out before the cancel");
	cr_assert_lt(sent, sizeof(data), "all went out: the cancel came too late");
	cr_assert_eq(rec_writer_buffered(w), sizeof(data) + REC_OVERHEAD - sent);
	/* Other errors stay; a cancel can be resumed from. */
	cr_assert_eq(rec_writer_resume(w), 0);
	rec_writer_set_cancel(w, NULL);
	rec_writer_set_rate(w, 0);
	rec_put(w, 9, "why", 3);
	cr_assert_eq(rec_flush(w), 0, "%s", rec_writer_errmsg(w));

	struct rec_reader *r = rec_reader_new(p.ch[1], 1 << 20);
	uint32_t type, len;
	const uint8_t *pl;
	cr_assert_eq(rec_read(r, &type, &pl, &len), 0, "%s", rec_reader_errmsg(r));
	cr_assert_eq(type, 7);
	cr_assert_eq(len, sizeof(data));
	cr_assert_eq(memcmp(pl, data, len), 0);
	cr_assert_eq(rec_read(r, &type, &pl, &len), 0, "%s", rec_reader_errmsg(r));
	cr_assert_eq(type, 9);
	cr_assert_eq(len, 3);
	cr_assert_eq(memcmp(pl, "why", 3), 0);
	rec_reader_free(r);

	/* A write error is not a cancel: it stays. */
	channel_close(p.ch[1]);
	rec_put(w, 7, data, sizeof(data));
	cr_assert_lt(rec_flush(w), 0);
	cr_assert_neq(rec_writer_error(w), -ECANCELED);
	cr_assert_eq(rec_writer_resume(w), rec_writer_error(w));
	cr_assert_neq(rec_writer_error(w), 0);
	rec_writer_free(w);
	channel_close(p.ch[0]);
}

/* The limit holds: 300 KB at 2 MB/s take ~150 ms, and arrive whole. */
Test(pacing, paced_flush_keeps_the_rate)
{
	struct pair p;
	pair_open(&p);
	int big = 4 << 20;
	setsockopt(p.fd[1], SOL_SOCKET, SO_RCVBUF, &big, sizeof(big));
	setsockopt(p.fd[0], SOL_SOCKET, SO_SNDBUF, &big, sizeof(big));
	struct rec_writer *w = rec_writer_new(p.ch[0], 1 << 20);
	static uint8_t data[300000];
	rec_writer_set_rate(w, 2000000);
	rec_put(w, 7, data, sizeof(data));
	uint64_t t0 = pacer_now_ns();
	cr_assert_eq(rec_flush(w), 0, "%s", rec_writer_errmsg(w));
	uint64_t dt = pacer_now_ns() - t0;
	/* The last slice may go at once: the time is for all but it. */
	cr_assert_geq(dt, 120000000ULL, "300 KB at 2 MB/s took only %llu ns",
		      (unsigned long long)dt);
	cr_assert_lt(dt, 1000000000ULL);
	struct rec_reader *r = rec_reader_new(p.ch[1], 1 << 20);
	uint32_t type, len;
	const uint8_t *pl;
	cr_assert_eq(rec_read(r, &type, &pl, &len), 0);
	cr_assert_eq(len, sizeof(data));
	rec_reader_free(r);
	rec_writer_free(w);
	pair_close(&p);
}

/* A wrapper channel (the shape a TLS channel will have): it holds bytes
 * of its own that the fd does not show, and the framing above reads
 * through it without knowing. */
struct wrap {
	struct channel *inner;
	char held[8];
	size_t nheld;
};

static ssize_t wrap_read(struct channel *ch, void *buf, size_t len)
{
	struct wrap *w = ch->priv;
	if (w->nheld) {
		size_t n = len < w->nheld ? len : w->nheld;
		memcpy(buf, w->held, n);
		memmove(w->held, w->held + n, w->nheld - n);
		w->nheld -= n;
		return (ssize_t)n;
	}
	return channel_read(w->inner, buf, len);
}

static ssize_t wrap_writev(struct channel *ch, const struct iovec *iov, int n)
{
	struct wrap *w = ch->priv;
	return channel_writev(w->inner, iov, n);
}

static bool wrap_pending(struct channel *ch)
{
	return ((struct wrap *)ch->priv)->nheld > 0;
}

static void wrap_close(struct channel *ch)
{
	struct wrap *w = ch->priv;
	channel_close(w->inner);
	free(ch);
}

static const struct channel_ops wrap_ops = {
	.kind = "wrap", .read = wrap_read, .writev = wrap_writev,
	.close = wrap_close, .pending = wrap_pending,
};

Test(channel, a_wrapper_with_pending_input)
{
	struct pair p;
	pair_open(&p);
	struct channel *ch = calloc(1, sizeof(*ch) + sizeof(struct wrap));
	struct wrap *w = (struct wrap *)(ch + 1);
	w->inner = p.ch[1];
	ch->ops = &wrap_ops;
	ch->priv = w;
	ch->fd = p.ch[1]->fd;
	ch->eof_text = "connection closed by the peer";
	/* the first 4 bytes of a record are held by the wrapper, the rest
	 * arrive on the socket */
	uint8_t b[32];
	size_t n = frame(b, 7, "wrapped", 7);
	memcpy(w->held, b, 4);
	w->nheld = 4;
	struct rec_reader *r = rec_reader_new(ch, 1024);
	cr_assert(rec_reader_ready(r), "held input must count as readable");
	write_raw(p.fd[0], b + 4, n - 4);
	uint32_t type, len;
	const uint8_t *pl;
	cr_assert_eq(rec_read(r, &type, &pl, &len), 0, "%s", rec_reader_errmsg(r));
	cr_assert_eq(type, 7);
	cr_assert_eq(memcmp(pl, "wrapped", 7), 0);
	cr_assert_not(rec_reader_ready(r));
	rec_reader_free(r);
	channel_close(ch); /* closes the inner channel too */
	channel_close(p.ch[0]);
}
