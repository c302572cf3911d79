#include "vmm/vm.h"
#include "vmm/prealloc.h"
#include "vmm/exit_status.h"
#include "vmm/kvm.h"
#include "vmm/machine_desc.h"
#include "vmm/vcpu.h"
#include "vmm/platform_state.h"
#include "vmm/dirty_log.h"
#include "devices/device.h"
#include "devices/uart8250.h"
#include "devices/testdev.h"
#include "devices/heartbeat.h"
#include "devices/debugexit.h"
#include "devices/fwcfg.h"
#include "util/clock.h"
#include "util/log.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/ioctl.h>
#include <linux/kvm.h>

/* Where KVM may put its private pages (needed on Intel; harmless else):
 * just below the 4 GiB boundary, inside the hole. */
#define KVM_TSS_ADDR       0xfffbd000ULL
#define KVM_IDENTITY_ADDR  0xfffbc000ULL

static int vm_create_irqchip(struct vm *vm, char *err)
{
	if (ioctl(vm->vm_fd, KVM_SET_TSS_ADDR, KVM_TSS_ADDR) < 0)
		log_debug("KVM_SET_TSS_ADDR: %s", strerror(errno));
	uint64_t ident = KVM_IDENTITY_ADDR;
	if (ioctl(vm->vm_fd, KVM_SET_IDENTITY_MAP_ADDR, &ident) < 0)
		log_debug("KVM_SET_IDENTITY_MAP_ADDR: %s", strerror(errno));
	if (ioctl(vm->vm_fd, KVM_CREATE_IRQCHIP, 0) < 0)
		return err_set(err, -errno, "KVM_CREATE_IRQCHIP: %s",
			       strerror(errno));
	/* SPEAKER_DUMMY: KVM also answers port 0x61 (the PIT channel 2 gate
	 * and output), which guests use to calibrate their TSC; without it
	 * the port falls through to user space. */
	struct kvm_pit_config pit = { .flags = KVM_PIT_SPEAKER_DUMMY };
	if (ioctl(vm->vm_fd, KVM_CREATE_PIT2, &pit) < 0)
		return err_set(err, -errno, "KVM_CREATE_PIT2: %s",
			       strerror(errno));
	return 0;
}

static int vm_create_devices(struct vm *vm, const struct vm_config *cfg,
			     char *err)
{
	int r;
	/* Before the test device: it takes over the test device's exit
	 * port (the bus gives a port to the device added first). */
	if (cfg->exit_port == VM_EXIT_PORT_ISA_DEBUG_EXIT) {
		r = debugexit_create(vm);
		if (r)
			return err_set(err, r, "cannot create isa-debug-exit");
	}
	r = uart_create(vm, cfg->serial ? cfg->serial : "stdio", &vm->uart,
			err);
	if (r)
		return r;
	r = fwcfg_create(vm);
	if (r)
		return err_set(err, r, "cannot create fw_cfg");
	r = platform_state_create(vm);
	if (r)
		return err_set(err, r, "cannot create the platform devices");
	r = testdev_create(vm, &vm->testdev);
	if (r)
		return err_set(err, r, "cannot create the test device");
	return heartbeat_create(vm, cfg->heartbeat ? cfg->heartbeat : "none",
				&vm->heartbeat, err);
}

/* A VM object for @cfg with nothing behind it yet: the config checked,
 * locks ready, no KVM, no memory, no vCPUs. */
static int vm_shell(const struct vm_config *cfg, struct vm **out, char *err)
{
	if (cfg->vcpus < 1 || cfg->vcpus > VM_MAX_VCPUS)
		return err_set(err, -EINVAL, "vcpus must be 1..%d, not %u",
			       VM_MAX_VCPUS, cfg->vcpus);
	if (cfg->ram_size < (2ULL << 20) || cfg->ram_size % GUEST_PAGE_SIZE)
		return err_set(err, -EINVAL,
			       "memory must be at least 2 MiB and a multiple of 4 KiB");
	struct vm *vm = calloc(1, sizeof(*vm));
	if (!vm)
		return err_set(err, -ENOMEM, "out of memory");
	vm->kvm_fd = vm->vm_fd = -1;
	pthread_mutex_init(&vm->lock, NULL);
	pthread_mutex_init(&vm->io_lock, NULL);
	pthread_cond_init(&vm->cond, NULL);
	vm_throttle_init(&vm->throttle);
	dirty_limit_init(&vm->dlimit);
	vm->status = VM_STATUS_PRELAUNCH;
	vm->exit_port = cfg->exit_port;
	*out = vm;
	return 0;
}

