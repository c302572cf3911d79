/*
 * control_commands.c - the commands the control socket offers for a VM.
 * Names and answer shapes follow QEMU's QMP where the meaning is the same;
 * Ferry's own commands use names QMP does not have ("x-" for test hooks).
 *
 * To add a command: write a handler and add one line to control_commands[].
 * Arguments are checked against the line's spec before the handler runs.
 *
 * call->opaque is the process (struct instance), not the VM: a migration
 * destination answers before its VM has arrived.  A handler that needs the
 * VM begins with
 *
 *	struct vm *vm = control_vm(call);
 *	if (!vm)
 *		return -ENODEV;
 *
 * and so answers "there is no VM here yet ..." until there is one (the
 * VM it gets is complete and outlives the command).  Only commands that
 * mean something without a VM look further (query-status, query-vm, stop,
 * cont, quit, and the migration commands, which act on the incoming
 * migration then).
 */
#include "control/control_proto.h"
#include "control/control_migrate.h"
#include "control/control_digest.h"
#include "control/control_vm.h"

#include "devices/heartbeat.h"
#include "devices/testdev.h"
#include "devices/uart8250.h"
#include "migration/destination.h"
#include "snapshot/snapshot.h"
#include "vmm/memory.h"
#include "vmm/instance.h"
#include "vmm/vm.h"
#include "util/log.h"
#include "util/outbuf.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static json_t *u64_json(uint64_t v)
{
	/* JSON integers are int64 in jansson; nothing we report comes close
	 * to 2^63, but clamp rather than turn negative if it ever does. */
	return json_integer(v > INT64_MAX ? INT64_MAX : (json_int_t)v);
}

struct instance *control_instance(struct control_call *call)
{
	return call->opaque;
}

struct destination *control_destination(struct control_call *call)
{
	return call->opaque ? control_instance(call)->incoming : NULL;
}

struct vm *control_vm(struct control_call *call)
{
	struct vm *vm = call->opaque ? instance_vm(control_instance(call)) : NULL;
	struct destination *d;

	if (vm)
		return vm;
	d = control_destination(call);
	if (d)
		err_set(call->err, -ENODEV,
			"there is no VM here yet: an incoming migration is %s",
			destination_state_name(destination_get_state(d, NULL)));
	else
		err_set(call->err, -ENODEV, "there is no VM here yet");
	return NULL;
}

static int cmd_query_status(struct control_call *call)
{
	struct vm *vm = instance_vm(control_instance(call));
	enum vm_status st;

	if (!vm) {
		/* QEMU's word for a destination waiting for its VM. */
		call->ret = json_pack("{s:s,s:b,s:b}", "status", "inmigrate",
				      "running", 0, "singlestep", 0);
		return call->ret ? 0 : err_set(call->err, -ENOMEM, "out of memory");
	}
	st = vm_get_status(vm);
	call->ret = json_pack("{s:s,s:b,s:b}", "status", vm_status_name(st),
			      "running", st == VM_STATUS_RUNNING,
			      "singlestep", 0);
	return call->ret ? 0 : err_set(call->err, -ENOMEM, "out of memory");
}

/*
 * While the VM is still coming, stop and cont say how it will arrive (as
 * QEMU's do during "inmigrate"): paused, or running.  Returns 1 if that
 * was done, 0 if the VM is here (act on it), or -ENODEV.
 */
static int set_autostart(struct control_call *call, bool run, struct vm **vm)
{
	struct destination *d = control_destination(call);

	*vm = instance_vm(control_instance(call));
	if (*vm)
		return 0;
	if (d && destination_set_autostart(d, run) == 0)
		return 1;
	/* -EALREADY: the VM was taken over meanwhile and is published. */
	*vm = control_vm(call);
	return *vm ? 0 : -ENODEV;
}

static int cmd_stop(struct control_call *call)
{
	struct vm *vm;
	int r = set_autostart(call, false, &vm);

	if (r)
		return r < 0 ? r : 0;

	/* Like QMP, stopping a VM that is not running is not an error.  During
	 * a snapshot or a stop-and-copy vm_pause only notes that the VM must
	 * stay paused afterwards. */
	vm_pause(vm);
	return 0;
}

