/*
 * A TLS 1.3 channel over a connected socket (see tls.h).  Its fd is the
 * socket's, so poll, timeouts (SO_RCVTIMEO/SO_SNDTIMEO: a blocked call
 * fails with -EAGAIN) and shutdown work as on a plain socket channel;
 * decrypted input OpenSSL or the prefetch buffer holds is reported by the
 * pending op.
 *
 * Writes are gathered into full TLS records (16 KiB): a record header,
 * payload and CRC handed over as three pieces would otherwise be three
 * records and three system calls.
 *
 * An SSL object is not safe for a reader and a writer on two threads at
 * once, so unlike a socket channel this one is used by one thread at a
 * time (a migration connection is); shutdown, which only touches the
 * socket, may still come from anywhere.
 */
#include "io/channel.h"
#include "io/tls.h"
#include "io/tls_internal.h"
#include "util/log.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#define TLS_RECORD     16384   /* the largest TLS plaintext record */
#define CONFIRM_BYTE   0x5a    /* the server's "you are in" */

enum tls_stage { STAGE_HANDSHAKE, STAGE_CONFIRM, STAGE_DONE };

struct tls_priv {
	SSL *ssl;
	struct tls_creds *creds;
	bool owns_fd, server;
	enum tls_stage stage;
	bool fatal;              /* no close_notify after an error */
	bool warned;             /* the TLS detail of a failure was logged */
	unsigned char *pre;      /* prefetched plaintext: [pre_pos, pre_len) */
	size_t pre_pos, pre_len, pre_cap;
	int pre_end;             /* 0, 1 = the peer closed, -errno = failed */
	unsigned char stage_buf[TLS_RECORD];
	size_t stage_len;
	char unknown_id[80];     /* PSK identity the server did not know */
	char psk_id[130];        /* PSK identity used */
	char host[256];          /* client: the name the server must have */
};

static const struct channel_ops tls_ops;

bool channel_is_tls(const struct channel *ch)
{
	return ch && ch->ops == &tls_ops;
}

static bool nonblocking(int fd)
{
	int fl = fcntl(fd, F_GETFL);
	return fl >= 0 && (fl & O_NONBLOCK);
}

void tls_note_identity(SSL *ssl, const unsigned char *id, size_t len, bool known)
{
	struct tls_priv *p = SSL_get_app_data(ssl);
	char *out = known ? p->psk_id : p->unknown_id;
	size_t size = known ? sizeof(p->psk_id) : sizeof(p->unknown_id);
	size_t n = len < size - 1 ? len : size - 1;

	/* It comes from the peer: printable characters only. */
	for (size_t i = 0; i < n; i++)
		out[i] = id[i] >= 0x20 && id[i] < 0x7f ? (char)id[i] : '?';
	out[n] = '\0';
	if (!n)
		snprintf(out, size, "(empty)");
}

/* A failed call after the handshake: -errno for the layers above, and
 * the TLS detail in the log once (errno has no word for "bad record
 * MAC"). */
static ssize_t io_error(struct channel *ch, int ret)
{
	struct tls_priv *p = ch->priv;
	int e = SSL_get_error(p->ssl, ret);
	int saved = errno;
	char why[160];

	switch (e) {
	case SSL_ERROR_ZERO_RETURN:
		ERR_clear_error();
		return 0;
	case SSL_ERROR_WANT_READ:
		ERR_clear_error();
		return -EAGAIN;
	case SSL_ERROR_WANT_WRITE:
		/* A send timed out with a record half written: the stream is
		 * no longer whole, so no close_notify either. */
		p->fatal = true;
		ERR_clear_error();
		return -EAGAIN;
	case SSL_ERROR_SYSCALL:
		p->fatal = true;
		ERR_clear_error();
		/* EOF without close_notify: a peer that died or hung up; the
		 * protocol's own end records tell a truncation. */
		return saved ? -saved : 0;
	default:
		p->fatal = true;
		tls_ossl_reason(why, sizeof(why));
		if (!p->warned)
			log_warn("TLS connection with %s failed: %s", ch->peer, why);
		p->warned = true;
		return -EBADMSG;
	}
}

static ssize_t tls_read(struct channel *ch, void *buf, size_t len)
{
	struct tls_priv *p = ch->priv;
	size_t n;

	if (p->pre_pos < p->pre_len) {
		n = p->pre_len - p->pre_pos < len ? p->pre_len - p->pre_pos : len;
		memcpy(buf, p->pre + p->pre_pos, n);
		p->pre_pos += n;
		return (ssize_t)n;
	}
	if (p->pre_end)
		return p->pre_end > 0 ? 0 : p->pre_end;
	if (p->stage != STAGE_DONE)
		return -ENOTCONN;
	ERR_clear_error();
	if (SSL_read_ex(p->ssl, buf, len, &n) == 1)
		return (ssize_t)n;
	return io_error(ch, 0);
}