int vm_check_described_devices(struct json_t *desc,
			       const struct vm_config *cfg, char *err)
{
	/* The devices only, as vm_create builds them for cfg, on a VM with
	 * no KVM behind it: creating a device opens nothing with "none"
	 * backends and touches no KVM state. */
	struct vm_config c = *cfg;
	struct vm *vm;
	int r = vm_shell(&c, &vm, err);

	if (r)
		return r;
	memory_layout(&vm->mem, c.ram_size);
	c.serial = "none";
	c.heartbeat = "none";
	r = vm_create_devices(vm, &c, err);
	if (!r)
		r = machine_desc_check_devices(desc, vm, err);
	vm_destroy(vm);
	return r;
}

int vm_create(struct vm **out, const struct vm_config *cfg, char *err)
{
	int r;

	struct vm *vm;

	r = vm_shell(cfg, &vm, err);
	if (r)
		return r;
	vm->nvcpus = cfg->vcpus;

	r = vm->kvm_fd = kvm_open(err);
	if (r < 0)
		goto fail;
	if (cfg->vcpus > (unsigned)ioctl(vm->kvm_fd, KVM_CHECK_EXTENSION,
					  KVM_CAP_MAX_VCPUS)) {
		r = err_set(err, -EINVAL, "KVM supports fewer than %u vCPUs",
			    cfg->vcpus);
		goto fail;
	}
	vm->vm_fd = ioctl(vm->kvm_fd, KVM_CREATE_VM, 0);
	if (vm->vm_fd < 0) {
		r = err_set(err, -errno, "KVM_CREATE_VM: %s", strerror(errno));
		goto fail;
	}
	if (cfg->prealloc && mem_prealloc_size(cfg->prealloc) != cfg->ram_size) {
		r = err_set(err, -EINVAL, "the memory prepared with --prealloc is not "
			    "this VM's size");
		goto fail;
	}
	if (cfg->prealloc) {
		r = mem_prealloc_take(cfg->prealloc, &vm->mem, err);
	} else {
		memory_layout(&vm->mem, cfg->ram_size);
		r = memory_alloc(&vm->mem, err);
	}
	if (r)
		goto fail;
	/* The ring, if asked for, replaces the bitmap and its manual
	 * protection; a KVM without one leaves the bitmap. */
	if (cfg->dirty_ring) {
		char why[ERR_MAX] = "";
		r = dirty_ring_enable(vm, cfg->dirty_ring, why);
		if (r == -ENOTSUP)
			log_warn("--dirty-ring: %s; tracking dirty pages with the bitmap",
				 why);
		else if (r) {
			err_set(err, r, "%s", why);
			goto fail;
		} else
			log_info("dirty pages tracked by KVM's dirty ring (%u entries per vCPU)",
				 cfg->dirty_ring);
	}
	if (!dirty_ring_on(&vm->ring)) {
		r = dirty_log_enable_cap(vm);
		if (r) {
			err_set(err, r, "KVM lacks manual dirty log protection: %s",
				strerror(-r));
			goto fail;
		}
	}
	r = memory_register(&vm->mem, vm->vm_fd, false);
	if (r) {
		err_set(err, r, "cannot register guest memory with KVM: %s",
			strerror(-r));
		goto fail;
	}
	r = vm_create_irqchip(vm, err);
	if (r)
		goto fail;
	if (cfg->cpuid) {
		size_t sz = sizeof(*cfg->cpuid) +
			    cfg->cpuid->nent * sizeof(cfg->cpuid->entries[0]);
		vm->cpuid = malloc(sz);
		if (vm->cpuid)
			memcpy(vm->cpuid, cfg->cpuid, sz);
		else
			err_set(err, -ENOMEM, "out of memory");
	} else {
		vm->cpuid = kvm_supported_cpuid(vm->kvm_fd, err);
	}
	if (!vm->cpuid) {
		r = -EINVAL;
		goto fail;
	}
	for (unsigned i = 0; i < vm->nvcpus; i++) {
		r = vcpu_create(vm, i, &vm->vcpus[i]);
		if (r) {
			err_set(err, r, "cannot create vCPU %u: %s", i,
				strerror(-r));
			goto fail;
		}
	}
	r = vcpu_msr_list_init(vm->kvm_fd, vm->vcpus[0]->fd);
	if (r) {
		err_set(err, r, "cannot list the vCPU MSRs: %s", strerror(-r));
		goto fail;
	}
	r = vm_create_devices(vm, cfg, err);
	if (r)
		goto fail;
	*out = vm;
	return 0;
fail:
	vm_destroy(vm);
	return r;
}

