/*
 * Guests written for QEMU's PC: multiboot modules, fw_cfg and QEMU's exit
 * convention.  The test guest's workload=qemuinfo reads the CPU count and
 * memory size through fw_cfg and through multiboot (and the CPUs that come
 * up), and a module's bytes, and checks them against its command line.
 *
 * Under QEMU without KVM (TCG) these run on any machine, and they are the
 * reference: the guest must pass there with QEMU's own devices.  The same
 * guest under Ferry, through a snapshot and a live migration, needs KVM
 * and is skipped without it.
 */
#include "harness/harness.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>

TestSuite(qemuguests, H_FIXTURES, .timeout = 240);

#define MODULE_TEXT "hello from a module\n"

static uint32_t fnv1a(const char *s, size_t n)
{
	uint32_t h = 2166136261u;
	for (size_t i = 0; i < n; i++)
		h = (h ^ (uint8_t)s[i]) * 16777619u;
	return h;
}

/* Writes the module file; returns the guest's expectations for a machine
 * of @cpus vCPUs and @mem_mib MiB, with the module's arguments "marker". */
static const char *qemuinfo_cmdline(unsigned cpus, unsigned mem_mib,
				    unsigned seconds)
{
	static char cmd[256];
	h_write_file(h_path("mod.txt"), MODULE_TEXT, strlen(MODULE_TEXT));
	snprintf(cmd, sizeof(cmd),
		 "workload=qemuinfo cpus=%u mem=%uM mods=1 mod_len=%zu "
		 "mod_fnv=0x%x mod_arg=marker seconds=%u", cpus, mem_mib,
		 strlen(MODULE_TEXT), fnv1a(MODULE_TEXT, strlen(MODULE_TEXT)),
		 seconds);
	return cmd;
}

/* ---- under QEMU without KVM --------------------------------------------- */

/*
 * The guest under QEMU with software emulation (no -enable-kvm), one
 * module ("mod.txt marker") and isa-debug-exit.  Returns QEMU's exit
 * status; the serial console is in vm "qemu"'s serial file.
 */
static int qemu_tcg_run(const char *cmdline, const char *smp, const char *mem,
			double timeout_s)
{
	if (!h_qemu_tcg())
		cr_skip_test("qemu-system-x86_64 is not installed");
	char initrd[PATH_MAX + 16];
	snprintf(initrd, sizeof(initrd), "%s marker", h_path("mod.txt"));
	struct h_qemu_opts o = { .memory = mem, .smp = smp, .initrd = initrd };
	return h_qemu_wait(h_qemu_start("qemu", cmdline, &o), timeout_s);
}

static char *serial_of_qemu(void)
{
	char *s = h_read_file(h_path("qemu.serial"), NULL);
	return s ? s : strdup("");
}

Test(qemuguests, qemuinfo_passes_under_qemu_tcg)
{
	h_guest();
	const char *cmd = qemuinfo_cmdline(2, 64, 1);
	int rc = qemu_tcg_run(cmd, "2", "64M", 120);
	char *s = serial_of_qemu();
	/* isa-debug-exit: guest code 0 -> status 1. */
	cr_assert_eq(rc, 1, "QEMU exit status %d, wanted 1; serial:\n%s", rc, s);
	cr_assert(strstr(s, "qemuinfo: fw_cfg sig=QEMU"), "%s", s);
	cr_assert(strstr(s, "cpus=2 max_cpus=2 ram=64MiB"), "%s", s);
	cr_assert(strstr(s, "qemuinfo: PASS"), "%s", s);
	cr_assert(!strstr(s, "FAIL"), "%s", s);
	free(s);
}

/* The checks can fail: a wrong expectation is caught, and reported through
 * the console and the exit status. */
