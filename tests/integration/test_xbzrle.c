/*
 * Deltas of resent pages (capability "xbzrle") between real ferry
 * processes.
 *
 * Guest-less (they run everywhere): migrate-set-capabilities and
 * query-migrate-capabilities on a real `ferry run --incoming`, which
 * serves its control socket before any VM exists; a HELLO offering
 * xbzrle passes the capability check; `ferry migrate --xbzrle=SIZE`
 * checks its size.  With KVM (skipped without): a busy verifying guest
 * migrates with xbzrle, alone and with zstd or lz4; the source's
 * xbzrle-cache shows deltas and the destination decoded as many; the
 * memory digests of the paused source and destination match; setting a
 * capability during the migration is refused as QEMU refuses it.
 */
#include "harness/harness.h"
#include "harness/wire.h"

#include <string.h>

TestSuite(xbzrle, H_FIXTURES, .timeout = 180);

/* query-migrate-capabilities' state of xbzrle (-1: not listed). */
static int xbzrle_state(struct h_vm *vm)
{
	json_t *caps = h_qmp_ok(vm, "{\"execute\":\"query-migrate-capabilities\"}");
	size_t i;
	json_t *e;
	int state = -1;
	h_assert(json_is_array(caps), "query-migrate-capabilities is not an array");
	json_array_foreach(caps, i, e)
		if (!strcmp(h_str(e, "capability"), "xbzrle"))
			state = json_is_true(json_object_get(e, "state"));
	json_decref(caps);
	return state;
}

/* A destination answers the capability commands before its VM exists,
 * keeps what is set, and refuses what it cannot do with a clear reason. */
Test(xbzrle, capabilities_on_a_destination_without_a_vm)
{
	struct h_vm *dst = h_incoming("dst", H_CONTROL, NULL);
	h_assert(xbzrle_state(dst) == 0, "xbzrle is not listed off by default");

	json_decref(h_qmp_ok(dst, "{\"execute\":\"migrate-set-capabilities\",\"arguments\":"
			     "{\"capabilities\":[{\"capability\":\"xbzrle\",\"state\":true}]}}"));
	h_assert(xbzrle_state(dst) == 1, "xbzrle set on does not read on");

	/* Unknown to everyone: refused, and nothing changes. */
	json_t *e = h_qmp_err(dst, "{\"execute\":\"migrate-set-capabilities\",\"arguments\":"
			      "{\"capabilities\":[{\"capability\":\"xbzrle\",\"state\":false},"
			      "{\"capability\":\"warp-drive\",\"state\":true}]}}");
	char *s = h_dump(e);
	h_assert(strstr(h_str(e, "desc"),
			"Parameter 'capabilities[1].capability' does not accept value 'warp-drive'"),
		 "error: %s", s);
	free(s);
	json_decref(e);
	h_assert(xbzrle_state(dst) == 1, "a refused list changed xbzrle");

	/* QEMU's, not this ferry's. */
	e = h_qmp_err(dst, "{\"execute\":\"migrate-set-capabilities\",\"arguments\":"
		      "{\"capabilities\":[{\"capability\":\"rdma-pin-all\",\"state\":true}]}}");
	h_assert(strstr(h_str(e, "desc"), "Capability 'rdma-pin-all' is not supported by this ferry"),
		 "error: %s", h_str(e, "desc"));
	json_decref(e);

	/* The argument's shape is checked as QMP does. */
	e = h_qmp_err(dst, "{\"execute\":\"migrate-set-capabilities\",\"arguments\":"
		      "{\"capabilities\":[{\"capability\":\"xbzrle\"}]}}");
	h_assert(strstr(h_str(e, "desc"), "Parameter 'capabilities[0].state' is missing"),
		 "error: %s", h_str(e, "desc"));
	json_decref(e);
	e = h_qmp_err(dst, "{\"execute\":\"migrate-set-capabilities\"}");
	json_decref(e);

	/* The cache size parameter, QEMU's default. */
	json_t *p = h_qmp_ok(dst, "{\"execute\":\"query-migrate-parameters\"}");
	h_assert(h_int(p, "xbzrle-cache-size") == 64LL << 20, "xbzrle-cache-size is not 64 MiB");
	json_decref(p);

	json_decref(h_qmp_ok(dst, "{\"execute\":\"migrate-set-capabilities\",\"arguments\":"
			     "{\"capabilities\":[{\"capability\":\"xbzrle\",\"state\":false}]}}"));
	h_assert(xbzrle_state(dst) == 0, "xbzrle set off does not read off");
	h_quit_ok(dst);
}