static int cmd_cont(struct control_call *call)
{
	bool force = json_is_true(json_object_get(call->args, "force"));
	struct vm *vm;
	int r = set_autostart(call, true, &vm);

	if (r)
		return r < 0 ? r : 0;

	switch (vm_get_status(vm)) {
	case VM_STATUS_RUNNING:
		return 0;
	case VM_STATUS_SHUTDOWN:
	case VM_STATUS_INTERNAL_ERROR:
		return err_set(call->err, -EINVAL,
			       "the VM is in state '%s' and cannot continue",
			       vm_status_name(vm_get_status(vm)));
	case VM_STATUS_SAVING:
		return err_set(call->err, -EBUSY,
			       "the VM is being saved; try again when it is done");
	case VM_STATUS_FINISH_MIGRATE:
		/* The migration resumes the guest itself if it fails. */
		return err_set(call->err, -EBUSY,
			       "the VM is paused for the last step of a migration; try again when it is done");
	case VM_STATUS_POSTMIGRATE:
		/* QEMU would allow this; two live copies of one guest are
		 * exactly what migration must never produce. */
		return err_set(call->err, -EINVAL,
			       "the VM has migrated and runs on the destination; it cannot continue here");
	case VM_STATUS_POSTMIGRATE_UNKNOWN:
		/* Only the operator can know the destination does not run it
		 * (it died, or was killed): make them say so. */
		if (!force)
			return err_set(call->err, -EINVAL,
				       "the last migration sent COMMIT and the destination never confirmed: "
				       "the guest may be running there (see query-migrate). Make sure it is "
				       "not, then resume here with {\"execute\": \"cont\", \"arguments\": {\"force\": true}}");
		log_warn("cont with force after an unconfirmed hand-over: the operator says the destination does not run the guest");
		break;
	case VM_STATUS_PRELAUNCH:
	case VM_STATUS_PAUSED:
		break;
	}
	if (vm_resume(vm))
		return err_set(call->err, -EBUSY,
			       "the VM is busy with a snapshot or a migration; try again when it is done");
	return 0;
}

static void quit_after_reply(void *opaque)
{
	instance_request_quit(opaque, 0);
}

static int cmd_quit(struct control_call *call)
{
	/* The reply goes out first, so the client learns the quit was taken
	 * before the socket disappears. */
	call->after_reply = quit_after_reply;
	return 0;
}

static json_t *guest_progress_json(struct vm *vm)
{
	struct testdev_progress p;
	json_t *g;

	memset(&p, 0, sizeof(p));
	if (vm->testdev)
		testdev_get_progress(vm->testdev, &p);
	/* The text comes from the guest: keep it printable ASCII so it is
	 * always a valid JSON string. */
	p.last_assert[sizeof(p.last_assert) - 1] = '\0';
	for (char *c = p.last_assert; *c; c++)
		if (*c < 0x20 || *c > 0x7e)
			*c = '?';

	const struct { const char *key; uint64_t val; } nums[] = {
		{ "wss-base", p.wss_base },
		{ "wss-bytes", p.wss_bytes },
		{ "vcpus-online", p.vcpus_online },
		{ "pages-written", p.counters[PROG_PAGES_WRITTEN] },
		{ "checks-done", p.counters[PROG_CHECKS_DONE] },
		{ "pages-checked", p.counters[PROG_PAGES_CHECKED] },
		{ "errors", p.counters[PROG_ERRORS] },
		{ "ticks", p.counters[PROG_TICKS] },
		{ "uptime-ms", p.counters[PROG_UPTIME_MS] },
		{ "heartbeats", p.counters[PROG_HEARTBEATS] },
		{ "verified-resume-generation", p.counters[PROG_VERIFIED_RESUME] },
		{ "resume-generation", p.resume_gen },
		{ "progress-reports", p.progress_reports },
		{ "syncs", p.syncs },
		{ "last-sync", p.last_sync },
		{ "asserts", p.asserts },
	};
	g = json_pack("{s:b}", "ready", p.ready);
	for (size_t i = 0; g && i < sizeof(nums) / sizeof(nums[0]); i++)
		json_object_set_new(g, nums[i].key, u64_json(nums[i].val));
	if (g)
		json_object_set_new(g, "last-assert",
				    json_string(p.last_assert));
	return g;
}

/* Accesses no device answered, per address: {"pio": [{"port", "reads",
 * "writes"}], "mmio": [{"addr", ...}], "untracked": N}. */
static json_t *unhandled_io_json(struct vm *vm)
{
	struct io_unhandled *u = malloc(sizeof(*u));
	json_t *pio = json_array(), *mmio = json_array();

	if (!u)
		return NULL;
	vm_get_unhandled(vm, u);
	for (unsigned i = 0; i < u->n; i++) {
		const struct io_unhandled_entry *e = &u->e[i];
		bool is_pio = e->space == IO_SPACE_PIO;
		json_array_append_new(is_pio ? pio : mmio, json_pack(
			"{s:o,s:o,s:o}", is_pio ? "port" : "addr",
			u64_json(e->addr), "reads", u64_json(e->reads),
			"writes", u64_json(e->writes)));
	}
	json_t *j = json_pack("{s:o,s:o,s:o}", "pio", pio, "mmio", mmio,
			      "untracked", u64_json(u->untracked));
	free(u);
	return j;
}

/* Output the VMM could not deliver is dropped, never waited for: say how
 * much, so a test or a user knows the console or heartbeat log has gaps. */
static json_t *output_json(const struct outbuf_stats *st)
{
	return json_pack("{s:o,s:o,s:o,s:b}",
			 "written-bytes", u64_json(st->written),
			 "dropped-bytes", u64_json(st->dropped),
			 "queued-bytes", u64_json(st->queued),
			 "broken", st->broken);
}

