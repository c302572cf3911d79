/*
 * multifd_bench - the parallel page channels (migration/multifd_send.h,
 * multifd_recv.h) memory to memory over loopback TCP, no guest: one
 * process is the source (SIZE of incompressible guest memory, sent as
 * one round in batches of 256 pages), the other the destination (fresh
 * guest memory, or memory faulted in beforehand as `--prealloc` does).
 * Prints one JSON line:
 *   {"bytes": N, "seconds": S, "gb_per_s": X, "channels": C,
 *    "memory": "fresh"|"prefault", "compression": "none", "prefault_s": P,
 *    "cpu_s_per_gib": C}
 * Time runs from just before the first connect() to the destination's
 * end of the round (every page placed, every channel's SYNC read), as
 * bench/tcp_raw.c times the raw stream with the same connections; the
 * destination's prefault happens before (prefault_s, reported apart).
 * cpu_s_per_gib: CPU seconds both processes spent over that time, per
 * GiB moved (a figure the machine's other load changes less).
 *
 * usage: multifd_bench [SIZE_MIB (512)] [CHANNELS (1)] [fresh|prefault]
 *                      [none|lz4|zstd]
 */
#include "io/channel.h"
#include "migration/multifd_recv.h"
#include "migration/multifd_send.h"
#include "migration/protocol.h"
#include "migration/ram_codec.h"
#include "util/log.h"
#include "vmm/memory.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* CPU seconds (user + system) of this process, all its threads. */
static double cpu_s(void)
{
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	return ru.ru_utime.tv_sec + ru.ru_stime.tv_sec +
	       (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void die(const char *what, const char *why)
{
	fprintf(stderr, "multifd_bench: %s: %s\n", what, why ? why : strerror(errno));
	exit(1);
}

static void mem_new(struct guest_memory *m, uint64_t size)
{
	char err[ERR_MAX] = "";
	memory_layout(m, size);
	if (memory_alloc(m, err))
		die("memory", err);
}

int main(int argc, char **argv)
{
	uint64_t size = (uint64_t)(argc > 1 ? strtoull(argv[1], NULL, 0) : 512) << 20;
	unsigned n = argc > 2 ? (unsigned)atoi(argv[2]) : 1;
	const char *mode = argc > 3 ? argv[3] : "fresh";
	const char *comp = argc > 4 ? argv[4] : "none";
	bool prefault = !strcmp(mode, "prefault");
	const struct ram_encoding *enc = ram_encoding_by_name(comp);
	char err[ERR_MAX] = "";

	if ((!prefault && strcmp(mode, "fresh")) || !enc || n < 1 || n > MF_MAX_CHANNELS) {
		fprintf(stderr, "usage: multifd_bench [SIZE_MIB] [CHANNELS 1..%u] "
				"[fresh|prefault] [none|lz4|zstd]\n", MF_MAX_CHANNELS);
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	log_set_level(LOG_WARN);

	struct sockaddr_in a = { .sin_family = AF_INET };
	socklen_t alen = sizeof(a);
	int one = 1, ready[2], done[2];
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	int ls = socket(AF_INET, SOCK_STREAM, 0);
	setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (ls < 0 || bind(ls, (struct sockaddr *)&a, sizeof(a)) < 0 ||
	    listen(ls, 16) < 0 || getsockname(ls, (struct sockaddr *)&a, &alen) < 0)
		die("listen", NULL);
	if (pipe(ready) < 0 || pipe(done) < 0)
		die("pipe", NULL);

	pid_t pid = fork();
	if (pid < 0)
		die("fork", NULL);
	if (pid == 0) {
		/* The destination. */
		struct guest_memory dst;
		double pf = 0;
		mem_new(&dst, size);
		if (prefault) {
			double t = now();
			if (memory_populate(&dst, true, err))
				die("prefault", err);
			pf = now() - t;
		}
		struct mf_recv_cfg rc = { .mem = &dst, .encodings = 1u << enc->id, .n = n };
		struct mf_recv *rx = mf_recv_new(&rc, err);
		if (!rx)
			die("mf_recv_new", err);
		double c0 = cpu_s();
		if (write(ready[1], &pf, sizeof(pf)) != sizeof(pf))
			die("pipe", NULL);
		for (unsigned i = 0; i < n; i++) {
			int c = accept(ls, NULL, NULL);
			if (c < 0)
				die("accept", NULL);
			if (mf_recv_add(rx, channel_socket_new(c, true), err))
				die("mf_recv_add", err);
		}
		if (mf_recv_wait_round(rx, 0, 60000, err))
			die("receiving", err);
		double t[2] = { now(), cpu_s() - c0 };
		if (write(done[1], t, sizeof(t)) != sizeof(t))
			die("pipe", NULL);
		mf_recv_free(rx);
		memory_free(&dst);
		_exit(0);
	}

	/* The source: incompressible memory, touched before timing. */
	close(ls);
	struct guest_memory src;
	mem_new(&src, size);
	uint64_t x = 0x9e3779b97f4a7c15ULL;
	for (unsigned s = 0; s < src.nslots; s++) {
		uint64_t *p = (uint64_t *)src.slots[s].hva;
		for (uint64_t i = 0; i < src.slots[s].size / 8; i++) {
			x ^= x << 13;
			x ^= x >> 7;
			x ^= x << 17;
			p[i] = x;
		}
	}
	double pf;
	if (read(ready[0], &pf, sizeof(pf)) != sizeof(pf))
		die("destination", "did not start");

	struct channel *chs[MF_MAX_CHANNELS];
	double t0 = now(), c0 = cpu_s();
	for (unsigned i = 0; i < n; i++) {
		int s = socket(AF_INET, SOCK_STREAM, 0);
		if (s < 0 || connect(s, (struct sockaddr *)&a, sizeof(a)) < 0)
			die("connect", NULL);
		chs[i] = channel_socket_new(s, true);
	}
	struct mf_send_cfg sc = { .mem = &src, .enc = enc, .zstd_level = 1 };
	struct mf_send *tx = mf_send_new(&sc, chs, n, err);
	if (!tx)
		die("mf_send_new", err);
	struct ram_batch b = { .round = 0 };
	uint64_t pages = memory_npages(&src);
	for (uint64_t i = 0; i < pages; i++) {
		b.desc[b.n++] = memory_page_gpa(&src, i);
		if (b.n == MIG_PAGES_PER_RECORD || i + 1 == pages) {
			if (mf_send_batch(tx, &b, err))
				die("sending", err);
			b.n = 0;
		}
	}
	if (mf_send_sync(tx, 0, err))
		die("sync", err);
	double r1[2];
	if (read(done[0], r1, sizeof(r1)) != sizeof(r1))
		die("destination", "failed");
	double t1 = r1[0], cpu = cpu_s() - c0 + r1[1];
	uint64_t wire = mf_send_bytes(tx);
	mf_send_free(tx);
	int st;
	waitpid(pid, &st, 0);
	printf("{\"bytes\": %llu, \"wire_bytes\": %llu, \"seconds\": %.6f, \"gb_per_s\": %.4f, "
	       "\"channels\": %u, \"memory\": \"%s\", \"compression\": \"%s\", "
	       "\"prefault_s\": %.4f, \"cpu_s_per_gib\": %.4f}\n",
	       (unsigned long long)size, (unsigned long long)wire, t1 - t0,
	       size / (t1 - t0) / 1e9, n, mode, comp, pf, cpu / (size / 1073741824.0));
	memory_free(&src);
	return 0;
}
