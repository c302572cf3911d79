/*
 * postcopy_dest.c - see postcopy_dest.h.
 */
#include "migration/postcopy_dest.h"

#include <errno.h>
#include <linux/userfaultfd.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "migration/postcopy_proto.h"
#include "util/bitmap.h"
#include "util/clock.h"
#include "util/log.h"
#include "vmm/memory_runs.h"
#include "vmm/memory_zap.h"
#include "vmm/uffd.h"

#define LAT_MAX_SAMPLES (1u << 22)   /* 32 MiB at most, 16 GiB of faults */
#define FAULT_BATCH     64

struct pc_dest {
	struct guest_memory *mem;
	int uffd;
	int stop_fd;                    /* eventfd: the fault thread ends */
	pcd_request_fn request;
	void *opaque;
	pthread_t thread;
	bool started;
	bool retired;                /* pcd_retire: mem is not ours any more */

	uint64_t npages;

	pthread_mutex_t lock;
	pthread_cond_t arrived;         /* a page came: ensure_present waiters */
	pthread_cond_t all_here;        /* the last page came (or cancel) */
	uint64_t *received;             /* bitmap, under lock */
	uint64_t *requested;            /* bitmap, under lock */
	/* pcd_confirmations: the received pages told already (bitmap,
	 * under lock; NULL until the first call) */
	uint64_t *confirmed;
	uint64_t *req_ns;               /* when requested (0: not timed) */
	uint64_t missing;
	unsigned waiters;
	bool cancelled;
	bool paused;                    /* pcd_pause: no page comes for now */
	struct pcd_stats st;
	uint64_t *lat;
	uint64_t nlat, cap_lat;
	/* Discards queued (pcd_discard_queue): the ranges to drop, and the
	 * page runs whose bits change once they are dropped. */
	struct mem_zap *zap;
	struct { uint64_t first, n; } *pend;
	size_t npend, cap_pend;
	/* pcd_check_pristine found no page here, and none came since (under
	 * lock): a listed run has nothing to drop. */
	bool pristine;
};

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static bool bit_get(const uint64_t *b, uint64_t i)
{
	return (b[i / 64] >> (i % 64)) & 1;
}

static void bit_set(uint64_t *b, uint64_t i)
{
	b[i / 64] |= 1ULL << (i % 64);
}

/* The gpa of a host address inside guest RAM, or UINT64_MAX. */
static uint64_t hva_to_gpa(const struct pc_dest *d, uintptr_t hva)
{
	for (unsigned i = 0; i < d->mem->nslots; i++) {
		const struct mem_slot *s = &d->mem->slots[i];
		uintptr_t h = (uintptr_t)s->hva;
		if (hva >= h && hva - h < s->size)
			return s->gpa + (hva - h);
	}
	return UINT64_MAX;
}

static int ensure_hook(void *opaque, uint64_t gpa, uint64_t len)
{
	return pcd_ensure_present(opaque, gpa, len);
}

