/*
 * The vCPU throttle (vmm/throttle.h) with real threads standing in for
 * vCPUs on a VM without KVM: they spin where a vCPU would be in KVM_RUN
 * and call vm_throttle_point where a vCPU's loop does.  The kicker's
 * signal is the real one (vcpu_kick).  Bounds are wide: the machine is
 * shared, and what is checked is that the guest loses about its share,
 * not a timing.
 */
#include <criterion/criterion.h>
#include <pthread.h>

#include "util/clock.h"
#include "util/log.h"
#include "vmm/throttle.h"
#include "vmm/vcpu.h"
#include "vmm/vm.h"

static struct vm *offline_vm(unsigned vcpus)
{
	struct vm_config cfg = { .ram_size = 2u << 20, .vcpus = vcpus,
				 .serial = "none", .heartbeat = "none" };
	char err[ERR_MAX] = "";
	struct vm *vm = NULL;

	cr_assert_eq(vcpu_signals_init(), 0);
	cr_assert_eq(vm_create_offline(&vm, &cfg, err), 0, "%s", err);
	return vm;
}

static bool quitting(struct vm *vm)
{
	pthread_mutex_lock(&vm->lock);
	bool q = vm->quit_requested;
	pthread_mutex_unlock(&vm->lock);
	return q;
}

/* A vCPU's loop: "run" 1 ms, then the throttle point. */
static void *fake_vcpu(void *arg)
{
	struct vcpu *v = arg;

	while (!quitting(v->vm)) {
		uint64_t until = clock_mono_ns() + 1000000;
		while (clock_mono_ns() < until)
			;
		vm_throttle_point(v);
	}
	return NULL;
}

static void start_fake_vcpus(struct vm *vm)
{
	for (unsigned i = 0; i < vm->nvcpus; i++) {
		cr_assert_eq(pthread_create(&vm->vcpus[i]->thread, NULL, fake_vcpu,
					    vm->vcpus[i]), 0);
		vm->vcpus[i]->thread_started = true;
	}
}

static void sleep_ms(unsigned ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000 };
	nanosleep(&ts, NULL);
}

Test(throttle, the_sleep_keeps_the_guest_its_share)
{
	cr_assert_eq(vm_throttle_sleep_ns(0), 0);
	cr_assert_eq(vm_throttle_sleep_ns(20), 2500000, "10 ms * 20/80");
	cr_assert_eq(vm_throttle_sleep_ns(50), 10000000);
	cr_assert_eq(vm_throttle_sleep_ns(99), 990000000);
	cr_assert_eq(vm_throttle_sleep_ns(100), 990000000, "never more than 99%%");
}

Test(throttle, half_the_time_is_taken_then_none)
{
	struct vm *vm = offline_vm(2);
	start_fake_vcpus(vm);

	cr_assert_eq(vm_throttle_ns(vm), 0);
	uint64_t t0 = clock_mono_ns();
	cr_assert_eq(vm_throttle_set(vm, 50), 0);
	cr_assert_eq(vm_throttle_percent(vm), 50);
	sleep_ms(800);
	uint64_t slept = vm_throttle_ns(vm), wall = 2 * (clock_mono_ns() - t0);
	cr_assert_eq(vm_throttle_set(vm, 0), 0);
	double share = (double)slept / (double)wall;
	/* 50% would be exact; a late kicker or a late vCPU only lowers it,
	 * and a sleep in flight at the end raises it a little. */
	cr_assert(share > 0.15 && share < 0.75, "slept %.0f%% of the vCPU time",
		  share * 100);

	/* Lifted: a sleep in flight ends within 10 ms, then nothing. */
	sleep_ms(50);
	uint64_t after = vm_throttle_ns(vm);
	sleep_ms(200);
	cr_assert_eq(vm_throttle_ns(vm), after, "still throttled after 0");
	cr_assert_eq(vm_throttle_percent(vm), 0);
	vm_destroy(vm);
}

Test(throttle, more_throttle_takes_more)
{
	struct vm *vm = offline_vm(1);
	start_fake_vcpus(vm);

	cr_assert_eq(vm_throttle_set(vm, 20), 0);
	sleep_ms(600);
	uint64_t low = vm_throttle_ns(vm);
	cr_assert_eq(vm_throttle_set(vm, 80), 0);
	sleep_ms(600);
	uint64_t high = vm_throttle_ns(vm) - low;
	vm_destroy(vm);
	/* 20%: 2.5 ms per 12.5 ms (~120 ms of 600); 80%: 40 ms per 50 ms
	 * (~480 ms).  Four times as much; at least twice, whatever the load. */
	cr_assert(high > 2 * low, "20%%: %llu ms, 80%%: %llu ms",
		  (unsigned long long)(low / 1000000),
		  (unsigned long long)(high / 1000000));
}

struct one_sleep {
	struct vcpu *v;
	uint64_t took_ns;
	bool slept;
};

static void *sleep_once(void *arg)
{
	struct one_sleep *s = arg;
	uint64_t t0 = clock_mono_ns();
	s->slept = vm_throttle_point(s->v);
	s->took_ns = clock_mono_ns() - t0;
	return NULL;
}

Test(throttle, quitting_ends_a_sleep_at_once)
{
	struct vm *vm = offline_vm(1);
	struct one_sleep s = { .v = vm->vcpus[0] };
	pthread_t th;

	/* 99%: a 990 ms sleep per period.  Ask for one by hand (the kicker
	 * would only after a whole period) and quit 50 ms into it. */
	cr_assert_eq(vm_throttle_set(vm, 99), 0);
	__atomic_store_n(&vm->vcpus[0]->throttle_due, 1, __ATOMIC_RELEASE);
	cr_assert_eq(pthread_create(&th, NULL, sleep_once, &s), 0);
	sleep_ms(50);
	vm_request_quit(vm, 0);
	pthread_join(th, NULL);
	cr_assert(s.slept);
	cr_assert_lt(s.took_ns, 500000000ULL, "slept %llu ms of 990 after quit",
		     (unsigned long long)(s.took_ns / 1000000));
	vm_destroy(vm);
}

Test(throttle, no_request_no_sleep)
{
	struct vm *vm = offline_vm(1);

	cr_assert_eq(vm_throttle_set(vm, 50), 0);
	cr_assert(!vm_throttle_point(vm->vcpus[0]), "the kicker did not ask");
	cr_assert_eq(vm_throttle_set(vm, 0), 0);
	__atomic_store_n(&vm->vcpus[0]->throttle_due, 1, __ATOMIC_RELEASE);
	cr_assert(!vm_throttle_point(vm->vcpus[0]), "asked, but lifted since");
	cr_assert_eq(vm->vcpus[0]->throttle_due, 0);
	vm_destroy(vm);
}
