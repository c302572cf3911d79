/*
 * The post-copy push order (migration/prepage.h): each rule with the
 * exact sequence it must produce.
 */
#include <criterion/criterion.h>
#include <stdlib.h>

#include "migration/prepage.h"

static struct prepage pp;

static void setup(uint64_t n, uint64_t window, uint64_t wmin, uint64_t wmax)
{
	struct prepage_params prm = { .window = window, .wmin = wmin, .wmax = wmax };
	cr_assert_eq(prepage_init(&pp, n, &prm), 0);
}

/* The next k pages must be exactly want[0..k). */
static void expect(const uint64_t *want, size_t k)
{
	for (size_t i = 0; i < k; i++) {
		uint64_t got;
		cr_assert(prepage_next(&pp, &got), "ended early at step %zu", i);
		cr_assert_eq(got, want[i], "step %zu: page %lu, wanted %lu", i,
			     (unsigned long)got, (unsigned long)want[i]);
	}
}

Test(prepage, no_faults_is_a_linear_sweep)
{
	setup(10, 4, 1, 16);
	static const uint64_t want[] = { 0, 1, 2, 3, 4, 5, 6, 7, 8, 9 };
	expect(want, 10);
	uint64_t x;
	cr_assert_not(prepage_next(&pp, &x), "every page went once");
	cr_assert(prepage_done(&pp));
	prepage_free(&pp);
}

Test(prepage, fault_bubbles_outward_both_ways_then_sweep_resumes)
{
	setup(200, 4, 1, 16);
	static const uint64_t first[] = { 0, 1, 2 };
	expect(first, 3);
	cr_assert_not(prepage_mark_sent(&pp, 100), "the fault's page is answered");
	prepage_fault(&pp, 100);
	static const uint64_t want[] = { 101, 99, 102, 98, 103, 97, 104, 96,
					 3, 4, 5 };
	expect(want, 11);
	prepage_free(&pp);
}

Test(prepage, bubble_skips_sent_pages_and_the_edges)
{
	setup(10, 3, 1, 16);
	prepage_mark_sent(&pp, 1);
	prepage_fault(&pp, 1);
	prepage_mark_sent(&pp, 3);
	/* 2, (no page -1 side below 0), 3 sent, 0, 4, then the sweep */
	static const uint64_t want[] = { 2, 0, 4, 5, 6, 7, 8, 9 };
	expect(want, 8);
	uint64_t x;
	cr_assert_not(prepage_next(&pp, &x));
	prepage_free(&pp);

	setup(10, 3, 1, 16);
	prepage_fault(&pp, 9);     /* at the top edge: only downwards */
	static const uint64_t top[] = { 8, 7, 6, 0, 1 };
	expect(top, 5);
	prepage_free(&pp);
}

Test(prepage, near_faults_widen_far_faults_narrow)
{
	setup(100000, 8, 2, 64);
	prepage_fault(&pp, 1000);
	cr_assert_eq(pp.window, 8, "the first fault has nothing to compare with");
	prepage_fault(&pp, 1005);            /* within 8: widen */
	cr_assert_eq(pp.window, 16);
	prepage_fault(&pp, 1020);            /* within 16 */
	cr_assert_eq(pp.window, 32);
	prepage_fault(&pp, 1050);
	cr_assert_eq(pp.window, 64);
	prepage_fault(&pp, 1060);
	cr_assert_eq(pp.window, 64, "never above wmax");
	prepage_fault(&pp, 50000);           /* far: narrow */
	cr_assert_eq(pp.window, 32);
	prepage_fault(&pp, 10);
	prepage_fault(&pp, 90000);
	prepage_fault(&pp, 20000);
	cr_assert_eq(pp.window, 4);
	prepage_fault(&pp, 70000);
	prepage_fault(&pp, 30000);
	cr_assert_eq(pp.window, 2, "never below wmin");
	cr_assert_eq(pp.widened, 3);
	cr_assert_eq(pp.narrowed, 5, "64->32->16->8->4->2, then held");
	prepage_free(&pp);
}

Test(prepage, the_window_bounds_the_bubble)
{
	setup(1000, 4, 2, 8);
	prepage_fault(&pp, 500);
	static const uint64_t want[] = { 501, 499, 502, 498, 503, 497, 504, 496, 0, 1 };
	expect(want, 10);
	prepage_free(&pp);
}

Test(prepage, ascending_faults_push_upwards_only)
{
	setup(1000, 4, 2, 16);
	prepage_mark_sent(&pp, 500);
	prepage_fault(&pp, 500);
	static const uint64_t a[] = { 501, 499 };
	expect(a, 2);
	/* the reader moved up, to a page the bubble had sent: widen to 8,
	 * go on from the upper frontier, upwards only, out to 501 + 8 */
	prepage_fault(&pp, 501);
	cr_assert_eq(pp.window, 8);
	static const uint64_t b[] = { 502, 503, 504, 505, 506, 507, 508, 509, 0 };
	expect(b, 9);
	prepage_free(&pp);
}

