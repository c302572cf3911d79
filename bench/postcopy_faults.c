/*
 * postcopy_faults - post-copy fault latency without a guest: threads touch
 * random pages of a destination mapping registered with userfaultfd,
 * served over TCP loopback by the real page server (postcopy_source.c)
 * reading another mapping, as in tests/unit/test_postcopy.c.  Prints one
 * JSON object per configuration:
 *
 *   - "touch" latency: what the touching thread waited for a page that had
 *     not arrived (its read, from before the fault to the page's bytes);
 *   - "request" latency: the destination's own count, from the request's
 *     sending to the page's placement (pc_dest);
 *   - faults served per second with 1, 2, 4 threads faulting at once;
 *   - the push order against a sequential reader ("scan"): how many of
 *     its pages it had to wait for with a sweep alone, a fixed bubble and
 *     the adaptive one (prepage.h).
 *
 * Two modes: "demand" holds the push back (the request path alone, what
 * a fault costs), "push" runs the background push at the same time (the
 * request connection must not wait behind it).
 *
 * Usage: postcopy_faults [MiB [touches-per-thread]]   (256, 2000)
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "io/channel.h"
#include "migration/postcopy_dest.h"
#include "migration/postcopy_recv.h"
#include "migration/postcopy_source.h"
#include "util/log.h"
#include "vmm/memory.h"

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static int tcp_pair(int fd[2])
{
	int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in a = { .sin_family = AF_INET,
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t al = sizeof(a);
	int one = 1;
	if (l < 0 || bind(l, (struct sockaddr *)&a, sizeof(a)) ||
	    listen(l, 1) || getsockname(l, (struct sockaddr *)&a, &al))
		return -1;
	fd[0] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (connect(fd[0], (struct sockaddr *)&a, sizeof(a)))
		return -1;
	fd[1] = accept(l, NULL, NULL);
	close(l);
	if (fd[1] < 0)
		return -1;
	setsockopt(fd[0], IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	setsockopt(fd[1], IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	return 0;
}

struct toucher {
	struct guest_memory *dst;
	struct pc_dest *d;
	unsigned seed, count;
	uint64_t *lat;
	unsigned nlat;
	pthread_t t;
};

static void *touch(void *arg)
{
	struct toucher *t = arg;
	uint64_t n = t->dst->slots[0].size / GUEST_PAGE_SIZE;
	volatile uint8_t sink = 0;
	for (unsigned k = 0; k < t->count; k++) {
		uint64_t gpa = ((uint64_t)rand_r(&t->seed) % n) * GUEST_PAGE_SIZE;
		if (pcd_received(t->d, gpa))
			continue;
		volatile uint8_t *p = memory_gpa_to_hva(t->dst, gpa, 1);
		uint64_t t0 = now_ns();
		sink += *p;
		t->lat[t->nlat++] = now_ns() - t0;
	}
	(void)sink;
	return NULL;
}

/* A sequential reader: pages [start, start+count) in order, as a guest
 * scanning a buffer would.  Counts the touches that had to wait. */
struct scanner {
	struct guest_memory *dst;
	struct pc_dest *d;
	uint64_t start, count;
	uint64_t waited;
	uint64_t ns;
};

