/*
 * The port I/O bus without KVM: a struct vm with only its locks and
 * devices, driven through vm_pio as a vCPU's exits would.  Shows which
 * device owns port 0xf4 under each exit convention, fw_cfg reached through
 * the bus, and unclaimed ports read as all ones and counted.
 */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "devices/debugexit.h"
#include "devices/device.h"
#include "devices/fwcfg.h"
#include "devices/testdev.h"
#include "vmm/vm.h"
#include "vmm/machine_state.h"
#include "util/buf.h"
#include "util/log.h"

static struct vm *vm;

static void setup(void)
{
	vm = calloc(1, sizeof(*vm));
	pthread_mutex_init(&vm->lock, NULL);
	pthread_mutex_init(&vm->io_lock, NULL);
	pthread_cond_init(&vm->cond, NULL);
	memory_layout(&vm->mem, 64 << 20);
	vm->nvcpus = 0; /* nothing to kick */
}

static void teardown(void)
{
	for (unsigned i = 0; i < vm->ndevices; i++)
		vm->devices[i]->ops->destroy(vm->devices[i]);
	pthread_mutex_destroy(&vm->lock);
	pthread_mutex_destroy(&vm->io_lock);
	pthread_cond_destroy(&vm->cond);
	free(vm);
}

TestSuite(io_bus, .init = setup, .fini = teardown);

static void out32(uint16_t port, uint32_t v) { vm_pio(vm, port, true, &v, 4); }

Test(io_bus, ferry_convention_exits_with_the_value)
{
	struct testdev *td;
	cr_assert_eq(testdev_create(vm, &td), 0);
	out32(0xf4, 5);
	cr_assert(vm->quit_requested);
	cr_assert_eq(vm->exit_code, 5);
}

/* Issue 11: `workload=exit code=256` made ferry exit 0. */
Test(io_bus, guest_code_that_does_not_fit_is_a_failure_not_success)
{
	struct testdev *td;
	cr_assert_eq(testdev_create(vm, &td), 0);
	out32(0xf4, 256);
	cr_assert(vm->quit_requested);
	cr_assert_eq(vm->exit_code, 1);
}

Test(io_bus, guest_code_that_is_the_vmm_failure_status_is_not_passed_on)
{
	struct testdev *td;
	cr_assert_eq(testdev_create(vm, &td), 0);
	out32(0xf4, 120);
	cr_assert_eq(vm->exit_code, 1);
}

Test(io_bus, isa_debug_exit_code_past_8_bits_is_a_failure)
{
	cr_assert_eq(debugexit_create(vm), 0);
	out32(0xf4, 0x80); /* (0x80 << 1) | 1 = 257: QEMU's shell sees 1 */
	cr_assert_eq(vm->exit_code, 1);
}

Test(io_bus, isa_debug_exit_takes_port_0xf4_from_the_test_device)
{
	struct testdev *td;
	cr_assert_eq(debugexit_create(vm), 0);
	cr_assert_eq(testdev_create(vm, &td), 0);
	/* The test device still answers its ucall port. */
	uint32_t sig = 0;
	vm_pio(vm, PORT_UCALL, false, &sig, 4);
	cr_assert_eq(sig, UCALL_SIGNATURE);
	out32(0xf4, 5);
	cr_assert(vm->quit_requested);
	cr_assert_eq(vm->exit_code, (5 << 1) | 1);
}

Test(io_bus, fw_cfg_through_the_bus_and_unclaimed_ports)
{
	cr_assert_eq(fwcfg_create(vm), 0);
	uint16_t sel = FW_CFG_RAM_SIZE;
	uint8_t b[8];
	vm_pio(vm, FW_CFG_PORT_SEL, true, &sel, 2);
	for (int i = 0; i < 8; i++)
		vm_pio(vm, FW_CFG_PORT_DATA, false, &b[i], 1);
	uint64_t ram;
	memcpy(&ram, b, 8);
	cr_assert_eq(ram, 64 << 20);

	uint32_t v = 0x12345678;
	vm_pio(vm, 0x99, false, &v, 2);
	cr_assert_eq(v, 0x1234ffff, "an unclaimed 16-bit read sets 2 bytes to ones");
	vm_pio(vm, 0x99, false, &v, 1);
	vm_pio(vm, 0x99, true, &v, 1);
	vm_pio(vm, 0x512, false, &v, 1); /* no DMA interface beside fw_cfg */
	struct io_unhandled u;
	vm_get_unhandled(vm, &u);
	cr_assert_eq(u.n, 2);
	cr_assert_eq(u.e[0].addr, 0x99);
	cr_assert_eq(u.e[0].reads, 2);
	cr_assert_eq(u.e[0].writes, 1);
	cr_assert_eq(u.e[1].addr, 0x512);

	uint8_t m[4] = { 0 };
	vm_mmio_unhandled(vm, 0xfed00000, false, m, 4);
	cr_assert_eq(m[0] & m[1] & m[2] & m[3], 0xff);
	vm_get_unhandled(vm, &u);
	cr_assert_eq(u.n, 3);
	cr_assert_eq(u.e[2].space, IO_SPACE_MMIO);
}

/* Records as machine_state emits them, kept for the load side. */
struct recs {
	uint32_t type[8];
	struct buf data[8];
	unsigned n;
};

static int keep(void *ctx, uint32_t type, const void *data, size_t len)
{
	struct recs *r = ctx;
	r->type[r->n] = type;
	buf_init(&r->data[r->n]);
	buf_put(&r->data[r->n], data, len);
	r->n++;
	return 0;
}

/* What a snapshot or a migration does with the device records: a read
 * half done at the source goes on at the other end. */
Test(io_bus, fw_cfg_read_continues_through_machine_state)
{
	char err[ERR_MAX] = "";
	cr_assert_eq(fwcfg_create(vm), 0);
	uint16_t sel = FW_CFG_SIGNATURE;
	uint8_t c;
	vm_pio(vm, FW_CFG_PORT_SEL, true, &sel, 2);
	vm_pio(vm, FW_CFG_PORT_DATA, false, &c, 1);
	vm_pio(vm, FW_CFG_PORT_DATA, false, &c, 1);
	cr_assert_eq(c, 'E');

	struct recs r = { 0 };
	cr_assert_eq(machine_state_save(vm, keep, &r, err), 0, "%s", err);
	cr_assert_eq(r.n, 1);

	/* The other machine: same shape, fresh device. */
	struct vm *dst = calloc(1, sizeof(*dst));
	pthread_mutex_init(&dst->io_lock, NULL);
	memory_layout(&dst->mem, 64 << 20);
	cr_assert_eq(fwcfg_create(dst), 0);
	struct machine_state_loader l;
	machine_state_loader_init(&l, dst);
	for (unsigned i = 0; i < r.n; i++)
		cr_assert_eq(machine_state_load(&l, r.type[i], r.data[i].data,
						r.data[i].len, err), 0, "%s", err);
	cr_assert_eq(machine_state_loader_finish(&l, err), 0, "%s", err);
	vm_pio(dst, FW_CFG_PORT_DATA, false, &c, 1);
	cr_assert_eq(c, 'M', "the third byte of \"QEMU\", where the source stopped");
	vm_pio(dst, FW_CFG_PORT_DATA, false, &c, 1);
	cr_assert_eq(c, 'U');

	dst->devices[0]->ops->destroy(dst->devices[0]);
	pthread_mutex_destroy(&dst->io_lock);
	free(dst);
	for (unsigned i = 0; i < r.n; i++)
		buf_free(&r.data[i]);
}
