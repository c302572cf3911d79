/*
 * Post-copy end to end without a guest: a source page server
 * (postcopy_source.h) reading one mapping, a destination
 * (postcopy_recv.h, postcopy_dest.h) whose memory is registered with the
 * real kernel userfaultfd, the two joined by real sockets (TCP loopback
 * and socketpairs), plain threads touching destination memory as vCPUs
 * would.  Each run ends comparing the memories byte for byte and by
 * their digests.  And the records (postcopy_proto.h) with bad input.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "io/channel.h"
#include "io/record.h"
#include "migration/conns.h"
#include "migration/postcopy_dest.h"
#include "migration/postcopy_proto.h"
#include "migration/postcopy_recv.h"
#include "migration/postcopy_source.h"
#include "migration/protocol.h"
#include "util/log.h"
#include "vmm/memory.h"
#include "vmm/memory_digest.h"
#include "vmm/uffd.h"

#include "pc_link.h"

#define PAGE GUEST_PAGE_SIZE

static void need_uffd(void)
{
	uint64_t f, io;
	char err[ERR_MAX] = "";
	if (uffd_probe(&f, &io, err))
		cr_skip_test("no userfaultfd here: %s", err);
}

/* Two slots, as a guest above 3 GiB has, but small: [0, a) and
 * [4 GiB, 4 GiB + b). */
static void mem_two_slots(struct guest_memory *m, uint64_t a, uint64_t b)
{
	char err[ERR_MAX] = "";
	memset(m, 0, sizeof(*m));
	m->pagemap_fd = -1;
	m->ram_size = a + b;
	m->nslots = 2;
	m->slots[0] = (struct mem_slot){ .id = 0, .gpa = 0, .size = a };
	m->slots[1] = (struct mem_slot){ .id = 1, .gpa = MEM_HOLE_END, .size = b };
	cr_assert_eq(memory_alloc(m, err), 0, "%s", err);
}

/* Data in most pages, zeros in some, some never touched. */
static void fill_source(struct guest_memory *m, unsigned seed)
{
	for (unsigned s = 0; s < m->nslots; s++) {
		uint8_t *p = m->slots[s].hva;
		uint64_t n = m->slots[s].size / PAGE;
		for (uint64_t i = 0; i < n; i++) {
			unsigned kind = (unsigned)((i * 2654435761u + seed) % 10);
			if (kind == 0)
				continue;                 /* never touched */
			if (kind == 1) {
				memset(p + i * PAGE, 0, PAGE);   /* written zeros */
				continue;
			}
			for (unsigned k = 0; k < PAGE; k += 8) {
				uint64_t v = (m->slots[s].gpa + i * PAGE + k) ^
					     ((uint64_t)seed << 40);
				memcpy(p + i * PAGE + k, &v, 8);
			}
		}
	}
}

/* A connected pair of sockets: TCP over loopback or a socketpair. */

/* ---- threads touching destination memory, as vCPUs would ------------- */

struct toucher {
	const struct guest_memory *src, *dst;
	unsigned seed, count;
	unsigned bad;
	pthread_t t;
};

static void *touch(void *arg)
{
	struct toucher *t = arg;
	unsigned seed = t->seed;
	for (unsigned k = 0; k < t->count; k++) {
		unsigned s = (unsigned)rand_r(&seed) % t->dst->nslots;
		uint64_t n = t->dst->slots[s].size / PAGE;
		uint64_t gpa = t->dst->slots[s].gpa + ((uint64_t)rand_r(&seed) % n) * PAGE;
		/* the read faults if the page has not come; the write after
		 * it must not be lost or overwritten by a late copy */
		const uint8_t *d = memory_gpa_to_hva(t->dst, gpa, PAGE);
		const uint8_t *w = memory_gpa_to_hva(t->src, gpa, PAGE);
		if (memcmp(d, w, PAGE))
			t->bad++;
	}
	return NULL;
}

struct run {
	struct guest_memory src, dst;
	struct pc_link l;
	struct pc_source *s;
	struct pc_recv *rv;
	struct pcs_stats ss;
	struct pcd_stats ds;
};

static void run_open(struct run *r, bool tcp, uint64_t a, uint64_t b)
{
	char err[ERR_MAX] = "";
	need_uffd();
	mem_two_slots(&r->src, a, b);
	mem_two_slots(&r->dst, a, b);
	fill_source(&r->src, 5);
	pc_link_open(&r->l, tcp);
	cr_assert_eq(pcs_new(&r->src, NULL, &r->s, err), 0, "%s", err);
	cr_assert_eq(pcr_new(&r->dst, r->l.dreq, r->l.dpush, &r->rv, err), 0, "%s", err);
	pcr_open(r->rv);
}

static void run_close(struct run *r)
{
	pcr_free(r->rv);
	pcs_free(r->s);
	pc_link_close(&r->l);
	memory_free(&r->src);
	memory_free(&r->dst);
}

