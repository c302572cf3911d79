/*
 * Booting and ending: exit codes pass through the exit port, a guest that
 * crashes ends ferry with a failure and a message, the test guest's
 * workloads run and make progress on 1 and 4 vCPUs, heartbeats arrive.
 */
#include "harness/harness.h"

#include <poll.h>
#include <string.h>

#define BOOT_S 60.0   /* ring-0 set-up is emulated on PVM: be generous */

TestSuite(boot, H_FIXTURES, .timeout = 120);

/* ---- hand-made images: no test guest needed ----------------------------- */

Test(boot, exit_code_passes_through)
{
	static const uint8_t codes[] = { 0, 1, 42, 119, 121, 255 };
	for (size_t i = 0; i < sizeof(codes); i++) {
		char *err = NULL;
		int rc = h_run(20, NULL, &err, "run", "--kernel",
			       h_image_exit(codes[i]), "--serial", "none", NULL);
		cr_expect_eq(rc, codes[i], "code %u: exit %d; stderr:\n%s",
			     codes[i], rc, err);
		free(err);
	}
}

/* Issue 11: a code ferry cannot pass on (120 is its own VMM-failure
 * status) ends with 1, the guest-failed status, and the log says why. */
Test(boot, guest_code_of_a_vmm_status_is_a_guest_failure)
{
	char *err = NULL;
	int rc = h_run(20, NULL, &err, "run", "--kernel", h_image_exit(120),
		       "--serial", "none", NULL);
	cr_expect_eq(rc, H_EXIT_STOPPED, "exit %d; stderr:\n%s", rc, err);
	cr_expect(strstr(err, "exit code 120 is ferry's status for a VMM failure"),
		  "stderr:\n%s", err);
	free(err);
}

Test(boot, small_memory_and_several_vcpus)
{
	int rc = h_run(20, NULL, NULL, "run", "--kernel", h_image_exit(7),
		       "--memory", "2M", "--vcpus", "4", "--serial", "none", NULL);
	cr_expect_eq(rc, 7);
	rc = h_run(20, NULL, NULL, "run", "--kernel", h_image_exit(9),
		   "--memory", "4G", "--serial", "none", NULL);
	cr_expect_eq(rc, 9);
}

Test(boot, triple_fault_stops_the_guest)
{
	/* ud2 with no IDT: #UD -> #GP -> #DF -> shutdown. */
	static const uint8_t ud2[] = { 0x0F, 0x0B };
	char *err = NULL;
	int rc = h_run(20, NULL, &err, "run", "--kernel",
		       h_image_aout("ud2.img", ud2, sizeof(ud2)), "--serial",
		       "none", NULL);
	cr_expect_eq(rc, H_EXIT_STOPPED, "exit %d; stderr:\n%s", rc, err);
	cr_expect(strstr(err, "triple fault"), "stderr:\n%s", err);
	free(err);
}

Test(boot, triple_fault_with_no_shutdown_stays_inspectable)
{
	static const uint8_t ud2[] = { 0x0F, 0x0B };
	struct h_vm *vm = h_spawn("vm", H_CONTROL, "run", "--kernel",
				  h_image_aout("ud2.img", ud2, sizeof(ud2)),
				  "--no-shutdown", NULL);
	h_assert(h_wait_for(h_vm_exited(vm) || (h_control_alive(vm) &&
		 !strcmp(h_status(vm), "shutdown")), 20), "no shutdown status");
	h_assert(!h_vm_exited(vm), "exited despite --no-shutdown");
	json_decref(h_qmp_err(vm, "{\"execute\":\"cont\"}"));
	json_decref(h_qmp_ok(vm, "{\"execute\":\"quit\"}"));
	cr_expect_eq(h_vm_wait(vm, 20), 0);
}