int vm_create_offline(struct vm **out, const struct vm_config *cfg, char *err)
{
	int r;

	struct vm *vm;

	r = vm_shell(cfg, &vm, err);
	if (r)
		return r;
	memory_layout(&vm->mem, cfg->ram_size);
	r = memory_alloc(&vm->mem, err);
	if (r)
		goto fail;
	size_t n = cfg->cpuid ? cfg->cpuid->nent : 0;
	size_t sz = sizeof(*vm->cpuid) + n * sizeof(vm->cpuid->entries[0]);
	vm->cpuid = calloc(1, sz);
	if (!vm->cpuid) {
		r = err_set(err, -ENOMEM, "out of memory");
		goto fail;
	}
	if (cfg->cpuid)
		memcpy(vm->cpuid, cfg->cpuid, sz);
	/* vCPU objects without a KVM fd: their loaders check everything,
	 * then the ioctl fails with EBADF. */
	for (unsigned i = 0; i < cfg->vcpus; i++) {
		struct vcpu *v = calloc(1, sizeof(*v));
		if (!v) {
			r = err_set(err, -ENOMEM, "out of memory");
			goto fail;
		}
		v->vm = vm;
		v->index = i;
		v->fd = -1;
		vm->vcpus[vm->nvcpus++] = v;
	}
	r = vm_create_devices(vm, cfg, err);
	if (r)
		goto fail;
	*out = vm;
	return 0;
fail:
	vm_destroy(vm);
	return r;
}

void vm_destroy(struct vm *vm)
{
	if (!vm)
		return;
	/* The controller and the kicker walk the vCPUs: they go first. */
	dirty_limit_fini(vm);
	vm_throttle_fini(vm);
	pthread_mutex_lock(&vm->lock);
	vm->quit_requested = true;
	pthread_cond_broadcast(&vm->cond);
	pthread_mutex_unlock(&vm->lock);
	for (unsigned i = 0; i < vm->nvcpus; i++) {
		if (vm->vcpus[i] && vm->vcpus[i]->thread_started) {
			vcpu_kick(vm->vcpus[i]);
			pthread_join(vm->vcpus[i]->thread, NULL);
			vm->vcpus[i]->thread_started = false;
		}
	}
	for (unsigned i = 0; i < vm->ndevices; i++)
		if (vm->devices[i]->ops->destroy)
			vm->devices[i]->ops->destroy(vm->devices[i]);
	for (unsigned i = 0; i < vm->nvcpus; i++)
		vcpu_destroy(vm->vcpus[i]);
	dirty_ring_free(vm);
	free(vm->cpuid);
	if (vm->vm_fd >= 0)
		close(vm->vm_fd);
	memory_free(&vm->mem);
	if (vm->kvm_fd >= 0)
		close(vm->kvm_fd);
	pthread_mutex_destroy(&vm->lock);
	pthread_mutex_destroy(&vm->io_lock);
	pthread_cond_destroy(&vm->cond);
	free(vm);
}

static int start_fault_index = -1;

void vm_set_start_fault(int index) { start_fault_index = index; }

