/*
 * query-memory-digest (control_memory_digest, the command's body) on a VM
 * that is only its memory and run state (no KVM needed): refused while
 * the guest runs or a hold may resume it, refused without a VM, answered
 * in shape when paused; and the command is in the table.
 */
#include <criterion/criterion.h>

#include <pthread.h>
#include <string.h>

#include "control/control_digest.h"
#include "control/control_proto.h"
#include "util/log.h"
#include "vmm/memory_digest.h"
#include "vmm/vm.h"

/* The command's answer as a reply object: {"return"} or {"error"}. */
static json_t *run(struct vm *vm)
{
	json_t *ret = NULL;
	char err[ERR_MAX] = "";
	int r = control_memory_digest(vm, &ret, err);
	if (r) {
		cr_assert_null(ret);
		return json_pack("{s:{s:s}}", "error", "desc", err);
	}
	cr_assert_not_null(ret);
	return json_pack("{s:o}", "return", ret);
}

static const char *error_desc(json_t *reply)
{
	json_t *e = json_object_get(reply, "error");
	cr_assert(json_is_object(e), "wanted an error reply");
	return json_string_value(json_object_get(e, "desc"));
}

static void vm_new(struct vm *vm, uint64_t size, enum vm_status st)
{
	char err[ERR_MAX] = "";
	memset(vm, 0, sizeof(*vm));
	pthread_mutex_init(&vm->lock, NULL);
	vm->status = st;
	memory_layout(&vm->mem, size);
	cr_assert_eq(memory_alloc(&vm->mem, err), 0, "%s", err);
}

Test(control_digest, refused_while_running_or_held)
{
	struct vm vm;
	vm_new(&vm, 1 << 20, VM_STATUS_RUNNING);
	json_t *r = run(&vm);
	cr_assert(strstr(error_desc(r), "running"), "%s", error_desc(r));
	cr_assert(strstr(error_desc(r), "stop"), "%s", error_desc(r));
	json_decref(r);
	vm.status = VM_STATUS_FINISH_MIGRATE;
	r = run(&vm);
	cr_assert(strstr(error_desc(r), "finish-migrate"), "%s", error_desc(r));
	json_decref(r);
	memory_free(&vm.mem);
}

Test(control_digest, refused_without_a_vm)
{
	json_t *r = run(NULL);
	cr_assert(strstr(error_desc(r), "no VM"), "%s", error_desc(r));
	json_decref(r);
}

Test(control_digest, paused_answer_shape)
{
	static const enum vm_status ok[] = {
		VM_STATUS_PAUSED, VM_STATUS_PRELAUNCH, VM_STATUS_POSTMIGRATE,
	};
	struct vm vm;
	vm_new(&vm, 2 << 20, VM_STATUS_PAUSED);
	vm.mem.slots[0].hva[4096] = 0x42;
	struct memory_digest d;
	char hex[MEMORY_DIGEST_HEX], rhex[MEMORY_DIGEST_HEX];
	cr_assert_eq(memory_digest(&vm.mem, &d), 0);
	memory_digest_hex(d.whole, hex);
	memory_digest_hex(d.region[0].digest, rhex);
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		vm.status = ok[i];
		json_t *r = run(&vm);
		json_t *ret = json_object_get(r, "return");
		cr_assert(json_is_object(ret), "state %s: no return",
			  vm_status_name(ok[i]));
		cr_assert_str_eq(json_string_value(json_object_get(ret, "algorithm")),
				 "xxh3-128");
		cr_assert_str_eq(json_string_value(json_object_get(ret, "digest")),
				 hex);
		json_t *regs = json_object_get(ret, "regions");
		cr_assert_eq(json_array_size(regs), 1);
		json_t *r0 = json_array_get(regs, 0);
		cr_assert_eq(json_integer_value(json_object_get(r0, "gpa")), 0);
		cr_assert_eq(json_integer_value(json_object_get(r0, "size")), 2 << 20);
		cr_assert_str_eq(json_string_value(json_object_get(r0, "digest")), rhex);
		json_decref(r);
	}
	memory_free(&vm.mem);
	pthread_mutex_destroy(&vm.lock);
}

Test(control_digest, in_the_command_table)
{
	const struct control_cmd *c = control_find_cmd(control_commands,
						       "query-memory-digest");
	cr_assert_not_null(c);
	cr_assert_null(c->args, "query-memory-digest takes no arguments");
}
