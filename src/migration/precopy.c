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
#include "migration/hello.h"
#include "migration/protocol.h"
#include "migration/stream.h"
#include "vmm/dirty_log.h"
#include "vmm/machine_state.h"
#include "vmm/memory.h"
#include "vmm/vm.h"
#include "util/log.h"
#include "util/zero.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/socket.h>

#define PAGE              GUEST_PAGE_SIZE
#define CLEAR_CHUNK_PAGES 4096   /* re-arm the dirty log 16 MiB at a time */
#define CONNECT_TIMEOUT_MS 10000
#define REPLY_TIMEOUT_MS  30000
#define LINGER_MS         1500   /* keep answering query-migrate after completion */
#define STATE_ESTIMATE    (64u << 10) /* bytes of device/vCPU state, per vCPU */
#define SMALL_DOWNTIME_MS 10     /* below this, more rounds are not worth it */
#define EXTRA_ROUNDS      3      /* rounds pushed after the rest first fits */

struct precopy {
	struct migration *m;
	struct vm *vm;
	struct mig_stream s;
	uint64_t *bitmap[MEM_MAX_SLOTS];
	uint32_t round;
	/* the batch of pages for the next RAM_PAGES record */
	uint64_t batch[MIG_PAGES_PER_RECORD];
	unsigned nbatch;
	uint64_t round_pages, round_zero;
	bool logging, paused_by_us;
	bool dest_error;    /* the destination said ERROR: it will not run it */
	uint32_t first_fit_round; /* when the rest first fitted the limit */
};

/* One RAM_PAGES record for the batch.  Each page is copied into the
 * record first and checked for zero there, so what is checksummed and
 * sent is one consistent copy even while the guest keeps writing (a page
 * written meanwhile is dirty again and goes in a later round). */
static void flush_batch(struct precopy *pc)
{
	struct mig_stream *s = &pc->s;
	if (!pc->nbatch)
		return;
	stream_begin(s, MIG_REC_RAM_PAGES);
	uint32_t hdr[2] = { pc->round, pc->nbatch };
	stream_append(s, hdr, sizeof(hdr));
	size_t desc_off = s->wlen;
	stream_reserve(s, (size_t)pc->nbatch * 8);
	for (unsigned i = 0; i < pc->nbatch && !s->error; i++) {
		uint64_t gpa = pc->batch[i];
		if (gpa & MIG_PAGE_ZERO) { /* never touched: not even read */
			pc->round_zero++;
			memcpy(s->wbuf + desc_off + (size_t)i * 8, &gpa, 8);
			continue;
		}
		const uint8_t *src = memory_gpa_to_hva(&pc->vm->mem, gpa, PAGE);
		uint8_t *dst = stream_reserve(s, PAGE);
		if (!dst)
			break;
		memcpy(dst, src, PAGE);
		if (page_is_zero(dst)) {
			s->wlen -= PAGE;
			gpa |= MIG_PAGE_ZERO;
			pc->round_zero++;
		}
		memcpy(s->wbuf + desc_off + (size_t)i * 8, &gpa, 8);
	}
	stream_end(s);
	pc->round_pages += pc->nbatch;
	pc->nbatch = 0;
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
				pc->batch[pc->nbatch++] = (ms->gpa + pg * PAGE) |
					(populated[pg - first] ? 0 : MIG_PAGE_ZERO);
				if (pc->nbatch == MIG_PAGES_PER_RECORD)
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
	return stream_fail(&pc->s, -EPROTO, "unexpected %s on the return path",
			   mig_record_name(type));
}

