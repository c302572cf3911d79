/*
 * Pre-copy live migration, source side (Clark et al., NSDI 2005):
 *
 *   round 0      send all memory while the guest runs
 *   round N      send what the dirty log says was written since
 *   converge     when the rest fits the downtime target at the measured
 *                bandwidth; when it does not, the policy (convergence.h):
 *                "wait" pushes on, "force" switches over anyway once the
 *                dirty set stops shrinking, "abort" gives up
 *   stop-and-copy pause, send the final dirty set and all state
 *   handover     READY from the destination, COMMIT, RUNNING back
 *
 * Until COMMIT is sent, any failure resumes the guest here.
 */
#include "migration/source.h"
#include "migration/channel.h"
#include "migration/conns.h"
#include "migration/convergence.h"
#include "migration/delta_cache.h"
#include "migration/fault_ahead.h"
#include "migration/hello.h"
#include "migration/multifd_conns.h"
#include "migration/postcopy_proto.h"
#include "migration/postcopy_source.h"
#include "vmm/memory_runs.h"
#include "migration/preamble.h"
#include "migration/protocol.h"
#include "migration/ram_codec.h"
#include "migration/secure.h"
#include "migration/stream.h"
#include "vmm/dirty_log.h"
#include "vmm/machine_state.h"
#include "vmm/memory.h"
#include "vmm/vm.h"
#include "vmm/x86/vcpu_pages.h"
#include "util/bitmap.h"
#include "util/log.h"
#include "util/nice.h"
#include "util/units.h"
#include "util/clock.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <pthread.h>
#include <linux/sockios.h>

#define PAGE              GUEST_PAGE_SIZE
#define CLEAR_CHUNK_PAGES 4096   /* re-arm the dirty log 16 MiB at a time */
#define CONNECT_TIMEOUT_MS 10000
/* Post-copy pushes first each vCPU's pages, then so many pages on each
 * side of each of them. */
#define AROUND_PAGES 4
#define READY_TIMEOUT_MS  10000u /* stop-and-copy: state sent -> READY */
#define READY_MAX_EXTRA_MS 50000u /* ... plus the send queue's time, at most */
#define LINGER_MS         1500   /* keep answering query-migrate after completion */
#define STATE_ESTIMATE    (64u << 10) /* bytes of device/vCPU state, per vCPU */
#define PROGRESS_NS       50000000ULL /* query-migrate's figures move this often */
#define TELL_TIMEOUT_MS   250     /* sending the destination why it ends */
#define HANDOVER_OUTPUT_DRAIN_MS 20u /* the guest's queued output, before COMMIT */

struct precopy {
	struct migration *m;
	struct vm *vm;
	struct mig_stream s;
	uint64_t *bitmap[MEM_MAX_SLOTS];
	uint32_t round;
	struct ram_batch batch;   /* pages for the next RAM_PAGES record */
	struct ram_encoder enc;   /* the agreed compression (or none) */
	struct ram_counts counts; /* all records so far (the ratio) */
	/* Page bytes moved per second, when compression or deltas make a
	 * wire byte carry more than one (0: neither, or not measured yet):
	 * what the convergence rule needs, where the link's rate alone
	 * would make a compressed rest look far slower than it is. */
	double mem_bandwidth;
	uint64_t round_pages, round_zero;
	/* The round in progress, for progress published while it runs. */
	uint64_t round_dirty, round_t0, round_b0;
	uint64_t base_normal, base_zero;  /* totals before this round */
	uint64_t last_publish_ns;
	bool logging, paused_by_us;
	bool said_waiting;  /* logged that the rest does not fit, once */
	bool dest_error;    /* the destination said ERROR: it will not run it */
	struct conv_history conv; /* what the stop rule remembers */
	struct { uint64_t harvested, full_exits; } ring0; /* the dirty ring's at start */
	struct ac_state ac;       /* what auto-converge remembers */
	uint64_t throttled_ns0;   /* vm_throttle_ns when the migration began */
	bool dl_on;               /* the dirty limit holds the vCPUs */
	struct mig_caps caps;     /* agreed with the destination */
	/* With round-ack: rounds 0 .. acked-1 are placed at the destination. */
	uint32_t acked;
	/* With multifd-channels > 1 agreed: the page channels, which carry
	 * every page (the main connection then carries none). */
	struct mf_send *mf;
	struct mf_fds mf_fds;
	struct delta_cache cache; /* xbzrle: what was last sent of resent pages */
	uint8_t session[MIG_SESSION_ID_LEN]; /* names this migration's connections */
	/* Post-copy: chosen (mode, hybrid's limits, migrate-start-postcopy),
	 * its two connections, and the page server once the guest runs at
	 * the destination. */
	bool postcopy;
	uint64_t rounds_start_ns;  /* pre-copy began (hybrid's precopy-ms) */
	struct mig_conn pc_req, pc_push;
	struct pc_source *pcs;
};

/* Bytes sent on every connection of the migration. */
static uint64_t wire_out(const struct precopy *pc)
{
	uint64_t b = pc->s.w ? rec_writer_bytes_out(pc->s.w) : 0;
	return b + (pc->mf ? mf_send_bytes(pc->mf) : 0);
}

/* The page totals and the compression figures so far, into st (under
 * m->lock): the same while a round runs and at its end. */
static void publish_pages(const struct precopy *pc, struct mig_stats *st)
{
	st->channels = 1;
	if (pc->mf) {
		st->channels = mf_send_channel_stats(pc->mf, 0, &st->chan[0]);
		for (unsigned i = 1; i < st->channels; i++)
			mf_send_channel_stats(pc->mf, i, &st->chan[i]);
	}
	st->normal_pages = pc->base_normal + pc->round_pages - pc->round_zero;
	st->zero_pages = pc->base_zero + pc->round_zero;
	st->page_plain_bytes = pc->counts.plain_bytes;
	st->page_data_bytes = pc->counts.data_bytes;
	st->compressed_batches = pc->counts.compressed_batches;
	st->raw_batches = pc->counts.raw_batches;
	st->xbzrle_eligible = pc->counts.delta_eligible;
	st->xbzrle_pages = pc->counts.delta_pages;
	st->xbzrle_unchanged = pc->counts.delta_unchanged;
	st->xbzrle_bytes = pc->counts.delta_bytes;
	st->xbzrle_cache_miss = pc->counts.delta_miss;
	st->xbzrle_overflow = pc->counts.delta_overflow;
}

/*
 * What query-migrate shows while a round runs - bytes sent, pages left,
 * the send rate - at least every PROGRESS_NS: round 0 of a big guest on a
 * slow link lasts long, and figures that move only at its end say
 * nothing.  Called after every batch and every write to the socket (the
 * writer's progress hook), on the migration thread.
 */
static void publish_progress(struct precopy *pc, bool now)
{
	struct mig_stats *st = &pc->m->stats;
	uint64_t t = mig_now_ns();

	if (!now && t - pc->last_publish_ns < PROGRESS_NS)
		return;
	pc->last_publish_ns = t;
	uint64_t sent = wire_out(pc);
	uint64_t buffered = pc->s.w ? rec_writer_buffered(pc->s.w) : 0;
	/* Pages handed to the encoder, less those whose bytes still wait in
	 * the writer's buffer (an estimate: zero pages take a few bytes). */
	uint64_t done = pc->round_pages + pc->batch.n;
	uint64_t waiting = buffered / PAGE < pc->round_pages ? buffered / PAGE
							      : pc->round_pages;
	done -= waiting;
	uint64_t dt = t - pc->round_t0, bytes = sent - pc->round_b0;

	pthread_mutex_lock(&pc->m->lock);
	st->current_round = pc->round;
	st->wire_bytes = sent;
	publish_pages(pc, st);
	st->remaining_pages = pc->round_dirty > done ? pc->round_dirty - done : 0;
	if (pc->round_t0 && dt >= PROGRESS_NS && bytes)
		st->live_bandwidth = bytes * 1e9 / dt;
	pthread_mutex_unlock(&pc->m->lock);
}

static void on_sent(void *opaque, uint64_t bytes_out)
{
	(void)bytes_out;
	publish_progress(opaque, false);
}

/*
 * A page channel failed.  When the destination gave up first (a corrupt
 * batch, its own failure) its ERROR is on its way on the main
 * connection: its words say more than our broken pipe, so wait for them
 * briefly.
 */
static void channels_failed(struct precopy *pc, const char *err)
{
	struct pollfd p = { .fd = pc->s.fd, .events = POLLIN };
	int e = mf_send_error(pc->mf, NULL);

	if (!pc->s.error && (stream_readable(&pc->s) || poll(&p, 1, 500) > 0)) {
		uint32_t type, len;
		const uint8_t *d;
		if (!stream_read(&pc->s, &type, &d, &len) && type == MIG_REC_ERROR) {
			pc->dest_error = true;
			stream_fail(&pc->s, -EPROTO, "the destination failed: %.*s",
				    (int)len, (const char *)d);
			return;
		}
		/* Anything else (or nothing readable): the channel's reason. */
		pc->s.error = 0;
	}
	stream_fail(&pc->s, e, "%s", err);
}

/* What pc->counts gained since it held pages0 and zero0 belongs to
 * this round too. */
static void count_round(struct precopy *pc, uint64_t pages0, uint64_t zero0)
{
	pc->round_pages += pc->counts.pages - pages0;
	pc->round_zero += pc->counts.zero_pages - zero0;
}

/* The page channels' counts so far into pc->counts and the round's. */
static void take_channel_counts(struct precopy *pc)
{
	uint64_t pages0 = pc->counts.pages, zero0 = pc->counts.zero_pages;
	mf_send_counts(pc->mf, &pc->counts);
	count_round(pc, pages0, zero0);
}

/* mf_send's wait-slice hook: the figures move while it waits. */
static void channels_progress(void *opaque)
{
	struct precopy *pc = opaque;
	take_channel_counts(pc);
	publish_progress(pc, false);
}

/* One RAM_PAGES record for the batch (ram_codec.c owns the format). */
static void flush_batch(struct precopy *pc)
{
	if (!pc->batch.n)
		return;
	pc->batch.round = pc->round;
	/* Paused: this is the final round, no page goes again (deltas
	 * leave the cache as it is). */
	pc->batch.last_round = pc->paused_by_us;
	if (pc->mf) {
		/* A channel thread encodes it; the counts follow a few
		 * batches behind and are exact after each round's sync. */
		char err[ERR_MAX];
		if (mf_send_batch(pc->mf, &pc->batch, err))
			channels_failed(pc, err);
		take_channel_counts(pc);
	} else {
		uint64_t pages0 = pc->counts.pages, zero0 = pc->counts.zero_pages;
		/* ram_encode adds to the counts. */
		if (ram_encode(pc->s.w, &pc->enc, &pc->vm->mem, &pc->batch, &pc->counts))
			stream_sync(&pc->s);
		count_round(pc, pages0, zero0);
	}
	pc->batch.n = 0;
	publish_progress(pc, false);
}

/* Should the round in progress stop for post-copy now: asked for by
 * migrate-start-postcopy, or a hybrid's precopy-ms is up? */