static int flush_stage(struct channel *ch)
{
	struct tls_priv *p = ch->priv;
	size_t n;

	if (!p->stage_len)
		return 0;
	ERR_clear_error();
	if (SSL_write_ex(p->ssl, p->stage_buf, p->stage_len, &n) != 1) {
		ssize_t r = io_error(ch, 0);
		p->stage_len = 0;
		return r ? (int)r : -EPIPE;
	}
	p->stage_len = 0;
	return 0;
}

static ssize_t tls_writev(struct channel *ch, const struct iovec *iov, int niov)
{
	struct tls_priv *p = ch->priv;
	size_t total = 0, n;
	int r;

	if (p->stage != STAGE_DONE)
		return -ENOTCONN;
	for (int i = 0; i < niov; i++) {
		const unsigned char *b = iov[i].iov_base;
		size_t len = iov[i].iov_len;
		while (len) {
			if (!p->stage_len && len >= TLS_RECORD) {
				/* Big pieces go straight out, in full records. */
				ERR_clear_error();
				if (SSL_write_ex(p->ssl, b, len, &n) != 1) {
					ssize_t e = io_error(ch, 0);
					return e ? e : -EPIPE;
				}
				total += len;
				break;
			}
			size_t take = TLS_RECORD - p->stage_len < len
					      ? TLS_RECORD - p->stage_len : len;
			memcpy(p->stage_buf + p->stage_len, b, take);
			p->stage_len += take;
			b += take;
			len -= take;
			total += take;
			if (p->stage_len == TLS_RECORD && (r = flush_stage(ch)))
				return r;
		}
	}
	r = flush_stage(ch);
	return r ? r : (ssize_t)total;
}

static int tls_shutdown(struct channel *ch)
{
	/* The socket only: the SSL object belongs to the thread using it. */
	return shutdown(ch->fd, SHUT_RDWR) < 0 ? -errno : 0;
}

static bool tls_pending(struct channel *ch)
{
	struct tls_priv *p = ch->priv;
	return p->pre_pos < p->pre_len ||
	       (p->stage == STAGE_DONE &&
		(SSL_pending(p->ssl) > 0 || SSL_has_pending(p->ssl)));
}

static void tls_close(struct channel *ch)
{
	struct tls_priv *p = ch->priv;

	if (p->stage == STAGE_DONE && !p->fatal && ch->fd >= 0) {
		/* close_notify, best effort and without waiting: a stalled
		 * peer must not hold up the end for a send timeout.  The
		 * socket is being closed (by us or the caller), so its mode
		 * no longer matters. */
		fcntl(ch->fd, F_SETFL, fcntl(ch->fd, F_GETFL) | O_NONBLOCK);
		ERR_clear_error();
		SSL_shutdown(p->ssl);
	}
	ERR_clear_error();
	SSL_free(p->ssl);
	if (p->owns_fd && ch->fd >= 0)
		close(ch->fd);
	free(p->pre);
	OPENSSL_cleanse(p->stage_buf, sizeof(p->stage_buf));
	free(p);
	free(ch);
}

static const struct channel_ops tls_ops = {
	.kind = "tls",
	.read = tls_read,
	.writev = tls_writev,
	.shutdown = tls_shutdown,
	.close = tls_close,
	.pending = tls_pending,
};

struct channel *channel_tls_new(struct tls_creds *c, int fd, bool owns_fd,
				bool server)
{
	/* Borrow the socket channel's peer description. */
	struct channel *plain = channel_socket_new(fd, false);
	struct channel *ch = calloc(1, sizeof(*ch));
	struct tls_priv *p = calloc(1, sizeof(*p));

	if (!plain || !ch || !p)
		goto fail;
	p->ssl = SSL_new(server ? c->server : c->client);
	if (!p->ssl || SSL_set_fd(p->ssl, fd) != 1)
		goto fail;
	SSL_set_app_data(p->ssl, p);
	p->creds = c;
	p->owns_fd = owns_fd;
	p->server = server;
	ch->ops = &tls_ops;
	ch->fd = fd;
	ch->priv = p;
	ch->eof_text = "connection closed by the peer";
	snprintf(ch->peer, sizeof(ch->peer), "%s", plain->peer);
	channel_close(plain);
	return ch;
fail:
	ERR_clear_error();
	if (p)
		SSL_free(p->ssl);
	free(p);
	free(ch);
	channel_close(plain);
	return NULL;
}

