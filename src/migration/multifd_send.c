/*
 * Parallel page channels, the source's side (multifd_send.h).
 *
 * One mutex guards the batch queue, the sync request and every channel's
 * figures; each channel thread holds it only to take work and to add up
 * what it did, never across guest-memory reads or socket writes.  A
 * batch is a few KiB of descriptors and stands for up to 1 MiB of page
 * data, so a lock round trip per batch costs nothing next to the copy.
 */
#include "migration/multifd_send.h"
#include "io/channel.h"
#include "io/record.h"
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

/* Batches queued ahead of the channel threads: enough that none waits
 * for the bitmap walk, few enough that a sync drains in moments. */
#define MF_QUEUE 32
#define WAIT_SLICE_MS 100  /* the migration thread checks cancel this often */

struct mf_chan {
	struct mf_send *s;
	unsigned idx;
	struct channel *ch;
	struct rec_writer *w;
	struct ram_encoder enc;
	pthread_t thread;
	bool started;
	bool in_io;             /* reading memory or writing (under lock) */
	uint32_t synced_gen;    /* last sync request done (under lock) */
	uint64_t round_pages;   /* this round's, the thread's own */
	uint64_t rate;          /* this channel's share of the cap (atomic) */
	uint64_t bytes_out;     /* atomic: moves during a long flush */
	struct mf_channel_stats st;  /* under lock */
	struct ram_counts counts;    /* under lock */
};

struct mf_send {
	struct mf_send_cfg cfg;
	unsigned n;
	pthread_mutex_t lock;
	pthread_cond_t work;    /* channel threads wait here */
	pthread_cond_t done;    /* the migration thread waits here */
	struct ram_batch q[MF_QUEUE];
	unsigned head, count;
	uint32_t sync_gen, sync_round;
	bool quit;
	int error;
	char errmsg[ERR_MAX];
	struct mf_chan ch[MF_MAX_CHANNELS];
};