static bool postcopy_asked(struct precopy *pc)
{
	if (!pc->caps.postcopy)
		return false;
	pthread_mutex_lock(&pc->m->lock);
	bool ask = pc->m->start_postcopy;
	bool hybrid = pc->m->p.mode == MIG_MODE_HYBRID;
	uint64_t ms = pc->m->p.precopy_ms;
	pthread_mutex_unlock(&pc->m->lock);
	return ask || (hybrid && pc->rounds_start_ns &&
		       mig_now_ns() - pc->rounds_start_ns >= ms * 1000000ULL);
}

/* Send every page whose bit is set in the slot's bitmap, clearing the
 * bits.  Each chunk's dirty log is re-armed just before its pages are read,
 * so a write after the read is caught for the next round.
 *
 * Round 0 leaves out the pages the guest never touched: the destination
 * starts from fresh memory, zero already (it places round 0 so: no zero
 * page of round 0 is written there), so a descriptor for each would only
 * say so again - 8 bytes a page, 16 MiB of an untouched 8 GiB guest, and
 * a loop over every one of them on both sides.  They count as zero pages
 * all the same.  A later round names every dirty page: the destination
 * may hold data there by then. */
static int send_slot(struct precopy *pc, unsigned slot)
{
	const struct mem_slot *ms = &pc->vm->mem.slots[slot];
	uint64_t npages = ms->size / PAGE;
	uint64_t *bm = pc->bitmap[slot];
	uint8_t populated[CLEAR_CHUNK_PAGES];

	for (uint64_t first = 0; first < npages && !pc->s.error;
	     first += CLEAR_CHUNK_PAGES) {
		uint64_t n = npages - first < CLEAR_CHUNK_PAGES ? npages - first
								: CLEAR_CHUNK_PAGES;
		uint64_t w0 = first / 64, words = dirty_bitmap_words(n);
		bool any = false;
		for (uint64_t w = 0; w < words && !any; w++)
			any = bm[w0 + w] != 0;
		if (!any)
			continue;
		int r = dirty_log_clear(pc->vm, slot, first, n, &bm[w0]);
		if (r)
			return stream_fail(&pc->s, r, "re-arming the dirty log: %s",
					   strerror(-r));
		/* After re-arming: a page first touched from now on is dirty
		 * again, so "never touched" read here stays true for this
		 * round. */
		memory_populated(&pc->vm->mem, slot, first, n, populated);
		for (uint64_t w = 0; w < words; w++) {
			uint64_t bits = bm[w0 + w];
			bm[w0 + w] = 0;
			while (bits) {
				unsigned b = __builtin_ctzll(bits);
				bits &= bits - 1;
				uint64_t pg = (w0 + w) * 64 + b;
				bool zero = !populated[pg - first];
				if (zero && pc->round == 0) {
					pc->round_pages++;
					pc->round_zero++;
					continue;
				}
				pc->batch.desc[pc->batch.n++] = (ms->gpa + pg * PAGE) |
					(zero ? MIG_PAGE_ZERO : 0);
				if (pc->batch.n == MIG_PAGES_PER_RECORD)
					flush_batch(pc);
			}
		}
		if (migration_cancelled(pc->m))
			return stream_fail(&pc->s, -ECANCELED, "cancelled");
		/* migrate-start-postcopy or hybrid's time is up: the rest
		 * of the round goes as post-copy (its bits are still set in
		 * the dirty log). */
		if (postcopy_asked(pc))
			break;
	}
	flush_batch(pc);
	return pc->s.error;
}

/* Fetch the dirty log of every slot; returns the number of dirty pages. */
static int64_t harvest(struct precopy *pc)
{
	uint64_t total = 0;
	for (unsigned i = 0; i < pc->vm->mem.nslots; i++) {
		uint64_t words = dirty_bitmap_words(pc->vm->mem.slots[i].size / PAGE);
		int r = dirty_log_sync(pc->vm, i, pc->bitmap[i]);
		if (r)
			return stream_fail(&pc->s, r, "reading the dirty log: %s",
					   strerror(-r));
		for (uint64_t w = 0; w < words; w++)
			total += __builtin_popcountll(pc->bitmap[i][w]);
	}
	if (dirty_ring_on(&pc->vm->ring)) {
		uint64_t h, f;
		dirty_ring_counts(pc->vm, &h, &f);
		pthread_mutex_lock(&pc->m->lock);
		pc->m->stats.ring_harvested = h - pc->ring0.harvested;
		pc->m->stats.ring_full_exits = f - pc->ring0.full_exits;
		pthread_mutex_unlock(&pc->m->lock);
	}
	return (int64_t)total;
}

/*
 * With round-ack, the destination confirms each round once its pages are
 * placed, and the source keeps at most one round unconfirmed: round n+1
 * starts before round n is placed (the two sides work at once), but not
 * before round n-1 is; and nothing pauses the guest while any round is
 * unconfirmed (wait_all_placed).  A destination slower than the source
 * (decompressing, faulting in fresh memory) would otherwise carry a
 * backlog of up to the sockets' buffers - at zstd's ratio hundreds of MiB
 * of pages - into the stop-and-copy pause, which the stop decision cannot
 * see.  Waiting for each round's own confirmation instead cost the busy
 * set 1.3x its total time and several times its downtime (the source
 * idle while the destination placed, every round).  Cancel ends a wait;
 * a destination silent for the idle timeout fails the migration.
 */
static int take_round_ack(struct precopy *pc, const uint8_t *p, uint32_t len)
{
	uint32_t round;
	if (len < 4 || (memcpy(&round, p, 4), round != pc->acked || round > pc->round))
		return stream_fail(&pc->s, -EPROTO, "ROUND_ACK out of order (%u bytes): "
				   "expected round %u, sent up to %u", len, pc->acked,
				   pc->round);
	pc->acked++;
	return 0;
}

/* The destination may give up at any time; notice it between rounds. */
static int check_return_path(struct precopy *pc)
{
	if (!stream_readable(&pc->s))
		return 0;
	uint32_t type, len;
	const uint8_t *p;
	if (stream_read(&pc->s, &type, &p, &len))
		return stream_fail(&pc->s, -ECONNRESET,
				   "the destination closed the connection");
	if (type == MIG_REC_ERROR)
		return stream_fail(&pc->s, -EPROTO, "the destination failed: %.*s",
				   (int)len, p);
	if (type == MIG_REC_ROUND_ACK && pc->caps.round_ack)
		return take_round_ack(pc, p, len);
	if (!mig_record_known(type))
		return rec_unknown(pc->s.r, type, len) ? stream_sync(&pc->s) : 0;
	return stream_fail(&pc->s, -EPROTO, "unexpected %s on the return path",
			   mig_record_name(type));
}

static int wait_reply_payload(struct precopy *pc, uint32_t want,
			      const uint8_t **payload, uint32_t *plen);

/*
 * Until the return path has input (0), the migration is cancelled
 * (-ECANCELED) or the deadline passes (-ETIMEDOUT), looking at the cancel
 * flag at least every slice_ms.  The stream is not failed here: the
 * caller says what it waited for.
 */
static int wait_readable(struct precopy *pc, uint64_t deadline, int slice_ms)
{
	while (!stream_readable(&pc->s)) {
		if (migration_cancelled(pc->m))
			return -ECANCELED;
		uint64_t now = mig_now_ns();
		if (now >= deadline)
			return -ETIMEDOUT;
		struct pollfd p = { .fd = pc->s.fd, .events = POLLIN };
		uint64_t left = (deadline - now) / 1000000 + 1;
		poll(&p, 1, left < (uint64_t)slice_ms ? (int)left : slice_ms);
	}
	return 0;
}

/* Until rounds 0 .. upto-1 are confirmed (counted in ack_wait_ns while
 * the guest runs). */
static int wait_round_acks_until(struct precopy *pc, uint32_t upto,
				 uint64_t deadline)
{
	while (pc->caps.round_ack && pc->acked < upto) {
		int r = wait_readable(pc, deadline, 50);
		if (r == -ECANCELED)
			return stream_fail(&pc->s, r, "cancelled");
		if (r)
			return stream_fail(&pc->s, r, "the destination did not confirm "
					   "round %u within %llu ms", pc->acked,
					   (unsigned long long)pc->m->p.idle_timeout_ms);
		if (wait_reply_payload(pc, MIG_REC_ROUND_ACK, NULL, NULL))
			return pc->s.error;
	}
	return 0;
}

static int wait_round_acks(struct precopy *pc, uint32_t upto)
{
	uint64_t t0 = mig_now_ns();
	int r = wait_round_acks_until(pc, upto, t0 + pc->m->p.idle_timeout_ms * 1000000ULL);
	if (!pc->paused_by_us) {
		pthread_mutex_lock(&pc->m->lock);
		pc->m->stats.ack_wait_ns += mig_now_ns() - t0;
		pthread_mutex_unlock(&pc->m->lock);
	}
	return r;
}

/* Every round sent so far placed: before the guest is paused.  Returns
 * whether it had to wait (1), 0, or an error. */
static int wait_all_placed(struct precopy *pc)
{
	if (!pc->caps.round_ack || pc->acked >= pc->round)
		return 0;
	return wait_round_acks(pc, pc->round) ? pc->s.error : 1;
}

/* Before round 0's pages: what they will fill, for the destination to
 * fault in ahead of them (fault_ahead.h).  A list that cannot be made
 * only costs the destination that help. */
static void send_ahead(struct precopy *pc)
{
	struct pcp_run *runs = NULL;
	long n = fa_source_runs(&pc->vm->mem, &runs);
	if (n > 0) {
		pcp_put_runs(pc->s.w, MIG_REC_RAM_AHEAD, runs, (size_t)n);
		stream_flush(&pc->s);
	} else if (n < 0) {
		log_info("migration: no list of the memory round 0 fills (%s); the "
			 "destination faults it in as it comes", strerror((int)-n));
	}
	free(runs);
}

