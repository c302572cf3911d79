/*
 * Unit tests for the test device's ports and state: the resume generation
 * the guest reads on PORT_RESUME is 0 on a fresh machine and one more in
 * every machine built from saved state, while the saved state itself keeps
 * the value the guest last saw (the bump never travels).
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

#include "devices/device.h"
#include "devices/testdev.h"
#include "util/buf.h"
#include "util/log.h"
#include "vmm/vm.h"

/* A VM with nothing but its device table: enough for port I/O and state. */
static struct vm *fake_vm(struct testdev **td)
{
	struct vm *vm = calloc(1, sizeof(*vm));

	cr_assert(vm);
	pthread_mutex_init(&vm->io_lock, NULL);
	cr_assert_eq(testdev_create(vm, td), 0);
	return vm;
}

static void free_vm(struct vm *vm)
{
	for (unsigned i = 0; i < vm->ndevices; i++)
		vm->devices[i]->ops->destroy(vm->devices[i]);
	pthread_mutex_destroy(&vm->io_lock);
	free(vm);
}

static uint32_t in32(struct vm *vm, uint16_t port)
{
	uint32_t v = 0;

	vm_pio(vm, port, false, &v, 4);
	return v;
}

static void save(struct vm *vm, struct buf *b)
{
	struct device *d = vm_find_device(vm, "testdev");

	cr_assert(d);
	buf_init(b);
	d->ops->save(d, b);
	cr_assert(!b->oom);
}

static int load(struct vm *vm, uint32_t version, const struct buf *b,
		size_t len, char *err)
{
	struct device *d = vm_find_device(vm, "testdev");

	return d->ops->load(d, version, b->data, len, err);
}

Test(testdev, resume_generation_starts_at_zero_and_ports_answer)
{
	struct testdev *td;
	struct vm *vm = fake_vm(&td);

	cr_assert_eq(in32(vm, PORT_UCALL), UCALL_SIGNATURE);
	cr_assert_eq(in32(vm, PORT_RESUME), 0);
	cr_assert_eq(vm_find_device(vm, "testdev")->ops->state_version, 2);
	struct testdev_progress p;
	testdev_get_progress(td, &p);
	cr_assert_eq(p.resume_gen, 0);
	free_vm(vm);
}

Test(testdev, loading_state_bumps_the_generation_saving_does_not)
{
	char err[ERR_MAX] = "";
	struct testdev *a, *b, *c;
	struct vm *va = fake_vm(&a), *vb = fake_vm(&b), *vc = fake_vm(&c);
	struct buf s1, s2, s3;

	save(va, &s1);
	cr_assert_eq(in32(va, PORT_RESUME), 0, "saving bumped the source");
	cr_assert_eq(load(vb, 2, &s1, s1.len, err), 0, "%s", err);
	cr_assert_eq(in32(vb, PORT_RESUME), 1);
	/* A second move: from what b saw (1) to 2 at c. */
	save(vb, &s2);
	cr_assert_eq(load(vc, 2, &s2, s2.len, err), 0, "%s", err);
	cr_assert_eq(in32(vc, PORT_RESUME), 2);
	/* Restoring the same saved state twice gives the same generation:
	 * each copy differs from what the guest saw when it was saved. */
	cr_assert_eq(load(vb, 2, &s1, s1.len, err), 0, "%s", err);
	cr_assert_eq(in32(vb, PORT_RESUME), 1);
	/* Version 1 (no generation) loads as generation 0, then the bump. */
	cr_assert_eq(load(vc, 1, &s1, s1.len - 4, err), 0, "%s", err);
	cr_assert_eq(in32(vc, PORT_RESUME), 1);
	/* A v2 record without its generation is malformed. */
	cr_assert_neq(load(vc, 2, &s1, s1.len - 4, err), 0);
	cr_assert(strstr(err, "malformed"), "%s", err);
	cr_assert_neq(load(vc, 3, &s1, s1.len, err), 0);
	/* The guest never sees RESUME_GEN_ABSENT from a real device. */
	save(vc, &s3);
	memset(s3.data + s3.len - 4, 0xff, 4);
	s3.data[s3.len - 4] = 0xfe;   /* 0xfffffffe: the bump wraps past all ones */
	cr_assert_eq(load(vc, 2, &s3, s3.len, err), 0, "%s", err);
	cr_assert_eq(in32(vc, PORT_RESUME), 1);
	buf_free(&s1);
	buf_free(&s2);
	buf_free(&s3);
	free_vm(va);
	free_vm(vb);
	free_vm(vc);
}

Test(testdev, ready_must_be_a_truth_value)
{
	char err[ERR_MAX] = "";
	struct testdev *a, *b;
	struct vm *va = fake_vm(&a), *vb = fake_vm(&b);
	struct buf s;

	save(va, &s);
	s.data[0] = 2; /* ready */
	cr_assert_eq(load(vb, 2, &s, s.len, err), -EPROTO);
	cr_assert(strstr(err, "testdev: ready is 2"), "%s", err);
	buf_free(&s);
	free_vm(va);
	free_vm(vb);
}
