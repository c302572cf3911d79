/*
 * Page deltas (migration/delta.h) and the source's page cache
 * (migration/delta_cache.h): round trips on every shape of change, the
 * size limit, every kind of malformed delta refused with its reason, and
 * nothing ever written outside the page (guard pages around it fault).
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "migration/delta.h"
#include "migration/delta_cache.h"
#include "util/log.h"

#define PAGE 4096u

static uint64_t rng = 0x9e3779b97f4a7c15ULL;

static uint32_t rnd(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return (uint32_t)(rng >> 16);
}

/* A page between two inaccessible ones: a write past either end faults. */
static uint8_t *guarded_page(void)
{
	uint8_t *m = mmap(NULL, 3 * PAGE, PROT_READ | PROT_WRITE,
			  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	cr_assert_neq(m, MAP_FAILED);
	cr_assert_eq(mprotect(m, PAGE, PROT_NONE), 0);
	cr_assert_eq(mprotect(m + 2 * PAGE, PAGE, PROT_NONE), 0);
	return m + PAGE;
}

static void guarded_free(uint8_t *p)
{
	munmap(p - PAGE, 3 * PAGE);
}

static void random_page(uint8_t *p)
{
	for (unsigned i = 0; i < PAGE; i++)
		p[i] = (uint8_t)rnd();
}

/* Encode old -> new, decode into a guarded copy of old, compare. */
static size_t roundtrip(const uint8_t *old, const uint8_t *new, size_t limit)
{
	uint8_t out[PAGE + 64];
	char err[ERR_MAX] = "";
	size_t n = delta_encode(old, new, out, limit);
	if (n == DELTA_OVERFLOW)
		return n;
	cr_assert_leq(n, limit);
	uint8_t *dst = guarded_page();
	memcpy(dst, old, PAGE);
	cr_assert_eq(delta_decode(dst, out, n, err), 0, "own delta refused: %s", err);
	cr_assert_eq(memcmp(dst, new, PAGE), 0, "the delta did not rebuild the page");
	guarded_free(dst);
	return n;
}

Test(delta, equal_pages_give_an_empty_delta)
{
	uint8_t a[PAGE];
	random_page(a);
	cr_assert_eq(roundtrip(a, a, PAGE), 0);
}

Test(delta, one_byte_anywhere)
{
	uint8_t a[PAGE], b[PAGE];
	random_page(a);
	/* Every offset, so word and 32-byte boundaries are all crossed. */
	for (unsigned off = 0; off < PAGE; off++) {
		memcpy(b, a, PAGE);
		b[off] ^= 0x5a;
		size_t n = roundtrip(a, b, PAGE);
		cr_assert_eq(n, (off < 128 ? 1u : 2u) + 1 + 1, "offset %u: %zu bytes", off, n);
	}
}

Test(delta, sizes_of_typical_changes)
{
	uint8_t a[PAGE], b[PAGE];
	random_page(a);
	/* A u64 counter incremented: one run of the bytes that changed. */
	memcpy(b, a, PAGE);
	uint64_t v;
	memcpy(&v, b + 512, 8);
	v += 1;
	memcpy(b + 512, &v, 8);
	cr_assert_leq(roundtrip(a, b, PAGE), 12);
	/* 16 bytes in one stretch: 16 plus a 3-4 byte header. */
	memcpy(b, a, PAGE);
	for (unsigned i = 0; i < 16; i++)
		b[1000 + i] = (uint8_t)~a[1000 + i];
	cr_assert_eq(roundtrip(a, b, PAGE), 16 + 2 + 1);
	/* Gaps of up to DELTA_MERGE_GAP are bridged: one run. */
	memcpy(b, a, PAGE);
	b[10] ^= 1;
	b[13] ^= 1; /* gap of 2 */
	cr_assert_eq(roundtrip(a, b, PAGE), 1 + 1 + 4);
	b[17] ^= 1; /* gap of 3: a run of its own */
	cr_assert_eq(roundtrip(a, b, PAGE), 1 + 1 + 4 + 1 + 1 + 1);
	/* The last byte of the page. */
	memcpy(b, a, PAGE);
	b[PAGE - 1] ^= 0x80;
	cr_assert_eq(roundtrip(a, b, PAGE), 2 + 1 + 1);
}

Test(delta, random_sparse_and_dense_changes)
{
	uint8_t a[PAGE], b[PAGE];
	for (int iter = 0; iter < 2000; iter++) {
		random_page(a);
		memcpy(b, a, PAGE);
		unsigned changes = 1u << (rnd() % 13); /* 1 .. 4096 */
		for (unsigned k = 0; k < changes; k++) {
			unsigned off = rnd() % PAGE, len = 1 + rnd() % 8;
			for (unsigned j = off; j < off + len && j < PAGE; j++)
				b[j] = (uint8_t)rnd();
		}
		size_t limit = iter % 3 ? PAGE : 1 + rnd() % PAGE;
		size_t n = roundtrip(a, b, limit);
		if (n == DELTA_OVERFLOW)
			/* Gave up: then the full delta is longer than the limit. */
			cr_assert_gt(roundtrip(a, b, 2 * PAGE + 64), limit);
	}
}

Test(delta, limit_is_respected_and_overflow_reported)
{
	uint8_t a[PAGE], b[PAGE], out[PAGE];
	random_page(a);
	random_page(b); /* every byte (almost) differs */
	cr_assert_eq(delta_encode(a, b, out, 3072), DELTA_OVERFLOW);
	/* Exactly at the limit fits, one below does not. */
	memcpy(b, a, PAGE);
	for (unsigned i = 0; i < 100; i++)
		b[200 + i] = (uint8_t)~a[200 + i];
	size_t n = delta_encode(a, b, out, PAGE);
	cr_assert_eq(n, 2 + 1 + 100);
	cr_assert_eq(delta_encode(a, b, out, n), n);
	cr_assert_eq(delta_encode(a, b, out, n - 1), DELTA_OVERFLOW);
	cr_assert_eq(delta_encode(a, a, out, 0), 0, "no change needs no room");
}

/* The malformed deltas a decoder must refuse, each with its reason. */
static void expect_bad(const uint8_t *d, size_t len, const char *needle)
{
	char err[ERR_MAX] = "";
	uint8_t *page = guarded_page();
	memset(page, 0xab, PAGE);
	cr_assert_eq(delta_decode(page, d, len, err), -EPROTO,
		     "accepted a delta that should fail with '%s'", needle);
	cr_assert(strstr(err, needle), "message '%s' lacks '%s'", err, needle);
	for (unsigned i = 0; i < PAGE; i++)
		cr_assert_eq(page[i], 0xab, "byte %u written by a refused delta", i);
	guarded_free(page);
}

Test(delta, malformed_deltas_are_refused)
{
	/* the changed length missing */
	expect_bad((const uint8_t[]){ 5 }, 1, "run 1: the delta ends before its changed length");
	/* a two-byte length cut off */
	expect_bad((const uint8_t[]){ 0x85 }, 1, "run 1: its unchanged length is cut off");
	expect_bad((const uint8_t[]){ 0, 0x81 }, 2, "run 1: its changed length is cut off");
	/* three-byte and overlong lengths */
	expect_bad((const uint8_t[]){ 0x80, 0x80, 0x01, 1, 0 }, 5,
		   "its unchanged length is longer than two bytes");
	expect_bad((const uint8_t[]){ 0x85, 0x00, 1, 0 }, 4,
		   "its unchanged length is not in shortest form");
	/* a run of nothing */
	expect_bad((const uint8_t[]){ 3, 0 }, 2, "run 1 changes no bytes");
	/* two runs with no unchanged byte between */
	expect_bad((const uint8_t[]){ 0, 1, 7, 0, 1, 7 }, 6,
		   "run 2 follows run 1 with no unchanged byte between");
	/* past the end of the page: by the skip, by the bytes, by both runs */
	expect_bad((const uint8_t[]){ 0x81, 0x20, 1, 9 }, 4, "past the page's end");
	expect_bad((const uint8_t[]){ 0xff, 0x1f, 2, 9, 9 }, 5, "run 1 changes bytes 4095..4096");
	uint8_t two[4 + 3000 + 3 + 1200];
	size_t o = 0;
	two[o++] = 0;
	two[o++] = (uint8_t)(3000 & 127) | 128;
	two[o++] = (uint8_t)(3000 >> 7);
	memset(two + o, 1, 3000);
	o += 3000;
	two[o++] = 1;
	two[o++] = (uint8_t)(1200 & 127) | 128;
	two[o++] = (uint8_t)(1200 >> 7);
	memset(two + o, 2, 1200);
	o += 1200;
	expect_bad(two, o, "run 2 changes bytes 3001..4200, past the page's end");
	/* more bytes announced than present */
	expect_bad((const uint8_t[]){ 4, 10, 1, 2, 3 }, 5,
		   "run 1 announces 10 changed bytes, the delta holds 3 more");
	/* a good run, then a bad one: still nothing written */
	expect_bad((const uint8_t[]){ 0, 2, 1, 1, 3, 0 }, 6, "run 2 changes no bytes");
}

Test(delta, mutated_deltas_never_write_outside_the_page)
{
	uint8_t a[PAGE], b[PAGE], d[PAGE];
	char err[ERR_MAX];
	uint8_t *page = guarded_page();
	unsigned refused = 0;
	for (int iter = 0; iter < 5000; iter++) {
		random_page(a);
		memcpy(b, a, PAGE);
		for (unsigned k = rnd() % 40; k; k--)
			b[rnd() % PAGE] ^= (uint8_t)(1 + rnd() % 255);
		size_t n = delta_encode(a, b, d, PAGE);
		cr_assert_neq(n, DELTA_OVERFLOW);
		if (!n)
			continue;
		for (unsigned k = 1 + rnd() % 4; k; k--)
			d[rnd() % n] = (uint8_t)rnd();
		size_t len = rnd() % 4 ? n : rnd() % (n + 1);
		memcpy(page, a, PAGE);
		/* Either refused, leaving the page, or applied inside it
		 * (a guard page would fault otherwise). */
		if (delta_decode(page, d, len, err)) {
			refused++;
			cr_assert(err[0]);
			cr_assert_eq(memcmp(page, a, PAGE), 0);
		}
	}
	cr_assert_gt(refused, 100, "mutations should mostly break a delta");
	guarded_free(page);
}

Test(delta_cache, find_insert_drop)
{
	struct delta_cache c;
	char err[ERR_MAX];
	uint8_t p[PAGE];
	memset(p, 7, PAGE);
	cr_assert_eq(delta_cache_init(&c, 8 * PAGE, 1000, err), 0, "%s", err);
	cr_assert_eq(c.slots, 8);
	cr_assert_null(delta_cache_find(&c, 3, 1));
	uint8_t *copy = delta_cache_insert(&c, 3, p, 1);
	cr_assert_not_null(copy);
	cr_assert_eq(memcmp(copy, p, PAGE), 0);
	cr_assert_eq(delta_cache_find(&c, 3, 1), copy);
	/* 11 shares slot 3 (11 % 8): not the same page */
	cr_assert_null(delta_cache_find(&c, 11, 1));
	delta_cache_drop(&c, 11); /* not cached: nothing happens */
	cr_assert_eq(delta_cache_find(&c, 3, 1), copy);
	delta_cache_drop(&c, 3);
	cr_assert_null(delta_cache_find(&c, 3, 1));
	delta_cache_free(&c);
	delta_cache_free(&c); /* safe twice */
}

Test(delta_cache, a_recently_sent_page_keeps_its_slot)
{
	struct delta_cache c;
	char err[ERR_MAX];
	uint8_t p[PAGE], q[PAGE];
	memset(p, 1, PAGE);
	memset(q, 2, PAGE);
	cr_assert_eq(delta_cache_init(&c, 4 * PAGE, 0, err), 0, "%s", err);
	cr_assert_not_null(delta_cache_insert(&c, 1, p, 5));
	/* Page 5 maps to slot 1 too: refused while page 1 is fresh. */
	cr_assert_null(delta_cache_insert(&c, 5, q, 5));
	cr_assert_null(delta_cache_insert(&c, 5, q, 6));
	/* A hit in round 6 keeps page 1 fresh through round 7. */
	cr_assert_not_null(delta_cache_find(&c, 1, 6));
	cr_assert_null(delta_cache_insert(&c, 5, q, 7));
	/* Unsent for DELTA_CACHE_LIFETIME rounds: evicted. */
	uint8_t *copy = delta_cache_insert(&c, 5, q, 6 + DELTA_CACHE_LIFETIME);
	cr_assert_not_null(copy);
	cr_assert_eq(copy[0], 2);
	cr_assert_null(delta_cache_find(&c, 1, 9), "the evicted page is gone");
	cr_assert_eq(delta_cache_find(&c, 5, 9), copy);
	/* Re-inserting the same page always works (an update). */
	cr_assert_eq(delta_cache_insert(&c, 5, p, 9), copy);
	cr_assert_eq(copy[0], 1);
	delta_cache_free(&c);
}

Test(delta_cache, sizes)
{
	struct delta_cache c;
	char err[ERR_MAX] = "";
	cr_assert_eq(delta_cache_init(&c, PAGE - 1, 100, err), -EINVAL);
	cr_assert(strstr(err, "holds no page"), "%s", err);
	/* Whole pages, rounded down. */
	cr_assert_eq(delta_cache_init(&c, 10 * PAGE + 100, 100, err), 0, "%s", err);
	cr_assert_eq(c.slots, 10);
	cr_assert_eq(c.bytes, 10 * PAGE);
	delta_cache_free(&c);
	/* Never more slots than the guest has pages. */
	cr_assert_eq(delta_cache_init(&c, DELTA_CACHE_DEFAULT_SIZE, 256, err), 0, "%s", err);
	cr_assert_eq(c.slots, 256);
	/* Consecutive pages never collide: a working set up to the size fits. */
	uint8_t p[PAGE] = { 0 };
	for (uint64_t i = 0; i < 256; i++)
		cr_assert_not_null(delta_cache_insert(&c, 1000 + i, p, 1));
	for (uint64_t i = 0; i < 256; i++)
		cr_assert_not_null(delta_cache_find(&c, 1000 + i, 2));
	delta_cache_free(&c);
	/* An empty (freed) cache finds and stores nothing. */
	cr_assert_null(delta_cache_find(&c, 1, 1));
	cr_assert_null(delta_cache_insert(&c, 1, p, 1));
}