Test(qemuguests, qemuinfo_catches_wrong_expectations_under_qemu_tcg)
{
	h_guest();
	char cmd[300];
	snprintf(cmd, sizeof(cmd), "%s", qemuinfo_cmdline(2, 64, 0));
	/* expect 3 CPUs and 96 MiB on a 2-CPU, 64 MiB machine */
	char *p = strstr(cmd, "cpus=2");
	p[5] = '3';
	p = strstr(cmd, "mem=64M");
	memcpy(p, "mem=96M", 7);
	int rc = qemu_tcg_run(cmd, "2", "64M", 120);
	char *s = serial_of_qemu();
	cr_assert_eq(rc, (1 << 1) | 1, "QEMU exit status %d, wanted 3 (guest code 1); "
		     "serial:\n%s", rc, s);
	cr_assert(strstr(s, "FAIL fw_cfg FW_CFG_NB_CPUS: got 2"), "%s", s);
	cr_assert(strstr(s, "FAIL CPUs started: got 2"), "%s", s);
	cr_assert(strstr(s, "FAIL fw_cfg FW_CFG_RAM_SIZE: got 67108864"), "%s", s);
	cr_assert(strstr(s, "FAIL multiboot memory map"), "%s", s);
	cr_assert(strstr(s, "qemuinfo: FAIL"), "%s", s);
	free(s);
}

Test(qemuguests, a_changed_module_is_caught_under_qemu_tcg)
{
	h_guest();
	char cmd[300];
	snprintf(cmd, sizeof(cmd), "%s", qemuinfo_cmdline(1, 64, 0));
	h_write_file(h_path("mod.txt"), "hello from a modulE\n", 20);
	int rc = qemu_tcg_run(cmd, "1", "64M", 120);
	char *s = serial_of_qemu();
	cr_assert_eq(rc, 3, "QEMU exit status %d; serial:\n%s", rc, s);
	cr_assert(strstr(s, "FAIL module FNV-1a"), "%s", s);
	free(s);
}

/* ---- options (no guest needed) ------------------------------------------- */

static void expect_usage_error(const char *needle, const char *a1,
			       const char *a2, const char *a3, const char *a4)
{
	char *err = NULL;
	int rc = h_run(20, NULL, &err, "run", a1, a2, a3, a4, NULL);
	cr_expect_eq(rc, H_EXIT_USAGE, "exit status %d; stderr:\n%s", rc, err);
	cr_expect(strstr(err, needle), "stderr lacks \"%s\":\n%s", needle, err);
	free(err);
}

Test(qemuguests, option_errors)
{
	expect_usage_error("--exit-port: 'qemu' is not ferry or isa-debug-exit",
			   "--kernel", h_image_exit(0), "--exit-port", "qemu");
	expect_usage_error("--module: FILE is empty", "--kernel",
			   h_image_exit(0), "--module", ",args");
	/* Modules and the exit convention belong to the machine, which a
	 * snapshot or a migration brings. */
	expect_usage_error("drop --kernel/--memory/--vcpus/--cmdline/--module/--exit-port",
			   "--restore", "/nonexistent.snap", "--module", "m");
	expect_usage_error("drop --kernel/--memory/--vcpus/--cmdline/--module/--exit-port",
			   "--incoming", "tcp:127.0.0.1:0", "--exit-port",
			   "isa-debug-exit");
}

/* ---- under Ferry (KVM) ----------------------------------------------------- */

static struct h_vm *boot_qemuinfo(const char *name, unsigned seconds,
				  const char *exit_port)
{
	char mod[PATH_MAX + 16];
	const char *cmd = qemuinfo_cmdline(2, 64, seconds);
	snprintf(mod, sizeof(mod), "%s,marker", h_path("mod.txt"));
	return h_boot(name, H_CONTROL | H_CONSOLE, cmd, "--vcpus", "2",
		      "--memory", "64M", "--module", mod, "--exit-port",
		      exit_port, NULL);
}

static void expect_pass(struct h_vm *vm, int want_rc)
{
	int rc = h_vm_wait(vm, 120);
	char *s = h_vm_serial(vm);
	h_assert(rc == want_rc, "%s exited %d, wanted %d", vm->name, rc, want_rc);
	h_assert(strstr(s, "qemuinfo: PASS") && !strstr(s, "FAIL"),
		 "%s: the guest's checks did not pass", vm->name);
	free(s);
}

Test(qemuguests, qemuinfo_passes_under_ferry)
{
	h_require_kvm();
	expect_pass(boot_qemuinfo("ferry", 0, "ferry"), 0);
}

Test(qemuguests, qemuinfo_passes_under_ferry_with_qemu_exit_convention)
{
	h_require_kvm();
	expect_pass(boot_qemuinfo("ferry", 0, "isa-debug-exit"), 1);
}

/* The guest is mid-way through its 6 s of slow fw_cfg reads and module
 * checks when the snapshot is taken; the restored VM finishes them. */
