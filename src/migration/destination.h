/*
 * destination.h - the incoming-migration object: `ferry run --incoming`.
 *
 * It listens (now, or when `migrate-incoming` gives the address with
 * `--incoming defer`), judges each connection (incoming_listener.c), runs
 * the protocol with the first real source (incoming.c) and hands the VM
 * over once the source commits.  All of that on its own thread, so the
 * control socket serves query-status / query-migrate / migrate-cancel /
 * quit meanwhile.
 *
 * Life: one incoming migration.  A peer that fails the handshake, stays
 * silent past the deadline or is refused is dropped and the object goes
 * on waiting; once a source has been accepted, the migration ends with
 * the VM taken over ("completed") or without one ("failed", "cancelled"),
 * and then the process has nothing to run: main ends it (as QEMU's
 * destination exits when its incoming migration fails).
 */
#ifndef FERRY_MIG_DESTINATION_H
#define FERRY_MIG_DESTINATION_H

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

#include "vmm/vm.h"

struct destination;
struct tls_creds;

enum destination_state {
	DEST_DEFERRED,   /* --incoming defer: waiting for migrate-incoming */
	DEST_LISTENING,  /* no connection yet */
	DEST_HANDSHAKE,  /* a connection is being negotiated */
	DEST_RECEIVING,  /* a source was accepted: memory and state come in */
	DEST_POSTCOPY,   /* the VM runs here and pulls its missing pages */
	/* post-copy's connections broke: the VM stays (vCPUs that touch a
	 * missing page wait), nothing listens until migrate-recover */
	DEST_POSTCOPY_PAUSED,
	/* migrate-recover: listening for the source's reconnection */
	DEST_POSTCOPY_RECOVER,
	DEST_COMPLETED,  /* the VM is taken over */
	DEST_FAILED,     /* ended without a VM: see the error */
	DEST_CANCELLED,  /* ended without a VM: migrate-cancel, quit, signal */
};

struct destination_config {
	const char *uri;           /* "tcp:HOST:PORT"; NULL: deferred */
	struct vm_config host_cfg; /* serial, heartbeat for the VM built */
	uint64_t max_memory;       /* 0 = no limit */
	uint64_t handshake_ms;     /* a connection's time to send HELLO */
	uint64_t idle_ms;          /* longest silence once accepted */
	bool autostart;            /* run the guest on arrival (not --paused) */
	struct tls_creds *tls;     /* require TLS with these; NULL: plain */
	/* Called on the destination thread: publish the VM arrived (it runs
	 * already unless paused), then when the incoming migration ended,
	 * whatever the outcome. */
	void (*publish)(void *opaque, struct vm *vm);
	void (*ended)(void *opaque);
	void *opaque;
};

/**
 * destination_start() - create the object and its thread; with an URI,
 * listen first (an address in use or a bad URI fails here).
 */
int destination_start(struct destination **out,
		      const struct destination_config *cfg, char *err);

/**
 * destination_set_uri() - `migrate-incoming`: listen on uri now.  Fails
 * (and changes nothing) if the URI is bad, the address cannot be bound,
 * or an address was given already.
 */
int destination_set_uri(struct destination *d, const char *uri, char *err);

/**
 * destination_recover() - `migrate-recover`: a paused post-copy listens
 * on uri for the source's reconnection (`migrate` with "resume": true
 * there); only connections of the same migration session are taken.
 * Fails (and changes nothing) unless post-copy is paused, or when the
 * address cannot be bound.
 */
int destination_recover(struct destination *d, const char *uri, char *err);

/* Is post-copy under way here (active, paused or recovering)? */
bool destination_in_postcopy(struct destination *d);

/**
 * destination_cancel() - end the incoming migration: the source, if one
 * is connected, gets ERROR with why and resumes its guest; what was built
 * is discarded.  A no-op once the VM is taken over or the migration ended.
 */
void destination_cancel(struct destination *d, const char *why);

/**
 * destination_set_autostart() - what `cont` (true) and `stop` (false) do
 * while the VM is still coming: run it on arrival or keep it paused.
 * Returns -EALREADY once the VM has been taken over (it is published by
 * then: act on it instead).
 */
int destination_set_autostart(struct destination *d, bool run);

/* The state, and (err: ERR_MAX or NULL) why it failed. */
enum destination_state destination_get_state(struct destination *d,
					      char *err);
const char *destination_state_name(enum destination_state st);

/* query-migrate's answer on a destination (QEMU's fields where they mean
 * the same, the rest under "ferry"); a new reference. */
json_t *destination_query(struct destination *d);
/* query-vm's answer while no VM is here yet; a new reference. */
json_t *destination_query_vm(struct destination *d);

/* Cancel, join the thread, free.  NULL is a no-op. */
void destination_stop(struct destination *d);

#endif
