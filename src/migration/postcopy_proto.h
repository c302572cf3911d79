/*
 * postcopy_proto.h - the post-copy records (docs/migration-stream.md,
 * "Post-copy"), both ways:
 *
 *   PAGE_REQUEST (0x90), destination -> source, on the PAGE_REQUESTS
 *   connection:   u32 count | count x { u64 gpa | u32 npages | u32 0 }
 *   PAGE (0x40), source -> destination, on the PAGE_REQUESTS connection
 *   (an answer) or on the push connection:
 *                 u64 descriptor | data[4096] (absent for a zero page)
 *   PUSH_END (0x41), empty: the push has sent every page.
 *
 * A descriptor is the page's guest-physical address with flag bits:
 * MIG_PAGE_ZERO (bit 0, no data follows) and PCP_PAGE_ANSWER (bit 1, sent
 * because it was requested).  One page per record: the destination
 * places an answer with one UFFDIO_COPY straight from the record's
 * payload, so an urgent answer never waits for a batch to fill (pushed
 * pages already waiting are gathered into runs there).  The framing
 * costs 20 bytes per 4 KiB page (0.5%).
 *
 * Answers travel on their own connection so that a request never waits
 * behind bulk data already queued on the push connection.
 */
#ifndef FERRY_MIG_POSTCOPY_PROTO_H
#define FERRY_MIG_POSTCOPY_PROTO_H

#include <stdbool.h>
#include <stdint.h>

#include "io/record.h"
#include "migration/protocol.h"
#include "vmm/memory.h"

#define PCP_PAGE_ANSWER     2ULL
#define PCP_PAGE_HEADER     8u
#define PCP_REQ_MAX_RANGES  256u
#define PCP_REQ_MAX_PAGES   4096u   /* per range: 16 MiB */

/* What the push connection may hold queued, each end (channel_set_queue):
 * a request for a page whose push reached the destination's socket is not
 * answered again, so a vCPU that faults on it waits for the queue ahead
 * of it to drain there; a page still in the source's socket is answered,
 * so a bigger queue there would mean more pages sent twice.  Measured in
 * docs/bench-postcopy.md. */
#define PCP_PUSH_QUEUE_BYTES (256 * 1024)

struct pcp_range {
	uint64_t gpa;
	uint32_t npages;
};

/**
 * pcp_put_page() - one PAGE record for the 4 KiB at page (read once, so
 * the copy sent is consistent).  A page of zeros goes without data.
 * Returns true if it went as a zero page.
 */
bool pcp_put_page(struct rec_writer *w, uint64_t gpa, const void *page,
		  bool answer);

/**
 * pcp_parse_page() - check one PAGE payload against mem: known flags, an
 * aligned address inside guest RAM, the length its flags imply.  *data is
 * the page's bytes, NULL for a zero page.  Returns 0 or -EPROTO with a
 * message.
 */
int pcp_parse_page(const uint8_t *p, uint32_t len,
		   const struct guest_memory *mem, uint64_t *gpa,
		   const uint8_t **data, bool *answer, char *err);

/* One PAGE_REQUEST record for n ranges (1 <= n <= PCP_REQ_MAX_RANGES). */
void pcp_put_request(struct rec_writer *w, const struct pcp_range *r,
		     unsigned n);

/**
 * pcp_parse_request() - check one PAGE_REQUEST payload whole (count,
 * length, each range aligned, non-empty, at most PCP_REQ_MAX_PAGES and
 * inside one region of mem) and fill out[0..*n).  out has room for
 * PCP_REQ_MAX_RANGES.  Returns 0 or -EPROTO with a message.
 */
int pcp_parse_request(const uint8_t *p, uint32_t len,
		      const struct guest_memory *mem, struct pcp_range *out,
		      unsigned *n, char *err);

