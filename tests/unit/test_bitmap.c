/*
 * util/bitmap.h: the word-at-a-time range operations against a bit-by-bit
 * model, over ranges that start, end and lie inside words and cross them.
 */
#include <criterion/criterion.h>

#include <stdint.h>
#include <string.h>

#include "util/bitmap.h"

#define BITS 320

static uint64_t seen[BITS];
static unsigned nseen;

static void note(void *opaque, uint64_t i)
{
	(void)opaque;
	seen[nseen++] = i;
}

static bool get(const uint64_t *b, uint64_t i)
{
	return b[i / 64] >> (i % 64) & 1;
}

Test(bitmap, ranges_match_a_bit_by_bit_model)
{
	static const uint64_t starts[] = { 0, 1, 63, 64, 65, 100, 127, 128, 200 };
	static const uint64_t lens[] = { 0, 1, 2, 63, 64, 65, 100, 119 };
	uint64_t b[BITS / 64], model[BITS / 64];

	for (unsigned s = 0; s < sizeof(starts) / sizeof(starts[0]); s++)
		for (unsigned l = 0; l < sizeof(lens) / sizeof(lens[0]); l++) {
			uint64_t first = starts[s], n = lens[l];
			/* a fixed pattern, so some bits are set already */
			for (unsigned w = 0; w < BITS / 64; w++)
				b[w] = model[w] = 0x9249249249249249ULL >> w;
			uint64_t want = 0;
			for (uint64_t i = first; i < first + n; i++) {
				want += !get(model, i);
				model[i / 64] |= 1ULL << (i % 64);
			}
			cr_assert_eq(bitmap_set_range(b, first, n), want, "set %lu+%lu",
				     (unsigned long)first, (unsigned long)n);
			cr_assert_eq(memcmp(b, model, sizeof(b)), 0);

			for (unsigned w = 0; w < BITS / 64; w++)
				b[w] = model[w] = 0x9249249249249249ULL >> w;
			want = 0;
			uint64_t order[BITS];
			unsigned norder = 0;
			for (uint64_t i = first; i < first + n; i++) {
				if (get(model, i)) {
					want++;
					order[norder++] = i;
				}
				model[i / 64] &= ~(1ULL << (i % 64));
			}
			nseen = 0;
			cr_assert_eq(bitmap_clear_range(b, first, n, note, NULL), want,
				     "clear %lu+%lu", (unsigned long)first, (unsigned long)n);
			cr_assert_eq(memcmp(b, model, sizeof(b)), 0);
			cr_assert_eq(nseen, norder);
			cr_assert_eq(memcmp(seen, order, norder * sizeof(order[0])), 0);
		}
}

/* bitmap_take_run walks a word's runs of set bits, lowest first, each
 * once, as a bit-by-bit scan finds them. */
Test(bitmap, runs_of_a_word_match_a_bit_by_bit_scan)
{
	static const uint64_t words[] = {
		0, 1, 0x8000000000000000ULL, ~0ULL, ~0ULL << 1, ~0ULL >> 1,
		0x9249249249249249ULL, 0x00ff00ff0f0f3333ULL, 0xf00000000000000fULL,
	};
	for (unsigned i = 0; i < sizeof(words) / sizeof(words[0]); i++) {
		uint64_t bits = words[i];
		unsigned at = 0, lo, len;
		while ((len = bitmap_take_run(&bits, &lo))) {
			/* the model: the next set bit from at, and how far it goes */
			while (at < 64 && !(words[i] >> at & 1))
				at++;
			unsigned end = at;
			while (end < 64 && (words[i] >> end & 1))
				end++;
			cr_assert_eq(lo, at, "word %u: run at %u, not %u", i, lo, at);
			cr_assert_eq(len, end - at, "word %u: run of %u, not %u", i, len, end - at);
			at = end;
		}
		while (at < 64 && !(words[i] >> at & 1))
			at++;
		cr_assert_eq(at, 64, "word %u: a run left out at bit %u", i, at);
		cr_assert_eq(bits, 0);
	}
}
