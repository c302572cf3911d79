/*
 * Pre-copy live migration, source side (Clark et al., NSDI 2005):
 *
 *   round 0      send all memory while the guest runs
 *   round N      send what the dirty log says was written since
 *   converge     when the rest fits the downtime target at the measured
 *                bandwidth, or the dirty set stops shrinking, or a round or
 *                time limit is hit (then the policy: switch over or abort)
 *   stop-and-copy pause, send the final dirty set and all state
 *   handover     READY from the destination, COMMIT, RUNNING back
 *
 * Until COMMIT is sent, any failure resumes the guest here.
 */
#include "migration/source.h"
#include "migration/channel.h"
#include "migration/convergence.h"
#include "migration/hello.h"
#include "migration/preamble.h"
#include "migration/protocol.h"
#include "migration/ram_codec.h"
#include "migration/stream.h"
#include "vmm/dirty_log.h"
#include "vmm/machine_state.h"
#include "vmm/memory.h"
#include "vmm/vm.h"
#include "util/log.h"
#include "util/units.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <linux/sockios.h>

#define PAGE              GUEST_PAGE_SIZE
#define CLEAR_CHUNK_PAGES 4096   /* re-arm the dirty log 16 MiB at a time */
#define CONNECT_TIMEOUT_MS 10000
#define READY_TIMEOUT_MS  10000u /* stop-and-copy: state sent -> READY */
#define READY_MAX_EXTRA_MS 50000u /* ... plus the send queue's time, at most */
#define LINGER_MS         1500   /* keep answering query-migrate after completion */
#define STATE_ESTIMATE    (64u << 10) /* bytes of device/vCPU state, per vCPU */

struct precopy {
	struct migration *m;
	struct vm *vm;
	struct mig_stream s;
	uint64_t *bitmap[MEM_MAX_SLOTS];
	uint32_t round;
	struct ram_batch batch;   /* pages for the next RAM_PAGES record */
	const struct ram_encoding *enc;
	uint64_t round_pages, round_zero;
	bool logging, paused_by_us;
	bool dest_error;    /* the destination said ERROR: it will not run it */
	struct conv_history conv; /* what the stop rule remembers */
	struct mig_caps caps;     /* agreed with the destination */
	uint8_t session[MIG_SESSION_ID_LEN]; /* names this migration's connections */
};

/* One RAM_PAGES record for the batch (ram_codec.c owns the format). */
static void flush_batch(struct precopy *pc)
{
	if (!pc->batch.n)
		return;
	struct ram_counts c = { 0 };
	pc->batch.round = pc->round;
	if (ram_encode(pc->s.w, pc->enc, &pc->vm->mem, &pc->batch, &c))
		stream_sync(&pc->s);
	pc->round_pages += c.pages;
	pc->round_zero += c.zero_pages;
	pc->batch.n = 0;
}

/* Send every page whose bit is set in the slot's bitmap, clearing the
 * bits.  Each chunk's dirty log is re-armed just before its pages are read,
 * so a write after the read is caught for the next round. */
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
				pc->batch.desc[pc->batch.n++] = (ms->gpa + pg * PAGE) |
					(populated[pg - first] ? 0 : MIG_PAGE_ZERO);
				if (pc->batch.n == MIG_PAGES_PER_RECORD)
					flush_batch(pc);
			}
		}
		if (migration_cancelled(pc->m))
			return stream_fail(&pc->s, -ECANCELED, "cancelled");
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
	return (int64_t)total;
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
	if (!mig_record_known(type))
		return rec_unknown(pc->s.r, type, len) ? stream_sync(&pc->s) : 0;
	return stream_fail(&pc->s, -EPROTO, "unexpected %s on the return path",
			   mig_record_name(type));
}

static int send_round(struct precopy *pc, uint64_t dirty)
{
	struct mig_stats *st = &pc->m->stats;
	uint64_t t0 = mig_now_ns(), b0 = stream_bytes_queued(&pc->s);

	pc->round_pages = pc->round_zero = 0;
	for (unsigned i = 0; i < pc->vm->mem.nslots && !pc->s.error; i++)
		send_slot(pc, i);
	migration_fault_point(pc->m, pc->paused_by_us ? MIG_FAULT_NONE : pc->round ?
			      MIG_FAULT_LATER_ROUND : MIG_FAULT_ROUND0);
	struct { uint32_t round; uint64_t pages; } __attribute__((packed)) end = {
		pc->round, pc->round_pages };
	stream_put(&pc->s, MIG_REC_ROUND_END, &end, sizeof(end));
	stream_flush(&pc->s);
	if (pc->s.error)
		return pc->s.error;

	uint64_t dt = mig_now_ns() - t0, bytes = pc->s.bytes_out - b0;
	pthread_mutex_lock(&pc->m->lock);
	if (st->nround < MIG_MAX_ROUND_STATS)
		st->round[st->nround++] = (struct mig_round_stats){
			.round = pc->round, .pages = pc->round_pages,
			.zero_pages = pc->round_zero, .bytes = bytes,
			.dirty_pages = dirty, .duration_ns = dt };
	st->normal_pages += pc->round_pages - pc->round_zero;
	st->zero_pages += pc->round_zero;
	st->wire_bytes = pc->s.bytes_out;
	st->rounds++;
	/* A short round (mostly zero pages) says little about the link. */
	if (dt > 5000000 && bytes > (4u << 20))
		st->bandwidth = bytes * 1e9 / dt;
	else if (!st->bandwidth)
		st->bandwidth = 1e9; /* a guess until measured */
	st->remaining_pages = 0;
	pthread_mutex_unlock(&pc->m->lock);
	return 0;
}

