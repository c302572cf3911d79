#include "migration/stats.h"
#include "migration/secure.h"
#include "util/units.h"

#include <stdio.h>
#include <string.h>

static double ms(uint64_t ns) { return ns / 1e6; }

bool mig_stats_downtime_exceeded(const struct mig_stats *s)
{
	return s->downtime_ns > s->downtime_limit_ms * 1000000ULL;
}

bool mig_status_ended(enum mig_status st)
{
	return st == MIG_STATUS_COMPLETED || st == MIG_STATUS_FAILED ||
	       st == MIG_STATUS_CANCELLED;
}

const char *mig_handover_outcome(const struct mig_stats *s)
{
	if (!s->commit_sent)
		return s->commit_started ? "committing" : "not-committed";
	if (s->confirmed)
		return "destination-running";
	if (s->dest_failed)
		return "destination-failed";
	return mig_status_ended(s->status) ? "unknown" : "awaiting-confirmation";
}

json_t *mig_handover_json(const struct mig_stats *s)
{
	json_t *h = json_pack("{s:b,s:b,s:s}", "commit-sent", s->commit_sent,
			      "confirmed", s->confirmed,
			      "outcome", mig_handover_outcome(s));
	if (h && s->handover_error[0])
		json_object_set_new(h, "error", json_string(s->handover_error));
	return h;
}

json_t *mig_compression_json(const char *method, int level, uint64_t before,
			     uint64_t after, uint64_t compressed_batches,
			     uint64_t raw_batches)
{
	json_t *c = json_pack("{s:s, s:I, s:I, s:f, s:I, s:I}",
			      "method", method && *method ? method : "none",
			      "bytes-before", (json_int_t)before,
			      "bytes-after", (json_int_t)after,
			      "ratio", after ? (double)before / after : 1.0,
			      "compressed-batches", (json_int_t)compressed_batches,
			      "raw-batches", (json_int_t)raw_batches);
	if (c && level >= 0 && method && !strcmp(method, "zstd"))
		json_object_set_new(c, "zstd-level", json_integer(level));
	return c;
}

json_t *mig_channels_json(unsigned n, const struct mf_channel_stats *chan)
{
	json_t *per = json_array();
	/* One connection is the main one: no per-channel figures. */
	for (unsigned i = 0; n > 1 && i < n; i++)
		json_array_append_new(per, json_pack(
			"{s:i, s:I, s:I, s:I, s:I, s:I, s:I}", "channel", (int)i,
			"pages", (json_int_t)chan[i].pages,
			"zero-pages", (json_int_t)chan[i].zero_pages,
			"batches", (json_int_t)chan[i].batches,
			"bytes", (json_int_t)chan[i].bytes,
			"bytes-before", (json_int_t)chan[i].plain_bytes,
			"bytes-after", (json_int_t)chan[i].data_bytes));
	return json_pack("{s:i, s:o}", "count", (int)(n ? n : 1), "per-channel", per);
}

json_t *mig_postcopy_source_json(const struct mig_stats *s, uint64_t now_ns)
{
	const struct pcs_stats *p = &s->pcs;
	uint64_t end = s->postcopy_end_ns ? s->postcopy_end_ns : now_ns;
	json_t *o = json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}",
			      "missing-pages", (json_int_t)s->postcopy_missing,
			      "pages-pushed", (json_int_t)p->pushed,
			      "pages-requested", (json_int_t)p->requested,
			      "prepage-hits", (json_int_t)p->prepage_hits,
			      "pages-present", (json_int_t)p->present,
			      "zero-pages", (json_int_t)p->zero_pages,
			      "bytes-answers", (json_int_t)p->bytes_answers,
			      "bytes-push", (json_int_t)p->bytes_push,
			      "window-pages", (json_int_t)p->window);
	if (o) {
		json_object_set_new(o, "recoveries",
				    json_integer((json_int_t)s->postcopy_recoveries));
		json_object_set_new(o, "prepage-not-resent",
				    json_integer((json_int_t)p->not_resent));
		/* Pure post-copy with early push: the pages named zero after
		 * the hand-over, and the framing that named them and marked
		 * the end of the pages the guest needed first. */
		json_object_set_new(o, "pages-named-zero",
				    json_integer((json_int_t)p->named_zero));
		json_object_set_new(o, "zero-runs", json_integer((json_int_t)p->zero_runs));
		json_object_set_new(o, "zero-run-records",
				    json_integer((json_int_t)p->zero_records));
		json_object_set_new(o, "push-marks", json_integer((json_int_t)p->marks));
		/* release-ram: pages the destination confirmed, dropped here. */
		json_object_set_new(o, "pages-released", json_integer((json_int_t)p->released));
	}
	if (o && s->postcopy_start_ns)
		json_object_set_new(o, "duration-ms", json_integer(
			(json_int_t)ms(end - s->postcopy_start_ns)));
	return o;
}

