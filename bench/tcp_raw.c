/*
 * tcp_raw - the raw single-stream loopback TCP baseline for the migration
 * benchmarks: one process write()s SIZE bytes in 1 MiB buffers over one TCP
 * connection on 127.0.0.1, the other read()s them.  Prints one JSON line:
 *   {"bytes": N, "seconds": S, "gb_per_s": X, "buffer": 1048576, "memory": MODE}
 * Time runs from just before connect() to the receiver's last byte.
 *
 * With "fresh", the receiver reads each MiB into the next part of a new
 * anonymous mapping of SIZE bytes (4 KiB pages, no THP, as a migration
 * destination fills fresh guest RAM): the same stream plus the cost of
 * faulting in never-touched memory, which is high on this platform.
 * "fresh-thp" does the same with madvise(MADV_HUGEPAGE) on the mapping.
 *
 * usage: tcp_raw [SIZE_MIB (default 2048)] [fresh|fresh-thp]
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define BUF (1u << 20)

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

int main(int argc, char **argv)
{
	uint64_t size = (uint64_t)(argc > 1 ? strtoull(argv[1], NULL, 0) : 2048) << 20;
	struct sockaddr_in a = { .sin_family = AF_INET };
	socklen_t alen = sizeof(a);
	int one = 1, ls, pfd[2];
	const char *mode = argc > 2 ? argv[2] : "reuse";
	int fresh = !strcmp(mode, "fresh") || !strcmp(mode, "fresh-thp");
	int thp = !strcmp(mode, "fresh-thp");

	if (!fresh && strcmp(mode, "reuse")) {
		fprintf(stderr, "usage: tcp_raw [SIZE_MIB] [fresh|fresh-thp]\n");
		return 2;
	}
	char *buf = malloc(BUF);

	if (!buf)
		die("malloc");
	/* Incompressible-looking data, touched once so no page faults count. */
	for (unsigned i = 0; i < BUF; i++)
		buf[i] = (char)(i * 2654435761u >> 13);

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ls = socket(AF_INET, SOCK_STREAM, 0);
	if (ls < 0)
		die("socket");
	setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(ls, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(ls, 1) < 0)
		die("bind/listen");
	if (getsockname(ls, (struct sockaddr *)&a, &alen) < 0)
		die("getsockname");
	if (pipe(pfd) < 0)
		die("pipe");

	pid_t pid = fork();
	if (pid < 0)
		die("fork");
	if (pid == 0) {
		/* Receiver. */
		int c = accept(ls, NULL, NULL);
		uint64_t got = 0;
		char *dst = NULL;
		if (c < 0)
			die("accept");
		if (fresh) {
			dst = mmap(NULL, size, PROT_READ | PROT_WRITE,
				   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
			if (dst == MAP_FAILED)
				die("mmap");
			madvise(dst, size, thp ? MADV_HUGEPAGE : MADV_NOHUGEPAGE);
		}
		while (got < size) {
			size_t want = size - got < BUF ? (size_t)(size - got) : BUF;
			ssize_t n = read(c, fresh ? dst + got : buf, want);
			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0)
				die("read");
			got += (uint64_t)n;
		}
		double t = now();
		if (write(pfd[1], &t, sizeof(t)) != sizeof(t))
			die("pipe write");
		_exit(0);
	}

	/* Sender. */
	close(ls);
	int s = socket(AF_INET, SOCK_STREAM, 0);
	double t0 = now();
	if (s < 0 || connect(s, (struct sockaddr *)&a, sizeof(a)) < 0)
		die("connect");
	for (uint64_t sent = 0; sent < size;) {
		size_t want = size - sent < BUF ? (size_t)(size - sent) : BUF;
		ssize_t n = write(s, buf, want);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			die("write");
		sent += (uint64_t)n;
	}
	double t1;
	if (read(pfd[0], &t1, sizeof(t1)) != sizeof(t1))
		die("pipe read");
	close(s);
	int st;
	waitpid(pid, &st, 0);
	printf("{\"bytes\": %llu, \"seconds\": %.6f, \"gb_per_s\": %.4f, \"buffer\": %u, \"memory\": \"%s\"}\n",
	       (unsigned long long)size, t1 - t0, size / (t1 - t0) / 1e9, BUF,
	       mode);
	return 0;
}
