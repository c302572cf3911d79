/*
 * bitmap.h - word-at-a-time operations on bitmaps of uint64_t words
 * (bit i is bit i % 64 of word i / 64): page bitmaps that a big guest's
 * switchover sets over all of RAM, inside the pause.
 */
#ifndef FERRY_UTIL_BITMAP_H
#define FERRY_UTIL_BITMAP_H

#include <stdint.h>

/* The bits of [first, first+n) in the word holding bit first, as a mask
 * of that word; *k: how many they are (n > 0).  Walk a range with it,
 * first += *k and n -= *k each step. */
static inline uint64_t bitmap_word_mask(uint64_t first, uint64_t n, unsigned *k)
{
	unsigned off = (unsigned)(first % 64);
	*k = n < 64 - off ? (unsigned)n : 64 - off;
	return (*k == 64 ? ~0ULL : ((1ULL << *k) - 1)) << off;
}

/* Take the lowest run of set bits out of *bits: *lo its first bit, its
 * length returned (0 when *bits has none).  Walks a word's runs. */
static inline unsigned bitmap_take_run(uint64_t *bits, unsigned *lo)
{
	if (!*bits)
		return 0;
	unsigned b = (unsigned)__builtin_ctzll(*bits), k;
	/* The shift brings in zeros: the run ends by bit 64. */
	uint64_t clear = ~(*bits >> b);
	unsigned len = clear ? (unsigned)__builtin_ctzll(clear) : 64;
	*bits &= ~bitmap_word_mask(b, len, &k);
	*lo = b;
	return len;
}

/* Set bits [first, first+n) of b; returns how many were clear. */
static inline uint64_t bitmap_set_range(uint64_t *b, uint64_t first, uint64_t n)
{
	uint64_t newly = 0;

	while (n) {
		unsigned k;
		uint64_t mask = bitmap_word_mask(first, n, &k);
		newly += (uint64_t)__builtin_popcountll(mask & ~b[first / 64]);
		b[first / 64] |= mask;
		first += k;
		n -= k;
	}
	return newly;
}

/* Clear bits [first, first+n) of b; returns how many were set.  each,
 * if not NULL, is called with the index of every bit that was set
 * (in order) before it is cleared. */
static inline uint64_t bitmap_clear_range(uint64_t *b, uint64_t first, uint64_t n,
					  void (*each)(void *opaque, uint64_t i),
					  void *opaque)
{
	uint64_t was = 0;

	while (n) {
		unsigned k;
		uint64_t mask = bitmap_word_mask(first, n, &k);
		uint64_t set = b[first / 64] & mask;
		was += (uint64_t)__builtin_popcountll(set);
		for (uint64_t bits = set; each && bits; bits &= bits - 1)
			each(opaque, first / 64 * 64 + (uint64_t)__builtin_ctzll(bits));
		b[first / 64] &= ~mask;
		first += k;
		n -= k;
	}
	return was;
}

#endif