json_t *mig_xbzrle_json(const struct mig_stats *s)
{
	return json_pack("{s:I, s:I, s:I, s:I, s:f, s:f, s:I}",
			 "cache-size", (json_int_t)s->xbzrle_cache_size,
			 "bytes", (json_int_t)s->xbzrle_bytes,
			 "pages", (json_int_t)s->xbzrle_pages,
			 "cache-miss", (json_int_t)s->xbzrle_cache_miss,
			 "cache-miss-rate", s->xbzrle_eligible
				 ? (double)s->xbzrle_cache_miss / s->xbzrle_eligible : 0.0,
			 "encoding-rate", s->xbzrle_bytes
				 ? (double)s->xbzrle_pages * 4096 / s->xbzrle_bytes : 0.0,
			 "overflow", (json_int_t)s->xbzrle_overflow);
}

json_t *mig_stats_json(const struct mig_stats *s, uint64_t now_ns)
{
	json_t *j = json_object();
	json_object_set_new(j, "status", json_string(mig_status_name(s->status)));
	if (s->status == MIG_STATUS_NONE)
		return j;
	uint64_t end = s->end_ns ? s->end_ns : now_ns;
	json_object_set_new(j, "total-time",
			    json_integer((json_int_t)ms(end - s->start_ns)));
	if (s->setup_done_ns)
		json_object_set_new(j, "setup-time",
				    json_integer((json_int_t)ms(s->setup_done_ns - s->start_ns)));
	if (s->status == MIG_STATUS_COMPLETED)
		json_object_set_new(j, "downtime",
				    json_integer((json_int_t)ms(s->downtime_ns)));
	/* Known from the first decision (after round 0) on; 0 before it
	 * would read as "no pause at all". */
	if (s->status == MIG_STATUS_ACTIVE && s->expected_downtime_ms)
		json_object_set_new(j, "expected-downtime",
				    json_integer((json_int_t)s->expected_downtime_ms));
	if (s->error[0])
		json_object_set_new(j, "error-desc", json_string(s->error));

	double secs = (end - (s->setup_done_ns ? s->setup_done_ns : s->start_ns)) / 1e9;
	json_t *ram = json_object();
	json_object_set_new(ram, "transferred", json_integer((json_int_t)s->wire_bytes));
	json_object_set_new(ram, "total", json_integer((json_int_t)s->ram_total));
	json_object_set_new(ram, "remaining",
			    json_integer((json_int_t)(s->remaining_pages * 4096)));
	json_object_set_new(ram, "duplicate", json_integer((json_int_t)s->zero_pages));
	json_object_set_new(ram, "normal", json_integer((json_int_t)s->normal_pages));
	json_object_set_new(ram, "normal-bytes",
			    json_integer((json_int_t)(s->normal_pages * 4096)));
	/* The rate of the round running once it has one, else the last
	 * round's: figures that move from the first second. */
	double rate = s->live_bandwidth > 0 ? s->live_bandwidth : s->bandwidth;
	json_object_set_new(ram, "mbps", json_real(rate * 8 / 1e6));
	json_object_set_new(ram, "dirty-sync-count", json_integer((json_int_t)s->rounds));
	json_object_set_new(ram, "dirty-pages-rate", json_integer((json_int_t)s->dirty_rate));
	json_object_set_new(ram, "pages-per-second",
			    json_real(secs > 0 ? (s->normal_pages + s->zero_pages) / secs : 0));
	json_object_set_new(j, "ram", ram);
	/* As QEMU: present when the capability is on. */
	if (s->xbzrle)
		json_object_set_new(j, "xbzrle-cache", mig_xbzrle_json(s));

	json_t *f = json_object();
	json_t *rounds = json_array();
	for (unsigned i = 0; i < s->nround; i++) {
		const struct mig_round_stats *r = &s->round[i];
		double d = r->duration_ns / 1e9;
		json_array_append_new(rounds, json_pack(
			"{s:i, s:I, s:I, s:I, s:I, s:f, s:f}",
			"round", (int)r->round,
			"pages", (json_int_t)r->pages,
			"zero-pages", (json_int_t)r->zero_pages,
			"bytes", (json_int_t)r->bytes,
			"dirty-pages", (json_int_t)r->dirty_pages,
			"duration-ms", ms(r->duration_ns),
			"mbps", d > 0 ? r->bytes * 8 / d / 1e6 : 0.0));
	}
	json_object_set_new(f, "rounds", rounds);
	json_object_set_new(f, "convergence-reason", json_string(s->convergence));
	if (s->waiting[0] && s->status == MIG_STATUS_ACTIVE)
		json_object_set_new(f, "not-converging", json_string(s->waiting));
	json_object_set_new(f, "downtime-limit-ms",
			    json_integer((json_int_t)s->downtime_limit_ms));
	json_object_set_new(f, "max-bandwidth",
			    json_integer((json_int_t)s->max_bandwidth));
	json_object_set_new(f, "switchover-forced", json_boolean(s->forced));
	json_object_set_new(f, "round-ack-wait-ms",
			    json_integer((json_int_t)(s->ack_wait_ns / 1000000)));
	if (s->status == MIG_STATUS_COMPLETED)
		json_object_set_new(f, "downtime-exceeded", json_boolean(
			mig_stats_downtime_exceeded(s)));
	json_object_set_new(f, "wire-bytes", json_integer((json_int_t)s->wire_bytes));
	json_object_set_new(f, "bandwidth-bytes-per-second", json_integer((json_int_t)rate));
	if (s->status == MIG_STATUS_ACTIVE || s->status == MIG_STATUS_DEVICE) {
		/* The round being sent (numbered as in "rounds") and when its
		 * pages should be out at the current rate. */
		json_object_set_new(f, "current-round", json_integer(s->current_round));
		double eta = rate > 0 ? s->remaining_pages * 4096 * 1000.0 / rate : -1;
		if (eta >= 0 && eta < 1e15) /* beyond: a rate near zero says nothing */
			json_object_set_new(f, "current-round-eta-ms",
					    json_integer((json_int_t)eta));
	}
	json_object_set_new(f, "downtime-observed-by", json_string("source"));
	if (s->downtime_ns) {
		json_object_set_new(f, "downtime-us",
				    json_integer((json_int_t)(s->downtime_ns / 1000)));
		json_object_set_new(f, "downtime-breakdown-us", json_pack(
			"{s:I, s:I, s:I, s:I, s:I}",
			"pause", (json_int_t)((s->t_parked - s->pause_ns) / 1000),
			"final-round", (json_int_t)((s->t_final_sent - s->t_parked) / 1000),
			"state", (json_int_t)((s->t_state_sent - s->t_final_sent) / 1000),
			"load", (json_int_t)((s->t_ready - s->t_state_sent) / 1000),
			"commit", (json_int_t)((s->t_running - s->t_ready) / 1000)));
	}
	json_object_set_new(f, "handover", mig_handover_json(s));
	json_object_set_new(f, "compression", mig_compression_json(
		s->compression, (int)s->zstd_level, s->page_plain_bytes,
		s->page_data_bytes, s->compressed_batches, s->raw_batches));
	json_object_set_new(f, "tls", mig_tls_json(s->tls, &s->tls_info));
	json_object_set_new(f, "channels", mig_channels_json(s->channels, s->chan));
	if (s->postcopy || s->postcopy_missing)
		json_object_set_new(f, "postcopy", mig_postcopy_source_json(s, now_ns));
	json_object_set_new(f, "dirty-tracking", s->dirty_ring ?
		json_pack("{s:s,s:i,s:I,s:I}", "method", "ring",
			  "ring-entries", (int)s->dirty_ring,
			  "harvested", (json_int_t)s->ring_harvested,
			  "ring-full-exits", (json_int_t)s->ring_full_exits) :
		json_pack("{s:s}", "method", "bitmap"));
	/* QEMU shows the throttle whenever auto-converge is on. */
	if (s->auto_converge)
		json_object_set_new(j, "cpu-throttle-percentage",
				    json_integer(s->throttle_percent));
	if (s->dirty_limit) {
		json_t *v = json_array();
		for (unsigned i = 0; i < s->dl_nvcpus && i < MIG_STATS_VCPUS; i++)
			json_array_append_new(v, json_pack("{s:i,s:I,s:i}",
				"cpu-index", (int)i,
				"dirty-rate", (json_int_t)s->dl_vcpu[i].rate,
				"throttle-percentage", (int)s->dl_vcpu[i].percent));
		json_object_set_new(f, "dirty-limit", json_pack("{s:b,s:I,s:o}",
			"active", (int)s->dirty_limit_active,
			"limit-bytes-per-second", (json_int_t)s->dirty_limit_bps,
			"vcpus", v));
	}
	json_object_set_new(f, "throttle", json_pack(
		"{s:b,s:i,s:i,s:i,s:I}", "auto-converge", (int)s->auto_converge,
		"percentage", (int)s->throttle_percent,
		"max-percentage", (int)s->throttle_max,
		"steps", (int)s->throttle_steps,
		"throttled-ms", (json_int_t)(s->throttled_ns / 1000000)));
	if (s->xbzrle)
		/* What QEMU's object lacks: whether the destination took it,
		 * and the pages resent unchanged (2 bytes each). */
		json_object_set_new(f, "xbzrle", json_pack(
			"{s:b, s:I, s:I}", "agreed", s->xbzrle_agreed,
			"resent-pages", (json_int_t)s->xbzrle_eligible,
			"unchanged-pages", (json_int_t)s->xbzrle_unchanged));
	json_object_set_new(j, "ferry", f);
	return j;
}

