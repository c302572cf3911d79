/* Dropping the pages the destination confirmed (postcopy_release.h). */
#include "migration/postcopy_release.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "util/log.h"
#include "vmm/memory_zap.h"

struct pc_release {
	const struct guest_memory *mem;
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct mem_zap queued;   /* under lock: taken whole by the thread */
	uint64_t pages;          /* under lock */
	bool stopping;
};

static void *release_thread(void *arg)
{
	struct pc_release *r = arg;
	struct mem_zap z;

	mem_zap_init(&z);
	pthread_mutex_lock(&r->lock);
	for (;;) {
		while (!r->queued.n && !r->stopping)
			pthread_cond_wait(&r->cond, &r->lock);
		if (!r->queued.n)
			break;
		/* Take the queue whole; the page server queues more into a
		 * fresh one meanwhile. */
		struct iovec *iov = r->queued.iov;
		size_t n = r->queued.n, cap = r->queued.cap;
		r->queued.iov = z.iov;
		r->queued.n = 0;
		r->queued.cap = z.cap;
		z.iov = iov;
		z.n = n;
		z.cap = cap;
		pthread_mutex_unlock(&r->lock);
		int e = mem_zap_flush(&z);
		if (e)
			/* Not fatal: the pages stay, the source holds more. */
			log_warn("release-ram: dropping confirmed pages: %s", strerror(-e));
		pthread_mutex_lock(&r->lock);
	}
	pthread_mutex_unlock(&r->lock);
	mem_zap_fini(&z);
	return NULL;
}

int pcrel_new(const struct guest_memory *mem, struct pc_release **out, char *err)
{
	struct pc_release *r = calloc(1, sizeof(*r));
	if (!r)
		return err_set(err, -ENOMEM, "out of memory");
	r->mem = mem;
	mem_zap_init(&r->queued);
	pthread_mutex_init(&r->lock, NULL);
	pthread_cond_init(&r->cond, NULL);
	int e = pthread_create(&r->thread, NULL, release_thread, r);
	if (e) {
		mem_zap_fini(&r->queued);
		free(r);
		return err_set(err, -e, "cannot start the release-ram thread: %s", strerror(e));
	}
	*out = r;
	return 0;
}

static int queue(struct pc_release *r, void *hva, uint64_t npages, bool count)
{
	pthread_mutex_lock(&r->lock);
	bool wake = !r->queued.n;
	int e = mem_zap_add(&r->queued, hva, npages * GUEST_PAGE_SIZE);
	if (!e && count)
		r->pages += npages;
	pthread_mutex_unlock(&r->lock);
	if (wake)
		pthread_cond_signal(&r->cond);
	return e;
}

int pcrel_add(struct pc_release *r, uint64_t gpa, uint64_t npages)
{
	void *hva = memory_gpa_to_hva(r->mem, gpa, npages * GUEST_PAGE_SIZE);
	return hva ? queue(r, hva, npages, true) : -EINVAL;
}

int pcrel_all(struct pc_release *r)
{
	int e = 0;
	for (unsigned i = 0; !e && i < r->mem->nslots; i++)
		e = queue(r, r->mem->slots[i].hva, r->mem->slots[i].size / GUEST_PAGE_SIZE,
			  false);
	return e;
}

uint64_t pcrel_pages(struct pc_release *r)
{
	pthread_mutex_lock(&r->lock);
	uint64_t n = r->pages;
	pthread_mutex_unlock(&r->lock);
	return n;
}

void pcrel_free(struct pc_release *r)
{
	if (!r)
		return;
	pthread_mutex_lock(&r->lock);
	r->stopping = true;
	pthread_mutex_unlock(&r->lock);
	pthread_cond_signal(&r->cond);
	pthread_join(r->thread, NULL);
	mem_zap_fini(&r->queued);
	pthread_mutex_destroy(&r->lock);
	pthread_cond_destroy(&r->cond);
	free(r);
}
