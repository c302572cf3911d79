/*
 * stats.h - what a migration measured: per round and in total, reported
 * by query-migrate in QEMU's field names and units (ms, bytes, pages) with
 * ferry's extra detail beside them.
 */
#ifndef FERRY_MIG_STATS_H
#define FERRY_MIG_STATS_H

#include "migration/multifd_send.h"
#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

#include "io/tls.h"
#include "migration/migration.h"
#include "migration/postcopy_source.h"
#include "util/log.h"

#define MIG_MAX_ROUND_STATS 256

struct mig_round_stats {
	uint32_t round;
	uint64_t pages;         /* pages sent in the round */
	uint64_t zero_pages;    /* of which zero (sent as a flag) */
	uint64_t bytes;         /* bytes on the wire in the round */
	uint64_t dirty_pages;   /* dirty set found at the round's start */
	uint64_t duration_ns;
};

#define MIG_STATS_VCPUS 64  /* VM_MAX_VCPUS */

struct mig_stats {
	enum mig_status status;
	char error[512];
	uint64_t start_ns, setup_done_ns, end_ns;
	uint64_t pause_ns;            /* when the vCPUs stopped */
	uint64_t downtime_ns;         /* pause -> destination running */
	/* where the downtime went: vCPUs parked, final round sent, state
	 * sent, destination ready (loaded), destination running */
	uint64_t t_parked, t_final_sent, t_state_sent, t_ready, t_running;
	uint64_t expected_downtime_ms;
	uint64_t ram_total;           /* guest RAM bytes */
	uint64_t remaining_pages;     /* dirty, not yet sent */
	uint64_t normal_pages, zero_pages;
	uint64_t wire_bytes;          /* everything sent on the socket */
	uint64_t rounds;              /* dirty-log syncs ("dirty-sync-count") */
	double bandwidth;             /* bytes/s, last measured (a whole round) */
	double live_bandwidth;        /* bytes/s in the round running, 0 = not yet */
	uint32_t current_round;       /* the round being sent, or the last one */
	double dirty_rate;            /* pages/s, last measured */
	char convergence[96];         /* why pre-copy stopped */
	/* Page compression ("multifd-compression") as agreed in HELLO, and
	 * what it did: page data before and after encoding (zero pages are
	 * in neither), records compressed and records that did not shrink
	 * and went raw. */
	char compression[32];  /* as caps.h holds it */
	unsigned zstd_level;
	uint64_t page_plain_bytes, page_data_bytes;
	uint64_t compressed_batches, raw_batches;
	/* Connections carrying pages ("multifd-channels" as agreed): 1 is
	 * the main one; more are page channels, each with its figures. */
	unsigned channels;
	struct mf_channel_stats chan[MF_MAX_CHANNELS];
	/* Deltas (capability "xbzrle"): asked for, agreed with the
	 * destination, the cache's size, and ram_codec.h's counts. */
	bool xbzrle, xbzrle_agreed;
	uint64_t xbzrle_cache_size;
	uint64_t xbzrle_eligible, xbzrle_pages, xbzrle_unchanged, xbzrle_bytes;
	uint64_t xbzrle_cache_miss, xbzrle_overflow;
	/* Why pre-copy goes on although it stopped converging (policy
	 * "wait": the rest does not fit); empty otherwise. */
	char waiting[256];
	uint64_t downtime_limit_ms;   /* the limit in force (may change live) */
	uint64_t max_bandwidth;       /* the rate limit in force, 0 = none */
	bool forced;                  /* switched over although it did not fit */
	/* How dirty pages are tracked: KVM's ring of this many entries per
	 * vCPU (0: the bitmap), its entries harvested and full-ring exits
	 * during this migration. */
	uint32_t dirty_ring;
	uint64_t ring_harvested, ring_full_exits;
	/* Auto-converge: on for this migration; the guest's throttle in
	 * force (0 again once the migration ends) and the highest it
	 * reached, times raised, vCPU time taken. */
	bool auto_converge;
	unsigned throttle_percent, throttle_max, throttle_steps;
	uint64_t throttled_ns;
	/* With round-ack: time the source waited, guest running, for the
	 * destination to confirm rounds (the destination behind). */
	uint64_t ack_wait_ns;
	/* Dirty limit: on for this migration, holding vCPUs now (the
	 * trigger fired), the limit, and each vCPU's last rate and share. */
	bool dirty_limit, dirty_limit_active;
	uint64_t dirty_limit_bps;
	unsigned dl_nvcpus;
	struct { uint64_t rate; unsigned percent; } dl_vcpu[MIG_STATS_VCPUS];
	/* The hand-over as the source knows it.  commit_started: from here
	 * a cancel is refused (it would race the COMMIT); commit_sent: the
	 * whole COMMIT record went out; then either confirmed (RUNNING),
	 * dest_failed (ERROR: it will not run it) or neither (unknown). */
	bool commit_started, commit_sent, confirmed, dest_failed;
	char handover_error[256];     /* why no confirmation came */
	bool tls;                     /* the connection is TLS: tls_info says how */
	struct tls_info tls_info;
	/* Post-copy (mode postcopy/hybrid, migrate-start-postcopy): used at
	 * all; pages the destination lacked at the switch; when the guest
	 * ran there and when the last page was confirmed; the page server's
	 * figures (live while it runs: source.c fills them in for
	 * query-migrate). */
	bool postcopy;
	uint64_t postcopy_missing;
	uint64_t postcopy_start_ns, postcopy_end_ns;
	uint64_t postcopy_recoveries;  /* reconnections after a pause */
	struct pcs_stats pcs;
	unsigned nround;       /* the latest MIG_MAX_ROUND_STATS rounds */
	struct mig_round_stats round[MIG_MAX_ROUND_STATS];
};