/* A HELLO offering deltas (optional or mandatory) passes the capability
 * check: what refuses this deliberately incomplete machine description
 * (its layout, or here the missing /dev/kvm) is not xbzrle. */
Test(xbzrle, xbzrle_offer_passes_negotiation)
{
	static const char *const offers[] = {
		"{\"xbzrle\": {\"value\": true, \"mandatory\": false}}",
		"{\"xbzrle\": {\"value\": true, \"mandatory\": true}, "
		"\"compression\": {\"value\": \"zstd\", \"mandatory\": true}}",
	};
	struct h_vm *dst = h_incoming("dst", H_CONTROL, NULL);
	for (size_t i = 0; i < 2; i++) {
		char hello[512];
		int n = snprintf(hello, sizeof(hello),
				 "{\"memory\": 16777216, \"vcpus\": 1, \"page-size\": 4096, "
				 "\"capabilities\": %s}", offers[i]);
		struct w_buf b = { 0 };
		w_put_preamble(&b, W_VERSION);
		w_put_record(&b, W_REC_HELLO, hello, (uint32_t)n);
		int fd = w_connect(dst->port);
		w_send_all(fd, b.p, b.len);
		w_free(&b);
		uint32_t type, len;
		char *why = NULL;
		h_assert(w_recv_record(fd, &type, &why, &len, 20), "no answer to HELLO");
		h_assert(type == W_REC_REFUSE, "wanted REFUSE, got record 0x%x '%s'", type, why);
		h_assert(!strstr(why, "xbzrle") && !strstr(why, "capabilit"),
			 "refused for xbzrle: '%s' (offer %s)", why, offers[i]);
		free(why);
		close(fd);
	}
	/* A value of the wrong type is refused, naming the capability. */
	{
		static const char bad[] = "{\"memory\": 16777216, \"vcpus\": 1, "
			"\"page-size\": 4096, \"capabilities\": "
			"{\"xbzrle\": {\"value\": 1, \"mandatory\": false}}}";
		struct w_buf b = { 0 };
		w_put_preamble(&b, W_VERSION);
		w_put_record(&b, W_REC_HELLO, bad, (uint32_t)strlen(bad));
		int fd = w_connect(dst->port);
		w_send_all(fd, b.p, b.len);
		w_free(&b);
		uint32_t type, len;
		char *why = NULL;
		h_assert(w_recv_record(fd, &type, &why, &len, 20), "no answer to HELLO");
		h_assert(type == W_REC_REFUSE && strstr(why, "capability 'xbzrle' has a bad value"),
			 "record 0x%x '%s'", type, why);
		free(why);
		close(fd);
	}
	h_assert(!h_vm_exited(dst), "the destination ended");
	h_quit_ok(dst);
}

/* `ferry migrate --xbzrle=SIZE` checks the size before it connects. */
Test(xbzrle, cli_refuses_a_bad_cache_size)
{
	struct h_vm *cli = h_spawn("cli", 0, "migrate", "--control", h_path("none.sock"),
				   "--to", "tcp:127.0.0.1:1", "--xbzrle=12", NULL);
	int rc = h_vm_wait(cli, 20);
	char *e = h_vm_stderr(cli);
	h_assert(rc == 2, "ferry migrate exited %d, wanted 2 (usage): %s", rc, e);
	h_assert(strstr(e, "--xbzrle=SIZE wants a cache size from 4K to 1T"), "stderr: %s", e);
	free(e);
}

/* ---- whole migrations with deltas (need KVM) ------------------------------- */

/*
 * A guest rewriting a 32 MiB working set with counters (each rewrite
 * changes a byte or two of every word: a delta of about half a page).
 * A downtime limit nothing meets and switchover "force" make pre-copy run
 * until the dirty set stops shrinking (rounds 1 and 2 at least), so pages
 * cached in round 1 come back as deltas in round 2 and the final round;
 * max-rounds bounds it.  A cap on the rate keeps the migration active
 * long enough to see a capability change refused, then is lifted.
 */
