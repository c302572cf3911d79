/*
 * The soak (issue "Live migration V"): migrations never leave anything
 * behind.
 *
 * Guest-less (runs everywhere): a waiting destination dropping dozens of
 * bad peers of every kind ends with exactly the file descriptors and
 * threads it had, and about the memory.
 *
 * With KVM: a busy verifying guest migrated hop after hop (SOAK_HOPS, 10
 * by default; bench/soak.sh runs 100) through the modes this build has,
 * plain and over TLS (X.509 and PSK) interleaved, each hop proven equal
 * from outside (digests of the paused source and the --paused
 * destination), its encryption (or its absence) confirmed by both ends'
 * query-migrate, the guest finding no bad page, every arrived process
 * holding no more fds, threads or memory than the first of its kind, and
 * every source, once its guest left, no more than when it arrived.
 * Each hop's figures go to stderr as a "soak:" line (bench/soak.sh
 * collects them).
 */
#include "harness/harness.h"
#include "harness/wire.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

TestSuite(soak, H_FIXTURES, .timeout = 900);

/* What a process holds: open fds, threads, resident KiB. */
struct held {
	long fds, threads, rss_kib;
};

static long count_dir(pid_t pid, const char *sub)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/%s", (int)pid, sub);
	DIR *d = opendir(path);
	if (!d)
		return -1;
	long n = 0;
	struct dirent *e;
	while ((e = readdir(d)))
		if (e->d_name[0] != '.')
			n++;
	closedir(d);
	return n;
}

static struct held held_by(struct h_vm *vm)
{
	struct held h = { count_dir(vm->pid, "fd"), count_dir(vm->pid, "task"),
			  (long)(h_rss_mib(vm) * 1024) };
	h_assert(h.fds > 0 && h.threads > 0 && h.rss_kib > 0,
		 "cannot read /proc of %s (pid %d)", vm->name, (int)vm->pid);
	return h;
}

/* What a process keeps: the least it holds over a second.  A connection
 * still closing or a helper thread still exiting right after a migration
 * is gone within that; a leak is held for good and still counts. */
static struct held held_settled(struct h_vm *vm)
{
	struct held m = held_by(vm);
	for (int i = 0; i < 10; i++) {
		usleep(100 * 1000);
		struct held h = held_by(vm);
		if (h.fds < m.fds)
			m.fds = h.fds;
		if (h.threads < m.threads)
			m.threads = h.threads;
		m.rss_kib = h.rss_kib;
	}
	return m;
}

/* Built with AddressSanitizer?  Its quarantine holds freed memory back,
 * so resident memory says nothing there (LeakSanitizer checks leaks in
 * that build instead); fds and threads still count. */
static bool sanitized(struct h_vm *vm)
{
	char path[64], line[512];
	snprintf(path, sizeof(path), "/proc/%d/maps", (int)vm->pid);
	FILE *f = fopen(path, "r");
	bool asan = false;
	while (f && !asan && fgets(line, sizeof(line), f))
		asan = strstr(line, "libasan") != NULL;
	if (f)
		fclose(f);
	return asan;
}

static long long dropped_peers(struct h_vm *dst)
{
	json_t *q = h_query_migrate(dst);
	long long n = json_integer_value(json_object_get(json_object_get(q, "ferry"),
							 "dropped-peers"));
	json_decref(q);
	return n;
}

/* One bad peer of kind @k; returns once the destination dropped it (or
 * the peer gave up itself). */
static void bad_peer(struct h_vm *dst, unsigned k)
{
	struct w_buf b = { 0 };
	int fd = w_connect(dst->port);

	switch (k % 5) {
	case 0: /* not a migration at all */
		w_put(&b, "GET / HTTP/1.1\r\n\r\n", 18);
		break;
	case 1: /* a preamble cut short, then nothing: the deadline drops it */
		w_put(&b, "FERRYMIG", 8);
		break;
	case 2: /* a version no ferry speaks */
		w_put_preamble(&b, 0x7fffffff);
		break;
	case 3: { /* a HELLO insisting on a capability nobody has */
		static const char hello[] =
			"{\"memory\": 16777216, \"vcpus\": 1, \"page-size\": 4096, "
			"\"capabilities\": {\"x-no-such-thing\": {\"value\": true, "
			"\"mandatory\": true}}}";
		w_put_preamble(&b, W_VERSION);
		w_put_record(&b, W_REC_HELLO, hello, sizeof(hello) - 1);
		break;
	}
	case 4: /* connects and hangs up */
		break;
	}
	if (b.len)
		w_send_all(fd, b.p, b.len);
	w_free(&b);
	if (k % 5 == 4) {
		close(fd);
		return;
	}
	h_assert(w_wait_closed(fd, 10), "bad peer %u (kind %u) was never dropped", k,
		 k % 5);
	close(fd);
}