int vm_start(struct vm *vm, bool paused, char *err)
{
	/* Block the kick signal in every thread but the vCPU threads, which
	 * unblock it for themselves: a kick must only ever interrupt
	 * KVM_RUN. */
	sigset_t set, old;
	sigemptyset(&set);
	sigaddset(&set, SIGUSR1);
	pthread_sigmask(SIG_BLOCK, &set, &old);

	pthread_mutex_lock(&vm->lock);
	vm->vcpus_released = false;
	vm->start_failed = false;
	pthread_mutex_unlock(&vm->lock);
	for (unsigned i = 0; i < vm->nvcpus; i++) {
		int r;
		if ((int)i == start_fault_index) {
			/* Long enough that, were the gate missing, the
			 * threads before this one would have run guest code. */
			usleep(200000);
			log_error("fault injection: vCPU thread %u is not created", i);
			r = -EAGAIN;
		} else {
			r = vcpu_start_thread(vm->vcpus[i]);
		}
		if (r) {
			/* None of them ran guest code: send them home. */
			pthread_mutex_lock(&vm->lock);
			vm->start_failed = true;
			pthread_cond_broadcast(&vm->cond);
			pthread_mutex_unlock(&vm->lock);
			for (unsigned k = 0; k < i; k++) {
				pthread_join(vm->vcpus[k]->thread, NULL);
				vm->vcpus[k]->thread_started = false;
			}
			return err_set(err, r, "cannot start vCPU thread %u of %u: %s; "
				       "no vCPU ran", i, vm->nvcpus, strerror(-r));
		}
	}
	pthread_mutex_lock(&vm->lock);
	vm->pause_requested = paused;
	vm->status = paused ? VM_STATUS_PAUSED : VM_STATUS_RUNNING;
	vm->vcpus_released = true;
	pthread_cond_broadcast(&vm->cond);
	pthread_mutex_unlock(&vm->lock);
	return 0;
}

/* Caller holds vm->lock. */
static void vm_pause_locked(struct vm *vm)
{
	vm->pause_requested = true;
	/* A vCPU asleep for the throttle waits on cond (vm_throttle_point). */
	pthread_cond_broadcast(&vm->cond);
	for (unsigned i = 0; i < vm->nvcpus; i++)
		vcpu_kick(vm->vcpus[i]);
	while (vm->vcpus_parked < vm->nvcpus && !vm->quit_requested)
		pthread_cond_wait(&vm->cond, &vm->lock);
}

void vm_pause(struct vm *vm)
{
	pthread_mutex_lock(&vm->lock);
	if (vm->held) {
		if (vm->held_prev == VM_STATUS_RUNNING)
			vm->held_prev = VM_STATUS_PAUSED;
	} else {
		/* Always wait: a vCPU asked to stop by a guest shutdown may
		 * still be on its way out of KVM_RUN. */
		vm_pause_locked(vm);
		if (vm->status == VM_STATUS_RUNNING)
			vm->status = VM_STATUS_PAUSED;
	}
	pthread_mutex_unlock(&vm->lock);
}

int vm_resume(struct vm *vm)
{
	pthread_mutex_lock(&vm->lock);
	if (vm->held) {
		pthread_mutex_unlock(&vm->lock);
		return -EBUSY;
	}
	vm->pause_requested = false;
	vm->status = VM_STATUS_RUNNING;
	pthread_cond_broadcast(&vm->cond);
	pthread_mutex_unlock(&vm->lock);
	return 0;
}

enum vm_status vm_hold(struct vm *vm, enum vm_status st)
{
	pthread_mutex_lock(&vm->lock);
	while (vm->held && !vm->quit_requested)
		pthread_cond_wait(&vm->cond, &vm->lock);
	vm->held = true;
	vm->held_prev = vm->status;
	vm_pause_locked(vm);
	vm->status = st;
	enum vm_status prev = vm->held_prev;
	pthread_mutex_unlock(&vm->lock);
	return prev;
}

void vm_release(struct vm *vm)
{
	pthread_mutex_lock(&vm->lock);
	vm->held = false;
	vm->status = vm->held_prev;
	if (vm->status == VM_STATUS_RUNNING)
		vm->pause_requested = false;
	pthread_cond_broadcast(&vm->cond);
	pthread_mutex_unlock(&vm->lock);
}

void vm_release_to(struct vm *vm, enum vm_status st)
{
	pthread_mutex_lock(&vm->lock);
	vm->held = false;
	vm->status = st;
	pthread_cond_broadcast(&vm->cond);
	pthread_mutex_unlock(&vm->lock);
}

bool vm_held_was_running(struct vm *vm)
{
	pthread_mutex_lock(&vm->lock);
	bool run = vm->held && vm->held_prev == VM_STATUS_RUNNING;
	pthread_mutex_unlock(&vm->lock);
	return run;
}

bool vm_drain_output(struct vm *vm, unsigned max_ms)
{
	uint64_t t0 = clock_mono_ns();
	bool uart = uart_drain(vm->uart, max_ms);
	uint64_t spent_ms = (clock_mono_ns() - t0) / 1000000;
	unsigned left = spent_ms < max_ms ? max_ms - (unsigned)spent_ms : 0;
	return heartbeat_drain(vm->heartbeat, left) && uart;
}

