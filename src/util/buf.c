#include "util/buf.h"

#include <stdlib.h>
#include <string.h>

void buf_init(struct buf *b) { memset(b, 0, sizeof(*b)); }

void buf_free(struct buf *b)
{
	free(b->data);
	buf_init(b);
}

void buf_reset(struct buf *b) { b->len = 0; }

void buf_put(struct buf *b, const void *data, size_t len)
{
	if (b->oom)
		return;
	if (b->len + len > b->cap) {
		size_t cap = b->cap ? b->cap : 256;
		while (cap < b->len + len)
			cap *= 2;
		uint8_t *p = realloc(b->data, cap);
		if (!p) {
			b->oom = true;
			return;
		}
		b->data = p;
		b->cap = cap;
	}
	if (len)
		memcpy(b->data + b->len, data, len);
	b->len += len;
}

/* The wire and file formats are little-endian, like the host (x86-64). */
void buf_put_u8(struct buf *b, uint8_t v) { buf_put(b, &v, 1); }
void buf_put_u16(struct buf *b, uint16_t v) { buf_put(b, &v, 2); }
void buf_put_u32(struct buf *b, uint32_t v) { buf_put(b, &v, 4); }
void buf_put_u64(struct buf *b, uint64_t v) { buf_put(b, &v, 8); }

void buf_put_str(struct buf *b, const char *s)
{
	size_t n = s ? strlen(s) : 0;
	buf_put_u32(b, (uint32_t)n);
	buf_put(b, s, n);
}

void cursor_init(struct cursor *c, const void *data, size_t len)
{
	c->p = data;
	c->left = len;
	c->short_read = false;
}

bool cursor_get(struct cursor *c, void *out, size_t len)
{
	if (c->short_read || len > c->left) {
		c->short_read = true;
		memset(out, 0, len);
		return false;
	}
	memcpy(out, c->p, len);
	c->p += len;
	c->left -= len;
	return true;
}

uint8_t cursor_u8(struct cursor *c) { uint8_t v; cursor_get(c, &v, 1); return v; }
uint16_t cursor_u16(struct cursor *c) { uint16_t v; cursor_get(c, &v, 2); return v; }
uint32_t cursor_u32(struct cursor *c) { uint32_t v; cursor_get(c, &v, 4); return v; }
uint64_t cursor_u64(struct cursor *c) { uint64_t v; cursor_get(c, &v, 8); return v; }

bool cursor_str(struct cursor *c, char *out, size_t outlen)
{
	uint32_t n = cursor_u32(c);
	if (c->short_read || n >= outlen || n > c->left) {
		c->short_read = true;
		if (outlen)
			out[0] = '\0';
		return false;
	}
	cursor_get(c, out, n);
	out[n] = '\0';
	return true;
}

bool cursor_done(const struct cursor *c)
{
	return !c->short_read && c->left == 0;
}
