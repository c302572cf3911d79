/*
 * Page compression ("multifd-compression") between real ferry processes.
 *
 * Negotiation is tested against a real `ferry run --incoming` fed a
 * crafted HELLO: it needs no guest, so it runs everywhere.  The one
 * end-to-end migration needs KVM (skipped without it): a busy verifying
 * guest migrates compressed, both sides report the same compression and
 * bytes, and the memory digests of the paused source and destination
 * match.
 */
#include "harness/harness.h"
#include "harness/wire.h"

#include <string.h>

TestSuite(compression, H_FIXTURES, .timeout = 120);

/* A version 2 HELLO describing a small VM and offering @caps (JSON). */
static void put_hello(struct w_buf *b, const char *caps)
{
	char hello[512];
	int n = snprintf(hello, sizeof(hello),
			 "{\"memory\": 16777216, \"vcpus\": 1, \"page-size\": 4096, "
			 "\"capabilities\": %s}", caps);
	h_assert(n > 0 && (size_t)n < sizeof(hello), "HELLO too long");
	w_put_preamble(b, W_VERSION);
	w_put_record(b, W_REC_HELLO, hello, (uint32_t)n);
}

/* Send @caps in a HELLO; return the REFUSE reason (malloc'd). */
static char *refused_for(struct h_vm *dst, const char *caps)
{
	struct w_buf b = { 0 };
	put_hello(&b, caps);
	int fd = w_connect(dst->port);
	w_send_all(fd, b.p, b.len);
	w_free(&b);
	uint32_t type, len;
	char *why = NULL;
	h_assert(w_recv_record(fd, &type, &why, &len, 20),
		 "no answer to HELLO on the return path");
	h_assert(type == W_REC_REFUSE, "wanted REFUSE, got record 0x%x '%s'", type,
		 why);
	close(fd);
	return why;
}

/* The peer was dropped and the destination waits on, untouched. */
static void expect_still_waiting(struct h_vm *dst)
{
	h_assert(h_wait_stderr(dst, "dropped, still waiting for the source", 30),
		 "the peer was not dropped");
	h_assert(!h_vm_exited(dst), "the destination ended");
	json_t *q = h_query_migrate(dst);
	char *s = h_dump(q);
	h_assert(!strcmp(h_str(q, "status"), "setup"),
		 "the destination is not waiting any more: %s", s);
	json_t *c = json_object_get(json_object_get(q, "ferry"), "compression");
	h_assert(!strcmp(h_str(c, "method"), "none") && h_int(c, "bytes-before") == 0,
		 "a refused peer left its compression behind: %s", s);
	free(s);
	json_decref(q);
}

/* A source that insists on a compression this ferry lacks is refused in
 * the handshake, before any VM is built, and told which. */
Test(compression, unknown_mandatory_compression_is_refused)
{
	struct h_vm *dst = h_incoming("dst", H_CONTROL, NULL);
	char *why = refused_for(dst,
		"{\"compression\": {\"value\": \"brotli\", \"mandatory\": true}}");
	h_assert(strstr(why, "capability 'compression' = \"brotli\" is mandatory for "
			"the source and not supported here"),
		 "the REFUSE does not name the compression: '%s'", why);
	free(why);
	expect_still_waiting(dst);
	char *e = h_vm_stderr(dst);
	h_assert(strstr(e, "brotli"), "stderr does not name it: %s", e);
	/* Refused before a VM: not even /dev/kvm was opened for it. */
	h_assert(!strstr(e, "/dev/kvm"), "it got as far as KVM: %s", e);
	free(e);
	h_quit_ok(dst);
}

/* zstd and lz4 pass the capability check: whatever refuses this HELLO
 * (here the missing /dev/kvm, elsewhere the VM it describes) is not the
 * compression. */
Test(compression, known_compressions_pass_negotiation)
{
	static const char *const offers[] = {
		"{\"compression\": {\"value\": \"zstd\", \"mandatory\": true}}",
		"{\"compression\": {\"value\": \"lz4\", \"mandatory\": true}}",
	};
	struct h_vm *dst = h_incoming("dst", H_CONTROL, NULL);
	for (size_t i = 0; i < 2; i++) {
		char *why = refused_for(dst, offers[i]);
		h_assert(!strstr(why, "compression") && !strstr(why, "capabilit"),
			 "refused for its compression: '%s' (offer %s)", why, offers[i]);
		free(why);
	}
	h_assert(!h_vm_exited(dst), "the destination ended");
	h_quit_ok(dst);
}

