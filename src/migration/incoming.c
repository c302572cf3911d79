/*
 * The destination of a migration, one connection: check the VM
 * described in HELLO can live here, build it, fill its memory and state
 * from the stream, and run it only once the source commits.  Anything
 * wrong with the stream ends the migration with a message naming it; the
 * half-built VM is discarded and the source keeps its guest.
 */
#include "migration/migration.h"
#include "migration/channel.h"
#include "migration/hello.h"
#include "migration/incoming.h"
#include "migration/protocol.h"
#include "migration/stream.h"
#include "vmm/kvm.h"
#include "vmm/machine_state.h"
#include "vmm/memory.h"
#include "vmm/vm.h"
#include "util/buf.h"
#include "util/log.h"

#include <errno.h>
#include <pthread.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>

#define PAGE GUEST_PAGE_SIZE

static enum incoming_fault fault_point = FAULT_NONE;

void incoming_set_fault(enum incoming_fault f) { fault_point = f; }

int incoming_parse_fault(const char *s, enum incoming_fault *out)
{
	static const char *const names[] = {
		[FAULT_ROUND0] = "round0", [FAULT_ROUND1] = "round1",
		[FAULT_DEVICE] = "device", [FAULT_BEFORE_COMMIT] = "before-commit",
		[FAULT_AFTER_COMMIT] = "after-commit",
	};
	for (int i = FAULT_ROUND0; i <= FAULT_AFTER_COMMIT; i++)
		if (!strcmp(s, names[i])) {
			*out = (enum incoming_fault)i;
			return 0;
		}
	return -EINVAL;
}

/* A test hook: die at a chosen point, as a crashed host would. */
static void maybe_die(enum incoming_fault here)
{
	if (fault_point == here) {
		log_error("fault injection: destination dies now");
		_exit(99);
	}
}

struct incoming {
	struct mig_stream s;
	const struct incoming_session *cfg;
	struct vm *vm;
	struct machine_state_loader loader;
	json_t *hello;
	uint64_t pages, zero_pages, rounds;
	bool state_done;
};

/* Tell the owner how far the stream has got (query-migrate). */
static void incoming_report(struct incoming *in)
{
	struct incoming_progress *pr = in->cfg->progress;

	if (!pr)
		return;
	pthread_mutex_lock(pr->lock);
	pr->bytes = in->s.bytes_in;
	pr->pages = in->pages;
	pr->zero_pages = in->zero_pages;
	pr->rounds = in->rounds;
	if (in->vm) {
		pr->memory = in->vm->mem.ram_size;
		pr->vcpus = in->vm->nvcpus;
	}
	pthread_mutex_unlock(pr->lock);
}

static int load_pages(struct incoming *in, const uint8_t *p, uint32_t len)
{
	struct cursor c;
	cursor_init(&c, p, len);
	uint32_t round = cursor_u32(&c), count = cursor_u32(&c);
	if (c.short_read || count == 0 || count > MIG_PAGES_PER_RECORD ||
	    (uint64_t)count * 8 > c.left)
		return stream_fail(&in->s, -EPROTO, "RAM_PAGES: bad page count %u", count);
	const uint8_t *desc = c.p;
	const uint8_t *data = c.p + (size_t)count * 8;
	size_t data_len = c.left - (size_t)count * 8, used = 0;

	if (in->state_done)
		return stream_fail(&in->s, -EPROTO, "RAM_PAGES after the device state");
	if (round == 0 && in->pages > 1024)
		maybe_die(FAULT_ROUND0);
	if (round == 1)
		maybe_die(FAULT_ROUND1);
	for (uint32_t i = 0; i < count; i++) {
		uint64_t d;
		memcpy(&d, desc + (size_t)i * 8, 8);
		uint64_t gpa = d & ~(PAGE - 1);
		if (d & (PAGE - 1) & ~MIG_PAGE_ZERO)
			return stream_fail(&in->s, -EPROTO,
					   "RAM_PAGES: bad page descriptor 0x%llx",
					   (unsigned long long)d);
		uint8_t *dst = memory_gpa_to_hva(&in->vm->mem, gpa, PAGE);
		if (!dst)
			return stream_fail(&in->s, -EPROTO,
					   "RAM_PAGES: address 0x%llx is outside guest memory",
					   (unsigned long long)gpa);
		if (d & MIG_PAGE_ZERO) {
			/* Fresh memory is zero; only a page written in an
			 * earlier round needs clearing. */
			if (round > 0)
				memset(dst, 0, PAGE);
			in->zero_pages++;
			continue;
		}
		if (data_len - used < PAGE)
			return stream_fail(&in->s, -EPROTO,
					   "RAM_PAGES: record shorter than its pages");
		memcpy(dst, data + used, PAGE);
		used += PAGE;
		in->pages++;
	}
	if (used != data_len)
		return stream_fail(&in->s, -EPROTO,
				   "RAM_PAGES: %zu bytes left over", data_len - used);
	return 0;
}

