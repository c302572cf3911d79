/* Faulting in the destination's memory ahead of round 0 (fault_ahead.h). */
#include "migration/fault_ahead.h"
#include "util/clock.h"
#include "util/log.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

#define PAGE GUEST_PAGE_SIZE

/* ---- the source's list ----------------------------------------------------- */

/* Join runs[0..n) in place across gaps of at most gap pages that stay
 * inside one slot; returns the new count. */
static size_t join_gaps(const struct guest_memory *mem, struct pcp_run *runs, size_t n,
			uint64_t gap)
{
	size_t k = 0;
	for (size_t i = 0; i < n; i++) {
		if (k) {
			struct pcp_run *last = &runs[k - 1];
			uint64_t end = last->gpa + last->npages * PAGE;
			uint64_t joined = (runs[i].gpa + runs[i].npages * PAGE - last->gpa) / PAGE;
			if (runs[i].gpa - end <= gap * PAGE &&
			    memory_gpa_to_hva(mem, last->gpa, joined * PAGE)) {
				last->npages = joined;
				continue;
			}
		}
		runs[k++] = runs[i];
	}
	return k;
}

long fa_source_runs(const struct guest_memory *mem, struct pcp_run **out)
{
	struct pcp_run_list l = { 0 };
	int r = pcp_list_populated(mem, &l);
	if (r) {
		free(l.runs);
		return r;
	}
	/* Faulting in a gap's few pages costs less than leaving a run
	 * out; each pass at least doubles the gaps it joins. */
	for (uint64_t gap = 1; l.n > FA_MAX_RUNS; gap *= 2)
		l.n = join_gaps(mem, l.runs, l.n, gap);
	*out = l.runs;
	return (long)l.n;
}

/* ---- the destination's thread ---------------------------------------------- */

struct fault_ahead {
	struct guest_memory *mem;
	struct pcp_run_list list;
	const uint64_t *frontier;
	pthread_t thread;
	int stop;             /* atomic */
	uint64_t pages;       /* faulted in here */
	uint64_t ns;
	int err;              /* what stopped it early, if anything */
};

/* pcp_parse_runs's runs into a list whose slot_gpa is 0: page indices
 * from guest address 0. */
static int collect(void *opaque, uint64_t gpa, uint64_t npages)
{
	return pcp_run_list_add(opaque, gpa / PAGE, npages);
}

/* One madvise of [gpa, gpa + len): 0, or the errno that ends the work. */
static int populate(struct fault_ahead *fa, uint64_t gpa, uint64_t len)
{
	uint8_t *hva = memory_gpa_to_hva(fa->mem, gpa, len);
	for (;;) {
		if (madvise(hva, len, MADV_POPULATE_WRITE) == 0)
			return 0;
		if (errno != EINTR && errno != EAGAIN)
			return errno;
	}
}

static void *fa_main(void *opaque)
{
	struct fault_ahead *fa = opaque;
	uint64_t t0 = clock_mono_ns();

	pthread_setname_np(pthread_self(), "fault-ahead");
	for (size_t i = 0; i < fa->list.n && !fa->err; i++) {
		uint64_t at = fa->list.runs[i].gpa;
		uint64_t end = at + fa->list.runs[i].npages * PAGE;
		while (at < end && !__atomic_load_n(&fa->stop, __ATOMIC_RELAXED)) {
			uint64_t f = __atomic_load_n(fa->frontier, __ATOMIC_RELAXED);
			if (at < f + FA_LEAD)
				at = f + FA_LEAD;
			if (at >= end)
				break;
			/* To the next 2 MiB boundary: whole huge pages where
			 * the memory has them. */
			uint64_t stop = (at + FA_CHUNK) & ~(FA_CHUNK - 1);
			uint64_t len = (stop < end ? stop : end) - at;
			fa->err = populate(fa, at, len);
			if (fa->err)
				break;
			fa->pages += len / PAGE;
			at += len;
		}
		if (__atomic_load_n(&fa->stop, __ATOMIC_RELAXED))
			break;
	}
	fa->ns = clock_mono_ns() - t0;
	return NULL;
}

int fa_start(struct guest_memory *mem, const uint8_t *p, uint32_t len,
	     const uint64_t *frontier, struct fault_ahead **out, char *err)
{
	struct pcp_run_list l = { 0 };
	*out = NULL;
	int r = pcp_parse_runs(MIG_REC_RAM_AHEAD, p, len, mem, collect, &l, err);
	if (r == -ENOMEM)
		log_warn("migration: no memory for the list of pages to fault in "
			 "ahead; the page channels fault them in themselves");
	if (r) {
		free(l.runs);
		return r == -ENOMEM ? 0 : r;
	}
	if (l.pages * PAGE < FA_MIN) {
		log_info("migration: round 0 brings %.1f MiB: too little to fault in ahead "
			 "of the stream", (double)l.pages * PAGE / (1 << 20));
		free(l.runs);
		return 0;
	}
	struct fault_ahead *fa = calloc(1, sizeof(*fa));
	if (!fa) {
		free(l.runs);
		return 0;
	}
	*fa = (struct fault_ahead){ .mem = mem, .list = l, .frontier = frontier };
	r = pthread_create(&fa->thread, NULL, fa_main, fa);
	if (r) {
		log_warn("migration: cannot start the thread that faults in memory ahead "
			 "of the stream: %s; the page channels fault it in themselves",
			 strerror(r));
		free(l.runs);
		free(fa);
		return 0;
	}
	*out = fa;
	return 0;
}

void fa_finish(struct fault_ahead *fa)
{
	if (fa)
		__atomic_store_n(&fa->stop, 1, __ATOMIC_RELAXED);
}

void fa_stop(struct fault_ahead *fa)
{
	if (!fa)
		return;
	fa_finish(fa);
	pthread_join(fa->thread, NULL);
	if (fa->err == EINVAL)
		log_info("migration: this kernel cannot fault in memory ahead "
			 "(MADV_POPULATE_WRITE: %s)", strerror(fa->err));
	else if (fa->err)
		log_warn("migration: faulting in memory ahead of the stream stopped: %s",
			 strerror(fa->err));
	log_info("migration: faulted in %.1f of the %.1f MiB round 0 brings, ahead of "
		 "the stream, in %.0f ms", (double)fa->pages * PAGE / (1 << 20),
		 (double)fa->list.pages * PAGE / (1 << 20), (double)fa->ns / 1e6);
	free(fa->list.runs);
	free(fa);
}

void fa_note_frontier(uint64_t *frontier, uint64_t gpa_end)
{
	uint64_t cur = __atomic_load_n(frontier, __ATOMIC_RELAXED);
	while (cur < gpa_end &&
	       !__atomic_compare_exchange_n(frontier, &cur, gpa_end, true,
					    __ATOMIC_RELAXED, __ATOMIC_RELAXED))
		;
}
