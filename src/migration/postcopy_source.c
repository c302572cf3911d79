/*
 * postcopy_source.c - see postcopy_source.h.
 */
#include "migration/postcopy_source.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <linux/sockios.h>

#include "io/record.h"
#include "migration/postcopy_proto.h"
#include "migration/postcopy_release.h"
#include "migration/protocol.h"
#include "util/log.h"

#define PUSH_BATCH 16   /* pages taken from the policy at once (64 KiB) */

struct pc_source {
	const struct guest_memory *mem;
	uint64_t npages;

	pthread_mutex_t lock;
	struct prepage pp;              /* under lock */
	/* Pages the push has taken since the push connection (re)started,
	 * and where each ended in that connection's stream (bytes_out after
	 * the flush that carried it; 0: not flushed yet), under lock:
	 * answer() does not send again what has left this host. */
	uint64_t *pushed;
	uint64_t *push_end;
	uint64_t push_flushed;          /* the push writer's bytes_out, under lock */
	struct pcs_stats st;            /* under lock */
	int err;                        /* first error, under lock */
	char errmsg[ERR_MAX];
	bool push_done;      /* PUSH_END went out */
	bool dest_done;      /* PAGES_DONE came in */
	bool stopping;
	bool push_held;                 /* pcs_hold_push: wait before pushing */
	/* pcs_zero_runs: runs for the push to name zero (PUSH_ZERO) before
	 * any page (malloc'd; NULL: none waiting) */
	struct pcp_run *zero;
	size_t nzero;
	/* pcs_push_first: pages the push takes before any other */
	uint64_t first[PCS_FIRST_MAX];
	unsigned nfirst, first_at;
	/* pcs_first_mark: after the first mark_at of them, PUSH_MARK */
	unsigned mark_at;
	bool mark_wanted, mark_sent;
	pthread_cond_t push_cond;

	/* pcs_cut_after (tests): break both connections once the push has
	 * sent this many pages (0: never), the first time only */
	uint64_t cut_after;
	bool cut_done;
	/* bytes sent on connections replaced by pcs_restart */
	uint64_t bytes_answers0, bytes_push0;

	/* release-ram (pcs_release_ram): drops what the destination
	 * confirms; NULL: the source keeps its whole copy */
	struct pc_release *rel;

	struct channel *req, *push;
	struct rec_reader *req_r;
	struct rec_writer *ans_w, *push_w;
	pthread_t req_thread, push_thread;
	bool started;
};

/* Keep the first error; later ones follow from it. */
static int fail(struct pc_source *s, int err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static int fail(struct pc_source *s, int err, const char *fmt, ...)
{
	pthread_mutex_lock(&s->lock);
	pthread_cond_broadcast(&s->push_cond);
	bool first = !s->err;
	if (first) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(s->errmsg, sizeof(s->errmsg), fmt, ap);
		va_end(ap);
		s->err = err;
	}
	pthread_mutex_unlock(&s->lock);
	/* Either thread's failure ends the other's blocking read or write,
	 * so pcs_wait() returns. */
	if (first) {
		if (s->req)
			channel_shutdown(s->req);
		if (s->push)
			channel_shutdown(s->push);
	}
	return err;
}

int pcs_new(const struct guest_memory *mem, const struct prepage_params *prm,
	    struct pc_source **out, char *err)
{
	struct pc_source *s = calloc(1, sizeof(*s));
	if (!s)
		return err_set(err, -ENOMEM, "out of memory");
	s->mem = mem;
	s->npages = memory_npages(mem);
	s->pushed = calloc(s->npages / 64 + 1, sizeof(uint64_t));
	s->push_end = calloc(s->npages, sizeof(uint64_t));
	if (!s->pushed || !s->push_end || prepage_init(&s->pp, s->npages, prm)) {
		free(s->pushed);
		free(s->push_end);
		free(s);
		return err_set(err, -ENOMEM, "out of memory for the push bitmap");
	}
	pthread_mutex_init(&s->lock, NULL);
	pthread_cond_init(&s->push_cond, NULL);
	s->st.pages = s->npages;
	*out = s;
	return 0;
}

