/*
 * secure.h - TLS for migration connections: the process's credentials
 * (`ferry run --tls-creds DIR | --tls-psk FILE`), the source's side of a
 * connection, and what query-migrate says about it.
 *
 * With credentials set, every migration connection is TLS, whatever its
 * role (the preamble that names the role travels inside TLS): the source
 * opens them all with mig_secure_client(), the destination's listener
 * shakes hands on every connection it accepts before it reads a byte of
 * the migration protocol (incoming_listener.c).
 */
#ifndef FERRY_MIG_SECURE_H
#define FERRY_MIG_SECURE_H

#include <stdbool.h>

#include <jansson.h>

#include "io/tls.h"

struct channel;

/* The credentials of this process (owned by main; NULL = plain TCP).
 * Set once, before any migration starts. */
void mig_tls_set(struct tls_creds *c);
struct tls_creds *mig_tls_get(void);

/**
 * mig_secure_client() - make fd (connected, blocking, the caller keeps
 * and closes it) a migration channel: plain without credentials, else
 * TLS, shaken hands within timeout_ms.  host: the URI's host (a name or
 * an address; NULL or "" = this host, "localhost"), which the
 * destination's certificate must name.  Returns 0 with *out set (the
 * caller closes it before fd), or a negative errno with err saying why
 * (the peer refused our credentials, we refused its ...).
 */
int mig_secure_client(int fd, struct tls_creds *c, const char *host,
		      int timeout_ms, struct channel **out, char *err);

/* query-migrate's "tls" object: {"enabled": false} for a plain channel,
 * else enabled, version, cipher, auth ("x509"/"psk") and the peer's
 * identity.  A new reference. */
json_t *mig_tls_json(bool enabled, const struct tls_info *info);

#endif
