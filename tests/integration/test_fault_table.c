/*
 * The fault table (docs/fault-table.md): each phase of a migration x each
 * fault, one line of the table below per cell, one body for all of them.
 *
 *   phases  round 0 | a later pre-copy round | stop-and-copy |
 *           after READY | after COMMIT
 *   faults  source killed (migrate's x-fault) | destination killed
 *           (--x-fault) | link cut, peer stalled, bit flipped (the
 *           harness proxy) | migrate-cancel on the source
 *
 * The rule held everywhere: the guest runs on at most one side, and never
 * nowhere when that can be helped.  Before COMMIT the source resumes with
 * its guest's checks passing (unless it was the one killed: then the
 * destination discards what it got, as if the source's host had crashed
 * without a migration).  After COMMIT the destination runs it if COMMIT
 * arrived; the source, which cannot know, stays paused until an operator
 * who knows the destination is gone resumes it.
 *
 * Every migration goes through the proxy (a plain one when the fault is
 * not the link's), with a busy, self-verifying guest and a bandwidth cap
 * so that each phase lasts long enough to be hit.
 */
#include "harness/harness.h"

#include <string.h>
#include <strings.h>

#define MIG_S 90.0
#define FT_GUEST "workload=dirty wss=16M rate=0 verify=1 verify_ms=500"
/* Both sides give a stalled peer up after 3 s.  (A cancel in
 * stop-and-copy finds the source waiting for READY, whose own deadline is
 * 10 s; after READY a cancel is refused and the source gives up waiting
 * for RUNNING after these 3 s.) */
#define SOURCE_IDLE ",\"idle-timeout-ms\":3000"

TestSuite(fault_table, H_FIXTURES, .timeout = 150);

enum phase { P_ROUND0, P_LATER_ROUND, P_STOP_AND_COPY, P_AFTER_READY,
	     P_AFTER_COMMIT };
enum fault { F_SOURCE_KILLED, F_DEST_KILLED, F_LINK_CUT, F_STALLED,
	     F_FLIPPED, F_CANCEL };
enum outcome {
	O_SOURCE_RUNS,  /* the source resumes, the destination discards */
	O_SOURCE_DEAD,  /* the source died first: the destination discards */
	O_SOURCE_HELD,  /* COMMIT went out unconfirmed and the destination
			   never ran it: the source resumes by itself only if
			   it knows, else stays paused until the operator's
			   cont */
	O_DEST_RUNS,    /* the destination runs it; the source is dead, or
			   paused (COMMIT unconfirmed), or postmigrate */
};

struct cell {
	enum phase phase;
	enum fault fault;
	enum outcome outcome;
};

static const char *const phase_name[] = { "round 0", "a later round",
	"stop-and-copy", "after READY", "after COMMIT" };
static const char *const fault_name[] = { "source killed",
	"destination killed", "link cut", "peer stalled", "bit flipped",
	"cancel" };
/* migrate's x-fault (source) and --x-fault (destination) per phase. */
static const char *const fault_point[] = { "round0", "round1", "device",
	"after-ready", "after-commit" };

static size_t rounds_done(json_t *q)
{
	return json_array_size(json_object_get(json_object_get(q, "ferry"),
					       "rounds"));
}

/* Where the proxy's fault lands in each phase (H_PROXY_NONE: no fault). */
static struct h_proxy_fault proxy_fault(const struct cell *c)
{
	struct h_proxy_fault f = { 0 };
	static const enum h_proxy_action act[] = {
		[F_LINK_CUT] = H_PROXY_CUT, [F_STALLED] = H_PROXY_STALL,
		[F_FLIPPED] = H_PROXY_FLIP,
	};
	if (c->fault == F_LINK_CUT || c->fault == F_STALLED ||
	    c->fault == F_FLIPPED)
		f.action = act[c->fault];
	/* A cancel in these phases needs the source held there. */
	if (c->fault == F_CANCEL && (c->phase == P_STOP_AND_COPY ||
				     c->phase == P_AFTER_READY))
		f.action = H_PROXY_STALL;
	if (!f.action)
		return f;