/* Equal within @settle_s, or the last reading. */
static struct held settled(struct h_vm *vm, const struct held *want, double settle_s)
{
	struct held h;
	h_wait_for(({ h = held_by(vm);
		      h.fds == want->fds && h.threads == want->threads; }), settle_s);
	return h;
}

Test(soak, bad_peers_leave_nothing_behind_at_the_destination)
{
	struct h_vm *dst = h_incoming("dst", H_CONTROL, "--handshake-timeout", "0.3",
				      NULL);
	/* A first drop of each kind may allocate once (logs, TLS-free
	 * buffers, the peer table): that is the baseline, not a leak. */
	for (unsigned k = 0; k < 5; k++)
		bad_peer(dst, k);
	h_assert(h_wait_for(dropped_peers(dst) >= 4, 10), "warm-up drops not counted");
	h_sleep_ms(300);
	struct held before = held_by(dst);

	const unsigned n = 60;
	long long dropped0 = dropped_peers(dst);
	for (unsigned k = 0; k < n; k++)
		bad_peer(dst, k);
	/* Kind 4 hangs up before saying anything: it may or may not count. */
	h_assert(h_wait_for(dropped_peers(dst) >= dropped0 + n * 4 / 5, 20),
		 "dropped-peers %lld after %u bad peers (from %lld)",
		 dropped_peers(dst), n, dropped0);
	struct held after = settled(dst, &before, 10);
	h_assert(after.fds == before.fds, "fds %ld -> %ld after %u bad peers",
		 before.fds, after.fds, n);
	h_assert(after.threads == before.threads,
		 "threads %ld -> %ld after %u bad peers", before.threads,
		 after.threads, n);
	h_assert(sanitized(dst) || after.rss_kib <= before.rss_kib + 4096,
		 "resident memory %ld -> %ld KiB after %u bad peers",
		 before.rss_kib, after.rss_kib, n);
	fprintf(stderr, "soak: destination after %u bad peers: fds %ld -> %ld, "
		"threads %ld -> %ld, rss %ld -> %ld KiB\n", n, before.fds, after.fds,
		before.threads, after.threads, before.rss_kib, after.rss_kib);

	/* And it still waits for the real source. */
	json_t *q = h_query_migrate(dst);
	char *s = h_dump(q);
	h_assert(!strcmp(h_str(q, "status"), "setup"), "not waiting: %s", s);
	free(s);
	json_decref(q);
	json_decref(h_qmp_ok(dst, "{\"execute\":\"quit\"}"));
	h_assert(h_vm_wait(dst, 20) == 0, "the destination did not quit cleanly");
}

/* ---- hop after hop (needs KVM) --------------------------------------------- */

/* The modes a hop cycles through: `migrate` members. */
static const char *const modes[] = {
	"",
	",\"mode\":\"postcopy\"",
	",\"multifd-compression\":\"lz4\"",
	",\"mode\":\"hybrid\",\"precopy-rounds\":2",
	",\"multifd-compression\":\"zstd\",\"xbzrle\":true",
	",\"mode\":\"postcopy\",\"multifd-compression\":\"lz4\"",
	",\"auto-converge\":true",
	",\"mode\":\"hybrid\",\"xbzrle\":true",
	",\"multifd-channels\":2",
	",\"multifd-channels\":4,\"multifd-compression\":\"lz4\"",
	",\"mode\":\"hybrid\",\"multifd-channels\":2,\"precopy-rounds\":2",
};

#define NMODES (sizeof(modes) / sizeof(modes[0]))