Test(prepage, descending_faults_push_downwards_only)
{
	setup(1000, 4, 2, 16);
	prepage_mark_sent(&pp, 500);
	prepage_fault(&pp, 500);
	prepage_mark_sent(&pp, 497);
	prepage_fault(&pp, 497);    /* 3 below: outside the bubble, downwards */
	static const uint64_t want[] = { 496, 495, 494, 493, 492, 491, 490, 489, 0 };
	expect(want, 9);
	prepage_free(&pp);
}

Test(prepage, a_far_fault_spreads_both_ways_again)
{
	setup(1000, 4, 1, 16);
	prepage_fault(&pp, 100);
	prepage_fault(&pp, 102);    /* upwards, window 8 */
	prepage_fault(&pp, 600);    /* far: both ways, window 4 */
	static const uint64_t want[] = { 601, 599, 602, 598, 603, 597, 604, 596, 0 };
	expect(want, 9);
	prepage_free(&pp);
}

Test(prepage, a_new_fault_moves_the_bubble_at_once)
{
	setup(1000, 8, 1, 8);
	prepage_fault(&pp, 100);
	static const uint64_t a[] = { 101, 99 };
	expect(a, 2);
	prepage_fault(&pp, 700);   /* far: window 4, bubble at 700 */
	static const uint64_t b[] = { 701, 699, 702, 698, 703, 697, 704, 696, 0 };
	expect(b, 9);
	prepage_free(&pp);
}

Test(prepage, every_page_exactly_once_under_random_faults)
{
	const uint64_t n = 50000;
	setup(n, 16, 4, 1024);
	uint8_t *seen = calloc(n, 1);
	unsigned seed = 7;
	uint64_t got = 0, hits = 0, page;
	while (true) {
		if (rand_r(&seed) % 8 == 0) {
			uint64_t f = (uint64_t)rand_r(&seed) % n;
			if (prepage_mark_sent(&pp, f))
				hits++;      /* already pushed: a pre-paging hit */
			else
				seen[f]++, got++;
			prepage_fault(&pp, f);
		}
		if (!prepage_next(&pp, &page))
			break;
		cr_assert_lt(page, n);
		cr_assert_eq(seen[page], 0, "page %lu handed out twice",
			     (unsigned long)page);
		seen[page]++;
		got++;
	}
	cr_assert_eq(got, n);
	cr_assert_eq(pp.nsent, n);
	cr_assert_gt(hits, 0, "some faults landed on pages already pushed");
	free(seen);
	prepage_free(&pp);
}

Test(prepage, parameters_are_clamped)
{
	struct prepage_params prm = { .window = 1000, .wmin = 0, .wmax = 10 };
	cr_assert_eq(prepage_init(&pp, 4, &prm), 0);
	cr_assert_eq(pp.prm.wmin, 1);
	cr_assert_eq(pp.window, 10);
	prepage_free(&pp);
	cr_assert_eq(prepage_init(&pp, 4, NULL), 0);
	cr_assert_eq(pp.window, PREPAGE_WINDOW_DEFAULT);
	prepage_fault(&pp, 99);   /* outside: ignored */
	cr_assert_eq(pp.faults, 0);
	prepage_free(&pp);
}

/* pcs_skip marks a big guest's untouched pages a word at a time: the
 * count of newly marked pages, across word edges and clipped at the end,
 * and the sweep skips them. */
Test(prepage, mark_sent_range_counts_and_the_sweep_skips_it)
{
	setup(300, 64, 8, 8192);
	cr_assert_eq(prepage_mark_sent(&pp, 70), false);
	cr_assert_eq(prepage_mark_sent_range(&pp, 3, 200), 199, "page 70 was sent");
	cr_assert_eq(prepage_mark_sent_range(&pp, 250, 1000), 50, "clipped at 300");
	cr_assert_eq(prepage_mark_sent_range(&pp, 400, 5), 0);
	cr_assert_eq(pp.nsent, 1 + 199 + 50);
	static const uint64_t want[] = { 0, 1, 2, 203, 204, 205 };
	expect(want, 6);
	uint64_t pg, n = 6;
	while (prepage_next(&pp, &pg)) {
		cr_assert(pg >= 206 && pg < 250, "page %lu pushed twice", (unsigned long)pg);
		n++;
	}
	cr_assert_eq(n, 3 + 47);
	cr_assert(prepage_done(&pp));
	prepage_free(&pp);
}
