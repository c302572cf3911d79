/*
 * Parallel page channels (migration/multifd_send.h, multifd_recv.h)
 * without a guest: real guest-memory mappings on both sides, real
 * connections (socketpairs and TCP loopback), the real channel threads.
 * The migration thread's part (walk the pages, hand out batches, sync
 * each round, wait for the destination's round) is played by the test.
 * Crafted channel streams (written with the real record writer and page
 * encoder) show the barrier's effect and every kind of bad input.
 */
#include <criterion/criterion.h>
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "io/channel.h"
#include "io/record.h"
#include "migration/multifd_recv.h"
#include "migration/multifd_send.h"
#include "migration/protocol.h"
#include "migration/ram_codec.h"
#include "util/log.h"
#include "vmm/memory.h"

#define PAGE GUEST_PAGE_SIZE
#define MIB (1ULL << 20)
#define WAIT_MS 10000

static void mem_new(struct guest_memory *m, uint64_t size)
{
	char err[ERR_MAX] = "";
	memory_layout(m, size);
	cr_assert_eq(memory_alloc(m, err), 0, "%s", err);
}

static uint8_t *pg(struct guest_memory *m, uint64_t index)
{
	return memory_gpa_to_hva(m, memory_page_gpa(m, index), PAGE);
}

/* Page i gets data that says its index and the round (incompressible
 * enough that RAW is chosen), except: every 7th never touched, every
 * 11th written with zeros. */
static void fill(struct guest_memory *m, uint32_t round, bool compressible)
{
	uint64_t n = memory_npages(m);
	for (uint64_t i = 0; i < n; i++) {
		if (i % 7 == 0)
			continue;
		uint8_t *p = pg(m, i);
		if (i % 11 == 0) {
			memset(p, 0, PAGE);
			continue;
		}
		uint64_t x = i * 0x9e3779b97f4a7c15ULL ^ ((uint64_t)round << 56);
		for (unsigned k = 0; k < PAGE; k += 8) {
			uint64_t v = compressible ? (i << 8 | round) : (x ^= x << 13, x ^= x >> 7,
									x ^= x << 17);
			memcpy(p + k, &v, 8);
		}
	}
}

static void assert_equal(struct guest_memory *a, struct guest_memory *b)
{
	uint64_t n = memory_npages(a);
	for (uint64_t i = 0; i < n; i++)
		if (memcmp(pg(a, i), pg(b, i), PAGE))
			cr_assert_fail("page %llu differs", (unsigned long long)i);
}

static void pairs(int (*fds)[2], unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, fds[i]), 0);
}

/* n TCP loopback connections: fds[i][0] the connecting end. */
static void tcp_pairs(int (*fds)[2], unsigned n)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	socklen_t alen = sizeof(a);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	int ls = socket(AF_INET, SOCK_STREAM, 0);
	cr_assert_geq(ls, 0);
	cr_assert_eq(bind(ls, (struct sockaddr *)&a, sizeof(a)), 0);
	cr_assert_eq(listen(ls, 16), 0);
	cr_assert_eq(getsockname(ls, (struct sockaddr *)&a, &alen), 0);
	for (unsigned i = 0; i < n; i++) {
		fds[i][0] = socket(AF_INET, SOCK_STREAM, 0);
		cr_assert_eq(connect(fds[i][0], (struct sockaddr *)&a, sizeof(a)), 0);
		fds[i][1] = accept(ls, NULL, NULL);
		cr_assert_geq(fds[i][1], 0);
	}
	close(ls);
}

struct rig {
	struct guest_memory src, dst;
	struct mf_send *tx;
	struct mf_recv *rx;
	unsigned n;
	atomic_int failed_calls;
};

static void on_failed(void *opaque)
{
	struct rig *g = opaque;
	atomic_fetch_add(&g->failed_calls, 1);
}