/*
 * POSTCOPY_MISSING (main connection, source -> destination, after the
 * machine state, before STATE_END; one or more records):
 *   u32 count (1..PCP_MISSING_MAX_RUNS) | u32 0 | count x {u64 gpa, u64 npages}
 * The pages the destination lacks or holds stale: each run page aligned,
 * npages >= 1, inside one memory slot.  Every page not listed is current
 * at the destination (pre-copy sent it and the guest has not written it
 * since).
 */
#define PCP_MISSING_MAX_RUNS 65536u
#define PCP_MISSING_HEADER   8u
#define PCP_MISSING_RUN      16u

struct pcp_run {
	uint64_t gpa;
	uint64_t npages;
};

/* A growing list of runs, in increasing order, adjacent ones joined. */
struct pcp_run_list {
	struct pcp_run *runs;  /* malloc'd */
	size_t n, cap;
	uint64_t pages;
	uint64_t slot_gpa;     /* pcp_run_list_add's pages count from here */
};

/* Append pages [first, first+npages) of the slot at l->slot_gpa (a
 * memory_run_fn); 0 or -ENOMEM. */
int pcp_run_list_add(void *l, uint64_t first, uint64_t npages);
/* Append the runs of every slot of mem that may hold data
 * (memory_populated_runs); 0 or a negative errno. */
int pcp_list_populated(const struct guest_memory *mem, struct pcp_run_list *l);

/* Queue POSTCOPY_MISSING records for runs[0..n) (as many records as the
 * run limit needs; none for n == 0). */
void pcp_put_missing(struct rec_writer *w, const struct pcp_run *runs, size_t n);
/* The same payload under another record type (PUSH_ZERO, PAGES_HAVE);
 * returns the records queued. */
size_t pcp_put_runs(struct rec_writer *w, uint32_t type, const struct pcp_run *runs,
		    size_t n);

/**
 * pcp_parse_missing() - check one POSTCOPY_MISSING payload whole against
 * mem (length, count, reserved word, every run), then call fn for each
 * run in order (stopping at its first non-zero return, which is
 * returned).  Returns 0, or -EPROTO with a message naming the run.
 */
int pcp_parse_missing(const uint8_t *p, uint32_t len,
		      const struct guest_memory *mem,
		      int (*fn)(void *opaque, uint64_t gpa, uint64_t npages),
		      void *opaque, char *err);
/* The same for a payload of runs under another record type, named in
 * the messages. */
int pcp_parse_runs(uint32_t type, const uint8_t *p, uint32_t len,
		   const struct guest_memory *mem,
		   int (*fn)(void *opaque, uint64_t gpa, uint64_t npages),
		   void *opaque, char *err);

/*
 * PUSH_ZERO (push connection, source -> destination; with the
 * postcopy-zero-runs capability): the payload of POSTCOPY_MISSING, runs
 * of pages that are zero at the source (never written there).  A source
 * that listed all of RAM missing in the pause, to spare the scan for
 * what the guest ever touched, sends them once the guest runs at the
 * destination; the destination then holds them as zero and asks for
 * none of them.
 */

/*
 * RECV_BITMAP (0x92), destination -> source, the first record on the new
 * page-request connection of a post-copy recovery:
 *   u64 npages | ceil(npages / 64) x u64 words, bit i of word w: page
 *   64 w + i (memory_page_index's numbering) has arrived
 * The source pushes every page without its bit again: pages sent before
 * the break may have been lost on the way.
 */
#define PCP_BITMAP_MAX_PAGES ((uint64_t)(MIG_MAX_RECORD - 8) / 8 * 64)

/* Queue one RECV_BITMAP record (bits: npages bits). */
void pcp_put_recv_bitmap(struct rec_writer *w, const uint64_t *bits,
			 uint64_t npages);

/**
 * pcp_parse_recv_bitmap() - check one RECV_BITMAP payload against this
 * guest's npages and copy it into out (npages/64 + 1 words; bits past
 * the last page cleared).  Returns 0 or -EPROTO with a message.
 */
int pcp_parse_recv_bitmap(const uint8_t *p, uint32_t len, uint64_t npages,
			  uint64_t *out, char *err);

#endif
