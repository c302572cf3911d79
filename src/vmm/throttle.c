/* Taking a share of the guest's vCPU time (throttle.h). */
#include "vmm/throttle.h"
#include "vmm/vcpu.h"
#include "vmm/vm.h"
#include "util/clock.h"
#include "util/log.h"

#include <errno.h>
#include <string.h>
#include <time.h>

void vm_throttle_init(struct vm_throttle *t)
{
	memset(t, 0, sizeof(*t));
	pthread_mutex_init(&t->lock, NULL);
	clock_cond_init_monotonic(&t->cond);
}

uint64_t vm_throttle_sleep_ns(unsigned percent)
{
	if (!percent)
		return 0;
	if (percent > VM_THROTTLE_MAX)
		percent = VM_THROTTLE_MAX;
	return VM_THROTTLE_SLICE_NS * percent / (100 - percent);
}

unsigned vm_throttle_vcpu_percent(struct vm *vm, unsigned index)
{
	struct vm_throttle *t = &vm->throttle;
	unsigned all = __atomic_load_n(&t->percent, __ATOMIC_RELAXED);
	unsigned own = index < VM_THROTTLE_VCPUS
		? __atomic_load_n(&t->vcpu_percent[index], __ATOMIC_RELAXED) : 0;
	return own > all ? own : all;
}

_Static_assert(VM_THROTTLE_VCPUS == VM_MAX_VCPUS, "a share per vCPU");

/*
 * Ask each throttled vCPU whose period (its slice plus its sleep) is over
 * to sleep, then wait for the next such moment: a vCPU runs a slice,
 * sleeps its share, runs a slice again.  A vCPU throttled anew starts
 * with a whole slice.
 */
static void *kicker(void *arg)
{
	struct vm *vm = arg;
	struct vm_throttle *t = &vm->throttle;

	pthread_setname_np(pthread_self(), "throttle");
	pthread_mutex_lock(&t->lock);
	uint64_t now = clock_mono_ns();
	for (unsigned i = 0; i < VM_THROTTLE_VCPUS; i++)
		t->next_kick[i] = now + VM_THROTTLE_SLICE_NS;
	while (!t->stop) {
		now = clock_mono_ns();
		uint64_t wake = now + VM_THROTTLE_SLICE_NS;
		/* vCPU objects live as long as the VM; vm_throttle_fini
		 * stops this thread before their threads are joined. */
		for (unsigned i = 0; i < vm->nvcpus && i < VM_THROTTLE_VCPUS; i++) {
			unsigned p = vm_throttle_vcpu_percent(vm, i);
			if (!p) {
				t->next_kick[i] = now + VM_THROTTLE_SLICE_NS;
				continue;
			}
			if (now >= t->next_kick[i]) {
				t->next_kick[i] = now + VM_THROTTLE_SLICE_NS +
						  vm_throttle_sleep_ns(p);
				struct vcpu *v = vm->vcpus[i];
				__atomic_store_n(&v->throttle_due, 1, __ATOMIC_RELEASE);
				vcpu_kick(v);
			}
			if (t->next_kick[i] < wake)
				wake = t->next_kick[i];
		}
		struct timespec ts = clock_deadline(CLOCK_MONOTONIC, wake - now);
		while (!t->stop &&
		       pthread_cond_timedwait(&t->cond, &t->lock, &ts) != ETIMEDOUT)
			;
	}
	pthread_mutex_unlock(&t->lock);
	return NULL;
}

static void stop_kicker(struct vm_throttle *t)
{
	pthread_mutex_lock(&t->lock);
	bool running = t->running;
	t->stop = true;
	pthread_cond_broadcast(&t->cond);
	pthread_mutex_unlock(&t->lock);
	if (running)
		pthread_join(t->thread, NULL);
	pthread_mutex_lock(&t->lock);
	t->running = t->stop = false;
	pthread_mutex_unlock(&t->lock);
}

static bool any_share(struct vm *vm)
{
	for (unsigned i = 0; i < vm->nvcpus && i < VM_THROTTLE_VCPUS; i++)
		if (vm_throttle_vcpu_percent(vm, i))
			return true;
	return false;
}

