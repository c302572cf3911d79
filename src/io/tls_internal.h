/* tls_internal.h - what tls_creds.c and channel_tls.c share. */
#ifndef FERRY_IO_TLS_INTERNAL_H
#define FERRY_IO_TLS_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>

#include <openssl/ssl.h>

#include "io/tls.h"

struct tls_psk {
	char identity[129];
	unsigned char key[64];
	size_t keylen;
};

struct tls_creds {
	enum tls_auth auth;
	char source[4096];       /* the directory or the PSK file */
	SSL_CTX *server;         /* the destination's side */
	SSL_CTX *client;         /* the source's side */
	struct tls_psk *psk;     /* PSK: the file's lines; [0] is offered */
	size_t npsk;
};

/* The last OpenSSL error's reason in buf; clears the error queue. */
const char *tls_ossl_reason(char *buf, size_t size);
/* The server's PSK callback met this identity (known: in the file). */
void tls_note_identity(SSL *ssl, const unsigned char *id, size_t len, bool known);

#endif
