/*
 * multifd_conns.h - the page channels' connections: the source opens N
 * bulk-pages connections of its migration after ACCEPT (conns.h) and
 * starts the sending engine on them; the destination takes N of them
 * from the accepted session's further connections (incoming_conns.h)
 * and starts the receiving engine.  The engines own the channels; the
 * sockets under them are kept here and closed after the engine.
 */
#ifndef FERRY_MIG_MULTIFD_CONNS_H
#define FERRY_MIG_MULTIFD_CONNS_H

#include <stdint.h>

#include "migration/multifd_recv.h"
#include "migration/multifd_send.h"
#include "migration/protocol.h"

struct inconns;
struct tls_creds;

struct mf_fds {
	unsigned n;
	int fd[MF_MAX_CHANNELS];
};

/**
 * mf_send_open() - connect n bulk-pages connections of session to uri
 * (TLS with tls), each bounded by timeout_ms, then give each socket
 * idle_ms as its send timeout and start the engine on them.  Returns the
 * engine (its sockets in *fds), or NULL with err saying which connection
 * failed and why (everything opened is closed again).
 */
struct mf_send *mf_send_open(const char *uri, struct tls_creds *tls,
			     const uint8_t session[MIG_SESSION_ID_LEN], unsigned n,
			     int timeout_ms, int idle_ms, const struct mf_send_cfg *cfg,
			     struct mf_fds *fds, char *err);
/* mf_send_free, then close the sockets.  NULL is fine. */
void mf_send_close(struct mf_send *s, struct mf_fds *fds);
/* Bytes written to the channels' sockets and not yet sent (SIOCOUTQ). */
uint64_t mf_fds_unsent(const struct mf_fds *fds);

/**
 * mf_recv_accept() - the receiving engine for cfg->n channels, fed with
 * the session's next cfg->n bulk-pages connections (each waited for
 * until deadline_ns, mig_now_ns()'s clock; idle_ms then bounds each
 * read).  stop (may be NULL) is asked every 200 ms while waiting: true
 * ends the wait with -ECANCELED (the main connection has something to
 * say, such as the source's ERROR).  Returns the engine (its sockets in
 * *fds) or NULL with err and *ret the error.
 */
struct mf_recv *mf_recv_accept(struct inconns *conns, const struct mf_recv_cfg *cfg,
			       uint64_t deadline_ns, int idle_ms,
			       bool (*stop)(void *opaque), void *opaque,
			       struct mf_fds *fds, int *ret, char *err);
/* mf_recv_free, then close the sockets.  NULL is fine. */
void mf_recv_close(struct mf_recv *r, struct mf_fds *fds);

#endif
