/*
 * postcopy_recv.c - see postcopy_recv.h.
 */
#include "migration/postcopy_recv.h"

#include <errno.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/record.h"
#include "io/tls.h"
#include "migration/postcopy_proto.h"
#include "migration/protocol.h"
#include "util/clock.h"
#include "util/log.h"

#define RUN_PAGES 16   /* pushed pages placed with one copy, at most */
/* release-ram: how often the destination tells the source what it has
 * placed.  Often enough that the source lets go about as fast as pages
 * arrive (at 1 GB/s, 20 MB held twice), seldom enough to cost little. */
#define CONFIRM_NS (20 * 1000000ULL)

struct receiver {
	struct pc_recv *rv;
	struct rec_reader *r;
	bool push;          /* the push connection: ends with PUSH_END */
	pthread_t thread;
	bool started;
	/* The push's consecutive pages, gathered while more input is
	 * already waiting, then placed with one UFFDIO_COPY (a run costs
	 * about half per page).  Answers are placed one by one at once. */
	uint8_t *run;
	uint64_t run_gpa;
	unsigned run_n;
};

struct pc_recv {
	struct guest_memory *mem;
	struct pc_dest *d;
	struct channel *req, *push;

	pthread_mutex_t wlock;          /* requests come from many threads */
	struct rec_writer *req_w;
	/* Under wlock (gen also under lock): the connections' generation,
	 * one more at each pcr_resume; paused from their first error until
	 * the next pcr_resume (requests are not sent meanwhile: the page
	 * stays requested and pcd_rerequest asks again). */
	uint64_t gen;
	bool paused;
	/* bytes read on connections replaced by pcr_resume */
	uint64_t bytes_answers0, bytes_push0;
	/* Over TLS one session must not be read and written by two threads
	 * at once: requests (and PAGES_DONE) are queued under wlock and the
	 * answers' receiver, which reads that connection, sends them. */
	bool one_thread;
	int req_efd;                    /* one_thread: something is queued */
	struct pcp_range *q;
	size_t qn, qcap;
	bool q_done;                    /* PAGES_DONE queued */
	bool q_confirm;                 /* PAGES_HAVE asked for */
	bool confirm;                   /* release-ram: send PAGES_HAVE */

	struct receiver ans, bulk;

	pthread_mutex_t lock;
	int err;
	char errmsg[ERR_MAX];
	bool done_sent;
	bool stopping;
	/* Nothing is placed before pcr_open (under lock): the source may
	 * push before COMMIT, while the listed pages are still being
	 * dropped, and a page placed before its drop would be lost. */
	bool open;
	pthread_cond_t open_cond;
	bool marked;                    /* PUSH_MARK came (under lock) */
};

#define GEN_NOW UINT64_MAX   /* fail_gen: whatever connections are current */

/*
 * The first error of the current connections (gen: the generation the
 * caller used, GEN_NOW for a receiver, which always uses the current
 * ones): no request goes out any more, nobody waits for pages (pcd_pause;
 * whether post-copy is over or waits for a recovery is the owner's
 * decision), and both connections are shut down so that the other
 * receiver ends too.  A late error of connections already replaced is
 * dropped.
 */
static void fail_gen(struct pc_recv *rv, uint64_t gen, int err, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static void fail_gen(struct pc_recv *rv, uint64_t gen, int err, const char *fmt, ...)
{
	pthread_mutex_lock(&rv->wlock);
	bool current = gen == GEN_NOW || gen == rv->gen;
	if (current)
		rv->paused = true;
	pthread_mutex_unlock(&rv->wlock);
	if (!current)
		return;
	pthread_mutex_lock(&rv->lock);
	bool first = !rv->err;
	if (first) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(rv->errmsg, sizeof(rv->errmsg), fmt, ap);
		va_end(ap);
		rv->err = err;
	}
	struct channel *req = rv->req, *push = rv->push;
	pthread_mutex_unlock(&rv->lock);
	pthread_cond_broadcast(&rv->open_cond);
	if (first) {
		log_error("post-copy: %s", rv->errmsg);
		/* Nobody may wait for pages that will not come for now. */
		pcd_pause(rv->d);
		channel_shutdown(req);
		channel_shutdown(push);
	}
}
#define fail(rv, ...) fail_gen(rv, GEN_NOW, __VA_ARGS__)

