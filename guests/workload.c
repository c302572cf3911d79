/*
 * workload.c - rewriting pages of a CPU's share of the working set (CPL 3).
 *
 * One call writes one page, so callers can look at the clock between
 * pages.  With verify=1 the writer first checks the page's header (gpa and
 * the generation it last wrote there; a mismatch is a verification error),
 * then the page gets its new header (gpa, generation, checksum) and the
 * checksum is summed while the fill is written: one pass over the page, as
 * in the unverified case.
 */
#include "guest.h"
#include "io.h"

static uint64_t rate_pps; /* pages per second per CPU, 0 = unlimited */

static inline uint64_t xorshift64(uint64_t *s)
{
	uint64_t x = *s;

	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	return *s = x;
}

/* r's top 32 bits scaled to [0, n), n < 2^32 pages */
static inline uint64_t scale(uint64_t r, uint64_t n)
{
	return ((r >> 32) * n) >> 32;
}

void workload_setup(unsigned ncpus)
{
	rate_pps = cfg.rate * (MIB / PAGE_SIZE) / ncpus;
	if (cfg.rate && !rate_pps)
		rate_pps = 1;
}

static uint64_t pick_page(struct percpu *pc)
{
	uint64_t idx, r, hot;

	switch (cfg.pattern) {
	case PAT_SEQ:
		idx = pc->cursor;
		if (++pc->cursor >= pc->npages)
			pc->cursor = 0;
		return idx;
	case PAT_RANDOM:
		return scale(xorshift64(&pc->rng), pc->npages);
	case PAT_HOT:
	default:
		/* ~90% (230/256) of the writes go to the first 10% of pages */
		r = xorshift64(&pc->rng);
		hot = pc->npages / 10 ? pc->npages / 10 : 1;
		if (hot >= pc->npages || (r & 0xff) < 230)
			return scale(r, hot);
		return hot + scale(r, pc->npages - hot);
	}
}

/*
 * counter: runs of 8 equal words (seq << 8 | i / 8) - compresses well but
 *          changes on every write.
 * random:  xorshift64 - incompressible.
 * zero:    zeros (the header stays if verify=1).
 */
static void write_page(struct percpu *pc, uint64_t idx)
{
	uint64_t *w = (uint64_t *)(pc->base + idx * PAGE_SIZE);
	uint64_t gpa = (uintptr_t)w, seq = ++pc->seq, r = pc->rng;
	uint64_t a = VERIFY_CSUM_SEED, b = 0;
	unsigned i, first = cfg.verify ? 2 : 0;
	uint32_t gen = 0;

	if (cfg.verify) {
		/* The header before the rewrite: cheap (the writer's first
		 * cache line), and it keeps a stale page from repairing
		 * itself unnoticed.  Generation 0: not laid out yet. */
		gen = pc->gen[idx];
		if (gen && (w[0] != gpa || (uint32_t)w[1] != gen))
			verify_bad_header(pc, idx);
		gen = pc->gen[idx] = gen + 1;
		verify_csum_step(&a, &b, gpa);
		verify_csum_step(&a, &b, gen);
	}
	switch (cfg.fill) {
	case FILL_COUNTER:
		for (i = first; i < PAGE_SIZE / 8; i++) {
			uint64_t x = (seq << 8) | (i >> 3);

			w[i] = x;
			verify_csum_step(&a, &b, x);
		}
		break;
	case FILL_RANDOM:
		for (i = first; i < PAGE_SIZE / 8; i++) {
			uint64_t x = xorshift64(&r);

			w[i] = x;
			verify_csum_step(&a, &b, x);
		}
		pc->rng = r;
		break;
	case FILL_ZERO:
		for (i = first; i < PAGE_SIZE / 8; i++) {
			w[i] = 0;
			verify_csum_step(&a, &b, 0);
		}
		break;
	}
	if (cfg.verify) {
		w[0] = gpa;
		w[1] = gen | (uint64_t)verify_csum_finish(a, b) << 32;
	}
	pc->pages_written = pc->pages_written + 1;
}

void write_one_page(struct percpu *pc)
{
	write_page(pc, pick_page(pc));
}

/* Lay out every page once (generation 1) so that a pass can check all. */
void part_init(struct percpu *pc, void (*service)(void))
{
	for (uint64_t i = 0; i < pc->npages; i++) {
		write_page(pc, i);
		if (service && (i & 7) == 7)
			service();
	}
}

/*
 * Token bucket in units of page * TSC tick: a page costs tsc_hz, time adds
 * rate_pps per tick.  At most 100 ms of credit, so a pause (e.g. during
 * migration) is not followed by a burst.
 */
bool rate_allows(struct percpu *pc, uint64_t now)
{
	uint64_t hz = tsc_hz(), cap = hz / 10, elapsed;

	if (!rate_pps)
		return true;
	elapsed = now - pc->rate_last;
	pc->rate_last = now;
	if (elapsed > cap)
		elapsed = cap;
	pc->rate_acc += elapsed * rate_pps;
	if (pc->rate_acc > cap * rate_pps)
		pc->rate_acc = cap * rate_pps;
	if (pc->rate_acc < hz)
		return false;
	pc->rate_acc -= hz;
	return true;
}
