/*
 * protocol.h - the migration stream's records (docs/migration-stream.md).
 *
 *  source (VM running)                            destination (--incoming)
 *    |-- "FERRYMIG" u32 version ------------------>| version in window?
 *    |-- HELLO {memory, slots, cpuid, devices} --->| can it host this VM?
 *    |<--------------------------- ACCEPT|REFUSE --|
 *    |-- RAM_PAGES..., ROUND_END (round 0: all) -->|
 *    |-- RAM_PAGES..., ROUND_END (dirtied) ------->|  ... rounds
 *    |   pause vCPUs (stop-and-copy)               |
 *    |-- RAM_PAGES (final), DEVICE..., VCPU... --->|
 *    |-- STATE_END ------------------------------->| loads, checks all present
 *    |<-------------------------------------- READY|
 *    |-- COMMIT ---------------------------------->| resumes the guest
 *    |<------------------------------------ RUNNING|
 *
 * Before COMMIT the source owns the VM and resumes it on any failure; the
 * destination runs the guest only after COMMIT.
 */
#ifndef FERRY_MIG_PROTOCOL_H
#define FERRY_MIG_PROTOCOL_H

#include "vmm/machine_state.h"

#define MIG_MAGIC            "FERRYMIG"
#define MIG_VERSION          1
#define MIG_VERSION_MIN      1  /* oldest stream version we accept */
#define MIG_MAX_RECORD       (16u << 20)
#define MIG_PAGES_PER_RECORD 256
#define MIG_PAGE_ZERO        1ULL /* descriptor flag: page is all zeros */

enum mig_record {
	/* forward stream */
	MIG_REC_HELLO = 0x01,
	MIG_REC_DEVICE = STATE_REC_DEVICE, /* 0x02 */
	MIG_REC_VCPU = STATE_REC_VCPU,     /* 0x03 */
	MIG_REC_RAM_PAGES = 0x10,
	MIG_REC_ROUND_END = 0x11,
	MIG_REC_STATE_END = 0x20,
	MIG_REC_COMMIT = 0x30,
	/* return path */
	MIG_REC_ACCEPT = 0x81,
	MIG_REC_REFUSE = 0x82,
	MIG_REC_READY = 0x83,
	MIG_REC_RUNNING = 0x84,
	MIG_REC_ERROR = 0x85,
};

const char *mig_record_name(unsigned type);

#endif
