/* Holding each vCPU to a dirty rate (dirty_limit.h). */
#include "vmm/dirty_limit.h"
#include "vmm/dirty_ring.h"
#include "vmm/throttle.h"
#include "vmm/vm.h"
#include "util/clock.h"
#include "util/log.h"

#include <errno.h>
#include <string.h>
#include <time.h>

_Static_assert(DIRTY_LIMIT_VCPUS == VM_MAX_VCPUS, "a rate per vCPU");

unsigned dirty_limit_step(unsigned percent, uint64_t rate, uint64_t limit)
{
	if (!limit)
		return 0;
	if (percent > VM_THROTTLE_MAX)
		percent = VM_THROTTLE_MAX;
	uint64_t keep = 100 - percent;   /* 1..100 points of vCPU time */
	uint64_t target = 100;
	/* At `keep` points it dirtied `rate`: at the limit it would keep
	 * keep * limit / rate (the rate scales with the time it runs). */
	if (rate)
		target = (uint64_t)((unsigned __int128)keep * limit / rate);
	if (target > 100)
		target = 100;
	if (target < keep)
		keep = target;                    /* over: at once */
	else
		keep += (target - keep + 1) / 2;  /* under: half the way back */
	if (keep < 100 - VM_THROTTLE_MAX)
		keep = 100 - VM_THROTTLE_MAX;
	return (unsigned)(100 - keep);
}

void dirty_limit_init(struct dirty_limit *d)
{
	memset(d, 0, sizeof(*d));
	pthread_mutex_init(&d->lock, NULL);
	clock_cond_init_monotonic(&d->cond);
}

/* One look: harvest, measure each vCPU since the last look, set shares. */
static void look(struct vm *vm)
{
	struct dirty_limit *d = &vm->dlimit;
	uint64_t now = clock_mono_ns();

	dirty_ring_reap(vm, false);
	uint64_t dt = now - d->t_last;
	d->t_last = now;
	for (unsigned i = 0; i < vm->nvcpus; i++) {
		uint64_t taken = dirty_ring_vcpu_taken(vm, i);
		uint64_t pages = taken - d->taken[i];
		d->taken[i] = taken;
		d->rate[i] = dt ? (uint64_t)((unsigned __int128)pages *
					     GUEST_PAGE_SIZE * 1000000000ULL / dt) : 0;
		unsigned now_pct = __atomic_load_n(&vm->throttle.vcpu_percent[i],
						   __ATOMIC_RELAXED);
		unsigned next = dirty_limit_step(now_pct, d->rate[i], d->limit);
		if (next != now_pct)
			vm_throttle_set_vcpu(vm, i, next);
	}
}

static void *controller(void *arg)
{
	struct vm *vm = arg;
	struct dirty_limit *d = &vm->dlimit;

	pthread_setname_np(pthread_self(), "dirty-limit");
	pthread_mutex_lock(&d->lock);
	while (!d->stop) {
		struct timespec ts = clock_deadline(CLOCK_MONOTONIC, d->period_ns);
		while (!d->stop &&
		       pthread_cond_timedwait(&d->cond, &d->lock, &ts) != ETIMEDOUT)
			;
		if (!d->stop)
			look(vm);
	}
	pthread_mutex_unlock(&d->lock);
	return NULL;
}

int dirty_limit_start(struct vm *vm, uint64_t limit, uint64_t period_ms,
		      char *err)
{
	struct dirty_limit *d = &vm->dlimit;

	if (!dirty_ring_on(&vm->ring))
		return err_set(err, -ENOTSUP, "dirty-limit measures each vCPU on "
			       "KVM's dirty ring: start ferry run with --dirty-ring N");
	if (!limit || !period_ms)
		return err_set(err, -EINVAL, "dirty-limit needs a limit and a period");
	pthread_mutex_lock(&d->lock);
	int r = 0;
	if (!d->running) {
		d->limit = limit;
		d->period_ns = period_ms * 1000000ULL;
		d->t_last = clock_mono_ns();
		for (unsigned i = 0; i < vm->nvcpus; i++) {
			d->taken[i] = dirty_ring_vcpu_taken(vm, i);
			d->rate[i] = 0;
		}
		d->stop = false;
		r = -pthread_create(&d->thread, NULL, controller, vm);
		d->running = r == 0;
	}
	pthread_mutex_unlock(&d->lock);
	if (r)
		return err_set(err, r, "cannot start the dirty-limit thread: %s",
			       strerror(-r));
	return 0;
}

void dirty_limit_set(struct vm *vm, uint64_t limit)
{
	struct dirty_limit *d = &vm->dlimit;

	pthread_mutex_lock(&d->lock);
	if (d->running && limit)
		d->limit = limit;
	pthread_mutex_unlock(&d->lock);
}

bool dirty_limit_running(struct vm *vm)
{
	pthread_mutex_lock(&vm->dlimit.lock);
	bool r = vm->dlimit.running;
	pthread_mutex_unlock(&vm->dlimit.lock);
	return r;
}

uint64_t dirty_limit_rate(struct vm *vm, unsigned index, uint64_t *limit)
{
	struct dirty_limit *d = &vm->dlimit;
	uint64_t rate = 0;

	pthread_mutex_lock(&d->lock);
	*limit = d->running ? d->limit : 0;
	if (index < DIRTY_LIMIT_VCPUS)
		rate = d->rate[index];
	pthread_mutex_unlock(&d->lock);
	return rate;
}

void dirty_limit_stop(struct vm *vm)
{
	struct dirty_limit *d = &vm->dlimit;

	pthread_mutex_lock(&d->lock);
	bool running = d->running;
	d->stop = true;
	pthread_cond_broadcast(&d->cond);
	pthread_mutex_unlock(&d->lock);
	if (running)
		pthread_join(d->thread, NULL);
	pthread_mutex_lock(&d->lock);
	d->running = d->stop = false;
	pthread_mutex_unlock(&d->lock);
	if (running)
		for (unsigned i = 0; i < vm->nvcpus; i++)
			vm_throttle_set_vcpu(vm, i, 0);
}

void dirty_limit_fini(struct vm *vm)
{
	dirty_limit_stop(vm);
	pthread_mutex_destroy(&vm->dlimit.lock);
	pthread_cond_destroy(&vm->dlimit.cond);
}
