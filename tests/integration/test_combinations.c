/*
 * Every combination of the migration's features (issue "Live migration
 * IV"): page channels {1, 2, 4} x compression {none, zstd, lz4} x delta
 * encoding {off, on} x dirty tracking {bitmap, ring} x mode {pre-copy,
 * post-copy, hybrid}, each migrating a busy verifying guest that must
 * arrive equal from outside (digests of the paused source and the
 * --paused destination), the destination reporting what was asked for,
 * and the guest finding no bad page.
 *
 * All 108 combinations take minutes; `make test` runs a covering set
 * instead, built below so that every pair of values of any two features
 * meets in at least one migration (pairwise coverage: a fault that needs
 * two features together shows), and checked to be so.  FERRY_MATRIX=full
 * runs all 108.  The migrations are hops: each destination is the next
 * hop's source, started with the ring when that hop tracks with it.
 */
#include "harness/harness.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

TestSuite(combinations, H_FIXTURES, .timeout = 900);

enum { F_CHANNELS, F_COMPRESSION, F_DELTA, F_TRACKING, F_MODE, NFACTORS };

static const unsigned levels[NFACTORS] = { 3, 3, 2, 2, 3 };
static const char *const channels[] = { "1", "2", "4" };
static const char *const compressions[] = { "none", "zstd", "lz4" };
static const char *const trackings[] = { "bitmap", "ring" };
static const char *const modes[] = { "precopy", "postcopy", "hybrid" };

#define NCOMBOS (3 * 3 * 2 * 2 * 3)
#define MAXLEVEL 3

struct combo {
	unsigned v[NFACTORS];
};

static struct combo combo_of(unsigned index)
{
	struct combo c;
	for (unsigned f = 0; f < NFACTORS; f++) {
		c.v[f] = index % levels[f];
		index /= levels[f];
	}
	return c;
}

/* covered[f][g][a][b]: values a of factor f and b of factor g (f < g) met. */
typedef bool pairs_t[NFACTORS][NFACTORS][MAXLEVEL][MAXLEVEL];

static unsigned new_pairs(pairs_t covered, const struct combo *c)
{
	unsigned n = 0;
	for (unsigned f = 0; f < NFACTORS; f++)
		for (unsigned g = f + 1; g < NFACTORS; g++)
			n += !covered[f][g][c->v[f]][c->v[g]];
	return n;
}

static void cover(pairs_t covered, const struct combo *c)
{
	for (unsigned f = 0; f < NFACTORS; f++)
		for (unsigned g = f + 1; g < NFACTORS; g++)
			covered[f][g][c->v[f]][c->v[g]] = true;
}

/* Greedy pairwise: take the combination that meets the most pairs not met
 * yet (the first such, so the set is the same every run) until none is
 * left; then prove every pair is met.  Returns how many went to out. */
static unsigned pairwise(struct combo *out)
{
	static pairs_t covered;
	unsigned n = 0;
	memset(covered, 0, sizeof(covered));
	for (;;) {
		unsigned best = NCOMBOS, best_new = 0;
		for (unsigned i = 0; i < NCOMBOS; i++) {
			struct combo c = combo_of(i);
			unsigned k = new_pairs(covered, &c);
			if (k > best_new) {
				best_new = k;
				best = i;
			}
		}
		if (best == NCOMBOS)
			break;
		out[n] = combo_of(best);
		cover(covered, &out[n]);
		n++;
	}
	for (unsigned f = 0; f < NFACTORS; f++)
		for (unsigned g = f + 1; g < NFACTORS; g++)
			for (unsigned a = 0; a < levels[f]; a++)
				for (unsigned b = 0; b < levels[g]; b++)
					h_assert(covered[f][g][a][b], "pairwise set misses "
						 "factor %u=%u with factor %u=%u", f, a, g, b);
	return n;
}

static struct h_vm *start_destination(const char *name, bool ring)
{
	return ring ? h_incoming(name, H_CONTROL | H_CONSOLE, "--paused",
				 "--dirty-ring", "4096", NULL)
		    : h_incoming(name, H_CONTROL | H_CONSOLE, "--paused", NULL);
}