static int send_round(struct precopy *pc, uint64_t dirty)
{
	struct mig_stats *st = &pc->m->stats;
	uint64_t t0 = mig_now_ns();
	uint64_t b0 = stream_bytes_queued(&pc->s) + (pc->mf ? mf_send_bytes(pc->mf) : 0);

	uint64_t plain0 = pc->counts.plain_bytes;
	uint64_t dpages0 = pc->counts.delta_pages, dbytes0 = pc->counts.delta_bytes;
	pc->round_pages = pc->round_zero = 0;
	pc->round_dirty = dirty;
	pc->round_t0 = t0;
	pc->round_b0 = wire_out(pc);
	pthread_mutex_lock(&pc->m->lock);
	pc->base_normal = st->normal_pages;
	pc->base_zero = st->zero_pages;
	st->live_bandwidth = 0;
	pthread_mutex_unlock(&pc->m->lock);
	publish_progress(pc, true);
	if (pc->round == 0 && pc->caps.fault_ahead)
		send_ahead(pc);
	for (unsigned i = 0; i < pc->vm->mem.nslots && !pc->s.error; i++)
		send_slot(pc, i);
	migration_fault_point(pc->m, pc->paused_by_us ? MIG_FAULT_NONE : pc->round ?
			      MIG_FAULT_LATER_ROUND : MIG_FAULT_ROUND0);
	if (pc->mf && !pc->s.error) {
		/* Every channel's SYNC before ROUND_END: the destination
		 * ends the round once all channels have. */
		char err[ERR_MAX];
		if (mf_send_sync(pc->mf, pc->round, err))
			channels_failed(pc, err);
		take_channel_counts(pc);
	}
	struct { uint32_t round; uint64_t pages; } __attribute__((packed)) end = {
		pc->round, pc->round_pages };
	stream_put(&pc->s, MIG_REC_ROUND_END, &end, sizeof(end));
	stream_flush(&pc->s);
	if (pc->s.error)
		return pc->s.error;

	uint64_t dt = mig_now_ns() - t0;
	uint64_t bytes = pc->s.bytes_out + (pc->mf ? mf_send_bytes(pc->mf) : 0) - b0;
	pthread_mutex_lock(&pc->m->lock);
	/* A migration waiting for its rest to fit may run any number of
	 * rounds: keep the latest (the decision reads the last one). */
	if (st->nround == MIG_MAX_ROUND_STATS) {
		memmove(&st->round[0], &st->round[1],
			(MIG_MAX_ROUND_STATS - 1) * sizeof(st->round[0]));
		st->nround--;
	}
	st->round[st->nround++] = (struct mig_round_stats){
			.round = pc->round, .pages = pc->round_pages,
			.zero_pages = pc->round_zero, .bytes = bytes,
			.dirty_pages = dirty, .duration_ns = dt };
	publish_pages(pc, st);
	st->wire_bytes = pc->s.bytes_out + (pc->mf ? mf_send_bytes(pc->mf) : 0);
	st->live_bandwidth = 0;
	st->rounds++;
	/* A short round (mostly zero pages) says little about the link. */
	if (dt > 5000000 && bytes > (4u << 20))
		st->bandwidth = bytes * 1e9 / dt;
	else if (!st->bandwidth)
		st->bandwidth = 1e9; /* a guess until measured */
	/* With compression: the page data the round moved per second, once
	 * enough moved to say (however few wire bytes that took).  The
	 * round's time includes the compressing, so a CPU-bound encoder is
	 * measured as such, and a link-bound one at its ratio times the
	 * link. */
	uint64_t plain = pc->counts.plain_bytes - plain0;
	/* With deltas (xbzrle) likewise: a delta page moved a whole page
	 * of memory in the few bytes its delta (and 2-byte length) took. */
	uint64_t dpages = pc->counts.delta_pages - dpages0;
	uint64_t dbytes = pc->counts.delta_bytes - dbytes0;
	plain += dpages * PAGE - (dbytes - 2 * dpages);
	if (pc->enc.enc && (pc->enc.enc->compress || pc->enc.cache) &&
	    dt > 5000000 && plain > (4u << 20))
		pc->mem_bandwidth = plain * 1e9 / dt;
	st->remaining_pages = 0;
	pthread_mutex_unlock(&pc->m->lock);
	/* After the round's figures: its time (and so the bandwidth the
	 * stop decision uses) is the source's, measured with the guest
	 * running.  One round may stay unconfirmed (take_round_ack); the
	 * last one, sent paused, is confirmed on the way to READY. */
	if (!pc->paused_by_us && wait_round_acks(pc, pc->round))
		return pc->s.error;
	return 0;
}

static enum conv_switchover conv_policy(enum mig_policy p)
{
	switch (p) {
	case MIG_POLICY_FORCE: return CONV_FORCE;
	case MIG_POLICY_ABORT: return CONV_ABORT;
	case MIG_POLICY_WAIT: break;
	}
	return CONV_WAIT;
}

/*
 * Decide after a harvest whether to stop pushing (the rules are
 * convergence.c's) and publish what the decision saw.  The parameters are
 * read afresh each time: migrate-set-parameters may change the downtime
 * limit, the limits and the policy while a migration waits for its rest
 * to fit.  Returns the decision.
 */
static struct conv_decision converged(struct precopy *pc, uint64_t dirty,
				      uint64_t start_ns)
{
	struct migration *m = pc->m;
	struct mig_stats *st = &m->stats;

	pthread_mutex_lock(&m->lock);
	const struct conv_params params = {
		.downtime_ms = m->p.downtime_ms,
		.max_rounds = m->p.max_rounds,
		.timeout_ns = m->p.timeout_s * 1000000000ULL,
		.switchover = conv_policy(m->p.policy),
		.state_bytes = (uint64_t)pc->vm->nvcpus * STATE_ESTIMATE,
	};
	const struct conv_round round = {
		.round = pc->round, .dirty_pages = dirty,
		.bandwidth = pc->mem_bandwidth > 0 ? pc->mem_bandwidth : st->bandwidth,
		.elapsed_ns = mig_now_ns() - start_ns,
	};
	pthread_mutex_unlock(&m->lock);
	struct conv_decision d = convergence_decide(&params, &pc->conv, &round);
	pc->conv = d.next;

	pthread_mutex_lock(&m->lock);
	st->expected_downtime_ms = d.expect_ms;
	st->remaining_pages = dirty;
	st->forced = d.forced;
	if (st->nround) {
		const struct mig_round_stats *r = &st->round[st->nround - 1];
		if (r->duration_ns)
			st->dirty_rate = dirty * 1e9 / r->duration_ns;
	}
	if (d.why)
		snprintf(st->convergence, sizeof(st->convergence), "%s%s", d.why,
			 d.forced ? " (forced)" : "");
	if (d.waiting)
		snprintf(st->waiting, sizeof(st->waiting),
			 "%s: the rest needs ~%llu ms, more than the %llu ms downtime "
			 "limit; pushing on until it fits (raise downtime-limit, set "
			 "switchover 'force', or cancel)", d.waiting,
			 (unsigned long long)d.expect_ms,
			 (unsigned long long)params.downtime_ms);
	else
		st->waiting[0] = '\0';
	pthread_mutex_unlock(&m->lock);
	if (d.waiting && !pc->said_waiting) {
		log_warn("migration: %s", st->waiting);
		pc->said_waiting = true;
	}
	return d;
}

static int emit_state(void *ctx, uint32_t type, const void *data, size_t len)
{
	struct mig_stream *s = ctx;
	stream_put(s, type, data, len);
	return s->error;
}

/* Wait for one return-path record of the wanted type; *payload and *plen
 * (may be NULL) are its payload, valid until the next read. */
static int wait_reply_payload(struct precopy *pc, uint32_t want,
			      const uint8_t **payload, uint32_t *plen)
{
	uint32_t type, len;
	const uint8_t *p;
	for (;;) {
		do {
			if (stream_read(&pc->s, &type, &p, &len))
				return pc->s.error;
			/* optional records this ferry does not know are skipped */
		} while (!mig_record_known(type) && !rec_unknown(pc->s.r, type, len));
		if (stream_sync(&pc->s)) /* an unknown mandatory record */
			return pc->s.error;
		if (type != MIG_REC_ROUND_ACK || !pc->caps.round_ack)
			break;
		/* A confirmation is taken wherever it comes: the one waited
		 * for, or on the way to another answer (the last round's,
		 * before READY). */
		if (take_round_ack(pc, p, len) || want == MIG_REC_ROUND_ACK)
			return pc->s.error;
	}
	if (type == want) {
		if (payload) {
			*payload = p;
			*plen = len;
		}
		return 0;
	}
	if (type == MIG_REC_REFUSE)
		return stream_fail(&pc->s, -EPERM, "the destination refused: %.*s",
				   (int)len, p);
	if (type == MIG_REC_ERROR) {
		pc->dest_error = true;
		return stream_fail(&pc->s, -EPROTO, "the destination failed: %.*s",
				   (int)len, p);
	}
	return stream_fail(&pc->s, -EPROTO, "expected %s from the destination, got %s",
			   mig_record_name(want), mig_record_name(type));
}

static int wait_reply(struct precopy *pc, uint32_t want)
{
	return wait_reply_payload(pc, want, NULL, NULL);
}

/* ACCEPT says which capabilities were agreed; the page encoder follows. */
static int take_accept(struct precopy *pc, const struct mig_caps *offer,
		       char *err)
{
	const uint8_t *p;
	uint32_t len;
	json_t *acc = NULL;
	json_error_t jerr;

	if (wait_reply_payload(pc, MIG_REC_ACCEPT, &p, &len))
		return err_set(err, pc->s.error, "%s", pc->s.errmsg);
	if (len && !(acc = json_loadb((const char *)p, len, 0, &jerr)))
		return err_set(err, -EPROTO, "ACCEPT is not JSON: %s", jerr.text);
	int r = mig_caps_accepted(acc, offer, &pc->caps, err);
	json_decref(acc);
	const struct ram_encoding *enc = NULL;
	if (!r && !(enc = ram_encoding_by_name(pc->caps.compression)))
		r = err_set(err, -EPROTO, "the agreed compression '%s' is unknown here",
			    pc->caps.compression);
	if (!r)
		r = ram_encoder_init(&pc->enc, enc, pc->m->p.zstd_level, err);
	if (!r && pc->caps.xbzrle && pc->caps.channels > 1) {
		/* The cache says what each page was when last sent; page
		 * channels encode in parallel, each its own batches, so
		 * they send pages whole (a later step: a cache per page
		 * range, a range per channel). */
		log_warn("migration: no deltas (xbzrle) on %u page channels: resent "
			 "pages go whole", pc->caps.channels);
	} else if (!r && pc->caps.xbzrle) {
		/* Deltas are the source's choice page by page: without the
		 * cache, every page simply goes whole. */
		char why[ERR_MAX];
		if (delta_cache_init(&pc->cache, pc->m->p.xbzrle_cache_size,
				     memory_npages(&pc->vm->mem), why) ||
		    ram_encoder_use_deltas(&pc->enc, &pc->cache, why)) {
			log_warn("migration: no deltas (xbzrle) after all: %s", why);
			delta_cache_free(&pc->cache);
			pc->enc.cache = NULL;
		}
	} else if (!r && offer->xbzrle) {
		log_warn("migration: the destination does not take deltas (xbzrle): "
			 "resent pages go whole");
	}
	if (!r && pc->caps.channels > 1) {
		const struct mf_send_cfg cfg = {
			.mem = &pc->vm->mem, .enc = enc, .zstd_level = pc->m->p.zstd_level,
			.max_bandwidth = &pc->m->p.max_bandwidth, .cancel = &pc->m->cancel,
			.progress = channels_progress, .opaque = pc,
		};
		pc->mf = mf_send_open(pc->m->uri, pc->m->p.tls, pc->session,
				      pc->caps.channels, CONNECT_TIMEOUT_MS,
				      (int)pc->m->p.idle_timeout_ms, &cfg, &pc->mf_fds, err);
		if (!pc->mf)
			r = -EIO;
		else
			log_info("migration: pages travel on %u channels", pc->caps.channels);
	}
	if (!r) {
		pthread_mutex_lock(&pc->m->lock);
		pc->m->postcopy_agreed = pc->caps.postcopy;
		if (!pc->caps.postcopy)
			snprintf(pc->m->postcopy_why, sizeof(pc->m->postcopy_why),
				 "the destination cannot use userfaultfd (its log says "
				 "why), or it is an older ferry");
		if (!pc->caps.postcopy && pc->m->start_postcopy)
			log_warn("migration: migrate-start-postcopy came during the set-up, "
				 "but post-copy is not possible here: %s; pre-copy goes on",
				 pc->m->postcopy_why);
		pc->m->stats.xbzrle_agreed = pc->caps.xbzrle;
		snprintf(pc->m->stats.compression, sizeof(pc->m->stats.compression),
			 "%s", enc->name);
		pc->m->stats.zstd_level = pc->m->p.zstd_level;
		pthread_mutex_unlock(&pc->m->lock);
	}
	return r;
}

