/*
 * delta_cache.h - the source's copy of what it last sent of some pages,
 * so that a page sent again can travel as a delta (delta.h) against the
 * copy the destination holds.  Bounded by xbzrle-cache-size.
 *
 * Direct-mapped: page number p lives in slot p % slots or nowhere.  Why
 * not LRU: pre-copy sends each round's dirty pages in address order, a
 * cyclic scan; when the pages resent exceed the cache, LRU evicts exactly
 * the page needed next (no hits at all), while a direct-mapped cache keeps
 * a fixed share of them.  A lookup is one index, with no list or hash
 * table to keep (12 bytes of bookkeeping per slot), and consecutive pages
 * never collide, so a contiguous working set up to the cache's size fits
 * whole.
 *
 * Age: each slot remembers the round its page was last sent in.  A page
 * that is not cached takes a slot only when the slot's page has not been
 * sent for DELTA_CACHE_LIFETIME rounds: two hot pages that share a slot
 * would otherwise evict each other every round and neither would ever be
 * a hit.  A page that is not cached (never stored, evicted, or refused a
 * slot) is simply sent whole.
 *
 * The rule that keeps source and destination in step is the caller's
 * (ram_codec.c): whenever a cached page is sent, in any form, its slot is
 * updated to what was sent (or dropped).  Not thread-safe: the migration
 * thread alone uses it.
 */
#ifndef FERRY_MIG_DELTA_CACHE_H
#define FERRY_MIG_DELTA_CACHE_H

#include <stdbool.h>
#include <stdint.h>

#define DELTA_CACHE_LIFETIME 2u
/* QEMU's default xbzrle-cache-size */
#define DELTA_CACHE_DEFAULT_SIZE (64ULL << 20)

struct delta_cache {
	uint64_t slots;
	uint64_t bytes;    /* slots x 4096 */
	uint64_t *key;     /* page number + 1 per slot; 0: empty */
	uint32_t *age;     /* round the slot's page was last sent in */
	uint8_t *data;     /* slots x 4096, touched only as slots fill */
};

/**
 * delta_cache_init() - a cache of @size bytes (whole pages, rounded down)
 * for a guest of @npages pages: never more slots than the guest has pages.
 * Return: 0, -EINVAL (@size below one page) or -ENOMEM, with @err.
 */
int delta_cache_init(struct delta_cache *c, uint64_t size, uint64_t npages,
		     char *err);
/* Safe on a zeroed or freed cache. */
void delta_cache_free(struct delta_cache *c);

/**
 * delta_cache_find() - the cached copy of page @page, or NULL.  A hit
 * marks the slot used in round @now.  The copy may be written (the caller
 * updates it to what it sends).
 */
uint8_t *delta_cache_find(struct delta_cache *c, uint64_t page, uint32_t now);

/**
 * delta_cache_insert() - store @data (4096 bytes) as page @page's copy,
 * sent in round @now, if its slot is free, already @page's, or holds a
 * page unsent for DELTA_CACHE_LIFETIME rounds.  Return: the slot's copy,
 * or NULL if the slot stays another page's.
 */
uint8_t *delta_cache_insert(struct delta_cache *c, uint64_t page,
			    const uint8_t *data, uint32_t now);

/* Forget page @page if cached. */
void delta_cache_drop(struct delta_cache *c, uint64_t page);

#endif
