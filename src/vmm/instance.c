/*
 * The `ferry run` process object: see instance.h.
 */
#include "vmm/instance.h"
#include "vmm/vm.h"
#include "migration/destination.h"

#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

int instance_init(struct instance *inst)
{
	memset(inst, 0, sizeof(*inst));
	pthread_mutex_init(&inst->lock, NULL);
	inst->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	return inst->wake_fd < 0 ? -errno : 0;
}

void instance_fini(struct instance *inst)
{
	if (inst->wake_fd >= 0)
		close(inst->wake_fd);
	inst->wake_fd = -1;
	pthread_mutex_destroy(&inst->lock);
}

void instance_wake(struct instance *inst)
{
	uint64_t one = 1;

	if (inst->wake_fd >= 0)
		(void)!write(inst->wake_fd, &one, sizeof(one));
}

void instance_set_vm(struct instance *inst, struct vm *vm)
{
	pthread_mutex_lock(&inst->lock);
	/* Release: whoever loads the pointer sees the VM fully built. */
	__atomic_store_n(&inst->vm, vm, __ATOMIC_RELEASE);
	bool quit = inst->quit_requested;
	int code = inst->exit_code;
	pthread_mutex_unlock(&inst->lock);
	if (quit)
		vm_request_quit(vm, code);
	instance_wake(inst);
}

struct vm *instance_vm(struct instance *inst)
{
	return __atomic_load_n(&inst->vm, __ATOMIC_ACQUIRE);
}

void instance_request_quit(struct instance *inst, int exit_code)
{
	pthread_mutex_lock(&inst->lock);
	if (!inst->quit_requested) {
		inst->quit_requested = true;
		inst->exit_code = exit_code;
	}
	struct vm *vm = inst->vm;
	struct destination *d = inst->incoming;
	pthread_mutex_unlock(&inst->lock);
	/* Both when the VM arrives just now: the destination ignores a
	 * cancel once it has committed, and then the VM is here. */
	if (d)
		destination_cancel(d, "the destination was asked to quit");
	if (vm)
		vm_request_quit(vm, exit_code);
	instance_wake(inst);
}

bool instance_quit_requested(struct instance *inst, int *code)
{
	pthread_mutex_lock(&inst->lock);
	bool q = inst->quit_requested;
	if (code)
		*code = inst->exit_code;
	pthread_mutex_unlock(&inst->lock);
	return q;
}
