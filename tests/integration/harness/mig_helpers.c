/*
 * mig_helpers.c - checks shared by the migration tests (harness.h,
 * "migration outcomes"): is the guest running, frozen, still sound; give a
 * guest held after an uncertain hand-over back to its source.
 */
#include "harness.h"

#include <string.h>

#define LLU(x) ((unsigned long long)(x))

struct h_vm *h_boot_verifying(const char *name, const char *cmdline,
			      const char *memory, const char *vcpus)
{
	struct h_vm *vm = h_boot(name, H_CONTROL | H_CONSOLE, cmdline,
				 "--memory", memory, "--vcpus", vcpus, NULL);
	h_wait_ready(vm, 60);
	h_wait_guest_ge(vm, "checks-done", 1, 30);
	return vm;
}

void h_expect_status(struct h_vm *vm, const char *want)
{
	char *st = h_status(vm);
	h_assert(!strcmp(st, want), "%s: query-status says '%s', wanted '%s'",
		 vm->name, st, want);
	free(st);
}

void h_expect_verifies(struct h_vm *vm)
{
	uint64_t c = h_guest_u64(vm, "checks-done");
	h_console_send(vm, "v");
	/* +2: at least one whole pass that started after this point. */
	h_wait_guest_ge(vm, "checks-done", c + 2, 30);
	json_t *g = h_guest_info(vm);
	uint64_t errors = json_integer_value(json_object_get(g, "errors"));
	uint64_t asserts = json_integer_value(json_object_get(g, "asserts"));
	json_decref(g);
	h_assert(errors == 0 && asserts == 0,
		 "%s: the guest found %llu bad pages (%llu asserts)", vm->name,
		 LLU(errors), LLU(asserts));
	h_assert(!h_file_contains(vm->serial, "VERIFY FAIL") &&
		 !h_file_contains(vm->serial, "FAILED"),
		 "%s: a verification pass failed (console)", vm->name);
}

void h_expect_guest_runs(struct h_vm *vm)
{
	uint64_t ticks = h_guest_u64(vm, "ticks");
	h_wait_progress(vm, 2, 20);
	h_assert(h_guest_u64(vm, "ticks") > ticks,
		 "%s: the guest's clock does not advance", vm->name);
}

void h_expect_guest_frozen(struct h_vm *vm, unsigned ms)
{
	uint64_t r0 = h_guest_u64(vm, "progress-reports");
	uint64_t u0 = h_guest_u64(vm, "uptime-ms");
	h_sleep_ms(ms);
	uint64_t r1 = h_guest_u64(vm, "progress-reports");
	uint64_t u1 = h_guest_u64(vm, "uptime-ms");
	h_assert(r1 == r0 && u1 == u0,
		 "%s: the guest runs (reports %llu -> %llu, uptime %llu -> %llu) "
		 "where it must stay paused", vm->name, LLU(r0), LLU(r1),
		 LLU(u0), LLU(u1));
	char *st = h_status(vm);
	h_assert(strcmp(st, "running"), "%s: query-status says running", vm->name);
	free(st);
}

void h_operator_resumes(struct h_vm *vm)
{
	/* A source held after an uncertain COMMIT may accept plain `cont`
	 * or want it forced; the operator who knows the destination is
	 * gone gives whichever it asks for. */
	json_t *r = h_qmp(vm, "{\"execute\":\"cont\"}");
	if (!json_object_get(r, "return")) {
		json_decref(r);
		r = h_qmp(vm, "{\"execute\":\"cont\",\"arguments\":{\"force\":true}}");
	}
	char *s = json_dumps(r, JSON_COMPACT);
	h_assert(json_object_get(r, "return"), "%s: cont was refused: %s",
		 vm->name, s);
	free(s);
	json_decref(r);
	h_expect_status(vm, "running");
}

/*
 * RAM equality from outside: the source, kept paused after completion
 * ("x-keep-source": true), and the destination, started --paused, must hash alike,
 * region by region.  Then the source quits and the destination runs.
 * The guest's own checks cannot prove this: they travel in the same RAM.
 */
json_t *h_release_ram_and_pause(struct h_vm *src)
{
	json_decref(h_qmp_ok(src, "{\"execute\":\"migrate-set-capabilities\",\"arguments\":"
			     "{\"capabilities\":[{\"capability\":\"release-ram\",\"state\":true}]}}"));
	json_decref(h_qmp_ok(src, "{\"execute\":\"stop\"}"));
	return h_memory_digest(src);
}

void h_expect_memory_was(struct h_vm *src, json_t *before, struct h_vm *dst)
{
	h_wait_control(dst, 30);
	h_expect_status(dst, "paused");
	json_t *after = h_memory_digest(dst);
	h_assert_same_memory(src, before, dst, after);
	json_decref(before);
	json_decref(after);
	json_decref(h_qmp_ok(dst, "{\"execute\":\"cont\"}"));
	h_expect_verifies(dst);
}

json_t *h_migrate_kept(struct h_vm *src, struct h_vm *dst, double timeout_s)
{
	json_decref(h_qmp_ok(src, "{\"execute\":\"migrate\",\"arguments\":"
			     "{\"uri\":\"%s\",\"x-keep-source\":true}}",
			     h_mig_uri(dst->port)));
	json_t *q = h_wait_migration(src, timeout_s, NULL);
	char *s = h_dump(q);
	h_assert(!strcmp(h_str(q, "status"), "completed"),
		 "the migration from %s to %s did not complete: %s", src->name,
		 dst->name, s);
	free(s);
	return q;
}

void h_expect_same_memory(struct h_vm *src, struct h_vm *dst)
{
	h_wait_control(dst, 30);
	h_expect_status(src, "postmigrate");
	json_t *st = h_qmp_ok(dst, "{\"execute\":\"query-status\"}");
	h_assert(json_is_false(json_object_get(st, "running")),
		 "%s was started --paused but runs after the migration",
		 dst->name);
	json_decref(st);
	json_t *a = h_memory_digest(src), *b = h_memory_digest(dst);
	h_assert_same_memory(src, a, dst, b);
	json_decref(a);
	json_decref(b);
	json_decref(h_qmp_ok(src, "{\"execute\":\"quit\"}"));
	int rc = h_vm_wait(src, 20);
	h_assert(rc == 0, "the kept source %s exited %d after quit", src->name, rc);
	json_decref(h_qmp_ok(dst, "{\"execute\":\"cont\"}"));
}