static void send_reason(struct mig_stream *s, uint32_t type, const char *why)
{
	/* Best effort: the peer may be gone already. */
	int saved = s->error;
	s->error = 0;
	stream_put(s, type, why, strlen(why));
	stream_flush(s);
	if (saved)
		s->error = saved;
}

/* Preamble and HELLO: decide whether this destination can take the VM,
 * and build it if so. */
static int negotiate(struct incoming *in, const struct vm_config *host_cfg,
		     uint64_t max_memory, char *err)
{
	char magic[8];
	uint32_t version, type, len;
	const uint8_t *p;
	struct vm_config cfg = *host_cfg;
	struct kvm_cpuid2 *cpuid = NULL;
	int r;

	if (stream_read_raw(&in->s, magic, 8) || stream_read_raw(&in->s, &version, 4))
		return err_set(err, in->s.error, "%s", in->s.errmsg);
	if (memcmp(magic, MIG_MAGIC, 8))
		return err_set(err, -EPROTO, "bad magic: not a ferry migration stream");
	if (version < MIG_VERSION_MIN || version > MIG_VERSION) {
		err_set(err, -EPROTO, "stream version %u is not in %u..%u",
			version, MIG_VERSION_MIN, MIG_VERSION);
		send_reason(&in->s, MIG_REC_REFUSE, err);
		return -EPROTO;
	}
	if (stream_read(&in->s, &type, &p, &len))
		return err_set(err, in->s.error, "%s", in->s.errmsg);
	if (type != MIG_REC_HELLO)
		return err_set(err, -EPROTO, "expected HELLO, got %s (0x%x)",
			       mig_record_name(type), type);
	json_error_t jerr;
	in->hello = json_loadb((const char *)p, len, 0, &jerr);
	if (!in->hello)
		return err_set(err, -EPROTO, "HELLO is not JSON: %s", jerr.text);

	int kvm_fd = kvm_open(err);
	if (kvm_fd < 0)
		r = kvm_fd;
	else {
		r = hello_check(in->hello, kvm_fd, max_memory, &cfg, &cpuid, err);
		close(kvm_fd);
	}
	if (!r) {
		cfg.cpuid = cpuid;
		cfg.kernel = NULL;
		r = vm_create(&in->vm, &cfg, err);
		free(cpuid);
	}
	if (!r)
		r = hello_check_devices(in->hello, in->vm, err);
	/* vCPU threads too, parked: after COMMIT nothing may be left that
	 * can fail, and a destination that cannot start says so here. */
	if (!r)
		r = vm_start(in->vm, true, err);
	if (r) {
		send_reason(&in->s, MIG_REC_REFUSE, err);
		return r;
	}
	machine_state_loader_init(&in->loader, in->vm);
	stream_put(&in->s, MIG_REC_ACCEPT, NULL, 0);
	return stream_flush(&in->s) ? err_set(err, in->s.error, "%s", in->s.errmsg) : 0;
}