/*
 * How each hop travels, cycled beside the modes (10 and 11 are coprime:
 * over 110 hops every mode meets every slot).  A destination is started
 * with its hop's credentials, which its process keeps when it leaves as
 * the next hop's source; when the next hop's differ, `migrate` names them
 * ("tls-creds", "tls-psk", or "tls-creds": "" for plain).  So the first
 * ten hops cross plain -> X.509 -> PSK -> plain -> PSK -> X.509 -> plain
 * (each switch one way and the other) and also make plain, X.509 and PSK
 * hops on the process's own credentials.
 */
enum sec { SEC_PLAIN, SEC_X509, SEC_PSK, NSEC };

static const enum sec secs[] = {
	SEC_PLAIN, SEC_X509, SEC_X509, SEC_PSK, SEC_PSK,
	SEC_PLAIN, SEC_PSK, SEC_X509, SEC_PLAIN, SEC_PLAIN,
};

#define NSECS (sizeof(secs) / sizeof(secs[0]))

static const char *const sec_names[NSEC] = { "plain", "x509", "psk" };

/* The `ferry run` option for @k's credentials (NULL: none). */
static const char *sec_opt(enum sec k)
{
	return k == SEC_X509 ? "--tls-creds" : k == SEC_PSK ? "--tls-psk" : NULL;
}

/*
 * query-migrate's ferry.tls of @vm (@q) says this hop went as @k: TLS 1.3
 * with @k's authentication and an AEAD cipher, or not encrypted at all.
 * Returns the cipher ("" for plain) for the soak line.
 */
static const char *expect_sec(struct h_vm *vm, json_t *q, enum sec k, unsigned hop)
{
	json_t *tls = json_object_get(json_object_get(q, "ferry"), "tls");
	char *s = h_dump(q);
	if (k == SEC_PLAIN)
		h_assert(json_is_false(json_object_get(tls, "enabled")),
			 "hop %u: %s reports an encrypted migration, not a plain one: %s",
			 hop, vm->name, s);
	else
		h_assert(json_is_true(json_object_get(tls, "enabled")) &&
			 !strcmp(h_str(tls, "version"), "TLSv1.3") &&
			 !strcmp(h_str(tls, "auth"), sec_names[k]) &&
			 strstr(h_str(tls, "cipher"), "TLS_"),
			 "hop %u: %s does not report TLS 1.3 with %s: %s", hop,
			 vm->name, sec_names[k], s);
	free(s);
	return k == SEC_PLAIN ? "" : h_str(tls, "cipher");
}

static int cmp_ll(const void *a, const void *b)
{
	long long x = *(const long long *)a, y = *(const long long *)b;
	return (x > y) - (x < y);
}

static unsigned hops(void)
{
	const char *s = getenv("SOAK_HOPS");
	long n = s ? strtol(s, NULL, 10) : 10;
	return n >= 1 && n <= 200 ? (unsigned)n : 10;
}