/* one_thread: wake the answers' receiver to send what is queued. */
static void kick(struct pc_recv *rv)
{
	uint64_t one = 1;
	(void)!write(rv->req_efd, &one, sizeof(one));
}

/* pcd_request_fn: one PAGE_REQUEST per call, sent at once (over TLS:
 * queued for the answers' receiver, which sends it at once). */
static void request(void *opaque, uint64_t gpa, uint32_t npages)
{
	struct pc_recv *rv = opaque;
	struct pcp_range rg = { .gpa = gpa, .npages = npages };

	if (rv->one_thread) {
		pthread_mutex_lock(&rv->wlock);
		if (rv->paused) {
			pthread_mutex_unlock(&rv->wlock);
			return;
		}
		bool ok = true;
		if (rv->qn == rv->qcap) {
			size_t cap = rv->qcap ? 2 * rv->qcap : 64;
			struct pcp_range *q = realloc(rv->q, cap * sizeof(*q));
			if (q) {
				rv->q = q;
				rv->qcap = cap;
			} else
				ok = false;
		}
		if (ok)
			rv->q[rv->qn++] = rg;
		pthread_mutex_unlock(&rv->wlock);
		if (!ok)
			fail(rv, -ENOMEM, "out of memory for page requests");
		kick(rv);
		return;
	}
	pthread_mutex_lock(&rv->wlock);
	if (rv->paused) {
		/* No connection: asked again at the recovery. */
		pthread_mutex_unlock(&rv->wlock);
		return;
	}
	uint64_t gen = rv->gen;
	pcp_put_request(rv->req_w, &rg, 1);
	int r = rec_flush(rv->req_w);
	char msg[ERR_MAX] = "";
	if (r)
		snprintf(msg, sizeof(msg), "%s", rec_writer_errmsg(rv->req_w));
	pthread_mutex_unlock(&rv->wlock);
	if (r)
		fail_gen(rv, gen, r, "sending a page request: %s", msg);
}

/* PAGES_HAVE records for the pages placed since the last ones, queued
 * on the request writer (whoever writes it: under wlock, or the answers'
 * receiver over TLS); the caller flushes.  Pages told on a connection
 * that then breaks are not told again: the source keeps them until
 * PAGES_DONE, which is safe, only not lean. */
static int put_confirmations(struct pc_recv *rv)
{
	struct pcp_run *runs;
	size_t n;
	if (pcd_confirmations(rv->d, &runs, &n))
		return -ENOMEM;
	pcp_put_runs(rv->req_w, MIG_REC_PAGES_HAVE, runs, n);
	free(runs);
	return 0;
}

/* one_thread, on the answers' receiver: send what is queued (requests in
 * records of up to PCP_REQ_MAX_RANGES, the confirmations, then
 * PAGES_DONE if asked for). */
static int send_queued(struct pc_recv *rv)
{
	uint64_t v;
	while (read(rv->req_efd, &v, sizeof(v)) == sizeof(v))
		;
	pthread_mutex_lock(&rv->wlock);
	struct pcp_range *q = rv->q;
	size_t n = rv->qn;
	bool done = rv->q_done, confirm = rv->q_confirm;
	rv->q = NULL;
	rv->qn = rv->qcap = 0;
	rv->q_done = rv->q_confirm = false;
	pthread_mutex_unlock(&rv->wlock);
	for (size_t k = 0; k < n; k += PCP_REQ_MAX_RANGES)
		pcp_put_request(rv->req_w, q + k,
				n - k < PCP_REQ_MAX_RANGES ? (unsigned)(n - k) : PCP_REQ_MAX_RANGES);
	free(q);
	if (confirm && put_confirmations(rv)) {
		fail(rv, -ENOMEM, "out of memory for PAGES_HAVE");
		return -ENOMEM;
	}
	if (done)
		rec_put(rv->req_w, MIG_REC_PAGES_DONE, NULL, 0);
	int r = (n || done || confirm) ? rec_flush(rv->req_w) : 0;
	if (r)
		fail(rv, r, "sending %s: %s",
		     n ? "page requests" : done ? "PAGES_DONE" : "PAGES_HAVE",
		     rec_writer_errmsg(rv->req_w));
	return r;
}

