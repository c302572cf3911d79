/*
 * vm_create_offline: the machine the fuzz targets load state into on a
 * host without /dev/kvm.  It must be the machine vm_create builds (the
 * same device set and memory layout, which the description says), its
 * state loaders must run up to KVM (and fail there with EBADF, naming
 * the step), and vm_destroy must free it whole (the suite runs under
 * LeakSanitizer in the sanitizer build).
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <linux/kvm.h>

#include "devices/device.h"
#include "util/buf.h"
#include "util/log.h"
#include "vmm/machine_desc.h"
#include "vmm/machine_state.h"
#include "vmm/vm.h"

static const char *const devices[] = { "uart8250", "fw_cfg", "irqchip", "pit",
				       "kvmclock", "testdev", "heartbeat" };

Test(vm_offline, has_the_machines_devices_and_memory)
{
	struct vm_config cfg = { .ram_size = (3ULL << 30) + (4u << 20), .vcpus = 3,
				 .serial = "none", .heartbeat = "none" };
	char err[ERR_MAX] = "";
	struct vm *vm = NULL;

	cr_assert_eq(vm_create_offline(&vm, &cfg, err), 0, "%s", err);
	cr_assert_eq(vm->nvcpus, 3);
	cr_assert_eq(vm->mem.nslots, 2, "memory above 3 GiB is split at the hole");
	cr_assert_not_null(memory_gpa_to_hva(&vm->mem, 4ULL << 30, 4096));
	cr_assert_null(memory_gpa_to_hva(&vm->mem, 3ULL << 30, 4096));
	cr_assert_eq(vm->ndevices, sizeof(devices) / sizeof(devices[0]));
	for (size_t i = 0; i < sizeof(devices) / sizeof(devices[0]); i++)
		cr_assert_not_null(vm_find_device(vm, devices[i]), "%s", devices[i]);
	cr_assert_null(vm_find_device(vm, "isa-debug-exit"));
	/* The description a HELLO or a snapshot's CONFIG carries. */
	json_t *d = machine_desc_build(vm);
	cr_assert_not_null(d);
	cr_assert_eq(json_array_size(json_object_get(d, "devices")), vm->ndevices);
	cr_assert_eq(json_integer_value(json_object_get(d, "vcpus")), 3);
	cr_assert_eq(machine_desc_check_devices(d, vm, err), 0, "%s", err);
	json_decref(d);
	vm_destroy(vm);

	cfg.ram_size = 1u << 20;
	cr_assert_eq(vm_create_offline(&vm, &cfg, err), -EINVAL);
}

Test(vm_offline, loaders_run_up_to_kvm)
{
	struct vm_config cfg = { .ram_size = 2u << 20, .vcpus = 1, .serial = "none",
				 .heartbeat = "none",
				 .exit_port = VM_EXIT_PORT_ISA_DEBUG_EXIT };
	char err[ERR_MAX] = "";
	struct vm *vm = NULL;
	struct machine_state_loader l;
	struct buf b;

	log_set_level(LOG_OFF);
	cr_assert_eq(vm_create_offline(&vm, &cfg, err), 0, "%s", err);
	cr_assert_not_null(vm_find_device(vm, "isa-debug-exit"));
	machine_state_loader_init(&l, vm);
	buf_init(&b);
	/* A device Ferry emulates: its own state loads back. */
	struct device *u = vm_find_device(vm, "uart8250");
	buf_put_str(&b, "uart8250");
	buf_put_u32(&b, u->ops->state_version);
	u->ops->save(u, &b);
	cr_assert_eq(machine_state_load(&l, STATE_REC_DEVICE, b.data, b.len, err), 0,
		     "%s", err);
	/* A device KVM keeps: checked, then refused by the missing VM fd. */
	buf_reset(&b);
	buf_put_str(&b, "kvmclock");
	buf_put_u32(&b, 1);
	buf_put_u64(&b, 42);
	cr_assert_eq(machine_state_load(&l, STATE_REC_DEVICE, b.data, b.len, err),
		     -EBADF);
	cr_assert(strstr(err, "KVM_SET_CLOCK"), "%s", err);
	buf_reset(&b);
	buf_put_str(&b, "kvmclock");
	buf_put_u32(&b, 1);
	buf_put_u32(&b, 42); /* 4 bytes: refused before KVM */
	machine_state_loader_init(&l, vm);
	cr_assert_eq(machine_state_load(&l, STATE_REC_DEVICE, b.data, b.len, err),
		     -EPROTO);
	buf_free(&b);
	vm_destroy(vm);
}
