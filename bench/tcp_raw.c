/*
 * tcp_raw - the raw loopback TCP baseline for the migration benchmarks:
 * one process write()s SIZE bytes in 1 MiB buffers over CONNECTIONS TCP
 * connections on 127.0.0.1 (one thread each, SIZE split evenly), the
 * other read()s them (one thread per connection).  Prints one JSON line:
 *   {"bytes": N, "seconds": S, "gb_per_s": X, "buffer": 1048576,
 *    "memory": MODE, "connections": C, "cpu_s_per_gib": X}
 * Time runs from just before the first connect() to the receiver's last
 * byte; the receiver prepares its memory before that.  cpu_s_per_gib is
 * the CPU time both processes spent over that time, per GiB moved.
 *
 * With "fresh", the receiver reads each MiB into the next part of a new
 * anonymous mapping of SIZE bytes (4 KiB pages, no THP, as a migration
 * destination fills fresh guest RAM): the same stream plus the cost of
 * faulting in never-touched memory, which is high on this platform.
 * "fresh-thp" does the same with madvise(MADV_HUGEPAGE) on the mapping.
 * "prefault" faults that mapping in first (MADV_HUGEPAGE, then
 * MADV_POPULATE_WRITE, as `ferry run --incoming --prealloc` does).
 *
 * usage: tcp_raw [SIZE_MIB (default 2048)] [reuse|fresh|fresh-thp|prefault]
 *                [CONNECTIONS (default 1)]
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define BUF (1u << 20)
#define MAX_CONN 16
#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

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

static void die(const char *what)
{
	perror(what);
	exit(1);
}

/* One connection's share: [off, off+len) of the stream. */
struct part {
	int fd;
	char *mem;     /* receiver: where its bytes go (NULL: reuse buf) */
	char *buf;     /* the reused 1 MiB buffer (one per thread) */
	uint64_t len;
};

static void *receive(void *opaque)
{
	struct part *p = opaque;
	for (uint64_t got = 0; got < p->len;) {
		size_t want = p->len - got < BUF ? (size_t)(p->len - got) : BUF;
		ssize_t n = read(p->fd, p->mem ? p->mem + got : p->buf, want);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			die("read");
		got += (uint64_t)n;
	}
	return NULL;
}

static void *send_part(void *opaque)
{
	struct part *p = opaque;
	for (uint64_t sent = 0; sent < p->len;) {
		size_t want = p->len - sent < BUF ? (size_t)(p->len - sent) : BUF;
		ssize_t n = write(p->fd, p->buf, want);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			die("write");
		sent += (uint64_t)n;
	}
	return NULL;
}

/* Split size over n connections in whole buffers (the last takes the rest). */
static uint64_t share(uint64_t size, unsigned n, unsigned i)
{
	uint64_t each = size / n / BUF * BUF;
	return i + 1 < n ? each : size - each * (n - 1);
}