/* Records until COMMIT. */
static int receive(struct incoming *in, char *err)
{
	for (;;) {
		uint32_t type, len;
		const uint8_t *p;
		int r = 0;

		incoming_report(in);
		if (stream_read(&in->s, &type, &p, &len))
			return err_set(err, in->s.error, "%s", in->s.errmsg);
		switch (type) {
		case MIG_REC_ERROR:
			/* The source gave up and says why (a cancel). */
			r = stream_fail(&in->s, -ECANCELED,
					"the source ended the migration: %.*s",
					(int)(len > 200 ? 200 : len), (const char *)p);
			break;
		case MIG_REC_RAM_PAGES:
			r = load_pages(in, p, len);
			break;
		case MIG_REC_ROUND_END:
			in->rounds++;
			break;
		case MIG_REC_DEVICE:
		case MIG_REC_VCPU:
			maybe_die(FAULT_DEVICE);
			if (in->state_done)
				r = stream_fail(&in->s, -EPROTO, "state after STATE_END");
			else if (machine_state_load(&in->loader, type, p, len, err))
				r = stream_fail(&in->s, -EPROTO, "%s", err);
			break;
		case MIG_REC_STATE_END:
			if (machine_state_loader_finish(&in->loader, err))
				r = stream_fail(&in->s, -EPROTO, "%s", err);
			else {
				/* Everything is loaded: the source has not
				 * committed yet and will take its guest back. */
				maybe_die(FAULT_BEFORE_COMMIT);
				in->state_done = true;
				stream_put(&in->s, MIG_REC_READY, NULL, 0);
				r = stream_flush(&in->s);
			}
			break;
		case MIG_REC_COMMIT:
			if (!in->state_done)
				r = stream_fail(&in->s, -EPROTO, "COMMIT before the state");
			else {
				/* Committed but not yet running: the source must
				 * not resume, since it cannot know which. */
				maybe_die(FAULT_AFTER_COMMIT);
				return 0;
			}
			break;
		default:
			r = stream_fail(&in->s, -EPROTO,
					"unexpected record %s (0x%x, %u bytes)",
					mig_record_name(type), type, len);
		}
		if (r)
			return err_set(err, r, "%s", in->s.errmsg);
	}
}

/* Why the session ended, in the words a user needs. */
static void explain(struct incoming *in, int r, bool accepted, char *err)
{
	char why[ERR_MAX];

	if (in->cfg->cancelled && in->cfg->cancelled(in->cfg->opaque, why)) {
		err_set(err, -ECANCELED, "%s", why);
		return;
	}
	if (r == -EAGAIN || r == -EWOULDBLOCK || r == -ETIMEDOUT) {
		if (accepted)
			err_set(err, r, "the source sent nothing for %.1f s (idle timeout)",
				in->cfg->idle_timeout_ms / 1000.0);
		else
			err_set(err, r, "no complete HELLO within the handshake deadline");
	}
}

int migration_incoming_fd(int fd, const struct incoming_session *cfg,
			  bool *accepted, char *err)
{
	struct incoming in = { .cfg = cfg };
	uint64_t t0;
	int r;

	*accepted = false;
	t0 = mig_now_ns();
	r = stream_init(&in.s, fd);
	if (r)
		return err_set(err, r, "out of memory");
	r = negotiate(&in, cfg->host_cfg, cfg->max_memory, err);
	if (r) {
		explain(&in, r, false, err);
		goto out;
	}
	*accepted = true;
	/* From here on silence is measured against the idle timeout. */
	channel_set_timeout(fd, cfg->idle_timeout_ms);
	incoming_report(&in);
	if (cfg->accepted)
		cfg->accepted(cfg->opaque);
	r = receive(&in, err);
	if (!r)
		r = cfg->take_over(cfg->opaque, in.vm);
	if (!r) {
		/* The guest is this side's now, whatever happens to this
		 * message: the source learns it or stays paused not knowing. */
		struct vm *vm = in.vm;
		in.vm = NULL;
		stream_put(&in.s, MIG_REC_RUNNING, NULL, 0);
		stream_flush(&in.s);
		incoming_report(&in);
		double ms = (mig_now_ns() - t0) / 1e6;
		log_info("migration destination completed: %.1f ms, %llu rounds, "
			 "%.1f MiB received (%llu pages, %llu zero); the guest is %s",
			 ms, (unsigned long long)in.rounds, in.s.bytes_in / 1048576.0,
			 (unsigned long long)in.pages,
			 (unsigned long long)in.zero_pages,
			 vm_get_status(vm) == VM_STATUS_RUNNING ? "running" : "paused");
	} else {
		explain(&in, r, true, err);
		send_reason(&in.s, MIG_REC_ERROR, err);
		log_error("incoming migration failed: %s; discarding what was received", err);
	}
out:
	vm_destroy(in.vm);
	json_decref(in.hello);
	stream_free(&in.s);
	return r;
}
