/*
 * Parallel page channels ("multifd-channels") and a destination prepared
 * in advance (--prealloc) between real ferry processes.
 *
 * Negotiation and the parameters are tested against real processes fed
 * crafted HELLOs and commands: no guest needed, they run everywhere.  The
 * migrations need KVM (skipped without it): the dirtying verifying guest
 * migrates over 1, 2 and 4 channels, uncompressed and with lz4, each
 * channel carries pages, and the memory digests of the paused source and
 * the --paused destination match.  (The engine itself, guest-less, is
 * tests/unit/test_multifd.c.)
 */
#include "harness/harness.h"
#include "harness/wire.h"

#include <stdio.h>
#include <string.h>

TestSuite(multifd, H_FIXTURES, .timeout = 120);

/* Send a HELLO offering @caps; return the REFUSE reason (malloc'd). */
static char *refused_for(struct h_vm *dst, const char *caps)
{
	char hello[512];
	int n = snprintf(hello, sizeof(hello),
			 "{\"memory\": 16777216, \"vcpus\": 1, \"page-size\": 4096, "
			 "\"capabilities\": %s}", caps);
	h_assert(n > 0 && (size_t)n < sizeof(hello), "HELLO too long");
	struct w_buf b = { 0 };
	w_put_preamble(&b, W_VERSION);
	w_put_record(&b, W_REC_HELLO, hello, (uint32_t)n);
	int fd = w_connect(dst->port);
	w_send_all(fd, b.p, b.len);
	w_free(&b);
	uint32_t type, len;
	char *why = NULL;
	h_assert(w_recv_record(fd, &type, &why, &len, 20),
		 "no answer to HELLO on the return path");
	h_assert(type == W_REC_REFUSE, "wanted REFUSE, got record 0x%x '%s'", type, why);
	close(fd);
	return why;
}

/* 16 channels pass the capability check (what refuses this HELLO here is
 * the missing /dev/kvm, elsewhere the VM it describes); 17 insisted on
 * are refused, named. */
Test(multifd, channels_negotiation)
{
	struct h_vm *dst = h_incoming("dst", H_CONTROL, NULL);
	char *why = refused_for(dst, "{\"channels\": {\"value\": 16, \"mandatory\": true}}");
	h_assert(!strstr(why, "channels") && !strstr(why, "capabilit"),
		 "refused for its channels: '%s'", why);
	free(why);
	why = refused_for(dst, "{\"channels\": {\"value\": 17, \"mandatory\": true}}");
	h_assert(strstr(why, "capability 'channels' = 17 is mandatory for the source "
			"and not supported here"), "REFUSE: '%s'", why);
	free(why);
	h_assert(!h_vm_exited(dst), "the destination ended");
	h_quit_ok(dst);
}

/* QEMU's parameter name, default two channels, and the CLI's check. */
Test(multifd, channels_parameter_and_cli)
{
	struct h_vm *dst = h_incoming("dst", H_CONTROL, NULL);
	json_t *p = h_qmp_ok(dst, "{\"execute\":\"query-migrate-parameters\"}");
	char *s = h_dump(p);
	h_assert(h_int(p, "multifd-channels") == 2, "default: %s", s);
	free(s);
	json_decref(p);
	/* a waiting destination says it takes its pages on one connection */
	json_t *q = h_query_migrate(dst);
	s = h_dump(q);
	json_t *ch = json_object_get(json_object_get(q, "ferry"), "channels");
	h_assert(ch && h_int(ch, "count") == 1, "ferry.channels: %s", s);
	free(s);
	json_decref(q);
	h_quit_ok(dst);

	struct h_vm *cli = h_spawn("cli", 0, "migrate", "--control", h_path("none.sock"),
				   "--to", "tcp:127.0.0.1:1", "--channels", "0", NULL);
	int rc = h_vm_wait(cli, 20);
	char *e = h_vm_stderr(cli);
	h_assert(rc == 2, "ferry migrate exited %d, wanted 2 (usage): %s", rc, e);
	h_assert(strstr(e, "--channels wants a number of connections from 1 to 16"),
		 "stderr: %s", e);
	free(e);
}

/* ---- whole migrations (need KVM) -------------------------------------------- */

/* n channels, or 0: multifd-channels left at its default (two). */
static void migrate_channels(unsigned n, const char *method, bool prealloc)
{
	bool dflt = !n;
	if (dflt)
		n = 2;
	struct h_vm *src = h_boot_verifying("src",
		"workload=dirty wss=32M rate=0 pattern=seq verify=1 verify_ms=500",
		"256M", "1");
	h_wait_progress(src, 1, 20);
	struct h_vm *dst = prealloc
		? h_incoming("dst", H_CONTROL | H_CONSOLE, "--paused", "--memory", "256M",
			     "--prealloc", NULL)
		: h_incoming("dst", H_CONTROL | H_CONSOLE, "--paused", NULL);
	if (!dflt)
		json_decref(h_qmp_ok(src, "{\"execute\":\"migrate-set-parameters\","
				     "\"arguments\":{\"multifd-channels\":%u,"
				     "\"multifd-compression\":\"%s\"}}", n, method));
	json_t *q = h_migrate_kept(src, dst, 90);
	char *s = h_dump(q);

	/* Each channel carried pages; together all of them. */
	json_t *ch = json_object_get(json_object_get(q, "ferry"), "channels");
	h_assert(h_int(ch, "count") == (json_int_t)n, "source channels: %s", s);
	json_t *per = json_object_get(ch, "per-channel");
	h_assert(json_array_size(per) == (n > 1 ? n : 0), "per-channel: %s", s);
	for (size_t i = 0; i < json_array_size(per); i++)
		h_assert(h_int(json_array_get(per, i), "pages") > 0 &&
			 h_int(json_array_get(per, i), "bytes") > 0,
			 "channel %zu carried nothing: %s", i, s);

	h_wait_control(dst, 30);
	json_t *dq = h_query_migrate(dst);
	char *ds = h_dump(dq);
	json_t *dch = json_object_get(json_object_get(dq, "ferry"), "channels");
	h_assert(h_int(dch, "count") == (json_int_t)n, "destination channels: %s", ds);
	free(ds);
	json_decref(dq);
	free(s);
	json_decref(q);

	/* The source listed round 0's memory (too little here to fault in
	 * ahead), unless the destination had it all already and declined. */
	h_assert(h_file_contains(dst->err_path, "round 0 brings") == !prealloc,
		 "the destination %s round 0's list (prealloc %d)",
		 prealloc ? "took" : "did not take", prealloc);
	h_expect_status(src, "postmigrate");
	/* Digests of the paused source and the --paused destination; then
	 * the source quits and the destination is told cont. */
	h_expect_same_memory(src, dst);
	h_expect_verifies(dst);
	h_quit_ok(dst);
}