/* The first failure wins; everyone waiting hears of it.  Under lock. */
static void fail_locked(struct mf_send *s, int e, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void fail_locked(struct mf_send *s, int e, const char *fmt, ...)
{
	if (!s->error) {
		va_list ap;
		s->error = e ? e : -EIO;
		va_start(ap, fmt);
		vsnprintf(s->errmsg, sizeof(s->errmsg), fmt, ap);
		va_end(ap);
	}
	pthread_cond_broadcast(&s->work);
	pthread_cond_broadcast(&s->done);
}

static void on_sent(void *opaque, uint64_t bytes_out)
{
	struct mf_chan *c = opaque;
	__atomic_store_n(&c->bytes_out, bytes_out, __ATOMIC_RELAXED);
}

/* This channel's share of the cap, read afresh before each batch: a
 * max-bandwidth changed during the migration applies from the next one. */
static void update_rate(struct mf_chan *c)
{
	const uint64_t *cap = c->s->cfg.max_bandwidth;
	uint64_t total = cap ? __atomic_load_n(cap, __ATOMIC_RELAXED) : 0;
	uint64_t share = total ? (total / c->s->n ? total / c->s->n : 1) : 0;
	__atomic_store_n(&c->rate, share, __ATOMIC_RELAXED);
}

static int write_sync(struct mf_chan *c, uint32_t round)
{
	uint8_t p[12];
	memcpy(p, &round, 4);
	memcpy(p + 4, &c->round_pages, 8);
	rec_put(c->w, MIG_REC_CHANNEL_SYNC, p, sizeof(p));
	return rec_flush(c->w);
}

static void *chan_main(void *opaque)
{
	struct mf_chan *c = opaque;
	struct mf_send *s = c->s;
	struct ram_batch b;

	pthread_mutex_lock(&s->lock);
	for (;;) {
		while (!s->quit && !s->error && !s->count && c->synced_gen == s->sync_gen)
			pthread_cond_wait(&s->work, &s->lock);
		if (s->quit || s->error)
			break;
		c->in_io = true;
		if (s->count) {
			b = s->q[s->head];
			s->head = (s->head + 1) % MF_QUEUE;
			s->count--;
			pthread_cond_broadcast(&s->done);   /* room in the queue */
			pthread_mutex_unlock(&s->lock);

			struct ram_counts d = { 0 };
			update_rate(c);
			int r = ram_encode(c->w, &c->enc, s->cfg.mem, &b, &d);
			c->round_pages += d.pages;

			pthread_mutex_lock(&s->lock);
			c->in_io = false;
			ram_counts_add(&c->counts, &d);
			c->st.pages += d.pages;
			c->st.zero_pages += d.zero_pages;
			c->st.batches++;
			c->st.plain_bytes += d.plain_bytes;
			c->st.data_bytes += d.data_bytes;
			if (r)
				fail_locked(s, r, "channel %u (%s): %s", c->idx, c->ch->peer,
					    rec_writer_errmsg(c->w));
			continue;
		}
		/* A sync was asked for and the queue is empty: every batch
		 * this thread took is written, so its SYNC comes after all of
		 * them on its connection. */
		uint32_t gen = s->sync_gen, round = s->sync_round;
		pthread_mutex_unlock(&s->lock);
		update_rate(c);
		int r = write_sync(c, round);
		c->round_pages = 0;
		pthread_mutex_lock(&s->lock);
		c->in_io = false;
		c->synced_gen = gen;
		if (r)
			fail_locked(s, r, "channel %u (%s): %s", c->idx, c->ch->peer,
				    rec_writer_errmsg(c->w));
		pthread_cond_broadcast(&s->done);
	}
	pthread_mutex_unlock(&s->lock);
	return NULL;
}

struct mf_send *mf_send_new(const struct mf_send_cfg *cfg,
			    struct channel *const *chs, unsigned n, char *err)
{
	struct mf_send *s = NULL;
	unsigned i;

	if (n < 1 || n > MF_MAX_CHANNELS) {
		err_set(err, -EINVAL, "%u page channels: 1 to %u are possible", n,
			MF_MAX_CHANNELS);
		goto close_all;
	}
	s = calloc(1, sizeof(*s));
	if (!s) {
		err_set(err, -ENOMEM, "out of memory for page channels");
		goto close_all;
	}
	s->cfg = *cfg;
	s->n = n;
	pthread_mutex_init(&s->lock, NULL);
	pthread_cond_init(&s->work, NULL);
	pthread_cond_init(&s->done, NULL);
	const struct ram_encoding *enc = cfg->enc ? cfg->enc : ram_encoding_get(RAM_ENC_RAW);
	for (i = 0; i < n; i++) {
		struct mf_chan *c = &s->ch[i];
		c->s = s;
		c->idx = i;
		c->ch = chs[i];
	}
	for (i = 0; i < n; i++) {
		struct mf_chan *c = &s->ch[i];
		if (ram_encoder_init(&c->enc, enc, cfg->zstd_level, err))
			goto fail;
		c->w = rec_writer_new(c->ch, MIG_MAX_RECORD);
		if (!c->w) {
			err_set(err, -ENOMEM, "out of memory for page channel %u", i);
			goto fail;
		}
		rec_writer_set_namer(c->w, mig_record_name);
		rec_writer_set_rate_source(c->w, &c->rate);
		rec_writer_set_cancel(c->w, cfg->cancel);
		rec_writer_set_progress(c->w, on_sent, c);
	}
	for (i = 0; i < n; i++) {
		int e = pthread_create(&s->ch[i].thread, NULL, chan_main, &s->ch[i]);
		if (e) {
			err_set(err, -e, "cannot start page channel thread %u: %s", i,
				strerror(e));
			goto fail;
		}
		s->ch[i].started = true;
	}
	return s;

fail:
	mf_send_free(s);
	return NULL;
close_all:
	for (i = 0; i < n && i < MF_MAX_CHANNELS; i++)
		channel_close(chs[i]);
	return NULL;
}

static int error_locked(struct mf_send *s, char *err)
{
	if (s->error && err)
		err_set(err, s->error, "%s", s->errmsg);
	return s->error;
}

/* Wait on done for a slice; a cancel ends the wait with an error.  Under
 * the lock, which it drops for cfg.progress after a slice with no news:
 * the callers check their condition again after it. */
static void wait_done(struct mf_send *s)
{
	struct timespec t = clock_deadline(CLOCK_REALTIME, WAIT_SLICE_MS * 1000000ULL);
	int r = pthread_cond_timedwait(&s->done, &s->lock, &t);
	if (s->cfg.cancel && __atomic_load_n(s->cfg.cancel, __ATOMIC_RELAXED)) {
		fail_locked(s, -ECANCELED, "cancelled");
	} else if (r == ETIMEDOUT && s->cfg.progress) {
		pthread_mutex_unlock(&s->lock);
		s->cfg.progress(s->cfg.opaque);
		pthread_mutex_lock(&s->lock);
	}
}

int mf_send_batch(struct mf_send *s, const struct ram_batch *b, char *err)
{
	int r;

	if (!b->n)
		return 0;
	pthread_mutex_lock(&s->lock);
	while (!s->error && s->count == MF_QUEUE)
		wait_done(s);
	if (!s->error) {
		s->q[(s->head + s->count) % MF_QUEUE] = *b;
		s->count++;
		pthread_cond_signal(&s->work);
	}
	r = error_locked(s, err);
	pthread_mutex_unlock(&s->lock);
	return r;
}

static bool all_synced(const struct mf_send *s)
{
	for (unsigned i = 0; i < s->n; i++)
		if (s->ch[i].synced_gen != s->sync_gen)
			return false;
	return true;
}

int mf_send_sync(struct mf_send *s, uint32_t round, char *err)
{
	int r;

	pthread_mutex_lock(&s->lock);
	if (!s->error) {
		s->sync_round = round;
		s->sync_gen++;
		pthread_cond_broadcast(&s->work);
		while (!s->error && !all_synced(s))
			wait_done(s);
	}
	r = error_locked(s, err);
	pthread_mutex_unlock(&s->lock);
	return r;
}

int mf_send_error(struct mf_send *s, char *err)
{
	pthread_mutex_lock(&s->lock);
	int r = error_locked(s, err);
	pthread_mutex_unlock(&s->lock);
	return r;
}

void mf_send_counts(struct mf_send *s, struct ram_counts *c)
{
	memset(c, 0, sizeof(*c));
	pthread_mutex_lock(&s->lock);
	for (unsigned i = 0; i < s->n; i++)
		ram_counts_add(c, &s->ch[i].counts);
	pthread_mutex_unlock(&s->lock);
}

uint64_t mf_send_bytes(struct mf_send *s)
{
	uint64_t b = 0;
	for (unsigned i = 0; i < s->n; i++)
		b += __atomic_load_n(&s->ch[i].bytes_out, __ATOMIC_RELAXED);
	return b;
}

unsigned mf_send_channel_stats(struct mf_send *s, unsigned i,
			       struct mf_channel_stats *out)
{
	if (i < s->n) {
		pthread_mutex_lock(&s->lock);
		*out = s->ch[i].st;
		pthread_mutex_unlock(&s->lock);
		out->bytes = __atomic_load_n(&s->ch[i].bytes_out, __ATOMIC_RELAXED);
	}
	return s->n;
}

void mf_send_free(struct mf_send *s)
{
	if (!s)
		return;
	pthread_mutex_lock(&s->lock);
	s->quit = true;
	pthread_cond_broadcast(&s->work);
	/* A thread inside a send to a stalled or failed peer returns once
	 * its connection is shut down; idle ones just see quit, and their
	 * connections close gracefully (a TLS goodbye included). */
	for (unsigned i = 0; i < s->n; i++)
		if (s->ch[i].in_io && s->ch[i].ch)
			channel_shutdown(s->ch[i].ch);
	pthread_mutex_unlock(&s->lock);
	for (unsigned i = 0; i < s->n; i++) {
		struct mf_chan *c = &s->ch[i];
		if (c->started)
			pthread_join(c->thread, NULL);
		rec_writer_free(c->w);
		ram_encoder_free(&c->enc);
		channel_close(c->ch);
	}
	pthread_cond_destroy(&s->work);
	pthread_cond_destroy(&s->done);
	pthread_mutex_destroy(&s->lock);
	free(s);
}
