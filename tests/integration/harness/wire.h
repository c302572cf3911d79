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
/* Version 2 and later: magic | version | role main | a fixed 16-byte
 * session id; version 1: magic | version. */
void w_put_preamble(struct w_buf *b, uint32_t version);
/* type | length | payload | crc32c(type, length, payload) */
void w_put_record(struct w_buf *b, uint32_t type, const void *payload,
		  uint32_t len);
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
/* Wait up to timeout_s for the peer to close (EOF or reset). */
bool w_wait_closed(int fd, double timeout_s);

#endif