	switch (c->phase) {
	case P_ROUND0:
		if (c->fault == F_FLIPPED) {
			f.record = H_REC_RAM_PAGES; /* its checksum: never a
						       length to wait for */
			f.record_dir = H_TO_DEST;
		} else {
			f.after = 4 << 20; /* of ~17 MiB of round 0 */
		}
		break;
	case P_LATER_ROUND:
		f.record = H_REC_RAM_PAGES;
		f.record_dir = H_TO_DEST;
		f.min_round = 1;
		break;
	case P_STOP_AND_COPY:
		f.record = H_REC_STATE_END;
		f.record_dir = H_TO_DEST;
		break;
	case P_AFTER_READY:
		if (c->fault == F_FLIPPED) {
			/* The only bytes the source sends after READY. */
			f.record = H_REC_COMMIT;
			f.record_dir = H_TO_DEST;
		} else {
			f.record = H_REC_READY;
			f.record_dir = H_TO_SOURCE;
			f.record_passes = true;
		}
		break;
	case P_AFTER_COMMIT:
		if (c->fault == F_FLIPPED) {
			/* The source sends nothing after COMMIT: the flip
			 * lands on the destination's RUNNING instead. */
			f.record = H_REC_RUNNING;
			f.record_dir = H_TO_SOURCE;
		} else {
			f.record = H_REC_COMMIT;
			f.record_dir = H_TO_DEST;
			f.record_passes = true;
		}
		break;
	}
	return f;
}

/* Bring the migration to the cell's phase, then cancel it. */
static void cancel_in_phase(const struct cell *c, struct h_vm *src,
			    struct h_proxy *px)
{
	json_t *q = NULL;
	bool there = false;

	switch (c->phase) {
	case P_ROUND0:
		there = h_wait_for(({ json_decref(q); q = h_query_migrate(src);
			!strcmp(h_str(q, "status"), "active") &&
			json_integer_value(json_object_get(json_object_get(q, "ram"),
				"transferred")) > 1 << 20; }), 30);
		break;
	case P_LATER_ROUND:
		there = h_wait_for(({ json_decref(q); q = h_query_migrate(src);
			!strcmp(h_str(q, "status"), "active") &&
			rounds_done(q) >= 1; }), 60);
		break;
	case P_STOP_AND_COPY:
		/* The proxy holds STATE_END back: the source waits for READY. */
		there = h_wait_for(({ json_decref(q); q = h_query_migrate(src);
			!strcmp(h_str(q, "status"), "device") &&
			h_proxy_fired(px); }), 60);
		break;
	case P_AFTER_READY:
		/* READY has reached the source and the link stalled: COMMIT
		 * is out (it follows READY at once) and waits for RUNNING. */
		there = h_wait_for(h_proxy_fired(px), 60);
		break;
	case P_AFTER_COMMIT:
		return; /* after completion: see run_cell */
	}
	char *s = q ? json_dumps(q, JSON_COMPACT) : strdup("-");
	h_assert(there, "the migration never reached %s: %s",
		 phase_name[c->phase], s);
	free(s);
	json_decref(q);
	/* After READY, COMMIT is out: the source may accept the cancel (it
	 * can no longer take COMMIT back) or refuse it; either is fine. */
	if (c->phase == P_AFTER_READY)
		json_decref(h_qmp(src, "{\"execute\":\"migrate-cancel\"}"));
	else
		json_decref(h_qmp_ok(src, "{\"execute\":\"migrate-cancel\"}"));
}

/* What the error says, per fault (the words any wording of it has). */
static void expect_error_names_fault(const struct cell *c, json_t *q,
				     struct h_vm *dst)
{
	const char *desc = h_str(q, "error-desc");
	static const char *const cut_words[] = { "closed", "reset", "broken pipe",
		"connection", "destination", NULL };
	switch (c->fault) {
	case F_STALLED:
		/* A socket timeout, or a deadline for an awaited answer. */
		h_assert(strcasestr(desc, "timed out") ||
			 strcasestr(desc, "did not answer"),
			 "a stalled peer, but error-desc does not say it timed out: %s",
			 desc);
		break;
	case F_FLIPPED:
		h_assert(h_file_contains(dst->err_path, "checksum") ||
			 strcasestr(desc, "checksum"),
			 "a flipped bit, but neither side names a checksum (error-desc: %s)",
			 desc);
		break;
	case F_LINK_CUT:
	case F_DEST_KILLED: {
		bool named = false;
		for (const char *const *w = cut_words; *w; w++)
			named = named || strcasestr(desc, *w);
		h_assert(named, "error-desc does not say the link or the "
			 "destination went away: %s", desc);
		break;
	}
	case F_SOURCE_KILLED:
	case F_CANCEL:
		break;
	}
}

/* The destination never ran the guest: it ends, and not with 0. */
static void expect_destination_discards(const struct cell *c, struct h_vm *dst)
{
	int rc = h_vm_wait(dst, 30);
	if (c->fault == F_DEST_KILLED)
		h_assert(rc == 99 && h_file_contains(dst->err_path, "fault injection"),
			 "destination with --x-fault %s exited %d, wanted 99",
			 fault_point[c->phase], rc);
	else
		h_assert(rc != 0 && rc != 99, "the destination exited %d; "
			 "wanted a failure (it must discard what it got)", rc);
}

