/*
 * memory_runs.c - see memory_runs.h.
 */
#include "vmm/memory_runs.h"

#include <errno.h>
#include <stdlib.h>
#include <sys/ioctl.h>

/* PAGEMAP_SCAN's ABI (linux/fs.h since 6.7), spelled out because the
 * build hosts' headers predate it; an older kernel refuses the ioctl
 * and the per-page path below runs instead. */
#ifndef PAGEMAP_SCAN
#define PAGE_IS_PRESENT (1 << 3)
#define PAGE_IS_SWAPPED (1 << 4)
struct page_region {
	uint64_t start, end, categories;
};
struct pm_scan_arg {
	uint64_t size, flags, start, end, walk_end, vec, vec_len, max_pages;
	uint64_t category_inverted, category_mask, category_anyof_mask, return_mask;
};
#define PAGEMAP_SCAN _IOWR('f', 16, struct pm_scan_arg)
#endif

#define SCAN_REGIONS 256   /* regions per ioctl: 6 KiB on the stack */
#define CHUNK_PAGES  4096  /* the fallback's bytes per memory_populated */

/* Runs reported piecewise (a scan's regions split where categories
 * change, the fallback's chunks end) are joined before fn sees them. */
struct joiner {
	memory_run_fn fn;
	void *opaque;
	uint64_t first, n;
	uint64_t end;           /* the end of everything joined so far */
	int err;                /* fn's first non-zero return */
};

static int join(struct joiner *j, uint64_t first, uint64_t n)
{
	j->end = first + n;
	if (j->n && j->first + j->n == first) {
		j->n += n;
		return 0;
	}
	int r = j->n ? j->fn(j->opaque, j->first, j->n) : 0;
	j->first = first;
	j->n = n;
	if (r && !j->err)
		j->err = r;
	return r;
}

static int flush(struct joiner *j)
{
	int r = j->n ? j->fn(j->opaque, j->first, j->n) : 0;
	j->n = 0;
	if (r && !j->err)
		j->err = r;
	return r;
}

/* 0 when the scan covered the range, 1 when the kernel has no
 * PAGEMAP_SCAN (nothing reported yet), 2 when it broke part-way (*done:
 * the pages it covered), -1 when fn said stop (j->err). */
static int scan(const struct guest_memory *mem, const struct mem_slot *s,
		uint64_t first, uint64_t npages, struct joiner *j, uint64_t *done)
{
	struct page_region v[SCAN_REGIONS];
	uint64_t base = (uint64_t)(uintptr_t)s->hva;
	uint64_t from = base + first * GUEST_PAGE_SIZE;
	uint64_t end = from + npages * GUEST_PAGE_SIZE;
	struct pm_scan_arg a = {
		.size = sizeof(a), .start = from, .end = end,
		.vec = (uint64_t)(uintptr_t)v, .vec_len = SCAN_REGIONS,
		.category_anyof_mask = PAGE_IS_PRESENT | PAGE_IS_SWAPPED,
		.return_mask = PAGE_IS_PRESENT | PAGE_IS_SWAPPED,
	};

	for (;; a.start = a.walk_end) {
		*done = (a.start - base) / GUEST_PAGE_SIZE;
		if (a.start >= end)
			return 0;
		long got = ioctl(mem->pagemap_fd, PAGEMAP_SCAN, &a);
		if (got < 0)
			return a.start == from ? 1 : 2;
		for (long k = 0; k < got; k++)
			if (join(j, (v[k].start - base) / GUEST_PAGE_SIZE,
				 (v[k].end - v[k].start) / GUEST_PAGE_SIZE))
				return -1;
		/* walk_end: where the kernel stopped (the vector filled). */
		if (a.walk_end <= a.start || a.walk_end > end)
			return 2;
	}
}

int memory_populated_runs(const struct guest_memory *mem, unsigned slot,
			  uint64_t first, uint64_t npages, memory_run_fn fn, void *opaque)
{
	const struct mem_slot *s = &mem->slots[slot];
	uint64_t np = first + npages;
	struct joiner j = { .fn = fn, .opaque = opaque };
	uint64_t done = first;

	if (first > s->size / GUEST_PAGE_SIZE || npages > s->size / GUEST_PAGE_SIZE - first)
		return -EINVAL;
	int r = mem->pagemap_fd >= 0 ? scan(mem, s, first, npages, &j, &done) : 1;

	if (r < 0)
		return j.err;
	if (r == 1) {
		uint8_t *pop = malloc(CHUNK_PAGES);
		r = 0;
		for (uint64_t pg = first; pg < np && !r; pg += CHUNK_PAGES) {
			uint64_t k = np - pg < CHUNK_PAGES ? np - pg : CHUNK_PAGES;
			if (!pop) {
				r = join(&j, pg, k);   /* no memory: all populated */
				continue;
			}
			memory_populated(mem, slot, pg, k, pop);
			for (uint64_t i = 0; i < k && !r; i++)
				if (pop[i])
					r = join(&j, pg + i, 1);
		}
		free(pop);
	} else if (r == 2) {
		/* The scan broke part-way: what it reported stands, the rest
		 * counts as populated (from past both where it got to and
		 * the last run it reported, so that no page comes twice). */
		uint64_t from = done > j.end ? done : j.end;
		r = from < np ? join(&j, from, np - from) : 0;
	}
	return r ? r : flush(&j);
}
