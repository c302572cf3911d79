/*
 * The test device: ucalls (guest -> host messages, in the style of the KVM
 * selftests) and the exit port.  The host keeps what the guest last said so
 * that query-vm and tests can watch the guest without parsing its console.
 */
#include "devices/testdev.h"
#include "devices/device.h"
#include "vmm/vm.h"
#include "util/log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct testdev {
	struct device dev;
	struct testdev_progress p;
	uint32_t resume_gen;  /* PORT_RESUME: bumped by each state load */
};

static void testdev_ucall(struct testdev *td, uint32_t gpa)
{
	struct ucall uc;
	void *src = memory_gpa_to_hva(&td->dev.vm->mem, gpa, sizeof(uc));
	if (!src) {
		log_warn("testdev: ucall at 0x%x is outside guest memory", gpa);
		return;
	}
	if (memory_ensure(&td->dev.vm->mem, gpa, sizeof(uc))) {
		log_warn("testdev: ucall at 0x%x: its page never arrived", gpa);
		return;
	}
	memcpy(&uc, src, sizeof(uc));
	uc.file[sizeof(uc.file) - 1] = '\0';
	uc.msg[sizeof(uc.msg) - 1] = '\0';

	struct testdev_progress *p = &td->p;
	switch (uc.cmd) {
	case UCALL_SYNC:
		p->syncs++;
		p->last_sync = uc.args[0];
		break;
	case UCALL_ASSERT:
		p->asserts++;
		snprintf(p->last_assert, sizeof(p->last_assert),
			 "%s:%u: %s (0x%llx, 0x%llx)", uc.file, uc.line, uc.msg,
			 (unsigned long long)uc.args[0],
			 (unsigned long long)uc.args[1]);
		log_error("guest assertion: %s", p->last_assert);
		break;
	case UCALL_RESULT:
		log_info("guest result: %s = %llu", uc.msg,
			 (unsigned long long)uc.args[0]);
		break;
	case UCALL_PROGRESS:
		memcpy(p->counters, uc.args, sizeof(p->counters));
		p->progress_reports++;
		break;
	case UCALL_READY:
		p->ready = true;
		p->wss_base = uc.args[0];
		p->wss_bytes = uc.args[1];
		p->vcpus_online = uc.args[2];
		break;
	case UCALL_PRINT:
		log_info("guest: %s", uc.msg);
		break;
	default:
		log_warn("testdev: unknown ucall %u", uc.cmd);
		break;
	}
}

static void testdev_out(struct device *d, uint16_t port, const void *data,
			unsigned size)
{
	struct testdev *td = (struct testdev *)d;
	uint32_t v = 0;
	memcpy(&v, data, size < 4 ? size : 4);

	if (port == PORT_UCALL && size == 4) {
		testdev_ucall(td, v);
	} else if (port == PORT_EXIT) {
		vm_guest_exit(d->vm, v, "exit port");
	}
}

static void testdev_in(struct device *d, uint16_t port, void *data,
		       unsigned size)
{
	struct testdev *td = (struct testdev *)d;
	uint32_t v = port == PORT_UCALL ? UCALL_SIGNATURE :
		     port == PORT_RESUME ? td->resume_gen : 0xffffffffu;
	memset(data, 0, size);
	memcpy(data, &v, size < 4 ? size : 4);
}

/* State v1: what the guest has reported, so that query-vm goes on after a
 * restore as if nothing happened.  v2 adds the resume generation. */
static void testdev_save(struct device *d, struct buf *out)
{
	struct testdev *td = (struct testdev *)d;
	struct testdev_progress *p = &td->p;
	buf_put_u8(out, p->ready);
	buf_put_u64(out, p->wss_base);
	buf_put_u64(out, p->wss_bytes);
	buf_put_u64(out, p->vcpus_online);
	for (int i = 0; i < PROG_NARGS; i++)
		buf_put_u64(out, p->counters[i]);
	buf_put_u64(out, p->progress_reports);
	buf_put_u64(out, p->syncs);
	buf_put_u64(out, p->last_sync);
	buf_put_u64(out, p->asserts);
	buf_put_str(out, p->last_assert);
	buf_put_u32(out, td->resume_gen);
}

/* Never RESUME_GEN_ABSENT, which means "no device" to the guest. */
static void resume_bump(struct testdev *td)
{
	if (++td->resume_gen == RESUME_GEN_ABSENT)
		td->resume_gen = 1;
}

static int testdev_load(struct device *d, uint32_t version, const void *data,
			size_t len, char *err)
{
	struct testdev *td = (struct testdev *)d;
	struct testdev_progress p = { 0 };
	uint32_t resume_gen = 0;
	struct cursor c;

	if (version != 1 && version != 2)
		return err_set(err, -EPROTO, "testdev: unknown state version %u",
			       version);
	cursor_init(&c, data, len);
	uint8_t ready = cursor_u8(&c);
	p.wss_base = cursor_u64(&c);
	p.wss_bytes = cursor_u64(&c);
	p.vcpus_online = cursor_u64(&c);
	for (int i = 0; i < PROG_NARGS; i++)
		p.counters[i] = cursor_u64(&c);
	p.progress_reports = cursor_u64(&c);
	p.syncs = cursor_u64(&c);
	p.last_sync = cursor_u64(&c);
	p.asserts = cursor_u64(&c);
	cursor_str(&c, p.last_assert, sizeof(p.last_assert));
	if (version >= 2)
		resume_gen = cursor_u32(&c);
	if (!cursor_done(&c))
		return err_set(err, -EPROTO, "testdev: malformed state (%zu bytes)",
			       len);
	if (ready > 1)
		return err_set(err, -EPROTO, "testdev: ready is %u (0 or 1)",
			       (unsigned)ready);
	p.ready = ready;
	td->p = p;
	/* Loading the state is what moves or restores a machine: the guest
	 * must see a new generation when it runs here, and the saved value
	 * stays the one it saw before. */
	td->resume_gen = resume_gen;
	resume_bump(td);
	return 0;
}

static void testdev_destroy(struct device *d) { free(d); }

static const struct device_ops testdev_ops = {
	.name = "testdev",
	.state_version = 2,
	.pio_in = testdev_in,
	.pio_out = testdev_out,
	.save = testdev_save,
	.load = testdev_load,
	.destroy = testdev_destroy,
};

int testdev_create(struct vm *vm, struct testdev **out)
{
	struct testdev *td = calloc(1, sizeof(*td));
	if (!td)
		return -ENOMEM;
	td->dev.ops = &testdev_ops;
	td->dev.port_base = PORT_UCALL;
	/* 0xf0-0xf3 ucall, 0xf4-0xf7 exit, 0xf8-0xfb resume generation */
	td->dev.port_count = 12;
	int r = vm_add_device(vm, &td->dev);
	if (r) {
		free(td);
		return r;
	}
	*out = td;
	return 0;
}

void testdev_get_progress(struct testdev *td, struct testdev_progress *out)
{
	pthread_mutex_lock(&td->dev.vm->io_lock);
	*out = td->p;
	out->resume_gen = td->resume_gen;
	pthread_mutex_unlock(&td->dev.vm->io_lock);
}
