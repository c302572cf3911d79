/*
 * conns.h - the further connections of one migration (docs/migration-stream.md,
 * "Secondary connections"): after the destination has accepted the MAIN
 * connection, the source may open any number of others, each opened with
 * the preamble naming its role (MIG_ROLE_PAGE_REQUESTS, MIG_ROLE_BULK_PAGES,
 * ...) and the MAIN connection's session id, TLS when the migration is.
 * The destination answers each with ACCEPT (empty) once it has matched the
 * session, or REFUSE with the reason (an unknown session, a bad role), and
 * hands accepted ones to the incoming session (incoming_conns.h).
 *
 * This file is the part both sides share: the connection object, and the
 * source's way of opening one.
 */
#ifndef FERRY_MIG_CONNS_H
#define FERRY_MIG_CONNS_H

#include <stdint.h>

#include "migration/protocol.h"

struct channel;
struct tls_creds;

#define MIG_CONN_PEER_MAX 128 /* as struct channel's peer */

/* One connection of a migration, handshake and preamble done.  Its
 * socket's send/receive timeouts are whatever the handshake left: the
 * owner sets its own (channel_set_timeout). */
struct mig_conn {
	struct channel *ch;     /* what to read and write (socket or TLS) */
	int fd;                 /* the socket under it (-1: none) */
	uint32_t role;          /* enum mig_role */
	char peer[MIG_CONN_PEER_MAX];
};

/**
 * mig_conn_open() - the source's side: connect to uri, shake hands (TLS
 * with tls, plain without), send the preamble for role and session, and
 * wait for the destination's answer.
 * @timeout_ms: bounds the connect, the handshake and the answer each; the
 *              socket keeps it as its send/receive timeout afterwards
 * Returns 0 with *out filled (close it with mig_conn_close), or a negative
 * errno with err saying why: -EPERM with the destination's reason when it
 * refused ("the destination refused the page-requests connection: ...").
 */
int mig_conn_open(const char *uri, struct tls_creds *tls, uint32_t role,
		  const uint8_t session[MIG_SESSION_ID_LEN], int timeout_ms,
		  struct mig_conn *out, char *err);

/* The same, telling on_fd(opaque, fd) the socket as soon as it is
 * connected, and on_fd(opaque, -1) when it is done (opened or failed):
 * a cancel may shut it down meanwhile, which ends the wait at once. */
int mig_conn_open_watched(const char *uri, struct tls_creds *tls, uint32_t role,
			  const uint8_t session[MIG_SESSION_ID_LEN], int timeout_ms,
			  void (*on_fd)(void *opaque, int fd), void *opaque,
			  struct mig_conn *out, char *err);

/* The socket's send timeout alone (0: none); the receive timeout stays. */
int mig_conn_set_send_timeout(struct mig_conn *c, int timeout_ms);

/* Shut both directions down now (any thread): unblocks its users. */
void mig_conn_shutdown(struct mig_conn *c);

/* Close the channel, then the socket; c is emptied.  Idempotent. */
void mig_conn_close(struct mig_conn *c);

/**
 * mig_conn_read_exact() - exactly len bytes from ch (its socket's receive
 * timeout bounds each wait).  Never reads past them: what follows stays in
 * the channel for whoever takes it over.  Returns 0, -ECONNRESET at the
 * end of the connection, or the read's negative errno.
 */
int mig_conn_read_exact(struct channel *ch, void *buf, size_t len);

/**
 * mig_conn_put_record() - write one framed record (type, payload, CRC)
 * straight to ch, outside any record writer.  Returns 0 or a negative errno.
 */
int mig_conn_put_record(struct channel *ch, uint32_t type, const void *payload,
			uint32_t len);

/**
 * mig_conn_get_record() - read one framed record of at most max bytes
 * straight from ch, byte-exact (nothing after it is consumed); *payload is
 * malloc'd and NUL-terminated (the caller frees it).  Returns 0, -EBADMSG
 * for a checksum mismatch, -EMSGSIZE for a longer record, or the read's
 * error.
 */
int mig_conn_get_record(struct channel *ch, uint32_t max, uint32_t *type,
			char **payload, uint32_t *len);

#endif