Test(multifd, default_two_channels_same_memory) { migrate_channels(0, "none", false); }
Test(multifd, one_channel_same_memory) { migrate_channels(1, "none", false); }
Test(multifd, two_channels_same_memory) { migrate_channels(2, "none", false); }
Test(multifd, four_channels_same_memory) { migrate_channels(4, "none", false); }
Test(multifd, one_channel_lz4_same_memory) { migrate_channels(1, "lz4", false); }
Test(multifd, two_channels_lz4_same_memory) { migrate_channels(2, "lz4", false); }
Test(multifd, four_channels_lz4_same_memory) { migrate_channels(4, "lz4", false); }
Test(multifd, four_channels_into_prealloc_same_memory) { migrate_channels(4, "none", true); }

/*
 * Fault-ahead lists only what round 0 brings: of a 1 GiB guest that
 * wrote 320 MiB, the destination faults in part of that ahead of the
 * stream and holds little more than it when it ends, while its memory
 * matches the source's.
 */
Test(multifd, fault_ahead_takes_only_what_round0_brings)
{
	struct h_vm *src = h_boot_verifying("src",
		"workload=dirty wss=320M fill=random rate=1 verify=1 verify_ms=500",
		"1G", "1");
	h_wait_progress(src, 1, 20);
	struct h_vm *dst = h_incoming("dst", H_CONTROL | H_CONSOLE, "--paused", NULL);
	json_decref(h_migrate_kept(src, dst, 90));
	h_wait_control(dst, 30);

	char *e = h_vm_stderr(dst);
	const char *line = strstr(e, "ahead of the stream");
	double done = -1, listed = -1;
	if (line) {
		while (line > e && line[-1] != '\n')
			line--;
		const char *at = strstr(line, "faulted in ");
		if (!at || sscanf(at, "faulted in %lf of the %lf MiB", &done, &listed) != 2)
			done = listed = -1;
	}
	h_assert(listed >= 320 && listed < 512 && done >= 0 && done <= listed,
		 "wanted 320-512 MiB listed for round 0 (and the thread's account) of "
		 "a guest that wrote 320 MiB in 1 GiB: %s", e);
	free(e);
	double rss = h_rss_mib(dst);
	h_assert(rss < 640, "the destination holds %.0f MiB of a 1 GiB guest that "
		 "wrote 320 MiB", rss);
	h_expect_same_memory(src, dst);
	h_expect_verifies(dst);
	h_quit_ok(dst);
}

/*
 * A round on the page channels outlasts the destination's idle timeout
 * (4 MiB/s against a 32 MiB working set: round 0 takes ~8 s; the
 * destination gives up after 2 s of silence).  The main connection
 * carries only ROUND_END meanwhile: while the channels deliver, its
 * quiet is no silence, and both sides are still migrating after 5 s.
 */
Test(multifd, long_round_outlasts_idle_timeout)
{
	struct h_vm *src = h_boot("src", H_CONTROL,
				  "workload=dirty wss=32M rate=0 verify=1 verify_ms=500",
				  "--memory", "256M", NULL);
	h_wait_ready(src, 60);
	struct h_vm *dst = h_incoming("dst", H_CONTROL, "--idle-timeout", "2", NULL);
	json_decref(h_qmp_ok(src, "{\"execute\":\"migrate-set-parameters\",\"arguments\":"
			     "{\"multifd-channels\":2}}"));
	json_decref(h_qmp_ok(src, "{\"execute\":\"migrate\",\"arguments\":"
			     "{\"uri\":\"%s\",\"max-bandwidth\":4194304}}",
			     h_mig_uri(dst->port)));
	sleep(5);
	json_t *dq = h_query_migrate(dst);
	char *ds = h_dump(dq);
	h_assert(!strcmp(h_str(dq, "status"), "active"), "destination after 5 s: %s", ds);
	free(ds);
	json_decref(dq);
	json_t *q = h_query_migrate(src);
	char *s = h_dump(q);
	h_assert(!strcmp(h_str(q, "status"), "active"), "source after 5 s: %s", s);
	free(s);
	json_decref(q);
	/* Done: the destination goes, the source keeps its guest. */
	h_quit_ok(dst);
	q = h_wait_migration(src, 30, NULL);
	s = h_dump(q);
	h_assert(!strcmp(h_str(q, "status"), "failed"), "source: %s", s);
	free(s);
	json_decref(q);
	char *st = h_status(src);
	h_assert(!strcmp(st, "running"), "the source is '%s', not running", st);
	free(st);
	h_quit_ok(src);
}
