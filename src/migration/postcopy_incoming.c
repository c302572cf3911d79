/*
 * The destination's switch to post-copy: see postcopy_incoming.h.
 */
#include "migration/postcopy_incoming.h"
#include "migration/channel.h"
#include "migration/conns.h"
#include "migration/incoming_conns.h"
#include "migration/postcopy_proto.h"
#include "migration/postcopy_recv.h"
#include "migration/stream.h"
#include "util/log.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Bounds the wait for a recovery's push connection once its
 * page-request connection came (the source opens them back to back). */
#define RECOVER_PUSH_WAIT_MS 10000
/* A paused post-copy waits for its recovery without end; it wakes this
 * often only to wait again. */
#define RECOVER_WAIT_SLICE_NS (3600ULL * 1000000000ULL)

struct pci {
	struct guest_memory *mem;
	struct inconns *conns;
	int idle_ms;
	struct mig_conn req, push;
	struct pc_recv *rv;
	uint64_t missing;
	pthread_mutex_t lock;       /* ended, bytes: read by pci_json */
	bool ended;
	uint64_t bytes_answers, bytes_push;
	uint64_t pauses, recoveries;
};

/* Post-copy's two connections, the first time and after a recovery.
 * Answers may rightly be far apart (a guest that faults on nothing);
 * keepalive notices a vanished source.  The push moves until its end:
 * silence there is a stuck source.  Its queue is short: what the source
 * counts delivered is soon placed. */
static void set_page_conns(struct mig_conn *req, struct mig_conn *push, int idle_ms)
{
	channel_set_timeout(req->fd, 0);
	channel_set_timeout(push->fd, idle_ms > 0 ? idle_ms : 0);
	channel_set_queue(push->fd, PCP_PUSH_QUEUE_BYTES);
}

int pci_begin(struct pci **out, struct guest_memory *mem, struct inconns *conns,
	      int wait_ms, int idle_ms, char *err)
{
	struct pci *p = calloc(1, sizeof(*p));
	int r;

	*out = NULL;
	if (!p)
		return err_set(err, -ENOMEM, "out of memory");
	p->mem = mem;
	p->conns = conns;
	p->idle_ms = idle_ms;
	p->req.fd = p->push.fd = -1;
	pthread_mutex_init(&p->lock, NULL);
	if (!conns) {
		r = err_set(err, -ENOTCONN, "post-copy needs the session's further "
			    "connections, and this destination takes none");
		goto fail;
	}
	uint64_t deadline = mig_now_ns() + (uint64_t)wait_ms * 1000000ULL;
	r = inconns_wait(conns, MIG_ROLE_PAGE_REQUESTS, deadline, &p->req, err);
	if (!r)
		r = inconns_wait(conns, MIG_ROLE_POSTCOPY_PUSH, deadline, &p->push, err);
	if (r)
		goto fail;
	set_page_conns(&p->req, &p->push, idle_ms);
	r = pcr_new(mem, p->req.ch, p->push.ch, &p->rv, err);
	if (r)
		goto fail;
	/* Everything pre-copy wrote is current unless listed. */
	for (unsigned i = 0; i < mem->nslots; i++)
		pcd_mark_present(pcr_dest(p->rv), mem->slots[i].gpa, mem->slots[i].size);
	*out = p;
	return 0;
fail:
	pci_free(p);
	return r;
}

void pci_confirm(struct pci *p)
{
	pcr_set_confirm(p->rv, true);
}

static int discard(void *opaque, uint64_t gpa, uint64_t npages)
{
	struct pci *p = opaque;
	int r = pcd_discard_queue(pcr_dest(p->rv), gpa, npages * GUEST_PAGE_SIZE);
	if (!r)
		p->missing += npages;
	return r;
}

int pci_missing(struct pci *p, const uint8_t *payload, uint32_t len, char *err)
{
	uint64_t t0 = mig_now_ns(), before = p->missing;
	int r = pcp_parse_missing(payload, len, p->mem, discard, p, err);
	int f = pcd_discard_flush(pcr_dest(p->rv));
	if (!r)
		r = f;
	/* Inside the switchover's pause: worth a line. */
	log_info("post-copy: %llu listed pages (%u runs) dropped in %.1f ms",
		 (unsigned long long)(p->missing - before),
		 len >= PCP_MISSING_HEADER ? (len - PCP_MISSING_HEADER) / PCP_MISSING_RUN : 0,
		 (mig_now_ns() - t0) / 1e6);
	if (r && !err[0])
		err_set(err, r, "discarding the pages the source lists: %s", strerror(-r));
	return r;
}

void pci_prepare(struct pci *p)
{
	pcd_check_pristine(pcr_dest(p->rv));
}

void pci_open(struct pci *p)
{
	pcr_open(p->rv);
}

bool pci_wait_first_pages(struct pci *p, unsigned timeout_ms)
{
	return pcr_wait_mark(p->rv, timeout_ms);
}

uint64_t pci_missing_pages(const struct pci *p)
{
	return p->missing;
}

/* Can a recovery mend this?  A broken, closed, reset or silent
 * connection can; a source that broke the protocol, a cancel, or no
 * memory cannot. */
static bool recoverable(int r)
{
	return r != -EPROTO && r != -ECANCELED && r != -ENOMEM && r != -EINVAL;
}

/*
 * Paused: wait (without end) for a recovery's two connections - the
 * owner listens again after migrate-recover, and incoming_conns.c admits
 * only connections of this session - and go on with them.  Returns 0
 * once post-copy runs again, or -ECANCELED (pci_stop).
 */
