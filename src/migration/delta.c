/*
 * Page deltas (delta.h).  The encoder compares eight bytes at a time
 * (32 in its inner loop) and finds the exact byte inside a word from the
 * XOR of the two words: on a little-endian machine the lowest differing
 * byte is the lowest set bit's byte.  The decoder checks every length and
 * offset against the page and the delta before it writes anything.
 */
#include "migration/delta.h"
#include "util/log.h"

#include <errno.h>
#include <stdbool.h>
#include <string.h>

#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "delta.c finds bytes inside words as a little-endian machine orders them"
#endif

#define PAGE DELTA_PAGE
#define ONES  0x0101010101010101ULL
#define HIGHS 0x8080808080808080ULL

static inline uint64_t ld(const uint8_t *p)
{
	uint64_t v;
	memcpy(&v, p, 8);
	return v;
}

/* The first offset >= i where a and b differ, or PAGE. */
static size_t next_diff(const uint8_t *a, const uint8_t *b, size_t i)
{
	if (i >= PAGE)
		return PAGE;
	size_t w = i & ~(size_t)7;
	/* Bytes of the first word below i do not count. */
	uint64_t x = (ld(a + w) ^ ld(b + w)) & (~0ULL << ((i & 7) * 8));
	if (x)
		return w + (size_t)__builtin_ctzll(x) / 8;
	for (w += 8; w < PAGE && (w & 31); w += 8) {
		x = ld(a + w) ^ ld(b + w);
		if (x)
			return w + (size_t)__builtin_ctzll(x) / 8;
	}
	/* The common case of a mostly unchanged page: 32 bytes a step. */
	for (; w < PAGE; w += 32) {
		uint64_t x0 = ld(a + w) ^ ld(b + w);
		uint64_t x1 = ld(a + w + 8) ^ ld(b + w + 8);
		uint64_t x2 = ld(a + w + 16) ^ ld(b + w + 16);
		uint64_t x3 = ld(a + w + 24) ^ ld(b + w + 24);
		if (!(x0 | x1 | x2 | x3))
			continue;
		if (x0)
			return w + (size_t)__builtin_ctzll(x0) / 8;
		if (x1)
			return w + 8 + (size_t)__builtin_ctzll(x1) / 8;
		if (x2)
			return w + 16 + (size_t)__builtin_ctzll(x2) / 8;
		return w + 24 + (size_t)__builtin_ctzll(x3) / 8;
	}
	return PAGE;
}

/*
 * The first offset >= i where a and b are equal, or PAGE: the first zero
 * byte of a ^ b.  (x - 0x01..) & ~x & 0x80.. flags every zero byte; bytes
 * above the first one may be flagged wrongly by the borrow, the lowest
 * flag never is, and only the lowest is used.
 */
static size_t next_same(const uint8_t *a, const uint8_t *b, size_t i)
{
	if (i >= PAGE)
		return PAGE;
	size_t w = i & ~(size_t)7;
	/* Bytes of the first word below i count as different. */
	uint64_t below = (i & 7) ? (1ULL << ((i & 7) * 8)) - 1 : 0;
	for (; w < PAGE; w += 8) {
		uint64_t x = (ld(a + w) ^ ld(b + w)) | below;
		uint64_t z = (x - ONES) & ~x & HIGHS;
		below = 0;
		if (z)
			return w + (size_t)__builtin_ctzll(z) / 8;
	}
	return PAGE;
}

/* A short run's bytes without a call: most runs are a few bytes. */
static inline __attribute__((always_inline)) void copy_run(uint8_t *dst,
							   const uint8_t *src, size_t n)
{
	switch (n) {
	case 1: dst[0] = src[0]; return;
	case 2: memcpy(dst, src, 2); return;
	case 3: memcpy(dst, src, 2); dst[2] = src[2]; return;
	case 4: memcpy(dst, src, 4); return;
	case 5: memcpy(dst, src, 4); dst[4] = src[4]; return;
	case 6: memcpy(dst, src, 4); memcpy(dst + 4, src + 4, 2); return;
	case 7: memcpy(dst, src, 4); memcpy(dst + 3, src + 3, 4); return;
	case 8: memcpy(dst, src, 8); return;
	default: memcpy(dst, src, n); return;
	}
}

