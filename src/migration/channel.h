/*
 * channel.h - migration transports.  Now: "tcp:HOST:PORT" (HOST may be a
 * name, an IPv4 address or a bracketed IPv6 address; empty, as in
 * "tcp::PORT", it means any address to listen on, this host to connect to).
 */
#ifndef FERRY_MIG_CHANNEL_H
#define FERRY_MIG_CHANNEL_H

#include <stddef.h>

struct mig_uri {
	char host[256];
	char port[16];
};

/* Parse a URI; 0 or -EINVAL with a message naming what is wrong. */
int channel_parse_uri(const char *uri, struct mig_uri *out, char *err);
/* Connect (bounded by timeout_ms); returns an fd or a negative errno. */
int channel_connect(const struct mig_uri *u, int timeout_ms, char *err);
/* Listen; returns the listening fd.  Port 0 picks a free port, which
 * channel_local_port then tells. */
int channel_listen(const struct mig_uri *u, char *err);
int channel_local_port(int fd);
/* Per-call send/receive timeout (0 = none) and the TCP settings a
 * migration wants (no Nagle for the small return-path records; a user
 * timeout so a silent peer cannot hold the source forever; keepalive, so
 * a vanished peer is noticed while nothing is sent). */
int channel_set_timeout(int fd, int timeout_ms);
void channel_tune(int fd);
/* Cap what the socket queues each way to about bytes (the kernel's own
 * sizing off): for a stream whose queued data a reader may wait behind.
 * Set before data flows (a receive window once offered is not taken
 * back).  Returns 0 or a negative errno. */
int channel_set_queue(int fd, int bytes);

#endif