static int cmd_query_vm(struct control_call *call)
{
	struct vm *vm = instance_vm(control_instance(call));
	struct destination *d = control_destination(call);
	struct outbuf_stats serial, hb;
	json_t *slots;

	if (!vm && d) {
		/* What is coming, as far as HELLO told. */
		call->ret = destination_query_vm(d);
		return call->ret ? 0 : err_set(call->err, -ENOMEM, "out of memory");
	}
	vm = control_vm(call);
	if (!vm)
		return -ENODEV;
	slots = json_array();
	uart_output_stats(vm->uart, &serial);
	heartbeat_output_stats(vm->heartbeat, &hb);

	for (unsigned i = 0; slots && i < vm->mem.nslots; i++)
		json_array_append_new(slots, json_pack("{s:o,s:o}",
			"gpa", u64_json(vm->mem.slots[i].gpa),
			"size", u64_json(vm->mem.slots[i].size)));
	call->ret = json_pack("{s:o,s:i,s:s,s:o,s:o,s:o,s:o,s:s,s:o}",
			      "memory", u64_json(vm->mem.ram_size),
			      "vcpus", (int)vm->nvcpus,
			      "status", vm_status_name(vm_get_status(vm)),
			      "memory-slots", slots,
			      "guest", guest_progress_json(vm),
			      "serial", output_json(&serial),
			      "heartbeat", output_json(&hb),
			      "exit-port", vm_exit_port_name(vm->exit_port),
			      "unhandled-io", unhandled_io_json(vm));
	return call->ret ? 0 : err_set(call->err, -ENOMEM, "out of memory");
}

static int cmd_snapshot_save(struct control_call *call)
{
	const char *path = json_string_value(json_object_get(call->args,
							     "path"));

	struct vm *vm = control_vm(call);

	if (!vm)
		return -ENODEV;
	if (!*path)
		return err_set(call->err, -EINVAL, "'path' is empty");
	return snapshot_save(vm, path, call->err);
}

static int cmd_guest_memory_write(struct control_call *call)
{
	struct vm *vm = control_vm(call);
	uint64_t gpa = json_integer_value(json_object_get(call->args, "gpa"));
	const char *hex = json_string_value(json_object_get(call->args, "hex"));
	uint8_t *data;
	size_t len;
	int ret;

	if (!vm)
		return -ENODEV;
	ret = control_parse_hex(hex, &data, &len, call->err);
	if (ret < 0)
		return ret;
	/* The test that asks for this wants the guest to find the bytes
	 * there, racing or not; during a hand-over it is refused, never
	 * lost. */
	ret = vm_write_guest_memory(vm, gpa, data, len, call->err);
	free(data);
	return ret;
}

static int cmd_query_memory_digest(struct control_call *call)
{
	struct vm *vm = control_vm(call);
	if (!vm)
		return -ENODEV;
	return control_memory_digest(vm, &call->ret, call->err);
}

const struct control_cmd control_commands[] = {
	{ "qmp_capabilities", control_cmd_qmp_capabilities,
	  CONTROL_ARGS({ "enable", CONTROL_ARG_ARRAY, true }) },
	{ "query-commands", control_cmd_query_commands, NULL },
	{ "query-status", cmd_query_status, NULL },
	{ "query-vm", cmd_query_vm, NULL },
	{ "stop", cmd_stop, NULL },
	{ "cont", cmd_cont,
	  CONTROL_ARGS({ "force", CONTROL_ARG_BOOL, true }) },
	{ "quit", cmd_quit, NULL },
	{ "snapshot-save", cmd_snapshot_save,
	  CONTROL_ARGS({ "path", CONTROL_ARG_STRING, false }) },
	{ "x-guest-memory-write", cmd_guest_memory_write,
	  CONTROL_ARGS({ "gpa", CONTROL_ARG_UINT, false },
		       { "hex", CONTROL_ARG_STRING, false }) },
	{ "query-memory-digest", cmd_query_memory_digest, NULL },
	{ "migrate", control_cmd_migrate, control_migrate_args },
	{ "migrate-cancel", control_cmd_migrate_cancel, NULL },
	{ "migrate-start-postcopy", control_cmd_migrate_start_postcopy, NULL },
	{ "migrate-incoming", control_cmd_migrate_incoming,
	  CONTROL_ARGS({ "uri", CONTROL_ARG_STRING, false }) },
	{ "migrate-recover", control_cmd_migrate_recover,
	  CONTROL_ARGS({ "uri", CONTROL_ARG_STRING, false }) },
	{ "migrate-set-parameters", control_cmd_migrate_set_parameters,
	  control_migrate_set_parameters_args },
	{ "query-migrate", control_cmd_query_migrate, NULL },
	{ "query-migrate-parameters", control_cmd_query_migrate_parameters,
	  NULL },
	{ "migrate-set-capabilities", control_cmd_migrate_set_capabilities,
	  control_migrate_set_capabilities_args },
	{ "query-migrate-capabilities", control_cmd_query_migrate_capabilities,
	  NULL },
	{ NULL, NULL, NULL },
};