/* A destination reports the defaults a migration from it would use. */
Test(compression, destination_parameters_default_to_none)
{
	struct h_vm *dst = h_incoming("dst", H_CONTROL, NULL);
	json_t *p = h_qmp_ok(dst, "{\"execute\":\"query-migrate-parameters\"}");
	char *s = h_dump(p);
	h_assert(!strcmp(h_str(p, "multifd-compression"), "none") &&
		 h_int(p, "multifd-zstd-level") == 1,
		 "defaults: %s", s);
	free(s);
	json_decref(p);
	h_quit_ok(dst);
}

/* `ferry migrate --compression` checks the name before it connects. */
Test(compression, cli_refuses_unknown_compression)
{
	struct h_vm *cli = h_spawn("cli", 0, "migrate", "--control", h_path("none.sock"),
				   "--to", "tcp:127.0.0.1:1", "--compression", "zlib",
				   NULL);
	int rc = h_vm_wait(cli, 20);
	char *e = h_vm_stderr(cli);
	h_assert(rc == 2, "ferry migrate exited %d, wanted 2 (usage): %s", rc, e);
	h_assert(strstr(e, "--compression wants none, zstd or lz4, not 'zlib'"),
		 "stderr: %s", e);
	free(e);
}

/* ---- a whole compressed migration (needs KVM) ------------------------------ */

static void migrate_compressed(const char *method)
{
	struct h_vm *src = h_boot_verifying("src",
		"workload=dirty wss=32M rate=0 pattern=seq verify=1 verify_ms=500",
		"256M", "1");
	h_wait_progress(src, 1, 20);
	struct h_vm *dst = h_incoming("dst", H_CONTROL | H_CONSOLE, "--paused", NULL);
	json_decref(h_qmp_ok(src, "{\"execute\":\"migrate-set-parameters\",\"arguments\":"
			     "{\"multifd-compression\":\"%s\",\"multifd-zstd-level\":3}}",
			     method));
	json_t *p = h_qmp_ok(src, "{\"execute\":\"query-migrate-parameters\"}");
	h_assert(!strcmp(h_str(p, "multifd-compression"), method),
		 "query-migrate-parameters does not show %s", method);
	json_decref(p);
	json_t *q = h_migrate_kept(src, dst, 90);
	char *s = h_dump(q);

	/* The source says what it sent: the method, and fewer bytes than
	 * the pages (the guest's counter fill compresses). */
	json_t *sc = json_object_get(json_object_get(q, "ferry"), "compression");
	h_assert(!strcmp(h_str(sc, "method"), method), "source: %s", s);
	h_assert(h_int(sc, "bytes-before") > 32 << 20 &&
		 h_int(sc, "bytes-after") < h_int(sc, "bytes-before") &&
		 h_int(sc, "compressed-batches") > 0,
		 "source: nothing was compressed: %s", s);

	/* The destination decoded the same records. */
	h_wait_control(dst, 30);
	json_t *dq = h_query_migrate(dst);
	char *ds = h_dump(dq);
	json_t *dc = json_object_get(json_object_get(dq, "ferry"), "compression");
	h_assert(!strcmp(h_str(dc, "method"), method) &&
		 h_int(dc, "bytes-before") == h_int(sc, "bytes-before") &&
		 h_int(dc, "bytes-after") == h_int(sc, "bytes-after") &&
		 h_int(dc, "compressed-batches") == h_int(sc, "compressed-batches") &&
		 h_int(dc, "raw-batches") == h_int(sc, "raw-batches"),
		 "the destination reports other figures: %s against the source's %s",
		 ds, s);
	free(ds);
	json_decref(dq);
	free(s);
	json_decref(q);

	/* Memory, byte for byte (the guest's own checks travel in it). */
	h_expect_same_memory(src, dst);
	h_expect_verifies(dst);
	h_quit_ok(dst);
}

Test(compression, zstd_migration_same_memory)
{
	migrate_compressed("zstd");
}

Test(compression, lz4_migration_same_memory)
{
	migrate_compressed("lz4");
}