/* After a share changed at *share: run the kicker while any is set.  If
 * it cannot start, the share goes back to 0 (unthrottled). */
static int update(struct vm *vm, unsigned *share, unsigned percent)
{
	struct vm_throttle *t = &vm->throttle;

	if (percent > VM_THROTTLE_MAX)
		percent = VM_THROTTLE_MAX;
	__atomic_store_n(share, percent, __ATOMIC_RELAXED);
	if (!any_share(vm)) {
		stop_kicker(t);
		return 0;
	}
	pthread_mutex_lock(&t->lock);
	int r = 0;
	if (!t->running) {
		r = -pthread_create(&t->thread, NULL, kicker, vm);
		t->running = r == 0;
	}
	pthread_mutex_unlock(&t->lock);
	if (r) {
		__atomic_store_n(share, 0, __ATOMIC_RELAXED);
		log_warn("cannot start the throttle thread: %s; the guest runs "
			 "unthrottled", strerror(-r));
	}
	return r;
}

int vm_throttle_set(struct vm *vm, unsigned percent)
{
	return update(vm, &vm->throttle.percent, percent);
}

int vm_throttle_set_vcpu(struct vm *vm, unsigned index, unsigned percent)
{
	if (index >= vm->nvcpus || index >= VM_THROTTLE_VCPUS)
		return -EINVAL;
	return update(vm, &vm->throttle.vcpu_percent[index], percent);
}

void vm_throttle_clear(struct vm *vm)
{
	struct vm_throttle *t = &vm->throttle;

	for (unsigned i = 0; i < VM_THROTTLE_VCPUS; i++)
		__atomic_store_n(&t->vcpu_percent[i], 0, __ATOMIC_RELAXED);
	__atomic_store_n(&t->percent, 0, __ATOMIC_RELAXED);
	stop_kicker(t);
}

void vm_throttle_fini(struct vm *vm)
{
	vm_throttle_clear(vm);
	pthread_mutex_destroy(&vm->throttle.lock);
	pthread_cond_destroy(&vm->throttle.cond);
}

unsigned vm_throttle_percent(struct vm *vm)
{
	return __atomic_load_n(&vm->throttle.percent, __ATOMIC_RELAXED);
}

uint64_t vm_throttle_ns(struct vm *vm)
{
	return __atomic_load_n(&vm->throttle.throttled_ns, __ATOMIC_RELAXED);
}

uint64_t vm_throttle_vcpu_ns(struct vm *vm, unsigned index)
{
	if (index >= VM_THROTTLE_VCPUS)
		return 0;
	return __atomic_load_n(&vm->throttle.vcpu_throttled_ns[index],
			       __ATOMIC_RELAXED);
}

/*
 * The sleep waits on vm->cond, which every pause, stop and quit
 * broadcasts, so it ends as soon as one is asked for.  vm->cond runs on
 * the realtime clock: the deadline is kept on the monotonic one and each
 * wait is short.
 */
bool vm_throttle_point(struct vcpu *v)
{
	struct vm *vm = v->vm;

	if (!__atomic_exchange_n(&v->throttle_due, 0, __ATOMIC_ACQUIRE))
		return false;
	uint64_t sleep = vm_throttle_sleep_ns(vm_throttle_vcpu_percent(vm, v->index));
	if (!sleep)
		return false;
	uint64_t t0 = clock_mono_ns(), end = t0 + sleep, now = t0;
	pthread_mutex_lock(&vm->lock);
	while (!vm->pause_requested && !vm->quit_requested &&
	       (now = clock_mono_ns()) < end) {
		struct timespec ts = clock_deadline(CLOCK_REALTIME, end - now);
		pthread_cond_timedwait(&vm->cond, &vm->lock, &ts);
	}
	pthread_mutex_unlock(&vm->lock);
	uint64_t slept = clock_mono_ns() - t0;
	__atomic_add_fetch(&vm->throttle.throttled_ns, slept, __ATOMIC_RELAXED);
	if (v->index < VM_THROTTLE_VCPUS)
		__atomic_add_fetch(&vm->throttle.vcpu_throttled_ns[v->index], slept,
				   __ATOMIC_RELAXED);
	return true;
}