static void same_memory(struct run *r)
{
	for (unsigned s = 0; s < r->src.nslots; s++)
		cr_assert_eq(memcmp(r->src.slots[s].hva, r->dst.slots[s].hva,
				    r->src.slots[s].size), 0,
			     "slot %u differs", s);
	struct memory_digest a, b;
	cr_assert_eq(memory_digest(&r->src, &a), 0);
	cr_assert_eq(memory_digest(&r->dst, &b), 0);
	cr_assert_eq(memcmp(a.whole, b.whole, sizeof(a.whole)), 0,
		     "the digests differ");
}

static void full_run(bool tcp, unsigned nthreads)
{
	struct run r;
	char err[ERR_MAX] = "";
	run_open(&r, tcp, 24 << 20, 8 << 20);

	struct toucher t[8];
	for (unsigned i = 0; i < nthreads; i++) {
		t[i] = (struct toucher){ .src = &r.src, .dst = &r.dst,
					 .seed = 11 + i, .count = 400 };
		cr_assert_eq(pthread_create(&t[i].t, NULL, touch, &t[i]), 0);
	}
	/* every thread is asleep on its first fault before the source
	 * even starts: faults are certain, and all in flight at once */
	struct pcd_stats st;
	for (int k = 0; k < 5000; k++) {   /* up to 10 s on a loaded machine */
		pcd_stats(pcr_dest(r.rv), &st);
		if (st.requested >= nthreads)
			break;
		usleep(2000);
	}
	cr_assert_geq(st.requested, nthreads, "each thread faulted and asked");
	cr_assert_eq(pcs_start(r.s, r.l.sreq, r.l.spush, err), 0, "%s", err);

	/* the VMM's own read in the middle of it */
	cr_assert_eq(pcd_ensure_present(pcr_dest(r.rv), MEM_HOLE_END + 0x1000, 3 * PAGE), 0);
	cr_assert_eq(memcmp(memory_gpa_to_hva(&r.dst, MEM_HOLE_END + 0x1000, 3 * PAGE),
			    memory_gpa_to_hva(&r.src, MEM_HOLE_END + 0x1000, 3 * PAGE),
			    3 * PAGE), 0);

	for (unsigned i = 0; i < nthreads; i++) {
		pthread_join(t[i].t, NULL);
		cr_assert_eq(t[i].bad, 0, "thread %u read %u wrong pages", i, t[i].bad);
	}
	cr_assert_eq(pcr_wait(r.rv, err), 0, "destination: %s", err);
	cr_assert_eq(pcs_wait(r.s, err), 0, "source: %s", err);
	same_memory(&r);

	pcs_stats(r.s, &r.ss);
	pcd_stats(pcr_dest(r.rv), &r.ds);
	cr_assert_eq(r.ds.missing, 0);
	cr_assert_eq(r.ds.placed + r.ds.zero_placed, r.ds.pages,
		     "each page placed once");
	/* a page arrives twice exactly when it was requested after the
	 * push took it (a pre-paging hit) but before that push left the
	 * source's socket: a delivered one is not answered again */
	cr_assert_eq(r.ds.crossings, r.ss.prepage_hits - r.ss.not_resent);
	cr_assert_eq(r.ss.pushed + r.ss.requested - r.ss.prepage_hits, r.ss.pages);
	cr_assert_eq(r.ss.requested, r.ds.requested, "every request seen");
	cr_assert_geq(r.ds.lat_samples, nthreads);
	/* each page sent once, plus the crossings: 20 bytes of framing a page */
	uint64_t sent = r.ss.pushed + r.ss.requested - r.ss.not_resent;
	uint64_t data = (sent - r.ss.zero_pages) * PAGE;
	cr_assert_eq(r.ss.bytes_push + r.ss.bytes_answers,
		     data + sent * (REC_OVERHEAD + PCP_PAGE_HEADER) + REC_OVERHEAD,
		     "bytes on the wire: pages, their headers, PUSH_END");
	cr_log_info("post-copy %s, %u threads: %lu faults, %lu requested, "
		    "%lu pre-paging hits, latency p50 %lu us p99 %lu us",
		    tcp ? "tcp" : "socketpair", nthreads,
		    (unsigned long)r.ds.faults, (unsigned long)r.ds.requested,
		    (unsigned long)r.ss.prepage_hits,
		    (unsigned long)r.ds.lat_p50_ns / 1000,
		    (unsigned long)r.ds.lat_p99_ns / 1000);
	run_close(&r);
}

Test(postcopy, tcp_four_threads_fault_while_the_push_runs, .timeout = 60)
{
	full_run(true, 4);
}

Test(postcopy, socketpair_one_thread, .timeout = 60)
{
	full_run(false, 1);
}

