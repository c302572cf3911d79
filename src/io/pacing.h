/*
 * pacing.h - keep a sender under a bandwidth limit (max-bandwidth).
 *
 * The arithmetic is pure (pacer_charge: when may these bytes go?) so it
 * can be tested with a table; the waiting (pacer_wait) sleeps in slices of
 * at most PACER_MAX_SLEEP_NS and checks a cancel flag between them, so a
 * limit near zero - a wait of minutes - never keeps a cancel or a quit
 * waiting longer than a slice.
 */
#ifndef FERRY_IO_PACING_H
#define FERRY_IO_PACING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PACER_WINDOW_NS    100000000ULL /* the rate is kept over 100 ms */
#define PACER_MAX_SLEEP_NS 10000000ULL  /* one sleep lasts at most 10 ms */
#define PACER_MIN_SLICE    4096

struct pacer {
	uint64_t rate;          /* bytes/s; 0 = unlimited */
	uint64_t win_start_ns;  /* current window */
	uint64_t win_bytes;     /* bytes charged in it */
};

void pacer_init(struct pacer *p, uint64_t rate);

/**
 * pacer_charge() - account for n bytes about to be sent at time now (ns,
 * monotonic) and return when they may go: a time <= now means at once.
 * A window older than PACER_WINDOW_NS starts afresh, so an idle sender
 * does not earn a burst.
 */
uint64_t pacer_charge(struct pacer *p, uint64_t now, size_t n);

/* How many bytes to send per write: ~20 ms worth, at least
 * PACER_MIN_SLICE; SIZE_MAX when unlimited. */
size_t pacer_slice(const struct pacer *p);

/**
 * pacer_wait() - sleep until the monotonic time due, in slices of at most
 * PACER_MAX_SLEEP_NS, checking *cancel (may be NULL; read atomically)
 * before each.  Returns 0, or -ECANCELED as soon as *cancel is seen set.
 */
int pacer_wait(uint64_t due, const bool *cancel);

/**
 * pacer_wait_live() - pacer_wait() that also watches a rate another thread
 * may change (migrate-set-parameters' max-bandwidth during a migration):
 * returns 1 as soon as *rate (read atomically; NULL: not watched) differs
 * from rate_now, so the caller can charge again at the new rate at once.
 */
int pacer_wait_live(uint64_t due, const bool *cancel, const uint64_t *rate,
		    uint64_t rate_now);

uint64_t pacer_now_ns(void);

#endif
