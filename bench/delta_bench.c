/*
 * delta_bench - what a page delta (migration/delta.h, capability xbzrle)
 * costs and saves, without a guest: the real encoder and decoder on pairs
 * of pages (the copy the source cached, the page as it is now).
 *
 *   delta_bench [pairs] [runs]     (default 4096 pairs = 16 MiB, 5 runs)
 *
 * Cases: the page unchanged; 1, 16, 256 and 2048 bytes changed at random
 * offsets (scattered: the most runs for the bytes); 256 and 2048 bytes
 * changed in one stretch; the test guest's counter fill rewritten (every
 * word (seq << 8 | i / 8) with a later seq: a byte or two of each word);
 * a page rewritten with random bytes (the delta overflows).
 *
 * Encode: delta_encode(old, new) with the limit the source uses
 * (RAM_DELTA_LIMIT, 3 KiB).  Decode: delta_decode (every check, then the
 * writes) into a copy of old.  Copy: memcpy of the pages, what sending
 * whole costs the CPU at the least.  MB/s is page memory (1 MB = 10^6
 * bytes) per second of this thread's CPU time (not wall time: the
 * machine is shared); each case runs `runs` times and the median is shown
 * with every run (the machine is shared: runs swing).  The size is the
 * mean delta per page (4096 = overflow: sent whole).  One JSON line per
 * case on stderr.
 */
#include "migration/delta.h"
#include "migration/ram_codec.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define PAGE 4096u
#define MAX_RUNS 15

static uint64_t rng = 0x2545f4914f6cdd1dULL;