Test(postcopy, no_faults_the_push_alone_completes, .timeout = 60)
{
	struct run r;
	char err[ERR_MAX] = "";
	run_open(&r, true, 4 << 20, 4 << 20);
	cr_assert_eq(pcs_start(r.s, r.l.sreq, r.l.spush, err), 0, "%s", err);
	cr_assert_eq(pcr_wait(r.rv, err), 0, "%s", err);
	cr_assert_eq(pcs_wait(r.s, err), 0, "%s", err);
	pcs_stats(r.s, &r.ss);
	cr_assert_eq(r.ss.requested, 0);
	cr_assert_eq(r.ss.pushed, r.ss.pages);
	cr_assert_gt(r.ss.zero_pages, r.ss.pages / 10, "untouched and zero pages went without data");
	same_memory(&r);
	run_close(&r);
}

/* ---- a hand-made source over real sockets ---------------------------- */

struct fake {
	struct guest_memory dst;
	struct pc_link l;
	struct rec_writer *ans, *pw;
	struct rec_reader *rq;
	struct pc_recv *rv;
};

static void fake_open_gated(struct fake *f, bool open)
{
	char err[ERR_MAX] = "";
	need_uffd();
	memset(f, 0, sizeof(*f));
	memory_layout(&f->dst, 1 << 20);
	cr_assert_eq(memory_alloc(&f->dst, err), 0, "%s", err);
	pc_link_open(&f->l, false);
	f->ans = rec_writer_new(f->l.sreq, MIG_MAX_RECORD);
	f->pw = rec_writer_new(f->l.spush, MIG_MAX_RECORD);
	f->rq = rec_reader_new(f->l.sreq, MIG_MAX_RECORD);
	cr_assert_eq(pcr_new(&f->dst, f->l.dreq, f->l.dpush, &f->rv, err), 0, "%s", err);
	if (open)
		pcr_open(f->rv);
}

static void fake_open(struct fake *f)
{
	fake_open_gated(f, true);
}

static void fake_close(struct fake *f)
{
	pcr_free(f->rv);
	rec_writer_free(f->ans);
	rec_writer_free(f->pw);
	rec_reader_free(f->rq);
	pc_link_close(&f->l);
	memory_free(&f->dst);
}

struct waiter {
	struct pc_recv *rv;
	int r;
	char err[ERR_MAX];
	pthread_t t;
};

static void *wait_dest(void *arg)
{
	struct waiter *w = arg;
	w->r = pcr_wait(w->rv, w->err);
	return NULL;
}

Test(postcopy, a_page_pushed_and_answered_crosses, .timeout = 30)
{
	struct fake f;
	fake_open(&f);
	struct pc_dest *d = pcr_dest(f.rv);
	static uint8_t page[4096], other[4096];
	memset(page, 0x5a, PAGE);
	memset(other, 0x77, PAGE);
	/* the page comes on the push, then again as an answer (its copy
	 * may differ: the first placed wins, as the kernel keeps it) */
	pcp_put_page(f.pw, 0x7000, page, false);
	cr_assert_eq(rec_flush(f.pw), 0);
	while (!pcd_received(d, 0x7000))
		usleep(1000);
	pcp_put_page(f.ans, 0x7000, other, true);
	cr_assert_eq(rec_flush(f.ans), 0);
	struct pcd_stats st;
	for (int k = 0; k < 10000; k++) {
		pcd_stats(d, &st);
		if (st.crossings)
			break;
		usleep(1000);
	}
	cr_assert_eq(st.crossings, 1);
	cr_assert_eq(st.placed, 1);
	cr_assert_eq(memcmp(memory_gpa_to_hva(&f.dst, 0x7000, PAGE), page, PAGE), 0);

	/* the rest, and the end handshake: PAGES_DONE, then our close */
	struct waiter w = { .rv = f.rv };
	pthread_create(&w.t, NULL, wait_dest, &w);
	for (uint64_t g = 0; g < (1 << 20); g += PAGE)
		if (g != 0x7000)
			pcp_put_page(f.pw, g, page, false);
	rec_put(f.pw, MIG_REC_PUSH_END, NULL, 0);
	cr_assert_eq(rec_flush(f.pw), 0);
	uint32_t type, len;
	const uint8_t *p;
	cr_assert_eq(rec_read(f.rq, &type, &p, &len), 0);
	cr_assert_eq(type, MIG_REC_PAGES_DONE, "got %s", mig_record_name(type));
	channel_shutdown(f.l.sreq);
	pthread_join(w.t, NULL);
	cr_assert_eq(w.r, 0, "%s", w.err);
	fake_close(&f);
}

/* A source with early push sends pages before COMMIT, while the
 * destination still drops the listed pages' stale copies: nothing it
 * sends may be placed before pcr_open (a page placed and then dropped
 * would be lost, the source counting it delivered). */
