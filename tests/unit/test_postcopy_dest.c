/*
 * Demand paging at a post-copy destination (migration/postcopy_dest.h,
 * vmm/uffd.h) on real anonymous memory with the real kernel userfaultfd:
 * threads that touch a missing page sleep until it is placed, each fault
 * becomes one request, zero pages, crossings (EEXIST), concurrent faults,
 * ensure_present for the VMM's own reads.  Needs root (or
 * vm.unprivileged_userfaultfd=1): skipped, saying why, without it.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "migration/postcopy_dest.h"
#include "util/log.h"
#include "vmm/memory.h"
#include "vmm/uffd.h"

#define PAGE GUEST_PAGE_SIZE

static void need_uffd(void)
{
	uint64_t f, io;
	char err[ERR_MAX] = "";
	if (uffd_probe(&f, &io, err))
		cr_skip_test("no userfaultfd here: %s", err);
}

/* ---- a request queue standing in for the wire ------------------------ */

struct reqq {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	uint64_t gpa[4096];
	uint32_t npages[4096];
	unsigned n, taken;
};

static struct reqq q = {
	.lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER,
};

static void on_request(void *opaque, uint64_t gpa, uint32_t npages)
{
	(void)opaque;
	pthread_mutex_lock(&q.lock);
	cr_assert_lt(q.n, 4096);
	q.gpa[q.n] = gpa;
	q.npages[q.n] = npages;
	q.n++;
	pthread_cond_broadcast(&q.cond);
	pthread_mutex_unlock(&q.lock);
}

/* Wait (at most ms) until at least n requests came; returns how many. */
static unsigned wait_requests_ms(unsigned n, long ms)
{
	struct timespec t;
	clock_gettime(CLOCK_REALTIME, &t);
	t.tv_sec += ms / 1000;
	t.tv_nsec += (ms % 1000) * 1000000L;
	if (t.tv_nsec >= 1000000000L) {
		t.tv_sec++;
		t.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&q.lock);
	while (q.n < n && pthread_cond_timedwait(&q.cond, &q.lock, &t) == 0)
		;
	unsigned got = q.n;
	pthread_mutex_unlock(&q.lock);
	return got;
}

static unsigned wait_requests(unsigned n)
{
	return wait_requests_ms(n, 5000);
}

static struct guest_memory mem;
static struct pc_dest *d;

static void dest_new(uint64_t size)
{
	char err[ERR_MAX] = "";
	need_uffd();
	memset(&q, 0, sizeof(q));
	pthread_mutex_init(&q.lock, NULL);
	pthread_cond_init(&q.cond, NULL);
	memory_layout(&mem, size);
	cr_assert_eq(memory_alloc(&mem, err), 0, "%s", err);
	cr_assert_eq(pcd_new(&mem, on_request, NULL, &d, err), 0, "%s", err);
	cr_assert_eq(pcd_start(d, err), 0, "%s", err);
}

static void dest_free(void)
{
	pcd_free(d);
	d = NULL;
	memory_free(&mem);
}

static void fill(uint8_t *page, uint64_t gpa)
{
	for (unsigned i = 0; i < PAGE; i += 8)
		memcpy(page + i, &(uint64_t){ gpa * 31 + i + 1 }, 8);
}

/* ---- threads that touch guest memory ---------------------------------- */

struct toucher {
	uint64_t gpa;
	uint64_t first;       /* the first 8 bytes it read */
	atomic_bool done;
	pthread_t t;
};

static void *touch(void *arg)
{
	struct toucher *t = arg;
	memcpy(&t->first, memory_gpa_to_hva(&mem, t->gpa, 8), 8);
	atomic_store(&t->done, true);
	return NULL;
}

static void start_touch(struct toucher *t, uint64_t gpa)
{
	t->gpa = gpa;
	atomic_store(&t->done, false);
	cr_assert_eq(pthread_create(&t->t, NULL, touch, t), 0);
}