/* How far the destination's host has taken the push stream: what the
 * push handed to its socket (flushed, read under lock) less what the
 * socket still holds (SIOCOUTQ: unsent or unacknowledged).  Read in that
 * order, so that a push going on meanwhile only makes it smaller: too
 * small means an answer too many, never one too few.  0 if unknown. */
static uint64_t push_delivered(struct pc_source *s, uint64_t flushed)
{
	int queued = 0;
	if (s->push->fd < 0 || ioctl(s->push->fd, SIOCOUTQ, &queued) < 0 || queued < 0)
		return 0;
	return flushed > (uint64_t)queued ? flushed - (uint64_t)queued : 0;
}

/*
 * Answer the pages of one request, except those the push has delivered:
 * a page whose push left this host is in the destination's socket (whose
 * queue is kept short: channel_set_queue), or placed already - the
 * request crossed it - and arrives without a second copy.  A page the
 * push took but that still sits on this side is answered: the
 * destination really lacks it, and it may wait behind the whole send
 * queue.  Only a broken push connection loses delivered pages, and its
 * recovery pushes again every page the destination lacks (pcs_restart).
 * A page pcs_skip() counted present is answered too: a destination that
 * asks lacks it.
 */
static int answer(struct pc_source *s, const struct pcp_range *rg)
{
	for (uint32_t k = 0; k < rg->npages; k++) {
		uint64_t gpa = rg->gpa + k * GUEST_PAGE_SIZE;
		uint64_t i = memory_page_index(s->mem, gpa);
		pthread_mutex_lock(&s->lock);
		if (k == 0)
			prepage_fault(&s->pp, i);
		bool pushed = s->pushed[i / 64] >> (i % 64) & 1;
		uint64_t end = s->push_end[i], flushed = s->push_flushed;
		prepage_mark_sent(&s->pp, i);
		s->st.requested++;
		s->st.prepage_hits += pushed;
		pthread_mutex_unlock(&s->lock);
		if (pushed && end && end <= push_delivered(s, flushed)) {
			pthread_mutex_lock(&s->lock);
			s->st.not_resent++;
			pthread_mutex_unlock(&s->lock);
			continue;
		}
		bool zero = pcp_put_page(s->ans_w, gpa,
					 memory_gpa_to_hva(s->mem, gpa, GUEST_PAGE_SIZE),
					 true);
		if (zero) {
			pthread_mutex_lock(&s->lock);
			s->st.zero_pages++;
			pthread_mutex_unlock(&s->lock);
		}
	}
	return rec_writer_error(s->ans_w);
}

static int release(void *opaque, uint64_t gpa, uint64_t npages)
{
	return pcrel_add(opaque, gpa, npages);
}

/* PAGES_HAVE: the destination has placed these; with release-ram they
 * leave this host's memory. */
static int take_confirmations(struct pc_source *s, const uint8_t *p, uint32_t len)
{
	char err[ERR_MAX];
	if (!s->rel)
		return fail(s, -EPROTO, "PAGES_HAVE, but release-ram was not agreed");
	int r = pcp_parse_runs(MIG_REC_PAGES_HAVE, p, len, s->mem, release, s->rel, err);
	if (r == -ENOMEM)
		return fail(s, r, "out of memory for the pages to release");
	return r ? fail(s, r, "bad PAGES_HAVE: %s", err) : 0;
}

