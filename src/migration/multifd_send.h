/*
 * multifd_send.h - parallel page channels, the source's side
 * (`multifd-channels`, docs/multifd.md).
 *
 * N channel threads, each owning one connection (a plain or TLS channel,
 * preamble already sent by whoever opened it).  The migration thread
 * walks the dirty bitmap and hands out batches of page descriptors
 * (mf_send_batch); whichever channel thread is free takes the next batch,
 * reads the pages from guest memory, detects zero pages, encodes (the
 * negotiated compression, ram_codec.h) and writes one RAM_PAGES record on
 * its own connection.  Nothing else travels there.
 *
 * Rounds are fenced (QEMU's multifd "sync"): at the end of every round
 * the migration thread calls mf_send_sync(), which waits until every
 * channel has written all the batches it took and then a CHANNEL_SYNC
 * record (u32 round, u64 pages the channel carried in the round), and
 * has flushed it to its connection.  The destination (multifd_recv.h)
 * lets no channel place a page of round R+1 before every channel has
 * reached its SYNC of round R, so an older copy of a page on one
 * channel can never land after a newer copy on another.
 *
 * A failed channel (a write error, the peer gone, a cancel) fails the
 * whole engine: the next mf_send_batch()/mf_send_sync() returns the
 * error with a message naming the channel, and mf_send_free() shuts every
 * connection down so that no thread stays blocked in a send.
 */
#ifndef FERRY_MIG_MULTIFD_SEND_H
#define FERRY_MIG_MULTIFD_SEND_H

#include <stdbool.h>
#include <stdint.h>

#include "migration/ram_codec.h"

#define MF_MAX_CHANNELS 16
/* multifd-channels when not set (migration/params.c says why 2) */
#define MIG_CHANNELS_DEFAULT 2

struct channel;
struct mf_send;

struct mf_send_cfg {
	const struct guest_memory *mem;
	const struct ram_encoding *enc;   /* NULL: RAW */
	unsigned zstd_level;
	/* The whole migration's cap in bytes/s (0 = none), read before
	 * every slice each channel sends and split evenly among them;
	 * NULL: no cap. */
	const uint64_t *max_bandwidth;
	/* Set by another thread: stop sending (a paced or blocked write
	 * ends with -ECANCELED).  May be NULL. */
	const bool *cancel;
	/* Called on the caller's thread, without the engine's lock, every
	 * wait slice that mf_send_batch or mf_send_sync spends waiting: a
	 * paced round whose batches all fit the queue waits there for its
	 * whole length, and its figures must move meanwhile.  May be NULL. */
	void (*progress)(void *opaque);
	void *opaque;
};

/* One channel's figures (query-migrate's ferry.channels). */
struct mf_channel_stats {
	uint64_t pages, zero_pages, batches;
	uint64_t bytes;          /* written to its connection */
	uint64_t plain_bytes, data_bytes; /* page data before/after encoding */
};

/**
 * mf_send_new() - start n (1..MF_MAX_CHANNELS) channel threads, one per
 * connection in chs[]; the engine owns the channels from here on (also
 * on failure) and closes them in mf_send_free().  Returns the engine, or
 * NULL with a message in err.
 */
struct mf_send *mf_send_new(const struct mf_send_cfg *cfg,
			    struct channel *const *chs, unsigned n, char *err);

/**
 * mf_send_batch() - queue a copy of b for the next free channel; waits
 * while the queue is full.  b->round is the round it belongs to.
 * Returns 0, or the engine's first error (err says which channel and
 * why; NULL allowed).
 */
int mf_send_batch(struct mf_send *s, const struct ram_batch *b, char *err);

/**
 * mf_send_sync() - end round @round on every channel: waits until each
 * has written every batch it was given and its CHANNEL_SYNC, all flushed
 * to the connection.  Returns 0 or the engine's first error.
 */
int mf_send_sync(struct mf_send *s, uint32_t round, char *err);

/* The engine's first error (0 if none), its message copied to err. */
int mf_send_error(struct mf_send *s, char *err);

/* Counts over all channels so far (batches written, not merely queued). */
void mf_send_counts(struct mf_send *s, struct ram_counts *c);
/* Bytes written to all connections so far. */
uint64_t mf_send_bytes(struct mf_send *s);
/* Channel i's figures; returns the number of channels. */
unsigned mf_send_channel_stats(struct mf_send *s, unsigned i,
			       struct mf_channel_stats *out);

/**
 * mf_send_free() - stop: shut every connection down (a thread blocked in
 * a send returns), join the threads, close the channels.  Call it after
 * the destination confirmed it has the pages (READY), or to abandon a
 * migration.  NULL is fine.
 */
void mf_send_free(struct mf_send *s);

#endif
