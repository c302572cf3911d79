/*
 * multifd_recv.h - parallel page channels, the destination's side
 * (docs/multifd.md; the source's is multifd_send.h).
 *
 * One thread per bulk-pages connection reads RAM_PAGES records, checks
 * each whole and places its pages in guest memory (ram_codec.h: a
 * decoder per thread), in parallel with the others and with the main
 * connection's thread.  Each connection is a sequence of rounds, each
 * ended by CHANNEL_SYNC {round, pages}; a record of another round than
 * the open one, or a SYNC whose page count differs from what arrived,
 * fails the migration.
 *
 * The barrier: a channel that has read its SYNC of round R places
 * nothing more until every channel has read its SYNC of round R.  So
 * every page of round R is in memory before any page of round R+1 is
 * placed, whichever connection carried it: a page resent in round R+1
 * is never overwritten by its older copy of round R that travelled on
 * a slower connection.  The main connection's ROUND_END R is processed
 * only after mf_recv_wait_round(R), so READY (after the last round)
 * means every page is here.
 *
 * A channel that fails (a corrupt or misplaced record, an I/O error, an
 * end of input inside a round) fails the engine at once: cfg->failed is
 * called (from that channel's thread) so the owner can stop waiting on
 * the main connection, and every later call returns the error with a
 * message naming the channel.  A channel that ends cleanly right after
 * a SYNC has simply finished; waiting for a later round of it is an
 * error.
 */
#ifndef FERRY_MIG_MULTIFD_RECV_H
#define FERRY_MIG_MULTIFD_RECV_H

#include <stdbool.h>
#include <stdint.h>

#include "migration/multifd_send.h"  /* MF_MAX_CHANNELS, mf_channel_stats */
#include "migration/ram_codec.h"

struct channel;
struct mf_recv;

struct mf_recv_cfg {
	struct guest_memory *mem;
	uint32_t encodings;     /* bit per agreed encoding (RAW is added) */
	unsigned n;             /* connections the source will open */
	/* Called once, on the failing channel's thread, when the engine
	 * fails (may be NULL). */
	void (*failed)(void *opaque);
	void *opaque;
	/* Each channel's decoder raises it (struct ram_decoder; may be
	 * NULL). */
	uint64_t *frontier;
	/* Tests only: let channels run past their SYNC without waiting
	 * for the others (shows what the barrier prevents). */
	bool x_no_barrier;
	/* Tests only (the destination's --x-fault in a round): after each
	 * record, on its channel's thread, with the round open there and
	 * the pages the channel placed so far (may be NULL). */
	void (*x_placed)(void *opaque, uint32_t round, uint64_t pages);
};

/* Returns the engine (no channel yet), or NULL with a message. */
struct mf_recv *mf_recv_new(const struct mf_recv_cfg *cfg, char *err);

/**
 * mf_recv_add() - take one bulk-pages connection (its preamble already
 * read) and start its thread.  The engine owns ch from here on, also on
 * failure.  More than cfg->n connections is an error.
 */
int mf_recv_add(struct mf_recv *r, struct channel *ch, char *err);

/**
 * mf_recv_wait_round() - wait until every channel has placed all its
 * pages of @round and read its SYNC (the channels not yet connected
 * included), giving up once no channel has read a record for
 * timeout_ms (0: no limit).  Returns 0, the engine's
 * error, -ETIMEDOUT, or -EPIPE when a channel ended before that round;
 * err says which channel and why.
 */
int mf_recv_wait_round(struct mf_recv *r, uint32_t round, int timeout_ms,
		       char *err);

/* Records read so far by all channels together: their progress. */
uint64_t mf_recv_progress(struct mf_recv *r);

/* The engine's first error (0 if none), its message copied to err. */
int mf_recv_error(struct mf_recv *r, char *err);

/* Counts over all channels (ram_decoder's), and channel i's figures
 * (returns the number of channels connected so far). */
void mf_recv_counts(struct mf_recv *r, struct ram_counts *c);
unsigned mf_recv_channel_stats(struct mf_recv *r, unsigned i,
			       struct mf_channel_stats *out);

/**
 * mf_recv_stop() - no page lands any more: shut every connection down and
 * join the threads (the figures stay readable).  The destination calls it
 * once the last round has ended (STATE_END), so that nothing a source
 * sends later on a page channel can reach the memory of a VM about to
 * run.  Idempotent.
 */
void mf_recv_stop(struct mf_recv *r);

/* mf_recv_stop, close the channels, free.  NULL is fine. */
void mf_recv_free(struct mf_recv *r);

#endif