static void rig_start(struct rig *g, unsigned n, uint64_t size, bool tcp,
		      const char *compression)
{
	char err[ERR_MAX] = "";
	int fds[MF_MAX_CHANNELS][2];
	struct channel *chs[MF_MAX_CHANNELS];

	memset(g, 0, sizeof(*g));
	g->n = n;
	mem_new(&g->src, size);
	mem_new(&g->dst, size);
	if (tcp)
		tcp_pairs(fds, n);
	else
		pairs(fds, n);
	const struct ram_encoding *enc = ram_encoding_by_name(compression);
	cr_assert_not_null(enc);
	struct mf_recv_cfg rc = { .mem = &g->dst, .encodings = 1u << enc->id, .n = n,
				  .failed = on_failed, .opaque = g };
	g->rx = mf_recv_new(&rc, err);
	cr_assert_not_null(g->rx, "%s", err);
	for (unsigned i = 0; i < n; i++) {
		chs[i] = channel_socket_new(fds[i][0], true);
		cr_assert_eq(mf_recv_add(g->rx, channel_socket_new(fds[i][1], true), err), 0,
			     "%s", err);
	}
	struct mf_send_cfg sc = { .mem = &g->src, .enc = enc, .zstd_level = 1 };
	g->tx = mf_send_new(&sc, chs, n, err);
	cr_assert_not_null(g->tx, "%s", err);
}

static void rig_stop(struct rig *g)
{
	mf_send_free(g->tx);
	mf_recv_free(g->rx);
	memory_free(&g->src);
	memory_free(&g->dst);
}

/* One round as precopy.c does it: the pages (every one, or those with
 * i % every == phase), batches of 256, zero flag for never-touched ones
 * left to the encoder; then the sync and the destination's wait. */
static void round_send(struct rig *g, uint32_t round, unsigned every, unsigned phase)
{
	char err[ERR_MAX] = "";
	struct ram_batch b = { .round = round };
	uint64_t n = memory_npages(&g->src);
	for (uint64_t i = 0; i < n; i++) {
		if (i % every != phase)
			continue;
		b.desc[b.n++] = memory_page_gpa(&g->src, i);
		if (b.n == MIG_PAGES_PER_RECORD) {
			cr_assert_eq(mf_send_batch(g->tx, &b, err), 0, "%s", err);
			b.n = 0;
		}
	}
	cr_assert_eq(mf_send_batch(g->tx, &b, err), 0, "%s", err);
	cr_assert_eq(mf_send_sync(g->tx, round, err), 0, "%s", err);
	cr_assert_eq(mf_recv_wait_round(g->rx, round, WAIT_MS, err), 0, "%s", err);
}

static void migrate_rounds(unsigned n, bool tcp, const char *compression)
{
	struct rig g;
	rig_start(&g, n, 16 * MIB, tcp, compression);
	bool comp = strcmp(compression, "none") != 0;
	fill(&g.src, 0, comp);
	round_send(&g, 0, 1, 0);
	assert_equal(&g.src, &g.dst);
	/* Rounds that rewrite a third of the pages each (zeros where there
	 * was data, data where there were zeros): the destination must end
	 * with the newest copy of each. */
	for (uint32_t r = 1; r <= 3; r++) {
		uint64_t np = memory_npages(&g.src);
		for (uint64_t i = r % 3; i < np; i += 3) {
			uint8_t *p = pg(&g.src, i);
			if ((i + r) % 5 == 0)
				memset(p, 0, PAGE);
			else
				memset(p, (int)(r * 31 + i), PAGE / 2),
				memcpy(p + PAGE / 2, &i, sizeof(i));
		}
		round_send(&g, r, 3, r % 3);
		assert_equal(&g.src, &g.dst);
	}
	struct ram_counts tx, rx;
	mf_send_counts(g.tx, &tx);
	mf_recv_counts(g.rx, &rx);
	cr_assert_eq(tx.pages, rx.pages);
	cr_assert_eq(tx.zero_pages, rx.zero_pages);
	cr_assert_gt(tx.zero_pages, 0);
	if (comp)
		cr_assert_gt(rx.compressed_batches, 0, "nothing was compressed");
	/* The channels' shares add up to the whole.  (Which channel takes a
	 * batch is whichever is free first: on a loaded machine one may take
	 * none, so no share is asserted per channel.) */
	uint64_t pages = 0, zero = 0;
	for (unsigned i = 0; i < n; i++) {
		struct mf_channel_stats st;
		cr_assert_eq(mf_send_channel_stats(g.tx, i, &st), n);
		cr_assert(st.batches || !st.bytes, "channel %u: bytes without batches", i);
		pages += st.pages;
		zero += st.zero_pages;
	}
	cr_assert_eq(pages, tx.pages);
	cr_assert_eq(zero, tx.zero_pages);
	rig_stop(&g);
}

