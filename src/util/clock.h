/* clock.h - the monotonic clock, for deadlines, timeouts and durations. */
#ifndef FERRY_CLOCK_H
#define FERRY_CLOCK_H

#include <stdint.h>
#include <time.h>

static inline uint64_t clock_mono_ns(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000000000ULL + (uint64_t)t.tv_nsec;
}

static inline int64_t clock_mono_ms(void)
{
	return (int64_t)(clock_mono_ns() / 1000000);
}

#endif
