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
#include <stdlib.h>
#include <string.h>

struct pci {
	struct guest_memory *mem;
	struct mig_conn req, push;
	struct pc_recv *rv;
	uint64_t missing;
	pthread_mutex_t lock;       /* ended, bytes: read by pci_json */
	bool ended;
	uint64_t bytes_answers, bytes_push;
};

int pci_begin(struct pci **out, struct guest_memory *mem, struct inconns *conns,
	      int wait_ms, int idle_ms, char *err)
{
	struct pci *p = calloc(1, sizeof(*p));
	int r;

	*out = NULL;
	if (!p)
		return err_set(err, -ENOMEM, "out of memory");
	p->mem = mem;
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
	/* Answers may rightly be far apart (a guest that faults on
	 * nothing); keepalive notices a vanished source.  The push moves
	 * until its end: silence there is a stuck source. */
	channel_set_timeout(p->req.fd, 0);
	channel_set_timeout(p->push.fd, idle_ms > 0 ? idle_ms : 0);
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

static int discard(void *opaque, uint64_t gpa, uint64_t npages)
{
	struct pci *p = opaque;
	int r = pcd_discard(pcr_dest(p->rv), gpa, npages * GUEST_PAGE_SIZE);
	if (!r)
		p->missing += npages;
	return r;
}

int pci_missing(struct pci *p, const uint8_t *payload, uint32_t len, char *err)
{
	int r = pcp_parse_missing(payload, len, p->mem, discard, p, err);
	if (r && !err[0])
		err_set(err, r, "discarding the pages the source lists: %s", strerror(-r));
	return r;
}

uint64_t pci_missing_pages(const struct pci *p)
{
	return p->missing;
}

int pci_wait(struct pci *p, char *err)
{
	int r = pcr_wait(p->rv, err);
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
}

json_t *pci_json(struct pci *p)
{
	struct pcd_stats st;

	pcd_stats(pcr_dest(p->rv), &st);
	json_t *o = json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}",
			      "missing-pages", (json_int_t)p->missing,
			      "pages-still-missing", (json_int_t)st.missing,
			      "faults", (json_int_t)st.faults,
			      "pages-requested", (json_int_t)st.requested,
			      "pages-placed", (json_int_t)st.placed,
			      "zero-placed", (json_int_t)st.zero_placed,
			      "crossings", (json_int_t)st.crossings,
			      "ensure-waits", (json_int_t)st.ensure_calls);
	json_object_set_new(o, "fault-latency-us", json_pack(
		"{s:f, s:f, s:f, s:I}", "p50", st.lat_p50_ns / 1e3, "p99", st.lat_p99_ns / 1e3,
		"max", st.lat_max_ns / 1e3, "samples", (json_int_t)st.lat_samples));
	/* What faulting vCPUs (and the VMM) waited for pages, summed: an
	 * upper bound of the time they spent blocked (waits may overlap). */
	json_object_set_new(o, "waited-ms", json_real(st.lat_total_ns / 1e6));
	pthread_mutex_lock(&p->lock);
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