/* one_thread: until a record can be read, send what is queued. */
static int wait_input(struct receiver *rc)
{
	struct pc_recv *rv = rc->rv;
	for (;;) {
		if (send_queued(rv))
			return -EIO;
		if (rec_reader_ready(rc->r))
			return 0;
		struct pollfd p[2] = { { .fd = rv->req->fd, .events = POLLIN },
				       { .fd = rv->req_efd, .events = POLLIN } };
		if (poll(p, 2, -1) < 0 && errno != EINTR)
			return -errno;
		if (p[0].revents)
			return 0;
	}
}

static int flush_run(struct receiver *rc, char *err)
{
	if (!rc->run_n)
		return 0;
	int r = pcd_place_run(rc->rv->d, rc->run_gpa, rc->run, rc->run_n, err);
	rc->run_n = 0;
	return r < 0 ? r : 0;
}

/* A page with data: into the run if it continues it, else placed. */
static int take_page(struct receiver *rc, uint64_t gpa, const uint8_t *data,
		     char *err)
{
	struct pc_recv *rv = rc->rv;
	if (!rc->run)
		return pcd_place(rv->d, gpa, data, err) < 0 ? -EIO : 0;
	if (rc->run_n && (gpa != rc->run_gpa + rc->run_n * GUEST_PAGE_SIZE ||
			  !memory_gpa_to_hva(rv->mem, rc->run_gpa,
					     (rc->run_n + 1) * GUEST_PAGE_SIZE))) {
		int r = flush_run(rc, err);
		if (r)
			return r;
	}
	if (!rc->run_n)
		rc->run_gpa = gpa;
	memcpy(rc->run + rc->run_n * GUEST_PAGE_SIZE, data, GUEST_PAGE_SIZE);
	rc->run_n++;
	/* Never hold a page while waiting for input: a vCPU may need it.
	 * So gather only while the next record is wholly here - a partial
	 * one makes the read wait for the rest. */
	if (rc->run_n == RUN_PAGES || !rec_reader_record_ready(rc->r))
		return flush_run(rc, err);
	return 0;
}

struct zero_ctx {
	struct pc_dest *d;
	char *err;
};

static int mark_zero(void *opaque, uint64_t gpa, uint64_t npages)
{
	struct zero_ctx *z = opaque;
	return pcd_mark_zero(z->d, gpa, npages, z->err);
}

static void *receive(void *arg)
{
	struct receiver *rc = arg;
	struct pc_recv *rv = rc->rv;
	const char *what = rc->push ? "push" : "page-request";
	char err[ERR_MAX];

	pthread_mutex_lock(&rv->lock);
	while (!rv->open && !rv->stopping && !rv->err)
		pthread_cond_wait(&rv->open_cond, &rv->lock);
	pthread_mutex_unlock(&rv->lock);
	for (;;) {
		uint32_t type, len;
		const uint8_t *p;
		if (!rc->push && rv->one_thread && wait_input(rc))
			return NULL;   /* failed: the error says why */
		if (rec_read(rc->r, &type, &p, &len)) {
			/* (a run is flushed before any read could block) */
			pthread_mutex_lock(&rv->lock);
			/* The source ends the request connection after
			 * PAGES_DONE: that end is the normal one. */
			bool normal = (!rc->push && rv->done_sent) || rv->stopping;
			pthread_mutex_unlock(&rv->lock);
			if (!normal)
				fail(rv, rec_reader_error(rc->r), "%s connection: %s",
				     what, rec_reader_errmsg(rc->r));
			return NULL;
		}
		if (type == MIG_REC_PAGE) {
			uint64_t gpa;
			const uint8_t *data;
			int r = pcp_parse_page(p, len, rv->mem, &gpa, &data, NULL, err);
			if (!r && data)
				r = take_page(rc, gpa, data, err);
			else if (!r) {
				r = flush_run(rc, err);
				if (!r)
					r = pcd_place(rv->d, gpa, NULL, err) < 0 ? -EIO : 0;
			}
			if (r) {
				fail(rv, r, "%s connection: %s", what, err);
				return NULL;
			}
			continue;
		}
		if (flush_run(rc, err)) {
			fail(rv, -EIO, "%s connection: %s", what, err);
			return NULL;
		}
		if (type == MIG_REC_PUSH_MARK && rc->push) {
			if (len) {
				fail(rv, -EPROTO, "PUSH_MARK with %u bytes of payload", len);
				return NULL;
			}
			pthread_mutex_lock(&rv->lock);
			rv->marked = true;
			pthread_cond_broadcast(&rv->open_cond);
			pthread_mutex_unlock(&rv->lock);
			continue;
		}
		if (type == MIG_REC_PUSH_ZERO && rc->push) {
			struct zero_ctx z = { rv->d, err };
			int r = pcp_parse_runs(type, p, len, rv->mem, mark_zero, &z, err);
			if (r) {
				fail(rv, r, "push connection: %s", err);
				return NULL;
			}
			continue;
		}
		if (type == MIG_REC_PUSH_END && rc->push) {
			if (len) {
				fail(rv, -EPROTO, "PUSH_END with %u bytes of payload", len);
				return NULL;
			}
			return NULL;
		}
		if (!mig_record_known(type)) {
			if (!rec_unknown(rc->r, type, len))
				continue;   /* optional: skipped */
			fail(rv, -EPROTO, "%s connection: %s", what,
			     rec_reader_errmsg(rc->r));
			return NULL;
		}
		fail(rv, -EPROTO, "unexpected %s (0x%x) on the %s connection",
		     mig_record_name(type), type, what);
		return NULL;
	}
}