Test(multifd, one_channel_rounds_equal) { migrate_rounds(1, false, "none"); }
Test(multifd, four_channels_rounds_equal) { migrate_rounds(4, false, "none"); }
Test(multifd, tcp_two_channels_rounds_equal) { migrate_rounds(2, true, "none"); }
Test(multifd, lz4_on_channels) { migrate_rounds(3, false, "lz4"); }
Test(multifd, zstd_on_channels) { migrate_rounds(2, true, "zstd"); }

/*
 * Many short rounds rewriting the same 64 pages, each round's content
 * different, over 4 TCP channels: whichever channel carries a page in
 * which round, the destination ends with the last round's copy.
 */
Test(multifd, same_pages_many_rounds_newest_wins)
{
	struct rig g;
	rig_start(&g, 4, 1 * MIB, true, "none");
	char err[ERR_MAX] = "";
	for (uint32_t r = 0; r < 40; r++) {
		struct ram_batch b = { .round = r };
		for (unsigned i = 0; i < 64; i++) {
			memset(pg(&g.src, i), (int)(r + i + 1), PAGE);
			b.desc[b.n++] = memory_page_gpa(&g.src, i);
			/* small batches: the pages spread over the channels */
			if (b.n == 4) {
				cr_assert_eq(mf_send_batch(g.tx, &b, err), 0, "%s", err);
				b.n = 0;
			}
		}
		cr_assert_eq(mf_send_sync(g.tx, r, err), 0, "%s", err);
	}
	cr_assert_eq(mf_recv_wait_round(g.rx, 39, WAIT_MS, err), 0, "%s", err);
	assert_equal(&g.src, &g.dst);
	rig_stop(&g);
}

/* ---- crafted channel streams ------------------------------------------ */

struct crafted {
	struct guest_memory src, dst;
	struct mf_recv *rx;
	int fds[MF_MAX_CHANNELS][2];
	struct channel *wch[MF_MAX_CHANNELS];
	struct rec_writer *w[MF_MAX_CHANNELS];
	struct ram_encoder enc;
	unsigned n;
	atomic_int failed_calls;
};

static void crafted_failed(void *opaque)
{
	struct crafted *c = opaque;
	atomic_fetch_add(&c->failed_calls, 1);
}

static void crafted_start(struct crafted *c, unsigned n, bool no_barrier)
{
	char err[ERR_MAX] = "";
	memset(c, 0, sizeof(*c));
	c->n = n;
	signal(SIGPIPE, SIG_IGN);
	mem_new(&c->src, 1 * MIB);
	mem_new(&c->dst, 1 * MIB);
	pairs(c->fds, n);
	struct mf_recv_cfg rc = { .mem = &c->dst, .encodings = 1u << RAM_ENC_LZ4, .n = n,
				  .failed = crafted_failed, .opaque = c,
				  .x_no_barrier = no_barrier };
	c->rx = mf_recv_new(&rc, err);
	cr_assert_not_null(c->rx, "%s", err);
	for (unsigned i = 0; i < n; i++) {
		c->wch[i] = channel_socket_new(c->fds[i][0], true);
		c->w[i] = rec_writer_new(c->wch[i], MIG_MAX_RECORD);
		cr_assert_eq(mf_recv_add(c->rx, channel_socket_new(c->fds[i][1], true), err),
			     0, "%s", err);
	}
	cr_assert_eq(ram_encoder_init(&c->enc, ram_encoding_get(RAM_ENC_RAW), 0, err), 0);
}

static void crafted_stop(struct crafted *c)
{
	mf_recv_free(c->rx);
	for (unsigned i = 0; i < c->n; i++) {
		rec_writer_free(c->w[i]);
		channel_close(c->wch[i]);
	}
	ram_encoder_free(&c->enc);
	memory_free(&c->src);
	memory_free(&c->dst);
}

/* RAM_PAGES of round r with the source's current copy of page idx. */
static void put_page(struct crafted *c, unsigned ch, uint32_t r, uint64_t idx)
{
	struct ram_batch b = { .round = r, .n = 1 };
	struct ram_counts cnt = { 0 };
	b.desc[0] = memory_page_gpa(&c->src, idx);
	cr_assert_eq(ram_encode(c->w[ch], &c->enc, &c->src, &b, &cnt), 0);
}