int channel_tls_expect_host(struct channel *ch, const char *host)
{
	struct tls_priv *p = ch->priv;

	if (p->creds->auth != TLS_AUTH_X509)
		return 0;
	snprintf(p->host, sizeof(p->host), "%s", host);
	/* An address is matched against the certificate's IP entries, a
	 * name against its DNS entries (and CN, as OpenSSL does). */
	if (X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(p->ssl), host) == 1)
		return 0;
	ERR_clear_error();
	return SSL_set1_host(p->ssl, host) == 1 ? 0 : -ENOMEM;
}

/* Why the handshake failed, in a user's words.  Runs with OpenSSL's error
 * queue still holding the failure. */
static int handshake_error(struct channel *ch, int ret, short *events, char *err)
{
	struct tls_priv *p = ch->priv;
	int e = SSL_get_error(p->ssl, ret);
	int saved = errno;
	bool psk = p->creds->auth == TLS_AUTH_PSK;
	unsigned long oe = ERR_peek_last_error();
	int reason = ERR_GET_REASON(oe);
	long verify = SSL_get_verify_result(p->ssl);
	char why[160];

	if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
		ERR_clear_error();
		if (nonblocking(ch->fd)) {
			if (events)
				*events = e == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT;
			return -EAGAIN;
		}
		return err_set(err, -ETIMEDOUT, "TLS handshake with %s: no answer in time",
			       ch->peer);
	}
	p->fatal = true;
	tls_ossl_reason(why, sizeof(why));
	if (p->unknown_id[0])
		return err_set(err, -EACCES,
			       "TLS handshake with %s failed: its pre-shared key identity '%s' "
			       "is not in %s", ch->peer, p->unknown_id, p->creds->source);
	if (!psk && (verify == X509_V_ERR_HOSTNAME_MISMATCH ||
		     verify == X509_V_ERR_IP_ADDRESS_MISMATCH))
		return err_set(err, -EACCES,
			       "TLS handshake with %s failed: its certificate does not name "
			       "'%s', the host we connected to (its subjectAltName must list it)",
			       ch->peer, p->host);
	if (!psk && verify != X509_V_OK && e == SSL_ERROR_SSL)
		return err_set(err, -EACCES,
			       "TLS handshake with %s failed: its certificate is not trusted "
			       "(%s; checked against %s/ca-cert.pem)", ch->peer,
			       X509_verify_cert_error_string(verify), p->creds->source);
	if (e == SSL_ERROR_SSL) {
		/* OpenSSL's server answers a PSK binder that does not verify
		 * with illegal_parameter. */
		if (psk && reason == SSL_R_SSLV3_ALERT_ILLEGAL_PARAMETER)
			reason = SSL_R_TLSV1_ALERT_DECRYPT_ERROR;
		switch (reason) {
		case SSL_R_TLSV1_ALERT_UNKNOWN_CA:
		case SSL_R_SSLV3_ALERT_BAD_CERTIFICATE:
		case SSL_R_SSLV3_ALERT_CERTIFICATE_UNKNOWN:
		case SSL_R_TLSV13_ALERT_CERTIFICATE_REQUIRED:
		case SSL_R_SSLV3_ALERT_UNSUPPORTED_CERTIFICATE:
		case SSL_R_SSLV3_ALERT_CERTIFICATE_EXPIRED:
			return err_set(err, -EACCES,
				       "TLS handshake with %s failed: it refused our certificate (%s): "
				       "its CA is not the one that signed ours", ch->peer, why);
		case SSL_R_TLSV1_ALERT_DECRYPT_ERROR:
		case SSL_R_BAD_PSK:
		case SSL_R_BAD_PSK_IDENTITY:
		case SSL_R_BINDER_DOES_NOT_VERIFY:
			return err_set(err, -EACCES,
				       "TLS handshake with %s failed: %s (%s)", ch->peer,
				       psk ? "its pre-shared key differs from ours"
					   : "the peer could not verify our credentials",
				       why);
		case SSL_R_WRONG_VERSION_NUMBER:
		case SSL_R_PACKET_LENGTH_TOO_LONG:
		case SSL_R_HTTP_REQUEST:
		case SSL_R_UNEXPECTED_RECORD:
			return err_set(err, -EPROTO,
				       "TLS handshake with %s failed: the peer does not speak TLS (%s)",
				       ch->peer, why);
		case SSL_R_NO_SHARED_CIPHER:
		case SSL_R_NO_SUITABLE_SIGNATURE_ALGORITHM:
		case SSL_R_MISSING_PSK_KEX_MODES_EXTENSION:
		case SSL_R_SSLV3_ALERT_HANDSHAKE_FAILURE:
		case SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE:
			return err_set(err, -EACCES,
				       "TLS handshake with %s failed: %s (our credentials are %s: "
				       "does the peer use the same kind, %s?)", ch->peer, why,
				       psk ? "a pre-shared key" : "X.509 certificates",
				       psk ? "--tls-psk with this key" : "--tls-creds from this CA");
		}
		return err_set(err, -EACCES, "TLS handshake with %s failed: %s", ch->peer, why);
	}
	if (e == SSL_ERROR_SYSCALL && saved && saved != EPIPE && saved != ECONNRESET)
		return err_set(err, -saved, "TLS handshake with %s failed: %s", ch->peer,
			       saved == EAGAIN ? "no answer in time" : strerror(saved));
	return err_set(err, -ECONNRESET,
		       "TLS handshake with %s failed: the peer closed the connection "
		       "(does it use TLS with credentials matching ours (%s from %s)?)",
		       ch->peer, tls_auth_name(p->creds->auth), p->creds->source);
}

