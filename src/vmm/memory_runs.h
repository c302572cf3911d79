/*
 * memory_runs.h - the populated runs of a memory slot, for lists that
 * must not cost a pass over every page of a big, mostly untouched guest.
 */
#ifndef FERRY_VMM_MEMORY_RUNS_H
#define FERRY_VMM_MEMORY_RUNS_H

#include <stdint.h>

#include "vmm/memory.h"

/* Called for each run in increasing order; a non-zero return stops the
 * walk and is returned. */
typedef int (*memory_run_fn)(void *opaque, uint64_t first, uint64_t npages);

/**
 * memory_populated_runs() - call fn for each maximal run of the pages
 * [first, first+npages) of slot that may hold data (present or swapped
 * out: memory_populated's sense), as page indices inside the slot.  Uses the PAGEMAP_SCAN ioctl (Linux
 * 6.7), whose cost follows the populated page tables, not the slot's
 * size; else the per-page pagemap (memory_populated).  What neither
 * can tell counts as populated: always safe.  -EINVAL for a range
 * outside the slot.
 */
int memory_populated_runs(const struct guest_memory *mem, unsigned slot,
			  uint64_t first, uint64_t npages, memory_run_fn fn, void *opaque);

#endif