static void put_sync(struct crafted *c, unsigned ch, uint32_t r, uint64_t pages)
{
	uint8_t p[12];
	memcpy(p, &r, 4);
	memcpy(p + 4, &pages, 8);
	rec_put(c->w[ch], MIG_REC_CHANNEL_SYNC, p, sizeof(p));
}

static void flush(struct crafted *c, unsigned ch)
{
	cr_assert_eq(rec_flush(c->w[ch]), 0, "%s", rec_writer_errmsg(c->w[ch]));
}

static bool page_is(struct guest_memory *m, uint64_t idx, uint8_t v, int wait_ms)
{
	for (int t = 0;; t += 5) {
		if (pg(m, idx)[0] == v && pg(m, idx)[PAGE - 1] == v)
			return true;
		if (t >= wait_ms)
			return false;
		usleep(5000);
	}
}

/*
 * Page 5 travels twice: its round-0 copy (0xaa) on channel 0, which is
 * late, and its round-1 copy (0xbb) on channel 1, which is early.  The
 * destination must end with 0xbb.  Returns what page 5 holds at the end.
 */
static uint8_t late_old_copy(bool no_barrier)
{
	struct crafted c;
	char err[ERR_MAX] = "";
	crafted_start(&c, 2, no_barrier);

	memset(pg(&c.src, 5), 0xaa, PAGE);
	put_page(&c, 0, 0, 5);             /* written now, sent later */
	memset(pg(&c.src, 5), 0xbb, PAGE);
	/* Channel 1: round 0 empty, round 1 has the new copy. */
	put_sync(&c, 1, 0, 0);
	put_page(&c, 1, 1, 5);
	put_sync(&c, 1, 1, 1);
	flush(&c, 1);
	if (no_barrier) {
		/* Nothing holds channel 1 back: its copy lands first. */
		cr_assert(page_is(&c.dst, 5, 0xbb, WAIT_MS));
	} else {
		/* Held at its round-0 SYNC until channel 0 gets there. */
		usleep(100000);
		cr_assert(page_is(&c.dst, 5, 0, 0), "round 1 placed before round 0 ended");
	}
	put_sync(&c, 0, 0, 1);
	put_sync(&c, 0, 1, 0);
	flush(&c, 0);
	cr_assert_eq(mf_recv_wait_round(c.rx, 1, WAIT_MS, err), 0, "%s", err);
	uint8_t v = pg(&c.dst, 5)[0];
	crafted_stop(&c);
	return v;
}

Test(multifd, barrier_keeps_newer_copy)
{
	cr_assert_eq(late_old_copy(false), 0xbb,
		     "the older copy of a page overwrote the newer one");
}

/* The same streams without the barrier end wrong: the test above can
 * fail, and fails for the reason it names. */
Test(multifd, without_barrier_older_copy_wins)
{
	cr_assert_eq(late_old_copy(true), 0xaa);
}

/* The owner is told (cfg->failed) on the failing channel's thread,
 * just after the error is recorded: wait for it briefly. */
static int failed_calls(struct crafted *c)
{
	for (int t = 0; t < 2000 && !atomic_load(&c->failed_calls); t += 5)
		usleep(5000);
	usleep(20000);  /* and no second call */
	return atomic_load(&c->failed_calls);
}

static void expect_failure(struct crafted *c, uint32_t round, const char *what)
{
	char err[ERR_MAX] = "";
	int r = mf_recv_wait_round(c->rx, round, WAIT_MS, err);
	cr_assert_neq(r, 0);
	cr_assert_neq(r, -ETIMEDOUT, "timed out instead of failing: %s", err);
	cr_assert(strstr(err, what), "error '%s' does not say '%s'", err, what);
	cr_assert(strstr(err, "page channel"), "error '%s' names no channel", err);
}

Test(multifd, page_outside_memory_rejected)
{
	struct crafted c;
	crafted_start(&c, 2, false);
	/* A descriptor beyond the destination's memory: a raw record. */
	uint8_t rec[8 + 8 + PAGE] = { 0 };
	uint16_t count = 1;
	uint64_t gpa = 64 * MIB;
	memcpy(rec + 4, &count, 2);
	memcpy(rec + 8, &gpa, 8);
	rec_put(c.w[1], MIG_REC_RAM_PAGES, rec, sizeof(rec));
	flush(&c, 1);
	expect_failure(&c, 0, "outside guest memory");
	cr_assert_eq(failed_calls(&c), 1);
	crafted_stop(&c);
}

