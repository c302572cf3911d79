/*
 * wire_tls.c - a migration source's TLS, by hand (wire.h): OpenSSL
 * directly, from the description in docs/migration-stream.md, so that
 * the tests do not share the code they check.
 */
#include "harness.h"
#include "wire.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

struct w_tls {
	int fd;
	SSL_CTX *ctx;
	SSL *ssl;
	char version[32];
};

/* The first line of a keys.psk file, for the PSK callback. */
static char psk_identity[256];
static unsigned char psk_key[64];
static size_t psk_keylen;

static int use_psk(SSL *ssl, const EVP_MD *md, const unsigned char **id,
		   size_t *idlen, SSL_SESSION **sess)
{
	static const unsigned char aes128gcmsha256[] = { 0x13, 0x01 };
	const SSL_CIPHER *c = SSL_CIPHER_find(ssl, aes128gcmsha256);

	*sess = NULL;
	if (md && md != EVP_sha256())
		return 1;
	SSL_SESSION *s = SSL_SESSION_new();
	if (!c || !s || !SSL_SESSION_set1_master_key(s, psk_key, psk_keylen) ||
	    !SSL_SESSION_set_cipher(s, c) ||
	    !SSL_SESSION_set_protocol_version(s, TLS1_3_VERSION)) {
		SSL_SESSION_free(s);
		return 0;
	}
	*sess = s;
	*id = (const unsigned char *)psk_identity;
	*idlen = strlen(psk_identity);
	return 1;
}

static void read_psk(const char *file)
{
	char *text = h_read_file(file, NULL);
	char *colon = strchr(text, ':');
	h_assert(colon, "%s: not IDENTITY:HEXKEY", file);
	*colon = '\0';
	snprintf(psk_identity, sizeof(psk_identity), "%s", text);
	psk_keylen = 0;
	for (char *h = colon + 1; h[0] && h[1] && h[0] != '\n' &&
	     psk_keylen < sizeof(psk_key); h += 2) {
		unsigned v;
		h_assert(sscanf(h, "%2x", &v) == 1, "%s: key not hex", file);
		psk_key[psk_keylen++] = (unsigned char)v;
	}
	free(text);
}

static void say(char *err, size_t errlen, const char *what)
{
	unsigned long e = ERR_peek_last_error();
	snprintf(err, errlen, "%s: %s", what,
		 e ? ERR_reason_error_string(e) : "connection closed");
	ERR_clear_error();
}

struct w_tls *w_tls_connect(int port, const struct w_tls_creds *c,
			    double timeout_s, char *err, size_t errlen)
{
	struct w_tls *t = calloc(1, sizeof(*t));
	char path[1024];

	t->fd = w_connect(port);
	struct timeval tv = { .tv_sec = (time_t)timeout_s,
			      .tv_usec = (suseconds_t)((timeout_s - (time_t)timeout_s) * 1e6) };
	setsockopt(t->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(t->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	t->ctx = SSL_CTX_new(TLS_client_method());
	SSL_CTX_set_min_proto_version(t->ctx, TLS1_3_VERSION);
	if (c->psk_file) {
		read_psk(c->psk_file);
		SSL_CTX_set_ciphersuites(t->ctx, "TLS_AES_128_GCM_SHA256");
		SSL_CTX_set_psk_use_session_callback(t->ctx, use_psk);
	} else {
		snprintf(path, sizeof(path), "%s/client-cert.pem", c->dir);
		h_assert(SSL_CTX_use_certificate_file(t->ctx, path, SSL_FILETYPE_PEM) == 1,
			 "%s", path);
		snprintf(path, sizeof(path), "%s/client-key.pem", c->dir);
		h_assert(SSL_CTX_use_PrivateKey_file(t->ctx, path, SSL_FILETYPE_PEM) == 1,
			 "%s", path);
		snprintf(path, sizeof(path), "%s/ca-cert.pem", c->dir);
		h_assert(SSL_CTX_load_verify_locations(t->ctx, path, NULL) == 1, "%s", path);
		SSL_CTX_set_verify(t->ctx, SSL_VERIFY_PEER, NULL);
	}
	t->ssl = SSL_new(t->ctx);
	SSL_set_fd(t->ssl, t->fd);
	unsigned char b = 0;
	size_t n;
	if (SSL_connect(t->ssl) != 1) {
		say(err, errlen, "handshake");
		goto fail;
	}
	/* The server's word that it took us (TLS 1.3 lets a client finish
	 * before the server has checked its certificate). */
	if (SSL_read_ex(t->ssl, &b, 1, &n) != 1 || b != 0x5a) {
		say(err, errlen, "confirmation");
		goto fail;
	}
	snprintf(t->version, sizeof(t->version), "%s", SSL_get_version(t->ssl));
	return t;
fail:
	w_tls_close(t);
	return NULL;
}

void w_tls_send_all(struct w_tls *t, const void *data, size_t len)
{
	size_t n;
	h_assert(SSL_write_ex(t->ssl, data, len, &n) == 1 && n == len,
		 "TLS send of %zu bytes failed", len);
}

static bool recv_all(void *src, void *out, size_t len, double timeout_s)
{
	struct w_tls *t = src;
	unsigned char *p = out;
	double dl = h_now() + timeout_s;
	while (len) {
		size_t n;
		if (h_now() > dl)
			return false;
		if (SSL_read_ex(t->ssl, p, len, &n) != 1) {
			ERR_clear_error();
			return false;
		}
		p += n;
		len -= n;
	}
	return true;
}

bool w_tls_recv_record(struct w_tls *t, uint32_t *type, char **payload,
		       uint32_t *len, double timeout_s)
{
	return w_recv_record_via(recv_all, t, type, payload, len, timeout_s);
}

bool w_tls_wait_closed(struct w_tls *t, double timeout_s)
{
	double dl = h_now() + timeout_s;
	char c[256];
	while (h_now() < dl) {
		size_t n;
		if (SSL_read_ex(t->ssl, c, sizeof(c), &n) != 1) {
			int e = SSL_get_error(t->ssl, 0);
			ERR_clear_error();
			if (e != SSL_ERROR_WANT_READ)
				return true; /* closed, alert or reset */
		}
	}
	return false;
}

const char *w_tls_version(struct w_tls *t)
{
	return t->version;
}

void w_tls_close(struct w_tls *t)
{
	if (!t)
		return;
	SSL_free(t->ssl);
	SSL_CTX_free(t->ctx);
	close(t->fd);
	free(t);
}

const char *w_make_creds(const char *name, bool psk)
{
	const char *path = h_path(name);
	char cmd[2048];
	snprintf(cmd, sizeof(cmd), "scripts/tls-make-creds.sh %s'%s' >/dev/null",
		 psk ? "--psk " : "", path);
	h_assert(system(cmd) == 0, "%s failed (is openssl installed?)", cmd);
	return path;
}
