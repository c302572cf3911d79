/*
 * testdev.h - Ferry's test device: the guest's messages to the host (ucall
 * port, see include/guest_abi.h), "exit with code N" (exit port) and the
 * resume generation (resume port).
 */
#ifndef FERRY_TESTDEV_H
#define FERRY_TESTDEV_H

#include <stdbool.h>
#include <stdint.h>

#include "guest_abi.h"

struct vm;
struct testdev;

/* What the guest has told the host so far (for query-vm and tests). */
struct testdev_progress {
	bool ready;                  /* UCALL_READY seen */
	uint64_t wss_base, wss_bytes, vcpus_online;
	uint64_t counters[PROG_NARGS]; /* last UCALL_PROGRESS */
	uint64_t progress_reports;   /* how many UCALL_PROGRESS arrived */
	uint64_t syncs, last_sync;   /* UCALL_SYNC count and last stage */
	uint64_t asserts;            /* UCALL_ASSERT count */
	char last_assert[256];       /* "file:line: msg (args)" */
	uint32_t resume_gen;         /* the device's, not the guest's (PORT_RESUME) */
};

int testdev_create(struct vm *vm, struct testdev **out);
void testdev_get_progress(struct testdev *td, struct testdev_progress *out);

#endif
