/*
 * postcopy_release.h - the source lets go of the guest pages the
 * destination has (release-ram, QEMU's name): post-copy's promise that
 * the two hosts together hold about one copy of the guest, not two.
 *
 * The destination confirms what it has placed (PAGES_HAVE, every 20 ms);
 * the page server hands each run here and goes back to answering
 * faults, and a thread of this module drops the runs (MADV_DONTNEED, in
 * batches: vmm/memory_zap.h).  Only confirmed pages go: until the
 * destination has a page, the source keeps it for any recovery.  After
 * PAGES_DONE everything goes.  A page read again after its drop (a
 * request that crossed its push) reads as zero; the destination, which
 * has it, ignores the copy.
 */
#ifndef FERRY_MIG_POSTCOPY_RELEASE_H
#define FERRY_MIG_POSTCOPY_RELEASE_H

#include <stdint.h>

#include "vmm/memory.h"

struct pc_release;

/* Start the thread.  0 or -errno with a message (ERR_MAX). */
int pcrel_new(const struct guest_memory *mem, struct pc_release **out, char *err);
/* Queue the pages [gpa, gpa + npages pages) (inside one slot, checked by
 * the caller).  0 or -ENOMEM. */
int pcrel_add(struct pc_release *r, uint64_t gpa, uint64_t npages);
/* Queue all of guest RAM (the destination has every page). */
int pcrel_all(struct pc_release *r);
/* Pages queued so far (each confirmed page once). */
uint64_t pcrel_pages(struct pc_release *r);
/* Drop what is queued, stop the thread, free.  NULL: nothing. */
void pcrel_free(struct pc_release *r);

#endif