/*
 * Decide after a harvest whether to stop pushing (the rules are
 * convergence.c's) and publish what the decision saw.  Returns true to
 * stop; *forced says a limit decided, not the fit (the policy then says
 * switch over or abort).
 */
static bool converged(struct precopy *pc, uint64_t dirty, uint64_t start_ns,
		      bool *forced)
{
	struct migration *m = pc->m;
	struct mig_stats *st = &m->stats;
	const struct conv_params params = {
		.downtime_ms = m->p.downtime_ms,
		.max_rounds = m->p.max_rounds,
		.timeout_ns = m->p.timeout_s * 1000000000ULL,
		.state_bytes = (uint64_t)pc->vm->nvcpus * STATE_ESTIMATE,
	};
	const struct conv_round round = {
		.round = pc->round, .dirty_pages = dirty,
		.bandwidth = st->bandwidth,
		.elapsed_ns = mig_now_ns() - start_ns,
	};
	struct conv_decision d = convergence_decide(&params, &pc->conv, &round);
	pc->conv = d.next;

	pthread_mutex_lock(&m->lock);
	st->expected_downtime_ms = d.expect_ms;
	st->remaining_pages = dirty;
	if (st->nround) {
		const struct mig_round_stats *r = &st->round[st->nround - 1];
		if (r->duration_ns)
			st->dirty_rate = dirty * 1e9 / r->duration_ns;
	}
	if (d.why)
		snprintf(st->convergence, sizeof(st->convergence), "%s%s", d.why,
			 d.fits ? "" : " (forced)");
	pthread_mutex_unlock(&m->lock);
	*forced = d.forced;
	return d.stop;
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
	do {
		if (stream_read(&pc->s, &type, &p, &len))
			return pc->s.error;
		/* optional records this ferry does not know are skipped */
	} while (!mig_record_known(type) && !rec_unknown(pc->s.r, type, len));
	if (stream_sync(&pc->s)) /* an unknown mandatory record */
		return pc->s.error;
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
	if (!r && !(pc->enc = ram_encoding_by_name(pc->caps.compression)))
		r = err_set(err, -EPROTO, "the agreed compression '%s' is unknown here",
			    pc->caps.compression);
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
	channel_set_timeout(fd, (int)pc->m->p.idle_timeout_ms);
	r = stream_init(&pc->s, fd);
	if (r) {
		close(fd);
		return err_set(err, r, "out of memory");
	}
	pthread_mutex_lock(&pc->m->lock);
	pc->m->fd = fd;
	bool cancel = pc->m->cancel;
	pthread_mutex_unlock(&pc->m->lock);
	if (cancel)
		shutdown(fd, SHUT_RDWR);
	pc->s.max_bandwidth = pc->m->p.max_bandwidth;
	pc->s.cancel = &pc->m->cancel;

	mig_session_new(pc->session);
	mig_preamble_write(pc->s.w, MIG_ROLE_MAIN, pc->session);
	struct mig_caps offer;
	mig_caps_default(&offer);
	json_t *hello = hello_build(pc->vm, &offer);
	char *txt = hello ? json_dumps(hello, JSON_COMPACT) : NULL;
	json_decref(hello);
	if (!txt)
		return err_set(err, -ENOMEM, "out of memory");
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
	if (ioctl(pc->s.fd, SIOCOUTQ, &unsent) == 0 && unsent > 0) {
		pthread_mutex_lock(&pc->m->lock);
		double bw = pc->m->stats.bandwidth;
		pthread_mutex_unlock(&pc->m->lock);
		extra_ms = (uint64_t)(unsent * 1000.0 / (bw > 1e6 ? bw : 1e6));
		if (extra_ms > READY_MAX_EXTRA_MS)
			extra_ms = READY_MAX_EXTRA_MS;
	}
	uint64_t deadline = mig_now_ns() + (READY_TIMEOUT_MS + extra_ms) * 1000000ULL;
	for (;;) {
		if (stream_readable(&pc->s))
			break;
		uint64_t now = mig_now_ns();
		if (now >= deadline) {
			char t[UNITS_LEN];
			return stream_fail(&pc->s, -ETIMEDOUT,
					   "the destination did not answer READY within %s "
					   "of the machine state",
					   units_duration_ms(t, sizeof(t),
							     (double)(READY_TIMEOUT_MS + extra_ms)));
		}
		struct pollfd p = { .fd = pc->s.fd, .events = POLLIN };
		poll(&p, 1, (int)((deadline - now) / 1000000) + 1);
		if (migration_cancelled(pc->m))
			return stream_fail(&pc->s, -ECANCELED, "cancelled");
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

	pthread_mutex_lock(&m->lock);
	bool cancel = m->cancel;
	st->commit_started = !cancel;
	pthread_mutex_unlock(&m->lock);
	if (cancel)
		return stream_fail(&pc->s, -ECANCELED, "cancelled before COMMIT");

	/* The point of no return: from here the destination may run it. */
	stream_put(&pc->s, MIG_REC_COMMIT, NULL, 0);
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


static int precopy_rounds(struct precopy *pc)
{
	struct migration *m = pc->m;
	uint64_t start = mig_now_ns();

	for (pc->round = 0;; pc->round++) {
		int64_t dirty = harvest(pc);
		if (dirty < 0)
			return (int)dirty;
		bool forced = false;
		if (pc->round > 0 && converged(pc, (uint64_t)dirty, start, &forced)) {
			if (forced && m->p.policy == MIG_POLICY_ABORT)
				return stream_fail(&pc->s, -ETIMEDOUT,
						   "pre-copy did not converge (%s) and the policy is abort",
						   m->stats.convergence);
			/* The bits just harvested stay set and go out in
			 * the final round. */
			return 0;
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
 * A migration that failed here for a reason of its own (not converging, a
 * dirty log error) tells the destination why before closing, so that it
 * can say more than "connection closed".  Only at a record boundary (all
 * that was buffered went out) and briefly: a stalled peer must not delay
 * the end.  After a cancel the socket is already shut down.
 */
static void tell_destination(struct precopy *pc, const char *why)
{
	int saved = pc->s.error;

	if (pc->s.fd < 0 || !pc->s.w || rec_writer_error(pc->s.w) ||
	    rec_writer_buffered(pc->s.w) || pc->dest_error)
		return;
	channel_set_timeout(pc->s.fd, 200);
	pc->s.error = 0;
	stream_put(&pc->s, MIG_REC_ERROR, why, strlen(why));
	stream_flush(&pc->s);
	pc->s.error = saved;
}

static void finish(struct precopy *pc, int r)
{
	struct migration *m = pc->m;
	struct mig_stats *st = &m->stats;
	enum mig_status final;

	if (pc->logging)
		dirty_log_stop(pc->vm);
	if (r == 0) {
		final = MIG_STATUS_COMPLETED;
		vm_release_to(pc->vm, VM_STATUS_POSTMIGRATE);
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
		 * (first: telling the destination may take a moment). */
		if (pc->paused_by_us)
			vm_release(pc->vm);
		if (!cancelled)
			tell_destination(pc, st->error);
	}
	pthread_mutex_lock(&m->lock);
	st->end_ns = mig_now_ns();
	st->wire_bytes = pc->s.bytes_out;
	st->status = final;
	if (m->fd >= 0) {
		close(m->fd);
		m->fd = -1;
	}
	pthread_cond_broadcast(&m->cond);
	pthread_mutex_unlock(&m->lock);
	mig_stats_log(st, "source");
	if (final == MIG_STATUS_FAILED)
		log_error("migration failed: %s%s", st->error,
			  pc->paused_by_us && r != -EINPROGRESS
				  ? " (the guest goes on running here)" : "");
	for (unsigned i = 0; i < MEM_MAX_SLOTS; i++)
		free(pc->bitmap[i]);
	stream_free(&pc->s);
}

void precopy_run(struct migration *m)
{
	struct precopy pc = { .m = m, .vm = m->vm,
			      .enc = ram_encoding_get(RAM_ENC_RAW) };

	convergence_init(&pc.conv);
	char err[ERR_MAX] = "";
	int r;

	pc.s.fd = -1;
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
		r = start_logging(&pc, err);
		if (r)
			stream_fail(&pc.s, r, "%s", err);
	}
	if (!r)
		r = precopy_rounds(&pc);
	if (!r)
		r = stop_and_copy(&pc);
	if (r && r != -EINPROGRESS && !pc.s.error)
		stream_fail(&pc.s, r, "%s", strerror(-r));
	finish(&pc, r);

	if (r == 0 && !m->p.keep_source) {
		/* Linger so pollers see "completed", then end the process: the
		 * VM lives at the destination now. */
		struct timespec until;
		clock_gettime(CLOCK_REALTIME, &until);
		until.tv_sec += LINGER_MS / 1000;
		until.tv_nsec += (LINGER_MS % 1000) * 1000000L;
		if (until.tv_nsec >= 1000000000L) {
			until.tv_sec++;
			until.tv_nsec -= 1000000000L;
		}
		pthread_mutex_lock(&m->lock);
		while (!m->cancel &&
		       pthread_cond_timedwait(&m->cond, &m->lock, &until) == 0)
			;
		pthread_mutex_unlock(&m->lock);
		vm_request_quit(m->vm, 0);
	}
}
