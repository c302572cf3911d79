/*
 * Unit tests for outbuf: output that never blocks its writer.  Real pipes,
 * real sockets, a real file; the writer thread is the real one.
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
#include <time.h>
#include <unistd.h>
#include <sys/socket.h>

#include "util/log.h"
#include "util/outbuf.h"

static double now_s(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec + t.tv_nsec / 1e9;
}

static void ignore_sigpipe(void)
{
	/* As ferry does (main.c): a vanished reader shows as EPIPE. */
	signal(SIGPIPE, SIG_IGN);
}

static struct outbuf *open_q(int fd, bool own, size_t cap)
{
	struct outbuf *q = NULL;
	char err[ERR_MAX] = "";
	int r = outbuf_open(&q, fd, own, cap, "test-out", err);
	cr_assert_eq(r, 0, "outbuf_open: %s", err);
	return q;
}

/* The byte at position i of what the tests write: a sequence whose gaps
 * and repeats show. */
static uint8_t seq(uint64_t i) { return (uint8_t)(i * 7 + (i >> 8)); }

/* Write n bytes of the sequence from *pos in chunks; returns the longest
 * time one outbuf_write took. */
static double write_seq(struct outbuf *q, uint64_t *pos, uint64_t n, size_t chunk)
{
	uint8_t buf[4096];
	double worst = 0;
	while (n) {
		size_t k = n < chunk ? n : chunk;
		for (size_t i = 0; i < k; i++)
			buf[i] = seq(*pos + i);
		double t0 = now_s();
		outbuf_write(q, buf, k);
		double dt = now_s() - t0;
		if (dt > worst)
			worst = dt;
		*pos += k;
		n -= k;
	}
	return worst;
}

static uint64_t pipe_capacity(int fd)
{
	int c = fcntl(fd, F_GETPIPE_SZ);
	cr_assert_gt(c, 0);
	return (uint64_t)c;
}

/* Read everything the pipe holds now (non-blocking) and check it is the
 * sequence from *pos on. */
static uint64_t read_check(int rfd, uint64_t *pos)
{
	uint8_t buf[8192];
	uint64_t got = 0;
	int fl = fcntl(rfd, F_GETFL);
	fcntl(rfd, F_SETFL, fl | O_NONBLOCK);
	for (;;) {
		ssize_t n = read(rfd, buf, sizeof(buf));
		if (n <= 0)
			break;
		for (ssize_t i = 0; i < n; i++)
			cr_assert_eq(buf[i], seq(*pos + (uint64_t)i),
				     "byte %llu out of order",
				     (unsigned long long)(*pos + (uint64_t)i));
		*pos += (uint64_t)n;
		got += (uint64_t)n;
	}
	fcntl(rfd, F_SETFL, fl);
	return got;
}

/*
 * The reproduction of "a full console hangs the VMM": a pipe nobody reads.
 * A plain write() would block once the pipe is full; every outbuf_write
 * must return at once, and what does not fit is counted as dropped.
 */
Test(outbuf, pipe_nobody_reads_never_blocks)
{
	int p[2];
	cr_assert_eq(pipe(p), 0);
	uint64_t cap = pipe_capacity(p[1]);
	struct outbuf *q = open_q(p[1], false, 16384);

	uint64_t pos = 0, total = 4 * cap + 1000000;
	double t0 = now_s();
	double worst = write_seq(q, &pos, total, 1);   /* byte by byte, as a UART */
	double all = now_s() - t0;
	/* A blocking write would never return; 1 s leaves room for a loaded
	 * machine's scheduling. */
	cr_assert_lt(worst, 1.0, "one write took %.3f s", worst);
	cr_assert_lt(all, 10.0, "%llu one-byte writes took %.1f s",
		     (unsigned long long)total, all);

	struct outbuf_stats st;
	outbuf_get_stats(q, &st);
	cr_assert_eq(st.written + st.queued + st.dropped, total,
		     "written %llu + queued %llu + dropped %llu != %llu",
		     (unsigned long long)st.written, (unsigned long long)st.queued,
		     (unsigned long long)st.dropped, (unsigned long long)total);
	cr_assert_leq(st.written, cap, "more written than the pipe holds");
	cr_assert_eq(st.queued, 16384, "the buffer should be full");
	cr_assert_geq(st.dropped, total - cap - 16384);
	cr_assert(!st.broken);
	outbuf_close(q, 0);
	close(p[0]);
	close(p[1]);
}

/* When the reader comes back, what was queued comes out, in order, and
 * new output flows again. */