static int start_receiver(struct pc_recv *rv, struct receiver *rc,
			  struct channel *ch, bool push, char *err)
{
	rc->rv = rv;
	rc->push = push;
	rc->r = rec_reader_new(ch, MIG_MAX_RECORD);
	if (push && !rc->run)
		rc->run = malloc(RUN_PAGES * GUEST_PAGE_SIZE);
	rc->run_n = 0;
	if (!rc->r || (push && !rc->run))
		return err_set(err, -ENOMEM, "out of memory");
	rec_reader_set_namer(rc->r, mig_record_name);
	int r = pthread_create(&rc->thread, NULL, receive, rc);
	if (r)
		return err_set(err, -r, "cannot start a post-copy receiver: %s",
			       strerror(r));
	rc->started = true;
	return 0;
}

int pcr_new(struct guest_memory *mem, struct channel *req,
	    struct channel *push, struct pc_recv **out, char *err)
{
	struct pc_recv *rv = calloc(1, sizeof(*rv));
	if (!rv)
		return err_set(err, -ENOMEM, "out of memory");
	rv->mem = mem;
	rv->req = req;
	rv->push = push;
	rv->req_efd = -1;
	rv->one_thread = channel_is_tls(req);
	pthread_mutex_init(&rv->lock, NULL);
	pthread_mutex_init(&rv->wlock, NULL);
	pthread_cond_init(&rv->open_cond, NULL);
	int r;
	rv->req_w = rec_writer_new(req, MIG_MAX_RECORD);
	if (!rv->req_w) {
		r = err_set(err, -ENOMEM, "out of memory");
		goto fail;
	}
	rec_writer_set_namer(rv->req_w, mig_record_name);
	if (rv->one_thread) {
		rv->req_efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		if (rv->req_efd < 0) {
			r = err_set(err, -errno, "eventfd: %s", strerror(errno));
			goto fail;
		}
	}
	r = pcd_new(mem, request, rv, &rv->d, err);
	if (r)
		goto fail;
	r = pcd_start(rv->d, err);
	if (!r)
		r = start_receiver(rv, &rv->ans, req, false, err);
	if (!r)
		r = start_receiver(rv, &rv->bulk, push, true, err);
	if (r)
		goto fail;
	*out = rv;
	return 0;
fail:
	pcr_stop(rv);
	pcr_free(rv);
	return r;
}

struct pc_dest *pcr_dest(struct pc_recv *rv)
{
	return rv->d;
}

static void join(struct receiver *rc)
{
	if (rc->started)
		pthread_join(rc->thread, NULL);
	rc->started = false;
}

void pcr_set_confirm(struct pc_recv *rv, bool on)
{
	rv->confirm = on;
}

/* release-ram: PAGES_HAVE for what was placed since the last, sent now
 * (over TLS by the answers' receiver).  Not while the connections are
 * broken: those pages are told after the recovery. */