static int negotiate(struct precopy *pc, char *err)
{
	struct mig_uri u;
	int r = channel_parse_uri(pc->m->uri, &u, err);
	if (r)
		return r;
	int fd = channel_connect(&u, CONNECT_TIMEOUT_MS, err);
	if (fd < 0)
		return fd;
	/* Known to cancel (and closed by finish) from now on: a cancel
	 * also cuts a TLS handshake short. */
	pthread_mutex_lock(&pc->m->lock);
	pc->m->fd = fd;
	bool cancel = pc->m->cancel;
	pthread_mutex_unlock(&pc->m->lock);
	if (cancel)
		shutdown(fd, SHUT_RDWR);
	struct channel *ch;
	r = mig_secure_client(fd, pc->m->p.tls, u.host, CONNECT_TIMEOUT_MS, &ch, err);
	if (r)
		return r;
	if (channel_is_tls(ch)) {
		pthread_mutex_lock(&pc->m->lock);
		pc->m->stats.tls = !channel_tls_info(ch, &pc->m->stats.tls_info);
		pthread_mutex_unlock(&pc->m->lock);
	}
	channel_set_timeout(fd, (int)pc->m->p.idle_timeout_ms);
	r = stream_init_channel(&pc->s, ch);
	if (r)
		return err_set(err, r, "out of memory");
	/* migrate-set-parameters may change it during the migration. */
	pc->s.max_bandwidth_live = &pc->m->p.max_bandwidth;
	pc->s.cancel = &pc->m->cancel;
	rec_writer_set_progress(pc->s.w, on_sent, pc);

	mig_session_new(pc->session);
	mig_preamble_write(pc->s.w, MIG_ROLE_MAIN, pc->session);
	struct mig_caps offer;
	mig_caps_default(&offer);
	/* Optional: a destination that cannot falls back to one stream. */
	offer.channels = mig_channels_offered(&pc->m->p);
	const struct ram_encoding *want = ram_encoding_get(pc->m->p.compression);
	if (!want)
		return err_set(err, -EINVAL, "compression %u is unknown",
			       pc->m->p.compression);
	/* Optional: the stream is right without deltas, so an older
	 * destination just gets whole pages (take_accept says so). */
	offer.xbzrle = pc->m->p.xbzrle;
	offer.round_ack = true;
	offer.early_push = true;
	offer.zero_runs = true;
	offer.release_ram = pc->m->p.release_ram;
	offer.fault_ahead = true;
	if (want->id != RAM_ENC_RAW) {
		/* Asked for, so insisted on: a destination that cannot
		 * decompress it refuses, rather than the migration quietly
		 * running without what the user chose. */
		snprintf(offer.compression, sizeof(offer.compression), "%s", want->name);
		offer.mandatory |= 1u << MIG_CAP_COMPRESSION;
	}
	/* Post-copy is offered always, so that migrate-start-postcopy can
	 * switch a pre-copy; a post-copy or hybrid migration insists, and so
	 * does one with QEMU's postcopy-ram capability (a tool that sets it
	 * means to call migrate-start-postcopy: better refused at the start
	 * than then). */
	offer.postcopy = true;
	if (pc->m->p.mode != MIG_MODE_PRECOPY || pc->m->p.postcopy_ram)
		offer.mandatory |= 1u << MIG_CAP_POSTCOPY;
	json_t *hello = hello_build(pc->vm, &offer);
	char *txt = hello ? json_dumps(hello, JSON_COMPACT) : NULL;
	json_decref(hello);
	if (!txt)
		return err_set(err, -ENOMEM, "out of memory");
	/* A destination refuses a longer one unread: say so here instead. */
	if (strlen(txt) > MIG_MAX_HELLO) {
		size_t n = strlen(txt);
		free(txt);
		return err_set(err, -EMSGSIZE,
			       "this VM's HELLO is %zu bytes, more than a destination reads (%u)",
			       n, MIG_MAX_HELLO);
	}
	stream_put(&pc->s, MIG_REC_HELLO, txt, strlen(txt));
	free(txt);
	stream_flush(&pc->s);
	return take_accept(pc, &offer, err);
}

static int start_logging(struct precopy *pc, char *err)
{
	for (unsigned i = 0; i < pc->vm->mem.nslots; i++) {
		uint64_t words = dirty_bitmap_words(pc->vm->mem.slots[i].size / PAGE);
		pc->bitmap[i] = calloc(words, sizeof(uint64_t));
		if (!pc->bitmap[i])
			return err_set(err, -ENOMEM, "out of memory for dirty bitmaps");
	}
	int r = dirty_log_start(pc->vm, err);
	if (!r)
		pc->logging = true;
	return r;
}

/*
 * The destination has all it needs once STATE_END is out; it must answer
 * READY within READY_TIMEOUT_MS, or the source takes the guest back: a
 * stalled destination must not keep the guest paused for the socket's
 * whole reply timeout (or forever, when it trickles bytes).
 */
static int wait_ready(struct precopy *pc)
{
	/* Bytes still queued in the socket reach the destination before it
	 * can answer: on a slow link they get the time the measured
	 * bandwidth says, on top of the deadline (at most READY_MAX_EXTRA_MS). */
	int unsent = 0;
	uint64_t extra_ms = 0;
	if (ioctl(pc->s.fd, SIOCOUTQ, &unsent) < 0 || unsent < 0)
		unsent = 0;
	/* ... and in the page channels' sockets, on their way too. */
	uint64_t more = mf_fds_unsent(&pc->mf_fds);
	unsent = more > (uint64_t)(INT32_MAX - unsent) ? INT32_MAX : unsent + (int)more;
	if (unsent > 0) {
		pthread_mutex_lock(&pc->m->lock);
		double bw = pc->m->stats.bandwidth;
		pthread_mutex_unlock(&pc->m->lock);
		extra_ms = (uint64_t)(unsent * 1000.0 / (bw > 1e6 ? bw : 1e6));
		if (extra_ms > READY_MAX_EXTRA_MS)
			extra_ms = READY_MAX_EXTRA_MS;
	}
	uint64_t deadline = mig_now_ns() + (READY_TIMEOUT_MS + extra_ms) * 1000000ULL;
	int w = wait_readable(pc, deadline, INT_MAX);
	if (w == -ECANCELED)
		return stream_fail(&pc->s, w, "cancelled");
	if (w) {
		char t[UNITS_LEN];
		return stream_fail(&pc->s, w, "the destination did not answer READY "
				   "within %s of the machine state",
				   units_duration_ms(t, sizeof(t),
						     (double)(READY_TIMEOUT_MS + extra_ms)));
	}
	/* A record began to arrive: the rest of it gets what is left. */
	uint64_t now = mig_now_ns();
	int left_ms = now < deadline ? (int)((deadline - now) / 1000000) + 1 : 1;
	channel_set_timeout(pc->s.fd, left_ms);
	int r = wait_reply(pc, MIG_REC_READY);
	channel_set_timeout(pc->s.fd, (int)pc->m->p.idle_timeout_ms);
	if (r == -EAGAIN) {
		/* The stream kept its own "timed out"; say which deadline. */
		char t[UNITS_LEN];
		units_duration_ms(t, sizeof(t), (double)(READY_TIMEOUT_MS + extra_ms));
		pthread_mutex_lock(&pc->m->lock);
		snprintf(pc->m->stats.error, sizeof(pc->m->stats.error),
			 "the destination did not answer READY within %s of the "
			 "machine state (%.200s)", t, pc->s.errmsg);
		pthread_mutex_unlock(&pc->m->lock);
	}
	return r;
}

/*
 * COMMIT and its answer.  The cancel check and the decision to send are
 * one step under m->lock: a cancel either comes first (nothing sent, the
 * guest resumes here) or finds commit_started and is refused - never a
 * cancel reported as cancelled while COMMIT went out.  Returns 0 when the
 * destination runs the guest, -EINPROGRESS when COMMIT went out and no
 * answer came (unknown), another error when the guest is still ours.
 */
static int hand_over(struct precopy *pc)
{
	struct migration *m = pc->m;
	struct mig_stats *st = &m->stats;

	/* What the guest printed and beat here reaches its readers before
	 * the destination can run it: a console or an outside observer must
	 * never see the destination's output ahead of the source's last.
	 * Bounded: a stalled reader costs at most this much downtime. */
	if (!vm_drain_output(pc->vm, HANDOVER_OUTPUT_DRAIN_MS))
		log_warn("migration: the guest's last output here is still queued "
			 "after %u ms (a slow reader): it may arrive after the "
			 "destination's first", HANDOVER_OUTPUT_DRAIN_MS);

	pthread_mutex_lock(&m->lock);
	bool cancel = m->cancel;
	st->commit_started = !cancel;
	pthread_mutex_unlock(&m->lock);
	if (cancel)
		return stream_fail(&pc->s, -ECANCELED, "cancelled before COMMIT");

	/* The point of no return: from here the destination may run it.
	 * The guest arrives in the run state it had here (as QEMU's global
	 * state): a guest paused at the source stays paused there. */
	uint32_t flags = vm_held_was_running(pc->vm) ? MIG_COMMIT_RUNNING : 0;
	stream_put(&pc->s, MIG_REC_COMMIT, &flags, sizeof(flags));
	if (stream_flush(&pc->s)) {
		/* write() failed: the record did not go out whole, so the
		 * destination cannot act on it and never runs the guest. */
		pthread_mutex_lock(&m->lock);
		st->commit_started = false;
		snprintf(st->error, sizeof(st->error),
			 "COMMIT could not be sent (%.200s): the destination never got it",
			 pc->s.errmsg);
		pthread_mutex_unlock(&m->lock);
		return pc->s.error;
	}
	pthread_mutex_lock(&m->lock);
	st->commit_sent = true;
	pthread_mutex_unlock(&m->lock);
	migration_fault_point(m, MIG_FAULT_AFTER_COMMIT);
	int r = wait_reply(pc, MIG_REC_RUNNING);
	pthread_mutex_lock(&m->lock);
	if (!r)
		st->confirmed = true;
	else if (pc->dest_error)
		st->dest_failed = true;
	else
		snprintf(st->handover_error, sizeof(st->handover_error), "%s",
			 pc->s.errmsg[0] ? pc->s.errmsg : "no answer");
	pthread_mutex_unlock(&m->lock);
	if (!r)
		return 0;
	/* Only an explicit ERROR says the guest does not run there; silence
	 * could mean either. */
	return pc->dest_error ? pc->s.error : -EINPROGRESS;
}