Test(postcopy, pages_pushed_before_the_list_is_applied_wait_for_it, .timeout = 30)
{
	struct fake f;
	fake_open_gated(&f, false);
	struct pc_dest *d = pcr_dest(f.rv);
	static uint8_t page[4096];
	memset(page, 0x3c, PAGE);
	pcp_put_page(f.pw, 0x3000, page, false);
	cr_assert_eq(rec_flush(f.pw), 0);
	usleep(100 * 1000);
	cr_assert(!pcd_received(d, 0x3000), "placed before the list was applied");
	pcr_open(f.rv);
	for (int k = 0; k < 10000 && !pcd_received(d, 0x3000); k++)
		usleep(1000);
	cr_assert(pcd_received(d, 0x3000));
	cr_assert_eq(memcmp(memory_gpa_to_hva(&f.dst, 0x3000, PAGE), page, PAGE), 0);
	fake_close(&f);
}

/* Stopped before it opened: the receivers end, nothing hangs. */
Test(postcopy, a_destination_stopped_before_it_opened_ends, .timeout = 30)
{
	struct fake f;
	fake_open_gated(&f, false);
	fake_close(&f);
}

/* A bad record on the push connection ends the receive with a message
 * naming it, and nobody is left waiting: demand paging is paused (host
 * code's waits fail at once with -EAGAIN; the owner decides whether
 * post-copy ends or recovers). */
static void bad_push(const void *payload, uint32_t len, uint32_t type,
		     const char *want)
{
	struct fake f;
	fake_open(&f);
	struct waiter w = { .rv = f.rv };
	pthread_create(&w.t, NULL, wait_dest, &w);
	rec_put(f.pw, type, payload, len);
	cr_assert_eq(rec_flush(f.pw), 0);
	pthread_join(w.t, NULL);
	cr_assert_lt(w.r, 0);
	cr_assert(strstr(w.err, want), "message: %s (wanted \"%s\")", w.err, want);
	cr_assert_eq(pcd_ensure_present(pcr_dest(f.rv), 0, PAGE), -EAGAIN);
	fake_close(&f);
}

Test(postcopy, bad_page_records_are_rejected, .timeout = 30)
{
	uint8_t rec[8 + 4096] = { 0 };
	/* unknown flag bit 2 */
	rec[0] = 4;
	bad_push(rec, sizeof(rec), MIG_REC_PAGE, "unknown flags");
	/* outside guest RAM (1 MiB) */
	memset(rec, 0, 8);
	rec[2] = 0x10;   /* 0x100000 */
	bad_push(rec, sizeof(rec), MIG_REC_PAGE, "outside guest RAM");
	/* a zero page with data */
	memset(rec, 0, 8);
	rec[0] = 1;
	bad_push(rec, sizeof(rec), MIG_REC_PAGE, "(zero) has 4104 bytes, not 8");
	/* short */
	bad_push(rec, 5, MIG_REC_PAGE, "too short");
	/* a record that has no place here */
	bad_push("{}", 2, MIG_REC_HELLO, "unexpected HELLO");
	/* unknown and mandatory */
	bad_push("", 0, 0x7777, "0x7777");
	/* PUSH_ZERO naming pages outside guest RAM, or with a bad count */
	uint8_t z[8 + 16] = { 1 };
	z[8 + 2] = 0x10;   /* run at 0x100000 */
	z[16] = 1;         /* one page */
	bad_push(z, sizeof(z), MIG_REC_PUSH_ZERO, "PUSH_ZERO run 0");
	bad_push(z, 8, MIG_REC_PUSH_ZERO, "PUSH_ZERO: 8 bytes for 1 runs");
	/* PUSH_MARK carries nothing */
	bad_push(z, 4, MIG_REC_PUSH_MARK, "PUSH_MARK with 4 bytes");
}

struct ensurer {
	struct pc_dest *d;
	uint64_t gpa;
	int r;
	pthread_t t;
};

static void *ensure_page(void *arg)
{
	struct ensurer *e = arg;
	e->r = pcd_ensure_present(e->d, e->gpa, PAGE);
	return NULL;
}

/* PUSH_ZERO: the named pages count as here and read as zero (a fault
 * fills them locally); one a vCPU asked for before the name came is
 * placed at once (its thread sleeps until a placement wakes it); one
 * that arrived already is left as it is; PUSH_MARK is seen. */
