/*
 * Parallel page channels, the destination's side (multifd_recv.h).
 *
 * Each channel thread reads and places without any lock; it takes the
 * engine's mutex once per record to publish its counts and at each SYNC
 * to pass the barrier.
 *
 * Records are read here, not through io/record.c's reader: an
 * uncompressed RAM_PAGES record's page data is read straight into the
 * guest pages its descriptors name (no copy through a buffer).  The
 * header and the descriptors are read and checked first, exactly as
 * ram_decode checks them, so a bad descriptor, a wrong length or a
 * record of the wrong round still writes nothing; the checksum covers
 * the data, so it is known only once the data is in place: a record
 * whose checksum fails fails the migration, and the VM it was written
 * into is discarded.  Every other record (SYNC, compressed pages) is
 * read whole into the thread's buffer and checked before use.
 */
#include "migration/multifd_recv.h"
#include "io/channel.h"
#include "io/record.h"
#include "util/crc32c.h"
#include "migration/protocol.h"
#include "util/log.h"
#include "util/clock.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct mf_rchan {
	struct mf_recv *r;
	unsigned idx;
	struct channel *ch;
	struct ram_decoder dec;
	uint8_t *buf;          /* a record's payload (not direct page data) */
	size_t cap;
	uint64_t bytes_in;     /* read from the connection (the thread's) */
	uint64_t records;      /* read so far (the thread's) */
	uint64_t page_records; /* of which RAM_PAGES placed (the thread's) */
	pthread_t thread;
	bool started;
	uint32_t round;        /* the open round (the thread's own) */
	uint64_t round_pages;  /* pages of it so far (the thread's own) */
	/* Under lock: rounds completed (SYNC read), and whether the
	 * connection ended cleanly after its last SYNC. */
	uint32_t synced;
	bool ended;
	struct ram_counts counts;
	struct mf_channel_stats st;
};

struct mf_recv {
	struct mf_recv_cfg cfg;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	unsigned added;
	uint64_t records;       /* read by all channels: progress (under lock) */
	bool quit;
	int error;
	char errmsg[ERR_MAX];
	struct mf_rchan ch[MF_MAX_CHANNELS];
};

/* Under lock; returns whether this was the first failure. */
static bool vfail_locked(struct mf_recv *r, int e, const char *fmt, va_list ap)
{
	bool first = !r->error;
	if (first) {
		r->error = e ? e : -EIO;
		vsnprintf(r->errmsg, sizeof(r->errmsg), fmt, ap);
	}
	pthread_cond_broadcast(&r->cond);
	return first;
}