static void *req_thread(void *arg)
{
	struct pc_source *s = arg;
	struct pcp_range rg[PCP_REQ_MAX_RANGES];
	char err[ERR_MAX];

	for (;;) {
		uint32_t type, len;
		const uint8_t *p;
		if (rec_read(s->req_r, &type, &p, &len)) {
			/* Only PAGES_DONE ends post-copy: until then the
			 * destination lacks pages only this side holds. */
			fail(s, rec_reader_error(s->req_r),
			     "page-request connection (before the destination had every page): %s",
			     rec_reader_errmsg(s->req_r));
			break;
		}
		if (type == MIG_REC_PAGES_HAVE) {
			if (take_confirmations(s, p, len))
				break;
			continue;
		}
		if (type == MIG_REC_PAGES_DONE) {
			pthread_mutex_lock(&s->lock);
			s->dest_done = true;
			pthread_mutex_unlock(&s->lock);
			/* The destination has every page: with release-ram
			 * none stays here. */
			if (s->rel && pcrel_all(s->rel))
				log_warn("release-ram: out of memory: the source keeps "
					 "its copy");
			/* The destination reads its answers until this
			 * end-of-stream. */
			channel_shutdown(s->req);
			break;
		}
		if (type != MIG_REC_PAGE_REQUEST) {
			if (!mig_record_known(type)) {
				if (!rec_unknown(s->req_r, type, len))
					continue;   /* optional: skipped */
				fail(s, -EPROTO, "page-request connection: %s",
				     rec_reader_errmsg(s->req_r));
				break;
			}
			fail(s, -EPROTO, "unexpected %s (0x%x) on the page-request connection",
			     mig_record_name(type), type);
			break;
		}
		unsigned n;
		int r = pcp_parse_request(p, len, s->mem, rg, &n, err);
		if (r) {
			fail(s, r, "bad page request: %s", err);
			break;
		}
		for (unsigned k = 0; k < n && !r; k++)
			r = answer(s, &rg[k]);
		if (!r)
			r = rec_flush(s->ans_w);
		if (r) {
			fail(s, r, "answering page requests: %s",
			     rec_writer_errmsg(s->ans_w));
			break;
		}
	}
	return NULL;
}

/* Flush the push connection; false if that failed (reported unless
 * post-copy is already ending: then the error is a consequence). */
static bool flush_push(struct pc_source *s)
{
	if (!rec_flush(s->push_w))
		return true;
	pthread_mutex_lock(&s->lock);
	bool quiet = s->err || s->stopping;
	pthread_mutex_unlock(&s->lock);
	if (!quiet)
		fail(s, rec_writer_error(s->push_w),
		     "push connection (before the destination had every page): %s",
		     rec_writer_errmsg(s->push_w));
	return false;
}

/* PUSH_MARK is wanted and has not gone out (under lock): nothing but
 * the first pages goes before it. */
static bool mark_pending(const struct pc_source *s)
{
	return s->mark_wanted && !s->mark_sent;
}

