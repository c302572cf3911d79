/*
 * incoming_listener.h - the destination's listening socket: accept every
 * connection at once, give each a handshake deadline, and hand over the
 * first one whose preamble and HELLO have arrived.
 *
 * A peer that connects and stays silent, trickles bytes or sends garbage
 * must not keep the real source out: connections are accepted as soon as
 * they come (up to LISTENER_MAX_PENDING at a time), watched side by side,
 * and dropped with a log line when their deadline passes.  Which of them
 * is a real source is decided by the protocol (incoming.c's negotiate);
 * this module only waits until a connection has sent enough for that
 * decision to need no further waiting.
 *
 * With TLS credentials, each connection first completes its TLS
 * handshake here, side by side with the others and within the same
 * deadline; only then is its (decrypted) preamble looked at.  A peer
 * with the wrong credentials, or none, is dropped (a plain ferry source
 * is told in plain words that TLS is required).
 */
#ifndef FERRY_MIG_INCOMING_LISTENER_H
#define FERRY_MIG_INCOMING_LISTENER_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

struct channel;
struct tls_creds;

#define LISTENER_MAX_PENDING 8
#define LISTENER_PEER_MAX    64

struct listener_pending {
	int fd;
	uint64_t deadline_ns;
	uint64_t recheck_ns;    /* partial data: look again then */
	char peer[LISTENER_PEER_MAX];
	struct channel *tls;    /* with credentials: its TLS channel */
	bool secured;           /* ... whose handshake is done */
	bool sniffed;           /* ... first byte seen (a plain peer?) */
	short events;           /* ... what the handshake waits for */
};

struct incoming_listener {
	int fd;                 /* listening socket, -1 when closed */
	int port;               /* the port it listens on (port 0 resolved) */
	char host[256];
	uint64_t handshake_ns;  /* each connection's time to send HELLO */
	/* Guards pend/npend for readers on other threads (query-migrate);
	 * only the destination thread changes them. */
	pthread_mutex_t *lock;
	struct listener_pending pend[LISTENER_MAX_PENDING];
	unsigned npend;
	uint64_t dropped;       /* connections dropped so far */
	struct tls_creds *tls;  /* NULL: plain TCP */
	/* Hand a connection over once its preamble is in, whatever its
	 * role (no HELLO is awaited): set once a migration was accepted and
	 * only its further connections are taken (incoming_conns.c). */
	bool preamble_only;
};

/**
 * listener_open() - parse uri ("tcp:HOST:PORT", "tcp::PORT" for any
 * address) and listen.  Logs "waiting for an incoming migration on
 * HOST:PORT".  Returns 0 or a negative errno with err filled.
 */
int listener_open(struct incoming_listener *l, const char *uri,
		  uint64_t handshake_ns, pthread_mutex_t *lock, char *err);

/* Require TLS with these credentials on every connection (before the
 * first listener_next). */
void listener_set_tls(struct incoming_listener *l, struct tls_creds *c);

/**
 * listener_next() - wait for a connection that has sent its preamble and
 * first record (or enough to be judged, or has hung up).
 * @cancel_fd: readable means stop waiting (-ECANCELED)
 * @fd:        the connection, blocking, its receive timeout set to what is
 *             left of its handshake deadline; the caller closes it
 * @tls:       with TLS, the connection's channel, handshake done (the
 *             caller closes it before fd); NULL for plain TCP
 * @peer:      LISTENER_PEER_MAX bytes: "ADDR:PORT" of the peer
 *
 * Connections whose deadline passes are closed and logged here.
 * Returns 0, -ECANCELED, or another negative errno with err filled.
 */
int listener_next(struct incoming_listener *l, int cancel_fd, int *fd,
		  struct channel **tls, char *peer, char *err);

/* Stop listening and drop every pending connection.  Idempotent. */
void listener_close(struct incoming_listener *l);

#endif
