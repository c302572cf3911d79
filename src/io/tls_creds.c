/*
 * TLS credentials: QEMU's tls-creds-x509 directory or keys.psk file made
 * into two OpenSSL contexts (server: the destination; client: the source).
 * See tls.h.
 *
 * PSK uses OpenSSL's TLS 1.3 session callbacks (psk_use_session on the
 * client, psk_find_session on the server), not the TLS 1.2-style
 * psk_client/server callbacks: those are kept only for compatibility,
 * force a SHA-256 suite by a fixed rule, and give the server no way to
 * see the identity it did not know.  The PSK is bound to
 * TLS_AES_128_GCM_SHA256 (its hash must match the suite's), so PSK
 * connections offer only the SHA-256 suites.
 */
#include "io/tls.h"
#include "io/tls_internal.h"
#include "util/log.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>

#define PSK_MIN_BYTES 16
#define PSK_MAX_BYTES 64
#define PSK_SUITES    "TLS_AES_128_GCM_SHA256:TLS_CHACHA20_POLY1305_SHA256"

const char *tls_auth_name(enum tls_auth a)
{
	return a == TLS_AUTH_PSK ? "psk" : "x509";
}

enum tls_auth tls_creds_auth(const struct tls_creds *c)
{
	return c->auth;
}

const char *tls_creds_source(const struct tls_creds *c)
{
	return c->source;
}

/* The last OpenSSL error in words, and the queue cleared. */
const char *tls_ossl_reason(char *buf, size_t size)
{
	unsigned long e = ERR_peek_last_error();
	const char *r = e ? ERR_reason_error_string(e) : NULL;
	snprintf(buf, size, "%s", r ? r : "unknown TLS library error");
	ERR_clear_error();
	return buf;
}

void tls_creds_free(struct tls_creds *c)
{
	if (!c)
		return;
	SSL_CTX_free(c->server);
	SSL_CTX_free(c->client);
	if (c->psk)
		OPENSSL_cleanse(c->psk, c->npsk * sizeof(*c->psk));
	free(c->psk);
	free(c);
}

/* A context of either side: TLS 1.3 only, no session tickets (nothing
 * resumes, and a ticket would be a record nobody reads). */
static SSL_CTX *ctx_new(bool server)
{
	SSL_CTX *ctx = SSL_CTX_new(server ? TLS_server_method() : TLS_client_method());
	if (!ctx)
		return NULL;
	SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION);
	SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION);
	SSL_CTX_set_num_tickets(ctx, 0);
	SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
	SSL_CTX_set_mode(ctx, SSL_MODE_AUTO_RETRY);
	/* Read whole socket buffers, not a record header and then its body:
	 * half the system calls on the receiving side (measured with
	 * bench/tls_throughput.c).  What is read ahead shows in the pending
	 * op (SSL_pending counts only a decrypted record, so the channel
	 * also asks SSL_has_pending). */
	SSL_CTX_set_read_ahead(ctx, 1);
	return ctx;
}

/* ---- X.509 ------------------------------------------------------------------ */

static int check_file(const char *dir, const char *name, char *path, size_t size,
		      char *err)
{
	snprintf(path, size, "%s/%s", dir, name);
	if (access(path, R_OK) < 0)
		return err_set(err, -errno, "TLS credentials: %s: %s%s", path,
			       strerror(errno),
			       errno == ENOENT ? " (a tls-creds-x509 directory holds ca-cert.pem, "
						 "server-cert.pem, server-key.pem, client-cert.pem, "
						 "client-key.pem)" : "");
	return 0;
}

/* Does cert_file verify against the CA?  Checked at load so that a wrong
 * file is named now, not as a refused handshake later. */
static int verify_against_ca(X509_STORE *store, const char *cert_file, char *err)
{
	FILE *f = fopen(cert_file, "r");
	X509 *x = f ? PEM_read_X509(f, NULL, NULL, NULL) : NULL;
	X509_STORE_CTX *sc = X509_STORE_CTX_new();
	int r = 0;

	if (f)
		fclose(f);
	if (!x) {
		char why[128];
		r = err_set(err, -EINVAL, "TLS credentials: %s is not a PEM certificate (%s)",
			    cert_file, tls_ossl_reason(why, sizeof(why)));
		goto out;
	}
	if (!sc || !X509_STORE_CTX_init(sc, store, x, NULL)) {
		r = err_set(err, -ENOMEM, "TLS credentials: out of memory");
		goto out;
	}
	if (X509_verify_cert(sc) != 1)
		r = err_set(err, -EINVAL, "TLS credentials: %s does not verify against ca-cert.pem: %s",
			    cert_file,
			    X509_verify_cert_error_string(X509_STORE_CTX_get_error(sc)));
out:
	ERR_clear_error();
	X509_STORE_CTX_free(sc);
	X509_free(x);
	return r;
}

