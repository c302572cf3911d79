/*
 * user_caps.h - the on/off migration features a user sets with
 * migrate-set-capabilities and reads with query-migrate-capabilities, in
 * QEMU's names and shapes:
 *
 *   {"capabilities": [{"capability": "xbzrle", "state": true}, ...]}
 *
 * (caps.c is something else: what two ferries agree in HELLO/ACCEPT.)
 * Each capability is a bool in struct mig_params.  A name QEMU has and
 * this ferry does not is refused when turned on (turning it off asks for
 * what already is); a name nobody has is refused always.  Setting them
 * during a migration is refused, as QEMU does (the control handler).
 *
 * A destination has no VM until its migration completes, but a tool that
 * drives QEMU sets capabilities there too: what is set before the VM
 * exists is kept for the process, and the VM's migrations start from it
 * (mig_params_default applies it).
 */
#ifndef FERRY_MIG_USER_CAPS_H
#define FERRY_MIG_USER_CAPS_H

#include <jansson.h>

#include "migration/migration.h"

/* QEMU's message for a change during a migration, word for word. */
#define MIG_UCAPS_ACTIVE_MSG "There's a migration process in progress"

/**
 * mig_ucaps_apply() - set in *p the capabilities of @caps (the command's
 * "capabilities" array).  All or nothing: on error *p is unchanged and
 * @err names the entry and what is wrong.  Returns 0 or -EINVAL.
 */
int mig_ucaps_apply(struct mig_params *p, json_t *caps, char *err);

/* query-migrate-capabilities' answer: every capability this ferry has,
 * [{"capability": NAME, "state": BOOL}, ...] (a new reference). */
json_t *mig_ucaps_json(const struct mig_params *p);

/* The capabilities set before this process had a VM: store p's, or
 * apply the stored ones to p. */
void mig_ucaps_process_set(const struct mig_params *p);
void mig_ucaps_process_get(struct mig_params *p);

#endif
