#include "io/pacing.h"
#include "util/clock.h"

#include <errno.h>
#include <time.h>

uint64_t pacer_now_ns(void)
{
	return clock_mono_ns();
}

void pacer_init(struct pacer *p, uint64_t rate)
{
	p->rate = rate;
	p->win_start_ns = 0;
	p->win_bytes = 0;
}

uint64_t pacer_charge(struct pacer *p, uint64_t now, size_t n)
{
	if (!p->rate)
		return now;
	if (!p->win_start_ns || now - p->win_start_ns > PACER_WINDOW_NS) {
		p->win_start_ns = now;
		p->win_bytes = 0;
	}
	p->win_bytes += n;
	/* In floating point: bytes * 1e9 overflows 64 bits past 18 GB. */
	return p->win_start_ns +
	       (uint64_t)((double)p->win_bytes * 1e9 / (double)p->rate);
}

size_t pacer_slice(const struct pacer *p)
{
	if (!p->rate)
		return SIZE_MAX;
	uint64_t s = p->rate / 50;
	return s < PACER_MIN_SLICE ? PACER_MIN_SLICE : (size_t)s;
}

int pacer_wait(uint64_t due, const bool *cancel)
{
	return pacer_wait_live(due, cancel, NULL, 0);
}

int pacer_wait_live(uint64_t due, const bool *cancel, const uint64_t *rate,
		    uint64_t rate_now)
{
	for (;;) {
		if (cancel && __atomic_load_n(cancel, __ATOMIC_RELAXED))
			return -ECANCELED;
		if (rate && __atomic_load_n(rate, __ATOMIC_RELAXED) != rate_now)
			return 1;
		uint64_t now = pacer_now_ns();
		if (now >= due)
			return 0;
		uint64_t d = due - now;
		if (d > PACER_MAX_SLEEP_NS)
			d = PACER_MAX_SLEEP_NS;
		struct timespec ts = { .tv_sec = 0, .tv_nsec = (long)d };
		nanosleep(&ts, NULL);
	}
}