Test(uffd, features_are_probed)
{
	uint64_t f = 0, io = 0;
	char err[ERR_MAX] = "";
	need_uffd();
	cr_assert_eq(uffd_probe(&f, &io, err), 0, "%s", err);
	cr_assert_neq(io, 0, "the API reports its ioctls");
	for (const struct uffd_feature_name *n = uffd_feature_names; n->name; n++)
		if (f & n->bit)
			cr_log_info("userfaultfd feature %s", n->name);
	/* No feature bit a kernel may report goes unnamed here, as far as
	 * this table knows them. */
	int fd = uffd_open(0, err);
	cr_assert_geq(fd, 0, "%s", err);
	close(fd);
	fd = uffd_open(1ULL << 62, err);
	cr_assert_lt(fd, 0, "a feature no kernel has is refused");
}

Test(uffd, copy_twice_is_eexist)
{
	char err[ERR_MAX] = "";
	need_uffd();
	size_t len = 4 * PAGE;
	uint8_t *m = mmap(NULL, len, PROT_READ | PROT_WRITE,
			  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	cr_assert_neq(m, MAP_FAILED);
	int fd = uffd_open(0, err);
	cr_assert_geq(fd, 0, "%s", err);
	cr_assert_eq(uffd_register_missing(fd, m, len, err), 0, "%s", err);
	static uint8_t src[2 * 4096];
	memset(src, 0xab, sizeof(src));
	/* from an unaligned source: the kernel copies from user memory */
	cr_assert_eq(uffd_copy(fd, m, src + 3, PAGE), 0);
	cr_assert_eq(uffd_copy(fd, m, src, PAGE), -EEXIST);
	cr_assert_eq(uffd_zeropage(fd, m + PAGE, PAGE), 0);
	cr_assert_eq(uffd_zeropage(fd, m + PAGE, PAGE), -EEXIST);
	cr_assert_eq(uffd_copy(fd, m + PAGE, src, PAGE), -EEXIST);
	cr_assert_eq(m[0], 0xab);
	cr_assert_eq(m[PAGE], 0);
	m[PAGE] = 5;          /* a zero page is writable (copy on write) */
	cr_assert_eq(m[PAGE], 5);
	cr_assert_eq(uffd_unregister(fd, m, len), 0);
	cr_assert_eq(m[2 * PAGE], 0, "unregistered: plain anonymous memory");
	close(fd);
	munmap(m, len);
}

Test(postcopy_dest, a_fault_is_one_request_and_placing_wakes_it)
{
	dest_new(4 << 20);
	struct toucher t;
	start_touch(&t, 0x12000);
	cr_assert_eq(wait_requests(1), 1, "the fault became a request");
	cr_assert_eq(q.gpa[0], 0x12000);
	cr_assert_eq(q.npages[0], 1);
	usleep(50 * 1000);
	cr_assert_not(atomic_load(&t.done), "the thread waits for its page");
	cr_assert_not(pcd_received(d, 0x12000));

	static uint8_t page[4096];
	fill(page, 0x12000);
	char err[ERR_MAX] = "";
	cr_assert_eq(pcd_place(d, 0x12000, page, err), 0, "%s", err);
	pthread_join(t.t, NULL);
	cr_assert_eq(t.first, 0x12000 * 31 + 1, "it read the page placed");
	cr_assert(pcd_received(d, 0x12000));
	cr_assert_eq(memcmp(memory_gpa_to_hva(&mem, 0x12000, PAGE), page, PAGE), 0);

	struct pcd_stats st;
	pcd_stats(d, &st);
	cr_assert_eq(st.faults, 1);
	cr_assert_eq(st.requested, 1);
	cr_assert_eq(st.placed, 1);
	cr_assert_eq(st.missing, st.pages - 1);
	cr_assert_eq(st.lat_samples, 1, "the request was timed");
	cr_assert_gt(st.lat_p50_ns, 40 * 1000 * 1000, "it waited ~50 ms for the page");
	dest_free();
}

Test(postcopy_dest, zero_pages_and_crossings)
{
	dest_new(1 << 20);
	char err[ERR_MAX] = "";
	static uint8_t page[4096];
	fill(page, 0x3000);
	cr_assert_eq(pcd_place(d, 0x2000, NULL, err), 0, "%s", err);
	cr_assert_eq(pcd_place(d, 0x2000, page, err), 1, "a crossing, not an error");
	cr_assert_eq(pcd_place(d, 0x3000, page, err), 0, "%s", err);
	cr_assert_eq(pcd_place(d, 0x3000, NULL, err), 1);
	uint8_t *z = memory_gpa_to_hva(&mem, 0x2000, PAGE);
	for (unsigned i = 0; i < PAGE; i++)
		cr_assert_eq(z[i], 0, "the first arrival stays");
	cr_assert_eq(memcmp(memory_gpa_to_hva(&mem, 0x3000, PAGE), page, PAGE), 0);
	z[7] = 9;   /* a placed zero page takes writes */
	cr_assert_eq(z[7], 9);

	cr_assert_eq(pcd_place(d, 0x2001, page, err), -EINVAL);
	cr_assert_eq(pcd_place(d, 1 << 20, page, err), -EINVAL, "outside RAM");
	cr_assert(strstr(err, "not a page of guest RAM"), "%s", err);

	struct pcd_stats st;
	pcd_stats(d, &st);
	cr_assert_eq(st.placed, 1);
	cr_assert_eq(st.zero_placed, 1);
	cr_assert_eq(st.crossings, 2);
	cr_assert_eq(st.requested, 0, "nothing was asked for");
	dest_free();
}

/* Two threads place the same pages at once: each page is placed once,
 * every second arrival is a crossing (the kernel's EEXIST or the bitmap),
 * and the contents are the page's. */
struct placer {
	uint64_t n;
	int errors;
	pthread_t t;
};

static void *place_all(void *arg)
{
	struct placer *p = arg;
	uint8_t page[4096];
	char err[ERR_MAX];
	for (uint64_t i = 0; i < p->n; i++) {
		fill(page, i * PAGE);
		if (pcd_place(d, i * PAGE, page, err) < 0)
			p->errors++;
	}
	return NULL;
}

Test(postcopy_dest, racing_placements_cross_cleanly)
{
	dest_new(8 << 20);
	struct placer a = { .n = 2048 }, b = { .n = 2048 };
	pthread_create(&a.t, NULL, place_all, &a);
	pthread_create(&b.t, NULL, place_all, &b);
	pthread_join(a.t, NULL);
	pthread_join(b.t, NULL);
	cr_assert_eq(a.errors + b.errors, 0);
	struct pcd_stats st;
	pcd_stats(d, &st);
	cr_assert_eq(st.placed, 2048);
	cr_assert_eq(st.crossings, 2048);
	cr_assert(pcd_complete(d));
	uint8_t page[4096];
	for (uint64_t i = 0; i < 2048; i++) {
		fill(page, i * PAGE);
		cr_assert_eq(memcmp(memory_gpa_to_hva(&mem, i * PAGE, PAGE), page, PAGE), 0);
	}
	dest_free();
}

Test(postcopy_dest, concurrent_faults_are_all_requested_before_any_answer)
{
	dest_new(16 << 20);
	enum { N = 6 };
	struct toucher t[N];
	for (int i = 0; i < N; i++)
		start_touch(&t[i], (uint64_t)(i * 517 + 3) * PAGE);
	cr_assert_eq(wait_requests(N), N,
		     "every sleeping thread's fault was requested at once");
	for (int i = 0; i < N; i++)
		cr_assert_not(atomic_load(&t[i].done));
	/* answered in reverse: each thread wakes with its own page */
	char err[ERR_MAX] = "";
	uint8_t page[4096];
	for (int k = N - 1; k >= 0; k--) {
		uint64_t gpa = q.gpa[k];
		fill(page, gpa);
		cr_assert_eq(pcd_place(d, gpa, page, err), 0, "%s", err);
	}
	for (int i = 0; i < N; i++) {
		pthread_join(t[i].t, NULL);
		cr_assert_eq(t[i].first, t[i].gpa * 31 + 1);
	}
	dest_free();
}

Test(postcopy_dest, the_same_page_faulted_twice_is_asked_for_once)
{
	dest_new(1 << 20);
	struct toucher a, b;
	start_touch(&a, 0x5000);
	start_touch(&b, 0x5008 & ~(PAGE - 1));
	cr_assert_geq(wait_requests(1), 1);
	usleep(50 * 1000);
	struct pcd_stats st;
	pcd_stats(d, &st);
	cr_assert_eq(q.n, 1, "one request for one page");
	cr_assert_eq(st.requested, 1);
	char err[ERR_MAX] = "";
	cr_assert_eq(pcd_place(d, 0x5000, NULL, err), 0);
	pthread_join(a.t, NULL);
	pthread_join(b.t, NULL);
	cr_assert_eq(a.first, 0);
	cr_assert_eq(b.first, 0);
	dest_free();
}

/* A server thread answering the queue, as the source would. */
static atomic_bool serving;

static void *serve(void *arg)
{
	(void)arg;
	unsigned k = 0;
	char err[ERR_MAX];
	uint8_t page[4096];
	while (atomic_load(&serving)) {
		if (wait_requests_ms(k + 1, 20) <= k)
			continue;
		for (uint32_t i = 0; i < q.npages[k]; i++) {
			uint64_t gpa = q.gpa[k] + i * PAGE;
			fill(page, gpa);
			pcd_place(d, gpa, page, err);
		}
		k++;
	}
	return NULL;
}

Test(postcopy_dest, ensure_present_requests_missing_runs_and_waits)
{
	dest_new(4 << 20);
	char err[ERR_MAX] = "";
	uint8_t page[4096];
	fill(page, 0x11000);
	cr_assert_eq(pcd_place(d, 0x11000, page, err), 0);

	atomic_store(&serving, true);
	pthread_t srv;
	pthread_create(&srv, NULL, serve, NULL);
	/* [0x10800, 0x14000): pages 0x10000, 0x12000, 0x13000 missing */
	cr_assert_eq(pcd_ensure_present(d, 0x10800, 0x3800), 0);
	cr_assert_eq(q.n, 2, "two runs: page 0x10000, then 0x12000-0x13fff");
	cr_assert_eq(q.gpa[0], 0x10000);
	cr_assert_eq(q.npages[0], 1);
	cr_assert_eq(q.gpa[1], 0x12000);
	cr_assert_eq(q.npages[1], 2);
	for (uint64_t g = 0x10000; g < 0x14000; g += PAGE) {
		cr_assert(pcd_received(d, g));
		fill(page, g);
		cr_assert_eq(memcmp(memory_gpa_to_hva(&mem, g, PAGE), page, PAGE), 0);
	}
	/* all present: no request, no wait */
	cr_assert_eq(pcd_ensure_present(d, 0x10000, 0x4000), 0);
	cr_assert_eq(q.n, 2);
	cr_assert_eq(pcd_ensure_present(d, (4 << 20) - PAGE, 2 * PAGE), -EINVAL);
	atomic_store(&serving, false);
	pthread_join(srv, NULL);
	dest_free();
}

static void *cancel_later(void *arg)
{
	(void)arg;
	usleep(50 * 1000);
	pcd_cancel(d);
	return NULL;
}

Test(postcopy_dest, cancel_ends_ensure_present)
{
	dest_new(1 << 20);
	pthread_t c;
	pthread_create(&c, NULL, cancel_later, NULL);
	cr_assert_eq(pcd_ensure_present(d, 0, PAGE), -ECANCELED);
	cr_assert_eq(pcd_wait_complete(d), -ECANCELED);
	pthread_join(c, NULL);
	dest_free();
}

Test(postcopy_dest, pages_marked_present_are_not_requested)
{
	dest_new(1 << 20);
	/* as a hybrid destination would: pre-copy wrote these first */
	pcd_mark_present(d, 0, 8 * PAGE);
	cr_assert(pcd_received(d, 7 * PAGE));
	cr_assert_not(pcd_received(d, 8 * PAGE));
	cr_assert_eq(pcd_ensure_present(d, 0, 8 * PAGE), 0);
	cr_assert_eq(q.n, 0);
	struct pcd_stats st;
	pcd_stats(d, &st);
	cr_assert_eq(st.missing, st.pages - 8);
	dest_free();
}

Test(postcopy_dest, teardown_wakes_a_thread_still_asleep, .timeout = 10)
{
	dest_new(1 << 20);
	struct toucher t;
	start_touch(&t, 0x9000);
	cr_assert_eq(wait_requests(1), 1);
	pcd_free(d);      /* unregisters: the sleeper retries its fault */
	d = NULL;
	pthread_join(t.t, NULL);
	cr_assert_eq(t.first, 0, "it found plain anonymous memory");
	memory_free(&mem);
}

Test(postcopy_dest, discarded_pages_fault_again, .timeout = 10)
{
	dest_new(1 << 20);
	char err[ERR_MAX] = "";
	uint8_t page[4096];
	/* pre-copy's copy, as a hybrid destination holds it (written after
	 * registration here: each page faults once and gets a zero page,
	 * no request, since it counts as present) */
	pcd_mark_present(d, 0, 1 << 20);
	uint8_t *p = memory_gpa_to_hva(&mem, 0x4000, PAGE);
	memset(p, 0x33, 3 * PAGE);
	cr_assert(pcd_complete(d));
	cr_assert_eq(q.n, 0);
	/* the source says 0x4000 and 0x5000 were dirtied again */
	cr_assert_eq(pcd_discard(d, 0x4000, 2 * PAGE), 0);
	cr_assert_not(pcd_complete(d));
	cr_assert_not(pcd_received(d, 0x5000));
	cr_assert_eq(pcd_discard(d, 0x4001, PAGE), -EINVAL);
	cr_assert_eq(pcd_discard(d, 1 << 20, PAGE), -EINVAL);
	struct toucher t;
	start_touch(&t, 0x5000);
	cr_assert_eq(wait_requests(1), 1, "the stale page is asked for again");
	cr_assert_eq(q.gpa[0], 0x5000);
	fill(page, 0x5000);
	cr_assert_eq(pcd_place(d, 0x5000, page, err), 0, "%s", err);
	pthread_join(t.t, NULL);
	cr_assert_eq(t.first, 0x5000 * 31 + 1, "the current copy, not the stale one");
	cr_assert_eq(pcd_place(d, 0x4000, NULL, err), 0, "%s", err);
	cr_assert(pcd_complete(d));
	cr_assert_eq(p[0], 0);
	cr_assert_eq(p[0x2000], 0x33, "pages not discarded keep their data");
	struct pcd_stats st;
	pcd_stats(d, &st);
	cr_assert_eq(st.faults, 4, "3 writes of pre-copy, 1 touch after the discard");
	cr_assert_eq(st.requested, 1);
	dest_free();
}

Test(postcopy_dest, a_run_skips_pages_already_there)
{
	dest_new(1 << 20);
	char err[ERR_MAX] = "";
	static uint8_t run[6 * 4096], mine[4096];
	for (unsigned k = 0; k < 6; k++)
		fill(run + k * PAGE, 0x20000 + k * PAGE);
	memset(mine, 0x44, PAGE);
	/* pages 2 and 5 of the run came first (answers) */
	cr_assert_eq(pcd_place(d, 0x22000, mine, err), 0, "%s", err);
	cr_assert_eq(pcd_place(d, 0x25000, NULL, err), 0, "%s", err);
	cr_assert_eq(pcd_place_run(d, 0x20000, run, 6, err), 4, "%s", err);
	for (unsigned k = 0; k < 6; k++) {
		const uint8_t *want = k == 2 ? mine : run + k * PAGE;
		if (k == 5)
			continue;
		cr_assert_eq(memcmp(memory_gpa_to_hva(&mem, 0x20000 + k * PAGE, PAGE),
				    want, PAGE), 0, "page %u", k);
		cr_assert(pcd_received(d, 0x20000 + k * PAGE));
	}
	cr_assert_eq(*(uint8_t *)memory_gpa_to_hva(&mem, 0x25000, 1), 0);
	struct pcd_stats st;
	pcd_stats(d, &st);
	cr_assert_eq(st.placed, 5);
	cr_assert_eq(st.zero_placed, 1);
	cr_assert_eq(st.crossings, 2);
	cr_assert_eq(pcd_place_run(d, 0xff000, run, 2, err), -EINVAL, "past the end");
	cr_assert_eq(pcd_place_run(d, 0x30000, run, 6, err), 6);
	dest_free();
}