static void run_cell(const struct cell *c)
{
	cr_log_info("fault table: %s, %s", phase_name[c->phase],
		    fault_name[c->fault]);
	struct h_vm *src = h_boot_verifying("src", FT_GUEST, "128M", "1");
	struct h_vm *dst = h_incoming("dst", H_CONTROL | H_CONSOLE,
				      "--idle-timeout", "3",
				      c->fault == F_DEST_KILLED ? "--x-fault" : NULL,
				      fault_point[c->phase], NULL);
	struct h_proxy_fault pf = proxy_fault(c);
	struct h_proxy *px = h_proxy_start_fault(dst->port, &pf);

	/* 8 MiB/s makes round 0 (~17 MiB) last ~2 s; 32 MiB/s keeps a
	 * 16 MiB working set from fitting the downtime limit, so later
	 * pre-copy rounds happen before the stop-and-copy, which only the
	 * "force" policy then reaches (the default waits for a fit).  One
	 * stream: the proxy's faults hit the main connection, so its pages
	 * must travel there (tests/unit/test_multifd.c breaks page
	 * channels; migration_faults kills peers with the default two). */
	char args[256];
	snprintf(args, sizeof(args), ",\"max-bandwidth\":%d,\"switchover\":\"force\","
		 "\"multifd-channels\":1,\"x-keep-source\":true%s%s%s%s",
		 c->phase == P_ROUND0 ? 8 << 20 : 32 << 20, SOURCE_IDLE,
		 c->fault == F_SOURCE_KILLED ? ",\"x-fault\":\"" : "",
		 c->fault == F_SOURCE_KILLED ? fault_point[c->phase] : "",
		 c->fault == F_SOURCE_KILLED ? "\"" : "");
	json_decref(h_qmp_ok(src, "{\"execute\":\"migrate\",\"arguments\":"
			     "{\"uri\":\"%s\"%s}}", h_mig_uri(h_proxy_port(px)),
			     args));
	if (c->fault == F_CANCEL)
		cancel_in_phase(c, src, px);

	json_t *q = NULL;
	if (c->fault == F_SOURCE_KILLED) {
		int rc = h_vm_wait(src, MIG_S);
		h_assert(rc == 99 && h_file_contains(src->err_path, "fault injection"),
			 "source with x-fault %s exited %d, wanted 99",
			 fault_point[c->phase], rc);
	} else {
		q = h_wait_migration(src, MIG_S, NULL);
	}
	if (c->fault == F_CANCEL && c->phase == P_AFTER_COMMIT) {
		/* Too late to cancel: a no-op as in QEMU, or refused. */
		json_decref(h_qmp(src, "{\"execute\":\"migrate-cancel\"}"));
		json_decref(q);
		q = h_query_migrate(src);
	}
	if (pf.action)
		h_assert(h_proxy_fired(px), "the proxy's fault (%s) never happened",
			 fault_name[c->fault]);
	if (q && c->phase == P_ROUND0) {
		char *s = json_dumps(q, JSON_COMPACT);
		h_assert(rounds_done(q) == 0, "meant for round 0, but a round "
			 "ended first: %s", s);
		free(s);
	}

	char *qs = q ? json_dumps(q, JSON_COMPACT) : strdup("(source gone)");
	switch (c->outcome) {
	case O_SOURCE_RUNS:
		h_assert(!strcmp(h_str(q, "status"),
				 c->fault == F_CANCEL ? "cancelled" : "failed"),
			 "the source's migration ended as: %s", qs);
		expect_error_names_fault(c, q, dst);
		expect_destination_discards(c, dst);
		h_expect_status(src, "running");
		h_expect_guest_runs(src);
		h_expect_verifies(src);
		h_assert(!h_vm_exited(src), "the source exited");
		break;
	case O_SOURCE_DEAD:
		expect_destination_discards(c, dst);
		break;
	case O_SOURCE_HELD: {
		h_assert(strcmp(h_str(q, "status"), "completed"),
			 "completed, but the destination never ran it: %s", qs);
		expect_destination_discards(c, dst);
		h_assert(!h_vm_exited(src), "the source exited: the guest is lost");
		char *st = h_status(src);
		if (strcmp(st, "running")) {
			h_assert(strstr(h_str(q, "error-desc"), "COMMIT"),
				 "a held source must say COMMIT is unconfirmed: %s", qs);
			h_expect_guest_frozen(src, 1500);
			h_operator_resumes(src);
		}
		free(st);
		h_expect_guest_runs(src);
		h_expect_verifies(src);
		break;
	}
	case O_DEST_RUNS:
		h_wait_control(dst, 30);
		h_expect_status(dst, "running");
		h_expect_guest_runs(dst);
		h_expect_verifies(dst);
		if (c->fault == F_CANCEL) {
			h_assert(!strcmp(h_str(q, "status"), "completed"),
				 "a cancel after completion changed it: %s", qs);
			h_expect_status(src, "postmigrate");
		} else if (c->fault != F_SOURCE_KILLED) {
			h_assert(!strcmp(h_str(q, "status"), "failed") &&
				 strstr(h_str(q, "error-desc"), "COMMIT"),
				 "wanted failed with COMMIT unconfirmed: %s", qs);
			h_assert(!h_vm_exited(src), "the source exited");
			h_expect_guest_frozen(src, 1500);
		}
		break;
	}
	free(qs);
	json_decref(q);
}

