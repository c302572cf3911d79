/*
 * debugexit.c - QEMU's isa-debug-exit (see debugexit.h).  No state: the
 * record it saves is empty, but it has one, so that a snapshot or a
 * migration names the device and the machine at the other end has it too.
 */
#include "devices/debugexit.h"
#include "devices/device.h"
#include "vmm/vm.h"
#include "util/log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void debugexit_out(struct device *d, uint16_t port, const void *data,
			  unsigned size)
{
	uint32_t v = 0;
	(void)port;
	memcpy(&v, data, size < 4 ? size : 4);
	char how[64];
	snprintf(how, sizeof(how), "isa-debug-exit (the guest wrote %u)", v);
	vm_guest_exit(d->vm, debugexit_status(v), how);
}

/* QEMU's device reads as zero. */
static void debugexit_in(struct device *d, uint16_t port, void *data,
			 unsigned size)
{
	(void)d;
	(void)port;
	memset(data, 0, size);
}

static void debugexit_save(struct device *d, struct buf *out)
{
	(void)d;
	(void)out;
}

static int debugexit_load(struct device *d, uint32_t version,
			  const void *data, size_t len, char *err)
{
	(void)d;
	(void)data;
	if (version != 1 || len != 0)
		return err_set(err, -EPROTO,
			       "isa-debug-exit: unknown state (version %u, %zu bytes)",
			       version, len);
	return 0;
}

static void debugexit_destroy(struct device *d) { free(d); }

static const struct device_ops debugexit_ops = {
	.name = "isa-debug-exit",
	.state_version = 1,
	.pio_in = debugexit_in,
	.pio_out = debugexit_out,
	.save = debugexit_save,
	.load = debugexit_load,
	.destroy = debugexit_destroy,
};

int debugexit_create(struct vm *vm)
{
	struct device *d = calloc(1, sizeof(*d));
	if (!d)
		return -ENOMEM;
	d->ops = &debugexit_ops;
	d->port_base = DEBUGEXIT_PORT;
	d->port_count = DEBUGEXIT_SIZE;
	int r = vm_add_device(vm, d);
	if (r)
		free(d);
	return r;
}