Test(soak, hop_after_hop_nothing_lost_nothing_kept)
{
	const unsigned n = hops();
	const char *creds[NSEC] = { NULL, w_make_creds("creds", false),
				    w_make_creds("keys.psk", true) };
	char name[32], tls_arg[1024], line[512];
	struct h_vm *src = h_boot_verifying("hop0",
		"workload=dirty wss=32M rate=0 verify=1 verify_ms=500", "256M", "2");
	h_wait_progress(src, 1, 20);
	enum sec src_sec = SEC_PLAIN;          /* what hop0 was started with */
	struct held arrived = held_settled(src); /* the source's, when it came */
	/* The first arrived process, and the first of each kind: fds and
	 * threads must not depend on how a process came (an eventfd only
	 * post-copy over TLS left open was found so), resident memory does
	 * (OpenSSL's contexts and tables, about 4 MiB, in a process started
	 * with credentials): it is compared with its own kind.  The same
	 * process before and after it sent its guest on is compared
	 * directly. */
	struct held first_any = { 0 }, first[NSEC];
	bool have[NSEC] = { false };
	unsigned count[NSEC] = { 0 }, switched = 0;
	/* For the summary (docs/soak.md): every downtime, and the arrived
	 * processes' last and largest holdings per kind. */
	long long downtimes[200];
	struct held last[NSEC], most[NSEC];

	for (unsigned i = 1; i <= n; i++) {
		const char *mode = modes[(i - 1) % NMODES];
		enum sec k = secs[(i - 1) % NSECS];
		snprintf(name, sizeof(name), "hop%u", i);
		/* For plain, the option is NULL and ends the list early. */
		struct h_vm *dst = h_incoming(name, H_CONTROL | H_CONSOLE, "--paused",
					      sec_opt(k), creds[k], NULL);
		/* The source's own credentials when they are this hop's, else
		 * this migration's. */
		tls_arg[0] = '\0';
		if (k != src_sec) {
			snprintf(tls_arg, sizeof(tls_arg), ",\"%s\":\"%s\"",
				 k == SEC_PSK ? "tls-psk" : "tls-creds",
				 k == SEC_PLAIN ? "" : creds[k]);
			switched++;
		}
		double t0 = h_now();
		/* "force": a hop must end whatever this host's speed.  The
		 * guest rewrites all of its set each round; under the
		 * sanitizers, TLS, zstd and deltas on a loaded host its rest
		 * can stay above the 300 ms limit, and the default policy
		 * then waits for a fit that never comes (seen in CI, with
		 * binaries old and new).  Leaks and lost pages are what this
		 * test is about, not convergence. */
		json_decref(h_qmp_ok(src, "{\"execute\":\"migrate\",\"arguments\":"
				     "{\"uri\":\"%s\",\"x-keep-source\":true,"
				     "\"switchover\":\"force\"%s%s}}",
				     h_mig_uri(dst->port), mode, tls_arg));
		json_t *q = h_wait_migration(src, 120, NULL);
		double took = h_now() - t0;
		char *s = h_dump(q);
		h_assert(!strcmp(h_str(q, "status"), "completed"),
			 "hop %u (%s, %s) did not complete: %s", i, mode, sec_names[k], s);
		free(s);
		json_int_t downtime = json_integer_value(json_object_get(q, "downtime"));
		char cipher[64];
		snprintf(cipher, sizeof(cipher), "%s", expect_sec(src, q, k, i));
		json_decref(q);

		/* The source, its guest gone on (paused, kept for the
		 * digest): whatever this migration opened is closed again
		 * (its own credentials included: LeakSanitizer checks them
		 * in the sanitizer build when it quits). */
		struct held left;
		h_wait_for(({ left = held_by(src); left.fds <= arrived.fds &&
			      left.threads <= arrived.threads; }), 10);
		h_assert(left.fds <= arrived.fds && left.threads <= arrived.threads,
			 "hop %u: the source holds fds %ld threads %ld after sending, "
			 "%ld and %ld when it arrived", i, left.fds, left.threads,
			 arrived.fds, arrived.threads);

		h_expect_same_memory(src, dst);
		q = h_query_migrate(dst);
		expect_sec(dst, q, k, i);
		json_decref(q);
		h_wait_progress(dst, 2, 30);
		h_assert(h_guest_u64(dst, "errors") == 0, "hop %u: bad pages", i);

		struct held h = held_settled(dst);
		if (i == 1)
			first_any = h;
		if (!have[k]) {
			first[k] = most[k] = h;
			have[k] = true;
		}
		last[k] = h;
		most[k].fds = h.fds > most[k].fds ? h.fds : most[k].fds;
		most[k].threads = h.threads > most[k].threads ? h.threads : most[k].threads;
		most[k].rss_kib = h.rss_kib > most[k].rss_kib ? h.rss_kib : most[k].rss_kib;
		downtimes[i - 1] = (long long)downtime;
		count[k]++;
		snprintf(line, sizeof(line), "%s%s%s%s", sec_names[k],
			 *cipher ? " " : "", cipher,
			 k != src_sec ? " (switched)" : "");
		fprintf(stderr, "soak: hop %u mode '%s' tls %s %.2f s downtime %lld ms "
			"fds %ld threads %ld rss %ld KiB source-after fds %ld threads %ld\n",
			i, mode, line, took, (long long)downtime, h.fds, h.threads,
			h.rss_kib, left.fds, left.threads);
		/* Every arrived process is the same process: nothing may
		 * pile up hop after hop. */
		h_assert(h.fds <= first_any.fds && h.threads <= first_any.threads,
			 "hop %u (%s) holds fds %ld threads %ld, the first %ld and %ld",
			 i, sec_names[k], h.fds, h.threads, first_any.fds,
			 first_any.threads);
		h_assert(sanitized(dst) ||
			 h.rss_kib <= first[k].rss_kib + first[k].rss_kib / 10 + 8192,
			 "hop %u (%s) resident %ld KiB, the first %s %ld KiB", i,
			 sec_names[k], h.rss_kib, sec_names[k], first[k].rss_kib);
		src = dst;
		src_sec = k;
		arrived = h;
	}
	h_expect_verifies(src);
	fprintf(stderr, "soak: tls hops: %u x509, %u psk, %u plain; %u switched by "
		"migrate's tls-creds/tls-psk\n", count[SEC_X509], count[SEC_PSK],
		count[SEC_PLAIN], switched);
	qsort(downtimes, n, sizeof(downtimes[0]), cmp_ll);
	fprintf(stderr, "soak: downtime p50 %lld ms, max %lld ms over %u hops\n",
		downtimes[(n - 1) / 2], downtimes[n - 1], n);
	for (int k = 0; k < NSEC; k++)
		if (have[k])
			fprintf(stderr, "soak: arrived %s (%u): fds first %ld last %ld max %ld; "
				"threads first %ld last %ld max %ld; rss KiB first %ld "
				"last %ld max %ld\n", sec_names[k], count[k], first[k].fds,
				last[k].fds, most[k].fds, first[k].threads, last[k].threads,
				most[k].threads, first[k].rss_kib, last[k].rss_kib,
				most[k].rss_kib);
}