Test(postcopy, pages_named_zero_are_here_and_an_asked_one_is_placed, .timeout = 30)
{
	struct fake f;
	fake_open(&f);
	struct pc_dest *d = pcr_dest(f.rv);
	static uint8_t page[4096];
	memset(page, 0x11, PAGE);
	/* page 2 arrived, page 5 was asked for */
	pcp_put_page(f.pw, 2 * PAGE, page, false);
	cr_assert_eq(rec_flush(f.pw), 0);
	while (!pcd_received(d, 2 * PAGE))
		usleep(1000);
	struct ensurer e = { .d = d, .gpa = 5 * PAGE };
	pthread_create(&e.t, NULL, ensure_page, &e);
	uint32_t type, len;
	const uint8_t *p;
	cr_assert_eq(rec_read(f.rq, &type, &p, &len), 0);
	cr_assert_eq(type, MIG_REC_PAGE_REQUEST, "got %s", mig_record_name(type));
	struct pcp_run runs[] = { { 0, 8 } };
	pcp_put_runs(f.pw, MIG_REC_PUSH_ZERO, runs, 1);
	rec_put(f.pw, MIG_REC_PUSH_MARK, NULL, 0);
	cr_assert_eq(rec_flush(f.pw), 0);
	cr_assert(pcr_wait_mark(f.rv, 10000), "no PUSH_MARK seen");
	pthread_join(e.t, NULL);
	cr_assert_eq(e.r, 0, "the asker was not woken with its page");
	for (uint64_t g = 0; g < 8 * PAGE; g += PAGE)
		cr_assert(pcd_received(d, g), "page 0x%llx", (unsigned long long)g);
	struct pcd_stats st;
	pcd_stats(d, &st);
	cr_assert_eq(st.named_zero, 7);     /* all but the one that came */
	cr_assert_eq(st.zero_placed, 1);    /* the one asked for */
	uint8_t *m = memory_gpa_to_hva(&f.dst, 0, 8 * PAGE);
	cr_assert_eq(memcmp(m + 2 * PAGE, page, PAGE), 0);
	for (unsigned i = 0; i < 8; i++)
		if (i != 2)
			for (unsigned k = 0; k < PAGE; k++)
				cr_assert_eq(m[i * PAGE + k], 0, "page %u byte %u", i, k);
	fake_close(&f);
}

/* One record from the destination to a source (with release-ram or
 * not): a PAGE_REQUEST for @rg, else @type with @payload.  The source
 * must end with a message containing @want1 and @want2, even though
 * nobody reads its push. */
static void bad_to_source(bool release, const struct pcp_range *rg, uint32_t type,
			  const void *payload, uint32_t len, const char *want1,
			  const char *want2)
{
	struct guest_memory src;
	char err[ERR_MAX] = "";
	memory_layout(&src, 1 << 20);
	cr_assert_eq(memory_alloc(&src, err), 0, "%s", err);
	int req[2], push[2];
	sock_pair(false, req);
	sock_pair(false, push);
	struct channel *sreq = channel_socket_new(req[0], true);
	struct channel *spush = channel_socket_new(push[0], true);
	struct channel *dreq = channel_socket_new(req[1], true);
	struct pc_source *s;
	cr_assert_eq(pcs_new(&src, NULL, &s, err), 0, "%s", err);
	if (release)
		cr_assert_eq(pcs_release_ram(s, err), 0, "%s", err);
	cr_assert_eq(pcs_start(s, sreq, spush, err), 0, "%s", err);
	struct rec_writer *w = rec_writer_new(dreq, MIG_MAX_RECORD);
	if (rg)
		pcp_put_request(w, rg, 1);
	else
		rec_put(w, type, payload, len);
	cr_assert_eq(rec_flush(w), 0);
	cr_assert_neq(pcs_wait(s, err), 0);
	cr_assert(strstr(err, want1) && strstr(err, want2), "%s (wanted %s, %s)", err,
		  want1, want2);
	pcs_free(s);
	rec_writer_free(w);
	channel_close(sreq);
	channel_close(spush);
	channel_close(dreq);
	close(push[1]);
	memory_free(&src);
}

Test(postcopy, a_bad_request_stops_the_source_with_a_message, .timeout = 30)
{
	uint8_t rec[8 + 16] = { 0 };
	uint32_t one = 1;
	uint64_t gpa = (1 << 20) - PAGE, n = 2;
	/* a request running past guest RAM */
	memcpy(rec, &one, 4);
	memcpy(rec + 8, &gpa, 8);
	memcpy(rec + 16, &n, 8);
	struct pcp_range rg = { .gpa = gpa, .npages = 2 };
	bad_to_source(false, &rg, 0, NULL, 0, "bad page request", "outside guest RAM");
	/* release-ram: confirmations naming pages outside guest RAM, or
	 * sent where release-ram was never agreed */
	bad_to_source(true, NULL, MIG_REC_PAGES_HAVE, rec, sizeof(rec), "bad PAGES_HAVE",
		      "PAGES_HAVE run 0: 2 pages at 0xff000 is not page aligned, empty or "
		      "outside one memory slot");
	bad_to_source(true, NULL, MIG_REC_PAGES_HAVE, rec, 5, "bad PAGES_HAVE", "");
	gpa = 0;
	memcpy(rec + 8, &gpa, 8);
	bad_to_source(false, NULL, MIG_REC_PAGES_HAVE, rec, sizeof(rec), "PAGES_HAVE",
		      "release-ram was not agreed");
}

