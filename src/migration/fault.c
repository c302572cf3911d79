/*
 * Source-side fault injection for tests: migrate's "x-fault" names a
 * point where the source process dies (exit status 99) as if its host
 * crashed, so the destination's and the operator's side of every phase
 * can be tested (docs/fault-table.md).  The destination has its own
 * points (`ferry run --incoming ... --x-fault`, incoming.c).
 */
#include "migration/source.h"
#include "util/log.h"
#include "vmm/exit_status.h"

#include <errno.h>
#include <string.h>
#include <unistd.h>

static const char *const fault_names[] = {
	[MIG_FAULT_ROUND0] = "round0",
	[MIG_FAULT_LATER_ROUND] = "round1",
	[MIG_FAULT_DEVICE] = "device",
	[MIG_FAULT_AFTER_READY] = "after-ready",
	[MIG_FAULT_AFTER_COMMIT] = "after-commit",
	/* not deaths: post-copy's link cut, or its push held (precopy.c) */
	[MIG_FAULT_POSTCOPY_CUT] = "postcopy-cut",
	[MIG_FAULT_POSTCOPY_HOLD] = "postcopy-hold",
};

int mig_fault_parse(const char *s, enum mig_fault *out)
{
	for (int i = MIG_FAULT_ROUND0; s && i <= MIG_FAULT_POSTCOPY_HOLD; i++)
		if (!strcmp(s, fault_names[i])) {
			*out = (enum mig_fault)i;
			return 0;
		}
	return -EINVAL;
}

int migration_fault_point(struct migration *m, enum mig_fault here)
{
	/* m->p is written before the thread starts and never after. */
	if (here != MIG_FAULT_NONE && m->p.fault == here) {
		log_error("fault injection: source dies now (%s)", fault_names[here]);
		_exit(EXIT_FAULT_INJECTED);
	}
	return 0;
}
