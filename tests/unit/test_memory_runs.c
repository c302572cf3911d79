/*
 * memory_populated_runs (vmm/memory_runs.h) on real anonymous memory:
 * the runs it reports must be exactly the pages memory_populated says
 * may hold data, joined into maximal runs, in order - over more runs
 * than one PAGEMAP_SCAN call returns, and for a range inside a slot.
 * Without the pagemap every page counts as populated.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util/log.h"
#include "vmm/memory.h"
#include "vmm/memory_runs.h"

#define PAGE GUEST_PAGE_SIZE
#define NPAGES 8192u   /* 32 MiB */

struct seen {
	uint8_t *mark;       /* 1 per page reported */
	uint64_t runs, last_end;
	bool order_ok, maximal;
};

static int take(void *opaque, uint64_t first, uint64_t n)
{
	struct seen *s = opaque;
	if (s->runs && first < s->last_end)
		s->order_ok = false;
	if (s->runs && first == s->last_end)
		s->maximal = false;    /* should have been one run */
	for (uint64_t i = first; i < first + n; i++)
		s->mark[i] = 1;
	s->runs++;
	s->last_end = first + n;
	return 0;
}

static void one_slot(struct guest_memory *m)
{
	char err[ERR_MAX] = "";
	memset(m, 0, sizeof(*m));
	m->pagemap_fd = -1;
	m->ram_size = (uint64_t)NPAGES * PAGE;
	m->nslots = 1;
	m->slots[0] = (struct mem_slot){ .id = 0, .gpa = 0, .size = m->ram_size };
	cr_assert_eq(memory_alloc(m, err), 0, "%s", err);
}

/* Pages touched: every third page of the first 3000 (1000 runs), then a
 * block of 512, then single pages far apart. */
static bool touched(uint64_t i)
{
	return (i < 3000 && i % 3 == 0) || (i >= 4000 && i < 4512) ||
	       (i > 6000 && i % 97 == 0);
}

Test(memory_runs, the_runs_are_the_populated_pages)
{
	struct guest_memory m;
	one_slot(&m);
	for (uint64_t i = 0; i < NPAGES; i++)
		if (touched(i))
			m.slots[0].hva[i * PAGE] = 1;
	uint8_t *want = malloc(NPAGES);
	memory_populated(&m, 0, 0, NPAGES, want);
	struct seen s = { .mark = calloc(NPAGES, 1), .order_ok = true, .maximal = true };
	cr_assert_eq(memory_populated_runs(&m, 0, 0, NPAGES, take, &s), 0);
	cr_assert(s.order_ok, "runs out of order");
	cr_assert(s.maximal, "adjacent runs not joined");
	for (uint64_t i = 0; i < NPAGES; i++) {
		cr_assert_eq(s.mark[i], want[i], "page %lu: reported %u, pagemap %u",
			     (unsigned long)i, s.mark[i], want[i]);
		if (touched(i))
			cr_assert(want[i], "touched page %lu not populated", (unsigned long)i);
	}
	cr_assert_geq(s.runs, 1000, "%lu runs", (unsigned long)s.runs);

	/* A range inside the slot: only its pages, counted from the slot. */
	memset(s.mark, 0, NPAGES);
	s.runs = 0;
	cr_assert_eq(memory_populated_runs(&m, 0, 4100, 1000, take, &s), 0);
	for (uint64_t i = 0; i < NPAGES; i++)
		cr_assert_eq(s.mark[i], i >= 4100 && i < 5100 && want[i],
			     "page %lu in the range run", (unsigned long)i);
	cr_assert_eq(memory_populated_runs(&m, 0, NPAGES - 1, 2, take, &s), -EINVAL);
	free(s.mark);
	free(want);
	memory_free(&m);
}

Test(memory_runs, without_the_pagemap_everything_is_one_run)
{
	struct guest_memory m;
	one_slot(&m);
	close(m.pagemap_fd);
	m.pagemap_fd = -1;
	struct seen s = { .mark = calloc(NPAGES, 1), .order_ok = true, .maximal = true };
	cr_assert_eq(memory_populated_runs(&m, 0, 0, NPAGES, take, &s), 0);
	cr_assert_eq(s.runs, 1);
	cr_assert_eq(s.last_end, NPAGES);
	free(s.mark);
	memory_free(&m);
}

static int stop_at_second(void *opaque, uint64_t first, uint64_t n)
{
	(void)first;
	(void)n;
	return ++*(int *)opaque == 2 ? -ECANCELED : 0;
}

Test(memory_runs, a_callback_error_stops_the_walk)
{
	struct guest_memory m;
	one_slot(&m);
	for (uint64_t i = 0; i < 100; i += 2)
		m.slots[0].hva[i * PAGE] = 1;
	int calls = 0;
	cr_assert_eq(memory_populated_runs(&m, 0, 0, NPAGES, stop_at_second, &calls),
		     -ECANCELED);
	cr_assert_eq(calls, 2);
	memory_free(&m);
}