Test(postcopy, the_destination_gone_early_is_an_error_at_the_source, .timeout = 30)
{
	struct guest_memory src;
	char err[ERR_MAX] = "";
	memory_layout(&src, 1 << 20);
	cr_assert_eq(memory_alloc(&src, err), 0, "%s", err);
	int req[2], push[2];
	sock_pair(false, req);
	sock_pair(false, push);
	struct channel *sreq = channel_socket_new(req[0], true);
	struct channel *spush = channel_socket_new(push[0], true);
	struct pc_source *s;
	cr_assert_eq(pcs_new(&src, NULL, &s, err), 0, "%s", err);
	cr_assert_eq(pcs_start(s, sreq, spush, err), 0, "%s", err);
	close(req[1]);    /* no PAGES_DONE: the destination may lack pages */
	close(push[1]);
	cr_assert_neq(pcs_wait(s, err), 0);
	cr_assert(strstr(err, "before the destination had every page"), "%s", err);
	pcs_free(s);
	channel_close(sreq);
	channel_close(spush);
	memory_free(&src);
}

/* ---- the records alone ------------------------------------------------ */

Test(postcopy_proto, request_ranges_are_checked)
{
	struct guest_memory m;
	char err[ERR_MAX] = "";
	memory_layout(&m, 1 << 20);   /* layout only: no mapping needed? */
	cr_assert_eq(memory_alloc(&m, err), 0, "%s", err);
	struct pcp_range out[PCP_REQ_MAX_RANGES];
	unsigned n = 0;
	uint8_t p[4 + 16 * 2] = { 2, 0, 0, 0 };
	/* 0x1000 x 3 pages, 0xff000 x 1 page */
	p[4 + 1] = 0x10; p[4 + 8] = 3;
	p[20 + 1] = 0xf0; p[20 + 2] = 0x0f; p[20 + 8] = 1;
	cr_assert_eq(pcp_parse_request(p, sizeof(p), &m, out, &n, err), 0, "%s", err);
	cr_assert_eq(n, 2);
	cr_assert_eq(out[0].gpa, 0x1000);
	cr_assert_eq(out[0].npages, 3);
	cr_assert_eq(out[1].gpa, 0xff000);
	cr_assert_eq(pcp_parse_request(p, sizeof(p) - 1, &m, out, &n, err), -EPROTO);
	cr_assert(strstr(err, "has 35 bytes, not 36"), "%s", err);
	p[20 + 8] = 2;    /* runs past the end of RAM */
	cr_assert_eq(pcp_parse_request(p, sizeof(p), &m, out, &n, err), -EPROTO);
	cr_assert(strstr(err, "range 1") && strstr(err, "outside guest RAM"), "%s", err);
	p[20 + 8] = 0;    /* empty */
	cr_assert_eq(pcp_parse_request(p, sizeof(p), &m, out, &n, err), -EPROTO);
	cr_assert(strstr(err, "0 pages"), "%s", err);
	p[20 + 8] = 1;
	p[20] = 0x10;     /* unaligned */
	cr_assert_eq(pcp_parse_request(p, sizeof(p), &m, out, &n, err), -EPROTO);
	cr_assert(strstr(err, "not page aligned"), "%s", err);
	p[20] = 0;
	p[20 + 12] = 1;   /* reserved */
	cr_assert_eq(pcp_parse_request(p, sizeof(p), &m, out, &n, err), -EPROTO);
	uint8_t none[4] = { 0 };
	cr_assert_eq(pcp_parse_request(none, 4, &m, out, &n, err), -EPROTO);
	cr_assert(strstr(err, "count 0"), "%s", err);
	cr_assert_eq(pcp_parse_request(none, 2, &m, out, &n, err), -EPROTO);
	memory_free(&m);
}