int channel_tls_handshake(struct channel *ch, short *events, char *err)
{
	struct tls_priv *p = ch->priv;
	unsigned char b = CONFIRM_BYTE;
	size_t n;
	int r;

	if (p->stage == STAGE_HANDSHAKE) {
		ERR_clear_error();
		r = p->server ? SSL_accept(p->ssl) : SSL_connect(p->ssl);
		if (r != 1)
			return handshake_error(ch, r, events, err);
		/* A PSK side accepts nothing but the key: a server that
		 * answered with a certificate instead is not our peer (the
		 * empty trust store refuses it already; this says so too). */
		if (p->creds->auth == TLS_AUTH_PSK && !SSL_session_reused(p->ssl)) {
			p->fatal = true;
			return err_set(err, -EACCES,
				       "TLS handshake with %s failed: the pre-shared key was not used",
				       ch->peer);
		}
		p->stage = STAGE_CONFIRM;
	}
	if (p->stage == STAGE_CONFIRM) {
		ERR_clear_error();
		r = p->server ? SSL_write_ex(p->ssl, &b, 1, &n)
			      : SSL_read_ex(p->ssl, &b, 1, &n);
		if (r != 1)
			return handshake_error(ch, r, events, err);
		if (b != CONFIRM_BYTE) {
			p->fatal = true;
			return err_set(err, -EPROTO,
				       "TLS handshake with %s: the confirmation byte is 0x%02x, not 0x%02x",
				       ch->peer, b, CONFIRM_BYTE);
		}
		p->stage = STAGE_DONE;
	}
	return 0;
}

int channel_tls_prefetch(struct channel *ch, size_t max,
			 const unsigned char **data, size_t *len)
{
	struct tls_priv *p = ch->priv;

	if (p->pre_pos) {
		memmove(p->pre, p->pre + p->pre_pos, p->pre_len - p->pre_pos);
		p->pre_len -= p->pre_pos;
		p->pre_pos = 0;
	}
	if (max > p->pre_cap) {
		unsigned char *b = realloc(p->pre, max);
		if (b) {
			p->pre = b;
			p->pre_cap = max;
		}
	}
	while (p->stage == STAGE_DONE && !p->pre_end && p->pre_len < p->pre_cap) {
		size_t n;
		ERR_clear_error();
		if (SSL_read_ex(p->ssl, p->pre + p->pre_len, p->pre_cap - p->pre_len, &n) == 1) {
			p->pre_len += n;
			continue;
		}
		ssize_t r = io_error(ch, 0);
		if (r == -EAGAIN)
			break;
		p->pre_end = r ? (int)r : 1;
	}
	*data = p->pre;
	*len = p->pre_len;
	return p->pre_end ? -EPIPE : 0;
}

int channel_tls_info(const struct channel *ch, struct tls_info *out)
{
	if (!channel_is_tls(ch))
		return -EINVAL;
	struct tls_priv *p = ch->priv;
	memset(out, 0, sizeof(*out));
	if (p->stage != STAGE_DONE)
		return -EINVAL;
	out->auth = p->creds->auth;
	snprintf(out->version, sizeof(out->version), "%s", SSL_get_version(p->ssl));
	const SSL_CIPHER *c = SSL_get_current_cipher(p->ssl);
	snprintf(out->cipher, sizeof(out->cipher), "%s",
		 c ? SSL_CIPHER_standard_name(c) : "?");
	if (p->creds->auth == TLS_AUTH_PSK) {
		snprintf(out->peer_id, sizeof(out->peer_id), "psk identity %s",
			 p->server ? p->psk_id : p->creds->psk[0].identity);
	} else {
		X509 *x = SSL_get0_peer_certificate(p->ssl);
		if (x)
			X509_NAME_oneline(X509_get_subject_name(x), out->peer_id,
					  sizeof(out->peer_id));
	}
	return 0;
}
