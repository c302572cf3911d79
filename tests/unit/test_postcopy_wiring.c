/*
 * How a post-copy or hybrid migration is asked for: migrate's "mode",
 * "precopy-rounds", "precopy-ms" (control_migrate.c) and
 * migrate-start-postcopy with no migration (source.c), without KVM.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

#include "control/control_migrate.h"
#include "migration/migration.h"
#include "util/log.h"
#include "vmm/vm.h"

struct mode_row {
	const char *args;
	int rc;
	enum mig_mode mode;
	uint64_t rounds, ms;
	const char *msg;
};

static const struct mode_row mode_rows[] = {
	{ "{}", 0, MIG_MODE_PRECOPY, MIG_HYBRID_ROUNDS_DEFAULT, MIG_HYBRID_MS_DEFAULT, NULL },
	{ "{\"mode\":\"precopy\"}", 0, MIG_MODE_PRECOPY, MIG_HYBRID_ROUNDS_DEFAULT,
	  MIG_HYBRID_MS_DEFAULT, NULL },
	{ "{\"mode\":\"postcopy\"}", 0, MIG_MODE_POSTCOPY, MIG_HYBRID_ROUNDS_DEFAULT,
	  MIG_HYBRID_MS_DEFAULT, NULL },
	{ "{\"mode\":\"hybrid\"}", 0, MIG_MODE_HYBRID, MIG_HYBRID_ROUNDS_DEFAULT,
	  MIG_HYBRID_MS_DEFAULT, NULL },
	{ "{\"mode\":\"hybrid\",\"precopy-rounds\":5,\"precopy-ms\":250}", 0,
	  MIG_MODE_HYBRID, 5, 250, NULL },
	{ "{\"mode\":\"hybrid\",\"precopy-ms\":1}", 0, MIG_MODE_HYBRID,
	  MIG_HYBRID_ROUNDS_DEFAULT, 1, NULL },
	/* refused, naming what is wrong */
	{ "{\"mode\":\"copy\"}", -EINVAL, 0, 0, 0,
	  "Parameter 'mode' expects 'precopy', 'postcopy' or 'hybrid', not 'copy'" },
	{ "{\"precopy-rounds\":3}", -EINVAL, 0, 0, 0,
	  "Parameter 'precopy-rounds' goes with mode 'hybrid'" },
	{ "{\"mode\":\"precopy\",\"precopy-ms\":100}", -EINVAL, 0, 0, 0,
	  "Parameter 'precopy-ms' goes with mode 'hybrid' (it limits the pre-copy "
	  "before post-copy), not with mode 'precopy'" },
	{ "{\"mode\":\"postcopy\",\"precopy-rounds\":1}", -EINVAL, 0, 0, 0,
	  "not with mode 'postcopy'" },
	{ "{\"mode\":\"hybrid\",\"precopy-rounds\":0}", -EINVAL, 0, 0, 0,
	  "Parameter 'precopy-rounds' expects a value between 1 and" },
	{ "{\"mode\":\"hybrid\",\"precopy-ms\":0}", -EINVAL, 0, 0, 0,
	  "Parameter 'precopy-ms' expects a value between 1 and" },
};

Test(postcopy_wiring, migrate_mode_arguments)
{
	for (size_t i = 0; i < sizeof(mode_rows) / sizeof(mode_rows[0]); i++) {
		const struct mode_row *w = &mode_rows[i];
		json_error_t jerr;
		json_t *a = json_loads(w->args, 0, &jerr);
		char err[ERR_MAX] = "";
		struct mig_params p, before;

		cr_assert_not_null(a, "%s", w->args);
		json_object_set_new(a, "uri", json_string("tcp:127.0.0.1:4444"));
		mig_params_default(&p);
		before = p;
		int rc = control_check_args(control_migrate_args, a, err);
		cr_assert_eq(rc, 0, "row %zu: the spec refuses %s: %s", i, w->args, err);
		rc = control_mig_mode_merge(&p, a, err);
		cr_expect_eq(rc, w->rc, "row %zu (%s): %d %s", i, w->args, rc, err);
		if (!rc) {
			cr_expect_eq(p.mode, w->mode, "row %zu", i);
			cr_expect_eq(p.precopy_rounds, w->rounds, "row %zu", i);
			cr_expect_eq(p.precopy_ms, w->ms, "row %zu", i);
		} else {
			cr_expect(strstr(err, w->msg), "row %zu: '%s' lacks '%s'", i, err, w->msg);
			cr_expect(p.mode == before.mode && p.precopy_rounds == before.precopy_rounds &&
				  p.precopy_ms == before.precopy_ms, "row %zu: changed on error", i);
		}
		json_decref(a);
	}
}