Test(multifd, corrupt_lz4_batch_rejected)
{
	struct crafted c;
	crafted_start(&c, 2, false);
	uint8_t rec[8 + 8 + 64];
	uint16_t count = 1, enc = RAM_ENC_LZ4;
	uint64_t gpa = 3 * PAGE;
	memset(rec, 0xf7, sizeof(rec));
	memset(rec, 0, 4);
	memcpy(rec + 4, &count, 2);
	memcpy(rec + 6, &enc, 2);
	memcpy(rec + 8, &gpa, 8);
	rec_put(c.w[0], MIG_REC_RAM_PAGES, rec, sizeof(rec));
	flush(&c, 0);
	expect_failure(&c, 0, "lz4");
	cr_assert(page_is(&c.dst, 3, 0, 0), "a refused batch wrote memory");
	crafted_stop(&c);
}

Test(multifd, checksum_mismatch_rejected)
{
	struct crafted c;
	crafted_start(&c, 1, false);
	memset(pg(&c.src, 2), 0x11, PAGE);
	/* The record made by the real writer on a connection of its own,
	 * then sent with one bit of its page data flipped. */
	int sp[2];
	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sp), 0);
	struct channel *tmp = channel_socket_new(sp[0], true);
	struct rec_writer *w = rec_writer_new(tmp, MIG_MAX_RECORD);
	struct ram_batch b = { .round = 0, .n = 1, .desc = { 2 * PAGE } };
	struct ram_counts cnt = { 0 };
	cr_assert_eq(ram_encode(w, &c.enc, &c.src, &b, &cnt), 0);
	cr_assert_eq(rec_flush(w), 0);
	uint8_t buf[PAGE + 64];
	ssize_t got = read(sp[1], buf, sizeof(buf));
	cr_assert_eq(got, 12 + 8 + 8 + PAGE);
	buf[40] ^= 0x01;
	cr_assert_eq(write(c.fds[0][0], buf, (size_t)got), got);
	rec_writer_free(w);
	channel_close(tmp);
	close(sp[1]);
	/* Page data goes straight into guest memory and the checksum covers
	 * it, so this record's page may be in place already: what matters
	 * is that the migration fails (and its VM is discarded). */
	expect_failure(&c, 0, "checksum mismatch");
	crafted_stop(&c);
}

Test(multifd, sync_page_count_mismatch_rejected)
{
	struct crafted c;
	crafted_start(&c, 1, false);
	put_page(&c, 0, 0, 1);
	put_sync(&c, 0, 0, 2);
	flush(&c, 0);
	expect_failure(&c, 0, "says 2 pages, 1 arrived");
	crafted_stop(&c);
}

Test(multifd, page_of_wrong_round_rejected)
{
	struct crafted c;
	crafted_start(&c, 1, false);
	put_page(&c, 0, 3, 1);
	flush(&c, 0);
	expect_failure(&c, 0, "RAM_PAGES of round 3 while round 0 is open");
	crafted_stop(&c);
}

Test(multifd, main_stream_record_on_channel_rejected)
{
	struct crafted c;
	crafted_start(&c, 1, false);
	rec_put(c.w[0], MIG_REC_STATE_END, NULL, 0);
	flush(&c, 0);
	expect_failure(&c, 0, "unexpected STATE_END");
	crafted_stop(&c);
}

/* A connection that ends inside a round: the migration fails at once,
 * and a waiter for that round hears why (no hang). */
Test(multifd, channel_closing_mid_round_fails)
{
	struct crafted c;
	crafted_start(&c, 2, false);
	put_sync(&c, 0, 0, 0);
	flush(&c, 0);
	put_page(&c, 1, 0, 4);
	flush(&c, 1);
	shutdown(c.fds[1][0], SHUT_WR);
	expect_failure(&c, 0, "inside a round");
	cr_assert_eq(failed_calls(&c), 1);
	crafted_stop(&c);
}