Test(boot, sigterm_ends_the_vmm)
{
	struct h_vm *vm = h_spawn("vm", H_CONTROL, "run", "--kernel",
				  h_image_halt(), NULL);
	h_assert(h_wait_for(h_control_alive(vm), 20), "control socket never came up");
	kill(vm->pid, SIGTERM);
	int rc = h_vm_wait(vm, 20);
	cr_expect_eq(rc, 128 + SIGTERM, "exit %d", rc);
	cr_expect(h_file_size(vm->control) < 0, "control socket left behind");
}

/* ---- the test guest ------------------------------------------------------ */

Test(boot, guest_exit_workload_passes_code)
{
	static const unsigned codes[] = { 0, 5, 77 };
	for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++) {
		char cmd[64], name[16];
		snprintf(cmd, sizeof(cmd), "workload=exit code=%u", codes[i]);
		snprintf(name, sizeof(name), "exit%u", codes[i]);
		struct h_vm *vm = h_boot(name, 0, cmd, NULL);
		int rc = h_vm_wait(vm, BOOT_S);
		if (rc != (int)codes[i])
			h_fail("%s: exit %d, wanted %u", cmd, rc, codes[i]);
	}
}

/* Issue 11: `workload=exit code=256` made ferry exit 0 (the kernel keeps
 * 8 bits of a status): a code that does not fit is a failure. */
Test(boot, guest_code_past_8_bits_is_not_success)
{
	struct h_vm *vm = h_boot("exit256", 0, "workload=exit code=256", NULL);
	int rc = h_vm_wait(vm, BOOT_S);
	char *err = h_vm_stderr(vm);
	h_assert(rc == H_EXIT_STOPPED, "exit %d, wanted %d; stderr:\n%s", rc,
		 H_EXIT_STOPPED, err);
	h_assert(strstr(err, "exit code 256 does not fit"), "stderr:\n%s", err);
	free(err);
}

Test(boot, guest_banner_and_ready_on_serial)
{
	struct h_vm *vm = h_boot("vm", H_CONTROL, "workload=idle", NULL);
	h_assert(h_wait_serial(vm, "ferry-testguest", BOOT_S), "no banner");
	h_assert(h_wait_serial(vm, "READY", BOOT_S), "no READY line");
	h_wait_ready(vm, BOOT_S);
	h_assert(h_wait_serial(vm, "progress: t=", 10), "no progress line");
}

Test(boot, guest_fault_is_reported)
{
	struct h_vm *vm = h_boot("vm", 0, "workload=fault", NULL);
	int rc = h_vm_wait(vm, BOOT_S);
	char *serial = h_vm_serial(vm), *err = h_vm_stderr(vm);
	if (rc == 0 || rc == H_EXIT_VMM)
		h_fail("workload=fault: exit %d, wanted a guest failure", rc);
	/* The guest's own exception handler says what happened on its
	 * console; if it could not, ferry must say it on stderr. */
	h_assert(strcasestr(serial, "exception") || strcasestr(serial, "fault") ||
		 strstr(err, "triple fault"),
		 "no message about the fault (exit %d)", rc);
	free(serial);
	free(err);
}

Test(boot, idle_guest_sends_heartbeats)
{
	struct h_vm *vm = h_boot("vm", H_CONTROL | H_HEARTBEAT,
				 "workload=idle heartbeat_us=1000", NULL);
	h_wait_ready(vm, BOOT_S);
	h_wait_progress(vm, 1, 10);
	off_t s0 = h_file_size(vm->heartbeat);
	double t0 = h_now();
	h_sleep_ms(2000);
	off_t s1 = h_file_size(vm->heartbeat);
	double rate = (s1 - s0) / (h_now() - t0);
	/* One byte per millisecond.  The lower bound is loose: with two
	 * tests in parallel on two cores a vCPU thread is descheduled now and
	 * then and the guest skips the beats it missed. */
	h_assert(rate > 250 && rate < 1500, "heartbeat file grew %.0f B/s, "
		 "wanted ~1000 (%lld -> %lld bytes)", rate, (long long)s0,
		 (long long)s1);
	uint64_t hb = h_guest_u64(vm, "heartbeats");
	h_assert(hb > 0, "query-vm guest.heartbeats is 0");
	/* Each byte is the beat counter mod 256: none lost, none twice. */
	uint64_t gaps = 1, repeats = 1;
	size_t beats = h_heartbeat_check(vm->heartbeat, &gaps, &repeats, NULL);
	h_assert(beats > 500 && gaps == 0 && repeats == 0, "heartbeat "
		 "sequence: %zu beats, %llu gaps, %llu repeats", beats,
		 (unsigned long long)gaps, (unsigned long long)repeats);
	cr_expect_str_eq(h_status(vm), "running");
}