Test(postcopy_wiring, mode_names_round_trip)
{
	for (int m = MIG_MODE_PRECOPY; m <= MIG_MODE_HYBRID; m++) {
		enum mig_mode back;
		cr_assert_eq(mig_mode_parse(mig_mode_name((enum mig_mode)m), &back), 0);
		cr_assert_eq((int)back, m);
	}
	enum mig_mode x;
	cr_assert_eq(mig_mode_parse("Postcopy", &x), -EINVAL);
	cr_assert_eq(mig_mode_parse(NULL, &x), -EINVAL);
	cr_assert_str_eq(mig_status_name(MIG_STATUS_POSTCOPY_ACTIVE), "postcopy-active");
}

/* On a VM that is not migrating: a clear refusal, nothing started. */
Test(postcopy_wiring, start_postcopy_without_a_migration_is_refused)
{
	struct vm_config cfg = { .ram_size = 2u << 20, .vcpus = 1, .serial = "none",
				 .heartbeat = "none" };
	char err[ERR_MAX] = "";
	struct vm *vm = NULL;

	log_set_level(LOG_ERROR);
	cr_assert_eq(vm_create_offline(&vm, &cfg, err), 0, "%s", err);
	cr_assert_eq(migration_start_postcopy(vm, err), -EINVAL);
	cr_assert(strstr(err, "no migration is in progress"), "%s", err);
	json_t *q = migration_query(vm);
	cr_assert_str_eq(json_string_value(json_object_get(q, "status")), "none");
	json_decref(q);
	migration_destroy(vm);
	vm_destroy(vm);
}

/* ---- POSTCOPY_MISSING (postcopy_proto.c) ---------------------------------- */

#include "io/channel.h"
#include "io/record.h"
#include "migration/postcopy_proto.h"
#include "migration/protocol.h"
#include "vmm/memory.h"
#include <pthread.h>
#include <sys/socket.h>
#include <unistd.h>

static void two_slots(struct guest_memory *m)
{
	char err[ERR_MAX] = "";
	memset(m, 0, sizeof(*m));
	m->pagemap_fd = -1;
	m->ram_size = (1u << 20) + (1u << 20);
	m->nslots = 2;
	m->slots[0] = (struct mem_slot){ .id = 0, .gpa = 0, .size = 1u << 20 };
	m->slots[1] = (struct mem_slot){ .id = 1, .gpa = MEM_HOLE_END, .size = 1u << 20 };
	cr_assert_eq(memory_alloc(m, err), 0, "%s", err);
}

struct collected {
	struct pcp_run runs[70000];
	size_t n;
};

static int collect(void *opaque, uint64_t gpa, uint64_t npages)
{
	struct collected *c = opaque;
	c->runs[c->n++] = (struct pcp_run){ gpa, npages };
	return 0;
}

struct put_job {
	struct rec_writer *w;
	const struct pcp_run *runs;
	size_t n;
};

static void *flusher(void *arg)
{
	struct put_job *j = arg;
	pcp_put_missing(j->w, j->runs, j->n);
	rec_put(j->w, MIG_REC_STATE_END, NULL, 0);
	return rec_flush(j->w) ? (void *)1 : NULL;
}

/* Write runs with pcp_put_missing through a socketpair, parse every
 * record back; returns the number of records. */
