/*
 * vm.h - a KVM virtual machine: memory, vCPU threads, in-kernel irqchip and
 * PIT, and the devices on the port I/O bus.
 *
 * Threads: one per vCPU runs KVM_RUN; the control socket has its own thread;
 * the main thread waits for the VM to end.  vm->lock guards the run state;
 * vm->io_lock serialises device emulation.
 */
#ifndef FERRY_VM_H
#define FERRY_VM_H

#include <pthread.h>
#include <stddef.h>
#include <stdbool.h>
#include <stdint.h>

#include "vmm/memory.h"
#include "vmm/io_unhandled.h"
#include "vmm/dirty_ring.h"
#include "vmm/dirty_limit.h"
#include "vmm/throttle.h"

#define VM_MAX_VCPUS   64
#define VM_MAX_DEVICES 16

struct vcpu;
struct device;
struct uart;
struct testdev;
struct heartbeat;
struct mem_prealloc;
struct kvm_cpuid2;
struct migration;

/* Names follow QEMU's RunState where the meaning is the same. */
enum vm_status {
	VM_STATUS_PRELAUNCH,      /* "prelaunch": created, not yet started */
	VM_STATUS_RUNNING,        /* "running" */
	VM_STATUS_PAUSED,         /* "paused": stopped by `stop` */
	VM_STATUS_SAVING,         /* "save-vm": paused for a snapshot */
	VM_STATUS_FINISH_MIGRATE, /* "finish-migrate": paused for stop-and-copy */
	VM_STATUS_POSTMIGRATE,    /* "postmigrate": the VM now runs elsewhere */
	/* "postmigrate-unknown" (Ferry's own): COMMIT went out and no answer
	 * came; the guest may run at the destination.  Paused; no `migrate`,
	 * and `cont` only with force (the operator knows it does not run
	 * there). */
	VM_STATUS_POSTMIGRATE_UNKNOWN,
	VM_STATUS_SHUTDOWN,       /* "shutdown": guest exited or reset */
	VM_STATUS_INTERNAL_ERROR, /* "internal-error": KVM could not go on */
};

/* What a write to port 0xf4 means (--exit-port). */
enum vm_exit_port {
	VM_EXIT_PORT_FERRY,          /* "ferry": exit status V (the default) */
	VM_EXIT_PORT_ISA_DEBUG_EXIT, /* "isa-debug-exit": (V << 1) | 1, as QEMU */
};

struct vm_config {
	uint64_t ram_size;
	unsigned vcpus;
	const char *kernel;     /* multiboot image (not needed with restore) */
	const char *cmdline;
	const char *serial;     /* "stdio", "file:PATH", "none" */
	const char *heartbeat;  /* "none", "file:PATH", "unix:PATH" */
	enum vm_exit_port exit_port; /* part of the machine: HELLO carries it */
	/* The guest's CPUID when it must match another host's (an incoming
	 * migration); NULL: what this host's KVM supports. */
	const struct kvm_cpuid2 *cpuid;
	/* Guest RAM prepared in advance (`--prealloc`, vmm/prealloc.h):
	 * vm_create takes it (its size must be ram_size) instead of mapping
	 * fresh memory.  NULL: map fresh memory. */
	struct mem_prealloc *prealloc;
	/* Dirty tracking by KVM's ring of this many entries per vCPU
	 * (`--dirty-ring`, dirty_ring.h); 0: the bitmap.  This host's
	 * choice: not part of the machine a migration describes. */
	uint32_t dirty_ring;
};

struct vm {
	int kvm_fd;
	int vm_fd;
	struct guest_memory mem;
	unsigned nvcpus;
	struct vcpu *vcpus[VM_MAX_VCPUS];
	struct kvm_cpuid2 *cpuid;       /* what every vCPU is given */

	struct device *devices[VM_MAX_DEVICES];
	unsigned ndevices;
	struct uart *uart;
	struct testdev *testdev;
	struct heartbeat *heartbeat;
	enum vm_exit_port exit_port;
	pthread_mutex_t io_lock;
	struct io_unhandled unhandled; /* guarded by io_lock */

	/* Run state, guarded by lock; cond signals every change. */
	pthread_mutex_t lock;
	pthread_cond_t cond;
	enum vm_status status;
	bool pause_requested;
	unsigned vcpus_parked;
	bool held;               /* see vm_hold */
	enum vm_status held_prev;
	bool vcpus_released;     /* vm_start: every thread exists, run */
	bool start_failed;       /* vm_start: a thread failed, all leave */
	bool quit_requested;     /* the whole VMM should end */
	int exit_code;           /* process exit status once quit */
	char error[256];         /* why, for internal-error */

	struct migration *migration; /* outgoing migration, if any */
	struct vm_throttle throttle; /* auto-converge's slowing, throttle.h */
	struct dirty_ring ring;      /* when KVM's dirty ring tracks pages */
	struct dirty_limit dlimit;   /* each vCPU held to a dirty rate */
};

/* Create the VM (KVM VM, memory, irqchip, PIT, vCPUs, devices). */
int vm_create(struct vm **out, const struct vm_config *cfg, char *err);
void vm_destroy(struct vm *vm);
/**
 * vm_create_offline() - the same machine as vm_create (memory, vCPU
 * objects, the device set) with no KVM behind it: no VM fd, vCPUs
 * without fds, never started.  Loading state into it runs every real
 * decoder; the last step of those that hand state to KVM fails (EBADF).
 * For the fuzz targets and tests on hosts without /dev/kvm.  cfg->cpuid
 * (may be NULL: none) is copied; vm_destroy frees it all.
 */