static int x509_side(SSL_CTX *ctx, const char *dir, const char *who, const char *ca,
		     char *err)
{
	char cert[4096], key[4096], name[32], why[128];
	int r;

	snprintf(name, sizeof(name), "%s-cert.pem", who);
	if ((r = check_file(dir, name, cert, sizeof(cert), err)))
		return r;
	snprintf(name, sizeof(name), "%s-key.pem", who);
	if ((r = check_file(dir, name, key, sizeof(key), err)))
		return r;
	if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1)
		return err_set(err, -EINVAL, "TLS credentials: %s: %s", cert,
			       tls_ossl_reason(why, sizeof(why)));
	if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1)
		return err_set(err, -EINVAL, "TLS credentials: %s: %s", key,
			       tls_ossl_reason(why, sizeof(why)));
	if (SSL_CTX_check_private_key(ctx) != 1)
		return err_set(err, -EINVAL, "TLS credentials: %s is not the key of %s",
			       key, cert);
	if (SSL_CTX_load_verify_locations(ctx, ca, NULL) != 1)
		return err_set(err, -EINVAL, "TLS credentials: %s: %s", ca,
			       tls_ossl_reason(why, sizeof(why)));
	/* Both ways: a destination takes only sources whose certificate
	 * this CA signed, and a source talks only to such destinations. */
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT,
			   NULL);
	return verify_against_ca(SSL_CTX_get_cert_store(ctx), cert, err);
}

int tls_creds_load_x509(struct tls_creds **out, const char *dir, char *err)
{
	struct tls_creds *c = calloc(1, sizeof(*c));
	char ca[4096];
	int r;

	*out = NULL;
	if (!c)
		return err_set(err, -ENOMEM, "out of memory");
	c->auth = TLS_AUTH_X509;
	snprintf(c->source, sizeof(c->source), "%s", dir);
	r = check_file(dir, "ca-cert.pem", ca, sizeof(ca), err);
	if (r)
		goto fail;
	c->server = ctx_new(true);
	c->client = ctx_new(false);
	if (!c->server || !c->client) {
		r = err_set(err, -ENOMEM, "TLS: cannot create a context");
		goto fail;
	}
	r = x509_side(c->server, dir, "server", ca, err);
	if (!r)
		r = x509_side(c->client, dir, "client", ca, err);
	if (r)
		goto fail;
	*out = c;
	return 0;
fail:
	ERR_clear_error();
	tls_creds_free(c);
	return r;
}

/* ---- PSK -------------------------------------------------------------------- */

static int hexval(int ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	ch = tolower(ch);
	return ch >= 'a' && ch <= 'f' ? ch - 'a' + 10 : -1;
}

static int parse_psk_line(struct tls_psk *k, const char *line, const char *file,
			  unsigned lineno, char *err)
{
	const char *colon = strchr(line, ':');
	if (!colon || colon == line)
		return err_set(err, -EINVAL, "TLS PSK file %s, line %u: not IDENTITY:HEXKEY",
			       file, lineno);
	size_t idlen = (size_t)(colon - line);
	if (idlen >= sizeof(k->identity))
		return err_set(err, -EINVAL, "TLS PSK file %s, line %u: identity longer than %zu",
			       file, lineno, sizeof(k->identity) - 1);
	memcpy(k->identity, line, idlen);
	k->identity[idlen] = '\0';
	const char *hex = colon + 1;
	size_t n = strlen(hex);
	if (n % 2 || n / 2 < PSK_MIN_BYTES || n / 2 > PSK_MAX_BYTES)
		return err_set(err, -EINVAL,
			       "TLS PSK file %s, line %u: the key must be %d to %d bytes in hex "
			       "(as `openssl rand -hex 32` prints)",
			       file, lineno, PSK_MIN_BYTES, PSK_MAX_BYTES);
	for (size_t i = 0; i < n / 2; i++) {
		int hi = hexval((unsigned char)hex[2 * i]);
		int lo = hexval((unsigned char)hex[2 * i + 1]);
		if (hi < 0 || lo < 0)
			return err_set(err, -EINVAL, "TLS PSK file %s, line %u: the key is not hex",
				       file, lineno);
		k->key[i] = (unsigned char)(hi << 4 | lo);
	}
	k->keylen = n / 2;
	return 0;
}