static unsigned roundtrip(struct guest_memory *mem, const struct pcp_run *runs, size_t n,
			  struct collected *out)
{
	int fd[2];
	char err[ERR_MAX] = "";
	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, fd), 0);
	struct channel *a = channel_socket_new(fd[0], true), *b = channel_socket_new(fd[1], true);
	struct rec_writer *w = rec_writer_new(a, MIG_MAX_RECORD);
	struct rec_reader *r = rec_reader_new(b, MIG_MAX_RECORD);
	struct put_job job = { w, runs, n };
	/* big lists exceed the socket buffer: written on another thread */
	unsigned records = 0;
	pthread_t t;
	cr_assert_eq(pthread_create(&t, NULL, flusher, &job), 0);
	for (;;) {
		uint32_t type, len;
		const uint8_t *p;
		cr_assert_eq(rec_read(r, &type, &p, &len), 0);
		if (type == MIG_REC_STATE_END)
			break;
		cr_assert_eq(type, MIG_REC_POSTCOPY_MISSING);
		cr_assert_eq(pcp_parse_missing(p, len, mem, collect, out, err), 0, "%s", err);
		records++;
	}
	void *rc;
	pthread_join(t, &rc);
	cr_assert_null(rc, "the writer failed");
	rec_writer_free(w);
	rec_reader_free(r);
	channel_close(a);
	channel_close(b);
	return records;
}

Test(postcopy_wiring, missing_list_round_trips_and_splits, .timeout = 30)
{
	struct guest_memory mem;
	static struct collected got;
	two_slots(&mem);
	const struct pcp_run runs[] = { { 0, 1 }, { 8192, 3 }, { (1u << 20) - 4096, 1 },
					{ MEM_HOLE_END, 256 } };
	got.n = 0;
	cr_assert_eq(roundtrip(&mem, runs, 4, &got), 1);
	cr_assert_eq(got.n, 4);
	cr_assert_eq(memcmp(got.runs, runs, sizeof(runs)), 0);
	/* more runs than a record holds: two records, same list */
	static struct pcp_run many[PCP_MISSING_MAX_RUNS + 10];
	for (size_t i = 0; i < PCP_MISSING_MAX_RUNS + 10; i++)
		many[i] = (struct pcp_run){ (i % 256) * 4096, 1 };
	got.n = 0;
	cr_assert_eq(roundtrip(&mem, many, PCP_MISSING_MAX_RUNS + 10, &got), 2);
	cr_assert_eq(got.n, PCP_MISSING_MAX_RUNS + 10);
	cr_assert_eq(memcmp(got.runs, many, sizeof(many)), 0);
	memory_free(&mem);
}

static size_t put_runs(uint8_t *buf, uint32_t count, uint32_t reserved,
		       const uint64_t *pairs, unsigned npairs)
{
	memcpy(buf, &count, 4);
	memcpy(buf + 4, &reserved, 4);
	memcpy(buf + 8, pairs, npairs * 16);
	return 8 + npairs * 16;
}

Test(postcopy_wiring, bad_missing_lists_are_rejected_whole)
{
	struct guest_memory mem;
	static struct collected got;
	uint8_t buf[256];
	char err[ERR_MAX];
	two_slots(&mem);
	struct { uint32_t count, reserved; uint64_t pairs[4]; unsigned np; const char *msg; }
	rows[] = {
		{ 0, 0, { 0 }, 0, "0 runs" },
		{ 1, 7, { 0, 1 }, 1, "reserved word is 0x7" },
		{ 2, 0, { 0, 1 }, 1, "for 2 runs" },
		{ 1, 0, { 100, 1 }, 1, "run 0: 1 pages at 0x64" },
		{ 2, 0, { 0, 1, 4096, 0 }, 2, "run 1: 0 pages" },
		/* crosses the end of slot 0 */
		{ 1, 0, { (1u << 20) - 4096, 2 }, 1, "outside one memory slot" },
		/* in the hole */
		{ 1, 0, { 3ULL << 30, 1 }, 1, "outside one memory slot" },
		{ 1, 0, { 0, 1ULL << 62 }, 1, "run 0" },
	};
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		size_t len = put_runs(buf, rows[i].count, rows[i].reserved, rows[i].pairs,
				      rows[i].np);
		got.n = 0;
		err[0] = '\0';
		cr_expect_eq(pcp_parse_missing(buf, (uint32_t)len, &mem, collect, &got, err),
			     -EPROTO, "row %zu", i);
		cr_expect(strstr(err, rows[i].msg), "row %zu: '%s' lacks '%s'", i, err,
			  rows[i].msg);
		cr_expect_eq(got.n, 0, "row %zu: a run was applied before the check", i);
	}
	cr_expect_eq(pcp_parse_missing(buf, 4, &mem, collect, &got, err), -EPROTO);
	memory_free(&mem);
}