Test(qemuguests, module_and_fw_cfg_read_survive_a_snapshot)
{
	h_require_kvm();
	struct h_vm *src = boot_qemuinfo("src", 6, "isa-debug-exit");
	h_assert(h_wait_serial(src, "qemuinfo: re-checking", 60), "no re-check loop");
	h_sleep_ms(1500);
	const char *snap = h_snapshot(src, "vm.snap");
	json_decref(h_qmp_ok(src, "{\"execute\":\"quit\"}"));
	h_vm_wait(src, 30);
	struct h_vm *dst = h_restore("dst", H_CONTROL | H_CONSOLE, snap, NULL);
	/* The exit convention came with the machine. */
	expect_pass(dst, 1);
}

Test(qemuguests, module_and_fw_cfg_read_survive_a_live_migration)
{
	h_require_kvm();
	struct h_vm *src = boot_qemuinfo("src", 6, "isa-debug-exit");
	h_assert(h_wait_serial(src, "qemuinfo: re-checking", 60), "no re-check loop");
	h_sleep_ms(1500);
	struct h_vm *dst = h_incoming("dst", H_CONTROL | H_CONSOLE, NULL);
	json_decref(h_qmp_ok(src, "{\"execute\":\"migrate\",\"arguments\":"
			     "{\"uri\":\"%s\"}}", h_mig_uri(dst->port)));
	json_t *q = h_wait_migration(src, 60, NULL);
	h_assert(!strcmp(json_string_value(json_object_get(q, "status")),
			 "completed"), "migration did not complete");
	json_decref(q);
	h_assert(h_vm_wait(src, 20) == 0, "source did not end after migrating");
	expect_pass(dst, 1);
}

/* A write of V to 0xf4: status V by default, (V << 1) | 1 with QEMU's. */
Test(qemuguests, exit_status_codes_of_both_conventions)
{
	h_require_kvm();
	static const uint8_t codes[] = { 0, 1, 5, 0x7f };
	for (size_t i = 0; i < sizeof(codes); i++) {
		const char *img = h_image_exit(codes[i]);
		int rc = h_run(30, NULL, NULL, "run", "--kernel", img,
			       "--serial", "none", NULL);
		h_assert(rc == codes[i], "ferry convention: code %u gave %d",
			 codes[i], rc);
		rc = h_run(30, NULL, NULL, "run", "--kernel", img,
			   "--serial", "none", "--exit-port", "isa-debug-exit", NULL);
		h_assert(rc == ((codes[i] << 1) | 1),
			 "isa-debug-exit: code %u gave %d, wanted %d", codes[i],
			 rc, (codes[i] << 1) | 1);
	}
}

/* in al,0x99 three times; out 0x99,al; then sleep. */
Test(qemuguests, unknown_ports_are_counted_and_logged_once)
{
	h_require_kvm();
	static const uint8_t code[] = { 0xe4, 0x99, 0xe4, 0x99, 0xe4, 0x99,
					0xe6, 0x99, 0xfa, 0xf4, 0xeb, 0xfd };
	const char *img = h_image_aout("ports.img", code, sizeof(code));
	struct h_vm *vm = h_spawn("vm", H_CONTROL, "run", "--kernel", img,
				  "--serial", "none", NULL);
	h_wait_control(vm, 30);
	json_t *pio = NULL;
	bool seen = h_wait_for(({
		json_t *r = h_qmp_ok(vm, "{\"execute\":\"query-vm\"}");
		json_decref(pio);
		pio = json_incref(json_object_get(json_object_get(r, "unhandled-io"),
						  "pio"));
		json_decref(r);
		json_array_size(pio) > 0 && json_integer_value(json_object_get(
			json_array_get(pio, 0), "writes")) == 1; }), 20);
	h_assert(seen, "port 0x99 not counted in query-vm");
	json_t *e = json_array_get(pio, 0);
	h_assert(json_integer_value(json_object_get(e, "port")) == 0x99, "port");
	h_assert(json_integer_value(json_object_get(e, "reads")) == 3, "reads");
	json_decref(pio);
	char *err = h_vm_stderr(vm);
	char *first = strstr(err, "no device at port 0x99");
	h_assert(first && !strstr(first + 1, "no device at port 0x99"),
		 "port 0x99 must be logged exactly once");
	free(err);
	h_vm_stop(vm);
}