int main(int argc, char **argv)
{
	uint64_t size = (uint64_t)(argc > 1 ? strtoull(argv[1], NULL, 0) : 2048) << 20;
	struct sockaddr_in a = { .sin_family = AF_INET };
	socklen_t alen = sizeof(a);
	int one = 1, ls, pfd[2], rfd[2];
	const char *mode = argc > 2 ? argv[2] : "reuse";
	unsigned nconn = argc > 3 ? (unsigned)atoi(argv[3]) : 1;
	int prefault = !strcmp(mode, "prefault");
	int fresh = !strcmp(mode, "fresh") || !strcmp(mode, "fresh-thp") || prefault;
	int thp = !strcmp(mode, "fresh-thp") || prefault;

	if ((!fresh && strcmp(mode, "reuse")) || nconn < 1 || nconn > MAX_CONN) {
		fprintf(stderr, "usage: tcp_raw [SIZE_MIB] [reuse|fresh|fresh-thp|prefault] "
				"[CONNECTIONS 1..%d]\n", MAX_CONN);
		return 2;
	}
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ls = socket(AF_INET, SOCK_STREAM, 0);
	if (ls < 0)
		die("socket");
	setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(ls, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(ls, MAX_CONN) < 0)
		die("bind/listen");
	if (getsockname(ls, (struct sockaddr *)&a, &alen) < 0)
		die("getsockname");
	if (pipe(pfd) < 0 || pipe(rfd) < 0)
		die("pipe");

	pid_t pid = fork();
	if (pid < 0)
		die("fork");
	if (pid == 0) {
		/* Receiver: its memory ready before the sender starts the clock. */
		struct part parts[MAX_CONN];
		pthread_t th[MAX_CONN];
		char *dst = NULL;
		if (fresh) {
			dst = mmap(NULL, size, PROT_READ | PROT_WRITE,
				   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
			if (dst == MAP_FAILED)
				die("mmap");
			madvise(dst, size, thp ? MADV_HUGEPAGE : MADV_NOHUGEPAGE);
			if (prefault && madvise(dst, size, MADV_POPULATE_WRITE) < 0)
				for (uint64_t i = 0; i < size; i += 4096)
					dst[i] = 0;
		}
		char r = 1;
		double c0 = cpu_s();
		if (write(rfd[1], &r, 1) != 1)
			die("pipe write");
		uint64_t off = 0;
		for (unsigned i = 0; i < nconn; i++) {
			parts[i].fd = accept(ls, NULL, NULL);
			if (parts[i].fd < 0)
				die("accept");
			parts[i].len = share(size, nconn, i);
			parts[i].mem = fresh ? dst + off : NULL;
			parts[i].buf = fresh ? NULL : malloc(BUF);
			if (!fresh && !parts[i].buf)
				die("malloc");
			off += parts[i].len;
			if (pthread_create(&th[i], NULL, receive, &parts[i]))
				die("pthread_create");
		}
		for (unsigned i = 0; i < nconn; i++)
			pthread_join(th[i], NULL);
		double t[2] = { now(), cpu_s() - c0 };
		if (write(pfd[1], t, sizeof(t)) != sizeof(t))
			die("pipe write");
		_exit(0);
	}

	/* Sender: incompressible-looking data, touched once so no page
	 * faults count. */
	close(ls);
	struct part parts[MAX_CONN];
	pthread_t th[MAX_CONN];
	for (unsigned i = 0; i < nconn; i++) {
		parts[i].buf = malloc(BUF);
		if (!parts[i].buf)
			die("malloc");
		for (unsigned k = 0; k < BUF; k++)
			parts[i].buf[k] = (char)((k + i) * 2654435761u >> 13);
		parts[i].len = share(size, nconn, i);
		parts[i].mem = NULL;
	}
	char r;
	if (read(rfd[0], &r, 1) != 1)
		die("receiver did not start");
	double t0 = now(), c0 = cpu_s();
	for (unsigned i = 0; i < nconn; i++) {
		parts[i].fd = socket(AF_INET, SOCK_STREAM, 0);
		if (parts[i].fd < 0 ||
		    connect(parts[i].fd, (struct sockaddr *)&a, sizeof(a)) < 0)
			die("connect");
	}
	for (unsigned i = 0; i < nconn; i++)
		if (pthread_create(&th[i], NULL, send_part, &parts[i]))
			die("pthread_create");
	for (unsigned i = 0; i < nconn; i++)
		pthread_join(th[i], NULL);
	double r1[2];
	if (read(pfd[0], r1, sizeof(r1)) != sizeof(r1))
		die("pipe read");
	double t1 = r1[0], cpu = cpu_s() - c0 + r1[1];
	for (unsigned i = 0; i < nconn; i++)
		close(parts[i].fd);
	int st;
	waitpid(pid, &st, 0);
	printf("{\"bytes\": %llu, \"seconds\": %.6f, \"gb_per_s\": %.4f, \"buffer\": %u, "
	       "\"memory\": \"%s\", \"connections\": %u, \"cpu_s_per_gib\": %.4f}\n",
	       (unsigned long long)size, t1 - t0, size / (t1 - t0) / 1e9, BUF, mode, nconn,
	       cpu / (size / 1073741824.0));
	return 0;
}