static void publish_downtime(struct precopy *pc, uint64_t t_pause,
			    uint64_t t_parked, uint64_t t_final,
			    uint64_t t_state, uint64_t t_ready)
{
	struct migration *m = pc->m;
	struct mig_stats *st = &m->stats;
	uint64_t t_running = mig_now_ns();
	pthread_mutex_lock(&m->lock);
	st->pause_ns = t_pause;
	st->t_parked = t_parked;
	st->t_final_sent = t_final;
	st->t_state_sent = t_state;
	st->t_ready = t_ready;
	st->t_running = t_running;
	st->downtime_ns = t_running - t_pause;
	pthread_mutex_unlock(&m->lock);
}

/* Pause, send the rest and all state, hand over.  Returns 0 once the
 * destination runs the guest; -EINPROGRESS if COMMIT went out but no
 * confirmation came back (the outcome is unknown: stay paused). */
static int stop_and_copy(struct precopy *pc)
{
	struct migration *m = pc->m;
	char err[ERR_MAX] = "";

	migration_set_status(m, MIG_STATUS_DEVICE);
	uint64_t t_pause = mig_now_ns();
	vm_hold(pc->vm, VM_STATUS_FINISH_MIGRATE);
	pc->paused_by_us = true;
	uint64_t t_parked = mig_now_ns(), t_final, t_state, t_ready;

	/* pc->round is already the number of this last round. */
	int64_t dirty = harvest(pc);
	if (dirty < 0)
		return (int)dirty;
	if (send_round(pc, (uint64_t)dirty))
		return pc->s.error;
	t_final = mig_now_ns();
	migration_fault_point(m, MIG_FAULT_DEVICE);
	if (machine_state_save(pc->vm, emit_state, &pc->s, err))
		return stream_fail(&pc->s, -EIO, "%s", err);
	stream_put(&pc->s, MIG_REC_STATE_END, NULL, 0);
	if (stream_flush(&pc->s))
		return pc->s.error;
	t_state = mig_now_ns();
	if (wait_ready(pc))
		return pc->s.error;
	t_ready = mig_now_ns();
	migration_fault_point(m, MIG_FAULT_AFTER_READY);
	int r = hand_over(pc);
	if (!r)
		publish_downtime(pc, t_pause, t_parked, t_final, t_state, t_ready);
	return r;
}

/* ---- post-copy ----------------------------------------------------------- */

/* The bits still set in the dirty bitmaps, as runs appended to l; 0 or
 * -ENOMEM. */
static int dirty_runs(struct precopy *pc, struct pcp_run_list *l)
{
	const struct guest_memory *mem = &pc->vm->mem;
	int r = 0;

	for (unsigned i = 0; i < mem->nslots && !r; i++) {
		uint64_t np = mem->slots[i].size / PAGE;
		const uint64_t *bm = pc->bitmap[i];
		l->slot_gpa = mem->slots[i].gpa;
		for (uint64_t w = 0; w < (np + 63) / 64 && !r; w++) {
			uint64_t bits = bm[w];
			unsigned b, len;
			while (!r && (len = bitmap_take_run(&bits, &b))) {
				uint64_t pg = w * 64 + b;
				if (pg >= np)
					break;
				if (pg + len > np)
					len = (unsigned)(np - pg);
				r = pcp_run_list_add(l, pg, len);
			}
		}
	}
	return r;
}

/* The pages the destination lacks, as runs: with dirty logging, the bits
 * still set (dirtied since sent, or never sent); without (pure
 * post-copy), every page this side ever populated: one never touched is
 * zero here and, in the destination's fresh memory, there too.  This
 * runs in the pause, so it must not cost a pass over every page of a big
 * guest: the bitmap is read a word at a time, and the populated pages
 * come from the page tables as runs (memory_populated_runs).  Returns
 * the number of runs (*out malloc'd) or a negative errno. */
static long missing_runs(struct precopy *pc, struct pcp_run **out, uint64_t *pages)
{
	struct pcp_run_list l = { 0 };
	int r = pc->logging ? dirty_runs(pc, &l) : pcp_list_populated(&pc->vm->mem, &l);
	if (r) {
		free(l.runs);
		return r;
	}
	*pages = l.pages;
	*out = l.runs;
	return (long)l.n;
}

/* Call fn for each stretch of RAM between, before and after runs
 * (sorted, each inside one slot), slot by slot. */
static void each_gap(const struct guest_memory *mem, const struct pcp_run *runs, size_t n,
		     void (*fn)(void *opaque, uint64_t gpa, uint64_t npages), void *opaque)
{
	size_t k = 0;
	for (unsigned i = 0; i < mem->nslots; i++) {
		uint64_t at = mem->slots[i].gpa, end = at + mem->slots[i].size;
		for (; k < n && runs[k].gpa < end; k++) {
			if (runs[k].gpa > at)
				fn(opaque, at, (runs[k].gpa - at) / PAGE);
			at = runs[k].gpa + runs[k].npages * PAGE;
		}
		if (at < end)
			fn(opaque, at, (end - at) / PAGE);
	}
}

static void gap_add(void *opaque, uint64_t gpa, uint64_t npages)
{
	struct pcp_run_list *l = opaque;
	l->runs[l->n++] = (struct pcp_run){ gpa, npages };
}

static void gap_skip(void *opaque, uint64_t gpa, uint64_t npages)
{
	pcs_skip(opaque, gpa, npages);
}

/* Every page of RAM, one run per slot (the destination learns the zero
 * ones from name_zero_runs). */
static long all_ram(struct precopy *pc, struct pcp_run **out, uint64_t *pages)
{
	const struct guest_memory *mem = &pc->vm->mem;
	struct pcp_run *runs = calloc(mem->nslots ? mem->nslots : 1, sizeof(*runs));
	if (!runs)
		return -ENOMEM;
	for (unsigned i = 0; i < mem->nslots; i++)
		runs[i] = (struct pcp_run){ mem->slots[i].gpa, mem->slots[i].size / PAGE };
	*pages = memory_npages(mem);
	*out = runs;
	return (long)mem->nslots;
}

/* After all_ram's list went out: the runs this side never populated are
 * zero; the page server names them to the destination (PUSH_ZERO) and
 * pushes none of them.  *missing becomes what the destination really
 * lacks.  0 or a negative errno. */
static int name_zero_runs(struct precopy *pc, uint64_t *missing)
{
	const struct guest_memory *mem = &pc->vm->mem;
	struct pcp_run *pop = NULL;
	uint64_t populated = 0;
	long n = missing_runs(pc, &pop, &populated);
	if (n < 0)
		return (int)n;
	/* Between and around the populated runs: at most one more run than
	 * there are populated ones, per slot. */
	struct pcp_run_list zero = { .runs = malloc(((size_t)n + mem->nslots) * sizeof(*zero.runs)) };
	if (!zero.runs) {
		free(pop);
		return -ENOMEM;
	}
	each_gap(mem, pop, (size_t)n, gap_add, &zero);
	uint64_t named = 0;
	int r = pcs_zero_runs(pc->pcs, zero.runs, zero.n, &named);
	free(zero.runs);
	free(pop);
	if (r)
		return r;
	/* What it lacks: all but what was named zero before it was sent
	 * (about the populated pages; a page the guest asked for first
	 * was answered). */
	*missing = memory_npages(mem) - named;
	pthread_mutex_lock(&pc->m->lock);
	pc->m->stats.remaining_pages = *missing;
	pc->m->stats.postcopy_missing = *missing;
	pthread_mutex_unlock(&pc->m->lock);
	return 0;
}

/* name_zero_runs on a thread of the lowest priority: the guest has just
 * resumed at the destination and its first faults, served by threads of
 * both processes on these same cores, must not wait behind the scan. */
struct zero_job {
	struct precopy *pc;
	uint64_t missing;
	int r;
};

static void *zero_job_main(void *arg)
{
	struct zero_job *j = arg;
	thread_nice(19);
	j->r = name_zero_runs(j->pc, &j->missing);
	return NULL;
}

static int name_zero_runs_quietly(struct precopy *pc, uint64_t *missing)
{
	struct zero_job j = { .pc = pc };
	pthread_t t;
	if (pthread_create(&t, NULL, zero_job_main, &j) == 0)
		pthread_join(t, NULL);
	else
		j.r = name_zero_runs(pc, &j.missing);
	if (!j.r)
		*missing = j.missing;
	return j.r;
}

/* Post-copy's two connections, the first time and after a recovery.
 * Answers must not wait behind a slow reader for long; a request
 * connection may rightly stay quiet for as long as the guest faults on
 * nothing (keepalive watches it); the push keeps a short queue, so that
 * what left this host is soon at the destination (answer()). */
static void set_page_conns(struct precopy *pc, struct mig_conn *req, struct mig_conn *push)
{
	int idle = (int)pc->m->p.idle_timeout_ms;
	channel_set_timeout(req->fd, 0);
	mig_conn_set_send_timeout(req, idle);
	channel_set_timeout(push->fd, idle);
	channel_set_queue(push->fd, PCP_PUSH_QUEUE_BYTES);
}

/* mig_conn_open_watched's hook: a cancel shuts the socket being opened. */
static void watch_fd(void *opaque, int fd)
{
	struct migration *m = opaque;

	pthread_mutex_lock(&m->lock);
	m->aux_fd = fd;
	if (fd >= 0 && m->cancel)
		shutdown(fd, SHUT_RDWR);
	pthread_mutex_unlock(&m->lock);
}

/* Can a recovery mend a page server's end?  A broken, reset or silent
 * connection can; a quit, or a destination that broke the protocol,
 * cannot. */
static bool postcopy_recoverable(int r)
{
	return r != -ECANCELED && r != -EPROTO && r != -ENOMEM && r != -EINVAL;
}

/* Say (query-migrate's error-desc, and the log) why post-copy waits. */
static void postcopy_paused_say(struct migration *m, const char *why)
{
	pthread_mutex_lock(&m->lock);
	m->stats.status = MIG_STATUS_POSTCOPY_PAUSED;
	snprintf(m->stats.error, sizeof(m->stats.error), "%s", why);
	pthread_cond_broadcast(&m->cond);
	pthread_mutex_unlock(&m->lock);
	log_error("migration: %s", m->stats.error);
}

/*
 * One recovery attempt to uri: the two post-copy connections again, with
 * this migration's session id (the destination admits no other), then
 * the destination's RECV_BITMAP, then the page server restarted on them.
 * Returns 0, or a negative errno with err.
 */