static void confirm(struct pc_recv *rv)
{
	pthread_mutex_lock(&rv->lock);
	bool open = rv->open;
	pthread_mutex_unlock(&rv->lock);
	if (!open)
		return;   /* the listed pages may not be dropped yet */
	pthread_mutex_lock(&rv->wlock);
	if (rv->paused) {
		pthread_mutex_unlock(&rv->wlock);
		return;
	}
	if (rv->one_thread) {
		rv->q_confirm = true;
		pthread_mutex_unlock(&rv->wlock);
		kick(rv);
		return;
	}
	uint64_t gen = rv->gen;
	int r = put_confirmations(rv);
	if (!r)
		r = rec_flush(rv->req_w);
	char msg[ERR_MAX] = "out of memory";
	if (r && r != -ENOMEM)
		snprintf(msg, sizeof(msg), "%s", rec_writer_errmsg(rv->req_w));
	pthread_mutex_unlock(&rv->wlock);
	if (r)
		fail_gen(rv, gen, r, "sending PAGES_HAVE: %s", msg);
}

int pcr_wait(struct pc_recv *rv, char *err)
{
	int complete;
	for (;;) {
		complete = pcd_wait_complete_for(rv->d, rv->confirm ? CONFIRM_NS : UINT64_MAX);
		if (complete != -ETIMEDOUT)
			break;
		confirm(rv);
	}
	if (complete == 0) {
		pthread_mutex_lock(&rv->lock);
		rv->done_sent = true;
		pthread_mutex_unlock(&rv->lock);
		int r = 0;
		pthread_mutex_lock(&rv->wlock);
		if (rv->one_thread)
			rv->q_done = true;   /* the answers' receiver sends it */
		else {
			rec_put(rv->req_w, MIG_REC_PAGES_DONE, NULL, 0);
			r = rec_flush(rv->req_w);
		}
		pthread_mutex_unlock(&rv->wlock);
		if (rv->one_thread)
			kick(rv);
		if (r)
			fail(rv, r, "sending PAGES_DONE: %s",
			     rec_writer_errmsg(rv->req_w));
	}
	join(&rv->bulk);
	join(&rv->ans);
	pthread_mutex_lock(&rv->lock);
	int r = rv->err;
	if (r)
		err_set(err, r, "%s", rv->errmsg);
	else if (complete)
		/* pcr_stop(): its receivers end without an error of their
		 * own, but pages are still missing. */
		r = err_set(err, -ECANCELED, "post-copy was stopped before every "
			    "page had arrived");
	pthread_mutex_unlock(&rv->lock);
	return r;
}

void pcr_bytes(struct pc_recv *rv, uint64_t *answers, uint64_t *push)
{
	*answers = rv->bytes_answers0 +
		   (rv->ans.r && !rv->ans.started ? rec_reader_bytes_in(rv->ans.r) : 0);
	*push = rv->bytes_push0 +
		(rv->bulk.r && !rv->bulk.started ? rec_reader_bytes_in(rv->bulk.r) : 0);
}

