/*
 * protocol.h - the migration stream's records (docs/migration-stream.md).
 *
 *  source (VM running)                              destination (--incoming)
 *    |-- connect, preamble: "FERRYMIG" u32 version  |
 *    |   u32 role (MAIN) + 16-byte session id ----->| version in window? role?
 *    |-- HELLO {machine, capabilities} ------------>| can it host this VM?
 *    |<------- ACCEPT {agreed capabilities} | REFUSE| (builds the VM)
 *    |-- RAM_PAGES..., ROUND_END (round 0: all) --->|
 *    |-- RAM_PAGES..., ROUND_END (dirtied) -------->|  ... rounds
 *    |   pause vCPUs (stop-and-copy)                |
 *    |-- RAM_PAGES (final), DEVICE..., VCPU... ---->|
 *    |-- STATE_END -------------------------------->| loads, checks all present
 *    |<--------------------------------------- READY|
 *    |-- COMMIT ----------------------------------->| resumes the guest
 *    |<------------------------------------- RUNNING|
 *
 * Further connections of the same migration (page requests, bulk pages)
 * open after ACCEPT with the same preamble, their own role and the
 * session id of the MAIN connection, and are answered ACCEPT or REFUSE
 * (conns.h, incoming_conns.h).
 *
 * Records use the shared framing (io/record.h): a type with REC_OPTIONAL
 * set may be skipped by a peer that does not know it; any other unknown
 * type aborts.  Before COMMIT the source owns the VM and resumes it on any
 * failure; the destination runs the guest only after COMMIT.
 */
#ifndef FERRY_MIG_PROTOCOL_H
#define FERRY_MIG_PROTOCOL_H

#include <stdbool.h>
#include <stdint.h>

#include "io/record.h"
#include "vmm/machine_desc.h"
#include "vmm/machine_state.h"

#define MIG_MAGIC            "FERRYMIG"
/* 2: preamble with role and session id, capabilities in HELLO/ACCEPT,
 *    RAM_PAGES count as u16 + encoding u16, the optional-type bit.
 * 1: preamble is magic + version only; no capabilities.  Still accepted:
 *    its records read as version 2's with every capability at its default. */
#define MIG_VERSION          2
#define MIG_VERSION_MIN      1  /* oldest stream version we accept */
#define MIG_MAX_RECORD       (16u << 20)
/* HELLO: a machine description (MACHINE_DESC_MAX) and capabilities.  A
 * peer claiming more is refused before its payload is read. */
#define MIG_MAX_HELLO        (MACHINE_DESC_MAX + 4096u)
#define MIG_PAGES_PER_RECORD 256
#define MIG_PAGE_ZERO        1ULL /* descriptor flag: page is all zeros */
/* RAM_PAGES descriptor flag: the page's data is a delta against the page
 * as the destination holds it (capability "xbzrle", delta.h) */
#define MIG_PAGE_DELTA       2ULL
#define MIG_SESSION_ID_LEN   16

/* What a connection is for (the preamble says it). */
enum mig_role {
	MIG_ROLE_MAIN = 1,           /* HELLO, rounds, state, handover */
	MIG_ROLE_RETURN_PATH = 2,    /* destination -> source control */
	MIG_ROLE_PAGE_REQUESTS = 3,  /* post-copy: urgent pages */
	MIG_ROLE_BULK_PAGES = 4,     /* extra channels for RAM_PAGES */
	/* post-copy's background push: a role of its own, so that it is
	 * never taken for (or takes) a bulk-pages channel */
	MIG_ROLE_POSTCOPY_PUSH = 5,
};

enum mig_record {
	/* forward stream */
	MIG_REC_HELLO = 0x01,
	MIG_REC_DEVICE = STATE_REC_DEVICE, /* 0x02 */
	MIG_REC_VCPU = STATE_REC_VCPU,     /* 0x03 */
	MIG_REC_RAM_PAGES = 0x10,
	MIG_REC_ROUND_END = 0x11,
	/* on a bulk-pages connection (multifd_send.h): this channel's last
	 * record of a round (u32 round, u64 pages it carried in the round) */
	MIG_REC_CHANNEL_SYNC = 0x12,
	/* before round 0's pages, with the fault-ahead capability: the runs
	 * of guest memory round 0 will carry, as POSTCOPY_MISSING's payload
	 * (fault_ahead.h) */
	MIG_REC_RAM_AHEAD = 0x13,
	MIG_REC_STATE_END = 0x20,
	/* post-copy's switch: the pages the destination lacks (before
	 * STATE_END; postcopy_proto.h) */
	MIG_REC_POSTCOPY_MISSING = 0x21,
	/* post-copy's switch is next: take the page connections and register
	 * guest memory now, before the pause (no payload; sent only with
	 * the postcopy-early-push capability, caps.h) */
	MIG_REC_POSTCOPY_PREPARE = 0x22,
	MIG_REC_COMMIT = 0x30,
	/* post-copy, source -> destination (postcopy_proto.h): a page on
	 * the page-request connection (an answer) or the push connection,
	 * and the push's end */
	MIG_REC_PAGE = 0x40,
	MIG_REC_PUSH_END = 0x41,
	MIG_REC_PUSH_ZERO = 0x42,   /* runs that are zero at the source */
	/* the pages the resumed guest needs first are all pushed before it
	 * (no payload; with postcopy-early-push, postcopy_recv.h) */
	MIG_REC_PUSH_MARK = 0x43,
	/* return path */
	MIG_REC_ACCEPT = 0x81,
	MIG_REC_REFUSE = 0x82,
	MIG_REC_READY = 0x83,
	MIG_REC_RUNNING = 0x84,
	MIG_REC_ERROR = 0x85,
	/* the round's pages are placed (u32 round; only with round-ack) */
	MIG_REC_ROUND_ACK = 0x86,
	/* post-copy, destination -> source on the page-request connection */
	MIG_REC_PAGE_REQUEST = 0x90,
	MIG_REC_PAGES_DONE = 0x91,   /* every page arrived: the source may let go */
	/* post-copy recovery: the pages the destination holds, first on a
	 * new page-request connection (postcopy_proto.h) */
	MIG_REC_RECV_BITMAP = 0x92,
	/* the pages placed since the last one, as runs (postcopy_proto.h;
	 * only with release-ram: the source lets go of them) */
	MIG_REC_PAGES_HAVE = 0x93,
};

/* COMMIT's payload (u32 flags; empty from older sources: running). */
#define MIG_COMMIT_RUNNING   1u  /* the guest ran at the source: resume it */

const char *mig_record_name(uint32_t type);
/* A type this ferry defines (wherever it belongs). */
bool mig_record_known(uint32_t type);
const char *mig_role_name(uint32_t role);

#endif