int vm_create_offline(struct vm **out, const struct vm_config *cfg, char *err);

/**
 * vm_start() - start the vCPU threads, all or nothing: each thread waits at
 * a gate until every one exists, so no vCPU runs guest code unless all
 * can.  If creating one fails, those already created leave without
 * running anything and are joined, the VM stays in prelaunch, and the
 * error says which.  With @paused the vCPUs then park (vm_resume runs
 * them): a migration's destination starts them before READY and resumes
 * after COMMIT.
 */
int vm_start(struct vm *vm, bool paused, char *err);
/* Test hook: vm_start fails to create vCPU thread @index (after a pause
 * long enough for earlier threads to have run, were they let). -1: off. */
void vm_set_start_fault(int index);
/* The user's stop: park every vCPU outside KVM_RUN (pending I/O
 * completed); a running VM becomes paused.  While the VM is held (below)
 * it only records that the VM must stay paused when the hold ends. */
void vm_pause(struct vm *vm);
/* The user's cont: run again.  -EBUSY while the VM is held. */
int vm_resume(struct vm *vm);

/*
 * Holds: whole-machine work (a snapshot, a migration's stop-and-copy)
 * parks the vCPUs and owns the run state until it releases it; `cont`
 * cannot resume the guest in between.  vm_hold waits for another hold to
 * end, shows st while held, and returns the status before.
 */
enum vm_status vm_hold(struct vm *vm, enum vm_status st);
/* End the hold: back to running or paused as before (and as `stop`
 * meanwhile asked). */
void vm_release(struct vm *vm);
/* End the hold leaving the vCPUs parked with status st (postmigrate). */
void vm_release_to(struct vm *vm, enum vm_status st);
enum vm_status vm_get_status(struct vm *vm);
/* While held: would the guest run when the hold ends (it ran before and
 * no `stop` came meanwhile)?  A migration sends this with COMMIT, so the
 * guest arrives in the run state it had. */
bool vm_held_was_running(struct vm *vm);
/* While held: hand the guest's queued console and heartbeat output to
 * their readers, waiting at most max_ms in all.  True when none is left. */
bool vm_drain_output(struct vm *vm, unsigned max_ms);
const char *vm_status_name(enum vm_status st);

/* Ask the VMM to end with this exit code (guest exit, `quit`, fatal error).
 * internal: also mark the VM as internal-error with msg. */
void vm_request_quit(struct vm *vm, int exit_code);
/**
 * vm_guest_exit() - the guest asked to end with @code through an exit
 * port (@how names it for the log): quit with exit_status_for_guest()'s
 * status, saying so when that is not the code itself.
 */
void vm_guest_exit(struct vm *vm, uint64_t code, const char *how);

/**
 * vm_check_described_devices() - machine_desc_check_devices() against the
 * devices vm_create() would build for @cfg, before any VM exists and
 * without KVM: a snapshot (or a stream) naming an unknown device or a
 * wrong version is refused before /dev/kvm is opened.
 * @desc: a machine description (JSON; its "devices" list is checked)
 * @cfg: the machine it describes (vcpus, ram_size, exit_port), as
 *       machine_desc_check() filled it
 * Return: 0, or negative errno with @err naming the field at fault.
 */
struct json_t;
int vm_check_described_devices(struct json_t *desc,
			       const struct vm_config *cfg, char *err);
void vm_set_internal_error(struct vm *vm, const char *msg);
void vm_set_shutdown(struct vm *vm);
/* Block until vm_request_quit; returns the exit code. */
int vm_wait_quit(struct vm *vm);

/**
 * vm_write_guest_memory() - the VMM writes guest RAM (a test hook, later
 * device DMA): copied in and marked dirty for a migration in flight, in
 * one step under vm->lock against vm_hold.  So a write either lands before
 * a snapshot or stop-and-copy holds the VM (and its page is in the final
 * dirty set) or is refused with -EBUSY: while held (snapshot, stop-and-
 * copy) and once migrated (postmigrate, postmigrate-unknown).  -EFAULT if
 * the range is not inside one RAM slot.
 */
int vm_write_guest_memory(struct vm *vm, uint64_t gpa, const void *data,
			  size_t len, char *err);

/* --exit-port names <-> values; parse returns 0 or -EINVAL. */
int vm_parse_exit_port(const char *s, enum vm_exit_port *out);
const char *vm_exit_port_name(enum vm_exit_port p);

/* Register a device's port range on the I/O bus.  Where two devices
 * claim a port, the one added first answers. */
int vm_add_device(struct vm *vm, struct device *dev);
struct device *vm_find_device(struct vm *vm, const char *name);
/* Dispatch one port I/O access from a vCPU. */
void vm_pio(struct vm *vm, uint16_t port, bool is_write, void *data,
	    unsigned size);
/* An MMIO access no device claimed (vcpu.c): reads see all ones. */
void vm_mmio_unhandled(struct vm *vm, uint64_t addr, bool is_write,
		       void *data, unsigned len);
/* A copy of the unhandled-access counters, for query-vm. */
void vm_get_unhandled(struct vm *vm, struct io_unhandled *out);
/* Raise or lower an ISA interrupt line of the in-kernel irqchip. */
void vm_set_irq(struct vm *vm, unsigned irq, bool level);

#endif
