/*
 * tls.h - TLS 1.3 for migration connections (OpenSSL): credentials, and a
 * channel (io/channel.h) that wraps a connected socket.
 *
 * Credentials come in QEMU's two forms:
 *  - X.509: a directory laid out as QEMU's tls-creds-x509 expects
 *    (ca-cert.pem, server-cert.pem, server-key.pem, client-cert.pem,
 *    client-key.pem).  Both peers present their certificate and verify
 *    the other's against ca-cert.pem (the destination is the TLS server,
 *    the source the client).
 *  - PSK: a file in QEMU's keys.psk format, one "identity:hexkey" per
 *    line.  The client offers the first line; the server accepts any
 *    identity in its file.  TLS 1.3 external PSK with (EC)DHE, so a
 *    stolen key does not open recorded migrations.
 *
 * A TLS connection starts with the handshake and one byte of
 * confirmation the server sends once it has checked the client (TLS 1.3
 * lets a client finish before the server has looked at its certificate:
 * the confirmation makes a refusal a handshake failure on both sides).
 * Nothing above the channel is read or written before that.
 *
 * Processes that use it ignore SIGPIPE (ferry run does): writes go
 * through OpenSSL's socket BIO.
 */
#ifndef FERRY_IO_TLS_H
#define FERRY_IO_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

struct channel;
struct tls_creds;

enum tls_auth { TLS_AUTH_X509, TLS_AUTH_PSK };

/**
 * tls_creds_load_x509() - load a tls-creds-x509 directory: every file
 * must be there and readable, each key must match its certificate, and
 * both certificates must verify against the CA.  Returns 0 or a negative
 * errno with err (ERR_MAX) naming the file and the problem.
 */
int tls_creds_load_x509(struct tls_creds **out, const char *dir, char *err);

/**
 * tls_creds_load_psk() - load a keys.psk file ("identity:hexkey" lines;
 * keys of 16 to 64 bytes).  Returns 0 or a negative errno with err.
 */
int tls_creds_load_psk(struct tls_creds **out, const char *file, char *err);

void tls_creds_free(struct tls_creds *c);
enum tls_auth tls_creds_auth(const struct tls_creds *c);
/* "x509" or "psk". */
const char *tls_auth_name(enum tls_auth a);
/* Where they came from (the directory or the file), for messages. */
const char *tls_creds_source(const struct tls_creds *c);

/* What a finished handshake agreed, for query-migrate and the log. */
struct tls_info {
	char version[16];        /* "TLSv1.3" */
	char cipher[64];         /* "TLS_AES_256_GCM_SHA384" */
	enum tls_auth auth;
	char peer_id[256];       /* the peer's certificate subject, or PSK identity */
};

/**
 * channel_tls_new() - a TLS channel over the connected socket fd, not yet
 * shaken hands.  With owns_fd the channel closes fd.  server: this side
 * is the TLS server (the migration's destination).  The fd's blocking
 * mode decides how the handshake runs (below).  Returns NULL on ENOMEM.
 */
struct channel *channel_tls_new(struct tls_creds *c, int fd, bool owns_fd,
				bool server);

/**
 * channel_tls_expect_host() - before a client's handshake: the server's
 * certificate must name host (a DNS name, or an IP address in its
 * subjectAltName), as QEMU checks a migration destination's.  Nothing
 * with a pre-shared key.  Returns 0 or -ENOMEM.
 */
int channel_tls_expect_host(struct channel *ch, const char *host);

/**
 * channel_tls_handshake() - run the handshake and its confirmation.  On
 * a blocking fd it runs to the end (bounded by the socket's timeouts:
 * -ETIMEDOUT).  On a non-blocking fd it does what it can and returns
 * -EAGAIN with *events (POLLIN/POLLOUT) saying what to wait for; call
 * again then.  Returns 0 when done, else a negative errno with err
 * saying why in a user's words (wrong CA, wrong key, a plain peer ...).
 */
int channel_tls_handshake(struct channel *ch, short *events, char *err);

/**
 * channel_tls_prefetch() - on a non-blocking fd after the handshake:
 * decrypt what has arrived, up to max bytes held in total, into the
 * channel's own buffer (later reads return it first).  *data and *len
 * are the bytes held.  Returns 0, or -EPIPE once the peer has closed or
 * the connection failed (a reader meets that after the held bytes).
 */
int channel_tls_prefetch(struct channel *ch, size_t max,
			 const unsigned char **data, size_t *len);

/* Is ch a TLS channel? */
bool channel_is_tls(const struct channel *ch);
/* After the handshake: what was agreed.  Returns 0, or -EINVAL. */
int channel_tls_info(const struct channel *ch, struct tls_info *out);

#endif
