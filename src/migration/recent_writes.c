/*
 * recent_writes.c - see recent_writes.h.
 */
#include "migration/recent_writes.h"
#include "util/log.h"
#include "vmm/dirty_log.h"
#include "vmm/vm.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static uint64_t slot_words(const struct vm *vm, unsigned i)
{
	return dirty_bitmap_words(vm->mem.slots[i].size / GUEST_PAGE_SIZE);
}

int recent_writes_arm(struct recent_writes *rw, struct vm *vm, char *err)
{
	memset(rw, 0, sizeof(*rw));
	rw->vm = vm;
	rw->bm = calloc(vm->mem.nslots ? vm->mem.nslots : 1, sizeof(*rw->bm));
	if (!rw->bm)
		return err_set(err, -ENOMEM, "out of memory");
	for (unsigned i = 0; i < vm->mem.nslots; i++)
		if (!(rw->bm[i] = calloc(slot_words(vm, i), sizeof(uint64_t)))) {
			recent_writes_end(rw);
			return err_set(err, -ENOMEM, "out of memory");
		}
	int r = dirty_log_start(vm, err);
	if (r) {
		recent_writes_end(rw);
		return r;
	}
	rw->on = true;
	/* The first read reports every page (the log starts all set, or the
	 * ring's first harvest): read it and re-protect them all. */
	for (unsigned i = 0; i < vm->mem.nslots && !r; i++) {
		r = dirty_log_sync(vm, i, rw->bm[i]);
		if (!r)
			r = dirty_log_clear(vm, i, 0, vm->mem.slots[i].size / GUEST_PAGE_SIZE,
					    rw->bm[i]);
		memset(rw->bm[i], 0, slot_words(vm, i) * sizeof(uint64_t));
	}
	if (r) {
		recent_writes_end(rw);
		return err_set(err, r, "cannot arm the dirty log: %s", strerror(-r));
	}
	rw->armed_ns = now_ns();
	return 0;
}

double recent_writes_age_ms(const struct recent_writes *rw)
{
	return rw->on ? (double)(now_ns() - rw->armed_ns) / 1e6 : 0;
}

size_t recent_writes_take(struct recent_writes *rw, uint64_t *gpas, size_t max)
{
	size_t n = 0;
	if (!rw->on)
		return 0;
	for (unsigned i = 0; i < rw->vm->mem.nslots && n < max; i++) {
		if (dirty_log_sync(rw->vm, i, rw->bm[i]))
			return 0;
		const uint64_t *b = rw->bm[i];
		for (uint64_t w = 0; w < slot_words(rw->vm, i) && n < max; w++)
			for (uint64_t bits = b[w]; bits && n < max; bits &= bits - 1)
				gpas[n++] = rw->vm->mem.slots[i].gpa +
					    (w * 64 + (uint64_t)__builtin_ctzll(bits)) *
					    GUEST_PAGE_SIZE;
	}
	return n;
}

void recent_writes_end(struct recent_writes *rw)
{
	if (rw->on)
		dirty_log_stop(rw->vm);
	rw->on = false;
	if (rw->bm && rw->vm)
		for (unsigned i = 0; i < rw->vm->mem.nslots; i++)
			free(rw->bm[i]);
	free(rw->bm);
	rw->bm = NULL;
}
