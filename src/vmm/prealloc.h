/*
 * prealloc.h - guest RAM prepared in advance (`ferry run --incoming URI
 * --memory SIZE --prealloc`, QEMU's -mem-prealloc): a destination maps
 * SIZE of guest memory as it starts and faults all of it in on a thread
 * of its own (memory_populate, transparent huge pages advised) while it
 * waits for a source, so that the stream lands in memory that is already
 * there.  The VM built for the accepted migration takes that memory
 * (vm_config.prealloc); HELLO must describe exactly SIZE of RAM.
 */
#ifndef FERRY_PREALLOC_H
#define FERRY_PREALLOC_H

#include <stdint.h>

#include "vmm/memory.h"

struct mem_prealloc;

/**
 * mem_prealloc_start() - map ram_size of guest memory (the slot layout
 * memory_layout gives) and start faulting it in.  Returns 0 and *out, or
 * a negative errno with a message (the mapping or the thread failed).
 */
int mem_prealloc_start(struct mem_prealloc **out, uint64_t ram_size, char *err);

/* The guest RAM size it was made for. */
uint64_t mem_prealloc_size(const struct mem_prealloc *p);

/**
 * mem_prealloc_take() - wait until the memory is faulted in, then move it
 * into *mem (laid out and mapped: what memory_alloc would give).  Once
 * only; later calls fail with -EALREADY.  Returns 0, or the population's
 * error (-ENOMEM: the host could not give that much now) with a message.
 */
int mem_prealloc_take(struct mem_prealloc *p, struct guest_memory *mem, char *err);

/* Seconds the faulting-in took (0 while it runs); for the log. */
double mem_prealloc_seconds(struct mem_prealloc *p);

/* Wait for the thread, unmap what was not taken, free.  NULL is fine. */
void mem_prealloc_free(struct mem_prealloc *p);

#endif
