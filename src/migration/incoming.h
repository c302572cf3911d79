/* incoming.h - the destination's entry points beyond migration.h. */
#ifndef FERRY_MIG_INCOMING_H
#define FERRY_MIG_INCOMING_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "migration/multifd_send.h"  /* mf_channel_stats */

struct channel;
struct inconns;
struct pci;
struct vm;
struct vm_config;

/* How far an incoming stream has got; written by the session's thread
 * under *lock (the owner's), read by query-migrate. */
struct incoming_progress {
	pthread_mutex_t *lock;
	uint64_t bytes, pages, zero_pages, rounds;
	uint64_t memory;        /* the VM being received (0 until accepted) */
	unsigned vcpus;
	/* the agreed page compression ("none" until accepted) and what it
	 * carried: page data before/after, records compressed / sent raw */
	char compression[32];  /* as caps.h holds it */
	uint64_t plain_bytes, data_bytes, compressed_batches, raw_batches;
	/* connections carrying pages (1: the main one) and, with more, each
	 * page channel's figures */
	unsigned channels;
	struct mf_channel_stats chan[MF_MAX_CHANNELS];
	/* deltas ("xbzrle"): agreed, pages that came as deltas, their bytes */
	bool xbzrle;
	uint64_t delta_pages, delta_bytes;
};

/* What one session needs from its owner (destination.c). */
struct incoming_session {
	const struct vm_config *host_cfg; /* serial, heartbeat for the VM */
	uint64_t max_memory;    /* most guest RAM agreed to, 0 = no limit */
	int idle_timeout_ms;    /* longest silence once accepted */
	struct incoming_progress *progress; /* may be NULL */
	/* Where further connections of the accepted migration come from
	 * (incoming_conns.h; opened once ACCEPT is out); NULL: none. */
	struct inconns *conns;
	void *opaque;
	/* ACCEPT has gone out: this is the source now. */
	void (*accepted)(void *opaque);
	/* COMMIT arrived: take the complete VM (vCPU threads exist, parked)
	 * and run it (or keep it paused: always when !source_running, the
	 * guest was paused at the source).  Must not fail, except -ECANCELED
	 * when the owner was cancelled before: the VM is then discarded and
	 * the source, told by ERROR, resumes its guest. */
	int (*take_over)(void *opaque, struct vm *vm, bool source_running);
	/* Was the session cancelled?  If so, fill why (ERR_MAX) for the
	 * source and the log. */
	bool (*cancelled)(void *opaque, char *why);
	/* Post-copy (both or neither): the guest runs and pulls its missing
	 * pages through pc (postcopy_incoming.h; pci_json, pci_stop from
	 * the owner's threads); then it ended (ok: every page arrived, pc is
	 * retired) and pc is the owner's, to pci_free once nothing uses the
	 * VM any more (after a failure the guest waits, asleep on the pages
	 * that cannot come, until then). */
	void (*postcopy_started)(void *opaque, struct pci *pc);
	void (*postcopy_ended)(void *opaque, struct pci *pc, bool ok);
	/* Post-copy's connections broke (why: for query-migrate and the
	 * log): it waits for a recovery, whose connections come from conns
	 * (the owner listens again after migrate-recover); then it runs
	 * again.  Either may be NULL. */
	void (*postcopy_paused)(void *opaque, const char *why);
	void (*postcopy_resumed)(void *opaque);
};

/**
 * migration_incoming_fd() - the destination side of one connection: read
 * the preamble and HELLO, check the VM can live here, build it (vCPU
 * threads included, parked) and ACCEPT, load memory and state, and after
 * COMMIT hand the VM to cfg->take_over and confirm with RUNNING.
 * @fd:       the connection (the caller closes it); its timeouts bound
 *            the handshake, then cfg->idle_timeout_ms bounds each wait
 * @accepted: set once ACCEPT went out; a failure before that is a peer
 *            to drop (REFUSE sent where the protocol has one), a failure
 *            after it ends the migration (ERROR sent to the source)
 * Returns 0 once the VM is taken over, else a negative errno with err
 * saying why (a cancel's reason, an idle timeout, the stream's error).
 */
int migration_incoming_fd(int fd, const struct incoming_session *cfg,
			  bool *accepted, char *err);

/**
 * migration_incoming_channel() - the same over a channel (a TLS one,
 * handshake done, or a socket channel), which it takes and closes; the
 * socket under it stays the caller's.
 */
int migration_incoming_channel(struct channel *ch,
			       const struct incoming_session *cfg,
			       bool *accepted, char *err);

/* Test hook: where a destination dies on purpose (`--x-fault`):
 * round0 / round1: while receiving memory; device: while receiving the
 * device state; before-commit: with everything loaded, before READY (the
 * source takes its guest back); after-ready: READY sent, COMMIT not read
 * (the source has sent or is sending COMMIT: it cannot know whether it
 * arrived); after-commit: COMMIT received, guest not
 * started (the source cannot know: it stays paused and says so). */
enum incoming_fault {
	FAULT_NONE, FAULT_ROUND0, FAULT_ROUND1, FAULT_DEVICE, FAULT_BEFORE_COMMIT,
	FAULT_AFTER_READY, FAULT_AFTER_COMMIT,
};
int incoming_parse_fault(const char *s, enum incoming_fault *out);
void incoming_set_fault(enum incoming_fault f);

#endif