Test(outbuf, drains_in_order_when_the_reader_returns)
{
	int p[2];
	cr_assert_eq(pipe(p), 0);
	uint64_t cap = pipe_capacity(p[1]);
	struct outbuf *q = open_q(p[1], false, 8192);
	uint64_t pos = 0, rpos = 0;
	write_seq(q, &pos, cap + 8192, 512);  /* fills pipe and buffer exactly */
	struct outbuf_stats st;
	outbuf_get_stats(q, &st);
	cr_assert_eq(st.dropped, 0);
	cr_assert_eq(st.queued, 8192);

	/* The reader returns: everything arrives, nothing twice. */
	double deadline = now_s() + 5;
	while (rpos < pos && now_s() < deadline) {
		read_check(p[0], &rpos);
		usleep(1000);
	}
	cr_assert_eq(rpos, pos, "read %llu of %llu bytes",
		     (unsigned long long)rpos, (unsigned long long)pos);
	outbuf_get_stats(q, &st);
	cr_assert_eq(st.queued, 0);
	cr_assert_eq(st.written, pos);

	/* And it keeps flowing. */
	write_seq(q, &pos, 3000, 100);
	deadline = now_s() + 5;
	while (rpos < pos && now_s() < deadline) {
		read_check(p[0], &rpos);
		usleep(1000);
	}
	cr_assert_eq(rpos, pos);
	outbuf_close(q, 100);
	close(p[0]);
	close(p[1]);
}

/* Close with a full pipe and a full buffer returns in the time given. */
Test(outbuf, close_is_bounded_when_nobody_reads)
{
	int p[2];
	cr_assert_eq(pipe(p), 0);
	struct outbuf *q = open_q(p[1], true, 65536);
	uint64_t pos = 0;
	write_seq(q, &pos, pipe_capacity(p[1]) + 65536, 4096);
	double t0 = now_s();
	outbuf_close(q, 200);
	double dt = now_s() - t0;
	cr_assert_geq(dt, 0.15, "close gave up after %.3f s, before its time", dt);
	cr_assert_lt(dt, 1.0, "close took %.3f s", dt);
	/* own_fd: the write end is closed, so the reader sees EOF after the
	 * data. */
	uint64_t rpos = 0;
	read_check(p[0], &rpos);
	char c;
	cr_assert_eq(read(p[0], &c, 1), 0, "the write end is still open");
	close(p[0]);
}

/* Close with a reader present flushes everything queued. */
struct reader { int fd; uint64_t got; };

static void *slow_reader(void *arg)
{
	struct reader *r = arg;
	uint8_t buf[1024];
	ssize_t n;
	usleep(50000);
	while ((n = read(r->fd, buf, sizeof(buf))) > 0) {
		for (ssize_t i = 0; i < n; i++)
			cr_assert_eq(buf[i], seq(r->got + (uint64_t)i));
		r->got += (uint64_t)n;
		usleep(200);
	}
	return NULL;
}

Test(outbuf, close_flushes_to_a_live_reader)
{
	int p[2];
	cr_assert_eq(pipe(p), 0);
	struct outbuf *q = open_q(p[1], true, 1 << 20);
	struct reader r = { .fd = p[0] };
	pthread_t t;
	pthread_create(&t, NULL, slow_reader, &r);
	uint64_t pos = 0;
	write_seq(q, &pos, 300000, 4096);
	outbuf_close(q, 5000);
	pthread_join(t, NULL);
	cr_assert_eq(r.got, pos, "reader got %llu of %llu bytes",
		     (unsigned long long)r.got, (unsigned long long)pos);
	close(p[0]);
}

/* The reader is gone for good: no SIGPIPE death, no blocking, counted. */
Test(outbuf, vanished_reader_is_counted_as_dropped)
{
	ignore_sigpipe();
	int p[2];
	cr_assert_eq(pipe(p), 0);
	close(p[0]);
	struct outbuf *q = open_q(p[1], true, 4096);
	uint64_t pos = 0;
	write_seq(q, &pos, 10000, 100);
	struct outbuf_stats st;
	outbuf_get_stats(q, &st);
	cr_assert(st.broken);
	cr_assert_eq(st.dropped, 10000);
	cr_assert_eq(st.written, 0);
	outbuf_close(q, 100);
}