static int read_psk_file(struct tls_creds *c, const char *file, char *err)
{
	FILE *f = fopen(file, "r");
	char line[512];
	unsigned lineno = 0;
	int r = 0;

	if (!f)
		return err_set(err, -errno, "TLS PSK file %s: %s", file, strerror(errno));
	while (fgets(line, sizeof(line), f)) {
		lineno++;
		size_t n = strlen(line);
		while (n && (line[n - 1] == '\n' || line[n - 1] == '\r' ||
			     line[n - 1] == ' ' || line[n - 1] == '\t'))
			line[--n] = '\0';
		if (!n)
			continue;
		struct tls_psk *p = realloc(c->psk, (c->npsk + 1) * sizeof(*p));
		if (!p) {
			r = err_set(err, -ENOMEM, "out of memory");
			break;
		}
		c->psk = p;
		memset(&p[c->npsk], 0, sizeof(*p));
		r = parse_psk_line(&p[c->npsk], line, file, lineno, err);
		c->npsk++;
		if (r)
			break;
	}
	OPENSSL_cleanse(line, sizeof(line));
	fclose(f);
	if (!r && !c->npsk)
		r = err_set(err, -EINVAL, "TLS PSK file %s holds no IDENTITY:HEXKEY line", file);
	return r;
}

/* A session that carries the key: what TLS 1.3 external PSKs are in
 * OpenSSL.  The cipher's hash (SHA-256) is the PSK's hash. */
static SSL_SESSION *psk_session(SSL *ssl, const struct tls_psk *k)
{
	static const unsigned char aes128gcmsha256[] = { 0x13, 0x01 };
	const SSL_CIPHER *cipher = SSL_CIPHER_find(ssl, aes128gcmsha256);
	SSL_SESSION *s = cipher ? SSL_SESSION_new() : NULL;

	if (!s)
		return NULL;
	if (!SSL_SESSION_set1_master_key(s, k->key, k->keylen) ||
	    !SSL_SESSION_set_cipher(s, cipher) ||
	    !SSL_SESSION_set_protocol_version(s, TLS1_3_VERSION)) {
		SSL_SESSION_free(s);
		return NULL;
	}
	return s;
}

static int psk_use(SSL *ssl, const EVP_MD *md, const unsigned char **id,
		   size_t *idlen, SSL_SESSION **sess)
{
	struct tls_creds *c = SSL_CTX_get_app_data(SSL_get_SSL_CTX(ssl));
	const struct tls_psk *k = &c->psk[0];

	/* Called again after a HelloRetryRequest with the suite's hash: a
	 * suite of another hash cannot use this key. */
	if (md && md != EVP_sha256()) {
		*sess = NULL;
		return 1;
	}
	*sess = psk_session(ssl, k);
	if (!*sess)
		return 0;
	*id = (const unsigned char *)k->identity;
	*idlen = strlen(k->identity);
	return 1;
}

static int psk_find(SSL *ssl, const unsigned char *id, size_t idlen,
		    SSL_SESSION **sess)
{
	struct tls_creds *c = SSL_CTX_get_app_data(SSL_get_SSL_CTX(ssl));

	*sess = NULL;
	for (size_t i = 0; i < c->npsk; i++)
		if (strlen(c->psk[i].identity) == idlen &&
		    !memcmp(c->psk[i].identity, id, idlen)) {
			tls_note_identity(ssl, id, idlen, true);
			*sess = psk_session(ssl, &c->psk[i]);
			return *sess ? 1 : 0;
		}
	/* Unknown: no PSK (the handshake then fails for want of any other
	 * way in); say which identity it was. */
	tls_note_identity(ssl, id, idlen, false);
	return 1;
}

int tls_creds_load_psk(struct tls_creds **out, const char *file, char *err)
{
	struct tls_creds *c = calloc(1, sizeof(*c));
	int r;

	*out = NULL;
	if (!c)
		return err_set(err, -ENOMEM, "out of memory");
	c->auth = TLS_AUTH_PSK;
	snprintf(c->source, sizeof(c->source), "%s", file);
	r = read_psk_file(c, file, err);
	if (r)
		goto fail;
	c->server = ctx_new(true);
	c->client = ctx_new(false);
	if (!c->server || !c->client ||
	    SSL_CTX_set_ciphersuites(c->server, PSK_SUITES) != 1 ||
	    SSL_CTX_set_ciphersuites(c->client, PSK_SUITES) != 1) {
		r = err_set(err, -ENOMEM, "TLS: cannot create a context");
		goto fail;
	}
	SSL_CTX_set_app_data(c->server, c);
	SSL_CTX_set_app_data(c->client, c);
	SSL_CTX_set_psk_find_session_callback(c->server, psk_find);
	SSL_CTX_set_psk_use_session_callback(c->client, psk_use);
	/* With an empty trust store: a server that answers with a
	 * certificate instead of taking the key is refused. */
	SSL_CTX_set_verify(c->client, SSL_VERIFY_PEER, NULL);
	*out = c;
	return 0;
fail:
	ERR_clear_error();
	tls_creds_free(c);
	return r;
}