int pcd_available(char *why)
{
	char err[ERR_MAX] = "";
	int fd = uffd_open(0, err);
	if (fd < 0)
		return err_set(why, fd, "post-copy needs userfaultfd: %s", err);
	/* The registration guest RAM will need, tried on one page. */
	void *p = mmap(NULL, GUEST_PAGE_SIZE, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	int r = p == MAP_FAILED ? -errno : 0;
	if (r)
		err_set(err, r, "mmap: %s", strerror(-r));
	else {
		r = uffd_register_missing(fd, p, GUEST_PAGE_SIZE, err);
		if (!r)
			uffd_unregister(fd, p, GUEST_PAGE_SIZE);
		munmap(p, GUEST_PAGE_SIZE);
	}
	close(fd);
	return r ? err_set(why, r, "post-copy needs userfaultfd: %s", err) : 0;
}

int pcd_new(struct guest_memory *mem, pcd_request_fn request, void *opaque,
	    struct pc_dest **out, char *err)
{
	struct pc_dest *d = calloc(1, sizeof(*d));
	if (!d)
		return err_set(err, -ENOMEM, "out of memory");
	d->mem = mem;
	d->request = request;
	d->opaque = opaque;
	d->uffd = -1;
	d->stop_fd = -1;
	pthread_mutex_init(&d->lock, NULL);
	pthread_cond_init(&d->arrived, NULL);
	clock_cond_init_monotonic(&d->all_here);   /* pcd_wait_complete_for */
	int r;
	d->npages = memory_npages(mem);
	size_t words = d->npages / 64 + 1;
	d->received = calloc(words, sizeof(uint64_t));
	d->requested = calloc(words, sizeof(uint64_t));
	d->req_ns = calloc(d->npages, sizeof(uint64_t));
	if (!d->received || !d->requested || !d->req_ns) {
		r = err_set(err, -ENOMEM, "out of memory for %llu page bitmaps",
			    (unsigned long long)d->npages);
		goto fail;
	}
	d->missing = d->npages;
	d->st.pages = d->npages;
	d->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (d->stop_fd < 0) {
		r = err_set(err, -errno, "eventfd: %s", strerror(errno));
		goto fail;
	}
	/* No feature is needed for MISSING faults on anonymous memory; ask
	 * for none so that older kernels serve us too. */
	d->uffd = uffd_open(0, err);
	if (d->uffd < 0) {
		r = d->uffd;
		goto fail;
	}
	for (unsigned i = 0; i < mem->nslots; i++) {
		r = uffd_register_missing(d->uffd, mem->slots[i].hva,
					  mem->slots[i].size, err);
		if (r) {
			while (i-- > 0)
				uffd_unregister(d->uffd, mem->slots[i].hva,
						mem->slots[i].size);
			goto fail;
		}
	}
	/* From here on host code asks before it touches guest RAM. */
	mem->ensure = ensure_hook;
	mem->ensure_opaque = d;
	*out = d;
	return 0;
fail:
	if (d->uffd >= 0)
		close(d->uffd);
	if (d->stop_fd >= 0)
		close(d->stop_fd);
	free(d->received);
	free(d->requested);
	free(d->req_ns);
	pthread_mutex_destroy(&d->lock);
	pthread_cond_destroy(&d->arrived);
	pthread_cond_destroy(&d->all_here);
	free(d);
	return r;
}

void pcd_mark_present(struct pc_dest *d, uint64_t gpa, uint64_t len)
{
	uint64_t start = gpa & ~(GUEST_PAGE_SIZE - 1), end = gpa + len;

	pthread_mutex_lock(&d->lock);
	/* Slot by slot: page indices are contiguous inside a slot, and a
	 * word at a time (bitmap.h): all of RAM is marked in the pause. */
	for (unsigned s = 0; s < d->mem->nslots && start < end; s++) {
		const struct mem_slot *m = &d->mem->slots[s];
		uint64_t lo = start > m->gpa ? start : m->gpa;
		uint64_t hi = end < m->gpa + m->size ? end : m->gpa + m->size;
		if (lo >= hi)
			continue;
		uint64_t n = (hi - lo + GUEST_PAGE_SIZE - 1) / GUEST_PAGE_SIZE;
		uint64_t newly = bitmap_set_range(d->received, memory_page_index(d->mem, lo), n);
		d->missing -= newly;
		if (newly && d->missing == 0)
			pthread_cond_broadcast(&d->all_here);
	}
	pthread_mutex_unlock(&d->lock);
}

struct zap {
	struct mem_zap *z;
	uint8_t *slot_hva;
};

/* Private anonymous memory: the pages are gone, and the registered range
 * reports the next touch as missing. */
static int zap(void *opaque, uint64_t first, uint64_t npages)
{
	const struct zap *z = opaque;
	return mem_zap_add(z->z, z->slot_hva + first * GUEST_PAGE_SIZE,
			   npages * GUEST_PAGE_SIZE);
}

/* A run this short is dropped whole, without asking the page tables
 * which of its pages are there: the question costs more than dropping
 * a page that is not. */
#define DISCARD_SCAN_MIN_PAGES 64

int pcd_discard_queue(struct pc_dest *d, uint64_t gpa, uint64_t len)
{
	if ((gpa | len) & (GUEST_PAGE_SIZE - 1))
		return -EINVAL;
	void *hva = memory_gpa_to_hva(d->mem, gpa, len);
	if (!hva || !len)
		return -EINVAL;
	if (!d->zap) {
		if (!(d->zap = malloc(sizeof(*d->zap))))
			return -ENOMEM;
		mem_zap_init(d->zap);
	}
	if (d->npend == d->cap_pend) {
		size_t cap = d->cap_pend ? 2 * d->cap_pend : 1024;
		void *p = realloc(d->pend, cap * sizeof(*d->pend));
		if (!p)
			return -ENOMEM;
		d->pend = p;
		d->cap_pend = cap;
	}
	unsigned s = 0;
	while (gpa < d->mem->slots[s].gpa ||
	       gpa - d->mem->slots[s].gpa >= d->mem->slots[s].size)
		s++;
	uint64_t npages = len / GUEST_PAGE_SIZE;
	pthread_mutex_lock(&d->lock);
	bool pristine = d->pristine;
	pthread_mutex_unlock(&d->lock);
	/* Of a long run only the populated parts: a page never touched here
	 * is missing already, and dropping an empty range still costs a
	 * walk and KVM's invalidation of it - inside the switchover's
	 * pause, over every listed page of a big guest. */
	struct zap z = { d->zap, d->mem->slots[s].hva };
	int r = pristine ? 0
		: npages < DISCARD_SCAN_MIN_PAGES ? mem_zap_add(d->zap, hva, len)
		: memory_populated_runs(d->mem, s, (gpa - d->mem->slots[s].gpa) /
					GUEST_PAGE_SIZE, npages, zap, &z);
	if (r)
		return r;
	d->pend[d->npend].first = memory_page_index(d->mem, gpa);
	d->pend[d->npend].n = npages;
	d->npend++;
	return 0;
}

static void untime(void *opaque, uint64_t i)
{
	struct pc_dest *d = opaque;
	d->req_ns[i] = 0;
}

static int found(void *opaque, uint64_t first, uint64_t npages)
{
	(void)opaque;
	(void)first;
	(void)npages;
	return 1;
}

void pcd_check_pristine(struct pc_dest *d)
{
	int r = 0;
	for (unsigned s = 0; s < d->mem->nslots && !r; s++)
		r = memory_populated_runs(d->mem, s, 0, d->mem->slots[s].size / GUEST_PAGE_SIZE,
					  found, NULL);
	pthread_mutex_lock(&d->lock);
	d->pristine = r == 0;
	pthread_mutex_unlock(&d->lock);
}

int pcd_discard_flush(struct pc_dest *d)
{
	int r = d->zap ? mem_zap_flush(d->zap) : 0;
	/* The batch holds a pidfd: gone with it, not kept for the VM's
	 * life (a list comes once, at the switch). */
	if (d->zap)
		mem_zap_fini(d->zap);
	free(d->zap);
	d->zap = NULL;
	/* Only once the pages are gone do they count as missing: a page
	 * placed meanwhile would be dropped again unseen. */
	if (!r) {
		/* A word at a time, and req_ns only where a request was
		 * timed: its pages are touched nowhere else in the pause. */
		pthread_mutex_lock(&d->lock);
		for (size_t k = 0; k < d->npend; k++) {
			uint64_t first = d->pend[k].first, n = d->pend[k].n;
			d->missing += bitmap_clear_range(d->received, first, n, NULL, NULL);
			bitmap_clear_range(d->requested, first, n, untime, d);
		}
		pthread_mutex_unlock(&d->lock);
	}
	d->npend = 0;
	free(d->pend);
	d->pend = NULL;
	d->cap_pend = 0;
	return r;
}

int pcd_discard(struct pc_dest *d, uint64_t gpa, uint64_t len)
{
	int r = pcd_discard_queue(d, gpa, len);
	int f = pcd_discard_flush(d);
	return r ? r : f;
}

/*
 * Claim page i for a request: true if it is neither here nor asked for
 * yet (then it is asked for now).  Under lock.
 */
static bool claim(struct pc_dest *d, uint64_t i, uint64_t t)
{
	if (bit_get(d->received, i) || bit_get(d->requested, i))
		return false;
	bit_set(d->requested, i);
	d->req_ns[i] = t;
	d->st.requested++;
	return true;
}

static void handle_fault(struct pc_dest *d, const struct uffd_msg *m)
{
	uintptr_t hva = (uintptr_t)m->arg.pagefault.address &
			~(uintptr_t)(GUEST_PAGE_SIZE - 1);
	uint64_t gpa = hva_to_gpa(d, hva);
	if (gpa == UINT64_MAX) {
		log_error("post-copy: fault at %#lx outside guest RAM",
			  (unsigned long)hva);
		return;
	}
	uint64_t i = memory_page_index(d->mem, gpa);
	pthread_mutex_lock(&d->lock);
	d->pristine = false;   /* a page may be filled below */
	d->st.faults++;
	bool here = bit_get(d->received, i);
	bool ask = !here && claim(d, i, now_ns());
	pthread_mutex_unlock(&d->lock);
	if (here) {
		/* Counted as received but the kernel has no page: either it
		 * was placed after this fault was raised (the placement woke
		 * the thread; the zero page below finds EEXIST), or
		 * pcd_mark_present() covered a page pre-copy never wrote -
		 * never written means zeros. */
		int r = uffd_zeropage(d->uffd, (void *)hva, GUEST_PAGE_SIZE);
		if (r && r != -EEXIST)
			log_error("post-copy: page 0x%llx: %s",
				  (unsigned long long)gpa, strerror(-r));
		return;
	}
	/* A page already asked for is on its way. */
	if (ask)
		d->request(d->opaque, gpa, 1);
}

static void *fault_thread(void *arg)
{
	struct pc_dest *d = arg;
	struct uffd_msg msgs[FAULT_BATCH];

	for (;;) {
		struct pollfd p[2] = {
			{ .fd = d->uffd, .events = POLLIN },
			{ .fd = d->stop_fd, .events = POLLIN },
		};
		if (poll(p, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			log_error("post-copy: poll on userfaultfd: %s",
				  strerror(errno));
			break;
		}
		if (p[1].revents)
			break;
		ssize_t n = read(d->uffd, msgs, sizeof(msgs));
		if (n < 0) {
			if (errno == EAGAIN || errno == EINTR)
				continue;
			log_error("post-copy: reading userfaultfd: %s",
				  strerror(errno));
			break;
		}
		for (size_t k = 0; k < (size_t)n / sizeof(msgs[0]); k++)
			if (msgs[k].event == UFFD_EVENT_PAGEFAULT)
				handle_fault(d, &msgs[k]);
	}
	return NULL;
}

int pcd_start(struct pc_dest *d, char *err)
{
	int r = pthread_create(&d->thread, NULL, fault_thread, d);
	if (r)
		return err_set(err, -r, "cannot start the fault thread: %s",
			       strerror(r));
	d->started = true;
	return 0;
}

static void record_latency(struct pc_dest *d, uint64_t ns)
{
	d->st.lat_total_ns += ns;
	if (d->nlat == d->cap_lat) {
		if (d->cap_lat >= LAT_MAX_SAMPLES)
			return;
		uint64_t cap = d->cap_lat ? d->cap_lat * 2 : 1024;
		uint64_t *n = realloc(d->lat, cap * sizeof(*n));
		if (!n)
			return;
		d->lat = n;
		d->cap_lat = cap;
	}
	d->lat[d->nlat++] = ns;
	if (ns > d->st.lat_max_ns)
		d->st.lat_max_ns = ns;
}

/* Page i was placed (under lock): counted received once, and the
 * latency of its request (if it was asked for) taken now. */
static void note_arrival(struct pc_dest *d, uint64_t i)
{
	if (bit_get(d->received, i))
		return;
	bit_set(d->received, i);
	if (--d->missing == 0)
		pthread_cond_broadcast(&d->all_here);
	if (d->req_ns[i]) {
		record_latency(d, now_ns() - d->req_ns[i]);
		d->req_ns[i] = 0;
	}
}

int pcd_place(struct pc_dest *d, uint64_t gpa, const void *data, char *err)
{
	uint64_t i = memory_page_index(d->mem, gpa);
	if (i == UINT64_MAX || gpa & (GUEST_PAGE_SIZE - 1))
		return err_set(err, -EINVAL,
			       "page 0x%llx is not a page of guest RAM",
			       (unsigned long long)gpa);
	pthread_mutex_lock(&d->lock);
	bool here = bit_get(d->received, i);
	if (here)
		d->st.crossings++;
	else
		d->pristine = false;
	pthread_mutex_unlock(&d->lock);
	if (here)
		return 1;

	void *hva = memory_gpa_to_hva(d->mem, gpa, GUEST_PAGE_SIZE);
	int r = data ? uffd_copy(d->uffd, hva, data, GUEST_PAGE_SIZE)
		     : uffd_zeropage(d->uffd, hva, GUEST_PAGE_SIZE);
	/* EEXIST: another receiver placed it between our look at the
	 * bitmap and the copy - the page is there, as wanted. */
	if (r && r != -EEXIST)
		return err_set(err, r, "cannot place page 0x%llx: %s",
			       (unsigned long long)gpa, strerror(-r));

	pthread_mutex_lock(&d->lock);
	if (r == -EEXIST)
		d->st.crossings++;
	else if (data)
		d->st.placed++;
	else
		d->st.zero_placed++;
	note_arrival(d, i);
	if (d->waiters)
		pthread_cond_broadcast(&d->arrived);
	pthread_mutex_unlock(&d->lock);
	return r == -EEXIST ? 1 : 0;
}

int pcd_place_run(struct pc_dest *d, uint64_t gpa, const void *data,
		  unsigned n, char *err)
{
	uint8_t existed[PCD_MAX_RUN];
	if (n == 0 || n > PCD_MAX_RUN || gpa & (GUEST_PAGE_SIZE - 1) ||
	    !memory_gpa_to_hva(d->mem, gpa, (uint64_t)n * GUEST_PAGE_SIZE))
		return err_set(err, -EINVAL,
			       "pages 0x%llx + %u are not a run of guest RAM",
			       (unsigned long long)gpa, n);
	if (n == 1)
		return pcd_place(d, gpa, data, err) == 0 ? 1 : 0;
	uint64_t first = memory_page_index(d->mem, gpa);
	void *hva = memory_gpa_to_hva(d->mem, gpa, GUEST_PAGE_SIZE);
	pthread_mutex_lock(&d->lock);
	d->pristine = false;
	pthread_mutex_unlock(&d->lock);
	int r = uffd_copy_run(d->uffd, hva, data, n, existed);
	if (r < 0)
		return err_set(err, r, "cannot place pages 0x%llx + %u: %s",
			       (unsigned long long)gpa, n, strerror(-r));
	pthread_mutex_lock(&d->lock);
	for (unsigned k = 0; k < n; k++) {
		uint64_t i = first + k;
		/* Present before: a crossing (a racing receiver that placed
		 * it marks it itself). */
		if (existed[k]) {
			d->st.crossings++;
			continue;
		}
		/* Placed here - even if a racing receiver, whose copy found
		 * ours, marked it received already. */
		d->st.placed++;
		note_arrival(d, i);
	}
	if (d->waiters)
		pthread_cond_broadcast(&d->arrived);
	pthread_mutex_unlock(&d->lock);
	return r;
}

int pcd_mark_zero(struct pc_dest *d, uint64_t gpa, uint64_t npages, char *err)
{
	uint64_t first = memory_page_index(d->mem, gpa);
	if (first == UINT64_MAX || gpa & (GUEST_PAGE_SIZE - 1) ||
	    !memory_gpa_to_hva(d->mem, gpa, npages * GUEST_PAGE_SIZE))
		return err_set(err, -EINVAL, "pages 0x%llx + %llu are not a run of guest RAM",
			       (unsigned long long)gpa, (unsigned long long)npages);
	/* A word at a time, under the lock: received from now on, unless
	 * asked for - a vCPU may sleep on that one, and only a placement
	 * wakes it: placed here as a zero page (the lock is let go for it;
	 * a fault meanwhile finds the rest of the word unchanged). */
	for (uint64_t i = first; i < first + npages;) {
		unsigned k;
		uint64_t mask = bitmap_word_mask(i, first + npages - i, &k);
		pthread_mutex_lock(&d->lock);
		uint64_t w = i / 64, have = d->received[w], asked = d->requested[w];
		uint64_t newly = mask & ~have & ~asked;
		d->received[w] |= newly;
		d->missing -= (uint64_t)__builtin_popcountll(newly);
		d->st.named_zero += (uint64_t)__builtin_popcountll(mask & ~have);
		if (newly && d->missing == 0)
			pthread_cond_broadcast(&d->all_here);
		pthread_mutex_unlock(&d->lock);
		for (uint64_t b = mask & ~have & asked; b; b &= b - 1) {
			uint64_t page = w * 64 + (uint64_t)__builtin_ctzll(b);
			if (pcd_place(d, memory_page_gpa(d->mem, page), NULL, err) < 0)
				return -EIO;
		}
		i += k;
	}
	return 0;
}

/* Pages of [first, first+n) still missing (under lock). */
static bool range_missing(const struct pc_dest *d, uint64_t first, uint64_t n)
{
	for (uint64_t i = first; i < first + n; i++)
		if (!bit_get(d->received, i))
			return true;
	return false;
}

int pcd_ensure_present(struct pc_dest *d, uint64_t gpa, uint64_t len)
{
	if (len == 0)
		return 0;
	uint64_t start = gpa & ~(GUEST_PAGE_SIZE - 1);
	uint64_t end = (gpa + len + GUEST_PAGE_SIZE - 1) & ~(GUEST_PAGE_SIZE - 1);
	if (!memory_gpa_to_hva(d->mem, start, end - start))
		return -EINVAL;
	uint64_t first = memory_page_index(d->mem, start);
	uint64_t n = (end - start) / GUEST_PAGE_SIZE;

	/* Ask for the missing runs, one request per run. */
	uint64_t t = now_ns();
	uint64_t k = 0;
	while (k < n) {
		pthread_mutex_lock(&d->lock);
		while (k < n && (bit_get(d->received, first + k) ||
				 bit_get(d->requested, first + k)))
			k++;
		uint64_t run = k;
		while (k < n && k - run < PCD_MAX_RUN && claim(d, first + k, t))
			k++;
		pthread_mutex_unlock(&d->lock);
		if (k > run)
			d->request(d->opaque, start + run * GUEST_PAGE_SIZE,
				   (uint32_t)(k - run));
	}

	int r = 0;
	pthread_mutex_lock(&d->lock);
	if (range_missing(d, first, n)) {
		d->st.ensure_calls++;
		d->waiters++;
		while (!d->cancelled && !d->paused && range_missing(d, first, n))
			pthread_cond_wait(&d->arrived, &d->lock);
		d->waiters--;
		if (range_missing(d, first, n))
			r = d->cancelled ? -ECANCELED : -EAGAIN;
	}
	pthread_mutex_unlock(&d->lock);
	return r;
}

void pcd_cancel(struct pc_dest *d)
{
	pthread_mutex_lock(&d->lock);
	d->cancelled = true;
	pthread_cond_broadcast(&d->arrived);
	pthread_cond_broadcast(&d->all_here);
	pthread_mutex_unlock(&d->lock);
}

void pcd_pause(struct pc_dest *d)
{
	pthread_mutex_lock(&d->lock);
	d->paused = true;
	pthread_cond_broadcast(&d->arrived);
	pthread_cond_broadcast(&d->all_here);
	pthread_mutex_unlock(&d->lock);
}

void pcd_unpause(struct pc_dest *d)
{
	pthread_mutex_lock(&d->lock);
	d->paused = false;
	pthread_mutex_unlock(&d->lock);
}

uint64_t *pcd_received_bitmap(struct pc_dest *d, uint64_t *npages)
{
	size_t words = d->npages / 64 + 1;
	uint64_t *b = malloc(words * sizeof(*b));

	if (!b)
		return NULL;
	pthread_mutex_lock(&d->lock);
	memcpy(b, d->received, words * sizeof(*b));
	pthread_mutex_unlock(&d->lock);
	*npages = d->npages;
	return b;
}

uint64_t pcd_rerequest(struct pc_dest *d)
{
	uint64_t asked = 0, i = 0;

	while (i < d->npages) {
		/* One run at a time under the lock; the request itself (a
		 * write to the source) outside it. */
		pthread_mutex_lock(&d->lock);
		while (i < d->npages && (!bit_get(d->requested, i) || bit_get(d->received, i)))
			i++;
		uint64_t first = i;
		while (i < d->npages && i - first < PCD_MAX_RUN && bit_get(d->requested, i) &&
		       !bit_get(d->received, i) &&
		       memory_page_gpa(d->mem, i) == memory_page_gpa(d->mem, first) +
							 (i - first) * GUEST_PAGE_SIZE)
			i++;
		pthread_mutex_unlock(&d->lock);
		if (i > first) {
			d->request(d->opaque, memory_page_gpa(d->mem, first),
				   (uint32_t)(i - first));
			asked += i - first;
		}
	}
	return asked;
}

bool pcd_complete(struct pc_dest *d)
{
	pthread_mutex_lock(&d->lock);
	bool done = d->missing == 0;
	pthread_mutex_unlock(&d->lock);
	return done;
}

bool pcd_received(struct pc_dest *d, uint64_t gpa)
{
	uint64_t i = memory_page_index(d->mem, gpa);
	if (i == UINT64_MAX)
		return false;
	pthread_mutex_lock(&d->lock);
	bool got = bit_get(d->received, i);
	pthread_mutex_unlock(&d->lock);
	return got;
}

int pcd_wait_complete_for(struct pc_dest *d, uint64_t ns)
{
	struct timespec until = clock_deadline(CLOCK_MONOTONIC, ns);
	bool timed_out = false;

	pthread_mutex_lock(&d->lock);
	while (!d->cancelled && !d->paused && d->missing && !timed_out) {
		if (ns == UINT64_MAX)
			pthread_cond_wait(&d->all_here, &d->lock);
		else
			timed_out = pthread_cond_timedwait(&d->all_here, &d->lock,
							   &until) == ETIMEDOUT;
	}
	int r = !d->missing ? 0 : d->cancelled ? -ECANCELED : d->paused ? -EAGAIN
		: -ETIMEDOUT;
	pthread_mutex_unlock(&d->lock);
	return r;
}

int pcd_wait_complete(struct pc_dest *d)
{
	return pcd_wait_complete_for(d, UINT64_MAX);
}

/* Add pages [first, first + count) (by index) to the runs being built:
 * they continue the last run when their gpa follows on and the run stays
 * inside one slot. */
static int add_confirmed(struct pc_dest *d, struct pcp_run **runs, size_t *n,
			 size_t *cap, uint64_t first, uint64_t count)
{
	uint64_t gpa = memory_page_gpa(d->mem, first);
	if (*n) {
		struct pcp_run *last = &(*runs)[*n - 1];
		if (last->gpa + last->npages * GUEST_PAGE_SIZE == gpa &&
		    memory_gpa_to_hva(d->mem, last->gpa,
				      (last->npages + count) * GUEST_PAGE_SIZE)) {
			last->npages += count;
			return 0;
		}
	}
	if (*n == *cap) {
		size_t c = *cap ? 2 * *cap : 64;
		struct pcp_run *r = realloc(*runs, c * sizeof(*r));
		if (!r)
			return -ENOMEM;
		*runs = r;
		*cap = c;
	}
	(*runs)[(*n)++] = (struct pcp_run){ .gpa = gpa, .npages = count };
	return 0;
}

int pcd_confirmations(struct pc_dest *d, struct pcp_run **runs, size_t *n)
{
	size_t words = d->npages / 64 + 1, cap = 0;
	int r = 0;

	*runs = NULL;
	*n = 0;
	pthread_mutex_lock(&d->lock);
	if (!d->confirmed)
		d->confirmed = calloc(words, sizeof(uint64_t));
	if (!d->confirmed)
		r = -ENOMEM;
	/* A word at a time: 4 GiB of guest is 16 thousand words. */
	for (size_t w = 0; !r && w < words; w++) {
		uint64_t fresh = d->received[w] & ~d->confirmed[w];
		unsigned lo, len, k;
		while (!r && (len = bitmap_take_run(&fresh, &lo))) {
			uint64_t first = w * 64 + lo;
			if (first >= d->npages)
				break;
			uint64_t count = first + len > d->npages ? d->npages - first : len;
			r = add_confirmed(d, runs, n, &cap, first, count);
			if (!r)
				d->confirmed[w] |= bitmap_word_mask(lo, len, &k);
		}
	}
	if (!r) {
		for (size_t k = 0; k < *n; k++)
			d->st.confirmed += (*runs)[k].npages;
	}
	pthread_mutex_unlock(&d->lock);
	if (r) {
		free(*runs);
		*runs = NULL;
		*n = 0;
	}
	return r;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

void pcd_stats(struct pc_dest *d, struct pcd_stats *out)
{
	pthread_mutex_lock(&d->lock);
	*out = d->st;
	out->missing = d->missing;
	out->lat_samples = d->nlat;
	uint64_t *copy = d->nlat ? malloc(d->nlat * sizeof(*copy)) : NULL;
	if (copy)
		memcpy(copy, d->lat, d->nlat * sizeof(*copy));
	uint64_t n = d->nlat;
	pthread_mutex_unlock(&d->lock);
	if (copy) {
		qsort(copy, n, sizeof(*copy), cmp_u64);
		out->lat_p50_ns = copy[(n - 1) / 2];
		out->lat_p99_ns = copy[(n - 1) * 99 / 100];
		free(copy);
	}
}

/* Stop the fault thread, unhook, unregister: the guest's memory is its
 * own again.  Idempotent. */
static void retire(struct pc_dest *d, bool unhook_opaque)
{
	pcd_cancel(d);
	if (d->started) {
		uint64_t one = 1;
		if (write(d->stop_fd, &one, sizeof(one)) < 0)
			log_warn("post-copy: cannot stop the fault thread: %s",
				 strerror(errno));
		pthread_join(d->thread, NULL);
		d->started = false;
	}
	if (d->uffd >= 0) {
		__atomic_store_n(&d->mem->ensure, NULL, __ATOMIC_RELEASE);
		if (unhook_opaque)
			d->mem->ensure_opaque = NULL;
		for (unsigned i = 0; i < d->mem->nslots; i++)
			uffd_unregister(d->uffd, d->mem->slots[i].hva,
					d->mem->slots[i].size);
		close(d->uffd);
		d->uffd = -1;
	}
}

void pcd_retire(struct pc_dest *d)
{
	/* ensure_opaque stays: a thread that read the hook just before
	 * finds d still here (and every page present). */
	retire(d, false);
	d->retired = true;
	/* The fault thread is gone: a VM that arrived by post-copy keeps
	 * this object for its lifetime, but not an fd for nothing. */
	close(d->stop_fd);
	d->stop_fd = -1;
}

void pcd_free(struct pc_dest *d)
{
	if (!d)
		return;
	/* Retired: the VM may be gone already; its memory is not touched. */
	if (!d->retired)
		retire(d, true);
	if (d->stop_fd >= 0)
		close(d->stop_fd);
	free(d->received);
	free(d->requested);
	free(d->confirmed);
	free(d->req_ns);
	free(d->lat);
	if (d->zap)
		mem_zap_fini(d->zap);
	free(d->zap);
	free(d->pend);
	pthread_mutex_destroy(&d->lock);
	pthread_cond_destroy(&d->arrived);
	pthread_cond_destroy(&d->all_here);
	free(d);
}
