/*
 * Command-line errors: each one ends `ferry` quickly with exit status 2
 * (usage) or 120 (a backend that cannot be set up) and a message on stderr
 * that names the option at fault.
 */
#include "harness/harness.h"

#include <string.h>

#define T 20.0 /* seconds; these never start a guest */

/* Run ferry with the given arguments; expect @code and @needle in stderr. */
#define expect_fail(code, needle, ...) do {				\
	char *err_ = NULL;						\
	int rc_ = h_run(T, NULL, &err_, __VA_ARGS__, NULL);		\
	cr_expect_eq(rc_, (code), "exit status %d, wanted %d; stderr:\n%s", \
		     rc_, (code), err_);				\
	cr_expect(strstr(err_, (needle)) != NULL,			\
		  "stderr lacks \"%s\":\n%s", (needle), err_);		\
	free(err_);							\
} while (0)

TestSuite(options, H_FIXTURES, .timeout = 60);

Test(options, no_arguments_prints_usage)
{
	char *err = NULL;
	int rc = h_run(T, NULL, &err, NULL);
	cr_expect_eq(rc, H_EXIT_USAGE, "exit status %d; stderr:\n%s", rc, err);
	cr_expect(strstr(err, "usage: ferry run"), "stderr:\n%s", err);
	free(err);
}

Test(options, unknown_subcommand)
{
	expect_fail(H_EXIT_USAGE, "unknown command 'frobnicate'", "frobnicate");
}

Test(options, unknown_option)
{
	expect_fail(H_EXIT_USAGE, "unknown option '--frobnicate'", "run",
		    "--kernel", h_image_exit(0), "--frobnicate");
}

Test(options, stray_argument)
{
	expect_fail(H_EXIT_USAGE, "unexpected argument 'extra'", "run",
		    "--kernel", h_image_exit(0), "extra");
}

Test(options, memory_with_bad_suffix)
{
	expect_fail(H_EXIT_USAGE, "--memory: '12X' is not a size", "run",
		    "--kernel", h_image_exit(0), "--memory", "12X");
}

Test(options, memory_zero_or_too_small)
{
	expect_fail(H_EXIT_USAGE, "--memory", "run", "--kernel",
		    h_image_exit(0), "--memory", "0");
	expect_fail(H_EXIT_USAGE, "at least 2M", "run", "--kernel",
		    h_image_exit(0), "--memory", "1M");
	expect_fail(H_EXIT_USAGE, "multiple of 4K", "run", "--kernel",
		    h_image_exit(0), "--memory", "4097K");
}

Test(options, vcpus_zero)
{
	expect_fail(H_EXIT_USAGE, "--vcpus: '0' is not a number from 1 to", "run",
		    "--kernel", h_image_exit(0), "--vcpus", "0");
}

Test(options, vcpus_too_many)
{
	expect_fail(H_EXIT_USAGE, "--vcpus: '999' is not a number from 1 to",
		    "run", "--kernel", h_image_exit(0), "--vcpus", "999");
}

Test(options, vcpus_not_a_number)
{
	expect_fail(H_EXIT_USAGE, "--vcpus: 'two'", "run", "--kernel",
		    h_image_exit(0), "--vcpus", "two");
}

Test(options, missing_kernel)
{
	expect_fail(H_EXIT_USAGE, "--kernel IMAGE (or --restore FILE, or --incoming URI) is required",
		    "run");
	expect_fail(H_EXIT_USAGE, "--kernel IMAGE (or --restore FILE, or --incoming URI) is required",
		    "run", "--memory", "64M");
}

Test(options, option_without_its_value)
{
	/* getopt reports a missing value as '?' (not ':') unless the option
	 * string starts with ':'; the message must still say what is wrong.
	 * KNOWN PRODUCT BUG (src/main.c, parse_run_opts): the option string
	 * is "" so the ':' case is dead code and `ferry run --kernel` says
	 * "unknown option '--kernel'".  Fix: getopt_long(argc, argv, ":", ...). */
	expect_fail(H_EXIT_USAGE, "--kernel", "run", "--kernel");
	expect_fail(H_EXIT_USAGE, "needs a value", "run", "--kernel");
}

Test(options, restore_with_kernel)
{
	expect_fail(H_EXIT_USAGE, "--restore takes the machine from the snapshot",
		    "run", "--restore", h_path("none.snap"), "--kernel",
		    h_image_exit(0));
	expect_fail(H_EXIT_USAGE, "--restore takes the machine from the snapshot",
		    "run", "--restore", h_path("none.snap"), "--vcpus", "2");
}

Test(options, restore_missing_file)
{
	expect_fail(H_EXIT_VMM, "cannot open snapshot", "run", "--restore",
		    h_path("none.snap"));
}

Test(options, bad_serial_backend)
{
	expect_fail(H_EXIT_VMM, "serial: 'tcp:1234' is not stdio, file:PATH or none",
		    "run", "--kernel", h_image_exit(0), "--serial", "tcp:1234");
	expect_fail(H_EXIT_VMM, "serial: 'file:' is not stdio", "run",
		    "--kernel", h_image_exit(0), "--serial", "file:");
	expect_fail(H_EXIT_VMM, "serial: cannot open", "run", "--kernel",
		    h_image_exit(0), "--serial", "file:/nonexistent/dir/x");
}

Test(options, bad_heartbeat_backend)
{
	expect_fail(H_EXIT_VMM, "heartbeat: 'udp:9' is not none, file:PATH or unix:PATH",
		    "run", "--kernel", h_image_exit(0), "--heartbeat", "udp:9");
	expect_fail(H_EXIT_VMM, "heartbeat: cannot connect to", "run",
		    "--kernel", h_image_exit(0), "--heartbeat",
		    "unix:/nonexistent/hb.sock");
	expect_fail(H_EXIT_VMM, "heartbeat: cannot open", "run", "--kernel",
		    h_image_exit(0), "--heartbeat", "file:/nonexistent/dir/hb");
}

Test(options, bad_control_path)
{
	expect_fail(H_EXIT_VMM, "control socket", "run", "--kernel",
		    h_image_halt(), "--control", "/nonexistent/dir/ctl.sock");
}

Test(options, help_and_version)
{
	char *out = NULL;
	cr_expect_eq(h_run(T, &out, NULL, "--help", NULL), 0);
	cr_expect(strstr(out, "usage: ferry run"), "help: %s", out);
	free(out);
	cr_expect_eq(h_run(T, &out, NULL, "--version", NULL), 0);
	cr_expect(strstr(out, "ferry "), "version: %s", out);
	free(out);
}

Test(options, ctl_usage_errors)
{
	expect_fail(2, "usage: ferry ctl", "ctl");
	expect_fail(2, "", "ctl", "--control", h_path("nobody.sock"),
		    "{\"execute\":\"query-status\"}");
}