json_t *mig_stats_json(const struct mig_stats *s, uint64_t now_ns);
/* query-migrate's ferry.postcopy at the source: missing-pages (at the
 * switch), pages-pushed, pages-requested, prepage-hits (requested after
 * the push took them), prepage-not-resent (of those, not answered: the
 * push had delivered them), pages-present
 * (held by the destination already), zero-pages, bytes-answers and
 * bytes-push (per connection, once post-copy ended), window-pages,
 * duration-ms.  A new reference. */
json_t *mig_postcopy_source_json(const struct mig_stats *s, uint64_t now_ns);
/* The migration is over: completed, failed or cancelled. */
bool mig_status_ended(enum mig_status st);
/* The pause was longer than the downtime limit the decision used. */
bool mig_stats_downtime_exceeded(const struct mig_stats *s);
/*
 * What the source knows of the hand-over (query-migrate's
 * ferry.handover.outcome): "not-committed" (the guest is the source's),
 * "committing" (COMMIT being sent), "awaiting-confirmation",
 * "destination-running", "destination-failed" (it said ERROR after
 * COMMIT: the source resumed), "unknown" (COMMIT sent, no answer: the
 * source stays postmigrate-unknown).
 */
const char *mig_handover_outcome(const struct mig_stats *s);
json_t *mig_handover_json(const struct mig_stats *s);
/**
 * mig_compression_json() - query-migrate's ferry.compression, the same on
 * both sides: {"method", "bytes-before", "bytes-after", "ratio" (before /
 * after, 1.0 with no data yet), "compressed-batches", "raw-batches"},
 * plus "zstd-level" for zstd when level >= 0.
 */
json_t *mig_compression_json(const char *method, int level, uint64_t before,
			     uint64_t after, uint64_t compressed_batches,
			     uint64_t raw_batches);
/**
 * mig_channels_json() - query-migrate's ferry.channels, both sides:
 * {"count": n, "per-channel": [{"channel", "pages", "zero-pages",
 * "batches", "bytes" (on the wire), "bytes-before", "bytes-after" (page
 * data before/after compression)}]}; per-channel is empty with one
 * connection (the main one carries the pages).
 */
json_t *mig_channels_json(unsigned n, const struct mf_channel_stats *chan);
/**
 * mig_xbzrle_json() - query-migrate's "xbzrle-cache", QEMU's shape:
 * {"cache-size", "bytes", "pages", "cache-miss", "cache-miss-rate"
 * (misses over the data pages resent), "encoding-rate" (the pages' bytes
 * over their deltas' bytes), "overflow"}.
 */
json_t *mig_xbzrle_json(const struct mig_stats *s);
/* The one-line summary both sides log. */
void mig_stats_log(const struct mig_stats *s, const char *role);

#endif