/* ---- the switch's data path, guest-less ----------------------------------
 * What a hybrid migration does after its pre-copy, with everything but the
 * VM real: the destination's listener and its session connections
 * (incoming_conns.c), the source's mig_conn_open, POSTCOPY_MISSING parsed
 * and applied (postcopy_incoming.c), the page server told which pages the
 * destination holds (pcs_skip), threads touching missing pages as vCPUs
 * would.  Memory must end equal. */

#include "migration/conns.h"
#include "migration/incoming_conns.h"
#include "migration/incoming_listener.h"
#include "migration/postcopy_dest.h"
#include "migration/postcopy_incoming.h"
#include "migration/postcopy_source.h"
#include "migration/preamble.h"
#include "migration/stream.h"
#include "io/tls.h"
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>

static void fill(struct guest_memory *m, unsigned seed)
{
	for (unsigned s = 0; s < m->nslots; s++) {
		uint8_t *p = m->slots[s].hva;
		for (uint64_t pg = 0; pg < m->slots[s].size / 4096; pg++) {
			if (pg % 7 == 3)
				continue;   /* zero pages too */
			for (unsigned k = 0; k < 4096; k += 512)
				p[pg * 4096 + k] = (uint8_t)(seed + pg * 31 + k + s);
		}
	}
}

struct toucher {
	struct guest_memory *mem;
	const struct pcp_run *runs;
	size_t n;
	unsigned long sum;
};

static void *touch(void *arg)
{
	struct toucher *t = arg;
	for (size_t i = t->n; i-- > 0;) {   /* from the top: against the push */
		volatile uint8_t *p = memory_gpa_to_hva(t->mem, t->runs[i].gpa, 4096);
		t->sum += p[0];
	}
	return NULL;
}

struct waiter {
	struct pci *pc;
	int r;
	char err[ERR_MAX];
};

static void *wait_pull(void *arg)
{
	struct waiter *w = arg;
	w->r = pci_wait(w->pc, NULL, w->err);
	return NULL;
}

static uint64_t released(struct pc_source *pcs)
{
	struct pcs_stats ps;
	pcs_stats(pcs, &ps);
	return ps.released;
}

/* @release: release-ram, the source dropping what the destination
 * confirms (and nothing else: checked while the push is held). */
