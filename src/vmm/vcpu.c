#include "vmm/vcpu.h"
#include "vmm/kvm.h"
#include "vmm/vm.h"
#include "util/log.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <linux/kvm.h>

/* SIGUSR1 kicks a vCPU out of KVM_RUN.  The handler also sets
 * immediate_exit, closing the race where the signal lands between the
 * pause check and the ioctl (the QEMU/kvmtool technique). */
#define SIG_KICK SIGUSR1
static __thread struct kvm_run *current_run;

static void kick_handler(int sig)
{
	(void)sig;
	if (current_run)
		current_run->immediate_exit = 1;
}

int vcpu_signals_init(void)
{
	struct sigaction sa = { .sa_handler = kick_handler };
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIG_KICK, &sa, NULL) < 0)
		return -errno;
	return 0;
}

int vcpu_create(struct vm *vm, unsigned index, struct vcpu **out)
{
	struct vcpu *v = calloc(1, sizeof(*v));
	if (!v)
		return -ENOMEM;
	v->vm = vm;
	v->index = index;
	v->fd = ioctl(vm->vm_fd, KVM_CREATE_VCPU, index);
	if (v->fd < 0) {
		int e = errno;
		log_error("KVM_CREATE_VCPU %u: %s", index, strerror(e));
		free(v);
		return -e;
	}
	int sz = ioctl(vm->kvm_fd, KVM_GET_VCPU_MMAP_SIZE, 0);
	if (sz <= 0) {
		int e = errno;
		close(v->fd);
		free(v);
		return -e;
	}
	v->run_size = (size_t)sz;
	v->run = mmap(NULL, v->run_size, PROT_READ | PROT_WRITE, MAP_SHARED,
		      v->fd, 0);
	if (v->run == MAP_FAILED) {
		int e = errno;
		close(v->fd);
		free(v);
		return -e;
	}
	int r = dirty_ring_map_vcpu(v);
	if (r) {
		log_error("vCPU %u: cannot map its dirty ring: %s", index,
			  strerror(-r));
		vcpu_destroy(v);
		return r;
	}
	r = cpuid_set_for_vcpu(v->fd, vm->cpuid, index, vm->nvcpus);
	if (r) {
		vcpu_destroy(v);
		return r;
	}
	*out = v;
	return 0;
}

void vcpu_destroy(struct vcpu *v)
{
	if (!v)
		return;
	dirty_ring_unmap_vcpu(v);
	if (v->run && v->run != MAP_FAILED)
		munmap(v->run, v->run_size);
	if (v->fd >= 0)
		close(v->fd);
	free(v);
}

void vcpu_kick(struct vcpu *v)
{
	if (v->thread_started)
		pthread_kill(v->thread, SIG_KICK);
}

int vcpu_set_multiboot_entry(struct vcpu *v, uint32_t entry, uint32_t mbi)
{
	struct kvm_sregs sregs;
	struct kvm_regs regs;

	if (ioctl(v->fd, KVM_GET_SREGS, &sregs) < 0)
		return -errno;
	/* Multiboot v1, section 3.2: flat 4 GiB 32-bit segments, CR0.PE set,
	 * paging off; the GDTR may be anything (the guest loads its own). */
	struct kvm_segment code = {
		.base = 0, .limit = 0xffffffff, .selector = 0x10,
		.type = 0xb, .present = 1, .dpl = 0, .db = 1, .s = 1, .l = 0,
		.g = 1,
	};
	struct kvm_segment data = code;
	data.selector = 0x18;
	data.type = 0x3;
	sregs.cs = code;
	sregs.ds = sregs.es = sregs.fs = sregs.gs = sregs.ss = data;
	sregs.cr0 = 0x11; /* PE | ET */
	sregs.cr4 = 0;
	sregs.efer = 0;
	if (ioctl(v->fd, KVM_SET_SREGS, &sregs) < 0)
		return -errno;

	memset(&regs, 0, sizeof(regs));
	regs.rip = entry;
	regs.rax = 0x2BADB002;
	regs.rbx = mbi;
	regs.rflags = 0x2;
	if (ioctl(v->fd, KVM_SET_REGS, &regs) < 0)
		return -errno;
	return 0;
}

/* Park until resumed.  Before parking, re-enter KVM with immediate_exit so
 * that an I/O instruction whose exit we just handled is completed: its
 * result lives only inside KVM until then and would be lost by a save. */
static void vcpu_park(struct vcpu *v)
{
	struct vm *vm = v->vm;

	if (v->io_pending) {
		v->run->immediate_exit = 1;
		if (ioctl(v->fd, KVM_RUN, 0) == 0)
			log_warn("vCPU %u: KVM_RUN ran despite immediate_exit",
				 v->index);
		v->io_pending = false;
	}
	pthread_mutex_lock(&vm->lock);
	vm->vcpus_parked++;
	pthread_cond_broadcast(&vm->cond);
	while (vm->pause_requested && !vm->quit_requested)
		pthread_cond_wait(&vm->cond, &vm->lock);
	vm->vcpus_parked--;
	pthread_cond_broadcast(&vm->cond);
	pthread_mutex_unlock(&vm->lock);
}

