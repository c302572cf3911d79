/*
 * tcp_ceiling - raw TCP over N connections, sender and receiver as two
 * separate processes, so that each can run in its own network namespace
 * (bench/netlinks.py, bench/ceiling.py).  The ceiling a migration over the
 * same link with the same number of connections is held against.
 *
 *   tcp_ceiling recv ADDR CONNS MIB reuse|fresh|fresh-thp
 *       listens on ADDR (port chosen by the kernel), prints "port P" and
 *       flushes, accepts CONNS connections and reads MIB MiB in all, each
 *       connection an equal share, each on its own thread.  "reuse": each
 *       thread reads into its own 1 MiB buffer, touched beforehand.
 *       "fresh": into its own part of one new anonymous mapping of MIB MiB
 *       (4 KiB pages, no THP), as a migration destination with N channels
 *       fills never-touched guest RAM; "fresh-thp" the same with
 *       madvise(MADV_HUGEPAGE).  Then prints one JSON line:
 *         {"role": "recv", "bytes": N, "seconds": S, "gb_per_s": X,
 *          "conns": C, "memory": M, "cpu_user_s": U, "cpu_sys_s": Y,
 *          "max_rss_kib": R}
 *       Time runs from the first accepted connection to the last byte.
 *   tcp_ceiling send ADDR PORT CONNS MIB
 *       connects CONNS times, then writes its share on each from a 1 MiB
 *       buffer of incompressible-looking bytes (one thread per connection);
 *       prints {"role": "send", "seconds": S, "cpu_user_s": U, ...}.
 *   tcp_ceiling spin SECONDS
 *       keeps one core busy (0: until killed), as a PVM test guest's vCPU
 *       does: it never halts.
 *
 * bench/tcp_raw.c is the older single-process, single-connection loopback
 * baseline; this one exists for links between namespaces and for N.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
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
#include <time.h>
#include <unistd.h>

#define BUF (1u << 20)
#define MAX_CONNS 64

struct part {
	int fd;
	char *dst;          /* fresh: where this connection's bytes go */
	uint64_t bytes;     /* this connection's share */
	const char *src;    /* sender: the buffer written again and again */
	int err;            /* errno of a failure, 0 if none */
};

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int usage(void)
{
	fprintf(stderr,
		"usage: tcp_ceiling recv ADDR CONNS MIB reuse|fresh|fresh-thp\n"
		"       tcp_ceiling send ADDR PORT CONNS MIB\n"
		"       tcp_ceiling spin SECONDS\n");
	return 2;
}

static int parse_conns(const char *s, unsigned *out)
{
	char *end;
	unsigned long v = strtoul(s, &end, 10);

	if (*end || v < 1 || v > MAX_CONNS) {
		fprintf(stderr, "tcp_ceiling: CONNS must be 1..%d, not '%s'\n", MAX_CONNS, s);
		return -1;
	}
	*out = (unsigned)v;
	return 0;
}

static int parse_mib(const char *s, uint64_t *bytes)
{
	char *end;
	unsigned long long v = strtoull(s, &end, 10);

	if (*end || v < 1 || v > (1ull << 20)) {
		fprintf(stderr, "tcp_ceiling: MIB must be 1..1048576, not '%s'\n", s);
		return -1;
	}
	*bytes = (uint64_t)v << 20;
	return 0;
}

static void print_cpu(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	printf("\"cpu_user_s\": %.3f, \"cpu_sys_s\": %.3f, \"max_rss_kib\": %ld}\n",
	       ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6,
	       ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6, ru.ru_maxrss);
}

/* Each connection gets bytes / conns, the last one the remainder too. */
static void split(struct part *p, unsigned conns, uint64_t bytes)
{
	uint64_t share = bytes / conns;

	for (unsigned i = 0; i < conns; i++)
		p[i].bytes = i + 1 < conns ? share : bytes - share * (conns - 1);
}

static void *recv_thread(void *arg)
{
	struct part *p = arg;
	char *buf = NULL;

	if (!p->dst) {
		buf = malloc(BUF);
		if (!buf) {
			p->err = ENOMEM;
			return NULL;
		}
		memset(buf, 1, BUF);   /* touched once: no faults in the loop */
	}
	for (uint64_t got = 0; got < p->bytes;) {
		size_t want = p->bytes - got < BUF ? (size_t)(p->bytes - got) : BUF;
		ssize_t n = read(p->fd, p->dst ? p->dst + got : buf, want);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			p->err = n < 0 ? errno : EPIPE;
			break;
		}
		got += (uint64_t)n;
	}
	free(buf);
	return NULL;
}

static void *send_thread(void *arg)
{
	struct part *p = arg;

	for (uint64_t sent = 0; sent < p->bytes;) {
		size_t want = p->bytes - sent < BUF ? (size_t)(p->bytes - sent) : BUF;
		ssize_t n = write(p->fd, p->src, want);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			p->err = errno;
			break;
		}
		sent += (uint64_t)n;
	}
	return NULL;
}

/* Run one thread per part; returns 0 or the first errno a part met. */
static int run_threads(struct part *p, unsigned conns, void *(*fn)(void *))
{
	pthread_t t[MAX_CONNS];
	int err = 0;

	for (unsigned i = 0; i < conns; i++) {
		int r = pthread_create(&t[i], NULL, fn, &p[i]);

		if (r) {
			/* Threads already started would block on their sockets:
			 * closing those ends them with an error. */
			for (unsigned j = 0; j < conns; j++)
				shutdown(p[j].fd, SHUT_RDWR);
			for (unsigned j = 0; j < i; j++)
				pthread_join(t[j], NULL);
			errno = r;
			return r;
		}
	}
	for (unsigned i = 0; i < conns; i++) {
		pthread_join(t[i], NULL);
		if (p[i].err && !err)
			err = p[i].err;
	}
	return err;
}

