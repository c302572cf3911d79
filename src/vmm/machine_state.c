#include "vmm/machine_state.h"
#include "vmm/vcpu.h"
#include "devices/device.h"
#include "util/buf.h"
#include "util/log.h"

#include <errno.h>
#include <string.h>

int machine_state_save(struct vm *vm, state_emit_fn emit, void *ctx,
		       char *err)
{
	struct buf p;
	int r = 0;

	buf_init(&p);
	for (unsigned i = 0; i < vm->ndevices && !r; i++) {
		struct device *d = vm->devices[i];
		buf_reset(&p);
		buf_put_str(&p, d->ops->name);
		buf_put_u32(&p, d->ops->state_version);
		d->ops->save(d, &p);
		if (p.oom)
			r = err_set(err, -EIO, "saving device %s failed",
				    d->ops->name);
		else
			r = emit(ctx, STATE_REC_DEVICE, p.data, p.len);
	}
	for (unsigned i = 0; i < vm->nvcpus && !r; i++) {
		buf_reset(&p);
		buf_put_u32(&p, i);
		buf_put_u32(&p, VCPU_STATE_VERSION);
		r = vcpu_save_state(vm->vcpus[i], &p);
		if (r)
			err_set(err, r, "saving vCPU %u failed: %s", i,
				strerror(-r));
		else if (p.oom)
			r = err_set(err, -ENOMEM, "out of memory");
		else
			r = emit(ctx, STATE_REC_VCPU, p.data, p.len);
	}
	if (r && err && !err[0])
		err_set(err, r, "writing state: %s", strerror(-r));
	buf_free(&p);
	return r;
}

void machine_state_loader_init(struct machine_state_loader *l, struct vm *vm)
{
	memset(l, 0, sizeof(*l));
	l->vm = vm;
}

static int load_device(struct machine_state_loader *l, const void *payload,
		       size_t len, char *err)
{
	struct vm *vm = l->vm;
	struct cursor c;
	char name[64];

	cursor_init(&c, payload, len);
	cursor_str(&c, name, sizeof(name));
	uint32_t version = cursor_u32(&c);
	if (c.short_read)
		return err_set(err, -EINVAL, "device record is truncated");
	unsigned i;
	for (i = 0; i < vm->ndevices; i++)
		if (!strcmp(vm->devices[i]->ops->name, name))
			break;
	if (i == vm->ndevices)
		return err_set(err, -EINVAL, "unknown device '%s'", name);
	if (l->dev_seen[i])
		return err_set(err, -EINVAL, "device '%s' appears twice", name);
	l->dev_seen[i] = true;
	struct device *d = vm->devices[i];
	return d->ops->load(d, version, c.p, c.left, err);
}

static int load_vcpu(struct machine_state_loader *l, const void *payload,
		     size_t len, char *err)
{
	struct cursor c;

	cursor_init(&c, payload, len);
	uint32_t idx = cursor_u32(&c), version = cursor_u32(&c);
	if (c.short_read)
		return err_set(err, -EINVAL, "vCPU record is truncated");
	if (idx >= l->vm->nvcpus)
		return err_set(err, -EINVAL, "vCPU %u does not exist", idx);
	if (l->vcpu_seen[idx])
		return err_set(err, -EINVAL, "vCPU %u appears twice", idx);
	l->vcpu_seen[idx] = true;
	return vcpu_load_state(l->vm->vcpus[idx], version, c.p, c.left, err);
}

int machine_state_load(struct machine_state_loader *l, uint32_t type,
		       const void *payload, size_t len, char *err)
{
	switch (type) {
	case STATE_REC_DEVICE: return load_device(l, payload, len, err);
	case STATE_REC_VCPU: return load_vcpu(l, payload, len, err);
	default:
		return err_set(err, -EINVAL, "record type %u is not machine state",
			       type);
	}
}

int machine_state_loader_finish(struct machine_state_loader *l, char *err)
{
	for (unsigned i = 0; i < l->vm->ndevices; i++)
		if (!l->dev_seen[i])
			return err_set(err, -EINVAL, "no state for device '%s'",
				       l->vm->devices[i]->ops->name);
	for (unsigned i = 0; i < l->vm->nvcpus; i++)
		if (!l->vcpu_seen[i])
			return err_set(err, -EINVAL, "no state for vCPU %u", i);
	return 0;
}
