/*
 * The guest's self-check: memory it wrote must read back.  Corrupting a
 * page behind its back (x-guest-memory-write) must be caught and reported
 * through the ucall channel (query-vm) and on the console; without
 * corruption the error count stays 0.
 */
#include "harness/harness.h"

#include <string.h>

#define BOOT_S 60.0
#define PAGE 4096u

TestSuite(verify, H_FIXTURES, .timeout = 120);

#define LLU(x) ((unsigned long long)(x))

/* Overwrite 16 bytes in the middle of @n pages spread over the WSS. */
static void corrupt_wss(struct h_vm *vm, unsigned n)
{
	uint64_t base = h_guest_u64(vm, "wss-base");
	uint64_t bytes = h_guest_u64(vm, "wss-bytes");
	h_assert(base && bytes >= n * PAGE, "wss-base %llu wss-bytes %llu",
		 LLU(base), LLU(bytes));
	uint64_t stride = (bytes / PAGE / n) * PAGE;
	for (unsigned i = 0; i < n; i++) {
		uint64_t gpa = base + i * stride + 3 * PAGE + 2048;
		if (gpa + 16 > base + bytes)
			gpa = base + 2048;
		json_decref(h_qmp_ok(vm, "{\"execute\":\"x-guest-memory-write\","
				     "\"arguments\":{\"gpa\":%llu,\"hex\":"
				     "\"a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5\"}}",
				     LLU(gpa)));
	}
}

Test(verify, corrupted_page_is_reported)
{
	/* A slow writer (1 MB/s over 16 MiB) is unlikely to rewrite a
	 * corrupted page before the next verify pass (every 200 ms). */
	struct h_vm *vm = h_boot("vm", H_CONTROL | H_CONSOLE,
				 "workload=dirty wss=16M rate=1 verify=1 verify_ms=200",
				 NULL);
	h_wait_ready(vm, BOOT_S);
	h_wait_progress(vm, 1, 10);
	h_assert(h_guest_u64(vm, "errors") == 0, "errors before corruption");
	corrupt_wss(vm, 8);
	h_console_send(vm, "v"); /* and verify right now */
	if (!h_wait_for(h_guest_u64(vm, "errors") > 0 ||
			h_guest_u64(vm, "asserts") > 0, 15))
		h_fail("corruption not reported in query-vm (errors and asserts 0)");
	h_assert(h_wait_serial(vm, "VERIFY FAIL", 10), "no VERIFY FAIL on serial");
	json_t *g = h_guest_info(vm);
	if (json_integer_value(json_object_get(g, "asserts")) > 0) {
		const char *la = json_string_value(json_object_get(g, "last-assert"));
		h_assert(la && *la, "asserts > 0 but last-assert is empty");
	}
	json_decref(g);
	/* Without exit_on_error the guest goes on running. */
	h_wait_progress(vm, 1, 10);
	char *st = h_status(vm);
	h_assert(!strcmp(st, "running"), "status %s", st);
	free(st);
}

Test(verify, corruption_with_exit_on_error_fails_the_run)
{
	struct h_vm *vm = h_boot("vm", H_CONTROL,
				 "workload=dirty wss=16M rate=1 verify=1 verify_ms=100 "
				 "exit_on_error=1", NULL);
	h_wait_ready(vm, BOOT_S);
	corrupt_wss(vm, 8);
	int rc = h_vm_wait(vm, 30);
	if (rc == 0 || rc == H_EXIT_VMM)
		h_fail("exit %d after corruption with exit_on_error=1", rc);
	h_assert(h_file_contains(vm->serial, "VERIFY FAIL"), "no VERIFY FAIL");
}

Test(verify, clean_run_has_no_errors)
{
	struct h_vm *vm = h_boot("vm", H_CONTROL | H_CONSOLE,
				 "workload=dirty wss=16M verify=1 verify_ms=100000",
				 NULL);
	h_wait_ready(vm, BOOT_S);
	h_wait_progress(vm, 1, 10);
	/* verify_ms is long: passes happen because we ask for them. */
	uint64_t c0 = h_guest_u64(vm, "checks-done");
	for (int i = 0; i < 3; i++) {
		h_console_send(vm, "v");
		h_wait_guest_ge(vm, "checks-done", c0 + i + 1, 10);
	}
	h_assert(h_guest_u64(vm, "errors") == 0, "errors in a clean run");
	h_assert(h_guest_u64(vm, "asserts") == 0, "asserts in a clean run");
	h_assert(h_guest_u64(vm, "pages-checked") > 0, "no pages checked");
	h_assert(!h_file_contains(vm->serial, "VERIFY FAIL"), "VERIFY FAIL");
}

Test(verify, write_outside_the_wss_is_harmless)
{
	/* Writing to guest memory the guest does not check (far above its
	 * working set) must not trip its verification. */
	struct h_vm *vm = h_boot("vm", H_CONTROL,
				 "workload=dirty wss=8M verify=1 verify_ms=200",
				 "--memory", "256M", NULL);
	h_wait_ready(vm, BOOT_S);
	uint64_t top = (256u << 20) - PAGE;
	uint64_t end = h_guest_u64(vm, "wss-base") + h_guest_u64(vm, "wss-bytes");
	h_assert(end <= top, "the WSS reaches the last page");
	json_decref(h_qmp_ok(vm, "{\"execute\":\"x-guest-memory-write\","
			     "\"arguments\":{\"gpa\":%llu,\"hex\":\"ff00ff00\"}}",
			     LLU(top)));
	h_wait_progress(vm, 2, 10);
	h_assert(h_guest_u64(vm, "errors") == 0, "errors");
}

Test(verify, stale_header_is_caught_before_the_rewrite)
{
	/* A fast writer and no passes: the pages whose generation we change
	 * are rewritten long before any pass; the writer must notice the
	 * header it did not write before it writes over it. */
	struct h_vm *vm = h_boot("vm", H_CONTROL,
				 "workload=dirty wss=4M verify=1 verify_ms=1000000",
				 NULL);
	h_wait_ready(vm, BOOT_S);
	uint64_t base = h_guest_u64(vm, "wss-base");
	for (unsigned i = 0; i < 4; i++)
		/* bytes 8..11: the generation; 0xfffffff0 is never current */
		json_decref(h_qmp_ok(vm, "{\"execute\":\"x-guest-memory-write\","
				     "\"arguments\":{\"gpa\":%llu,\"hex\":"
				     "\"f0ffffff\"}}",
				     LLU(base + (16 * i + 5) * PAGE + 8)));
	if (!h_wait_for(h_guest_u64(vm, "errors") >= 3, 15))
		h_fail("stale headers not reported (errors %llu)",
		       LLU(h_guest_u64(vm, "errors")));
	h_assert(h_wait_serial(vm, "at=write", 10), "no VERIFY FAIL ... at=write");
	h_assert(h_guest_u64(vm, "checks-done") == 0, "a pass ran: the test "
		 "did not test the check before the write");
}