static int do_recv(int argc, char **argv)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	socklen_t alen = sizeof(a);
	struct part p[MAX_CONNS] = { 0 };
	unsigned conns;
	uint64_t bytes;
	char *dst = NULL;
	int one = 1, ls, err;
	double t0 = 0;

	if (argc != 6 || parse_conns(argv[3], &conns) || parse_mib(argv[4], &bytes))
		return usage();
	const char *mode = argv[5];
	int fresh = !strcmp(mode, "fresh") || !strcmp(mode, "fresh-thp");

	if (!fresh && strcmp(mode, "reuse"))
		return usage();
	if (inet_pton(AF_INET, argv[2], &a.sin_addr) != 1) {
		fprintf(stderr, "tcp_ceiling: bad IPv4 address '%s'\n", argv[2]);
		return 2;
	}
	ls = socket(AF_INET, SOCK_STREAM, 0);
	if (ls < 0 || setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) ||
	    bind(ls, (struct sockaddr *)&a, sizeof(a)) || listen(ls, MAX_CONNS) ||
	    getsockname(ls, (struct sockaddr *)&a, &alen)) {
		perror("tcp_ceiling: listen");
		return 1;
	}
	if (fresh) {
		dst = mmap(NULL, bytes, PROT_READ | PROT_WRITE,
			   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
		if (dst == MAP_FAILED) {
			perror("tcp_ceiling: mmap");
			return 1;
		}
		madvise(dst, bytes, strcmp(mode, "fresh-thp") ? MADV_NOHUGEPAGE : MADV_HUGEPAGE);
	}
	split(p, conns, bytes);
	printf("port %u\n", ntohs(a.sin_port));
	fflush(stdout);
	uint64_t off = 0;

	for (unsigned i = 0; i < conns; i++) {
		p[i].fd = accept(ls, NULL, NULL);
		if (p[i].fd < 0) {
			perror("tcp_ceiling: accept");
			return 1;
		}
		if (!i)
			t0 = now();
		p[i].dst = fresh ? dst + off : NULL;
		off += p[i].bytes;
	}
	err = run_threads(p, conns, recv_thread);
	double t = now() - t0;

	if (err) {
		fprintf(stderr, "tcp_ceiling: receive: %s\n", strerror(err));
		return 1;
	}
	printf("{\"role\": \"recv\", \"bytes\": %llu, \"seconds\": %.6f, \"gb_per_s\": %.4f, "
	       "\"conns\": %u, \"memory\": \"%s\", ",
	       (unsigned long long)bytes, t, bytes / t / 1e9, conns, mode);
	print_cpu();
	return 0;
}

static int do_send(int argc, char **argv)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	struct part p[MAX_CONNS] = { 0 };
	unsigned conns;
	uint64_t bytes;
	char *end;

	if (argc != 6 || parse_conns(argv[4], &conns) || parse_mib(argv[5], &bytes))
		return usage();
	unsigned long port = strtoul(argv[3], &end, 10);

	if (*end || !port || port > 65535 || inet_pton(AF_INET, argv[2], &a.sin_addr) != 1) {
		fprintf(stderr, "tcp_ceiling: bad address '%s' port '%s'\n", argv[2], argv[3]);
		return 2;
	}
	a.sin_port = htons((uint16_t)port);
	char *buf = malloc(BUF);

	if (!buf)
		return 1;
	/* Incompressible-looking data, touched once so no page faults count. */
	for (unsigned i = 0; i < BUF; i++)
		buf[i] = (char)(i * 2654435761u >> 13);
	split(p, conns, bytes);
	for (unsigned i = 0; i < conns; i++)
		p[i].fd = -1;
	double t0 = now();
	int ret = 1;

	for (unsigned i = 0; i < conns; i++) {
		p[i].fd = socket(AF_INET, SOCK_STREAM, 0);
		if (p[i].fd < 0 || connect(p[i].fd, (struct sockaddr *)&a, sizeof(a))) {
			perror("tcp_ceiling: connect");
			goto out;
		}
		p[i].src = buf;
	}
	int err = run_threads(p, conns, send_thread);

	if (err) {
		fprintf(stderr, "tcp_ceiling: send: %s\n", strerror(err));
		goto out;
	}
	printf("{\"role\": \"send\", \"seconds\": %.6f, \"conns\": %u, ", now() - t0, conns);
	print_cpu();
	ret = 0;
out:
	for (unsigned i = 0; i < conns; i++)
		if (p[i].fd >= 0)
			close(p[i].fd);
	free(buf);
	return ret;
}

static int do_spin(int argc, char **argv)
{
	if (argc != 3)
		return usage();
	double secs = strtod(argv[2], NULL), end = now() + secs;
	volatile uint64_t x = 0;

	/* Check the clock only now and then: the loop itself is the load. */
	for (;;) {
		for (int i = 0; i < 1 << 20; i++)
			x++;
		if (secs > 0 && now() >= end)
			return 0;
	}
}

int main(int argc, char **argv)
{
	if (argc < 2)
		return usage();
	if (!strcmp(argv[1], "recv"))
		return do_recv(argc, argv);
	if (!strcmp(argv[1], "send"))
		return do_send(argc, argv);
	if (!strcmp(argv[1], "spin"))
		return do_spin(argc, argv);
	return usage();
}
