/*
 * memory_digest on plain anonymous memory (memory_alloc needs no KVM):
 * equal contents give equal digests, one changed byte anywhere changes
 * them, untouched pages hash as the zeros they read as, without being
 * faulted in, and the digest follows the documented chunked XXH3-128.
 */
#include <criterion/criterion.h>

#include <string.h>
#include <xxhash.h>

#include "util/log.h"
#include "vmm/memory.h"
#include "vmm/memory_digest.h"

#define PAGE GUEST_PAGE_SIZE

static void mem_new(struct guest_memory *m, uint64_t size)
{
	char err[ERR_MAX] = "";
	memory_layout(m, size);
	cr_assert_eq(memory_alloc(m, err), 0, "memory_alloc: %s", err);
}

static void digest_of(const struct guest_memory *m, struct memory_digest *d)
{
	cr_assert_eq(memory_digest(m, d), 0);
	cr_assert_eq(d->nregions, m->nslots);
}

/* A recognisable pattern in a few pages, the rest left untouched. */
static void fill_some(struct guest_memory *m, uint8_t seed)
{
	uint8_t *p = m->slots[0].hva;
	uint64_t npages = m->slots[0].size / PAGE;
	for (uint64_t pg = 0; pg < npages; pg += 3)
		for (unsigned i = 0; i < PAGE; i += 64)
			p[pg * PAGE + i] = (uint8_t)(seed + pg + i);
}

static unsigned populated_pages(const struct guest_memory *m, unsigned slot)
{
	uint64_t n = m->slots[slot].size / PAGE;
	uint8_t *pop = malloc(n);
	unsigned count = 0;
	memory_populated(m, slot, 0, n, pop);
	for (uint64_t i = 0; i < n; i++)
		count += pop[i];
	free(pop);
	return count;
}

Test(memory_digest, equal_contents_equal_digest)
{
	struct guest_memory a, b;
	struct memory_digest da, db;
	mem_new(&a, 1 << 20);
	mem_new(&b, 1 << 20);
	fill_some(&a, 7);
	fill_some(&b, 7);
	digest_of(&a, &da);
	digest_of(&b, &db);
	cr_assert_arr_eq(da.whole, db.whole, MEMORY_DIGEST_BYTES);
	cr_assert_arr_eq(da.region[0].digest, db.region[0].digest,
			 MEMORY_DIGEST_BYTES);
	cr_assert_eq(da.region[0].gpa, 0);
	cr_assert_eq(da.region[0].size, 1 << 20);
	/* Same memory, asked twice: the same answer. */
	digest_of(&a, &db);
	cr_assert_arr_eq(da.whole, db.whole, MEMORY_DIGEST_BYTES);
	memory_free(&a);
	memory_free(&b);
}

/* The documented scheme (memory_digest.h), recomputed from a flat copy of
 * one region's bytes: what another tool would do from a RAM dump. */
static void reference(const uint8_t *p, uint64_t gpa, uint64_t size,
		      uint8_t *region, uint8_t *whole)
{
	XXH3_state_t *st = XXH3_createState();
	XXH128_canonical_t c;
	uint64_t head[2] = { gpa, size };
	XXH3_128bits_reset(st);
	XXH3_128bits_update(st, head, sizeof(head));
	for (uint64_t off = 0; off < size; off += MEMORY_DIGEST_CHUNK) {
		uint64_t n = size - off < MEMORY_DIGEST_CHUNK ? size - off
							      : MEMORY_DIGEST_CHUNK;
		XXH128_canonicalFromHash(&c, XXH3_128bits(p + off, n));
		XXH3_128bits_update(st, c.digest, sizeof(c.digest));
	}
	XXH128_canonicalFromHash(&c, XXH3_128bits_digest(st));
	memcpy(region, c.digest, MEMORY_DIGEST_BYTES);
	XXH128_canonicalFromHash(&c, XXH3_128bits(region, MEMORY_DIGEST_BYTES));
	memcpy(whole, c.digest, MEMORY_DIGEST_BYTES);
	XXH3_freeState(st);
}

