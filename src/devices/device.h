/*
 * device.h - one struct and one ops table per device.
 *
 * Every device embeds `struct device` first and registers the port range it
 * decodes.  Each owns its guest-visible state and saves/loads it as one
 * versioned blob (like QEMU's SaveVMHandlers, Firecracker's Persist): the
 * loader accepts the versions it knows and refuses others with a message.
 */
#ifndef FERRY_DEVICE_H
#define FERRY_DEVICE_H

#include <stddef.h>
#include <stdint.h>

#include "util/buf.h"

struct vm;
struct device;

struct device_ops {
	const char *name;        /* unique; names the state record */
	uint32_t state_version;  /* version save() writes */
	/* Port I/O.  data is little-endian, size is 1, 2 or 4. */
	void (*pio_in)(struct device *dev, uint16_t port, void *data,
		       unsigned size);
	void (*pio_out)(struct device *dev, uint16_t port, const void *data,
			unsigned size);
	/* Append the state to out.  Called with all vCPUs paused. */
	void (*save)(struct device *dev, struct buf *out);
	/* Restore from a blob of the given version; 0 or -errno + err. */
	int (*load)(struct device *dev, uint32_t version, const void *data,
		    size_t len, char *err);
	void (*destroy)(struct device *dev);
};

struct device {
	const struct device_ops *ops;
	struct vm *vm;
	uint16_t port_base;
	uint16_t port_count;
};

#endif
