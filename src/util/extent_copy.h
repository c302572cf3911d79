/*
 * extent_copy.h - read a byte range of a file into memory, skipping the
 * file's holes (SEEK_DATA/SEEK_HOLE).
 *
 * A snapshot stores never-touched guest memory as holes.  Restoring by
 * copying only the data extents into fresh anonymous memory gives a VM
 * that no longer depends on the file (truncating or rewriting it later
 * cannot reach the guest), while untouched memory stays unallocated and
 * costs nothing to restore.
 */
#ifndef FERRY_EXTENT_COPY_H
#define FERRY_EXTENT_COPY_H

#include <stdint.h>
#include <sys/types.h>

struct extent_copy_stats {
	uint64_t data_bytes;  /* bytes read from data extents */
	uint64_t extents;     /* data runs found */
	uint64_t ns;          /* time taken */
};

/**
 * extent_copy() - copy the file range [@off, @off + @len) of @fd into @dst,
 * reading only its data extents; the bytes of @dst under a hole are not
 * touched (so @dst must already read as zero there: fresh anonymous
 * memory), and stay unallocated.  Each run is read in large preads.  A
 * file system without
 * SEEK_DATA counts as all data.  A file shorter than the range fails.
 * Returns 0 or -errno with a message in @err; @st (may be NULL) gets the
 * cost.
 */
int extent_copy(int fd, off_t off, uint64_t len, uint8_t *dst,
		struct extent_copy_stats *st, char *err);

#endif