Test(postcopy_proto, pages_round_trip_and_zero_pages_carry_no_data)
{
	struct guest_memory m;
	char err[ERR_MAX] = "";
	memory_layout(&m, 1 << 20);
	cr_assert_eq(memory_alloc(&m, err), 0, "%s", err);
	int fd[2];
	sock_pair(false, fd);
	struct channel *a = channel_socket_new(fd[0], true);
	struct channel *b = channel_socket_new(fd[1], true);
	struct rec_writer *w = rec_writer_new(a, MIG_MAX_RECORD);
	struct rec_reader *r = rec_reader_new(b, MIG_MAX_RECORD);
	static uint8_t page[4096], zero[4096];
	memset(page, 3, PAGE);
	cr_assert_not(pcp_put_page(w, 0x3000, page, true));
	cr_assert(pcp_put_page(w, 0x4000, zero, false));
	struct pcp_range rg = { 0x9000, 7 };
	pcp_put_request(w, &rg, 1);
	cr_assert_eq(rec_flush(w), 0);
	cr_assert_eq(rec_writer_bytes_out(w), (12 + 8 + 4096) + (12 + 8) + (12 + 4 + 16));
	uint32_t type, len;
	const uint8_t *p, *data;
	uint64_t gpa;
	bool answer;
	cr_assert_eq(rec_read(r, &type, &p, &len), 0);
	cr_assert_eq(type, MIG_REC_PAGE);
	cr_assert_eq(pcp_parse_page(p, len, &m, &gpa, &data, &answer, err), 0, "%s", err);
	cr_assert_eq(gpa, 0x3000);
	cr_assert(answer);
	cr_assert_eq(memcmp(data, page, PAGE), 0);
	cr_assert_eq(rec_read(r, &type, &p, &len), 0);
	cr_assert_eq(pcp_parse_page(p, len, &m, &gpa, &data, &answer, err), 0, "%s", err);
	cr_assert_eq(gpa, 0x4000);
	cr_assert_null(data);
	cr_assert_not(answer);
	cr_assert_eq(rec_read(r, &type, &p, &len), 0);
	cr_assert_eq(type, MIG_REC_PAGE_REQUEST);
	struct pcp_range out[PCP_REQ_MAX_RANGES];
	unsigned n;
	cr_assert_eq(pcp_parse_request(p, len, &m, out, &n, err), 0, "%s", err);
	cr_assert_eq(n, 1);
	cr_assert_eq(out[0].gpa, 0x9000);
	cr_assert_eq(out[0].npages, 7);
	rec_writer_free(w);
	rec_reader_free(r);
	channel_close(a);
	channel_close(b);
	memory_free(&m);
}

Test(postcopy, with_the_push_held_only_requests_are_served, .timeout = 60)
{
	struct run r;
	char err[ERR_MAX] = "";
	run_open(&r, true, 4 << 20, 4 << 20);
	pcs_hold_push(r.s, true);
	cr_assert_eq(pcs_start(r.s, r.l.sreq, r.l.spush, err), 0, "%s", err);
	struct toucher t = { .src = &r.src, .dst = &r.dst, .seed = 3, .count = 200 };
	touch(&t);
	cr_assert_eq(t.bad, 0);
	pcs_stats(r.s, &r.ss);
	cr_assert_eq(r.ss.pushed, 0, "the push waited");
	cr_assert_gt(r.ss.requested, 150, "each first touch was a request");
	cr_assert_eq(r.ss.prepage_hits, 0);
	cr_assert_not(pcd_complete(pcr_dest(r.rv)));
	pcs_hold_push(r.s, false);
	cr_assert_eq(pcr_wait(r.rv, err), 0, "%s", err);
	cr_assert_eq(pcs_wait(r.s, err), 0, "%s", err);
	pcs_stats(r.s, &r.ss);
	cr_assert_eq(r.ss.pushed + r.ss.requested, r.ss.pages);
	same_memory(&r);
	run_close(&r);
}

/* The digest asks the page tables which pages were ever touched; on a
 * destination in post-copy the missing ones would count as zeros.  Through
 * memory_ensure() it waits for them instead, and matches the source. */
Test(postcopy, the_digest_mid_postcopy_waits_for_pages, .timeout = 60)
{
	struct run r;
	char err[ERR_MAX] = "";
	run_open(&r, true, 4 << 20, 4 << 20);
	cr_assert_not_null(r.dst.ensure, "post-copy installed its hook");
	pcs_hold_push(r.s, true);   /* only what the digest asks for comes */
	cr_assert_eq(pcs_start(r.s, r.l.sreq, r.l.spush, err), 0, "%s", err);
	struct memory_digest a, b;
	cr_assert_eq(memory_digest(&r.src, &a), 0);
	cr_assert_eq(memory_digest(&r.dst, &b), 0);
	cr_assert_eq(memcmp(a.whole, b.whole, sizeof(a.whole)), 0);
	pcs_stats(r.s, &r.ss);
	cr_assert_eq(r.ss.pushed, 0);
	cr_assert_eq(r.ss.requested, r.ss.pages, "the digest asked for every page");
	cr_assert(pcd_complete(pcr_dest(r.rv)));
	pcs_hold_push(r.s, false);
	cr_assert_eq(pcr_wait(r.rv, err), 0, "%s", err);
	cr_assert_eq(pcs_wait(r.s, err), 0, "%s", err);
	pcr_free(r.rv);
	r.rv = NULL;
	cr_assert_null(r.dst.ensure, "and removed it");
	run_close(&r);
}

/* The source gone in the middle: the destination says why, VMM reads
 * end with -EAGAIN (paused) instead of waiting forever, and a thread asleep on
 * a missing page stays asleep (nothing wrong is read) until teardown. */
struct sleeper {
	const struct guest_memory *dst;
	uint64_t gpa;
	atomic_bool done;
	pthread_t t;
};