enum vm_status vm_get_status(struct vm *vm)
{
	pthread_mutex_lock(&vm->lock);
	enum vm_status st = vm->status;
	pthread_mutex_unlock(&vm->lock);
	return st;
}

const char *vm_status_name(enum vm_status st)
{
	switch (st) {
	case VM_STATUS_PRELAUNCH: return "prelaunch";
	case VM_STATUS_RUNNING: return "running";
	case VM_STATUS_PAUSED: return "paused";
	case VM_STATUS_SAVING: return "save-vm";
	case VM_STATUS_FINISH_MIGRATE: return "finish-migrate";
	case VM_STATUS_POSTMIGRATE: return "postmigrate";
	case VM_STATUS_POSTMIGRATE_UNKNOWN: return "postmigrate-unknown";
	case VM_STATUS_SHUTDOWN: return "shutdown";
	case VM_STATUS_INTERNAL_ERROR: return "internal-error";
	}
	return "unknown";
}

void vm_request_quit(struct vm *vm, int exit_code)
{
	pthread_mutex_lock(&vm->lock);
	if (!vm->quit_requested) {
		vm->quit_requested = true;
		vm->exit_code = exit_code;
	}
	pthread_cond_broadcast(&vm->cond);
	pthread_mutex_unlock(&vm->lock);
	for (unsigned i = 0; i < vm->nvcpus; i++)
		vcpu_kick(vm->vcpus[i]);
}

void vm_guest_exit(struct vm *vm, uint64_t code, const char *how)
{
	char why[160] = "";
	int status = exit_status_for_guest(code, why, sizeof(why));

	if (why[0])
		log_warn("%s: %s; exiting with %d (the guest failed)", how, why,
			 status);
	else
		log_info("%s: the guest exited with code %d", how, status);
	vm_request_quit(vm, status);
}

/* A stopped guest stays inspectable: its vCPUs park (without waiting for
 * them here - this may run on a vCPU thread) and the status says why. */
static void vm_stop_with(struct vm *vm, enum vm_status st, const char *msg)
{
	pthread_mutex_lock(&vm->lock);
	if (vm->status != VM_STATUS_INTERNAL_ERROR &&
	    vm->status != VM_STATUS_SHUTDOWN) {
		vm->status = st;
		if (msg)
			snprintf(vm->error, sizeof(vm->error), "%s", msg);
	}
	vm->pause_requested = true;
	pthread_cond_broadcast(&vm->cond);
	pthread_mutex_unlock(&vm->lock);
	for (unsigned i = 0; i < vm->nvcpus; i++)
		vcpu_kick(vm->vcpus[i]);
}

void vm_set_internal_error(struct vm *vm, const char *msg)
{
	log_error("%s", msg);
	vm_stop_with(vm, VM_STATUS_INTERNAL_ERROR, msg);
}

void vm_set_shutdown(struct vm *vm)
{
	vm_stop_with(vm, VM_STATUS_SHUTDOWN, "guest shut down");
}

int vm_wait_quit(struct vm *vm)
{
	pthread_mutex_lock(&vm->lock);
	while (!vm->quit_requested)
		pthread_cond_wait(&vm->cond, &vm->lock);
	int code = vm->exit_code;
	pthread_mutex_unlock(&vm->lock);
	return code;
}

int vm_write_guest_memory(struct vm *vm, uint64_t gpa, const void *data,
			  size_t len, char *err)
{
	void *hva = memory_gpa_to_hva(&vm->mem, gpa, len);
	if (!hva)
		return err_set(err, -EFAULT, "[0x%llx, 0x%llx) is not inside guest RAM",
			       (unsigned long long)gpa,
			       (unsigned long long)(gpa + len));
	/* On a post-copy destination the rest of a page written in part
	 * must come first; waited for outside the lock. */
	int r = memory_ensure(&vm->mem, gpa, len);
	if (r)
		return err_set(err, r, "post-copy cannot deliver the pages of [0x%llx, 0x%llx)",
			       (unsigned long long)gpa,
			       (unsigned long long)(gpa + len));
	pthread_mutex_lock(&vm->lock);
	if (vm->held) {
		/* After the final dirty harvest a write would never be sent
		 * (or saved): refuse rather than lose it. */
		r = err_set(err, -EBUSY,
			    "the VM is held (%s) for a snapshot or the last step of a "
			    "migration; guest memory cannot change now, try again when it is done",
			    vm_status_name(vm->status));
	} else if (vm->status == VM_STATUS_POSTMIGRATE ||
		   vm->status == VM_STATUS_POSTMIGRATE_UNKNOWN) {
		r = err_set(err, -EBUSY,
			    "the VM is %s: its memory here is no longer the guest's",
			    vm_status_name(vm->status));
	} else {
		/* A plain store, as a DMA-ing device would do.  KVM's dirty
		 * log sees only guest writes: a migration in flight learns of
		 * this one from the VMM's own bitmap. */
		memcpy(hva, data, len);
		memory_mark_dirty(&vm->mem, gpa, len);
	}
	pthread_mutex_unlock(&vm->lock);
	return r;
}