static void vcpu_handle_io(struct vcpu *v)
{
	struct kvm_run *run = v->run;
	uint8_t *data = (uint8_t *)run + run->io.data_offset;

	for (uint32_t i = 0; i < run->io.count; i++) {
		vm_pio(v->vm, run->io.port, run->io.direction == KVM_EXIT_IO_OUT,
		       data, run->io.size);
		data += run->io.size;
	}
	v->io_pending = true;
}

static void vcpu_internal_error(struct vcpu *v, const char *what)
{
	char msg[200];
	struct kvm_regs regs;

	if (ioctl(v->fd, KVM_GET_REGS, &regs) == 0)
		snprintf(msg, sizeof(msg), "vCPU %u: %s at rip=0x%llx",
			 v->index, what, (unsigned long long)regs.rip);
	else
		snprintf(msg, sizeof(msg), "vCPU %u: %s", v->index, what);
	vm_set_internal_error(v->vm, msg);
}

static void *vcpu_thread(void *arg)
{
	struct vcpu *v = arg;
	struct vm *vm = v->vm;
	char name[16];

	snprintf(name, sizeof(name), "vcpu%u", v->index);
	pthread_setname_np(pthread_self(), name);
	current_run = v->run;

	/* Only this thread takes the kick signal. */
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIG_KICK);
	pthread_sigmask(SIG_UNBLOCK, &set, NULL);

	/* The gate: no guest code until every vCPU thread exists (vm_start),
	 * so a start that fails half-way has run nothing. */
	pthread_mutex_lock(&vm->lock);
	while (!vm->vcpus_released && !vm->start_failed && !vm->quit_requested)
		pthread_cond_wait(&vm->cond, &vm->lock);
	bool go = vm->vcpus_released;
	pthread_mutex_unlock(&vm->lock);
	if (!go) {
		current_run = NULL;
		return NULL;
	}

	for (;;) {
		v->run->immediate_exit = 0;
		pthread_mutex_lock(&vm->lock);
		bool quit = vm->quit_requested;
		bool pause = vm->pause_requested;
		pthread_mutex_unlock(&vm->lock);
		if (quit)
			break;
		if (pause) {
			vcpu_park(v);
			continue;
		}
		/* After a throttle's sleep, look at pause and quit again. */
		if (vm_throttle_point(v))
			continue;
		v->io_pending = false;
		if (ioctl(v->fd, KVM_RUN, 0) < 0) {
			if (errno == EINTR || errno == EAGAIN)
				continue;
			char msg[96];
			snprintf(msg, sizeof(msg), "KVM_RUN failed: %s",
				 strerror(errno));
			vcpu_internal_error(v, msg);
			continue;
		}
		switch (v->run->exit_reason) {
		case KVM_EXIT_IO:
			vcpu_handle_io(v);
			break;
		case KVM_EXIT_MMIO:
			/* Nothing is mapped there: reads see all ones. */
			vm_mmio_unhandled(vm, v->run->mmio.phys_addr,
					  v->run->mmio.is_write,
					  v->run->mmio.data, v->run->mmio.len);
			v->io_pending = true;
			break;
		case KVM_EXIT_HLT:
			/* Only without an in-kernel irqchip; treat as done. */
			vm_set_shutdown(vm);
			break;
		case KVM_EXIT_SHUTDOWN:
			log_error("vCPU %u: guest shut down (triple fault)",
				  v->index);
			vm_set_shutdown(vm);
			break;
		case KVM_EXIT_INTERNAL_ERROR: {
			char msg[96];
			snprintf(msg, sizeof(msg),
				 "KVM internal error, suberror %u",
				 v->run->internal.suberror);
			vcpu_internal_error(v, msg);
			break;
		}
		case KVM_EXIT_FAIL_ENTRY: {
			char msg[96];
			snprintf(msg, sizeof(msg), "VM entry failed, reason 0x%llx",
				 (unsigned long long)v->run->fail_entry
					 .hardware_entry_failure_reason);
			vcpu_internal_error(v, msg);
			break;
		}
		case KVM_EXIT_SYSTEM_EVENT:
			vm_set_shutdown(vm);
			break;
		case KVM_EXIT_DIRTY_RING_FULL: {
			/* KVM will not run this vCPU on until its ring has
			 * room: harvest every ring (dirty_ring.h). */
			int e = dirty_ring_reap(vm, true);
			if (e) {
				char msg[96];
				snprintf(msg, sizeof(msg), "dirty ring full, cannot "
					 "reset it: %s", strerror(-e));
				vcpu_internal_error(v, msg);
			}
			break;
		}
		default: {
			char msg[96];
			snprintf(msg, sizeof(msg), "unhandled exit reason %u",
				 v->run->exit_reason);
			vcpu_internal_error(v, msg);
			break;
		}
		}
	}
	current_run = NULL;
	return NULL;
}

int vcpu_start_thread(struct vcpu *v)
{
	/* The thread starts with SIG_KICK blocked (inherited from the
	 * creator, see vm_start) and unblocks it itself. */
	int r = pthread_create(&v->thread, NULL, vcpu_thread, v);
	if (r)
		return -r;
	v->thread_started = true;
	return 0;
}
