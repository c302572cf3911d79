/*
 * wire.h - playing a migration source by hand, for tests of a destination:
 * crafted streams built from docs/migration-stream.md (not from the VMM's
 * headers, so the document is what the tests hold the code to), and the
 * socket chores around them.  Every wait is bounded.
 */
#ifndef FERRY_TEST_WIRE_H
#define FERRY_TEST_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define W_MAGIC          "FERRYMIG"
#define W_VERSION        2u
#define W_ROLE_MAIN      1u
#define W_REC_HELLO      0x01u
#define W_REC_RAM_PAGES  0x10u
#define W_REC_ROUND_END  0x11u
#define W_REC_ACCEPT     0x81u
#define W_REC_REFUSE     0x82u
#define W_REC_ERROR      0x85u

struct w_buf {
	uint8_t *p;
	size_t len, cap;
};

/* CRC-32C as the framing uses it (crc 0 to start). */
uint32_t w_crc32c(uint32_t crc, const void *data, size_t len);
void w_put(struct w_buf *b, const void *data, size_t len);
void w_put_u32(struct w_buf *b, uint32_t v);
void w_put_u64(struct w_buf *b, uint64_t v);
/* Version 2 and later: magic | version | role main | a fixed 16-byte
 * session id; version 1: magic | version. */
void w_put_preamble(struct w_buf *b, uint32_t version);
/* The same with another role (version 2 and later). */
void w_put_preamble_role(struct w_buf *b, uint32_t version, uint32_t role);
/* type | length | payload | crc32c(type, length, payload) */
void w_put_record(struct w_buf *b, uint32_t type, const void *payload,
		  uint32_t len);
/* The same with the checksum XORed with @crc_xor (0: a good record). */
void w_put_record_x(struct w_buf *b, uint32_t type, const void *payload,
		    uint32_t len, uint32_t crc_xor);
void w_free(struct w_buf *b);

/* A HELLO that parses but describes no VM this ferry can build exactly
 * (a destination answers REFUSE, or on a host without KVM REFUSE because
 * it cannot open /dev/kvm): the preamble and HELLO of a plausible source. */
void w_put_plausible_hello(struct w_buf *b);

/* TCP to 127.0.0.1:port; fails the test if it cannot connect. */
int w_connect(int port);
/* Connect; -errno instead of failing. */
int w_try_connect(int port);
void w_send_all(int fd, const void *data, size_t len);
/* Exactly len bytes within timeout_s; false on EOF, error or timeout. */
bool w_recv_all(int fd, void *out, size_t len, double timeout_s);
/* One record, checksum checked; *payload malloc'd and NUL-terminated. */
bool w_recv_record(int fd, uint32_t *type, char **payload, uint32_t *len,
		   double timeout_s);
/* The same from any byte source: recv reads exactly len bytes from src
 * within timeout_s or says false (w_recv_all for a socket, TLS's own). */
typedef bool (*w_recv_fn)(void *src, void *out, size_t len, double timeout_s);
bool w_recv_record_via(w_recv_fn recv, void *src, uint32_t *type,
		       char **payload, uint32_t *len, double timeout_s);
/* Wait up to timeout_s for the peer to close (EOF or reset). */
bool w_wait_closed(int fd, double timeout_s);

/* ---- TLS (harness/wire_tls.c) -------------------------------------------
 * A source's side of a TLS migration connection as docs/migration-stream.md
 * describes it: TLS 1.3, X.509 from a tls-creds-x509 directory or a PSK
 * from a keys.psk file (its first line), then the server's one
 * confirmation byte (0x5a); the migration stream follows inside.  Built
 * on OpenSSL directly, not on ferry's code. */
struct w_tls;

/* Credentials for w_tls_connect: a directory (X.509) or a keys.psk file. */
struct w_tls_creds {
	const char *dir;
	const char *psk_file;
};

/*
 * w_tls_connect() - TCP to 127.0.0.1:port, then the TLS handshake and
 * the confirmation, within timeout_s.  NULL when any of it fails, with
 * why (OpenSSL's words) in err.
 */
struct w_tls *w_tls_connect(int port, const struct w_tls_creds *c,
			    double timeout_s, char *err, size_t errlen);
void w_tls_send_all(struct w_tls *t, const void *data, size_t len);
/* One record from inside TLS, checksum checked, as w_recv_record. */
bool w_tls_recv_record(struct w_tls *t, uint32_t *type, char **payload,
		       uint32_t *len, double timeout_s);
/* Wait up to timeout_s for the peer to close (EOF, alert or reset). */
bool w_tls_wait_closed(struct w_tls *t, double timeout_s);
/* "TLSv1.3", the cipher, for checks. */
const char *w_tls_version(struct w_tls *t);
void w_tls_close(struct w_tls *t);

/* Make credentials with scripts/tls-make-creds.sh: an X.509 directory
 * h_path(name) (its own CA), or with psk a keys.psk file of identity
 * "ferry" and a random key.  Returns the path. */
const char *w_make_creds(const char *name, bool psk);

#endif