/*
 * Failed and cancelled migrations leave nothing behind at the source:
 * after a cancel in the middle of a round and after a destination that
 * dies, the source holds the fds and threads it held before, and the next
 * migration completes, equal from outside.
 */
Test(soak, failed_and_cancelled_migrations_leave_nothing_at_the_source)
{
	struct h_vm *src = h_boot_verifying("src",
		"workload=dirty wss=32M rate=0 verify=1 verify_ms=500", "256M", "1");
	h_wait_progress(src, 1, 20);
	struct held before = held_settled(src);

	/* 1. cancelled in the middle of round 0 (4 MiB/s: it lasts) */
	struct h_vm *d1 = h_incoming("d1", H_CONTROL, NULL);
	json_decref(h_qmp_ok(src, "{\"execute\":\"migrate\",\"arguments\":"
			     "{\"uri\":\"%s\",\"max-bandwidth\":4194304}}",
			     h_mig_uri(d1->port)));
	h_assert(h_wait_for(({ json_t *q = h_query_migrate(src);
		bool moving = json_integer_value(json_object_get(
			json_object_get(q, "ram"), "transferred")) > (1 << 20);
		json_decref(q); moving; }), 30), "round 0 never moved");
	json_decref(h_qmp_ok(src, "{\"execute\":\"migrate-cancel\"}"));
	json_t *q = h_wait_migration(src, 30, NULL);
	h_assert(!strcmp(h_str(q, "status"), "cancelled"), "not cancelled");
	json_decref(q);
	h_vm_wait(d1, 30);

	/* 2. a destination that dies after round 0 */
	struct h_vm *d2 = h_incoming("d2", H_CONTROL, "--x-fault", "round1", NULL);
	json_decref(h_qmp_ok(src, "{\"execute\":\"migrate\",\"arguments\":"
			     "{\"uri\":\"%s\"}}", h_mig_uri(d2->port)));
	q = h_wait_migration(src, 60, NULL);
	h_assert(!strcmp(h_str(q, "status"), "failed"), "not failed");
	json_decref(q);
	h_vm_wait(d2, 30);
	h_expect_status(src, "running");

	struct held after = settled(src, &before, 10);
	fprintf(stderr, "soak: source after a cancel and a failure: fds %ld -> %ld, "
		"threads %ld -> %ld, rss %ld -> %ld KiB\n", before.fds, after.fds,
		before.threads, after.threads, before.rss_kib, after.rss_kib);
	h_assert(after.fds == before.fds && after.threads == before.threads,
		 "fds %ld -> %ld, threads %ld -> %ld after a cancelled and a failed "
		 "migration", before.fds, after.fds, before.threads, after.threads);

	/* 3. and the next one completes, equal from outside */
	struct h_vm *d3 = h_incoming("d3", H_CONTROL | H_CONSOLE, "--paused", NULL);
	json_decref(h_migrate_kept(src, d3, 120));
	h_expect_same_memory(src, d3);
	h_expect_guest_runs(d3);
	h_assert(h_guest_u64(d3, "errors") == 0, "bad pages after arriving");
}