static void *push_thread(void *arg)
{
	struct pc_source *s = arg;
	uint64_t batch[PUSH_BATCH];

	for (;;) {
		unsigned n = 0;
		pthread_mutex_lock(&s->lock);
		/* The zero runs and the pages asked for first go even while
		 * the push is held. */
		while (!s->zero && s->first_at == s->nfirst && s->push_held &&
		       !mark_pending(s) && !s->stopping && !s->err)
			pthread_cond_wait(&s->push_cond, &s->lock);
		bool stop = s->err || s->stopping;
		bool mark = mark_pending(s) && s->first_at >= s->mark_at;
		s->mark_sent |= mark;
		struct pcp_run *zruns = s->zero;
		size_t nzero = s->nzero;
		s->zero = NULL;
		s->nzero = 0;
		pthread_mutex_unlock(&s->lock);
		if (mark && !stop) {
			rec_put(s->push_w, MIG_REC_PUSH_MARK, NULL, 0);
			if (!flush_push(s)) {
				free(zruns);
				return NULL;
			}
			pthread_mutex_lock(&s->lock);
			s->st.marks++;
			pthread_mutex_unlock(&s->lock);
		}
		if (zruns && !stop) {
			size_t records = pcp_put_runs(s->push_w, MIG_REC_PUSH_ZERO, zruns, nzero);
			free(zruns);
			if (!flush_push(s))
				return NULL;
			pthread_mutex_lock(&s->lock);
			s->st.zero_runs += nzero;
			s->st.zero_records += records;
			pthread_mutex_unlock(&s->lock);
			continue;
		}
		free(zruns);
		pthread_mutex_lock(&s->lock);
		/* (a batch ends at the mark: the mark follows its pages) */
		unsigned upto = mark_pending(s) ? s->mark_at : s->nfirst;
		while (!stop && n < PUSH_BATCH && s->first_at < upto) {
			uint64_t i = s->first[s->first_at++];
			if (prepage_mark_sent(&s->pp, i))
				continue;   /* present already, or answered */
			s->pushed[i / 64] |= 1ULL << (i % 64);
			batch[n++] = i;
		}
		bool held = s->push_held || mark_pending(s);
		while (!stop && n < PUSH_BATCH && !held &&
		       prepage_next(&s->pp, &batch[n])) {
			s->pushed[batch[n] / 64] |= 1ULL << (batch[n] % 64);
			n++;
		}
		pthread_mutex_unlock(&s->lock);
		if (stop)
			break;
		if (n == 0) {
			if (held)
				continue;   /* the first pages were all there: wait */
			break;          /* every page is sent */
		}
		unsigned zero = 0;
		for (unsigned k = 0; k < n; k++) {
			uint64_t gpa = memory_page_gpa(s->mem, batch[k]);
			zero += pcp_put_page(s->push_w, gpa,
					     memory_gpa_to_hva(s->mem, gpa, GUEST_PAGE_SIZE),
					     false);
		}
		pthread_mutex_lock(&s->lock);
		s->st.pushed += n;
		s->st.zero_pages += zero;
		bool cut = s->cut_after && !s->cut_done && s->st.pushed >= s->cut_after;
		s->cut_done |= cut;
		pthread_mutex_unlock(&s->lock);
		if (cut) {
			/* As a cut link: both ends see their connections end,
			 * and pages still in flight may be lost. */
			log_warn("fault injection: post-copy's connections are cut now");
			channel_shutdown(s->req);
			channel_shutdown(s->push);
		}
		if (!flush_push(s))
			return NULL;
		/* Where these pages end in the stream: a page counts
		 * delivered only once all of its batch is. */
		uint64_t out = rec_writer_bytes_out(s->push_w);
		pthread_mutex_lock(&s->lock);
		s->push_flushed = out;
		for (unsigned k = 0; k < n; k++)
			s->push_end[batch[k]] = out;
		pthread_mutex_unlock(&s->lock);
	}
	pthread_mutex_lock(&s->lock);
	bool all = prepage_done(&s->pp);
	pthread_mutex_unlock(&s->lock);
	if (!all)
		return NULL;   /* stopped: the error says why */
	rec_put(s->push_w, MIG_REC_PUSH_END, NULL, 0);
	if (!flush_push(s))
		return NULL;
	pthread_mutex_lock(&s->lock);
	s->push_done = true;
	pthread_mutex_unlock(&s->lock);
	return NULL;
}