static inline size_t vlen(size_t v)
{
	return v < 128 ? 1 : 2;
}

static inline size_t vput(uint8_t *o, size_t v)
{
	if (v < 128) {
		o[0] = (uint8_t)v;
		return 1;
	}
	o[0] = (uint8_t)((v & 127) | 128);
	o[1] = (uint8_t)(v >> 7);
	return 2;
}

size_t delta_encode(const uint8_t *old, const uint8_t *new, uint8_t *out,
		    size_t limit)
{
	size_t o = 0, done = 0; /* done: the end of the last run written */
	size_t i = next_diff(old, new, 0);

	while (i < PAGE) {
		size_t start = i, end;
		/* Extend the run over gaps too short to pay for a header. */
		for (;;) {
			end = next_same(old, new, i);
			size_t nd = next_diff(old, new, end);
			if (nd >= PAGE || nd - end > DELTA_MERGE_GAP) {
				i = nd;
				break;
			}
			i = nd;
		}
		size_t skip = start - done, len = end - start;
		size_t need = vlen(skip) + vlen(len) + len;
		if (o + need > limit)
			return DELTA_OVERFLOW;
		o += vput(out + o, skip);
		o += vput(out + o, len);
		copy_run(out + o, new + start, len);
		o += len;
		done = end;
	}
	return o;
}

/* One varint at d[*off]; what names it in a message. */
static int vget(const uint8_t *d, size_t len, size_t *off, size_t *v,
		unsigned run, const char *what, char *err)
{
	if (*off >= len)
		return err_set(err, -EPROTO, "run %u: the delta ends before its %s length",
			       run, what);
	uint8_t b0 = d[(*off)++];
	if (!(b0 & 0x80)) {
		*v = b0;
		return 0;
	}
	if (*off >= len)
		return err_set(err, -EPROTO,
			       "run %u: its %s length is cut off by the end of the delta",
			       run, what);
	uint8_t b1 = d[(*off)++];
	if (b1 & 0x80)
		return err_set(err, -EPROTO, "run %u: its %s length is longer than two bytes",
			       run, what);
	if (!b1)
		return err_set(err, -EPROTO, "run %u: its %s length is not in shortest form",
			       run, what);
	*v = (size_t)(b0 & 0x7f) | (size_t)b1 << 7;
	return 0;
}

int delta_check(const uint8_t *d, size_t len, char *err)
{
	size_t off = 0, pos = 0, skip, n;
	unsigned run = 0;

	while (off < len) {
		run++;
		if (vget(d, len, &off, &skip, run, "unchanged", err) ||
		    vget(d, len, &off, &n, run, "changed", err))
			return -EPROTO;
		if (!n)
			return err_set(err, -EPROTO, "run %u changes no bytes", run);
		if (!skip && run > 1)
			return err_set(err, -EPROTO,
				       "run %u follows run %u with no unchanged byte between",
				       run, run - 1);
		if (skip > PAGE - pos || n > PAGE - pos - skip)
			return err_set(err, -EPROTO,
				       "run %u changes bytes %zu..%zu, past the page's end (%u)",
				       run, pos + skip, pos + skip + n - 1, PAGE);
		if (n > len - off)
			return err_set(err, -EPROTO,
				       "run %u announces %zu changed bytes, the delta holds %zu more",
				       run, n, len - off);
		off += n;
		pos += skip + n;
	}
	return 0;
}

void delta_apply(uint8_t *page, const uint8_t *d, size_t len)
{
	size_t off = 0, pos = 0;

	while (off < len) {
		size_t v[2];
		for (int k = 0; k < 2; k++) {
			uint8_t b0 = d[off++];
			v[k] = b0 & 0x7f;
			if (b0 & 0x80)
				v[k] |= (size_t)d[off++] << 7;
		}
		pos += v[0];
		copy_run(page + pos, d + off, v[1]);
		off += v[1];
		pos += v[1];
	}
}

int delta_decode(uint8_t *page, const uint8_t *d, size_t len, char *err)
{
	int r = delta_check(d, len, err);
	if (!r)
		delta_apply(page, d, len);
	return r;
}
