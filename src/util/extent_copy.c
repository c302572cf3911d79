/* Copy a file range into memory, data extents only (extent_copy.h). */
#include "util/extent_copy.h"
#include "util/clock.h"
#include "util/log.h"

#include <errno.h>
#include <stdbool.h>
#include <string.h>
#include <unistd.h>

#define READ_CHUNK (16u << 20) /* big enough to amortise the syscall */

/* Large preads: the kernel faults the fresh destination in as it copies.
 * Prefaulting each run first (MADV_POPULATE_WRITE), with or without huge
 * pages, was measured and gained nothing here (docs/results.md). */
static int read_run(int fd, off_t off, uint8_t *dst, uint64_t len, char *err)
{
	while (len) {
		size_t want = len < READ_CHUNK ? (size_t)len : READ_CHUNK;
		ssize_t n = pread(fd, dst, want, off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return err_set(err, -errno, "reading at offset %lld: %s",
				       (long long)off, strerror(errno));
		if (n == 0)
			return err_set(err, -ENODATA,
				       "the file ends at offset %lld, inside the range",
				       (long long)off);
		dst += n;
		off += n;
		len -= (uint64_t)n;
	}
	return 0;
}

int extent_copy(int fd, off_t off, uint64_t len, uint8_t *dst,
		struct extent_copy_stats *st, char *err)
{
	struct extent_copy_stats local = { 0 };
	uint64_t t0 = clock_mono_ns();
	off_t end = off + (off_t)len, pos = off;
	int r = 0;

	/* The range must exist: a hole at the end of a short file would
	 * otherwise read as zeros and hide a truncation. */
	off_t size = lseek(fd, 0, SEEK_END);
	if (size < 0)
		return err_set(err, -errno, "cannot size the file: %s",
			       strerror(errno));
	if (size < end)
		return err_set(err, -ENODATA,
			       "the file has %lld bytes, the range ends at %lld",
			       (long long)size, (long long)end);
	while (pos < end) {
		off_t d = lseek(fd, pos, SEEK_DATA), h;
		if (d < 0 && errno == ENXIO)
			break;  /* only holes from here to the end of the file */
		if (d < 0 && errno == EINVAL) {
			d = pos;  /* no SEEK_DATA here: everything is data */
			h = end;
		} else if (d < 0) {
			r = err_set(err, -errno, "SEEK_DATA at %lld: %s",
				    (long long)pos, strerror(errno));
			break;
		} else {
			if (d >= end)
				break;
			h = lseek(fd, d, SEEK_HOLE);
			if (h < 0 || h > end)
				h = end;
		}
		r = read_run(fd, d, dst + (d - off), (uint64_t)(h - d), err);
		if (r)
			break;
		local.data_bytes += (uint64_t)(h - d);
		local.extents++;
		pos = h;
	}
	local.ns = clock_mono_ns() - t0;
	if (st)
		*st = local;
	return r;
}