static int postcopy_reconnect(struct precopy *pc, const char *uri, char *err)
{
	struct migration *m = pc->m;
	struct mig_conn req = { .fd = -1 }, push = { .fd = -1 };
	uint64_t npages = memory_npages(&pc->vm->mem);
	uint64_t *have = calloc(npages / 64 + 1, sizeof(uint64_t));
	uint32_t type, len;
	char *payload = NULL;
	int r;

	if (!have)
		return err_set(err, -ENOMEM, "out of memory");
	r = mig_conn_open_watched(uri, m->p.tls, MIG_ROLE_PAGE_REQUESTS, pc->session,
				  CONNECT_TIMEOUT_MS, watch_fd, m, &req, err);
	if (!r)
		r = mig_conn_open_watched(uri, m->p.tls, MIG_ROLE_POSTCOPY_PUSH, pc->session,
					  CONNECT_TIMEOUT_MS, watch_fd, m, &push, err);
	/* The socket keeps the connect bound as its receive timeout. */
	if (!r) {
		r = mig_conn_get_record(req.ch, MIG_MAX_RECORD, &type, &payload, &len);
		if (r)
			err_set(err, r, "no RECV_BITMAP from the destination: %s", strerror(-r));
		else if (type != MIG_REC_RECV_BITMAP)
			r = err_set(err, -EPROTO, "the destination sent %s (0x%x), not RECV_BITMAP",
				    mig_record_name(type), type);
		else
			r = pcp_parse_recv_bitmap((const uint8_t *)payload, len, npages, have, err);
	}
	free(payload);
	if (!r) {
		set_page_conns(pc, &req, &push);
		r = pcs_restart(pc->pcs, req.ch, push.ch, have, err);
	}
	free(have);
	if (r) {
		mig_conn_close(&req);
		mig_conn_close(&push);
		return r;
	}
	/* The page server holds the old connections no more. */
	mig_conn_close(&pc->pc_req);
	mig_conn_close(&pc->pc_push);
	pc->pc_req = req;
	pc->pc_push = push;
	return 0;
}

/*
 * Post-copy paused: its connections broke (why).  Keep everything - the
 * guest stays paused here for good (it has run at the destination), every
 * page stays - and wait for `migrate` with "resume": true (or a quit).
 * Then reconnect (postcopy_reconnect); a failed attempt pauses again.
 * Returns 0 once the page server runs again, -ECANCELED on a quit.
 */
static int postcopy_pause(struct precopy *pc, const char *why)
{
	struct migration *m = pc->m;
	char err[ERR_MAX], uri[sizeof(m->resume_uri)], msg[2 * ERR_MAX];

	snprintf(msg, sizeof(msg), "post-copy paused: the connection to the destination "
		 "broke (%s); the guest runs there and this side keeps every page it may "
		 "still need: recover with migrate-recover at the destination, then "
		 "migrate with \"resume\": true here", why);
	postcopy_paused_say(m, msg);
	for (;;) {
		pthread_mutex_lock(&m->lock);
		while (!m->resume && !m->cancel)
			pthread_cond_wait(&m->cond, &m->lock);
		bool quit = m->cancel;
		m->resume = false;
		snprintf(uri, sizeof(uri), "%s", m->resume_uri);
		if (!quit)
			snprintf(m->uri, sizeof(m->uri), "%s", uri);
		pthread_mutex_unlock(&m->lock);
		if (quit)
			return -ECANCELED;
		log_info("migration: post-copy recovery: reconnecting to %s", uri);
		int r = postcopy_reconnect(pc, uri, err);
		if (!r) {
			pthread_mutex_lock(&m->lock);
			m->stats.status = MIG_STATUS_POSTCOPY_ACTIVE;
			m->stats.error[0] = '\0';
			m->stats.postcopy_recoveries++;
			pthread_cond_broadcast(&m->cond);
			pthread_mutex_unlock(&m->lock);
			log_info("migration: post-copy recovered: serving and pushing what the "
				 "destination lacks again");
			return 0;
		}
		if (migration_cancelled(m))
			return -ECANCELED;
		snprintf(msg, sizeof(msg), "post-copy paused: the recovery failed: %s; try "
			 "again with migrate \"resume\": true", err);
		postcopy_paused_say(m, msg);
	}
}

/* The pages each vCPU touches first when it runs again (vcpu_pages.h),
 * up to max, into gpas: pushed before any other, so that they are at the
 * destination when the guest resumes there instead of faulting in one
 * round trip after another.  The vCPUs are parked. */
static size_t vcpus_pages(struct precopy *pc, uint64_t *gpas, size_t max)
{
	size_t n = 0;
	for (unsigned i = 0; i < pc->vm->nvcpus && n < max; i++) {
		struct vcpu_pages_state st;
		if (!vcpu_pages_state(pc->vm->vcpus[i], &st))
			n += vcpu_pages(&st, &pc->vm->mem, gpas + n, max - n);
	}
	return n;
}

/* What goes first, in order: each vCPU's pages (early: the destination
 * waits for these, PUSH_MARK), then the pages around each of them (the
 * rest of the code, data and tables it works on), not waited for.  The
 * pages the guest wrote last would be worth sending too, but learning
 * them takes KVM's dirty log, whose arming stalls a PVM guest for longer
 * (5-15 ms at 4 GiB, measured) than the faults it saves. */
static void push_first(struct precopy *pc, bool early)
{
	uint64_t g[PCS_FIRST_MAX] = { 0 };
	size_t nv = vcpus_pages(pc, g, PCS_FIRST_MAX);
	pcs_push_first(pc->pcs, g, nv);
	if (early)
		pcs_first_mark(pc->pcs);
	uint64_t around[2 * AROUND_PAGES];
	for (size_t k = 0; k < nv; k++) {
		size_t na = 0;
		for (int d = -AROUND_PAGES; d <= AROUND_PAGES; d++)
			if (d && (d > 0 || g[k] >= (uint64_t)-d * PAGE))
				around[na++] = g[k] + (uint64_t)(int64_t)d * PAGE;
		pcs_push_first(pc->pcs, around, na);
	}
}

/* The page server for the listed runs: every page between them is at
 * the destination already.  Started in the pause when the destination
 * places nothing before the list is applied (early push), else once it
 * runs the guest. */
static int start_page_server(struct precopy *pc, const struct pcp_run *runs, size_t n,
			     bool early, char *err)
{
	struct migration *m = pc->m;
	int r = pcs_new(&pc->vm->mem, NULL, &pc->pcs, err);

	/* The destination confirms what it placed; it leaves this host. */
	if (!r && pc->caps.release_ram)
		r = pcs_release_ram(pc->pcs, err);
	if (!r) {
		/* Pages between the runs are at the destination already. */
		each_gap(&pc->vm->mem, runs, n, gap_skip, pc->pcs);
		push_first(pc, early);
		set_page_conns(pc, &pc->pc_req, &pc->pc_push);
		/* Tests: a link cut part-way, or a push that never ends. */
		if (m->p.fault == MIG_FAULT_POSTCOPY_CUT)
			pcs_cut_after(pc->pcs, MIG_FAULT_CUT_PAGES);
		/* Started in the pause, only the vCPUs' pages go until
		 * the guest runs there: the bulk would take the CPU the
		 * hand-over needs (postcopy_serve lets it go). */
		if (m->p.fault == MIG_FAULT_POSTCOPY_HOLD || early)
			pcs_hold_push(pc->pcs, true);
		r = pcs_start(pc->pcs, pc->pc_req.ch, pc->pc_push.ch, err);
	}
	return r;
}

/* Stop a page server started early, before the guest runs here again:
 * the hand-over failed before COMMIT. */
static void stop_page_server(struct precopy *pc)
{
	if (!pc->pcs)
		return;
	pcs_stop(pc->pcs);
	pcs_wait(pc->pcs, NULL);
}

/*
 * The source's side of post-copy once the guest runs at the destination:
 * serve requests and push every page the destination lacks until it has
 * them all (PAGES_DONE).  The guest stays paused here; a quit (or a
 * cancel that could no longer be refused) ends the serving, which the
 * destination cannot survive: only then does this return early.
 */
static int postcopy_serve(struct precopy *pc, const struct pcp_run *runs, size_t n)
{
	struct migration *m = pc->m;
	char err[ERR_MAX] = "";
	int r = pc->pcs ? 0 : start_page_server(pc, runs, n, false, err);

	if (r)
		return stream_fail(&pc->s, r, "%s", err);
	if (m->p.fault != MIG_FAULT_POSTCOPY_HOLD)
		pcs_hold_push(pc->pcs, false);
	pthread_mutex_lock(&m->lock);
	m->pcs = pc->pcs;
	m->stats.postcopy = true;
	m->stats.status = MIG_STATUS_POSTCOPY_ACTIVE;
	pthread_cond_broadcast(&m->cond);
	pthread_mutex_unlock(&m->lock);
	log_info("migration: post-copy: the guest runs at the destination; serving "
		 "its missing pages");
	for (;;) {
		while (!pcs_finished(pc->pcs)) {
			pthread_mutex_lock(&m->lock);
			struct timespec until = clock_deadline(CLOCK_REALTIME, 20 * 1000000ULL);
			pthread_cond_timedwait(&m->cond, &m->lock, &until);
			bool quit = m->cancel;
			pthread_mutex_unlock(&m->lock);
			if (quit) {
				pcs_stop(pc->pcs);
				break;
			}
		}
		r = pcs_wait(pc->pcs, err);
		if (!r || migration_cancelled(m) || !postcopy_recoverable(r))
			break;
		/* The connections broke: keep everything and wait. */
		r = postcopy_pause(pc, err);
		if (r)
			break;
	}
	pthread_mutex_lock(&m->lock);
	m->pcs = NULL;
	pcs_stats(pc->pcs, &m->stats.pcs);
	if (!r)
		m->stats.remaining_pages = 0;
	m->stats.postcopy_end_ns = mig_now_ns();
	pthread_mutex_unlock(&m->lock);
	if (r)
		return stream_fail(&pc->s, r, "%s", err);
	return 0;
}

/*
 * Switch to post-copy, in place of the stop-and-copy: open the two
 * post-copy connections (the guest still runs here), pause, send the
 * machine state and the list of pages the destination lacks
 * (POSTCOPY_MISSING) instead of the pages, hand over (READY, COMMIT,
 * RUNNING as in pre-copy: COMMIT is still the point of no return), then
 * serve the pages.  Returns as stop_and_copy, and -ENOTRECOVERABLE when
 * post-copy failed after the guest ran at the destination.
 */