static uint64_t rnd(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

/* This thread's CPU time: on a machine shared with other work, wall time
 * would measure the others too. */
static double now_s(void)
{
	struct timespec t;
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
	return t.tv_sec + t.tv_nsec / 1e9;
}

static void loadavg(char *buf, size_t len)
{
	FILE *f = fopen("/proc/loadavg", "r");
	buf[0] = '\0';
	if (f) {
		if (!fgets(buf, (int)len, f))
			buf[0] = '\0';
		fclose(f);
	}
	buf[strcspn(buf, "\n")] = '\0';
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

enum kind { UNCHANGED, SCATTERED, STRETCH, COUNTER, RANDOM };

struct bench_case {
	const char *name;
	enum kind kind;
	unsigned bytes;
};

static const struct bench_case cases[] = {
	{ "unchanged", UNCHANGED, 0 },
	{ "1 byte", SCATTERED, 1 },
	{ "16 bytes", SCATTERED, 16 },
	{ "256 bytes", SCATTERED, 256 },
	{ "2048 bytes", SCATTERED, 2048 },
	{ "256 in a stretch", STRETCH, 256 },
	{ "2048 in a stretch", STRETCH, 2048 },
	{ "guest counter", COUNTER, 0 },
	{ "random rewrite", RANDOM, 0 },
};

static void counter_fill(uint8_t *p, uint64_t seq)
{
	for (unsigned i = 0; i < PAGE / 8; i++) {
		uint64_t x = seq << 8 | i >> 3;
		memcpy(p + i * 8, &x, 8);
	}
}

static void make_pair(const struct bench_case *c, uint8_t *old, uint8_t *new,
		      uint64_t idx)
{
	if (c->kind == COUNTER) {
		/* A page rewritten thousands of page-writes later. */
		uint64_t seq = 100000 + idx * 37;
		counter_fill(old, seq);
		counter_fill(new, seq + 3000 + rnd() % 5000);
		return;
	}
	for (unsigned i = 0; i < PAGE; i += 8) {
		uint64_t v = rnd();
		memcpy(old + i, &v, 8);
	}
	memcpy(new, old, PAGE);
	switch (c->kind) {
	case SCATTERED:
		/* Distinct offsets: exactly c->bytes bytes differ. */
		for (unsigned k = 0; k < c->bytes;) {
			unsigned off = (unsigned)(rnd() % PAGE);
			if (new[off] != old[off])
				continue;
			new[off] = (uint8_t)~old[off];
			k++;
		}
		break;
	case STRETCH: {
		unsigned off = (unsigned)(rnd() % (PAGE - c->bytes + 1));
		for (unsigned k = 0; k < c->bytes; k++)
			new[off + k] = (uint8_t)~old[off + k];
		break;
	}
	case RANDOM:
		for (unsigned i = 0; i < PAGE; i += 8) {
			uint64_t v = rnd();
			memcpy(new + i, &v, 8);
		}
		break;
	default:
		break;
	}
}

int main(int argc, char **argv)
{
	size_t pairs = argc > 1 ? strtoull(argv[1], NULL, 0) : 4096;
	int runs = argc > 2 ? atoi(argv[2]) : 5;
	if (!pairs || runs < 1 || runs > MAX_RUNS) {
		fprintf(stderr, "usage: delta_bench [pairs] [runs 1..%d]\n", MAX_RUNS);
		return 2;
	}
	uint8_t *old = malloc(pairs * PAGE), *new = malloc(pairs * PAGE);
	uint8_t *dst = malloc(pairs * PAGE), *enc = malloc(pairs * PAGE);
	size_t *len = malloc(pairs * sizeof(*len));
	if (!old || !new || !dst || !enc || !len) {
		fprintf(stderr, "delta_bench: out of memory\n");
		return 1;
	}
	char la0[128], la1[128];
	loadavg(la0, sizeof(la0));
	printf("delta_bench: %zu page pairs (%.1f MiB), %d runs, limit %u bytes; "
	       "load average %s\n", pairs, pairs * PAGE / 1048576.0, runs,
	       RAM_DELTA_LIMIT, la0);
	printf("%-18s %8s %9s | %-36s | %-36s | %s\n", "case", "bytes/pg",
	       "overflow", "encode MB/s median (runs)", "decode MB/s median (runs)",
	       "copy MB/s median");
	for (size_t ci = 0; ci < sizeof(cases) / sizeof(cases[0]); ci++) {
		const struct bench_case *c = &cases[ci];
		double e[MAX_RUNS], d[MAX_RUNS], m[MAX_RUNS];
		uint64_t total = 0, overflow = 0;

		for (size_t i = 0; i < pairs; i++)
			make_pair(c, old + i * PAGE, new + i * PAGE, i);
		memcpy(dst, old, pairs * PAGE);
		for (int r = 0; r < runs; r++) {
			double t0 = now_s();
			for (size_t i = 0; i < pairs; i++)
				len[i] = delta_encode(old + i * PAGE, new + i * PAGE,
						      enc + i * PAGE, RAM_DELTA_LIMIT);
			double t1 = now_s();
			char err[256];
			for (size_t i = 0; i < pairs; i++)
				if (len[i] != DELTA_OVERFLOW &&
				    delta_decode(dst + i * PAGE, enc + i * PAGE, len[i], err)) {
					fprintf(stderr, "delta_bench: own delta refused: %s\n", err);
					return 1;
				}
			double t2 = now_s();
			/* The baseline: sending whole copies the page once. */
			memcpy(dst, new, pairs * PAGE);
			double t3 = now_s();
			memcpy(dst, old, pairs * PAGE);
			e[r] = pairs * PAGE / (t1 - t0) / 1e6;
			d[r] = pairs * PAGE / (t2 - t1) / 1e6;
			m[r] = pairs * PAGE / (t3 - t2) / 1e6;
		}
		/* Correctness once, outside the timing. */
		for (size_t i = 0; i < pairs; i++) {
			if (len[i] == DELTA_OVERFLOW) {
				overflow++;
				total += PAGE;
				continue;
			}
			total += len[i];
			char err[256];
			if (delta_decode(dst + i * PAGE, enc + i * PAGE, len[i], err) ||
			    memcmp(dst + i * PAGE, new + i * PAGE, PAGE)) {
				fprintf(stderr, "delta_bench: %s: pair %zu does not round-trip\n",
					c->name, i);
				return 1;
			}
		}
		double es[MAX_RUNS], ds[MAX_RUNS], ms[MAX_RUNS];
		memcpy(es, e, sizeof(e));
		memcpy(ds, d, sizeof(d));
		memcpy(ms, m, sizeof(m));
		qsort(es, (size_t)runs, sizeof(double), cmp_double);
		qsort(ds, (size_t)runs, sizeof(double), cmp_double);
		qsort(ms, (size_t)runs, sizeof(double), cmp_double);
		char er[160] = "", dr[160] = "";
		size_t eo = 0, dof = 0;
		for (int r = 0; r < runs; r++) {
			eo += (size_t)snprintf(er + eo, sizeof(er) - eo, "%s%.0f", r ? "," : "", e[r]);
			dof += (size_t)snprintf(dr + dof, sizeof(dr) - dof, "%s%.0f", r ? "," : "", d[r]);
			if (eo >= sizeof(er) || dof >= sizeof(dr))
				break;
		}
		double per = (double)total / pairs;
		char ep[170], dp[170];
		snprintf(ep, sizeof(ep), "(%s)", er);
		snprintf(dp, sizeof(dp), "(%s)", dr);
		/* Nothing to decode when every delta overflowed, and nothing
		 * but the checks when none changed anything. */
		if (overflow == pairs)
			printf("%-18s %8.0f %8.0f%% | %6.0f %-29s | %6s %-29s | %6.0f\n", c->name,
			       per, 100.0 * overflow / pairs, es[runs / 2], ep, "-",
			       "(sent whole)", ms[runs / 2]);
		else
			printf("%-18s %8.0f %8.0f%% | %6.0f %-29s | %6.0f %-29s | %6.0f\n",
			       c->name, per, 100.0 * overflow / pairs, es[runs / 2], ep,
			       ds[runs / 2], dp, ms[runs / 2]);
		fprintf(stderr, "{\"bench\": \"delta\", \"case\": \"%s\", \"pairs\": %zu, "
			"\"bytes-per-page\": %.1f, \"overflow\": %llu, \"encode-mbs\": %.0f, "
			"\"decode-mbs\": %.0f, \"copy-mbs\": %.0f, \"encode-runs\": [%s], "
			"\"decode-runs\": [%s]}\n", c->name, pairs, per,
			(unsigned long long)overflow, es[runs / 2], ds[runs / 2], ms[runs / 2],
			er, dr);
	}
	loadavg(la1, sizeof(la1));
	printf("load average after: %s\n", la1);
	free(old);
	free(new);
	free(dst);
	free(enc);
	free(len);
	return 0;
}
