/*
 * restore_cost - what a snapshot restore pays for its memory now that it
 * copies the file's data extents into anonymous memory (extent_copy)
 * instead of mapping the file privately.  Prints JSON.
 *
 *   restore_cost [DIR] [MiB]   (default /tmp, 1024)
 *
 * Cases, each on a file of MiB bytes of "guest memory" (page cache warm:
 * the file was just written, as after a save on the same host):
 *   sparse  - 16 MiB of data (one 4 MiB run and 3072 single pages), the rest
 *             holes, as a mostly untouched guest saves
 *   dense   - every page data (an incompressible guest)
 * and for each: extent_copy (the restore), the same extents read after a
 * MADV_POPULATE_WRITE of each run (tried, not kept), and the old private
 * mapping (mmap, then the first touch of every data page, which the guest
 * or a migration paid later).
 */
#include "util/extent_copy.h"
#include "util/log.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/mman.h>

#define PG 4096ULL

static double now_ms(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

static uint8_t *fresh(uint64_t len)
{
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (p == MAP_FAILED) {
		perror("mmap");
		exit(1);
	}
	return p;
}

static int make_file(const char *dir, uint64_t len, int dense)
{
	char path[4096];
	snprintf(path, sizeof(path), "%s/ferry-restore-cost-XXXXXX", dir);
	int fd = mkstemp(path);
	if (fd < 0) {
		perror("mkstemp");
		exit(1);
	}
	unlink(path);
	if (ftruncate(fd, (off_t)len) < 0) {
		perror("ftruncate");
		exit(1);
	}
	static uint8_t chunk[1 << 20];
	for (size_t i = 0; i < sizeof(chunk); i++)
		chunk[i] = (uint8_t)(i * 131 + 7);
	if (dense) {
		for (uint64_t off = 0; off < len; off += sizeof(chunk))
			if (pwrite(fd, chunk, sizeof(chunk), (off_t)off) < 0)
				exit(1);
	} else {
		for (uint64_t off = 0; off < (4 << 20); off += sizeof(chunk))
			if (pwrite(fd, chunk, sizeof(chunk), (off_t)(len / 2 + off)) < 0)
				exit(1);
		uint64_t pages = len / PG;
		for (uint64_t i = 0; i < 3072; i++)
			if (pwrite(fd, chunk, PG, (off_t)((i * 7919 % (pages / 2)) * PG)) < 0)
				exit(1);
	}
	fsync(fd);
	return fd;
}

static int cmp_d(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

#define REPS 3

static void run_case(const char *name, int fd, uint64_t len, int first)
{
	double t_copy[REPS], t_plain[REPS], t_map[REPS];
	struct extent_copy_stats st = { 0 };
	char err[ERR_MAX];

	for (int r = 0; r < REPS; r++) {
		uint8_t *dst = fresh(len);
		double t0 = now_ms();
		if (extent_copy(fd, 0, len, dst, &st, err)) {
			fprintf(stderr, "extent_copy: %s\n", err);
			exit(1);
		}
		t_copy[r] = now_ms() - t0;
		munmap(dst, len);

		/* The same extents, each run prefaulted first. */
		dst = fresh(len);
		t0 = now_ms();
		for (off_t pos = 0; pos < (off_t)len;) {
			off_t d = lseek(fd, pos, SEEK_DATA);
			if (d < 0)
				break;
			off_t h = lseek(fd, d, SEEK_HOLE);
			madvise(dst + d, (size_t)(h - d), 23 /* MADV_POPULATE_WRITE */);
			for (off_t o = d; o < h;) {
				size_t n = h - o < (16 << 20) ? (size_t)(h - o) : (16 << 20);
				if (pread(fd, dst + o, n, o) != (ssize_t)n)
					exit(1);
				o += (off_t)n;
			}
			pos = h;
		}
		t_plain[r] = now_ms() - t0;
		munmap(dst, len);

		/* The old way: map privately; the first touch of every data
		 * page comes later, in the guest or a migration's reads. */
		t0 = now_ms();
		uint8_t *m = mmap(NULL, len, PROT_READ | PROT_WRITE,
				  MAP_PRIVATE | MAP_NORESERVE, fd, 0);
		volatile uint8_t sum = 0;
		for (off_t pos = 0; pos < (off_t)len;) {
			off_t d = lseek(fd, pos, SEEK_DATA);
			if (d < 0)
				break;
			off_t h = lseek(fd, d, SEEK_HOLE);
			for (off_t o = d; o < h; o += PG)
				sum += m[o];
			pos = h;
		}
		t_map[r] = now_ms() - t0;
		munmap(m, len);
	}
	qsort(t_copy, REPS, sizeof(double), cmp_d);
	qsort(t_plain, REPS, sizeof(double), cmp_d);
	qsort(t_map, REPS, sizeof(double), cmp_d);
	printf("%s  \"%s\": {\"file-mib\": %llu, \"data-mib\": %.1f, \"extents\": %llu, "
	       "\"restore-ms\": %.1f, \"restore-ms-runs\": [%.1f, %.1f, %.1f], "
	       "\"restore-gb-per-s\": %.2f, \"populate-then-pread-ms\": %.1f, "
	       "\"old-private-map-first-touch-ms\": %.1f}",
	       first ? "" : ",\n", name, (unsigned long long)(len >> 20),
	       st.data_bytes / 1048576.0, (unsigned long long)st.extents,
	       t_copy[1], t_copy[0], t_copy[1], t_copy[2],
	       t_copy[1] > 0 ? st.data_bytes / t_copy[1] / 1e6 : 0.0,
	       t_plain[1], t_map[1]);
}

int main(int argc, char **argv)
{
	const char *dir = argc > 1 ? argv[1] : "/tmp";
	uint64_t len = (argc > 2 ? strtoull(argv[2], NULL, 0) : 1024) << 20;
	printf("{\n");
	int fd = make_file(dir, len, 0);
	run_case("sparse", fd, len, 1);
	close(fd);
	fd = make_file(dir, len, 1);
	run_case("dense", fd, len, 0);
	close(fd);
	printf("\n}\n");
	return 0;
}