/* Ending cleanly after a SYNC is a channel's normal end; waiting for a
 * round it never reached is an error, not a hang. */
Test(multifd, channel_ended_before_round_is_an_error)
{
	struct crafted c;
	char err[ERR_MAX] = "";
	crafted_start(&c, 1, false);
	put_page(&c, 0, 0, 4);
	put_sync(&c, 0, 0, 1);
	flush(&c, 0);
	shutdown(c.fds[0][0], SHUT_WR);
	cr_assert_eq(mf_recv_wait_round(c.rx, 0, WAIT_MS, err), 0, "%s", err);
	cr_assert_eq(mf_recv_wait_round(c.rx, 1, WAIT_MS, err), -EPIPE);
	cr_assert(strstr(err, "closed after round 0"), "%s", err);
	cr_assert_eq(atomic_load(&c.failed_calls), 0);
	crafted_stop(&c);
}

Test(multifd, missing_channel_times_out)
{
	char err[ERR_MAX] = "";
	struct guest_memory m;
	mem_new(&m, 1 * MIB);
	struct mf_recv_cfg rc = { .mem = &m, .n = 2 };
	struct mf_recv *rx = mf_recv_new(&rc, err);
	cr_assert_not_null(rx);
	cr_assert_eq(mf_recv_wait_round(rx, 0, 100, err), -ETIMEDOUT);
	cr_assert(strstr(err, "0 of 2 connected"), "%s", err);
	mf_recv_free(rx);
	memory_free(&m);
}

/* A round still arriving, a record at a time, outlasts the wait's limit
 * without failing: the limit is on silence (as every connection's idle
 * timeout), not on the whole rest of the round. */
struct trickle { struct crafted *c; unsigned pages; int gap_ms; };

static void *trickle_main(void *opaque)
{
	struct trickle *t = opaque;
	for (unsigned i = 0; i < t->pages; i++) {
		usleep((useconds_t)t->gap_ms * 1000);
		put_page(t->c, 0, 0, i);
		flush(t->c, 0);
	}
	put_sync(t->c, 0, 0, t->pages);
	flush(t->c, 0);
	return NULL;
}

Test(multifd, slow_round_in_progress_does_not_time_out)
{
	struct crafted c;
	char err[ERR_MAX] = "";
	crafted_start(&c, 2, false);
	put_sync(&c, 1, 0, 0);
	flush(&c, 1);
	struct trickle t = { .c = &c, .pages = 10, .gap_ms = 60 };
	pthread_t th;
	cr_assert_eq(pthread_create(&th, NULL, trickle_main, &t), 0);
	/* 600 ms of pages against a 200 ms limit */
	int r = mf_recv_wait_round(c.rx, 0, 200, err);
	pthread_join(th, NULL);
	cr_assert_eq(r, 0, "%s", err);
	crafted_stop(&c);
}

/* Progress counts the records read on every channel (the destination's
 * main connection may be quiet while it moves). */
Test(multifd, progress_counts_records)
{
	struct crafted c;
	char err[ERR_MAX] = "";
	crafted_start(&c, 2, false);
	cr_assert_eq(mf_recv_progress(c.rx), 0);
	put_page(&c, 0, 0, 1);
	put_page(&c, 0, 0, 2);
	put_sync(&c, 0, 0, 2);
	put_sync(&c, 1, 0, 0);
	flush(&c, 0);
	flush(&c, 1);
	cr_assert_eq(mf_recv_wait_round(c.rx, 0, WAIT_MS, err), 0, "%s", err);
	for (int t = 0; t < 2000 && mf_recv_progress(c.rx) < 4; t += 5)
		usleep(5000);
	cr_assert_eq(mf_recv_progress(c.rx), 4);
	crafted_stop(&c);
}

Test(multifd, extra_channel_refused)
{
	char err[ERR_MAX] = "";
	struct guest_memory m;
	int sp[2][2];
	mem_new(&m, 1 * MIB);
	pairs(sp, 2);
	struct mf_recv_cfg rc = { .mem = &m, .n = 1 };
	struct mf_recv *rx = mf_recv_new(&rc, err);
	cr_assert_eq(mf_recv_add(rx, channel_socket_new(sp[0][1], true), err), 0);
	cr_assert_eq(mf_recv_add(rx, channel_socket_new(sp[1][1], true), err), -EPROTO);
	cr_assert(strstr(err, "more than the 1 agreed"), "%s", err);
	mf_recv_free(rx);
	close(sp[0][0]);
	close(sp[1][0]);
	memory_free(&m);
}

