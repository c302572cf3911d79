/*
 * Parallel page channels, the destination's side (multifd_recv.h).
 *
 * Each channel thread reads and places without any lock; it takes the
 * engine's mutex once per record to publish its counts and at each SYNC
 * to pass the barrier.
 */
#include "migration/multifd_recv.h"
#include "io/channel.h"
#include "io/record.h"
#include "migration/protocol.h"
#include "util/log.h"

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
	struct rec_reader *rd;
	struct ram_decoder dec;
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
	c->st.bytes = rec_reader_bytes_in(c->rd);
	c->st.batches++;
	pthread_mutex_unlock(&c->r->lock);
}

static void *rchan_main(void *opaque)
{
	struct mf_rchan *c = opaque;
	struct mf_recv *r = c->r;
	bool in_round = false;  /* a record of the open round has been read */

	for (;;) {
		uint32_t type, len;
		const uint8_t *p;
		int e = rec_read(c->rd, &type, &p, &len);
		if (e) {
			if (e == -ECONNRESET && !in_round) {
				/* Ended between rounds: this channel is done.  A
				 * wait for a later round of it says so. */
				pthread_mutex_lock(&r->lock);
				c->ended = true;
				pthread_cond_broadcast(&r->cond);
				pthread_mutex_unlock(&r->lock);
			} else {
				chan_fail(c, e, "page channel %u (%s): %s%s", c->idx,
					  c->ch->peer, rec_reader_errmsg(c->rd),
					  e == -ECONNRESET ? " (inside a round)" : "");
			}
			break;
		}
		in_round = true;
		if (type == MIG_REC_RAM_PAGES) {
			e = take_pages(c, p, len);
			if (!e)
				publish(c);
		} else if (type == MIG_REC_CHANNEL_SYNC) {
			e = take_sync(c, p, len);
			in_round = false;
		} else if (!mig_record_known(type)) {
			e = rec_unknown(c->rd, type, len);
			if (e)
				chan_fail(c, e, "page channel %u (%s): %s", c->idx,
					  c->ch->peer, rec_reader_errmsg(c->rd));
		} else {
			e = -EPROTO;
			chan_fail(c, e, "page channel %u (%s): unexpected %s (0x%x) on a "
				  "page channel", c->idx, c->ch->peer, mig_record_name(type),
				  type);
		}
		if (e)
			break;
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
	c->rd = rec_reader_new(ch, MIG_MAX_RECORD);
	if (!c->rd) {
		channel_close(ch);
		c->ch = NULL;
		return err_set(err, -ENOMEM, "out of memory for page channel %u", i);
	}
	rec_reader_set_namer(c->rd, mig_record_name);
	ram_decoder_init(&c->dec, r->cfg.mem, r->cfg.encodings);
	int e = pthread_create(&c->thread, NULL, rchan_main, c);
	if (e) {
		rec_reader_free(c->rd);
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

int mf_recv_wait_round(struct mf_recv *r, uint32_t round, int timeout_ms,
		       char *err)
{
	struct timespec until;
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += timeout_ms / 1000;
	until.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
	if (until.tv_nsec >= 1000000000L) {
		until.tv_sec++;
		until.tv_nsec -= 1000000000L;
	}
	int ret = 0;
	pthread_mutex_lock(&r->lock);
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
			ret = err_set(err, -ETIMEDOUT, "the page channels did not finish "
				      "round %u within %d ms (%u of %u connected)", round,
				      timeout_ms, r->added, r->cfg.n);
			break;
		}
	}
	pthread_mutex_unlock(&r->lock);
	return ret;
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
	for (unsigned i = 0; i < r->added; i++) {
		const struct ram_counts *x = &r->ch[i].counts;
		c->pages += x->pages;
		c->zero_pages += x->zero_pages;
		c->data_bytes += x->data_bytes;
		c->plain_bytes += x->plain_bytes;
		c->compressed_batches += x->compressed_batches;
		c->raw_batches += x->raw_batches;
	}
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

void mf_recv_free(struct mf_recv *r)
{
	if (!r)
		return;
	pthread_mutex_lock(&r->lock);
	r->quit = true;
	pthread_cond_broadcast(&r->cond);
	unsigned n = r->added;
	pthread_mutex_unlock(&r->lock);
	for (unsigned i = 0; i < n; i++)
		channel_shutdown(r->ch[i].ch);
	for (unsigned i = 0; i < n; i++) {
		struct mf_rchan *c = &r->ch[i];
		if (c->started)
			pthread_join(c->thread, NULL);
		rec_reader_free(c->rd);
		ram_decoder_free(&c->dec);
		channel_close(c->ch);
	}
	pthread_cond_destroy(&r->cond);
	pthread_mutex_destroy(&r->lock);
	free(r);
}