/* A channel thread's failure: recorded, and the owner told once. */
static void chan_fail(struct mf_rchan *c, int e, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void chan_fail(struct mf_rchan *c, int e, const char *fmt, ...)
{
	struct mf_recv *r = c->r;
	va_list ap;
	va_start(ap, fmt);
	pthread_mutex_lock(&r->lock);
	/* A failure caused by our own stop is no failure. */
	bool first = !r->quit && vfail_locked(r, e, fmt, ap);
	pthread_mutex_unlock(&r->lock);
	va_end(ap);
	if (first && r->cfg.failed)
		r->cfg.failed(r->cfg.opaque);
}

static uint32_t min_synced_locked(const struct mf_recv *r)
{
	uint32_t m = UINT32_MAX;
	for (unsigned i = 0; i < r->cfg.n; i++) {
		/* A channel not connected yet has completed nothing. */
		uint32_t s = i < r->added ? r->ch[i].synced : 0;
		if (s < m)
			m = s;
	}
	return m;
}

static int take_pages(struct mf_rchan *c, const uint8_t *p, uint32_t len)
{
	char err[ERR_MAX];
	uint32_t round;

	if (ram_peek_round(p, len, &round) == 0 && round != c->round) {
		chan_fail(c, -EPROTO, "page channel %u (%s): RAM_PAGES of round %u while "
			  "round %u is open (a record out of place)", c->idx, c->ch->peer,
			  round, c->round);
		return -EPROTO;
	}
	uint64_t before = c->dec.counts.pages;
	int e = ram_decode(&c->dec, p, len, NULL, err);
	if (e) {
		chan_fail(c, e, "page channel %u (%s): %s", c->idx, c->ch->peer, err);
		return e;
	}
	c->round_pages += c->dec.counts.pages - before;
	c->page_records++;
	return 0;
}

/* SYNC: the round's end on this channel; wait for the others' (the
 * barrier), then open the next round. */
static int take_sync(struct mf_rchan *c, const uint8_t *p, uint32_t len)
{
	struct mf_recv *r = c->r;
	uint32_t round;
	uint64_t pages;

	if (len != 12) {
		chan_fail(c, -EPROTO, "page channel %u (%s): CHANNEL_SYNC of %u bytes "
			  "(12 expected)", c->idx, c->ch->peer, len);
		return -EPROTO;
	}
	memcpy(&round, p, 4);
	memcpy(&pages, p + 4, 8);
	if (round != c->round) {
		chan_fail(c, -EPROTO, "page channel %u (%s): SYNC of round %u while round "
			  "%u is open", c->idx, c->ch->peer, round, c->round);
		return -EPROTO;
	}
	if (pages != c->round_pages) {
		chan_fail(c, -EPROTO, "page channel %u (%s): SYNC of round %u says %llu "
			  "pages, %llu arrived", c->idx, c->ch->peer, round,
			  (unsigned long long)pages, (unsigned long long)c->round_pages);
		return -EPROTO;
	}
	pthread_mutex_lock(&r->lock);
	c->synced = round + 1;
	pthread_cond_broadcast(&r->cond);
	while (!r->cfg.x_no_barrier && !r->quit && !r->error &&
	       min_synced_locked(r) <= round)
		pthread_cond_wait(&r->cond, &r->lock);
	int e = r->quit ? -ECANCELED : r->error;
	pthread_mutex_unlock(&r->lock);
	c->round++;
	c->round_pages = 0;
	return e;
}

static void publish(struct mf_rchan *c)
{
	pthread_mutex_lock(&c->r->lock);
	c->counts = c->dec.counts;
	c->st.pages = c->counts.pages;
	c->st.zero_pages = c->counts.zero_pages;
	c->st.plain_bytes = c->counts.plain_bytes;
	c->st.data_bytes = c->counts.data_bytes;
	c->st.bytes = c->bytes_in;
	c->st.batches = c->page_records;
	c->r->records++;
	pthread_mutex_unlock(&c->r->lock);
}

/* Exactly len bytes.  0; 1 at the end of input before the first byte
 * (when at_start); -ECONNRESET at the end of input later; or the read's
 * error. */
static int read_exact(struct mf_rchan *c, void *p, size_t len, bool at_start)
{
	uint8_t *d = p;
	size_t got = 0;
	while (got < len) {
		ssize_t n = channel_read(c->ch, d + got, len - got);
		if (n == -EINTR)
			continue;
		if (n < 0)
			return (int)n;
		if (n == 0)
			return at_start && got == 0 ? 1 : -ECONNRESET;
		got += (size_t)n;
		c->bytes_in += (uint64_t)n;
	}
	return 0;
}

static int io_fail(struct mf_rchan *c, int e, const char *where)
{
	chan_fail(c, e, "page channel %u (%s): record %llu%s: %s", c->idx, c->ch->peer,
		  (unsigned long long)c->records, where,
		  e == -ECONNRESET ? c->ch->eof_text
		  : e == -EAGAIN ? "timed out" : strerror(-e));
	return e;
}

static int room(struct mf_rchan *c, size_t len)
{
	if (len <= c->cap)
		return 0;
	uint8_t *p = realloc(c->buf, len);
	if (!p) {
		chan_fail(c, -ENOMEM, "page channel %u: out of memory for a record", c->idx);
		return -ENOMEM;
	}
	c->buf = p;
	c->cap = len;
	return 0;
}

/* ram_direct_each_run's reader: a run of page data into guest memory. */
struct direct_read {
	struct mf_rchan *c;
	uint32_t crc;
};

static int read_run(void *opaque, uint8_t *dst, size_t len)
{
	struct direct_read *dr = opaque;
	int e = read_exact(dr->c, dst, len, false);
	if (e)
		return io_fail(dr->c, e, ", RAM_PAGES page data");
	dr->crc = crc32c(dr->crc, dst, len);
	return 0;
}

/*
 * An uncompressed RAM_PAGES whose header and descriptors (in c->buf, the
 * checksum so far in crc) passed ram_direct_check: its page data
 * straight into guest memory, then the checksum.  Runs of pages adjacent
 * in host memory are read at once.
 */
static int read_pages_direct(struct mf_rchan *c, unsigned count, uint32_t len,
			     uint32_t crc)
{
	struct direct_read dr = { .c = c, .crc = crc };
	int e = ram_direct_each_run(&c->dec, c->buf, count, read_run, &dr);
	if (e)
		return e;
	uint32_t want;
	e = read_exact(c, &want, 4, false);
	if (e)
		return io_fail(c, e, ", RAM_PAGES checksum");
	if (want != dr.crc) {
		chan_fail(c, -EPROTO, "page channel %u (%s): record %llu, RAM_PAGES (0x10, %u "
			  "bytes): checksum mismatch (its pages were already placed; the "
			  "migration fails)", c->idx, c->ch->peer,
			  (unsigned long long)c->records, len);
		return -EPROTO;
	}
	ram_direct_done(&c->dec, c->buf, count);
	c->round_pages += count;
	c->page_records++;
	return 0;
}

/* Read what is left of a record's payload into c->buf after `have`
 * bytes, and its checksum; check it. */
static int read_rest(struct mf_rchan *c, uint32_t type, uint32_t len, size_t have,
		     uint32_t crc)
{
	if (room(c, len ? len : 1))
		return -ENOMEM;
	int e = read_exact(c, c->buf + have, len - have, false);
	uint32_t want;
	if (!e)
		e = read_exact(c, &want, 4, false);
	if (e)
		return io_fail(c, e, ", inside it");
	if (want != crc32c(crc, c->buf + have, len - have)) {
		chan_fail(c, -EPROTO, "page channel %u (%s): record %llu, %s (0x%x, %u "
			  "bytes): checksum mismatch", c->idx, c->ch->peer,
			  (unsigned long long)c->records, mig_record_name(type), type, len);
		return -EPROTO;
	}
	return 0;
}

/* One record: 0, or the error (the engine already failed with it);
 * 1 at a clean end of input. */
static int take_record(struct mf_rchan *c, bool in_round)
{
	uint8_t hdr[8];
	uint32_t type, len;
	int e = read_exact(c, hdr, 8, true);
	if (e == 1) {
		if (!in_round)
			return 1;
		e = -ECONNRESET;
	}
	if (e)
		return io_fail(c, e, in_round ? " (inside a round)" : "");
	memcpy(&type, hdr, 4);
	memcpy(&len, hdr + 4, 4);
	if (len > MIG_MAX_RECORD) {
		chan_fail(c, -EPROTO, "page channel %u (%s): record %llu, %s (0x%x), claims "
			  "%u bytes, more than %u (corrupt or truncated)", c->idx,
			  c->ch->peer, (unsigned long long)c->records,
			  mig_record_name(type), type, len, MIG_MAX_RECORD);
		return -EPROTO;
	}
	uint32_t crc = crc32c(0, hdr, 8);

	if (type == MIG_REC_RAM_PAGES && len >= RAM_PAGES_HEADER) {
		if (room(c, RAM_PAGES_HEADER + MIG_PAGES_PER_RECORD * 8))
			return -ENOMEM;
		e = read_exact(c, c->buf, RAM_PAGES_HEADER, false);
		if (e)
			return io_fail(c, e, ", inside it");
		crc = crc32c(crc, c->buf, RAM_PAGES_HEADER);
		uint32_t round;
		memcpy(&round, c->buf, 4);
		/* A record of another round is refused by take_pages. */
		unsigned count = round == c->round ? ram_direct_count(c->buf, len) : 0;
		if (count) {
			size_t dl = (size_t)count * 8;
			e = read_exact(c, c->buf + RAM_PAGES_HEADER, dl, false);
			if (e)
				return io_fail(c, e, ", inside it");
			crc = crc32c(crc, c->buf + RAM_PAGES_HEADER, dl);
			if (ram_direct_check(&c->dec, c->buf, count, len)) {
				e = read_pages_direct(c, count, len, crc);
				c->records++;
				return e;
			}
			e = read_rest(c, type, len, RAM_PAGES_HEADER + dl, crc);
		} else {
			e = read_rest(c, type, len, RAM_PAGES_HEADER, crc);
		}
		c->records++;
		return e ? e : take_pages(c, c->buf, len);
	}
	e = read_rest(c, type, len, 0, crc);
	c->records++;
	if (e)
		return e;
	if (type == MIG_REC_RAM_PAGES)
		return take_pages(c, c->buf, len);
	if (type == MIG_REC_CHANNEL_SYNC)
		return take_sync(c, c->buf, len);
	if (!mig_record_known(type)) {
		if (rec_type_optional(type))
			return 0;
		chan_fail(c, -EPROTO, "page channel %u (%s): record %llu has unknown "
			  "mandatory type 0x%x (%u bytes); this ferry cannot read it",
			  c->idx, c->ch->peer, (unsigned long long)(c->records - 1), type, len);
		return -EPROTO;
	}
	chan_fail(c, -EPROTO, "page channel %u (%s): unexpected %s (0x%x) on a "
		  "page channel", c->idx, c->ch->peer, mig_record_name(type), type);
	return -EPROTO;
}

static void *rchan_main(void *opaque)
{
	struct mf_rchan *c = opaque;
	struct mf_recv *r = c->r;
	bool in_round = false;  /* a record of the open round has been read */

	for (;;) {
		uint32_t synced = c->round;
		int e = take_record(c, in_round);
		if (e == 1) {
			/* Ended between rounds: this channel is done.  A
			 * wait for a later round of it says so. */
			pthread_mutex_lock(&r->lock);
			c->ended = true;
			pthread_cond_broadcast(&r->cond);
			pthread_mutex_unlock(&r->lock);
			break;
		}
		if (e)
			break;
		/* A SYNC opened the next round. */
		in_round = c->round == synced;
		publish(c);
		if (r->cfg.x_placed)
			r->cfg.x_placed(r->cfg.opaque, c->round, c->dec.counts.pages);
	}
	return NULL;
}

struct mf_recv *mf_recv_new(const struct mf_recv_cfg *cfg, char *err)
{
	if (cfg->n < 1 || cfg->n > MF_MAX_CHANNELS) {
		err_set(err, -EINVAL, "%u page channels: 1 to %u are possible", cfg->n,
			MF_MAX_CHANNELS);
		return NULL;
	}
	struct mf_recv *r = calloc(1, sizeof(*r));
	if (!r) {
		err_set(err, -ENOMEM, "out of memory for page channels");
		return NULL;
	}
	r->cfg = *cfg;
	pthread_mutex_init(&r->lock, NULL);
	pthread_cond_init(&r->cond, NULL);
	return r;
}

int mf_recv_add(struct mf_recv *r, struct channel *ch, char *err)
{
	pthread_mutex_lock(&r->lock);
	unsigned i = r->added;
	bool full = i >= r->cfg.n;
	pthread_mutex_unlock(&r->lock);
	if (full) {
		channel_close(ch);
		return err_set(err, -EPROTO, "a page channel more than the %u agreed",
			       r->cfg.n);
	}
	struct mf_rchan *c = &r->ch[i];
	memset(c, 0, sizeof(*c));
	c->r = r;
	c->idx = i;
	c->ch = ch;
	ram_decoder_init(&c->dec, r->cfg.mem, r->cfg.encodings);
	c->dec.frontier = r->cfg.frontier;
	int e = pthread_create(&c->thread, NULL, rchan_main, c);
	if (e) {
		ram_decoder_free(&c->dec);
		channel_close(ch);
		memset(c, 0, sizeof(*c));
		return err_set(err, -e, "cannot start page channel thread %u: %s", i,
			       strerror(e));
	}
	c->started = true;
	pthread_mutex_lock(&r->lock);
	r->added = i + 1;
	/* The barrier counts this channel now. */
	pthread_cond_broadcast(&r->cond);
	pthread_mutex_unlock(&r->lock);
	return 0;
}

static int error_locked(struct mf_recv *r, char *err)
{
	if (r->error && err)
		err_set(err, r->error, "%s", r->errmsg);
	return r->error;
}

static void set_deadline(struct timespec *until, int timeout_ms)
{
	*until = clock_deadline(CLOCK_REALTIME, (uint64_t)timeout_ms * 1000000ULL);
}

int mf_recv_wait_round(struct mf_recv *r, uint32_t round, int timeout_ms,
		       char *err)
{
	struct timespec until;
	int ret = 0;
	pthread_mutex_lock(&r->lock);
	/* The limit is on silence: a channel still reading records of the
	 * round (a slow link draining what the source queued before its
	 * ROUND_END) restarts it. */
	uint64_t seen = r->records;
	set_deadline(&until, timeout_ms);
	for (;;) {
		if (r->error) {
			ret = error_locked(r, err);
			break;
		}
		if (min_synced_locked(r) > round)
			break;
		unsigned i;
		for (i = 0; i < r->added; i++)
			if (r->ch[i].ended && r->ch[i].synced <= round)
				break;
		if (i < r->added) {
			ret = err_set(err, -EPIPE, "page channel %u (%s) closed after round "
				      "%u, before round %u's end", i, r->ch[i].ch->peer,
				      r->ch[i].synced ? r->ch[i].synced - 1 : 0, round);
			break;
		}
		if (timeout_ms <= 0) {
			pthread_cond_wait(&r->cond, &r->lock);
		} else if (pthread_cond_timedwait(&r->cond, &r->lock, &until) == ETIMEDOUT) {
			if (r->records != seen) {
				seen = r->records;
				set_deadline(&until, timeout_ms);
				continue;
			}
			ret = err_set(err, -ETIMEDOUT, "the page channels did not finish "
				      "round %u: nothing arrived for %d ms (%u of %u "
				      "connected)", round, timeout_ms, r->added, r->cfg.n);
			break;
		}
	}
	pthread_mutex_unlock(&r->lock);
	return ret;
}

uint64_t mf_recv_progress(struct mf_recv *r)
{
	pthread_mutex_lock(&r->lock);
	uint64_t n = r->records;
	pthread_mutex_unlock(&r->lock);
	return n;
}

int mf_recv_error(struct mf_recv *r, char *err)
{
	pthread_mutex_lock(&r->lock);
	int e = error_locked(r, err);
	pthread_mutex_unlock(&r->lock);
	return e;
}

void mf_recv_counts(struct mf_recv *r, struct ram_counts *c)
{
	memset(c, 0, sizeof(*c));
	pthread_mutex_lock(&r->lock);
	for (unsigned i = 0; i < r->added; i++)
		ram_counts_add(c, &r->ch[i].counts);
	pthread_mutex_unlock(&r->lock);
}

unsigned mf_recv_channel_stats(struct mf_recv *r, unsigned i,
			       struct mf_channel_stats *out)
{
	pthread_mutex_lock(&r->lock);
	unsigned n = r->added;
	if (i < n)
		*out = r->ch[i].st;
	pthread_mutex_unlock(&r->lock);
	return n;
}

void mf_recv_stop(struct mf_recv *r)
{
	pthread_mutex_lock(&r->lock);
	r->quit = true;
	pthread_cond_broadcast(&r->cond);
	unsigned n = r->added;
	pthread_mutex_unlock(&r->lock);
	for (unsigned i = 0; i < n; i++) {
		struct mf_rchan *c = &r->ch[i];
		if (!c->started)
			continue;
		channel_shutdown(c->ch);
		pthread_join(c->thread, NULL);
		c->started = false;
	}
}

void mf_recv_free(struct mf_recv *r)
{
	if (!r)
		return;
	mf_recv_stop(r);
	unsigned n = r->added;
	for (unsigned i = 0; i < n; i++) {
		struct mf_rchan *c = &r->ch[i];
		free(c->buf);
		ram_decoder_free(&c->dec);
		channel_close(c->ch);
	}
	pthread_cond_destroy(&r->cond);
	pthread_mutex_destroy(&r->lock);
	free(r);
}