static void scan(struct scanner *sc)
{
	volatile uint8_t sink = 0;
	uint64_t t0 = now_ns();
	for (uint64_t i = 0; i < sc->count; i++) {
		uint64_t gpa = (sc->start + i) * GUEST_PAGE_SIZE;
		sc->waited += !pcd_received(sc->d, gpa);
		sink += *(volatile uint8_t *)memory_gpa_to_hva(sc->dst, gpa, 1);
	}
	(void)sink;
	sc->ns = now_ns() - t0;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

static int run(uint64_t mib, unsigned threads, unsigned touches, bool push)
{
	char err[ERR_MAX] = "";
	struct guest_memory src, dst;
	int req[2], pu[2];
	memory_layout(&src, mib << 20);
	memory_layout(&dst, mib << 20);
	if (memory_alloc(&src, err) || memory_alloc(&dst, err))
		goto fail;
	/* data everywhere: no zero pages, every page costs its 4 KiB */
	for (uint64_t o = 0; o < src.slots[0].size; o += 8)
		*(uint64_t *)(src.slots[0].hva + o) = o * 0x9e3779b97f4a7c15ULL + 1;
	if (tcp_pair(req) || tcp_pair(pu)) {
		snprintf(err, ERR_MAX, "cannot connect over loopback");
		goto fail;
	}
	struct channel *sreq = channel_socket_new(req[0], true);
	struct channel *spu = channel_socket_new(pu[0], true);
	struct channel *dreq = channel_socket_new(req[1], true);
	struct channel *dpu = channel_socket_new(pu[1], true);
	struct pc_source *s;
	struct pc_recv *rv;
	if (pcs_new(&src, NULL, &s, err) || pcr_new(&dst, dreq, dpu, &rv, err))
		goto fail;
	pcs_hold_push(s, !push);
	if (pcs_start(s, sreq, spu, err))
		goto fail;

	struct toucher t[8];
	uint64_t t0 = now_ns();
	for (unsigned i = 0; i < threads; i++) {
		t[i] = (struct toucher){ .dst = &dst, .d = pcr_dest(rv),
					 .seed = 100 + i, .count = touches,
					 .lat = malloc(touches * sizeof(uint64_t)) };
		pthread_create(&t[i].t, NULL, touch, &t[i]);
	}
	uint64_t total = 0;
	for (unsigned i = 0; i < threads; i++) {
		pthread_join(t[i].t, NULL);
		total += t[i].nlat;
	}
	uint64_t touch_ns = now_ns() - t0;
	uint64_t *all = malloc((total + 1) * sizeof(uint64_t));
	uint64_t k = 0;
	for (unsigned i = 0; i < threads; i++) {
		memcpy(all + k, t[i].lat, t[i].nlat * sizeof(uint64_t));
		k += t[i].nlat;
		free(t[i].lat);
	}
	qsort(all, total, sizeof(uint64_t), cmp_u64);
	struct pcd_stats ds;
	pcd_stats(pcr_dest(rv), &ds);

	pcs_hold_push(s, false);
	uint64_t t1 = now_ns();
	if (pcr_wait(rv, err) || pcs_wait(s, err))
		goto fail;
	uint64_t rest_ns = now_ns() - t1;
	struct pcs_stats ss;
	pcs_stats(s, &ss);
	int same = memcmp(src.slots[0].hva, dst.slots[0].hva, src.slots[0].size) == 0;

	printf("{\"mode\": \"%s\", \"mib\": %llu, \"threads\": %u, "
	       "\"faults_timed\": %llu, "
	       "\"touch_us\": {\"p50\": %.1f, \"p99\": %.1f, \"max\": %.1f}, "
	       "\"request_us\": {\"p50\": %.1f, \"p99\": %.1f, \"max\": %.1f}, "
	       "\"faults_per_s\": %.0f, \"prepage_hits\": %llu, "
	       "\"pushed\": %llu, \"requested\": %llu, "
	       "\"rest_ms\": %.1f, \"equal\": %s}\n",
	       push ? "push" : "demand", (unsigned long long)mib, threads,
	       (unsigned long long)total,
	       total ? all[(total - 1) / 2] / 1e3 : 0,
	       total ? all[(total - 1) * 99 / 100] / 1e3 : 0,
	       total ? all[total - 1] / 1e3 : 0,
	       ds.lat_p50_ns / 1e3, ds.lat_p99_ns / 1e3, ds.lat_max_ns / 1e3,
	       total * 1e9 / (double)touch_ns,
	       (unsigned long long)ss.prepage_hits,
	       (unsigned long long)ss.pushed, (unsigned long long)ss.requested,
	       rest_ns / 1e6, same ? "true" : "false");
	fflush(stdout);
	free(all);
	pcr_free(rv);
	pcs_free(s);
	channel_close(sreq);
	channel_close(spu);
	channel_close(dreq);
	channel_close(dpu);
	memory_free(&src);
	memory_free(&dst);
	return same ? 0 : 1;
fail:
	fprintf(stderr, "postcopy_faults: %s\n", err);
	return 1;
}

/* The push order against a sequential reader: how many of its pages it
 * had to wait for, under three policies. */
static int run_scan(uint64_t mib, const char *name,
		    const struct prepage_params *prm)
{
	char err[ERR_MAX] = "";
	struct guest_memory src, dst;
	int req[2], pu[2];
	memory_layout(&src, mib << 20);
	memory_layout(&dst, mib << 20);
	if (memory_alloc(&src, err) || memory_alloc(&dst, err))
		goto fail;
	for (uint64_t o = 0; o < src.slots[0].size; o += 8)
		*(uint64_t *)(src.slots[0].hva + o) = o * 0x9e3779b97f4a7c15ULL + 1;
	if (tcp_pair(req) || tcp_pair(pu)) {
		snprintf(err, ERR_MAX, "cannot connect over loopback");
		goto fail;
	}
	struct channel *sreq = channel_socket_new(req[0], true);
	struct channel *spu = channel_socket_new(pu[0], true);
	struct channel *dreq = channel_socket_new(req[1], true);
	struct channel *dpu = channel_socket_new(pu[1], true);
	struct pc_source *s;
	struct pc_recv *rv;
	if (pcs_new(&src, prm, &s, err) || pcr_new(&dst, dreq, dpu, &rv, err) ||
	    pcs_start(s, sreq, spu, err))
		goto fail;
	uint64_t npages = src.slots[0].size / GUEST_PAGE_SIZE;
	struct scanner sc = { .dst = &dst, .d = pcr_dest(rv),
			      .start = npages / 2, .count = npages / 4 };
	scan(&sc);
	if (pcr_wait(rv, err) || pcs_wait(s, err))
		goto fail;
	struct pcs_stats ss;
	pcs_stats(s, &ss);
	int same = memcmp(src.slots[0].hva, dst.slots[0].hva, src.slots[0].size) == 0;
	printf("{\"mode\": \"scan\", \"policy\": \"%s\", \"mib\": %llu, "
	       "\"pages_read\": %llu, \"waited\": %llu, \"requested\": %llu, "
	       "\"prepage_hits\": %llu, \"window_end\": %llu, \"scan_ms\": %.1f, "
	       "\"equal\": %s}\n",
	       name, (unsigned long long)mib, (unsigned long long)sc.count,
	       (unsigned long long)sc.waited, (unsigned long long)ss.requested,
	       (unsigned long long)ss.prepage_hits, (unsigned long long)ss.window,
	       sc.ns / 1e6, same ? "true" : "false");
	fflush(stdout);
	pcr_free(rv);
	pcs_free(s);
	channel_close(sreq);
	channel_close(spu);
	channel_close(dreq);
	channel_close(dpu);
	memory_free(&src);
	memory_free(&dst);
	return same ? 0 : 1;
fail:
	fprintf(stderr, "postcopy_faults: %s\n", err);
	return 1;
}

int main(int argc, char **argv)
{
	uint64_t mib = argc > 1 ? strtoull(argv[1], NULL, 0) : 256;
	unsigned touches = argc > 2 ? (unsigned)strtoul(argv[2], NULL, 0) : 2000;
	static const unsigned nthreads[] = { 1, 2, 4 };
	int r = 0;
	for (int push = 0; push < 2; push++)
		for (unsigned i = 0; i < 3; i++)
			r |= run(mib, nthreads[i], touches, push);
	/* the push order against a sequential reader of a quarter of RAM,
	 * starting in the middle (far from the sweep) */
	struct prepage_params sweep = { .window = 1, .wmin = 1, .wmax = 1 };
	struct prepage_params fixed = { .window = 64, .wmin = 64, .wmax = 64 };
	r |= run_scan(mib, "sweep, bubble of 1", &sweep);
	r |= run_scan(mib, "fixed window 64", &fixed);
	r |= run_scan(mib, "adaptive (default)", NULL);
	return r;
}