/* ---- the table: docs/fault-table.md names each of these ----------------- */

#define CELL(name, ph, f, o)						\
	Test(fault_table, name)						\
	{								\
		run_cell(&(struct cell){ ph, f, o });			\
	}

CELL(source_killed_round0,        P_ROUND0,        F_SOURCE_KILLED, O_SOURCE_DEAD)
CELL(source_killed_later_round,   P_LATER_ROUND,   F_SOURCE_KILLED, O_SOURCE_DEAD)
CELL(source_killed_stop_and_copy, P_STOP_AND_COPY, F_SOURCE_KILLED, O_SOURCE_DEAD)
CELL(source_killed_after_ready,   P_AFTER_READY,   F_SOURCE_KILLED, O_SOURCE_DEAD)
CELL(source_killed_after_commit,  P_AFTER_COMMIT,  F_SOURCE_KILLED, O_DEST_RUNS)

CELL(dest_killed_round0,          P_ROUND0,        F_DEST_KILLED,   O_SOURCE_RUNS)
CELL(dest_killed_later_round,     P_LATER_ROUND,   F_DEST_KILLED,   O_SOURCE_RUNS)
CELL(dest_killed_stop_and_copy,   P_STOP_AND_COPY, F_DEST_KILLED,   O_SOURCE_RUNS)
CELL(dest_killed_after_ready,     P_AFTER_READY,   F_DEST_KILLED,   O_SOURCE_HELD)
CELL(dest_killed_after_commit,    P_AFTER_COMMIT,  F_DEST_KILLED,   O_SOURCE_HELD)

CELL(link_cut_round0,             P_ROUND0,        F_LINK_CUT,      O_SOURCE_RUNS)
CELL(link_cut_later_round,        P_LATER_ROUND,   F_LINK_CUT,      O_SOURCE_RUNS)
CELL(link_cut_stop_and_copy,      P_STOP_AND_COPY, F_LINK_CUT,      O_SOURCE_RUNS)
CELL(link_cut_after_ready,        P_AFTER_READY,   F_LINK_CUT,      O_SOURCE_HELD)
CELL(link_cut_after_commit,       P_AFTER_COMMIT,  F_LINK_CUT,      O_DEST_RUNS)

CELL(stalled_round0,              P_ROUND0,        F_STALLED,       O_SOURCE_RUNS)
CELL(stalled_later_round,         P_LATER_ROUND,   F_STALLED,       O_SOURCE_RUNS)
CELL(stalled_stop_and_copy,       P_STOP_AND_COPY, F_STALLED,       O_SOURCE_RUNS)
CELL(stalled_after_ready,         P_AFTER_READY,   F_STALLED,       O_SOURCE_HELD)
CELL(stalled_after_commit,        P_AFTER_COMMIT,  F_STALLED,       O_DEST_RUNS)

CELL(flipped_round0,              P_ROUND0,        F_FLIPPED,       O_SOURCE_RUNS)
CELL(flipped_later_round,         P_LATER_ROUND,   F_FLIPPED,       O_SOURCE_RUNS)
CELL(flipped_stop_and_copy,       P_STOP_AND_COPY, F_FLIPPED,       O_SOURCE_RUNS)
CELL(flipped_commit,              P_AFTER_READY,   F_FLIPPED,       O_SOURCE_RUNS)
CELL(flipped_running,             P_AFTER_COMMIT,  F_FLIPPED,       O_DEST_RUNS)

CELL(cancel_round0,               P_ROUND0,        F_CANCEL,        O_SOURCE_RUNS)
CELL(cancel_later_round,          P_LATER_ROUND,   F_CANCEL,        O_SOURCE_RUNS)
CELL(cancel_stop_and_copy,        P_STOP_AND_COPY, F_CANCEL,        O_SOURCE_RUNS)
CELL(cancel_after_ready,          P_AFTER_READY,   F_CANCEL,        O_SOURCE_HELD)
CELL(cancel_after_completion,     P_AFTER_COMMIT,  F_CANCEL,        O_DEST_RUNS)