static void dirty_makes_progress(const char *pattern, const char *fill)
{
	char cmd[160];
	snprintf(cmd, sizeof(cmd),
		 "workload=dirty wss=8M pattern=%s fill=%s verify=1 verify_ms=200 "
		 "seconds=3", pattern, fill);
	struct h_vm *vm = h_boot("vm", H_CONTROL, cmd, NULL);
	h_wait_ready(vm, BOOT_S);
	uint64_t p0 = h_guest_u64(vm, "pages-written");
	h_wait_progress(vm, 1, 10);
	json_t *g = h_guest_info(vm);
	uint64_t p1 = json_integer_value(json_object_get(g, "pages-written"));
	uint64_t e1 = json_integer_value(json_object_get(g, "errors"));
	json_decref(g);
	h_assert(p1 > p0, "%s: pages-written %llu -> %llu", cmd,
		 (unsigned long long)p0, (unsigned long long)p1);
	h_assert(e1 == 0, "%s: errors %llu", cmd, (unsigned long long)e1);
	int rc = h_vm_wait(vm, 30);
	if (rc != 0)
		h_fail("%s: exit %d, wanted 0 (seconds reached, no errors)", cmd, rc);
	char *serial = h_vm_serial(vm);
	h_assert(strstr(serial, "progress: t="), "%s: no progress lines", cmd);
	h_assert(!strstr(serial, "VERIFY FAIL"), "%s: VERIFY FAIL on serial", cmd);
	h_assert(strstr(serial, "errors=0"), "%s: no errors=0 progress line", cmd);
	free(serial);
}

/* The same run while polling query-vm: counters move, errors stay 0. */
Test(boot, dirty_counters_advance_in_query_vm)
{
	struct h_vm *vm = h_boot("vm", H_CONTROL,
				 "workload=dirty wss=16M verify=1 verify_ms=200",
				 NULL);
	h_wait_ready(vm, BOOT_S);
	uint64_t wss = h_guest_u64(vm, "wss-bytes");
	h_assert(wss == 16u << 20, "wss-bytes %llu", (unsigned long long)wss);
	h_assert(h_guest_u64(vm, "wss-base") >= 1u << 20, "wss-base below 1M");
	h_wait_progress(vm, 1, 10);
	uint64_t p0 = h_guest_u64(vm, "pages-written");
	uint64_t c0 = h_guest_u64(vm, "checks-done");
	uint64_t t0 = h_guest_u64(vm, "ticks");
	uint64_t u0 = h_guest_u64(vm, "uptime-ms");
	h_wait_progress(vm, 2, 10);
	json_t *g = h_guest_info(vm);
	uint64_t p1 = json_integer_value(json_object_get(g, "pages-written"));
	uint64_t c1 = json_integer_value(json_object_get(g, "checks-done"));
	uint64_t t1 = json_integer_value(json_object_get(g, "ticks"));
	uint64_t u1 = json_integer_value(json_object_get(g, "uptime-ms"));
	uint64_t e1 = json_integer_value(json_object_get(g, "errors"));
	uint64_t a1 = json_integer_value(json_object_get(g, "asserts"));
	h_assert(p1 > p0, "pages-written %llu -> %llu", (unsigned long long)p0,
		 (unsigned long long)p1);
	h_assert(c1 > c0, "checks-done %llu -> %llu", (unsigned long long)c0,
		 (unsigned long long)c1);
	h_assert(t1 > t0, "ticks %llu -> %llu", (unsigned long long)t0,
		 (unsigned long long)t1);
	h_assert(u1 >= u0 + 1000, "uptime-ms %llu -> %llu over 2 reports",
		 (unsigned long long)u0, (unsigned long long)u1);
	h_assert(e1 == 0 && a1 == 0, "errors %llu asserts %llu",
		 (unsigned long long)e1, (unsigned long long)a1);
	json_decref(g);
}