static int send_round(struct precopy *pc, uint64_t dirty)
{
	struct mig_stats *st = &pc->m->stats;
	uint64_t t0 = mig_now_ns(), b0 = pc->s.bytes_out + pc->s.wlen;

	pc->round_pages = pc->round_zero = 0;
	for (unsigned i = 0; i < pc->vm->mem.nslots && !pc->s.error; i++)
		send_slot(pc, i);
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
 * Decide after a harvest whether to stop pushing.  The downtime limit is a
 * ceiling, not a goal: while the rest already fits it but still shrinks
 * fast (short rounds leave the guest less time to dirty pages), one more
 * round costs little total time and takes the stop-and-copy down with it.
 * Returns true to stop; *forced says a limit decided, not the fit (the
 * policy then says switch over or abort).
 */
static bool converged(struct precopy *pc, uint64_t dirty, uint64_t prev_dirty,
		      unsigned *flat_rounds, uint64_t start_ns, bool *forced)
{
	struct migration *m = pc->m;
	struct mig_stats *st = &m->stats;
	const struct mig_params *p = &m->p;
	double bw = st->bandwidth > 0 ? st->bandwidth : 1e9;
	uint64_t bytes = dirty * PAGE + (uint64_t)pc->vm->nvcpus * STATE_ESTIMATE;
	uint64_t expect_ms = (uint64_t)(bytes * 1000.0 / bw) + 1;
	bool fits = expect_ms <= p->downtime_ms;
	bool still_shrinking = dirty < prev_dirty * 3 / 4;
	bool at_limit = pc->round >= p->max_rounds ||
			mig_now_ns() - start_ns >= p->timeout_s * 1000000000ULL;
	/* Each extra round costs about the downtime it saves in total time;
	 * a few pay, a long tail does not. */
	if (fits && !pc->first_fit_round)
		pc->first_fit_round = pc->round;
	bool extra_spent = fits && pc->round - pc->first_fit_round >= EXTRA_ROUNDS;
	const char *why = NULL;

	if (dirty >= prev_dirty * 9 / 10)
		(*flat_rounds)++;
	else
		*flat_rounds = 0;

	if (fits && expect_ms <= SMALL_DOWNTIME_MS)
		why = "the rest is small";
	else if (fits && !still_shrinking)
		why = "the rest fits the downtime limit and stopped shrinking";
	else if (fits && (at_limit || extra_spent))
		why = "the rest fits the downtime limit (enough extra rounds)";
	else if (!fits && *flat_rounds >= 2)
		why = "the dirty set stopped shrinking";
	else if (!fits && pc->round >= p->max_rounds)
		why = "round limit";
	else if (!fits && at_limit)
		why = "time limit";

	pthread_mutex_lock(&m->lock);
	st->expected_downtime_ms = expect_ms;
	st->remaining_pages = dirty;
	if (st->nround) {
		const struct mig_round_stats *r = &st->round[st->nround - 1];
		if (r->duration_ns)
			st->dirty_rate = dirty * 1e9 / r->duration_ns;
	}
	if (why)
		snprintf(st->convergence, sizeof(st->convergence), "%s%s", why,
			 fits ? "" : " (forced)");
	pthread_mutex_unlock(&m->lock);
	*forced = why && !fits;
	return why != NULL;
}

static int emit_state(void *ctx, uint32_t type, const void *data, size_t len)
{
	struct mig_stream *s = ctx;
	stream_put(s, type, data, len);
	return s->error;
}

/* Wait for one return-path record of the wanted type. */
static int wait_reply(struct precopy *pc, uint32_t want)
{
	uint32_t type, len;
	const uint8_t *p;
	if (stream_read(&pc->s, &type, &p, &len))
		return pc->s.error;
	if (type == want)
		return 0;
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

static int negotiate(struct precopy *pc, char *err)
{
	struct mig_uri u;
	int r = channel_parse_uri(pc->m->uri, &u, err);
	if (r)
		return r;
	int fd = channel_connect(&u, CONNECT_TIMEOUT_MS, err);
	if (fd < 0)
		return fd;
	channel_set_timeout(fd, REPLY_TIMEOUT_MS);
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

	uint32_t version = MIG_VERSION;
	stream_put_raw(&pc->s, MIG_MAGIC, 8);
	stream_put_raw(&pc->s, &version, 4);
	json_t *hello = hello_build(pc->vm);
	char *txt = hello ? json_dumps(hello, JSON_COMPACT) : NULL;
	json_decref(hello);
	if (!txt)
		return err_set(err, -ENOMEM, "out of memory");
	stream_put(&pc->s, MIG_REC_HELLO, txt, strlen(txt));
	free(txt);
	stream_flush(&pc->s);
	return wait_reply(pc, MIG_REC_ACCEPT);
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
	struct mig_stats *st = &m->stats;
	uint64_t t_parked = mig_now_ns(), t_final, t_state, t_ready;

	/* pc->round is already the number of this last round. */
	int64_t dirty = harvest(pc);
	if (dirty < 0)
		return (int)dirty;
	if (send_round(pc, (uint64_t)dirty))
		return pc->s.error;
	t_final = mig_now_ns();
	if (machine_state_save(pc->vm, emit_state, &pc->s, err))
		return stream_fail(&pc->s, -EIO, "%s", err);
	stream_put(&pc->s, MIG_REC_STATE_END, NULL, 0);
	if (stream_flush(&pc->s))
		return pc->s.error;
	t_state = mig_now_ns();
	if (wait_reply(pc, MIG_REC_READY))
		return pc->s.error;
	t_ready = mig_now_ns();
	if (migration_cancelled(m))
		return stream_fail(&pc->s, -ECANCELED, "cancelled");

	/* The point of no return: from here the destination may run it. */
	stream_put(&pc->s, MIG_REC_COMMIT, NULL, 0);
	if (stream_flush(&pc->s) || wait_reply(pc, MIG_REC_RUNNING)) {
		/* Only an explicit ERROR says the guest does not run there;
		 * silence could mean either. */
		return pc->dest_error ? pc->s.error : -EINPROGRESS;
	}
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
	return 0;
}

static int precopy_rounds(struct precopy *pc)
{
	struct migration *m = pc->m;
	uint64_t start = mig_now_ns(), prev_dirty = UINT64_MAX;
	unsigned flat = 0;

	for (pc->round = 0;; pc->round++) {
		int64_t dirty = harvest(pc);
		if (dirty < 0)
			return (int)dirty;
		bool forced = false;
		if (pc->round > 0 &&
		    converged(pc, (uint64_t)dirty, prev_dirty, &flat, start, &forced)) {
			if (forced && m->p.policy == MIG_POLICY_ABORT)
				return stream_fail(&pc->s, -ETIMEDOUT,
						   "pre-copy did not converge (%s) and the policy is abort",
						   m->stats.convergence);
			/* The bits just harvested stay set and go out in
			 * the final round. */
			return 0;
		}
		prev_dirty = (uint64_t)dirty;
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

	if (pc->s.fd < 0 || pc->s.wlen || pc->dest_error)
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
		vm_release_to(pc->vm, VM_STATUS_PAUSED);
		final = MIG_STATUS_FAILED;
		/* Never resume here: the guest may already run there. */
		snprintf(st->error, sizeof(st->error),
			 "COMMIT was sent but the destination did not confirm (%.200s); "
			 "the guest may be running at the destination, so it stays "
			 "paused here: resume it with 'cont' only if it is not",
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
	struct precopy pc = { .m = m, .vm = m->vm };
	char err[ERR_MAX] = "";
	int r;

	pc.s.fd = -1;
	m->stats.ram_total = m->vm->mem.ram_size;
	log_info("migrating to %s (downtime target %llu ms, bandwidth %s)", m->uri,
		 (unsigned long long)m->p.downtime_ms,
		 m->p.max_bandwidth ? "limited" : "unlimited");
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

	if (r == 0) {
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