static int postcopy_switch(struct precopy *pc)
{
	struct migration *m = pc->m;
	char err[ERR_MAX] = "";
	struct pcp_run *runs = NULL;
	uint64_t missing = 0;
	int r;

	log_info("migration: switching to post-copy%s", pc->round ? " after pre-copy" : "");
	r = mig_conn_open_watched(m->uri, m->p.tls, MIG_ROLE_PAGE_REQUESTS, pc->session,
				  CONNECT_TIMEOUT_MS, watch_fd, m, &pc->pc_req, err);
	if (!r)
		r = mig_conn_open_watched(m->uri, m->p.tls, MIG_ROLE_POSTCOPY_PUSH,
					  pc->session, CONNECT_TIMEOUT_MS, watch_fd, m,
					  &pc->pc_push, err);
	if (migration_cancelled(m))
		return stream_fail(&pc->s, -ECANCELED, "cancelled");
	if (r)
		return stream_fail(&pc->s, r, "%s", err);

	/* The destination registers its memory while this side pauses and
	 * lists the missing pages, not after. */
	if (pc->caps.early_push) {
		stream_put(&pc->s, MIG_REC_POSTCOPY_PREPARE, NULL, 0);
		if (stream_flush(&pc->s))
			return pc->s.error;
	}
	migration_set_status(m, MIG_STATUS_DEVICE);
	uint64_t t_pause = mig_now_ns();
	vm_hold(pc->vm, VM_STATUS_FINISH_MIGRATE);
	pc->paused_by_us = true;
	uint64_t t_parked = mig_now_ns(), t_final, t_state, t_ready = 0;

	if (pc->logging && harvest(pc) < 0)
		return pc->s.error;
	/* Pure post-copy lists all of RAM when the destination can take
	 * the zero pages' names later: the scan for what the guest ever
	 * touched then runs once the guest runs there, not in the pause. */
	bool zero_later = !pc->logging && pc->caps.early_push && pc->caps.zero_runs;
	long n = zero_later ? all_ram(pc, &runs, &missing) : missing_runs(pc, &runs, &missing);
	if (n < 0)
		return stream_fail(&pc->s, (int)n, "out of memory for the missing pages' list");
	pthread_mutex_lock(&m->lock);
	m->stats.remaining_pages = missing;
	m->stats.postcopy_missing = missing;
	pthread_mutex_unlock(&m->lock);
	t_final = mig_now_ns();
	migration_fault_point(m, MIG_FAULT_DEVICE);
	if (machine_state_save(pc->vm, emit_state, &pc->s, err)) {
		free(runs);
		return stream_fail(&pc->s, -EIO, "%s", err);
	}
	pcp_put_missing(pc->s.w, runs, (size_t)n);
	stream_sync(&pc->s);
	stream_put(&pc->s, MIG_REC_STATE_END, NULL, 0);
	if (stream_flush(&pc->s)) {
		free(runs);
		return pc->s.error;
	}
	t_state = mig_now_ns();
	/* While the destination applies the list and loads the state. */
	if (pc->caps.early_push && start_page_server(pc, runs, (size_t)n, true, err)) {
		free(runs);
		return stream_fail(&pc->s, -EIO, "%s", err);
	}
	if (wait_ready(pc)) {
		r = pc->s.error;
	} else {
		t_ready = mig_now_ns();
		migration_fault_point(m, MIG_FAULT_AFTER_READY);
		r = hand_over(pc);
	}
	/* COMMIT went out and no answer came: the destination may run the
	 * guest, asleep on pages only this side has.  Serving them anyway
	 * is never worse: if it does not run, nobody asks and the page
	 * connections just close; if it does, it gets its pages. */
	bool unconfirmed = r == -EINPROGRESS && (n > 0 || pc->caps.early_push);
	if (r && !unconfirmed) {
		free(runs);
		return r;
	}
	if (unconfirmed)
		log_warn("migration: COMMIT went out but the destination did not "
			 "confirm it; serving its missing pages anyway, since it may "
			 "run the guest");
	else
		publish_downtime(pc, t_pause, t_parked, t_final, t_state, t_ready);
	/* The guest runs there: now the scan for the zero pages, off the
	 * pause (a page the guest asks for meanwhile is answered). */
	int zr = zero_later ? name_zero_runs_quietly(pc, &missing) : 0;
	if (zr)
		log_warn("migration: no list of the zero pages (%s): the push sends "
			 "them as pages", strerror(-zr));
	if (n == 0 && !pc->caps.early_push) {
		/* Nothing listed (a hybrid whose pre-copy sent every page,
		 * e.g. of a paused guest): no POSTCOPY_MISSING went out, so
		 * the destination completed as after a pre-copy and never
		 * takes the page connections; serving would wait for a
		 * PAGES_DONE that cannot come.  (After POSTCOPY_PREPARE it
		 * took them: it says PAGES_DONE at once, and the push ends
		 * at once.) */
		free(runs);
		log_info("migration: the destination had every page already: "
			 "no post-copy needed");
		return 0;
	}
	pthread_mutex_lock(&m->lock);
	m->stats.postcopy_start_ns = mig_now_ns();
	pthread_mutex_unlock(&m->lock);
	log_info("migration: the destination runs the guest; it lacks %llu of %llu pages",
		 (unsigned long long)missing,
		 (unsigned long long)memory_npages(&pc->vm->mem));
	r = postcopy_serve(pc, runs, (size_t)n);
	free(runs);
	if (r)
		return unconfirmed ? -EINPROGRESS : -ENOTRECOVERABLE;
	if (unconfirmed) {
		/* PAGES_DONE: it took the page connections after COMMIT and
		 * placed every page, so it runs the guest. */
		log_info("migration: the destination took every page: it runs "
			 "the guest");
		pthread_mutex_lock(&m->lock);
		m->stats.confirmed = true;
		pthread_mutex_unlock(&m->lock);
	}
	return 0;
}

/* The rest does not fit and the policy (or a limit under "wait") says
 * stop without switching over: fail, the guest runs on here. */
static int give_up(struct precopy *pc, const struct conv_decision *d)
{
	struct migration *m = pc->m;

	pthread_mutex_lock(&m->lock);
	enum mig_policy pol = m->p.policy;
	uint64_t limit = m->p.downtime_ms;
	pthread_mutex_unlock(&m->lock);
	if (pol == MIG_POLICY_ABORT)
		return stream_fail(&pc->s, -ETIMEDOUT,
				   "pre-copy did not converge (%s: the rest needs ~%llu ms, "
				   "the downtime limit is %llu ms) and the policy is abort",
				   d->why, (unsigned long long)d->expect_ms,
				   (unsigned long long)limit);
	return stream_fail(&pc->s, -ETIMEDOUT,
			   "pre-copy reached its %s and the rest (~%llu ms) still does not "
			   "fit the %llu ms downtime limit: switchover 'wait' never exceeds "
			   "it ('force' would have)", d->why,
			   (unsigned long long)d->expect_ms, (unsigned long long)limit);
}

/* The dirty limit's figures into st (under m->lock). */
static void publish_dirty_limit(struct precopy *pc, struct mig_stats *st)
{
	st->dirty_limit_active = pc->dl_on;
	st->dl_nvcpus = pc->vm->nvcpus;
	for (unsigned i = 0; i < pc->vm->nvcpus && i < MIG_STATS_VCPUS; i++) {
		uint64_t limit;
		st->dl_vcpu[i].rate = dirty_limit_rate(pc->vm, i, &limit);
		st->dl_vcpu[i].percent = vm_throttle_vcpu_percent(pc->vm, i);
	}
}

/*
 * The dirty limit: once the auto-converge trigger fires (two rounds in a
 * row dirtying more than the link drains), hold each vCPU to
 * vcpu-dirty-limit from then on.
 */
static void limit_vcpus(struct precopy *pc, struct ac_params p,
			const struct ac_round *r)
{
	struct migration *m = pc->m;

	p.enabled = true;
	struct ac_state n = ac_decide(&p, &pc->ac, r);
	if (n.steps > pc->ac.steps && !pc->dl_on) {
		pthread_mutex_lock(&m->lock);
		uint64_t bps = (m->p.dl.mbps << 20), period = m->p.dl.period_ms;
		pthread_mutex_unlock(&m->lock);
		char err[ERR_MAX] = "";
		if (dirty_limit_start(pc->vm, bps, period, err))
			log_warn("migration: cannot hold the vCPUs to a dirty rate: %s",
				 err);
		else {
			pc->dl_on = true;
			log_info("migration: the guest dirtied %llu MiB while %llu MiB "
				 "were sent; holding each vCPU to %llu MiB/s of dirtied "
				 "memory", (unsigned long long)(r->dirty_bytes >> 20),
				 (unsigned long long)(r->sent_bytes >> 20),
				 (unsigned long long)(bps >> 20));
		}
	}
	pc->ac = n;
	pthread_mutex_lock(&m->lock);
	m->stats.dirty_limit_bps = (m->p.dl.mbps << 20);
	publish_dirty_limit(pc, &m->stats);
	pthread_mutex_unlock(&m->lock);
}

/*
 * Switch to post-copy now?  Mode postcopy: at once (no round at all);
 * hybrid: after precopy_rounds rounds or precopy_ms; any mode:
 * migrate-start-postcopy (once the destination agreed to post-copy).
 */
static bool postcopy_due(struct precopy *pc, uint64_t start_ns)
{
	struct migration *m = pc->m;

	if (!pc->caps.postcopy)
		return false;
	pthread_mutex_lock(&m->lock);
	bool ask = m->start_postcopy;
	enum mig_mode mode = m->p.mode;
	uint64_t rounds = m->p.precopy_rounds, ms = m->p.precopy_ms;
	pthread_mutex_unlock(&m->lock);
	if (ask || mode == MIG_MODE_POSTCOPY)
		return true;
	return mode == MIG_MODE_HYBRID &&
	       (pc->round >= rounds || mig_now_ns() - start_ns >= ms * 1000000ULL);
}

/*
 * Auto-converge (auto_converge.h): after a round that did not end
 * pre-copy, slow the guest if it dirties faster than the link drains.
 */
static void slow_guest(struct precopy *pc, uint64_t dirty, bool fits)
{
	struct migration *m = pc->m;
	struct mig_stats *st = &m->stats;

	pthread_mutex_lock(&m->lock);
	const struct ac_params p = m->p.ac;
	bool dl = m->p.dl.enabled;
	const struct ac_round r = {
		.dirty_bytes = dirty * PAGE, .fits = fits,
		.sent_bytes = st->nround ? st->round[st->nround - 1].bytes : 0,
	};
	pthread_mutex_unlock(&m->lock);
	if (dl) {
		limit_vcpus(pc, p, &r);
		return;
	}
	struct ac_state n = ac_decide(&p, &pc->ac, &r);
	if (n.percent != pc->ac.percent) {
		if (vm_throttle_set(pc->vm, n.percent))
			n.percent = pc->ac.percent;
		else
			log_info("migration: the guest dirtied %llu MiB while %llu MiB "
				 "were sent; slowing it to %u%% of its vCPU time",
				 (unsigned long long)(r.dirty_bytes >> 20),
				 (unsigned long long)(r.sent_bytes >> 20),
				 100 - n.percent);
	}
	pc->ac = n;
	pthread_mutex_lock(&m->lock);
	st->throttle_percent = st->throttle_max = n.percent;
	st->throttle_steps = n.steps;
	st->throttled_ns = vm_throttle_ns(pc->vm) - pc->throttled_ns0;
	pthread_mutex_unlock(&m->lock);
}

