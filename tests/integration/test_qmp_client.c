/*
 * A real QMP client library, DigitalOcean's go-qemu (build/tests/qmpquery,
 * built from tests/qmp-go), against QEMU and against Ferry.  go-qemu sends
 * requests without a trailing newline, as QMP allows: against QEMU (no KVM
 * needed: -machine none) this shows the client itself works here; against
 * a ferry control socket it shows Ferry reads a JSON stream, not lines.
 */
#include "harness/harness.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define QEMU_BIN "/usr/bin/qemu-system-x86_64"

TestSuite(qmp_client, H_FIXTURES, .timeout = 90);

static const char *qmpquery(void)
{
	const char *e = getenv("FERRY_QMPQUERY");

	return e && *e ? e : "build/tests/qmpquery";
}

/* Start argv with stdout and stderr into dir/LOG; returns the pid. */
static pid_t start_logged(const char *const *argv, const char *log)
{
	pid_t pid = fork();

	h_assert(pid >= 0, "fork: %s", strerror(errno));
	if (pid == 0) {
		int fd = open(h_path(log), O_WRONLY | O_CREAT | O_TRUNC, 0644);
		if (fd >= 0) {
			dup2(fd, 1);
			dup2(fd, 2);
			close(fd);
		}
		execv(argv[0], (char *const *)argv);
		_exit(127);
	}
	return pid;
}

/* Wait up to timeout_s for pid; SIGKILL it after that.  Exit status, or
 * -1 when it had to be killed or died of a signal. */
static int wait_bounded(pid_t pid, double timeout_s)
{
	double dl = h_now() + timeout_s;
	int status;

	for (;;) {
		pid_t r = waitpid(pid, &status, WNOHANG);
		if (r == pid)
			return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
		if (r < 0 || h_now() > dl)
			break;
		h_sleep_ms(20);
	}
	kill(pid, SIGKILL);
	waitpid(pid, &status, 0);
	return -1;
}

/* qmpquery SOCK CMD; *out is its stdout and stderr (malloc'd). */
static int run_qmpquery(const char *sock, const char *cmd, char **out)
{
	const char *argv[] = { qmpquery(), sock, cmd, NULL };
	static unsigned seq;
	char log[32];
	pid_t pid;
	int rc;

	h_assert(access(argv[0], X_OK) == 0,
		 "%s is missing (make builds it from go-qemu)", argv[0]);
	snprintf(log, sizeof(log), "qmpquery%u.out", seq++);
	pid = start_logged(argv, log);
	/* qmpquery gives up by itself after 10 s (exit 3). */
	rc = wait_bounded(pid, 30);
	*out = h_read_file(h_path(log), NULL);
	if (!*out)
		*out = strdup("");
	return rc;
}

Test(qmp_client, go_qemu_drives_qemu_without_kvm)
{
	const char *sock = h_path("qemu.qmp");
	char qmp_opt[PATH_MAX + 32], *out;

	if (access(QEMU_BIN, X_OK) != 0)
		cr_skip_test(QEMU_BIN " is not installed");
	snprintf(qmp_opt, sizeof(qmp_opt), "unix:%s,server=on,wait=off", sock);
	const char *argv[] = { QEMU_BIN, "-machine", "none", "-nodefaults",
			       "-display", "none", "-qmp", qmp_opt, NULL };
	pid_t qemu = start_logged(argv, "qemu.log");

	if (!h_wait_for(access(sock, F_OK) == 0, 20)) {
		wait_bounded(qemu, 0);
		char *log = h_read_file(h_path("qemu.log"), NULL);
		h_fail("QEMU's QMP socket never appeared: %s", log ? log : "");
	}
	int rc = run_qmpquery(sock, "query-status", &out);
	if (rc != 0 || !strstr(out, "\"return\"") ||
	    !strstr(out, "\"status\"")) {
		wait_bounded(qemu, 0);
		h_fail("qmpquery against QEMU: exit %d: %s", rc, out);
	}
	free(out);
	/* quit through the same client, and QEMU ends. */
	rc = run_qmpquery(sock, "quit", &out);
	h_assert(rc == 0, "quit: exit %d: %s", rc, out);
	free(out);
	h_assert(wait_bounded(qemu, 20) == 0, "QEMU did not exit on quit");
}

Test(qmp_client, go_qemu_drives_a_ferry_destination)
{
	/* A destination serves its control socket while it waits for the
	 * source; no guest runs, so this needs no KVM. */
	struct h_vm *dst = h_incoming("dst", H_CONTROL, NULL);
	char *out;

	h_assert(h_wait_for(h_control_alive(dst), 20),
		 "the destination's control socket is not up while it waits");
	int rc = run_qmpquery(dst->control, "query-status", &out);
	h_assert(rc == 0 && strstr(out, "\"status\":\"inmigrate\""),
		 "qmpquery against ferry: exit %d (3: no reply in time): %s",
		 rc, out);
	free(out);
	rc = run_qmpquery(dst->control, "no-such-command", &out);
	h_assert(rc == 1 && strstr(out, "no-such-command has not been found"),
		 "exit %d: %s", rc, out);
	free(out);
	h_vm_stop(dst);
}
