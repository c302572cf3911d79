/*
 * vm_start is all or nothing, tested on real threads without KVM: the
 * vCPUs here have no KVM fd (-1), so a vCPU that got past the start gate
 * and called KVM_RUN would fail with EBADF and turn the VM into
 * internal-error (and, parked, never leave: the join would hang and the
 * test time out).  A start that fails at thread k must leave the VM in
 * prelaunch with no thread left.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <linux/kvm.h>

#include "util/log.h"
#include "vmm/vcpu.h"
#include "vmm/vm.h"

static struct vm *fake_vm(unsigned n)
{
	struct vm *vm = calloc(1, sizeof(*vm));
	pthread_mutex_init(&vm->lock, NULL);
	pthread_mutex_init(&vm->io_lock, NULL);
	pthread_cond_init(&vm->cond, NULL);
	vm->status = VM_STATUS_PRELAUNCH;
	vm->kvm_fd = vm->vm_fd = -1;
	vm->nvcpus = n;
	for (unsigned i = 0; i < n; i++) {
		struct vcpu *v = calloc(1, sizeof(*v));
		v->vm = vm;
		v->index = i;
		v->fd = -1;
		v->run = calloc(1, sizeof(struct kvm_run));
		vm->vcpus[i] = v;
	}
	cr_assert_eq(vcpu_signals_init(), 0);
	return vm;
}

static void end_fake_vm(struct vm *vm)
{
	pthread_mutex_lock(&vm->lock);
	vm->quit_requested = true;
	pthread_cond_broadcast(&vm->cond);
	pthread_mutex_unlock(&vm->lock);
	for (unsigned i = 0; i < vm->nvcpus; i++) {
		if (vm->vcpus[i]->thread_started)
			pthread_join(vm->vcpus[i]->thread, NULL);
		free(vm->vcpus[i]->run);
		free(vm->vcpus[i]);
	}
	free(vm);
}

Test(vm_start, failure_at_thread_k_runs_nothing, .timeout = 20)
{
	struct vm *vm = fake_vm(4);
	char err[ERR_MAX] = "";
	vm_set_start_fault(2);
	int r = vm_start(vm, false, err);
	vm_set_start_fault(-1);
	cr_assert_neq(r, 0, "vm_start succeeded despite the fault");
	cr_assert(strstr(err, "vCPU thread 2"), "error: %s", err);
	cr_assert_eq(vm->status, VM_STATUS_PRELAUNCH, "status %s: a vCPU ran",
		     vm_status_name(vm->status));
	for (unsigned i = 0; i < 4; i++)
		cr_assert(!vm->vcpus[i]->thread_started, "thread %u left behind", i);
	end_fake_vm(vm);
}

/* The destination's way: all threads exist and park, none runs. */
Test(vm_start, paused_start_parks_every_vcpu, .timeout = 20)
{
	struct vm *vm = fake_vm(3);
	char err[ERR_MAX] = "";
	cr_assert_eq(vm_start(vm, true, err), 0, "%s", err);
	pthread_mutex_lock(&vm->lock);
	while (vm->vcpus_parked < 3)
		pthread_cond_wait(&vm->cond, &vm->lock);
	enum vm_status st = vm->status;
	pthread_mutex_unlock(&vm->lock);
	cr_assert_eq(st, VM_STATUS_PAUSED, "status %s", vm_status_name(st));
	end_fake_vm(vm);
}
