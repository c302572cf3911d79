/* Guest RAM faulted in while a destination waits (prealloc.h). */
#include "vmm/prealloc.h"
#include "util/log.h"
#include "util/units.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct mem_prealloc {
	struct guest_memory mem;
	pthread_t thread;
	bool joined, taken;
	int error;            /* the population's, after the join */
	char errmsg[ERR_MAX];
	double seconds;
};

static double now_s(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec + t.tv_nsec / 1e9;
}

static void *populate(void *opaque)
{
	struct mem_prealloc *p = opaque;
	double t0 = now_s();
	p->error = memory_populate(&p->mem, true, p->errmsg);
	p->seconds = now_s() - t0;
	char sz[UNITS_LEN];
	units_size(sz, sizeof(sz), (double)p->mem.ram_size);
	if (p->error)
		log_error("--prealloc: %s", p->errmsg);
	else
		log_info("--prealloc: %s of guest memory faulted in in %.2f s", sz,
			 p->seconds);
	return NULL;
}

int mem_prealloc_start(struct mem_prealloc **out, uint64_t ram_size, char *err)
{
	struct mem_prealloc *p = calloc(1, sizeof(*p));
	if (!p)
		return err_set(err, -ENOMEM, "out of memory");
	memory_layout(&p->mem, ram_size);
	int r = memory_alloc(&p->mem, err);
	if (r) {
		free(p);
		return r;
	}
	r = pthread_create(&p->thread, NULL, populate, p);
	if (r) {
		memory_free(&p->mem);
		free(p);
		return err_set(err, -r, "cannot start the --prealloc thread: %s", strerror(r));
	}
	*out = p;
	return 0;
}

uint64_t mem_prealloc_size(const struct mem_prealloc *p)
{
	return p->mem.ram_size;
}

static void join(struct mem_prealloc *p)
{
	if (!p->joined) {
		pthread_join(p->thread, NULL);
		p->joined = true;
	}
}

int mem_prealloc_take(struct mem_prealloc *p, struct guest_memory *mem, char *err)
{
	if (p->taken)
		return err_set(err, -EALREADY, "the --prealloc memory is already in use");
	join(p);
	if (p->error)
		return err_set(err, p->error, "%s", p->errmsg);
	*mem = p->mem;
	/* Moved: nothing of it is ours to unmap any more. */
	memset(&p->mem, 0, sizeof(p->mem));
	p->mem.pagemap_fd = -1;
	p->taken = true;
	return 0;
}

double mem_prealloc_seconds(struct mem_prealloc *p)
{
	return p->joined ? p->seconds : 0;
}

void mem_prealloc_free(struct mem_prealloc *p)
{
	if (!p)
		return;
	join(p);
	memory_free(&p->mem);
	free(p);
}
