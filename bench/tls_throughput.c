/*
 * tls_throughput - what TLS costs a migration stream, without a guest:
 * ferry's own record writer and reader (io/record.c) over its own
 * channels (io/channel_socket.c, io/channel_tls.c) on one loopback TCP
 * connection, a sender thread and a receiver thread, 1 MiB records of
 * incompressible bytes (as RAM_PAGES records of written memory are).
 * Modes in one run: plain TCP, TLS with X.509 certificates, TLS with a
 * pre-shared key; and the CRC-32C every record carries, alone, to decide
 * whether TLS's own integrity makes it worth skipping.
 *
 * Prints one JSON line per mode:
 *   {"mode": "plain", "bytes": N, "seconds": S, "gb_per_s": X,
 *    "cpu_seconds_per_gb": C, "cipher": "..."}
 * (C: CPU time of both threads per GB moved, steadier than the wall
 * clock on a shared machine).
 *
 * usage: tls_throughput [SIZE_MIB (default 1024)]   (run from the tree's top:
 * credentials are made with scripts/tls-make-creds.sh in $TMPDIR)
 */
#include "io/channel.h"
#include "io/record.h"
#include "io/tls.h"
#include "util/crc32c.h"
#include "util/log.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define REC (1u << 20)

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* CPU seconds of the whole process (both threads): on a shared machine
 * steadier than the wall clock. */
static double cpu(void)
{
	struct rusage u;
	getrusage(RUSAGE_SELF, &u);
	return u.ru_utime.tv_sec + u.ru_utime.tv_usec / 1e6 +
	       u.ru_stime.tv_sec + u.ru_stime.tv_usec / 1e6;
}

static void die(const char *what, const char *why)
{
	fprintf(stderr, "tls_throughput: %s: %s\n", what, why);
	exit(1);
}

/* A connected loopback TCP pair. */
static void tcp_pair(int fd[2])
{
	int l = socket(AF_INET, SOCK_STREAM, 0), one = 1;
	struct sockaddr_in a = { .sin_family = AF_INET,
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(a);
	if (l < 0 || bind(l, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(l, 1) < 0 ||
	    getsockname(l, (struct sockaddr *)&a, &len) < 0)
		die("listen", "failed");
	fd[0] = socket(AF_INET, SOCK_STREAM, 0);
	if (connect(fd[0], (struct sockaddr *)&a, sizeof(a)) < 0)
		die("connect", "failed");
	fd[1] = accept(l, NULL, NULL);
	close(l);
	setsockopt(fd[0], IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	setsockopt(fd[1], IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

struct side {
	struct channel *ch;
	struct tls_creds *creds;
	int fd;
	bool server;
	uint64_t bytes;
	const uint8_t *data;
	char err[ERR_MAX];
};

static void *receiver(void *arg)
{
	struct side *s = arg;
	if (s->creds && channel_tls_handshake(s->ch, NULL, s->err))
		return NULL;
	struct rec_reader *r = rec_reader_new(s->ch, REC + 64);
	uint32_t type, len;
	const uint8_t *p;
	for (uint64_t got = 0; got < s->bytes; got += len)
		if (rec_read(r, &type, &p, &len)) {
			snprintf(s->err, sizeof(s->err), "%s", rec_reader_errmsg(r));
			break;
		}
	rec_reader_free(r);
	return NULL;
}

static void run(const char *mode, struct tls_creds *c, const uint8_t *data,
		uint64_t bytes)
{
	int fd[2];
	pthread_t t;
	struct side snd = { .creds = c, .data = data, .bytes = bytes };
	struct side rcv = { .creds = c, .server = true, .bytes = bytes };

	tcp_pair(fd);
	snd.ch = c ? channel_tls_new(c, fd[0], true, false) : channel_socket_new(fd[0], true);
	rcv.ch = c ? channel_tls_new(c, fd[1], true, true) : channel_socket_new(fd[1], true);
	double t0 = now(), c0 = cpu();
	pthread_create(&t, NULL, receiver, &rcv);
	if (c && channel_tls_handshake(snd.ch, NULL, snd.err))
		die(mode, snd.err);
	struct rec_writer *w = rec_writer_new(snd.ch, REC + 64);
	for (uint64_t off = 0; off < bytes; off += REC)
		rec_put(w, 0x10, data + off % (64u * REC), REC);
	if (rec_flush(w))
		die(mode, rec_writer_errmsg(w));
	pthread_join(t, NULL);
	double dt = now() - t0, dc = cpu() - c0;
	if (rcv.err[0])
		die(mode, rcv.err);
	struct tls_info info = { .cipher = "none" };
	if (c)
		channel_tls_info(snd.ch, &info);
	printf("{\"mode\": \"%s\", \"bytes\": %llu, \"seconds\": %.3f, \"gb_per_s\": %.3f, "
	       "\"cpu_seconds_per_gb\": %.3f, \"cipher\": \"%s\"}\n", mode,
	       (unsigned long long)bytes, dt, bytes / dt / 1e9, dc / (bytes / 1e9),
	       info.cipher);
	fflush(stdout);
	rec_writer_free(w);
	channel_close(snd.ch);
	channel_close(rcv.ch);
}

int main(int argc, char **argv)
{
	uint64_t mib = argc > 1 ? strtoull(argv[1], NULL, 10) : 1024;
	uint64_t bytes = mib << 20;
	const char *tmp = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
	char dir[512], cmd[1200], err[ERR_MAX];
	struct tls_creds *x509, *psk;

	signal(SIGPIPE, SIG_IGN);
	snprintf(dir, sizeof(dir), "%s/ferry-tls-bench-XXXXXX", tmp);
	if (!mkdtemp(dir))
		die("mkdtemp", "failed");
	snprintf(cmd, sizeof(cmd), "scripts/tls-make-creds.sh '%s/x509' && "
		 "scripts/tls-make-creds.sh --psk '%s/keys.psk'", dir, dir);
	if (system(cmd))
		die("scripts/tls-make-creds.sh", "failed (run from the tree's top)");
	snprintf(cmd, sizeof(cmd), "%s/x509", dir);
	if (tls_creds_load_x509(&x509, cmd, err))
		die("x509", err);
	snprintf(cmd, sizeof(cmd), "%s/keys.psk", dir);
	if (tls_creds_load_psk(&psk, cmd, err))
		die("psk", err);

	/* 64 MiB of incompressible bytes, sent round and round. */
	uint8_t *data = malloc(64u * REC);
	uint64_t x = 0x9e3779b97f4a7c15ull;
	for (size_t i = 0; i < 64u * REC / 8; i++) {
		x ^= x << 13; x ^= x >> 7; x ^= x << 17;
		memcpy(data + 8 * i, &x, 8);
	}
	/* The record checksum alone (each record is checksummed once by the
	 * writer and once by the reader). */
	double t0 = now();
	uint32_t crc = 0;
	for (uint64_t off = 0; off < bytes; off += REC)
		crc += crc32c(0, data + off % (64u * REC), REC);
	double dt = now() - t0;
	printf("{\"mode\": \"crc32c-only\", \"bytes\": %llu, \"seconds\": %.3f, "
	       "\"gb_per_s\": %.3f, \"crc\": %u}\n", (unsigned long long)bytes, dt,
	       bytes / dt / 1e9, crc);
	run("plain", NULL, data, bytes);
	run("tls-x509", x509, data, bytes);
	run("tls-psk", psk, data, bytes);
	run("plain", NULL, data, bytes);   /* again: the machine is shared */
	free(data);
	tls_creds_free(x509);
	tls_creds_free(psk);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	return system(cmd) ? 1 : 0;
}