int pcs_start(struct pc_source *s, struct channel *req, struct channel *push,
	      char *err)
{
	struct rec_reader *rr = rec_reader_new(req, MIG_MAX_RECORD);
	struct rec_writer *aw = rec_writer_new(req, MIG_MAX_RECORD);
	struct rec_writer *pw = rec_writer_new(push, MIG_MAX_RECORD);
	if (!rr || !aw || !pw) {
		rec_reader_free(rr);
		rec_writer_free(aw);
		rec_writer_free(pw);
		return err_set(err, -ENOMEM, "out of memory");
	}
	rec_reader_set_namer(rr, mig_record_name);
	rec_writer_set_namer(aw, mig_record_name);
	rec_writer_set_namer(pw, mig_record_name);
	/* Under the lock: pcs_stats (query-migrate's thread) reads the
	 * writers' counters while no thread writes (!started). */
	pthread_mutex_lock(&s->lock);
	s->req = req;
	s->push = push;
	s->req_r = rr;
	s->ans_w = aw;
	s->push_w = pw;
	s->started = true;
	pthread_mutex_unlock(&s->lock);
	int r = pthread_create(&s->req_thread, NULL, req_thread, s);
	if (r) {
		pthread_mutex_lock(&s->lock);
		s->started = false;
		pthread_mutex_unlock(&s->lock);
		return err_set(err, -r, "cannot start the page server: %s",
			       strerror(r));
	}
	r = pthread_create(&s->push_thread, NULL, push_thread, s);
	if (r) {
		pcs_stop(s);
		pthread_join(s->req_thread, NULL);
		pthread_mutex_lock(&s->lock);
		s->started = false;
		pthread_mutex_unlock(&s->lock);
		return err_set(err, -r, "cannot start the push: %s", strerror(r));
	}
	return 0;
}

int pcs_wait(struct pc_source *s, char *err)
{
	if (s->started) {
		pthread_join(s->push_thread, NULL);
		pthread_join(s->req_thread, NULL);
		pthread_mutex_lock(&s->lock);
		s->started = false;
		pthread_mutex_unlock(&s->lock);
	}
	pthread_mutex_lock(&s->lock);
	int r = s->err;
	if (r)
		err_set(err, r, "%s", s->errmsg);
	pthread_mutex_unlock(&s->lock);
	return r;
}

void pcs_skip(struct pc_source *s, uint64_t gpa, uint64_t npages)
{
	uint64_t first = memory_page_index(s->mem, gpa);

	if (first == UINT64_MAX)
		return;
	/* Word-wise: a big mostly untouched guest skips nearly all its pages
	 * here, after the guest runs at the destination and before its first
	 * request can be answered. */
	pthread_mutex_lock(&s->lock);
	s->st.present += prepage_mark_sent_range(&s->pp, first, npages);
	pthread_mutex_unlock(&s->lock);
}

bool pcs_finished(struct pc_source *s)
{
	pthread_mutex_lock(&s->lock);
	bool done = s->err || (s->push_done && s->dest_done);
	pthread_mutex_unlock(&s->lock);
	return done;
}

int pcs_zero_runs(struct pc_source *s, const struct pcp_run *runs, size_t n,
		  uint64_t *named)
{
	*named = 0;
	if (!n)
		return 0;
	struct pcp_run *copy = malloc(n * sizeof(*copy));
	if (!copy)
		return -ENOMEM;
	memcpy(copy, runs, n * sizeof(*copy));
	pthread_mutex_lock(&s->lock);
	for (size_t k = 0; k < n; k++) {
		uint64_t first = memory_page_index(s->mem, runs[k].gpa);
		if (first == UINT64_MAX)
			continue;
		uint64_t newly = prepage_mark_sent_range(&s->pp, first, runs[k].npages);
		s->st.present += newly;
		s->st.named_zero += newly;
		*named += newly;
	}
	free(s->zero);   /* (never two lists: one is all there is) */
	s->zero = copy;
	s->nzero = n;
	pthread_cond_broadcast(&s->push_cond);
	pthread_mutex_unlock(&s->lock);
	return 0;
}

void pcs_push_first(struct pc_source *s, const uint64_t *gpas, size_t n)
{
	pthread_mutex_lock(&s->lock);
	for (size_t k = 0; k < n && s->nfirst < PCS_FIRST_MAX; k++) {
		/* (a page outside guest RAM - around a slot's edge - is not
		 * one to push) */
		uint64_t i = memory_page_index(s->mem, gpas[k]);
		if (i != UINT64_MAX)
			s->first[s->nfirst++] = i;
	}
	pthread_mutex_unlock(&s->lock);
}

void pcs_first_mark(struct pc_source *s)
{
	pthread_mutex_lock(&s->lock);
	s->mark_at = s->nfirst;
	s->mark_wanted = true;
	pthread_cond_broadcast(&s->push_cond);
	pthread_mutex_unlock(&s->lock);
}

