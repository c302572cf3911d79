/*
 * memory_mark_dirty (the VMM wrote guest memory, e.g. x-guest-memory-write
 * on the control thread) racing with dirty logging being turned on and off
 * (the migration thread).  The VMM's bitmaps used to be freed by
 * dirty_log_stop under a concurrent marker; they now live as long as the
 * memory.  Real threads on a VM without KVM (vm_fd -1: turning logging on
 * fails at KVM registration, after the bitmaps were set up and logging was
 * flagged on, which is the window that matters).  The sanitizer build of
 * the unit tests (make BUILD=build-san SAN=1 build-san/tests/unit-tests)
 * caught the old code's use after free in each of three runs; the plain
 * build can only crash by luck.
 */
#include <criterion/criterion.h>
#include <criterion/redirect.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "util/log.h"
#include "vmm/dirty_log.h"
#include "vmm/memory.h"
#include "vmm/vm.h"

static atomic_bool stop_marking;

static void *marker(void *arg)
{
	struct guest_memory *mem = arg;
	uint64_t gpa = 0;
	while (!atomic_load(&stop_marking)) {
		memory_mark_dirty(mem, gpa, 4096);
		gpa = (gpa + 4096 * 97) % mem->ram_size;
	}
	return NULL;
}

Test(dirty_log, mark_dirty_while_logging_starts_and_stops, .timeout = 30,
     .init = cr_redirect_stderr)
{
	struct vm *vm = calloc(1, sizeof(*vm));
	char err[ERR_MAX];
	vm->vm_fd = vm->kvm_fd = -1;
	memory_layout(&vm->mem, 64ULL << 20);
	cr_assert_eq(memory_alloc(&vm->mem, err), 0, "%s", err);

	pthread_t t[2];
	for (int i = 0; i < 2; i++)
		pthread_create(&t[i], NULL, marker, &vm->mem);
	for (int i = 0; i < 20000; i++) {
		cr_assert_neq(dirty_log_start(vm, err), 0); /* no KVM: fails */
		dirty_log_stop(vm);
	}
	atomic_store(&stop_marking, true);
	for (int i = 0; i < 2; i++)
		pthread_join(t[i], NULL);
	cr_assert(!vm->mem.logging);
	memory_free(&vm->mem);
	free(vm);
}
