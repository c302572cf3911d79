/*
 * incoming_conns.h - the destination's further connections of the
 * migration it has accepted (docs/migration-stream.md, "Secondary
 * connections").
 *
 * Once the MAIN connection is accepted, inconns_open() takes over the
 * listener on a thread of its own: every connection that comes (TLS
 * handshake and deadline as for MAIN, incoming_listener.c) is judged on
 * its preamble.  One of the accepted session, with a role other than MAIN,
 * is answered ACCEPT and queued for its role; anything else is answered
 * REFUSE with the reason and closed (an unknown session id, an unknown
 * role, a second MAIN connection), and the migration goes on.  The
 * session's code takes connections with inconns_wait(), by role, in the
 * order they arrived, any number of them: post-copy takes one
 * PAGE_REQUESTS and one POSTCOPY_PUSH connection, parallel page channels N
 * BULK_PAGES ones.
 *
 *   source                                   destination (inconns thread)
 *     |== connect (TLS if the migration is) ==>| handshake, deadline
 *     |-- "FERRYMIG" 2 role session ---------->| session = the accepted one?
 *     |<-------------------- ACCEPT | REFUSE --| queued for inconns_wait(role)
 *
 * Threads: the owner creates and frees the object; inconns_open and
 * inconns_wait run on the session's thread; inconns_cancel on any.
 */
#ifndef FERRY_MIG_INCOMING_CONNS_H
#define FERRY_MIG_INCOMING_CONNS_H

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

#include "migration/conns.h"
#include "migration/protocol.h"

struct incoming_listener;
struct inconns;

/* Connections accepted but not yet taken, at most (more are refused). */
#define INCONNS_MAX_QUEUED 64

/**
 * inconns_new() - an object that will take secondary connections from
 * listener l (which must stay open until inconns_free; the object uses it
 * only between inconns_open and inconns_free).  Returns 0 and *out, or
 * -ENOMEM with err filled.
 */
int inconns_new(struct inconns **out, struct incoming_listener *l, char *err);

/**
 * inconns_open() - the MAIN connection of session has been accepted:
 * from now on, judge every new connection on l against it (on a thread
 * of its own).  Once per object.  Returns 0, -ECANCELED after
 * inconns_cancel, or another negative errno with err filled.
 */
int inconns_open(struct inconns *t, const uint8_t session[MIG_SESSION_ID_LEN],
		 char *err);

/**
 * inconns_wait() - take the next accepted connection of role (in arrival
 * order), waiting for one until deadline_ns (mig_now_ns()'s clock).
 * @out: filled on success; the caller owns it (mig_conn_close)
 * Returns 0; -ETIMEDOUT when none came in time ("no page-requests
 * connection of this migration within 10.0 s"); -ECANCELED after
 * inconns_cancel; -EBADF before inconns_open or when the listener failed.
 */
int inconns_wait(struct inconns *t, uint32_t role, uint64_t deadline_ns,
		 struct mig_conn *out, char *err);

/**
 * inconns_suspend() - stop taking connections for now (post-copy
 * paused): the thread ends and what waits to be taken is closed, so the
 * owner may close the listener and open another (migrate-recover);
 * inconns_wait() goes on waiting.  inconns_resume() takes connections
 * again, from the listener the object was made with (same struct, new
 * socket), judged against the same session.  Resume returns 0 or a
 * negative errno with a message.  Both on the owner's threads, one at a
 * time.
 */
void inconns_suspend(struct inconns *t);
int inconns_resume(struct inconns *t, char *err);

/* End waits (-ECANCELED) and stop taking connections; any thread. */
void inconns_cancel(struct inconns *t);

/* query-migrate's view: {"accepted": N, "refused": N, "waiting": N}; a
 * new reference.  Any thread. */
json_t *inconns_json(struct inconns *t);

/* Cancel, stop the thread and close what was never taken (the listener
 * is free again afterwards).  Idempotent; NULL is a no-op. */
void inconns_stop(struct inconns *t);

/* inconns_stop, then free.  NULL is a no-op. */
void inconns_free(struct inconns *t);

#endif