void pcs_hold_push(struct pc_source *s, bool hold)
{
	pthread_mutex_lock(&s->lock);
	s->push_held = hold;
	pthread_cond_broadcast(&s->push_cond);
	pthread_mutex_unlock(&s->lock);
}

void pcs_stop(struct pc_source *s)
{
	pthread_mutex_lock(&s->lock);
	s->stopping = true;
	pthread_cond_broadcast(&s->push_cond);
	pthread_mutex_unlock(&s->lock);
	fail(s, -ECANCELED, "post-copy stopped");
}

void pcs_cut_after(struct pc_source *s, uint64_t pages)
{
	pthread_mutex_lock(&s->lock);
	s->cut_after = pages;
	pthread_mutex_unlock(&s->lock);
}

int pcs_restart(struct pc_source *s, struct channel *req, struct channel *push,
		const uint64_t *have, char *err)
{
	if (s->started)
		return err_set(err, -EBUSY, "the page server still runs");
	pthread_mutex_lock(&s->lock);
	if (s->stopping) {
		pthread_mutex_unlock(&s->lock);
		return err_set(err, -ECANCELED, "post-copy was stopped");
	}
	/* Only what the destination says it holds counts as sent; what the
	 * old push connection held may be lost, so a request for it is
	 * answered until the new push takes it again. */
	prepage_restart(&s->pp, have);
	memset(s->pushed, 0, (s->npages / 64 + 1) * sizeof(uint64_t));
	memset(s->push_end, 0, s->npages * sizeof(uint64_t));
	s->push_flushed = 0;
	s->err = 0;
	s->errmsg[0] = '\0';
	s->push_done = s->dest_done = false;
	pthread_mutex_unlock(&s->lock);
	/* Under the lock: query-migrate's pcs_stats reads them. */
	pthread_mutex_lock(&s->lock);
	if (s->ans_w)
		s->bytes_answers0 += rec_writer_bytes_out(s->ans_w);
	if (s->push_w)
		s->bytes_push0 += rec_writer_bytes_out(s->push_w);
	rec_reader_free(s->req_r);
	rec_writer_free(s->ans_w);
	rec_writer_free(s->push_w);
	s->req_r = NULL;
	s->ans_w = s->push_w = NULL;
	pthread_mutex_unlock(&s->lock);
	return pcs_start(s, req, push, err);
}

int pcs_release_ram(struct pc_source *s, char *err)
{
	return s->rel ? 0 : pcrel_new(s->mem, &s->rel, err);
}

void pcs_stats(struct pc_source *s, struct pcs_stats *out)
{
	uint64_t released = s->rel ? pcrel_pages(s->rel) : 0;
	pthread_mutex_lock(&s->lock);
	*out = s->st;
	out->released = released;
	out->window = s->pp.window;
	out->widened = s->pp.widened;
	out->narrowed = s->pp.narrowed;
	/* The writers' counters are only read while no thread writes. */
	if (!s->started) {
		out->bytes_answers = s->bytes_answers0 +
				     (s->ans_w ? rec_writer_bytes_out(s->ans_w) : 0);
		out->bytes_push = s->bytes_push0 +
				  (s->push_w ? rec_writer_bytes_out(s->push_w) : 0);
	}
	pthread_mutex_unlock(&s->lock);
}

void pcs_free(struct pc_source *s)
{
	if (!s)
		return;
	if (s->started) {
		pcs_stop(s);
		pcs_wait(s, NULL);
	}
	pcrel_free(s->rel);
	rec_reader_free(s->req_r);
	rec_writer_free(s->ans_w);
	rec_writer_free(s->push_w);
	prepage_free(&s->pp);
	free(s->zero);
	free(s->pushed);
	free(s->push_end);
	pthread_mutex_destroy(&s->lock);
	pthread_cond_destroy(&s->push_cond);
	free(s);
}
