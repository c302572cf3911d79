#include "vmm/platform_state.h"
#include "vmm/state_check.h"
#include "vmm/vm.h"
#include "devices/device.h"
#include "util/log.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <linux/kvm.h>

/* irqchip v1: the three kvm_irqchip structs (PIC master, PIC slave,
 * IOAPIC) as KVM_GET_IRQCHIP returns them. */
static const int chip_ids[] = { KVM_IRQCHIP_PIC_MASTER, KVM_IRQCHIP_PIC_SLAVE,
				KVM_IRQCHIP_IOAPIC };

static void irqchip_save(struct device *d, struct buf *out)
{
	for (size_t i = 0; i < 3; i++) {
		struct kvm_irqchip chip = { .chip_id = chip_ids[i] };
		if (ioctl(d->vm->vm_fd, KVM_GET_IRQCHIP, &chip) < 0) {
			log_error("KVM_GET_IRQCHIP %d: %s", chip_ids[i],
				  strerror(errno));
			out->oom = true; /* poison the record */
			return;
		}
		buf_put(out, &chip, sizeof(chip));
	}
}

static int irqchip_load(struct device *d, uint32_t version, const void *data,
			size_t len, char *err)
{
	if (version != 1 || len != 3 * sizeof(struct kvm_irqchip))
		return err_set(err, -EPROTO,
			       "irqchip: unknown state version %u or size %zu",
			       version, len);
	struct kvm_irqchip chips[3];
	memcpy(chips, data, sizeof(chips));
	for (size_t i = 0; i < 3; i++)
		if (chips[i].chip_id != (uint32_t)chip_ids[i])
			return err_set(err, -EPROTO, "irqchip: chip %zu has id %u",
				       i, chips[i].chip_id);
	/* All three judged before any reaches KVM. */
	for (size_t i = 0; i < 3; i++) {
		int r = chip_ids[i] == KVM_IRQCHIP_IOAPIC
				? state_check_ioapic(&chips[i].chip.ioapic, err)
				: state_check_pic(&chips[i].chip.pic, chip_ids[i], err);
		if (r)
			return r;
	}
	for (size_t i = 0; i < 3; i++)
		if (ioctl(d->vm->vm_fd, KVM_SET_IRQCHIP, &chips[i]) < 0)
			return err_set(err, -errno, "KVM_SET_IRQCHIP %u: %s",
				       chips[i].chip_id, strerror(errno));
	return 0;
}

/* pit v1: struct kvm_pit_state2. */
static void pit_save(struct device *d, struct buf *out)
{
	struct kvm_pit_state2 pit = { 0 }; /* reserved words stay zero */
	if (ioctl(d->vm->vm_fd, KVM_GET_PIT2, &pit) < 0) {
		log_error("KVM_GET_PIT2: %s", strerror(errno));
		out->oom = true;
		return;
	}
	buf_put(out, &pit, sizeof(pit));
}

static int pit_load(struct device *d, uint32_t version, const void *data,
		    size_t len, char *err)
{
	struct kvm_pit_state2 pit;
	if (version != 1 || len != sizeof(pit))
		return err_set(err, -EPROTO,
			       "pit: unknown state version %u or size %zu",
			       version, len);
	memcpy(&pit, data, sizeof(pit));
	int r = state_check_pit(&pit, err);
	if (r)
		return r;
	if (ioctl(d->vm->vm_fd, KVM_SET_PIT2, &pit) < 0)
		return err_set(err, -errno, "KVM_SET_PIT2: %s", strerror(errno));
	return 0;
}

/* kvmclock v1: the guest's clock in ns (u64).  Setting it back on restore
 * makes the paravirtual clock continue from where it stood: a snapshot's
 * time on the shelf is invisible to the guest, as in QEMU. */
static void clock_save(struct device *d, struct buf *out)
{
	struct kvm_clock_data c = { 0 };
	if (ioctl(d->vm->vm_fd, KVM_GET_CLOCK, &c) < 0) {
		log_error("KVM_GET_CLOCK: %s", strerror(errno));
		out->oom = true;
		return;
	}
	buf_put_u64(out, c.clock);
}

static int clock_load(struct device *d, uint32_t version, const void *data,
		      size_t len, char *err)
{
	struct kvm_clock_data c = { 0 };
	if (version != 1 || len != 8)
		return err_set(err, -EPROTO,
			       "kvmclock: unknown state version %u or size %zu",
			       version, len);
	memcpy(&c.clock, data, 8);
	int r = state_check_kvmclock(c.clock, err);
	if (r)
		return r;
	if (ioctl(d->vm->vm_fd, KVM_SET_CLOCK, &c) < 0)
		return err_set(err, -errno, "KVM_SET_CLOCK: %s", strerror(errno));
	return 0;
}

static void platform_destroy(struct device *d) { free(d); }

static const struct device_ops platform_ops[] = {
	{ .name = "irqchip", .state_version = 1, .save = irqchip_save,
	  .load = irqchip_load, .destroy = platform_destroy },
	{ .name = "pit", .state_version = 1, .save = pit_save,
	  .load = pit_load, .destroy = platform_destroy },
	{ .name = "kvmclock", .state_version = 1, .save = clock_save,
	  .load = clock_load, .destroy = platform_destroy },
};

int platform_state_create(struct vm *vm)
{
	for (size_t i = 0; i < sizeof(platform_ops) / sizeof(platform_ops[0]);
	     i++) {
		struct device *d = calloc(1, sizeof(*d));
		if (!d)
			return -ENOMEM;
		d->ops = &platform_ops[i];
		int r = vm_add_device(vm, d);
		if (r) {
			free(d);
			return r;
		}
	}
	return 0;
}