static void hybrid_pull(struct tls_creds *tls, bool release)
{
	char err[ERR_MAX] = "", why[ERR_MAX] = "";
	if (pcd_available(why))
		cr_skip_test("no userfaultfd here: %s", why);
	log_set_level(LOG_ERROR);
	struct guest_memory src, dst;
	two_slots(&src);
	two_slots(&dst);
	fill(&src, 1);
	/* pre-copy sent everything; then the guest wrote these pages */
	for (unsigned s = 0; s < 2; s++)
		memcpy(dst.slots[s].hva, src.slots[s].hva, src.slots[s].size);
	const struct pcp_run runs[] = { { 10 * 4096, 10 }, { 100 * 4096, 1 },
					{ 255 * 4096, 1 }, { MEM_HOLE_END, 50 },
					{ MEM_HOLE_END + 200 * 4096, 56 } };
	const size_t nruns = sizeof(runs) / sizeof(runs[0]);
	uint64_t missing = 0;
	for (size_t i = 0; i < nruns; i++) {
		memset(memory_gpa_to_hva(&src, runs[i].gpa, 4096), 0xa5 + (int)i,
		       runs[i].npages * 4096);
		missing += runs[i].npages;
	}
	/* What the destination must end with (a released source reads 0) */
	uint8_t *want[2];
	for (unsigned s = 0; s < 2; s++) {
		want[s] = malloc(src.slots[s].size);
		cr_assert_not_null(want[s]);
		memcpy(want[s], src.slots[s].hva, src.slots[s].size);
	}

	/* the destination's side: a listener, a session accepted */
	struct incoming_listener l;
	struct inconns *conns;
	uint8_t sid[MIG_SESSION_ID_LEN];
	char uri[64];
	cr_assert_eq(listener_open(&l, "tcp:127.0.0.1:0", 2000000000ULL, NULL, err), 0);
	listener_set_tls(&l, tls);
	snprintf(uri, sizeof(uri), "tcp:127.0.0.1:%d", l.port);
	cr_assert_eq(inconns_new(&conns, &l, err), 0);
	mig_session_new(sid);
	cr_assert_eq(inconns_open(conns, sid, err), 0, "%s", err);

	/* the source opens its two connections before it pauses */
	struct mig_conn req, push;
	cr_assert_eq(mig_conn_open(uri, tls, MIG_ROLE_PAGE_REQUESTS, sid, 2000, &req, err),
		     0, "%s", err);
	cr_assert_eq(mig_conn_open(uri, tls, MIG_ROLE_POSTCOPY_PUSH, sid, 2000, &push, err),
		     0, "%s", err);

	/* POSTCOPY_MISSING at the destination */
	struct pci *pc;
	cr_assert_eq(pci_begin(&pc, &dst, conns, 2000, 10000, err), 0, "%s", err);
	if (release)
		pci_confirm(pc);
	static uint8_t payload[8 + 16 * 8];
	uint32_t count = (uint32_t)nruns, zero = 0;
	memcpy(payload, &count, 4);
	memcpy(payload + 4, &zero, 4);
	for (size_t i = 0; i < nruns; i++) {
		memcpy(payload + 8 + 16 * i, &runs[i].gpa, 8);
		memcpy(payload + 16 + 16 * i, &runs[i].npages, 8);
	}
	cr_assert_eq(pci_missing(pc, payload, (uint32_t)(8 + 16 * nruns), err), 0, "%s", err);
	pci_open(pc);
	cr_assert_eq(pci_missing_pages(pc), missing);

	/* the source's page server, told what the destination holds */
	struct pc_source *pcs;
	cr_assert_eq(pcs_new(&src, NULL, &pcs, err), 0, "%s", err);
	if (release)
		cr_assert_eq(pcs_release_ram(pcs, err), 0, "%s", err);
	for (unsigned s = 0; s < 2; s++) {
		uint64_t at = src.slots[s].gpa, end = at + src.slots[s].size;
		for (size_t i = 0; i < nruns; i++) {
			if (runs[i].gpa < at || runs[i].gpa >= end)
				continue;
			if (runs[i].gpa > at)
				pcs_skip(pcs, at, (runs[i].gpa - at) / 4096);
			at = runs[i].gpa + runs[i].npages * 4096;
		}
		if (at < end)
			pcs_skip(pcs, at, (end - at) / 4096);
	}
	/* the "vCPUs" touch missing pages while the push runs */
	struct toucher t = { .mem = &dst, .runs = runs, .n = nruns };
	pthread_t th;
	/* The push held until the touches are served: requests and their
	 * answers must travel (over TLS: from the answers' receiver). */
	pcs_hold_push(pcs, true);
	cr_assert_eq(pcs_start(pcs, req.ch, push.ch, err), 0, "%s", err);
	cr_assert_eq(pthread_create(&th, NULL, touch, &t), 0);
	pthread_join(th, NULL);
	struct waiter w = { .pc = pc };
	pthread_t wt;
	cr_assert_eq(pthread_create(&wt, NULL, wait_pull, &w), 0);
	if (release) {
		/* While the push is held the destination confirms what it
		 * has: every page but the listed ones never touched. */
		uint64_t have = memory_npages(&src) - (missing - nruns);
		for (int k = 0; k < 400 && released(pcs) < have; k++)
			usleep(5000);
		cr_assert_eq(released(pcs), have, "released %llu, confirmed %llu",
			     (unsigned long long)released(pcs), (unsigned long long)have);
		/* and the source has dropped them (page 4 was pre-copied) -
		 * but kept every page the destination still lacks */
		volatile uint8_t *kept = (volatile uint8_t *)src.slots[0].hva + 4 * 4096 + 512;
		for (int k = 0; k < 400 && *kept; k++)
			usleep(5000);
		cr_assert_eq(*kept, 0, "a confirmed page is still at the source");
		for (size_t i = 0; i < nruns; i++) {
			if (runs[i].npages < 2)
				continue;   /* its one page was touched */
			unsigned s = runs[i].gpa >= MEM_HOLE_END;
			uint64_t off = runs[i].gpa - src.slots[s].gpa + 4096;
			cr_assert_eq(memcmp(src.slots[s].hva + off, want[s] + off, 4096), 0,
				     "run %zu: a page the destination lacks left the source", i);
		}
	}
	pcs_hold_push(pcs, false);
	pthread_join(wt, NULL);
	cr_assert_eq(w.r, 0, "%s", w.err);
	cr_assert_eq(pcs_wait(pcs, err), 0, "%s", err);

	struct pcs_stats ps;
	pcs_stats(pcs, &ps);
	cr_assert_eq(ps.present, memory_npages(&src) - missing);
	cr_assert_geq(ps.requested, nruns, "the touches were not requested");
	cr_assert_eq(ps.pushed + ps.requested - ps.prepage_hits, missing,
		     "pushed %llu requested %llu hits %llu missing %llu",
		     (unsigned long long)ps.pushed, (unsigned long long)ps.requested,
		     (unsigned long long)ps.prepage_hits, (unsigned long long)missing);
	json_t *j = pci_json(pc);
	cr_assert_eq(json_integer_value(json_object_get(j, "pages-still-missing")), 0);
	/* a request for a page the push delivered is not answered again */
	cr_assert_eq(json_integer_value(json_object_get(j, "crossings")),
		     (json_int_t)(ps.prepage_hits - ps.not_resent));
	cr_assert_eq(json_integer_value(json_object_get(j, "missing-pages")),
		     (json_int_t)missing);
	cr_assert_gt(json_integer_value(json_object_get(j, "bytes-push")), 0);
	/* requests were made, so something was waited for */
	cr_assert_gt(json_real_value(json_object_get(j, "waited-ms")), 0.0);
	json_t *lat = json_object_get(j, "fault-latency-us");
	cr_assert_gt(json_integer_value(json_object_get(lat, "samples")), 0);
	cr_assert_geq(json_real_value(json_object_get(lat, "max")),
		      json_real_value(json_object_get(lat, "p50")));
	json_decref(j);
	/* Retired: the memory is plain memory again, unhooked. */
	pci_retire(pc);
	cr_assert_null(dst.ensure);
	for (unsigned s = 0; s < 2; s++)
		cr_assert_eq(memcmp(dst.slots[s].hva, want[s], src.slots[s].size), 0,
			     "slot %u differs after post-copy", s);
	memset(dst.slots[0].hva, 1, 4096);   /* writable, no fault handler needed */
	pci_free(pc);
	pcs_free(pcs);
	/* PAGES_DONE: with release-ram nothing stays at the source */
	for (unsigned s = 0; release && s < 2; s++)
		for (uint64_t off = 0; off < src.slots[s].size; off += 4096)
			cr_assert_eq(src.slots[s].hva[off + 512], 0,
				     "slot %u page %llu kept after PAGES_DONE", s,
				     (unsigned long long)(off / 4096));
	free(want[0]);
	free(want[1]);
	mig_conn_close(&req);
	mig_conn_close(&push);
	inconns_free(conns);
	listener_close(&l);
	memory_free(&src);
	memory_free(&dst);
}

