/*
 * Fault-ahead's two checkable parts (migration/fault_ahead.h) on real
 * anonymous memory: the source's list of populated runs, joined across
 * the smallest gaps when there are more than one RAM_AHEAD can carry,
 * and the destination's handling of a list it is sent.  The thread
 * itself runs in tests/integration (multifd/fault_ahead_*).
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "migration/fault_ahead.h"
#include "util/log.h"
#include "vmm/memory.h"

#define PAGE GUEST_PAGE_SIZE
/* Every other page of the first 2 x 70000: more runs than one RAM_AHEAD
 * holds (65536). */
#define SPARSE 70000u
#define NPAGES (2 * SPARSE + 4096)

static void one_slot(struct guest_memory *m, uint64_t npages)
{
	char err[ERR_MAX] = "";
	memset(m, 0, sizeof(*m));
	m->pagemap_fd = -1;
	m->ram_size = npages * PAGE;
	m->nslots = 1;
	m->slots[0] = (struct mem_slot){ .id = 0, .gpa = 0, .size = m->ram_size };
	cr_assert_eq(memory_alloc(m, err), 0, "%s", err);
}

Test(fault_ahead, the_list_covers_every_touched_page_in_one_record)
{
	struct guest_memory m;
	one_slot(&m, NPAGES);
	for (uint64_t i = 0; i < SPARSE; i++)
		m.slots[0].hva[2 * i * PAGE] = 1;
	m.slots[0].hva[(NPAGES - 1) * PAGE] = 1;   /* far from the rest */

	struct pcp_run *runs = NULL;
	long n = fa_source_runs(&m, &runs);
	cr_assert(n > 0 && n <= (long)FA_MAX_RUNS, "%ld runs", n);
	uint64_t listed = 0;
	for (long k = 0; k < n; k++) {
		cr_assert(runs[k].npages > 0 && runs[k].gpa % PAGE == 0);
		cr_assert(memory_gpa_to_hva(&m, runs[k].gpa, runs[k].npages * PAGE),
			  "run %ld outside the slot", k);
		if (k)
			cr_assert_gt(runs[k].gpa, runs[k - 1].gpa + runs[k - 1].npages * PAGE,
				     "runs %ld and %ld overlap, touch or go down", k - 1, k);
		listed += runs[k].npages;
	}
	/* Every touched page is in a run. */
	for (uint64_t i = 0; i < SPARSE; i++) {
		uint64_t gpa = 2 * i * PAGE;
		bool in = false;
		for (long k = 0; k < n && !in; k++)
			in = gpa >= runs[k].gpa && gpa < runs[k].gpa + runs[k].npages * PAGE;
		cr_assert(in, "touched page %lu not listed", (unsigned long)(2 * i));
	}
	cr_assert_eq(runs[n - 1].gpa, (NPAGES - 1) * PAGE, "the lone page's run");
	/* Only the one-page gaps were joined, not the 4096-page one. */
	cr_assert_leq(listed, 2 * SPARSE + 1, "%lu pages listed", (unsigned long)listed);
	free(runs);
	memory_free(&m);
}

/* RAM_AHEAD's payload: count, 0, then {gpa, npages} little-endian. */
static uint32_t payload(uint8_t *p, uint64_t gpa, uint64_t npages)
{
	uint32_t count = 1, zero = 0;
	memcpy(p, &count, 4);
	memcpy(p + 4, &zero, 4);
	memcpy(p + 8, &gpa, 8);
	memcpy(p + 16, &npages, 8);
	return 24;
}

Test(fault_ahead, a_bad_list_is_refused_and_a_short_one_starts_nothing)
{
	struct guest_memory m;
	one_slot(&m, 4096);
	uint64_t frontier = 0;
	uint8_t p[24];
	char err[ERR_MAX] = "";
	struct fault_ahead *fa = NULL;

	uint32_t len = payload(p, 8192 * PAGE, 16);   /* beyond 16 MiB of RAM */
	cr_assert_eq(fa_start(&m, p, len, &frontier, &fa, err), -EPROTO);
	cr_assert_null(fa);
	cr_assert(strstr(err, "RAM_AHEAD run 0: 16 pages at 0x2000000"), "%s", err);

	len = payload(p, 0, 4096);    /* all 16 MiB: under FA_MIN */
	cr_assert_eq(fa_start(&m, p, len, &frontier, &fa, err), 0, "%s", err);
	cr_assert_null(fa, "a thread for %llu MiB", (unsigned long long)(4096 * PAGE >> 20));
	fa_stop(fa);   /* NULL is fine */
	memory_free(&m);
}