/* The source's side when the destination goes away mid-round: the
 * engine fails with the channel named, and freeing it does not hang. */
Test(multifd, source_fails_when_destination_closes)
{
	char err[ERR_MAX] = "";
	struct guest_memory m;
	int sp[2][2];
	signal(SIGPIPE, SIG_IGN);
	mem_new(&m, 16 * MIB);
	fill(&m, 0, false);
	pairs(sp, 2);
	struct channel *chs[2] = { channel_socket_new(sp[0][0], true),
				   channel_socket_new(sp[1][0], true) };
	struct mf_send_cfg sc = { .mem = &m };
	struct mf_send *tx = mf_send_new(&sc, chs, 2, err);
	cr_assert_not_null(tx, "%s", err);
	close(sp[1][1]);  /* channel 1's destination is gone */
	int r = 0;
	struct ram_batch b = { .round = 0 };
	for (uint64_t i = 0; i < memory_npages(&m) && !r; i++) {
		b.desc[b.n++] = memory_page_gpa(&m, i);
		if (b.n == MIG_PAGES_PER_RECORD) {
			r = mf_send_batch(tx, &b, err);
			b.n = 0;
		}
	}
	if (!r)
		r = mf_send_sync(tx, 0, err);
	cr_assert_neq(r, 0, "the send went through to a closed peer");
	cr_assert(strstr(err, "channel 1"), "%s", err);
	mf_send_free(tx);   /* channel 0's peer never read: must not hang */
	close(sp[0][1]);
	memory_free(&m);
}

/* A cancel while a channel is blocked on a peer that does not read. */
Test(multifd, source_cancel_unblocks)
{
	char err[ERR_MAX] = "";
	struct guest_memory m;
	int sp[1][2];
	bool cancel = false;
	mem_new(&m, 16 * MIB);
	fill(&m, 0, false);
	pairs(sp, 1);
	struct channel *chs[1] = { channel_socket_new(sp[0][0], true) };
	struct mf_send_cfg sc = { .mem = &m, .cancel = &cancel };
	struct mf_send *tx = mf_send_new(&sc, chs, 1, err);
	struct ram_batch b = { .round = 0 };
	int r = 0;
	for (uint64_t i = 0; i < memory_npages(&m) && !r; i++) {
		b.desc[b.n++] = memory_page_gpa(&m, i);
		if (b.n == MIG_PAGES_PER_RECORD) {
			if (i > 2048)
				__atomic_store_n(&cancel, true, __ATOMIC_RELAXED);
			r = mf_send_batch(tx, &b, err);
			b.n = 0;
		}
	}
	if (!r)
		r = mf_send_sync(tx, 0, err);
	cr_assert_eq(r, -ECANCELED, "%d %s", r, err);
	mf_send_free(tx);
	close(sp[0][1]);
	memory_free(&m);
}

/* Once stopped (the destination's STATE_END), nothing a source sends on
 * a page channel lands, and the figures stay readable. */
Test(multifd, stopped_channels_place_nothing)
{
	struct crafted c;
	char err[ERR_MAX] = "";
	crafted_start(&c, 1, false);
	memset(pg(&c.src, 6), 0x33, PAGE);
	put_page(&c, 0, 0, 6);
	put_sync(&c, 0, 0, 1);
	flush(&c, 0);
	cr_assert_eq(mf_recv_wait_round(c.rx, 0, WAIT_MS, err), 0, "%s", err);
	mf_recv_stop(c.rx);
	mf_recv_stop(c.rx);
	memset(pg(&c.src, 6), 0x44, PAGE);
	put_page(&c, 0, 1, 6);
	put_sync(&c, 0, 1, 1);
	rec_flush(c.w[0]);  /* may fail: the other side is shut */
	usleep(50000);
	cr_assert(page_is(&c.dst, 6, 0x33, 0), "a page landed after the stop");
	struct ram_counts k;
	mf_recv_counts(c.rx, &k);
	cr_assert_eq(k.pages, 1);
	cr_assert_eq(failed_calls(&c), 0);
	crafted_stop(&c);
}
