/*
 * memory_digest.h - a hash of guest RAM, whole and per memory slot, so a
 * test can prove from outside that a migration moved every byte: the
 * source paused at stop-and-copy and the destination paused before `cont`
 * must give the same digest (query-memory-digest).
 *
 * The algorithm is XXH3-128 (libxxhash), over 1 MiB chunks:
 *   chunk digest  = XXH3-128 of the chunk's bytes (the last chunk of a
 *                   region may be shorter)
 *   region digest = XXH3-128 of u64 gpa, u64 size (little-endian), then
 *                   the chunk digests in address order
 *   whole digest  = XXH3-128 of the region digests in address order
 * (digests as xxHash's canonical, big-endian bytes).  Chunks let a
 * never-touched chunk cost nothing: its digest is that of 1 MiB of zeros,
 * computed once, and its pages are neither read nor faulted in.  A chunk
 * with some untouched pages hashes them as zeros without reading them.
 */
#ifndef FERRY_MEMORY_DIGEST_H
#define FERRY_MEMORY_DIGEST_H

#include <stdint.h>

#include "vmm/memory.h"

#define MEMORY_DIGEST_ALGORITHM "xxh3-128"
#define MEMORY_DIGEST_BYTES     16
#define MEMORY_DIGEST_HEX       (2 * MEMORY_DIGEST_BYTES + 1)
#define MEMORY_DIGEST_CHUNK     (1u << 20)

struct memory_digest {
	uint8_t whole[MEMORY_DIGEST_BYTES];   /* big-endian, as xxh128sum prints */
	unsigned nregions;
	struct {
		uint64_t gpa, size;
		uint8_t digest[MEMORY_DIGEST_BYTES];
	} region[MEM_MAX_SLOTS];
};

/**
 * memory_digest() - hash every slot of @mem into @out.
 *
 * The caller keeps the memory still (the VM paused): pages written while
 * they are hashed give a digest of no state the VM was ever in.  Returns 0,
 * or -ENOMEM if the hash state cannot be allocated.
 */
int memory_digest(const struct guest_memory *mem, struct memory_digest *out);

/* @d as lower-case hex into @hex (MEMORY_DIGEST_HEX bytes). */
void memory_digest_hex(const uint8_t *d, char *hex);

#endif
