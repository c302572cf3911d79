/*
 * A hash of guest RAM (memory_digest.h).  XXH3-128 rather than a
 * cryptographic hash: the digest guards against bugs, not against an
 * adversary choosing memory contents, and at tens of GB/s it keeps an
 * 8 GiB guest's check well under a second where SHA-256 would take many.
 */
#include "vmm/memory_digest.h"

#include <errno.h>
#include <string.h>
#include <xxhash.h>

#define PAGE        GUEST_PAGE_SIZE
#define CHUNK_PAGES 4096            /* pagemap is asked 16 MiB at a time */
#define ZERO_BYTES  (64u << 10)     /* fed per update for untouched runs */

static const uint8_t zeros[ZERO_BYTES];

/* Feed len bytes to one or two states (two while a region is also part of
 * the whole digest). */
static void feed(XXH3_state_t *const st[2], const void *p, size_t len)
{
	for (int i = 0; i < 2; i++)
		if (st[i])
			XXH3_128bits_update(st[i], p, len);
}

static void feed_zeros(XXH3_state_t *const st[2], uint64_t len)
{
	while (len) {
		size_t n = len < ZERO_BYTES ? (size_t)len : ZERO_BYTES;
		feed(st, zeros, n);
		len -= n;
	}
}

static void hash_slot(const struct guest_memory *mem, unsigned slot,
		      XXH3_state_t *const st[2])
{
	const struct mem_slot *s = &mem->slots[slot];
	uint64_t npages = s->size / PAGE;
	uint8_t populated[CHUNK_PAGES];

	for (uint64_t first = 0; first < npages; first += CHUNK_PAGES) {
		uint64_t n = npages - first < CHUNK_PAGES ? npages - first
							  : CHUNK_PAGES;
		memory_populated(mem, slot, first, n, populated);
		/* Runs of the same kind: one update per run, not per page. */
		for (uint64_t i = 0; i < n;) {
			uint64_t j = i + 1;
			while (j < n && populated[j] == populated[i])
				j++;
			if (populated[i])
				feed(st, s->hva + (first + i) * PAGE, (j - i) * PAGE);
			else
				feed_zeros(st, (j - i) * PAGE);
			i = j;
		}
	}
}

static void put_digest(XXH3_state_t *st, uint8_t *out)
{
	XXH128_canonical_t c;
	XXH128_canonicalFromHash(&c, XXH3_128bits_digest(st));
	memcpy(out, c.digest, MEMORY_DIGEST_BYTES);
}

int memory_digest(const struct guest_memory *mem, struct memory_digest *out)
{
	XXH3_state_t *whole = XXH3_createState(), *part = XXH3_createState();
	int r = 0;

	memset(out, 0, sizeof(*out));
	if (!whole || !part) {
		r = -ENOMEM;
		goto out;
	}
	XXH3_128bits_reset(whole);
	for (unsigned i = 0; i < mem->nslots; i++) {
		/* With one slot the whole is that slot: hash it once. */
		XXH3_state_t *const st[2] = { part, mem->nslots > 1 ? whole : NULL };
		XXH3_128bits_reset(part);
		hash_slot(mem, i, st);
		out->region[i].gpa = mem->slots[i].gpa;
		out->region[i].size = mem->slots[i].size;
		put_digest(part, out->region[i].digest);
	}
	out->nregions = mem->nslots;
	if (mem->nslots > 1)
		put_digest(whole, out->whole);
	else if (mem->nslots == 1)
		memcpy(out->whole, out->region[0].digest, MEMORY_DIGEST_BYTES);
	else
		put_digest(whole, out->whole);
out:
	XXH3_freeState(whole);
	XXH3_freeState(part);
	return r;
}

void memory_digest_hex(const uint8_t *d, char *hex)
{
	static const char digits[] = "0123456789abcdef";
	for (unsigned i = 0; i < MEMORY_DIGEST_BYTES; i++) {
		hex[2 * i] = digits[d[i] >> 4];
		hex[2 * i + 1] = digits[d[i] & 15];
	}
	hex[2 * MEMORY_DIGEST_BYTES] = '\0';
}