Test(postcopy_wiring, hybrid_pull_over_the_sessions_connections, .timeout = 60)
{
	hybrid_pull(NULL, false);
}

Test(postcopy_wiring, release_ram_drops_only_what_the_destination_has, .timeout = 60)
{
	hybrid_pull(NULL, true);
}

/* Over TLS the destination's request connection has one thread for its
 * one TLS session: requests queued, sent by the answers' receiver. */
Test(postcopy_wiring, hybrid_pull_over_tls, .timeout = 60)
{
	char dir[256], path[300], cmd[320], err[ERR_MAX] = "";
	const char *t = getenv("TMPDIR");
	snprintf(dir, sizeof(dir), "%s/ferry-pcw-XXXXXX", t ? t : "/tmp");
	cr_assert_not_null(mkdtemp(dir));
	signal(SIGPIPE, SIG_IGN);
	snprintf(path, sizeof(path), "%s/keys.psk", dir);
	FILE *f = fopen(path, "w");
	cr_assert_not_null(f);
	fprintf(f, "ferry:00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\n");
	fclose(f);
	struct tls_creds *c = NULL;
	cr_assert_eq(tls_creds_load_psk(&c, path, err), 0, "%s", err);
	hybrid_pull(c, true);   /* release-ram over TLS: queued confirmations */
	tls_creds_free(c);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	cr_assert_eq(system(cmd), 0);
}

/* query-migrate at the source: ferry.postcopy once post-copy ran, with
 * the page server's figures; absent in a plain pre-copy. */
#include "migration/stats.h"