int vm_add_device(struct vm *vm, struct device *dev)
{
	if (vm->ndevices == VM_MAX_DEVICES)
		return -ENOSPC;
	dev->vm = vm;
	vm->devices[vm->ndevices++] = dev;
	return 0;
}

struct device *vm_find_device(struct vm *vm, const char *name)
{
	for (unsigned i = 0; i < vm->ndevices; i++)
		if (!strcmp(vm->devices[i]->ops->name, name))
			return vm->devices[i];
	return NULL;
}

/* An access no device claims: reads give all ones, as on a PC's ISA
 * bus; counted per address for query-vm and logged the first time. */
static void unhandled(struct vm *vm, enum io_space space, uint64_t addr,
		      bool is_write, void *data, unsigned size)
{
	if (!is_write)
		memset(data, 0xff, size);
	pthread_mutex_lock(&vm->io_lock);
	bool first = io_unhandled_note(&vm->unhandled, space, addr, is_write);
	pthread_mutex_unlock(&vm->io_lock);
	if (first)
		log_info("no device at %s 0x%llx (%s of %u bytes): %s; "
			 "counted in query-vm, logged once",
			 space == IO_SPACE_PIO ? "port" : "MMIO",
			 (unsigned long long)addr, is_write ? "write" : "read",
			 size, is_write ? "ignored" : "reads all ones");
}

void vm_pio(struct vm *vm, uint16_t port, bool is_write, void *data,
	    unsigned size)
{
	for (unsigned i = 0; i < vm->ndevices; i++) {
		struct device *d = vm->devices[i];
		if (port < d->port_base || port >= d->port_base + d->port_count)
			continue;
		pthread_mutex_lock(&vm->io_lock);
		if (is_write) {
			if (d->ops->pio_out)
				d->ops->pio_out(d, port, data, size);
		} else if (d->ops->pio_in) {
			d->ops->pio_in(d, port, data, size);
		}
		pthread_mutex_unlock(&vm->io_lock);
		return;
	}
	unhandled(vm, IO_SPACE_PIO, port, is_write, data, size);
}

void vm_mmio_unhandled(struct vm *vm, uint64_t addr, bool is_write,
		       void *data, unsigned len)
{
	unhandled(vm, IO_SPACE_MMIO, addr, is_write, data, len);
}

void vm_get_unhandled(struct vm *vm, struct io_unhandled *out)
{
	pthread_mutex_lock(&vm->io_lock);
	*out = vm->unhandled;
	pthread_mutex_unlock(&vm->io_lock);
}

int vm_parse_exit_port(const char *s, enum vm_exit_port *out)
{
	if (!strcmp(s, "ferry"))
		*out = VM_EXIT_PORT_FERRY;
	else if (!strcmp(s, "isa-debug-exit"))
		*out = VM_EXIT_PORT_ISA_DEBUG_EXIT;
	else
		return -EINVAL;
	return 0;
}

const char *vm_exit_port_name(enum vm_exit_port p)
{
	return p == VM_EXIT_PORT_ISA_DEBUG_EXIT ? "isa-debug-exit" : "ferry";
}

void vm_set_irq(struct vm *vm, unsigned irq, bool level)
{
	struct kvm_irq_level l = { .irq = irq, .level = level };
	if (ioctl(vm->vm_fd, KVM_IRQ_LINE, &l) < 0)
		log_warn("KVM_IRQ_LINE %u: %s", irq, strerror(errno));
}