#define DIRTY_TEST(pat, fil)						\
	Test(boot, dirty_##pat##_##fil) { dirty_makes_progress(#pat, #fil); }

DIRTY_TEST(seq, counter)
DIRTY_TEST(seq, random)
DIRTY_TEST(seq, zero)
DIRTY_TEST(random, counter)
DIRTY_TEST(random, random)
DIRTY_TEST(random, zero)
DIRTY_TEST(hot, counter)
DIRTY_TEST(hot, random)
DIRTY_TEST(hot, zero)

Test(boot, four_vcpus_online_and_working)
{
	struct h_vm *vm = h_boot("vm", H_CONTROL,
				 "workload=dirty wss=32M verify=1 verify_ms=300 seconds=4",
				 "--vcpus", "4", NULL);
	h_wait_ready(vm, BOOT_S);
	uint64_t n = h_guest_u64(vm, "vcpus-online");
	h_assert(n == 4, "vcpus-online %llu, wanted 4", (unsigned long long)n);
	json_t *r = h_qmp_ok(vm, "{\"execute\":\"query-vm\"}");
	h_assert(json_integer_value(json_object_get(r, "vcpus")) == 4,
		 "query-vm vcpus != 4");
	json_decref(r);
	h_wait_progress(vm, 1, 10);
	uint64_t p0 = h_guest_u64(vm, "pages-written");
	h_wait_progress(vm, 1, 10);
	h_assert(h_guest_u64(vm, "pages-written") > p0, "no pages written");
	int rc = h_vm_wait(vm, 40);
	if (rc != 0)
		h_fail("4 vCPUs, seconds=4: exit %d, wanted 0", rc);
}

Test(boot, heartbeat_to_a_unix_socket)
{
	/* --heartbeat unix:PATH connects to a listener (an outside observer
	 * that timestamps the bytes); here the test is the observer. */
	const char *path = h_path("hb.sock");
	int ls = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	strcpy(sa.sun_path, path);
	h_assert(bind(ls, (struct sockaddr *)&sa, sizeof(sa)) == 0 &&
		 listen(ls, 1) == 0, "listen on %s", path);
	char opt[300];
	snprintf(opt, sizeof(opt), "unix:%s", path);
	struct h_vm *vm = h_boot("vm", H_CONTROL, "workload=idle heartbeat_us=1000",
				 "--heartbeat", opt, NULL);
	struct pollfd p = { .fd = ls, .events = POLLIN };
	h_assert(poll(&p, 1, 20000) == 1, "ferry did not connect to %s", path);
	int c = accept(ls, NULL, NULL);
	h_assert(c >= 0, "accept");
	h_wait_ready(vm, BOOT_S);
	size_t got = 0;
	double end = h_now() + 1.5;
	char buf[4096];
	while (h_now() < end) {
		struct pollfd q = { .fd = c, .events = POLLIN };
		if (poll(&q, 1, 100) == 1) {
			ssize_t n = read(c, buf, sizeof(buf));
			h_assert(n > 0, "heartbeat connection closed");
			got += n;
		}
	}
	h_assert(got > 250, "only %zu heartbeat bytes in 1.5 s", got);
	close(c);
	close(ls);
}
