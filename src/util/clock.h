/* clock.h - the monotonic clock, for deadlines, timeouts and durations. */
#ifndef FERRY_CLOCK_H
#define FERRY_CLOCK_H

#include <pthread.h>
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

/* @in_ns from now on @clk, as pthread_cond_timedwait wants it (on the
 * condition variable's own clock). */
static inline struct timespec clock_deadline(clockid_t clk, uint64_t in_ns)
{
	struct timespec t;
	clock_gettime(clk, &t);
	uint64_t ns = (uint64_t)t.tv_nsec + in_ns;
	t.tv_sec += (time_t)(ns / 1000000000ULL);
	t.tv_nsec = (long)(ns % 1000000000ULL);
	return t;
}

/* A condition variable whose timed waits run on CLOCK_MONOTONIC, so that
 * a step of the wall clock cannot stretch or cut a deadline. */
static inline void clock_cond_init_monotonic(pthread_cond_t *c)
{
	pthread_condattr_t a;
	pthread_condattr_init(&a);
	pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
	pthread_cond_init(c, &a);
	pthread_condattr_destroy(&a);
}

#endif