static int recover(struct pci *p, const struct pci_events *ev, char *err)
{
	for (;;) {
		struct mig_conn req, push;
		int r = inconns_wait(p->conns, MIG_ROLE_PAGE_REQUESTS,
				     mig_now_ns() + RECOVER_WAIT_SLICE_NS, &req, err);
		if (r == -ETIMEDOUT)
			continue;
		if (r == -ECANCELED)
			return r;
		if (r) {
			char was[ERR_MAX];
			snprintf(was, sizeof(was), "%s", err);
			return err_set(err, r, "waiting for a recovery: %s", was);
		}
		r = inconns_wait(p->conns, MIG_ROLE_POSTCOPY_PUSH,
				 mig_now_ns() + RECOVER_PUSH_WAIT_MS * 1000000ULL, &push, err);
		if (r) {
			mig_conn_close(&req);
			if (r == -ECANCELED)
				return r;
			log_warn("post-copy recovery: %s; still waiting", err);
			continue;
		}
		set_page_conns(&req, &push, p->idle_ms);
		/* The receivers hold the old connections until this swap. */
		struct mig_conn old_req = p->req, old_push = p->push;
		p->req = req;
		p->push = push;
		r = pcr_resume(p->rv, p->req.ch, p->push.ch, err);
		mig_conn_close(&old_req);
		mig_conn_close(&old_push);
		pthread_mutex_lock(&p->lock);
		p->recoveries += !r;
		pthread_mutex_unlock(&p->lock);
		if (r) {
			/* pcr_wait() reports it: paused again. */
			log_warn("post-copy recovery failed: %s", err);
			return 0;
		}
		log_info("post-copy recovered: new connections from %s; the source pushes "
			 "what has not arrived", req.peer);
		if (ev && ev->resumed)
			ev->resumed(ev->opaque);
		return 0;
	}
}

int pci_wait(struct pci *p, const struct pci_events *ev, char *err)
{
	int r;

	for (;;) {
		r = pcr_wait(p->rv, err);
		if (!r || pcr_stopped(p->rv) || !recoverable(r) || !p->conns)
			break;
		struct pcd_stats st;
		pcd_stats(pcr_dest(p->rv), &st);
		char why[ERR_MAX];
		snprintf(why, sizeof(why), "post-copy paused: the connection to the source "
			 "broke: %s; the guest stays here (vCPUs that touch one of the %llu "
			 "pages not yet here wait); recover with migrate-recover here and "
			 "migrate with \"resume\": true at the source",
			 err, (unsigned long long)st.missing);
		log_error("%s", why);
		pthread_mutex_lock(&p->lock);
		p->pauses++;
		pthread_mutex_unlock(&p->lock);
		if (ev && ev->paused)
			ev->paused(ev->opaque, why);
		r = recover(p, ev, err);
		if (r)
			break;
	}
	uint64_t a = 0, b = 0;
	pcr_bytes(p->rv, &a, &b);
	pthread_mutex_lock(&p->lock);
	p->ended = true;
	p->bytes_answers = a;
	p->bytes_push = b;
	pthread_mutex_unlock(&p->lock);
	return r;
}

void pci_retire(struct pci *p)
{
	pcr_retire(p->rv);
	mig_conn_close(&p->req);
	mig_conn_close(&p->push);
}

void pci_stop(struct pci *p)
{
	if (p && p->rv)
		pcr_stop(p->rv);
	/* A paused post-copy waits for connections: that ends too. */
	if (p)
		inconns_cancel(p->conns);
}

json_t *pci_json(struct pci *p)
{
	struct pcd_stats st;

	pcd_stats(pcr_dest(p->rv), &st);
	/* Listed all of RAM (zero runs named later): what it lacked is what
	 * was not named zero. */
	json_t *o = json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}",
			      "missing-pages", (json_int_t)(p->missing - st.named_zero),
			      "pages-still-missing", (json_int_t)st.missing,
			      "faults", (json_int_t)st.faults,
			      "pages-requested", (json_int_t)st.requested,
			      "pages-placed", (json_int_t)st.placed,
			      "zero-placed", (json_int_t)st.zero_placed,
			      "crossings", (json_int_t)st.crossings,
			      "ensure-waits", (json_int_t)st.ensure_calls);
	json_object_set_new(o, "pages-named-zero", json_integer((json_int_t)st.named_zero));
	/* release-ram: pages told to the source as placed (PAGES_HAVE). */
	json_object_set_new(o, "pages-confirmed", json_integer((json_int_t)st.confirmed));
	json_object_set_new(o, "fault-latency-us", json_pack(
		"{s:f, s:f, s:f, s:I}", "p50", st.lat_p50_ns / 1e3, "p99", st.lat_p99_ns / 1e3,
		"max", st.lat_max_ns / 1e3, "samples", (json_int_t)st.lat_samples));
	/* What faulting vCPUs (and the VMM) waited for pages, summed: an
	 * upper bound of the time they spent blocked (waits may overlap). */
	json_object_set_new(o, "waited-ms", json_real(st.lat_total_ns / 1e6));
	pthread_mutex_lock(&p->lock);
	json_object_set_new(o, "pauses", json_integer((json_int_t)p->pauses));
	json_object_set_new(o, "recoveries", json_integer((json_int_t)p->recoveries));
	if (p->ended) {
		json_object_set_new(o, "bytes-answers", json_integer((json_int_t)p->bytes_answers));
		json_object_set_new(o, "bytes-push", json_integer((json_int_t)p->bytes_push));
	}
	pthread_mutex_unlock(&p->lock);
	return o;
}

void pci_free(struct pci *p)
{
	if (!p)
		return;
	pcr_free(p->rv);
	mig_conn_close(&p->req);
	mig_conn_close(&p->push);
	pthread_mutex_destroy(&p->lock);
	free(p);
}