static void migrate_with_deltas(const char *compression)
{
	struct h_vm *src = h_boot_verifying("src",
		"workload=dirty wss=32M rate=0 pattern=seq verify=1 verify_ms=500",
		"256M", "1");
	h_wait_progress(src, 1, 20);
	struct h_vm *dst = h_incoming("dst", H_CONTROL | H_CONSOLE, "--paused", NULL);
	json_decref(h_qmp_ok(src, "{\"execute\":\"migrate-set-capabilities\",\"arguments\":"
			     "{\"capabilities\":[{\"capability\":\"xbzrle\",\"state\":true}]}}"));
	h_assert(xbzrle_state(src) == 1, "xbzrle does not read on at the source");
	json_decref(h_qmp_ok(src, "{\"execute\":\"migrate-set-parameters\",\"arguments\":"
			     "{\"multifd-compression\":\"%s\",\"xbzrle-cache-size\":67108864,"
			     "\"downtime-limit\":1,\"switchover\":\"force\",\"max-rounds\":6,"
			     "\"max-bandwidth\":20000000}}", compression));
	json_decref(h_qmp_ok(src, "{\"execute\":\"migrate\",\"arguments\":"
			     "{\"uri\":\"%s\",\"x-keep-source\":true}}", h_mig_uri(dst->port)));

	/* Round 0 (the guest's 32 MiB and more) at 20 MB/s takes seconds:
	 * still active.  xbzrle with multifd-channels at its default: one
	 * stream (the deltas need it), or no delta would go below. */
	json_t *e = h_qmp_err(src, "{\"execute\":\"migrate-set-capabilities\",\"arguments\":"
			      "{\"capabilities\":[{\"capability\":\"xbzrle\",\"state\":false}]}}");
	h_assert(strstr(h_str(e, "desc"), "There's a migration process in progress"),
		 "a change during the migration: %s", h_str(e, "desc"));
	json_decref(e);
	h_assert(xbzrle_state(src) == 1, "the refused change took effect");
	json_decref(h_qmp_ok(src, "{\"execute\":\"migrate-set-parameters\",\"arguments\":"
			     "{\"max-bandwidth\":0}}"));

	json_t *q = h_wait_migration(src, 120, NULL);
	char *s = h_dump(q);
	h_assert(!strcmp(h_str(q, "status"), "completed"),
		 "the migration (xbzrle, compression %s) did not complete: %s", compression, s);
	/* The source sent deltas, and says so in QEMU's shape. */
	json_t *x = json_object_get(q, "xbzrle-cache");
	h_assert(json_is_object(x), "no xbzrle-cache in query-migrate: %s", s);
	h_assert(h_int(x, "cache-size") == 64LL << 20 && h_int(x, "pages") > 1000 &&
		 h_int(x, "bytes") > 0 && h_int(x, "bytes") < h_int(x, "pages") * 4096 &&
		 h_int(x, "cache-miss") > 0,
		 "no deltas, or odd figures: %s", s);
	h_assert(json_is_true(json_object_get(json_object_get(json_object_get(q, "ferry"),
							      "xbzrle"), "agreed")),
		 "the destination did not agree to xbzrle: %s", s);

	/* The destination applied as many. */
	h_wait_control(dst, 30);
	json_t *dq = h_query_migrate(dst);
	char *ds = h_dump(dq);
	json_t *dx = json_object_get(json_object_get(dq, "ferry"), "xbzrle");
	h_assert(json_is_true(json_object_get(dx, "agreed")) &&
		 h_int(dx, "pages") == h_int(x, "pages") &&
		 h_int(dx, "bytes") == h_int(x, "bytes"),
		 "the destination reports other figures: %s against the source's %s", ds, s);
	free(ds);
	json_decref(dq);
	free(s);
	json_decref(q);

	/* Memory, byte for byte (the guest's own checks travel in it). */
	h_expect_same_memory(src, dst);
	h_expect_verifies(dst);
	h_quit_ok(dst);
}

Test(xbzrle, migration_same_memory)
{
	migrate_with_deltas("none");
}

Test(xbzrle, with_zstd_same_memory)
{
	migrate_with_deltas("zstd");
}

Test(xbzrle, with_lz4_same_memory)
{
	migrate_with_deltas("lz4");
}