Test(memory_digest, is_the_documented_scheme)
{
	struct guest_memory m;
	struct memory_digest d;
	uint8_t region[MEMORY_DIGEST_BYTES], whole[MEMORY_DIGEST_BYTES];
	/* 3 MiB + 2 pages: whole chunks, untouched ones, and a short last. */
	const uint64_t size = (3 << 20) + 2 * PAGE;
	mem_new(&m, size);
	fill_some(&m, 3);
	memset(m.slots[0].hva + (1 << 20), 0, 1 << 20); /* zeroed, present */
	m.slots[0].hva[size - 1] = 0x77;
	digest_of(&m, &d);
	uint8_t *flat = malloc(size);
	memcpy(flat, m.slots[0].hva, size);
	reference(flat, 0, size, region, whole);
	cr_assert_arr_eq(d.region[0].digest, region, MEMORY_DIGEST_BYTES);
	cr_assert_arr_eq(d.whole, whole, MEMORY_DIGEST_BYTES);
	char hex[MEMORY_DIGEST_HEX];
	memory_digest_hex(d.whole, hex);
	cr_assert_eq(strlen(hex), 32);
	cr_assert_eq(strspn(hex, "0123456789abcdef"), 32, "not hex: %s", hex);
	free(flat);
	memory_free(&m);
}

Test(memory_digest, one_changed_byte_in_any_page)
{
	struct guest_memory m;
	struct memory_digest ref, d;
	mem_new(&m, 1 << 20);
	fill_some(&m, 11);
	digest_of(&m, &ref);
	uint8_t *p = m.slots[0].hva;
	uint64_t npages = (1 << 20) / PAGE;
	for (uint64_t pg = 0; pg < npages; pg++) {
		/* A different offset in each page, the last byte included. */
		uint64_t off = pg * PAGE + (pg * 997 + PAGE - 1) % PAGE;
		uint8_t old = p[off];
		p[off] ^= 0x01;
		digest_of(&m, &d);
		cr_assert(memcmp(d.whole, ref.whole, MEMORY_DIGEST_BYTES),
			  "flipping a bit at 0x%llx did not change the digest",
			  (unsigned long long)off);
		p[off] = old;
	}
	digest_of(&m, &d);
	cr_assert_arr_eq(d.whole, ref.whole, MEMORY_DIGEST_BYTES,
			 "restoring every byte did not restore the digest");
	memory_free(&m);
}

Test(memory_digest, untouched_equals_zeroed_and_is_not_faulted_in)
{
	struct guest_memory untouched, zeroed;
	struct memory_digest du, dz;
	mem_new(&untouched, 4 << 20);
	mem_new(&zeroed, 4 << 20);
	memset(zeroed.slots[0].hva, 0, 4 << 20);
	cr_assert_eq(populated_pages(&zeroed, 0), (4 << 20) / PAGE,
		     "explicitly zeroed pages should be present");
	digest_of(&untouched, &du);
	digest_of(&zeroed, &dz);
	cr_assert_arr_eq(du.whole, dz.whole, MEMORY_DIGEST_BYTES);
	cr_assert_eq(populated_pages(&untouched, 0), 0,
		     "hashing faulted in never-touched pages");
	/* A mix: untouched pages between written ones. */
	fill_some(&untouched, 5);
	fill_some(&zeroed, 5);
	digest_of(&untouched, &du);
	digest_of(&zeroed, &dz);
	cr_assert_arr_eq(du.whole, dz.whole, MEMORY_DIGEST_BYTES);
	memory_free(&untouched);
	memory_free(&zeroed);
}

/* Above 3 GiB the RAM is split around the PC hole: two regions. */
Test(memory_digest, two_regions_each_and_whole)
{
	struct guest_memory m;
	struct memory_digest ref, d;
	mem_new(&m, MEM_HOLE_START + (1 << 20));
	cr_assert_eq(m.nslots, 2);
	m.slots[0].hva[12345] = 1;
	digest_of(&m, &ref);
	cr_assert_eq(ref.region[1].gpa, MEM_HOLE_END);
	cr_assert_eq(ref.region[1].size, 1 << 20);
	cr_assert(memcmp(ref.whole, ref.region[0].digest, MEMORY_DIGEST_BYTES));
	cr_assert(memcmp(ref.whole, ref.region[1].digest, MEMORY_DIGEST_BYTES));

	m.slots[1].hva[(1 << 20) - 1] = 0x80;
	digest_of(&m, &d);
	cr_assert(memcmp(d.whole, ref.whole, MEMORY_DIGEST_BYTES),
		  "a byte in the high region did not change the whole digest");
	cr_assert(memcmp(d.region[1].digest, ref.region[1].digest,
			 MEMORY_DIGEST_BYTES), "nor its region's");
	cr_assert_arr_eq(d.region[0].digest, ref.region[0].digest,
			 MEMORY_DIGEST_BYTES, "the low region's digest moved");
	cr_assert(populated_pages(&m, 0) < 16,
		  "hashing 3 GiB of untouched memory faulted it in");
	memory_free(&m);
}