void mig_stats_log(const struct mig_stats *s, const char *role)
{
	uint64_t end = s->end_ns ? s->end_ns : s->start_ns;
	char total[UNITS_LEN], down[UNITS_LEN], wire[UNITS_LEN];
	char comp[128] = "";

	size_t o = 0;
	if (s->compression[0] && strcmp(s->compression, "none"))
		o = (size_t)snprintf(comp, sizeof(comp), ", %s ratio %.2f", s->compression,
				     s->page_data_bytes
					     ? (double)s->page_plain_bytes / s->page_data_bytes
					     : 1.0);
	if (s->xbzrle_agreed && o < sizeof(comp))
		snprintf(comp + o, sizeof(comp) - o, ", %llu pages as deltas (xbzrle)",
			 (unsigned long long)s->xbzrle_pages);
	log_info("migration %s %s: %s total, %s downtime, %llu rounds, "
		 "%s on the wire (%llu pages, %llu zero%s)%s%s",
		 role, mig_status_name(s->status),
		 units_duration_ms(total, sizeof(total), ms(end - s->start_ns)),
		 units_duration_ms(down, sizeof(down), ms(s->downtime_ns)),
		 (unsigned long long)s->rounds,
		 units_size(wire, sizeof(wire), (double)s->wire_bytes),
		 (unsigned long long)s->normal_pages,
		 (unsigned long long)s->zero_pages, comp,
		 /* A failure's reason has its own error line (precopy.c):
		  * printed once. */
		 s->error[0] && s->status != MIG_STATUS_FAILED ? ": " : "",
		 s->status != MIG_STATUS_FAILED ? s->error : "");
}
