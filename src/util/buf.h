/*
 * buf.h - a growable byte buffer for building state records, and a bounded
 * reader (cursor) for parsing them.  A cursor never reads past its end: a
 * short record sets its sticky error instead, so loaders check once.
 */
#ifndef FERRY_BUF_H
#define FERRY_BUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct buf {
	uint8_t *data;
	size_t len, cap;
	bool oom;           /* sticky: an allocation failed */
};

void buf_init(struct buf *b);
void buf_free(struct buf *b);
void buf_reset(struct buf *b);
void buf_put(struct buf *b, const void *data, size_t len);
void buf_put_u8(struct buf *b, uint8_t v);
void buf_put_u16(struct buf *b, uint16_t v);
void buf_put_u32(struct buf *b, uint32_t v);
void buf_put_u64(struct buf *b, uint64_t v);
/* A length-prefixed (u32) string. */
void buf_put_str(struct buf *b, const char *s);

struct cursor {
	const uint8_t *p;
	size_t left;
	bool short_read;    /* sticky: a read went past the end */
};

void cursor_init(struct cursor *c, const void *data, size_t len);
bool cursor_get(struct cursor *c, void *out, size_t len);
uint8_t cursor_u8(struct cursor *c);
uint16_t cursor_u16(struct cursor *c);
uint32_t cursor_u32(struct cursor *c);
uint64_t cursor_u64(struct cursor *c);
/* Copies a length-prefixed string into out (NUL-terminated, max outlen). */
bool cursor_str(struct cursor *c, char *out, size_t outlen);
/* True when every byte was consumed and nothing was short. */
bool cursor_done(const struct cursor *c);

#endif