static int precopy_rounds(struct precopy *pc)
{
	struct migration *m = pc->m;
	uint64_t start = mig_now_ns();

	pc->rounds_start_ns = start;
	for (pc->round = 0;; pc->round++) {
		if (postcopy_due(pc, start)) {
			/* What is still dirty (or never sent) is what the
			 * destination will pull. */
			pc->postcopy = true;
			return wait_all_placed(pc) < 0 ? pc->s.error : 0;
		}
		int64_t dirty;
again:
		dirty = harvest(pc);
		if (dirty < 0)
			return (int)dirty;
		if (pc->round > 0) {
			struct conv_decision d = converged(pc, (uint64_t)dirty, start);
			/* A hybrid never gives up and never pauses for a
			 * final round: what does not fit goes as post-copy. */
			bool hybrid = pc->caps.postcopy && m->p.mode == MIG_MODE_HYBRID;
			if (hybrid && (d.give_up || d.stop)) {
				pc->postcopy = true;
				return wait_all_placed(pc) < 0 ? pc->s.error : 0;
			}
			if (d.give_up)
				return give_up(pc, &d);
			/* The bits just harvested stay set and go out in
			 * the final round.  If the destination was still
			 * placing the last round, what the guest dirtied
			 * meanwhile is harvested and judged too: the pause
			 * must fit with it. */
			if (d.stop) {
				int w = wait_all_placed(pc);
				if (w < 0)
					return pc->s.error;
				if (w)
					goto again;
				return 0;
			}
			slow_guest(pc, (uint64_t)dirty, d.fits);
		}
		if (pc->round == 0)
			pc->conv.prev_dirty = (uint64_t)dirty;
		if (send_round(pc, (uint64_t)dirty) || check_return_path(pc))
			return pc->s.error;
		if (migration_cancelled(m))
			return stream_fail(&pc->s, -ECANCELED, "cancelled");
	}
}

/*
 * A migration that ends here before COMMIT for a reason of its own (not
 * converging, a dirty log error, a cancel, the source shutting down)
 * tells the destination why before closing, so that it can say more than
 * "connection closed".  Records still buffered go out first (a cancel
 * leaves a half-sent one there, rec_writer_resume), then ERROR: briefly
 * and unpaced, since a stalled peer must not delay the end.  A broken
 * stream (a failed send, a cancel that had to shut the socket) cannot
 * carry it.
 */
static void tell_destination(struct precopy *pc, const char *why)
{
	struct rec_writer *w = pc->s.w;

	if (pc->s.fd < 0 || !w || pc->dest_error || rec_writer_resume(w))
		return;
	rec_writer_set_cancel(w, NULL);
	rec_writer_set_rate_source(w, NULL);
	rec_writer_set_rate(w, 0);
	rec_writer_set_progress(w, NULL, NULL);
	channel_set_timeout(pc->s.fd, TELL_TIMEOUT_MS);
	rec_put(w, MIG_REC_ERROR, why, strlen(why));
	if (rec_flush(w))
		log_info("migration: could not tell the destination why: %s",
			 rec_writer_errmsg(w));
}

static void finish(struct precopy *pc, int r)
{
	struct migration *m = pc->m;
	struct mig_stats *st = &m->stats;
	enum mig_status final;

	if (pc->logging)
		dirty_log_stop(pc->vm);
	/* Whatever the outcome, the guest runs at full speed again: the
	 * dirty limit's last shares are published, then every share, the
	 * VM's and each vCPU's, is lifted at once. */
	if (pc->dl_on || pc->ac.percent) {
		if (pc->dl_on) {
			pthread_mutex_lock(&m->lock);
			publish_dirty_limit(pc, st);
			pthread_mutex_unlock(&m->lock);
			dirty_limit_stop(pc->vm);
		}
		vm_throttle_clear(pc->vm);
		pthread_mutex_lock(&m->lock);
		st->dirty_limit_active = pc->dl_on = false;
		st->throttle_percent = 0;
		st->throttled_ns = vm_throttle_ns(pc->vm) - pc->throttled_ns0;
		pthread_mutex_unlock(&m->lock);
	}
	if (r == 0) {
		final = MIG_STATUS_COMPLETED;
		vm_release_to(pc->vm, VM_STATUS_POSTMIGRATE);
	} else if (r == -ENOTRECOVERABLE) {
		/* The destination runs the guest and lacks pages only this
		 * side holds: never resume here (the guest has moved on
		 * there); keep every page. */
		vm_release_to(pc->vm, VM_STATUS_POSTMIGRATE_UNKNOWN);
		final = MIG_STATUS_FAILED;
		snprintf(st->error, sizeof(st->error),
			 "post-copy failed after the hand-over (%.200s): the guest runs at "
			 "the destination without all of its memory, which this side "
			 "still holds (paused, postmigrate-unknown)",
			 pc->s.errmsg[0] ? pc->s.errmsg : "no reason");
	} else if (r == -EINPROGRESS) {
		/* Never resume here: the guest may already run there.  A state
		 * of its own, so neither a plain cont nor a second migrate can
		 * make a second copy. */
		vm_release_to(pc->vm, VM_STATUS_POSTMIGRATE_UNKNOWN);
		final = MIG_STATUS_FAILED;
		snprintf(st->error, sizeof(st->error),
			 "COMMIT was sent but the destination did not confirm (%.200s); "
			 "the guest may be running at the destination, so it stays "
			 "paused here (postmigrate-unknown): resume it with cont and "
			 "\"force\": true only if it does not run there",
			 pc->s.errmsg[0] ? pc->s.errmsg : "no answer");
	} else {
		bool cancelled = migration_cancelled(m);
		final = cancelled ? MIG_STATUS_CANCELLED : MIG_STATUS_FAILED;
		if (!cancelled && !st->error[0])
			snprintf(st->error, sizeof(st->error), "%s",
				 pc->s.errmsg[0] ? pc->s.errmsg : strerror(-r));
		/* The source still owns the VM: give it back its run state
		 * (first: telling the destination may take a moment), once
		 * a page server started before COMMIT has stopped. */
		stop_page_server(pc);
		if (pc->paused_by_us)
			vm_release(pc->vm);
		if (cancelled) {
			char why[sizeof(m->cancel_why)];
			pthread_mutex_lock(&m->lock);
			snprintf(why, sizeof(why), "%s", m->cancel_why);
			pthread_mutex_unlock(&m->lock);
			tell_destination(pc, why);
		} else {
			char why[sizeof(st->error) + 64];
			snprintf(why, sizeof(why), "the source failed: %s; the guest "
				 "stays at the source", st->error);
			tell_destination(pc, why);
		}
	}
	/* After telling the destination why: a page channel closing first
	 * would be its reason. */
	uint64_t mf_bytes = pc->mf ? mf_send_bytes(pc->mf) : 0;
	if (pc->mf) {
		pthread_mutex_lock(&m->lock);
		publish_pages(pc, st);
		pthread_mutex_unlock(&m->lock);
	}
	mf_send_close(pc->mf, &pc->mf_fds);
	pc->mf = NULL;
	/* The channel before the socket under it: a TLS channel's goodbye
	 * must not go to a closed (or reused) descriptor. */
	stream_free(&pc->s);
	/* The page server before the connections it uses. */
	pcs_free(pc->pcs);
	pc->pcs = NULL;
	mig_conn_close(&pc->pc_req);
	mig_conn_close(&pc->pc_push);
	pthread_mutex_lock(&m->lock);
	st->end_ns = mig_now_ns();
	st->wire_bytes = pc->s.bytes_out + mf_bytes;
	st->status = final;
	if (m->fd >= 0) {
		close(m->fd);
		m->fd = -1;
	}
	pthread_cond_broadcast(&m->cond);
	pthread_mutex_unlock(&m->lock);
	mig_stats_log(st, "source");
	if (final == MIG_STATUS_COMPLETED && st->forced &&
	    mig_stats_downtime_exceeded(st)) {
		char pause[UNITS_LEN], limit[UNITS_LEN];
		log_warn("migration: the switch-over was forced (switchover 'force') and "
			 "the pause, %s, exceeded the %s downtime limit",
			 units_duration_ms(pause, sizeof(pause), st->downtime_ns / 1e6),
			 units_duration_ms(limit, sizeof(limit),
					   (double)st->downtime_limit_ms));
	}
	if (final == MIG_STATUS_FAILED)
		log_error("migration failed: %s%s", st->error,
			  pc->paused_by_us && r != -EINPROGRESS && r != -ENOTRECOVERABLE
				  ? " (the guest goes on running here)" : "");
	for (unsigned i = 0; i < MEM_MAX_SLOTS; i++)
		free(pc->bitmap[i]);
	ram_encoder_free(&pc->enc);
	delta_cache_free(&pc->cache);
}

void precopy_run(struct migration *m)
{
	struct precopy pc = { .m = m, .vm = m->vm };

	convergence_init(&pc.conv);
	dirty_ring_counts(m->vm, &pc.ring0.harvested, &pc.ring0.full_exits);
	m->stats.dirty_ring = m->vm->ring.entries;
	ac_state_init(&pc.ac);
	pc.throttled_ns0 = vm_throttle_ns(m->vm);
	m->stats.auto_converge = m->p.ac.enabled;
	m->stats.dirty_limit = m->p.dl.enabled;
	m->stats.dirty_limit_bps = (m->p.dl.mbps << 20);
	char err[ERR_MAX] = "";
	int r;

	pc.s.fd = -1;
	pc.pc_req.fd = pc.pc_push.fd = -1;
	m->stats.ram_total = m->vm->mem.ram_size;
	char dt[UNITS_LEN], bw[UNITS_LEN];
	log_info("migrating to %s (downtime target %s, bandwidth %s)", m->uri,
		 units_duration_ms(dt, sizeof(dt), (double)m->p.downtime_ms),
		 m->p.max_bandwidth ? units_rate(bw, sizeof(bw),
						 (double)m->p.max_bandwidth)
				    : "unlimited");
	r = negotiate(&pc, err);
	if (r && !pc.s.error)
		stream_fail(&pc.s, r, "%s", err);
	if (!r) {
		pthread_mutex_lock(&m->lock);
		m->stats.setup_done_ns = mig_now_ns();
		if (m->stats.status == MIG_STATUS_SETUP)
			m->stats.status = MIG_STATUS_ACTIVE;
		pthread_mutex_unlock(&m->lock);
		/* Pure post-copy sends no round: nothing to log. */
		if (!(pc.caps.postcopy && m->p.mode == MIG_MODE_POSTCOPY))
			r = start_logging(&pc, err);
		if (r)
			stream_fail(&pc.s, r, "%s", err);
	}
	if (!r)
		r = precopy_rounds(&pc);
	if (!r)
		r = pc.postcopy ? postcopy_switch(&pc) : stop_and_copy(&pc);
	if (r && r != -EINPROGRESS && !pc.s.error)
		stream_fail(&pc.s, r, "%s", strerror(-r));
	finish(&pc, r);

	if (r == 0 && !m->p.keep_source) {
		/* Linger so pollers see "completed", then end the process: the
		 * VM lives at the destination now. */
		struct timespec until = clock_deadline(CLOCK_REALTIME,
						       LINGER_MS * 1000000ULL);
		pthread_mutex_lock(&m->lock);
		while (!m->cancel &&
		       pthread_cond_timedwait(&m->cond, &m->lock, &until) == 0)
			;
		pthread_mutex_unlock(&m->lock);
		vm_request_quit(m->vm, 0);
	}
}