Test(postcopy_wiring, source_stats_show_postcopy)
{
	struct mig_stats st;
	memset(&st, 0, sizeof(st));
	st.status = MIG_STATUS_POSTCOPY_ACTIVE;
	st.start_ns = 1;
	json_t *j = mig_stats_json(&st, 1000000000ULL);
	cr_assert_str_eq(json_string_value(json_object_get(j, "status")), "postcopy-active");
	cr_assert_null(json_object_get(json_object_get(j, "ferry"), "postcopy"));
	json_decref(j);
	st.postcopy = true;
	st.postcopy_missing = 1000;
	st.postcopy_start_ns = 500000000ULL;
	st.pcs = (struct pcs_stats){ .pushed = 900, .requested = 120, .prepage_hits = 20,
				     .present = 3000, .bytes_push = 123, .bytes_answers = 45 };
	j = mig_stats_json(&st, 1000000000ULL);
	json_t *pc = json_object_get(json_object_get(j, "ferry"), "postcopy");
	cr_assert_not_null(pc);
	cr_assert_eq(json_integer_value(json_object_get(pc, "missing-pages")), 1000);
	cr_assert_eq(json_integer_value(json_object_get(pc, "pages-pushed")), 900);
	cr_assert_eq(json_integer_value(json_object_get(pc, "pages-requested")), 120);
	cr_assert_eq(json_integer_value(json_object_get(pc, "prepage-hits")), 20);
	cr_assert_eq(json_integer_value(json_object_get(pc, "pages-present")), 3000);
	cr_assert_eq(json_integer_value(json_object_get(pc, "bytes-push")), 123);
	cr_assert_eq(json_integer_value(json_object_get(pc, "bytes-answers")), 45);
	cr_assert_eq(json_integer_value(json_object_get(pc, "duration-ms")), 500);
	json_decref(j);
}

/* pci_stop() (the destination shutting down mid post-copy) ends pci_wait
 * with an error: pages still missing are not "every page arrived". */
Test(postcopy_wiring, a_stopped_postcopy_is_not_complete, .timeout = 30)
{
	char err[ERR_MAX] = "", why[ERR_MAX] = "";
	if (pcd_available(why))
		cr_skip_test("no userfaultfd here: %s", why);
	log_set_level(LOG_ERROR);
	struct guest_memory dst;
	two_slots(&dst);
	struct incoming_listener l;
	struct inconns *conns;
	uint8_t sid[MIG_SESSION_ID_LEN];
	char uri[64];
	cr_assert_eq(listener_open(&l, "tcp:127.0.0.1:0", 2000000000ULL, NULL, err), 0);
	snprintf(uri, sizeof(uri), "tcp:127.0.0.1:%d", l.port);
	cr_assert_eq(inconns_new(&conns, &l, err), 0);
	mig_session_new(sid);
	cr_assert_eq(inconns_open(conns, sid, err), 0, "%s", err);
	struct mig_conn req, push;
	cr_assert_eq(mig_conn_open(uri, NULL, MIG_ROLE_PAGE_REQUESTS, sid, 2000, &req, err),
		     0, "%s", err);
	cr_assert_eq(mig_conn_open(uri, NULL, MIG_ROLE_POSTCOPY_PUSH, sid, 2000, &push, err),
		     0, "%s", err);
	struct pci *pc;
	cr_assert_eq(pci_begin(&pc, &dst, conns, 2000, 10000, err), 0, "%s", err);
	uint8_t payload[8 + 16];
	uint32_t count = 1, zero = 0;
	uint64_t gpa = 4096, npages = 8;
	memcpy(payload, &count, 4);
	memcpy(payload + 4, &zero, 4);
	memcpy(payload + 8, &gpa, 8);
	memcpy(payload + 16, &npages, 8);
	cr_assert_eq(pci_missing(pc, payload, sizeof(payload), err), 0, "%s", err);
	pci_open(pc);

	pci_stop(pc);
	err[0] = '\0';
	int r = pci_wait(pc, NULL, err);
	cr_assert_neq(r, 0, "pci_wait succeeded with 8 pages missing");
	cr_assert_neq(err[0], '\0', "no reason given");
	json_t *j = pci_json(pc);
	cr_assert_eq(json_integer_value(json_object_get(j, "pages-still-missing")), 8);
	json_decref(j);
	pci_free(pc);
	mig_conn_close(&req);
	mig_conn_close(&push);
	inconns_free(conns);
	listener_close(&l);
	memory_free(&dst);
}