Test(combinations, every_pair_of_features_migrates_equal)
{
	static struct combo list[NCOMBOS];
	const char *m = getenv("FERRY_MATRIX");
	bool full = m && !strcmp(m, "full");
	unsigned n = 0;
	if (full)
		for (unsigned i = 0; i < NCOMBOS; i++)
			list[n++] = combo_of(i);
	else
		n = pairwise(list);
	/* 3 x 3 pairs need 9 at least; a set near 108 would be no saving. */
	h_assert(full || (n >= 9 && n <= NCOMBOS / 4), "a covering set of %u "
		 "combinations", n);

	const char *guest = "workload=dirty wss=16M rate=0 verify=1 verify_ms=500";
	struct h_vm *src = list[0].v[F_TRACKING]
		? h_boot("hop0", H_CONTROL | H_CONSOLE, guest, "--memory", "256M",
			 "--vcpus", "2", "--dirty-ring", "4096", NULL)
		: h_boot("hop0", H_CONTROL | H_CONSOLE, guest, "--memory", "256M",
			 "--vcpus", "2", NULL);
	h_wait_ready(src, 60);
	h_wait_guest_ge(src, "checks-done", 1, 30);
	h_wait_progress(src, 1, 20);

	for (unsigned i = 0; i < n; i++) {
		const struct combo *c = &list[i];
		const char *comp = compressions[c->v[F_COMPRESSION]];
		const char *mode = modes[c->v[F_MODE]];
		bool delta = c->v[F_DELTA], ring = c->v[F_TRACKING];
		bool next_ring = i + 1 < n && list[i + 1].v[F_TRACKING];
		char name[32], what[160];
		snprintf(name, sizeof(name), "hop%u", i + 1);
		snprintf(what, sizeof(what), "hop %u: %s channel(s), %s, xbzrle %s, %s, %s",
			 i + 1, channels[c->v[F_CHANNELS]], comp, delta ? "on" : "off",
			 trackings[ring], mode);

		struct h_vm *dst = start_destination(name, next_ring);
		json_decref(h_qmp_ok(src, "{\"execute\":\"migrate\",\"arguments\":"
				     "{\"uri\":\"%s\",\"x-keep-source\":true,"
				     "\"multifd-channels\":%s,\"multifd-compression\":\"%s\","
				     "\"xbzrle\":%s,\"mode\":\"%s\"%s}}",
				     h_mig_uri(dst->port), channels[c->v[F_CHANNELS]], comp,
				     delta ? "true" : "false", mode,
				     c->v[F_MODE] == 2 ? ",\"precopy-rounds\":2" : ""));
		json_t *q = h_wait_migration(src, 120, NULL);
		char *s = h_dump(q);
		h_assert(!strcmp(h_str(q, "status"), "completed"), "%s: %s", what, s);
		json_t *f = json_object_get(q, "ferry");
		/* What ran is what was asked for, as the source reports it. */
		const char *tracked = h_str(json_object_get(f, "dirty-tracking"), "method");
		h_assert(!strcmp(tracked, trackings[ring]), "%s: tracked with %s: %s",
			 what, tracked, s);
		json_int_t count = h_int(json_object_get(f, "channels"), "count");
		h_assert(count == atoi(channels[c->v[F_CHANNELS]]),
			 "%s: %lld channel(s): %s", what, (long long)count, s);
		const char *method = h_str(json_object_get(f, "compression"), "method");
		h_assert(!strcmp(method, comp), "%s: compression %s: %s", what, method, s);
		free(s);
		json_decref(q);

		h_expect_same_memory(src, dst);
		h_wait_progress(dst, 2, 30);
		h_assert(h_guest_u64(dst, "errors") == 0, "%s: bad pages", what);
		fprintf(stderr, "combinations: %s: equal\n", what);
		src = dst;
	}
	h_expect_verifies(src);
}
