/*
 * Unit tests for extent_copy on real sparse files: data lands where it
 * belongs, holes stay unallocated, a short file is refused, and the copy
 * no longer depends on the file (the snapshot-restore hole of issue 6: a
 * private mapping of the file died with SIGBUS once the file was truncated
 * and changed with the file when it was rewritten in place).
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/mman.h>

#include "util/extent_copy.h"
#include "util/log.h"

#define PG 4096ULL

static int tmpfile_fd(void)
{
	char path[] = "/tmp/ferry-extent-XXXXXX";
	int fd = mkstemp(path);
	cr_assert_geq(fd, 0);
	unlink(path);
	return fd;
}

static void put_page(int fd, off_t off, uint8_t fill)
{
	uint8_t b[PG];
	memset(b, fill, sizeof(b));
	b[0] = (uint8_t)(off >> 12); /* no two pages alike */
	cr_assert_eq(pwrite(fd, b, PG, off), (ssize_t)PG);
}

static uint8_t *fresh(uint64_t len)
{
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	cr_assert_neq(p, MAP_FAILED);
	return p;
}

static bool resident(uint8_t *base, uint64_t page)
{
	unsigned char v;
	cr_assert_eq(mincore(base + page * PG, PG, &v), 0);
	return v & 1;
}

/* A 64 MiB "memory area" after a 3-page header, mostly holes. */
#define HDR (3 * PG)
#define AREA (64ULL << 20)
static const uint64_t data_pages[] = { 0, 5, 6, 7, 1000, 16383 };
#define RUN_FIRST 4096ULL  /* plus a 4 MiB run: pages 4096..5119 */
#define RUN_PAGES 1024ULL

static int make_sparse(void)
{
	int fd = tmpfile_fd();
	cr_assert_eq(ftruncate(fd, HDR + AREA), 0);
	put_page(fd, 0, 0xee); /* the header: must not be copied */
	for (size_t i = 0; i < sizeof(data_pages) / sizeof(data_pages[0]); i++)
		put_page(fd, HDR + data_pages[i] * PG, 0x5a);
	for (uint64_t p = RUN_FIRST; p < RUN_FIRST + RUN_PAGES; p++)
		put_page(fd, HDR + p * PG, 0xc3);
	return fd;
}

static bool is_data_page(uint64_t p)
{
	for (size_t i = 0; i < sizeof(data_pages) / sizeof(data_pages[0]); i++)
		if (data_pages[i] == p)
			return true;
	return p >= RUN_FIRST && p < RUN_FIRST + RUN_PAGES;
}

Test(extent_copy, copies_data_and_leaves_holes_unallocated)
{
	int fd = make_sparse();
	uint8_t *dst = fresh(AREA);
	struct extent_copy_stats st;
	char err[ERR_MAX] = "";
	cr_assert_eq(extent_copy(fd, HDR, AREA, dst, &st, err), 0, "%s", err);

	uint64_t want = (sizeof(data_pages) / sizeof(data_pages[0]) + RUN_PAGES) * PG;
	/* A file system may round extents up, never down. */
	cr_assert_geq(st.data_bytes, want);
	cr_assert_lt(st.data_bytes, want + (2ULL << 20),
		     "read %llu bytes for %llu of data: holes were read",
		     (unsigned long long)st.data_bytes, (unsigned long long)want);
	cr_assert_geq(st.extents, 4);

	uint8_t *file = malloc(AREA);
	cr_assert_eq(pread(fd, file, AREA, HDR), (ssize_t)AREA);
	cr_assert_eq(memcmp(file, dst, AREA), 0, "copy differs from the file");
	free(file);
	/* memcmp touched every page; check residency on a fresh copy. */
	munmap(dst, AREA);
	dst = fresh(AREA);
	cr_assert_eq(extent_copy(fd, HDR, AREA, dst, &st, err), 0, "%s", err);
	uint64_t hole_resident = 0;
	for (uint64_t p = 0; p < AREA / PG; p++) {
		if (is_data_page(p))
			cr_assert(resident(dst, p), "data page %llu not copied",
				  (unsigned long long)p);
		else
			hole_resident += resident(dst, p);
	}
	cr_assert_lt(hole_resident, 512, "%llu hole pages were allocated",
		     (unsigned long long)hole_resident);
	munmap(dst, AREA);
	close(fd);
}

/* The reproduction: after the copy, truncating the file or rewriting it in
 * place must not reach the copy (a MAP_PRIVATE mapping of the file gets
 * SIGBUS on an unread page past the new end, and sees rewritten pages). */
Test(extent_copy, copy_does_not_depend_on_the_file)
{
	int fd = make_sparse();
	uint8_t *dst = fresh(AREA);
	char err[ERR_MAX] = "";
	cr_assert_eq(extent_copy(fd, HDR, AREA, dst, NULL, err), 0, "%s", err);

	put_page(fd, HDR + 5 * PG, 0x11);          /* rewritten in place */
	cr_assert_eq(ftruncate(fd, HDR + PG), 0);  /* then truncated */

	volatile uint8_t sum = 0;
	for (uint64_t p = 0; p < AREA / PG; p++)   /* no SIGBUS anywhere */
		sum += dst[p * PG + 1];
	(void)sum;
	cr_assert_eq(dst[5 * PG + 1], 0x5a, "the rewrite reached the copy");
	cr_assert_eq(dst[1000 * PG + 1], 0x5a);
	cr_assert_eq(dst[(RUN_FIRST + 7) * PG + 1], 0xc3);
	munmap(dst, AREA);
	close(fd);
}

Test(extent_copy, short_file_is_refused)
{
	int fd = make_sparse();
	cr_assert_eq(ftruncate(fd, HDR + AREA / 2), 0);
	uint8_t *dst = fresh(AREA);
	char err[ERR_MAX] = "";
	cr_assert_eq(extent_copy(fd, HDR, AREA, dst, NULL, err), -ENODATA);
	cr_assert(strstr(err, "range ends"), "message: %s", err);
	munmap(dst, AREA);
	close(fd);
}

Test(extent_copy, all_holes_reads_nothing)
{
	int fd = tmpfile_fd();
	cr_assert_eq(ftruncate(fd, AREA), 0);
	uint8_t *dst = fresh(AREA);
	struct extent_copy_stats st;
	char err[ERR_MAX] = "";
	cr_assert_eq(extent_copy(fd, 0, AREA, dst, &st, err), 0, "%s", err);
	cr_assert_eq(st.data_bytes, 0);
	cr_assert_eq(st.extents, 0);
	cr_assert(!resident(dst, 0) && !resident(dst, AREA / PG - 1));
	munmap(dst, AREA);
	close(fd);
}

Test(extent_copy, unreadable_fd_gives_a_message)
{
	char path[] = "/tmp/ferry-extent-XXXXXX";
	int fd = mkstemp(path);
	cr_assert_eq(ftruncate(fd, 2 * PG), 0);
	put_page(fd, 0, 1);
	close(fd);
	fd = open(path, O_WRONLY);
	unlink(path);
	uint8_t *dst = fresh(2 * PG);
	char err[ERR_MAX] = "";
	int r = extent_copy(fd, 0, 2 * PG, dst, NULL, err);
	cr_assert_eq(r, -EBADF, "r=%d %s", r, err);
	cr_assert(err[0]);
	munmap(dst, 2 * PG);
	close(fd);
}