static void *sleep_on_page(void *arg)
{
	struct sleeper *s = arg;
	volatile const uint8_t *p = memory_gpa_to_hva(s->dst, s->gpa, 1);
	(void)*p;
	atomic_store(&s->done, true);
	return NULL;
}

Test(postcopy, the_source_gone_midway_stops_the_destination_with_a_reason, .timeout = 60)
{
	struct run r;
	char err[ERR_MAX] = "";
	run_open(&r, false, 4 << 20, 4 << 20);
	pcs_hold_push(r.s, true);
	cr_assert_eq(pcs_start(r.s, r.l.sreq, r.l.spush, err), 0, "%s", err);
	/* a page that does arrive */
	cr_assert_eq(pcd_ensure_present(pcr_dest(r.rv), 0x1000, PAGE), 0);
	pcs_stop(r.s);   /* the source is gone: both connections close */
	cr_assert_neq(pcr_wait(r.rv, err), 0);
	cr_assert(strstr(err, "connection"), "%s", err);
	/* Paused: host code does not wait; a faulting thread does. */
	cr_assert_eq(pcd_ensure_present(pcr_dest(r.rv), 0x200000, PAGE), -EAGAIN);
	struct sleeper s = { .dst = &r.dst, .gpa = 0x300000 };
	cr_assert_eq(pthread_create(&s.t, NULL, sleep_on_page, &s), 0);
	usleep(100 * 1000);
	cr_assert_not(atomic_load(&s.done), "the page never came: it waits");
	cr_assert_neq(pcs_wait(r.s, err), 0);
	pcr_free(r.rv);     /* teardown unregisters: the sleeper goes on */
	r.rv = NULL;
	pthread_join(s.t, NULL);
	run_close(&r);
}

/*
 * Recovery at the level of the two objects: the link is cut part-way
 * through the push (pcs_cut_after) while a thread is asleep on a page
 * that has not come; both sides end with an error, the sleeper sleeps on.
 * New connections: the destination sends RECV_BITMAP first, the source
 * takes it and pushes everything not received again (what was in flight
 * at the cut is not trusted), the outstanding fault is asked again, and
 * the memories end equal.
 */
Test(postcopy, a_cut_link_recovers_on_new_connections, .timeout = 60)
{
	struct run r;
	char err[ERR_MAX] = "";
	run_open(&r, true, 8 << 20, 4 << 20);
	struct sleeper sl = { .dst = &r.dst, .gpa = MEM_HOLE_END + 0x3ff000 };
	cr_assert_eq(pthread_create(&sl.t, NULL, sleep_on_page, &sl), 0);
	pcs_cut_after(r.s, 256);
	pcs_hold_push(r.s, false);
	/* The sleeper's fault is asked for before the source serves: it
	 * dies with the first connections (or is answered in time). */
	usleep(50 * 1000);
	cr_assert_eq(pcs_start(r.s, r.l.sreq, r.l.spush, err), 0, "%s", err);
	cr_assert_neq(pcr_wait(r.rv, err), 0, "the cut went unnoticed");
	cr_assert_neq(pcs_wait(r.s, err), 0, "the source did not see the cut");
	struct pcd_stats st;
	pcd_stats(pcr_dest(r.rv), &st);
	cr_assert_gt(st.missing, 0, "the cut came after every page");

	/* new connections */
	struct pc_link again;
	pc_link_open(&again, true);
	cr_assert_eq(pcr_resume(r.rv, again.dreq, again.dpush, err), 0, "%s", err);
	uint32_t type, len;
	char *payload = NULL;
	cr_assert_eq(mig_conn_get_record(again.sreq, MIG_MAX_RECORD, &type, &payload, &len), 0);
	cr_assert_eq(type, MIG_REC_RECV_BITMAP, "got %s first", mig_record_name(type));
	uint64_t npages = memory_npages(&r.src);
	uint64_t *have = calloc(npages / 64 + 1, 8);
	cr_assert_eq(pcp_parse_recv_bitmap((const uint8_t *)payload, len, npages, have, err),
		     0, "%s", err);
	free(payload);
	uint64_t n = 0;
	for (uint64_t i = 0; i < npages; i++)
		n += (have[i / 64] >> (i % 64)) & 1;
	cr_assert_eq(n, st.pages - st.missing, "the bitmap is not what arrived");
	cr_assert_eq(pcs_restart(r.s, again.sreq, again.spush, have, err), 0, "%s", err);
	free(have);
	cr_assert_eq(pcr_wait(r.rv, err), 0, "destination after recovery: %s", err);
	cr_assert_eq(pcs_wait(r.s, err), 0, "source after recovery: %s", err);
	pthread_join(sl.t, NULL);
	cr_assert(atomic_load(&sl.done));
	same_memory(&r);
	pcr_free(r.rv);
	r.rv = NULL;
	pcs_free(r.s);
	r.s = NULL;
	pc_link_close(&again);
	run_close(&r);
}
