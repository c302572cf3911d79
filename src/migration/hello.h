/*
 * hello.h - the migration's HELLO: the machine description
 * (vmm/machine_desc.h) with the capabilities the source offers (caps.h)
 * under "capabilities".  The destination answers ACCEPT with the agreed
 * capabilities, or REFUSE with the reason.
 */
#ifndef FERRY_MIG_HELLO_H
#define FERRY_MIG_HELLO_H

#include <jansson.h>

#include "migration/caps.h"

struct vm;

/* HELLO's JSON for vm and offer (a new reference; NULL on ENOMEM). */
json_t *hello_build(struct vm *vm, const struct mig_caps *offer);

#endif
