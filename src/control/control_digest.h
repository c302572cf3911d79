/*
 * control_digest.h - query-memory-digest: a hash of a paused VM's RAM,
 * whole and per memory slot (vmm/memory_digest.h), in the answer
 *
 *   {"algorithm": "xxh3-128", "digest": "<hex>",
 *    "regions": [{"gpa": N, "size": N, "digest": "<hex>"}, ...]}
 */
#ifndef FERRY_CONTROL_DIGEST_H
#define FERRY_CONTROL_DIGEST_H

#include <jansson.h>

struct vm;

/**
 * control_memory_digest() - hash @vm's RAM into *@out (a new reference).
 *
 * Refused, with @err (ERR_MAX bytes) saying why, when there is no VM
 * (NULL: an incoming migration has not built it yet), while the guest
 * runs, and during a snapshot or stop-and-copy (which end by resuming the
 * guest if they fail): of a guest that may run the answer would describe
 * no state it was ever in.  Returns 0 or a negative errno.
 */
int control_memory_digest(struct vm *vm, json_t **out, char *err);

#endif