/* A stream socket (the heartbeat's unix:PATH) nobody reads. */
Test(outbuf, socket_nobody_reads_never_blocks)
{
	int sv[2];
	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	struct outbuf *q = open_q(sv[0], true, 4096);
	uint64_t pos = 0;
	double worst = write_seq(q, &pos, 4 << 20, 1024);
	/* A blocking write would never return; 1 s leaves room for a loaded
	 * machine's scheduling. */
	cr_assert_lt(worst, 1.0, "one write took %.3f s", worst);
	struct outbuf_stats st;
	outbuf_get_stats(q, &st);
	cr_assert_gt(st.dropped, 0);
	cr_assert_eq(st.written + st.queued + st.dropped, pos);
	/* Closed first (with no reader, the queue is dropped), so that
	 * nothing more is written while the peer reads. */
	outbuf_close(q, 0);
	uint64_t rpos = 0;
	read_check(sv[1], &rpos);
	cr_assert(rpos >= st.written && rpos <= st.written + st.queued,
		  "the peer got %llu bytes; written %llu, queued %llu",
		  (unsigned long long)rpos, (unsigned long long)st.written,
		  (unsigned long long)st.queued);
	close(sv[1]);
}

/* A regular file takes everything, in order. */
Test(outbuf, regular_file_gets_everything)
{
	char path[] = "/tmp/ferry-outbuf-XXXXXX";
	int fd = mkstemp(path);
	cr_assert_geq(fd, 0);
	unlink(path);
	struct outbuf *q = open_q(fd, false, 1024);
	uint64_t pos = 0;
	write_seq(q, &pos, 200000, 333);
	outbuf_close(q, 1000);
	cr_assert_eq(lseek(fd, 0, SEEK_CUR), (off_t)pos);
	lseek(fd, 0, SEEK_SET);
	uint64_t rpos = 0;
	read_check(fd, &rpos);
	cr_assert_eq(rpos, pos);
	close(fd);
}

/* Not owning the fd (stdout): its flags are not changed, it stays open. */
Test(outbuf, borrowed_fd_keeps_its_flags)
{
	int p[2];
	cr_assert_eq(pipe(p), 0);
	int before = fcntl(p[1], F_GETFL);
	cr_assert_eq(before & O_NONBLOCK, 0);
	struct outbuf *q = open_q(p[1], false, 64);
	cr_assert_eq(fcntl(p[1], F_GETFL), before, "flags changed while open");
	outbuf_write(q, "hi", 2);
	outbuf_close(q, 100);
	cr_assert_eq(fcntl(p[1], F_GETFL), before, "flags changed after close");
	cr_assert_eq(write(p[1], "x", 1), 1, "the borrowed fd was closed");
	char buf[4];
	cr_assert_eq(read(p[0], buf, 3), 3);
	cr_assert_eq(memcmp(buf, "hix", 3), 0);
	close(p[0]);
	close(p[1]);
}

/* A reader that takes what the pipe holds after a while. */
struct slow_reader {
	int fd;
	uint64_t pos;
	unsigned delay_ms;
};

static void *read_later(void *arg)
{
	struct slow_reader *r = arg;
	usleep(r->delay_ms * 1000);
	uint64_t want = r->pos;  /* caller's count of bytes written */
	r->pos = 0;
	double deadline = now_s() + 5;
	while (r->pos < want && now_s() < deadline) {
		read_check(r->fd, &r->pos);
		usleep(500);
	}
	return NULL;
}

/* The hand-over's drain: bounded when nobody reads, and once the reader
 * returns it ends as soon as the last queued byte is handed over. */
Test(outbuf, drain_waits_for_the_reader_and_is_bounded)
{
	int p[2];
	cr_assert_eq(pipe(p), 0);
	uint64_t cap = pipe_capacity(p[1]);
	struct outbuf *q = open_q(p[1], false, 8192);
	uint64_t pos = 0;
	write_seq(q, &pos, cap + 4096, 512);

	double t0 = now_s();
	cr_expect(!outbuf_drain(q, 50), "drained with nobody reading");
	double took = now_s() - t0;
	cr_expect(took >= 0.045 && took < 1.0, "a 50 ms drain took %.3f s", took);

	struct slow_reader r = { .fd = p[0], .pos = pos, .delay_ms = 30 };
	pthread_t t;
	cr_assert_eq(pthread_create(&t, NULL, read_later, &r), 0);
	t0 = now_s();
	cr_expect(outbuf_drain(q, 3000), "not drained with a reader");
	took = now_s() - t0;
	cr_expect(took < 2.0, "the drain outlasted its reader: %.3f s", took);
	struct outbuf_stats st;
	outbuf_get_stats(q, &st);
	cr_expect_eq(st.queued, 0);
	cr_expect_eq(st.written, pos);
	pthread_join(t, NULL);
	cr_expect_eq(r.pos, pos, "read %llu of %llu bytes", (unsigned long long)r.pos,
		     (unsigned long long)pos);
	outbuf_close(q, 100);
	close(p[0]);
	close(p[1]);
}