int pcr_resume(struct pc_recv *rv, struct channel *req, struct channel *push,
	       char *err)
{
	uint64_t npages;
	uint64_t *have = pcd_received_bitmap(rv->d, &npages);
	struct rec_writer *w = rec_writer_new(req, MIG_MAX_RECORD);
	if (!have || !w) {
		free(have);
		rec_writer_free(w);
		return err_set(err, -ENOMEM, "out of memory");
	}
	rec_writer_set_namer(w, mig_record_name);
	/* The receivers ended with the old connections (pcr_wait joined
	 * them): what they read is kept in the totals. */
	for (int i = 0; i < 2; i++) {
		struct receiver *rc = i ? &rv->bulk : &rv->ans;
		if (rc->r)
			*(i ? &rv->bytes_push0 : &rv->bytes_answers0) += rec_reader_bytes_in(rc->r);
		rec_reader_free(rc->r);
		rc->r = NULL;
	}
	pthread_mutex_lock(&rv->wlock);
	rec_writer_free(rv->req_w);
	rv->req_w = w;
	free(rv->q);
	rv->q = NULL;
	rv->qn = rv->qcap = 0;
	rv->q_done = false;
	if (rv->req_efd >= 0) {
		uint64_t v;
		while (read(rv->req_efd, &v, sizeof(v)) == sizeof(v))
			;
	}
	pthread_mutex_lock(&rv->lock);
	rv->gen++;
	rv->req = req;
	rv->push = push;
	rv->err = 0;
	rv->errmsg[0] = '\0';
	rv->done_sent = false;
	pthread_mutex_unlock(&rv->lock);
	/* First on the new connection, before any request: what is here
	 * (the source pushes the rest again). */
	pcp_put_recv_bitmap(w, have, npages);
	int r = rec_flush(w);
	rv->paused = r != 0;
	pthread_mutex_unlock(&rv->wlock);
	free(have);
	if (r) {
		/* Broken again: pcr_wait() says so at once. */
		err_set(err, r, "sending the received pages' bitmap: %s",
			rec_writer_errmsg(w));
		fail(rv, r, "%s", err);
		return r;
	}
	pcd_unpause(rv->d);
	r = start_receiver(rv, &rv->ans, req, false, err);
	if (!r)
		r = start_receiver(rv, &rv->bulk, push, true, err);
	if (r) {
		fail(rv, r, "%s", err);
		return r;
	}
	/* The faults outstanding at the break, and those while paused. */
	uint64_t n = pcd_rerequest(rv->d);
	if (n)
		log_info("post-copy: asked again for %llu pages requested before or during "
			 "the pause", (unsigned long long)n);
	return 0;
}

void pcr_retire(struct pc_recv *rv)
{
	pcd_retire(rv->d);
	/* Every page is here and the receivers were joined (pcr_wait): no
	 * request is made or sent again, so, as pcd_retire's stop_fd, the
	 * TLS wake-up goes now rather than staying open for the VM's
	 * lifetime (the soak counts each arrived process's fds).  paused
	 * turns away a request that would come anyway before it could kick
	 * a closed (or reused) fd. */
	pthread_mutex_lock(&rv->wlock);
	rv->paused = true;
	if (rv->req_efd >= 0)
		close(rv->req_efd);
	rv->req_efd = -1;
	pthread_mutex_unlock(&rv->wlock);
}

void pcr_open(struct pc_recv *rv)
{
	pthread_mutex_lock(&rv->lock);
	rv->open = true;
	pthread_cond_broadcast(&rv->open_cond);
	pthread_mutex_unlock(&rv->lock);
}

bool pcr_wait_mark(struct pc_recv *rv, unsigned timeout_ms)
{
	struct timespec until = clock_deadline(CLOCK_REALTIME, timeout_ms * 1000000ULL);
	pthread_mutex_lock(&rv->lock);
	while (!rv->marked && !rv->stopping && !rv->err &&
	       pthread_cond_timedwait(&rv->open_cond, &rv->lock, &until) != ETIMEDOUT)
		;
	bool marked = rv->marked;
	pthread_mutex_unlock(&rv->lock);
	return marked;
}

void pcr_stop(struct pc_recv *rv)
{
	pthread_mutex_lock(&rv->lock);
	rv->stopping = true;
	pthread_cond_broadcast(&rv->open_cond);
	struct channel *req = rv->req, *push = rv->push;
	pthread_mutex_unlock(&rv->lock);
	if (rv->d)
		pcd_cancel(rv->d);
	channel_shutdown(req);
	channel_shutdown(push);
}

bool pcr_stopped(struct pc_recv *rv)
{
	pthread_mutex_lock(&rv->lock);
	bool s = rv->stopping;
	pthread_mutex_unlock(&rv->lock);
	return s;
}

void pcr_free(struct pc_recv *rv)
{
	if (!rv)
		return;
	if (rv->ans.started || rv->bulk.started) {
		pcr_stop(rv);
		join(&rv->bulk);
		join(&rv->ans);
	}
	pcd_free(rv->d);
	rec_reader_free(rv->ans.r);
	rec_reader_free(rv->bulk.r);
	free(rv->bulk.run);
	rec_writer_free(rv->req_w);
	if (rv->req_efd >= 0)
		close(rv->req_efd);
	free(rv->q);
	pthread_mutex_destroy(&rv->lock);
	pthread_mutex_destroy(&rv->wlock);
	pthread_cond_destroy(&rv->open_cond);
	free(rv);
}
