/*
 * verify.c - checking a CPU's share of the working set (CPL 3).
 *
 * Each CPU checks only its own pages, so a check never races a write.
 * A page is good when its header names its own gpa, its generation equals
 * the one this CPU last wrote (kept in the guest's own table), and its
 * checksum matches its content.  A migration that loses a write, sends a
 * stale copy or a page to the wrong place fails one of the three.
 * Between passes the writer checks each page's header before it rewrites
 * it (verify_bad_header), so a bad page is caught even if it is rewritten
 * before the next pass.
 */
#include "ucall.h"

#define FAIL_LINES_PER_PASS 16 /* per CPU; the ucall reports every page */

/* One line per bad page, at most FAIL_LINES_PER_PASS per CPU between
 * passes; the ucall reports every one.  @want_csum < 0: not computed (the
 * check before a write looks at the header only). */
static void bad_page(struct percpu *pc, uint64_t gpa, uint32_t expected,
		     const volatile uint64_t *w, int64_t want_csum,
		     const char *at)
{
	uint64_t w0 = w[0], w1 = w[1];

	pc->errors = pc->errors + 1;
	if (pc->fail_lines < FAIL_LINES_PER_PASS && want_csum >= 0)
		printf_("VERIFY FAIL gpa=0x%lx expected_gen=%u found_gen=%u "
			"found_gpa=0x%lx csum=0x%x want_csum=0x%x cpu=%u at=%s\n",
			gpa, expected, (uint32_t)w1, w0, (uint32_t)(w1 >> 32),
			(uint32_t)want_csum, pc->id, at);
	else if (pc->fail_lines < FAIL_LINES_PER_PASS)
		printf_("VERIFY FAIL gpa=0x%lx expected_gen=%u found_gen=%u "
			"found_gpa=0x%lx cpu=%u at=%s\n", gpa, expected,
			(uint32_t)w1, w0, pc->id, at);
	else if (pc->fail_lines == FAIL_LINES_PER_PASS)
		printf_("VERIFY FAIL ... (more bad pages on cpu %u not shown)\n",
			pc->id);
	pc->fail_lines++;
	guest_report(__FILE__, __LINE__, "verify: bad page", gpa, expected,
		     (uint32_t)w1, w0);
	if (cfg.exit_on_error) {
		printf_("verify: exit_on_error=1, exiting\n");
		guest_exit(EXIT_VERIFY);
	}
}

/*
 * Called by the writer before it rewrites page @idx whose header does
 * not say what this CPU last wrote there: without this, a stale or lost
 * page would be repaired by the write and never seen by a pass.
 */
void verify_bad_header(struct percpu *pc, uint64_t idx)
{
	const volatile uint64_t *w =
		(const volatile uint64_t *)(pc->base + idx * PAGE_SIZE);

	bad_page(pc, (uintptr_t)w, pc->gen[idx], w, -1, "write");
}

void verify_part(struct percpu *pc, void (*service)(void))
{
	pc->fail_lines = 0;
	for (uint64_t i = 0; i < pc->npages; i++) {
		const uint64_t *w = (const uint64_t *)(pc->base + i * PAGE_SIZE);
		uint64_t gpa = (uintptr_t)w;
		uint32_t want = verify_page_checksum(w);

		if (w[0] != gpa || (uint32_t)w[1] != pc->gen[i] ||
		    (uint32_t)(w[1] >> 32) != want)
			bad_page(pc, gpa, pc->gen[i], w, want, "pass");
		pc->pages_checked = pc->pages_checked + 1;
		if (service && (i & 7) == 7)
			service();
	}
}
