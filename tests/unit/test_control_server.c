/*
 * Unit tests for the control socket server and `ferry ctl`, with a fake
 * command table instead of a VM: real sockets, real threads, no KVM.
 */
#include <criterion/criterion.h>
#include <criterion/redirect.h>

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <limits.h>
#include <unistd.h>

#include "control/control.h"
#include "control/control_proto.h"

static char dir[64];
static char sock_path[96];
static atomic_int quits;

static int fake_echo(struct control_call *call)
{
	call->ret = json_deep_copy(call->args);
	return 0;
}

static int fake_fail(struct control_call *call)
{
	return err_set(call->err, -EIO, "it failed");
}

static void fake_after_quit(void *opaque)
{
	atomic_fetch_add((atomic_int *)opaque, 1);
}

static int fake_quit(struct control_call *call)
{
	call->after_reply = fake_after_quit;
	return 0;
}

static int fake_status(struct control_call *call)
{
	call->ret = json_pack("{s:s,s:b,s:b}", "status", "running",
			      "running", 1, "singlestep", 0);
	return 0;
}

static const struct control_cmd table[] = {
	{ "qmp_capabilities", control_cmd_qmp_capabilities,
	  CONTROL_ARGS({ "enable", CONTROL_ARG_ARRAY, true }) },
	{ "echo", fake_echo, CONTROL_ARGS({ "v", CONTROL_ARG_ANY, true }) },
	{ "fail", fake_fail, NULL },
	{ "quit", fake_quit, NULL },
	{ "query-status", fake_status, NULL },
	{ NULL, NULL, NULL },
};

static void setup(void)
{
	snprintf(dir, sizeof(dir), "/tmp/ferry-ctl-test-XXXXXX");
	cr_assert_not_null(mkdtemp(dir));
	snprintf(sock_path, sizeof(sock_path), "%s/control.sock", dir);
	atomic_store(&quits, 0);
}

static void teardown(void)
{
	unlink(sock_path);
	rmdir(dir);
}

static struct control *start(void)
{
	struct control *ctl = NULL;
	char err[ERR_MAX] = "";

	cr_assert_eq(control_server_start(&ctl, sock_path, table, &quits, err),
		     0, "start: %s", err);
	return ctl;
}

static int connect_to(const char *path)
{
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	struct timeval tv = { .tv_sec = 5 };
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);

	cr_assert_geq(fd, 0);
	snprintf(addr.sun_path, sizeof(addr.sun_path), "%s", path);
	cr_assert_eq(connect(fd, (struct sockaddr *)&addr, sizeof(addr)), 0,
		     "connect %s: %s", path, strerror(errno));
	/* A broken server fails the test instead of hanging it. */
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	return fd;
}

/* Read one line (byte at a time: simple, and leaves the rest unread). */
static json_t *read_msg(int fd)
{
	char line[4096];
	size_t n = 0;

	for (;;) {
		char ch;
		ssize_t r = read(fd, &ch, 1);
		cr_assert_eq(r, 1, "read: %s", r < 0 ? strerror(errno) : "EOF");
		if (ch == '\n')
			break;
		cr_assert_lt(n, sizeof(line) - 1);
		line[n++] = ch;
	}
	line[n] = '\0';
	json_error_t jerr;
	json_t *msg = json_loads(line, 0, &jerr);
	cr_assert_not_null(msg, "bad line '%s': %s", line, jerr.text);
	return msg;
}

static void send_str(int fd, const char *s)
{
	cr_assert_eq(write(fd, s, strlen(s)), (ssize_t)strlen(s));
}

static int connect_greeted(const char *path)
{
	int fd = connect_to(path);
	json_t *g = read_msg(fd);

	cr_assert_not_null(json_object_get(g, "QMP"));
	json_decref(g);
	return fd;
}

static const char *err_desc(json_t *reply)
{
	return json_string_value(json_object_get(
		json_object_get(reply, "error"), "desc"));
}

TestSuite(control_server, .init = setup, .fini = teardown, .timeout = 30);

Test(control_server, greeting_commands_and_errors)
{
	struct control *ctl = start();
	int fd = connect_to(sock_path);
	json_t *m = read_msg(fd);
	json_t *want = json_pack("{s:{s:{s:s},s:[]}}", "QMP", "version",
				 "ferry", "0.1", "capabilities");

	cr_assert(json_equal(m, want));
	json_decref(want);
	json_decref(m);

	/* Several requests in one write, then garbage, then more work. */
	send_str(fd, "{\"execute\":\"qmp_capabilities\",\"id\":1}\n"
		     "{\"execute\":\"echo\",\"arguments\":{\"v\":[1,2]},\"id\":\"two\"}\n");
	m = read_msg(fd);
	cr_assert(json_is_object(json_object_get(m, "return")));
	cr_assert_eq(json_integer_value(json_object_get(m, "id")), 1);
	json_decref(m);
	m = read_msg(fd);
	want = json_pack("{s:{s:[i,i]},s:s}", "return", "v", 1, 2, "id", "two");
	cr_assert(json_equal(m, want));
	json_decref(want);
	json_decref(m);

	send_str(fd, "this is not json\n\n   \n{\"execute\":\"fail\"}\r\n"
		     "{\"execute\":\"nope\"}\n");
	m = read_msg(fd);
	cr_assert(strstr(err_desc(m), "JSON parse error"));
	json_decref(m);
	m = read_msg(fd);   /* blank lines get no reply */
	cr_assert_str_eq(err_desc(m), "it failed");
	json_decref(m);
	m = read_msg(fd);
	cr_assert_str_eq(json_string_value(json_object_get(
		json_object_get(m, "error"), "class")), "CommandNotFound");
	json_decref(m);

	close(fd);
	control_stop(ctl);
}

Test(control_server, socket_mode_and_removal)
{
	struct control *ctl = start();
	struct stat st;

	cr_assert_eq(lstat(sock_path, &st), 0);
	cr_assert(S_ISSOCK(st.st_mode));
	cr_assert_eq(st.st_mode & 0777, 0600, "mode %o", st.st_mode & 0777);
	control_stop(ctl);
	cr_assert_eq(lstat(sock_path, &st), -1);
	cr_assert_eq(errno, ENOENT);
	control_stop(NULL);
}

Test(control_server, several_clients_at_once)
{
	struct control *ctl = start();
	int fds[4];

	for (int i = 0; i < 4; i++)
		fds[i] = connect_greeted(sock_path);
	/* Interleave: a half-sent request on one must not block another. */
	send_str(fds[0], "{\"execute\":\"echo\",");
	for (int i = 3; i >= 1; i--) {
		char req[128];
		snprintf(req, sizeof(req),
			 "{\"execute\":\"echo\",\"arguments\":{\"v\":%d}}\n", i);
		send_str(fds[i], req);
		json_t *m = read_msg(fds[i]);
		cr_assert_eq(json_integer_value(json_object_get(
			json_object_get(m, "return"), "v")), i);
		json_decref(m);
	}
	send_str(fds[0], "\"id\":0}\n");
	json_t *m = read_msg(fds[0]);
	cr_assert_eq(json_integer_value(json_object_get(m, "id")), 0);
	json_decref(m);
	/* Leave them open: stop must close them. */
	control_stop(ctl);
	for (int i = 0; i < 4; i++) {
		char ch;
		cr_assert_eq(read(fds[i], &ch, 1), 0);
		close(fds[i]);
	}
}

Test(control_server, too_many_clients_are_told_so)
{
	struct control *ctl = start();
	int fds[CONTROL_MAX_CLIENTS];

	for (int i = 0; i < CONTROL_MAX_CLIENTS; i++)
		fds[i] = connect_greeted(sock_path);
	int extra = connect_to(sock_path);
	json_t *m = read_msg(extra);
	cr_assert_str_eq(err_desc(m),
			 "too many control connections (16 are open); try again later");
	json_decref(m);
	close(extra);
	for (int i = 0; i < CONTROL_MAX_CLIENTS; i++)
		close(fds[i]);
	control_stop(ctl);
}

Test(control_server, overlong_line_is_dropped_and_connection_survives)
{
	struct control *ctl = start();
	int fd = connect_greeted(sock_path);
	size_t big = CONTROL_MSG_MAX + 1000;
	char *junk = malloc(big);

	memset(junk, 'x', big);
	cr_assert_eq(write(fd, junk, big), (ssize_t)big);
	free(junk);
	json_t *m = read_msg(fd);
	cr_assert(strstr(err_desc(m), "longer than"), "%s", err_desc(m));
	json_decref(m);
	send_str(fd, "still junk\n{\"execute\":\"echo\",\"id\":9}\n");
	m = read_msg(fd);
	cr_assert_eq(json_integer_value(json_object_get(m, "id")), 9);
	cr_assert_not_null(json_object_get(m, "return"));
	json_decref(m);
	close(fd);
	control_stop(ctl);
}

Test(control_server, max_length_line_is_accepted)
{
	struct control *ctl = start();
	int fd = connect_greeted(sock_path);
	const char *head = "{\"execute\":\"echo\",\"arguments\":{\"v\":\"";
	const char *tail = "\"}}\n";
	size_t n = CONTROL_MSG_MAX + 1;   /* with the '\n' */
	char *line = malloc(n + 1);

	size_t pad = n - strlen(head) - strlen(tail);
	memcpy(line, head, strlen(head));
	memset(line + strlen(head), 'a', pad);
	strcpy(line + strlen(head) + pad, tail);
	cr_assert_eq(strlen(line), n);
	cr_assert_eq(write(fd, line, n), (ssize_t)n);
	free(line);

	/* The echo is longer than read_msg's buffer: check it by size. */
	size_t got = 0;
	char ch;
	while (read(fd, &ch, 1) == 1 && ch != '\n')
		got++;
	cr_assert_gt(got, pad);
	close(fd);
	control_stop(ctl);
}

Test(control_server, half_closed_client_still_gets_replies)
{
	struct control *ctl = start();
	int fd = connect_greeted(sock_path);

	/* Like `echo ... | socat - UNIX:...`: last line without '\n'. */
	send_str(fd, "{\"execute\":\"echo\",\"id\":1}\n{\"execute\":\"echo\",\"id\":2}");
	shutdown(fd, SHUT_WR);
	for (int id = 1; id <= 2; id++) {
		json_t *m = read_msg(fd);
		cr_assert_eq(json_integer_value(json_object_get(m, "id")), id);
		json_decref(m);
	}
	char ch;
	cr_assert_eq(read(fd, &ch, 1), 0);   /* then the server hangs up */
	close(fd);
	control_stop(ctl);
}

Test(control_server, after_reply_runs_after_reply)
{
	struct control *ctl = start();
	int fd = connect_greeted(sock_path);

	send_str(fd, "{\"execute\":\"quit\"}\n");
	json_t *m = read_msg(fd);
	cr_assert_not_null(json_object_get(m, "return"));
	json_decref(m);
	/* The reply arrived; the follow-up has run (or is about to). */
	for (int i = 0; i < 500 && !atomic_load(&quits); i++)
		usleep(10000);
	cr_assert_eq(atomic_load(&quits), 1);

	send_str(fd, "{\"execute\":\"fail\"}\n");
	m = read_msg(fd);
	json_decref(m);
	cr_assert_eq(atomic_load(&quits), 1);
	close(fd);
	control_stop(ctl);
}

Test(control_server, stale_socket_is_replaced)
{
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);

	/* Bound but never listening, then abandoned: what a crash leaves. */
	snprintf(addr.sun_path, sizeof(addr.sun_path), "%s", sock_path);
	cr_assert_eq(bind(fd, (struct sockaddr *)&addr, sizeof(addr)), 0);
	close(fd);

	struct control *ctl = start();
	fd = connect_greeted(sock_path);
	close(fd);
	control_stop(ctl);
}

Test(control_server, live_socket_and_non_socket_are_refused)
{
	struct control *ctl = start(), *other = NULL;
	char err[ERR_MAX] = "";

	cr_assert_eq(control_server_start(&other, sock_path, table, NULL, err),
		     -EADDRINUSE);
	cr_assert_null(other);
	cr_assert(strstr(err, "another process is listening"), "%s", err);
	/* The first one still works. */
	int fd = connect_greeted(sock_path);
	close(fd);
	control_stop(ctl);

	FILE *f = fopen(sock_path, "w");
	cr_assert_not_null(f);
	fclose(f);
	cr_assert_eq(control_server_start(&other, sock_path, table, NULL, err),
		     -EEXIST);
	cr_assert(strstr(err, "not a socket"), "%s", err);
	struct stat st;
	cr_assert_eq(stat(sock_path, &st), 0, "the file must be left alone");
}

Test(control_server, bad_paths)
{
	struct control *ctl = NULL;
	char err[ERR_MAX] = "";
	char longpath[200];

	memset(longpath, 'a', sizeof(longpath) - 1);
	longpath[sizeof(longpath) - 1] = '\0';
	cr_assert_eq(control_server_start(&ctl, longpath, table, NULL, err),
		     -ENAMETOOLONG);
	cr_assert_eq(control_server_start(&ctl, "/nonexistent-dir/x.sock",
					  table, NULL, err), -ENOENT);
	cr_assert(strstr(err, "/nonexistent-dir/x.sock"), "%s", err);
	cr_assert_null(ctl);
}

Test(control_server, requests_without_newlines)
{
	struct control *ctl = start();
	int fd = connect_greeted(sock_path);
	json_t *m;

	/* What go-qemu sends: no newline after the object. */
	send_str(fd, "{\"execute\":\"echo\",\"id\":1}");
	m = read_msg(fd);
	cr_assert_eq(json_integer_value(json_object_get(m, "id")), 1);
	cr_assert_not_null(json_object_get(m, "return"));
	json_decref(m);

	/* Two objects in one write, nothing between them. */
	send_str(fd, "{\"execute\":\"echo\",\"id\":2}{\"execute\":\"echo\",\"id\":3}");
	for (int id = 2; id <= 3; id++) {
		m = read_msg(fd);
		cr_assert_eq(json_integer_value(json_object_get(m, "id")), id);
		json_decref(m);
	}
	close(fd);
	control_stop(ctl);
}

Test(control_server, one_object_byte_by_byte)
{
	struct control *ctl = start();
	int fd = connect_greeted(sock_path);
	const char *req = "{\"execute\":\"echo\",\"arguments\":{\"v\":\"}{\\\"\"},\"id\":7}";
	size_t n = strlen(req);
	char ch;

	for (size_t i = 0; i < n; i++) {
		cr_assert_eq(write(fd, req + i, 1), 1);
		usleep(2000);   /* so that the server sees separate reads */
		if (i + 1 < n)
			cr_assert_eq(recv(fd, &ch, 1, MSG_DONTWAIT), -1,
				     "a reply before the object was complete (byte %zu)",
				     i);
	}
	json_t *m = read_msg(fd);
	cr_assert_eq(json_integer_value(json_object_get(m, "id")), 7);
	cr_assert_str_eq(json_string_value(json_object_get(
		json_object_get(m, "return"), "v")), "}{\"");
	json_decref(m);
	close(fd);
	control_stop(ctl);
}

Test(control_server, empty_first_line_is_harmless)
{
	struct control *ctl = start();
	int fd = connect_greeted(sock_path);

	/* Issue 11: this aborted the sanitizer build (memcpy into NULL). */
	send_str(fd, "\n");
	send_str(fd, "\r\n\n{\"execute\":\"echo\",\"id\":1}\n");
	json_t *m = read_msg(fd);
	cr_assert_eq(json_integer_value(json_object_get(m, "id")), 1);
	json_decref(m);
	close(fd);
	control_stop(ctl);
}

Test(control_server, malformed_input_gets_a_qmp_error_then_resyncs)
{
	struct control *ctl = start();
	int fd = connect_greeted(sock_path);

	send_str(fd, "{\"execute\": \"echo\", \xff{\"execute\":\"echo\",\"id\":5}");
	json_t *m = read_msg(fd);
	cr_assert_str_eq(json_string_value(json_object_get(
		json_object_get(m, "error"), "class")), "GenericError");
	cr_assert_str_eq(err_desc(m), "JSON parse error: invalid byte 0xff");
	cr_assert_null(json_object_get(m, "id"));
	json_decref(m);
	m = read_msg(fd);
	cr_assert_eq(json_integer_value(json_object_get(m, "id")), 5);
	cr_assert_not_null(json_object_get(m, "return"));
	json_decref(m);
	close(fd);
	control_stop(ctl);
}

Test(control_server, idle_clients_are_dropped_and_free_their_slot)
{
	setenv("FERRY_CONTROL_IDLE_TIMEOUT", "0.4", 1);
	struct control *ctl = start();
	int fds[CONTROL_MAX_CLIENTS];

	for (int i = 0; i < CONTROL_MAX_CLIENTS; i++)
		fds[i] = connect_greeted(sock_path);
	/* fds[0] stays busy; the others say nothing. */
	for (int k = 0; k < 8; k++) {
		usleep(100000);
		send_str(fds[0], "{\"execute\":\"echo\"}");
		json_t *m = read_msg(fds[0]);
		cr_assert_not_null(json_object_get(m, "return"),
				   "the busy client was dropped");
		json_decref(m);
	}
	for (int i = 1; i < CONTROL_MAX_CLIENTS; i++) {
		json_t *m = read_msg(fds[i]);
		char ch;

		cr_assert_str_eq(err_desc(m),
				 "closing the connection: idle for 400 ms");
		json_decref(m);
		cr_assert_eq(read(fds[i], &ch, 1), 0);
		close(fds[i]);
	}
	/* Their slots are free again. */
	int fd = connect_greeted(sock_path);
	close(fd);
	close(fds[0]);
	control_stop(ctl);
}

Test(control_server, idle_timeout_zero_means_never)
{
	setenv("FERRY_CONTROL_IDLE_TIMEOUT", "0", 1);
	struct control *ctl = start();
	int fd = connect_greeted(sock_path);
	char ch;

	usleep(300000);
	cr_assert_eq(recv(fd, &ch, 1, MSG_DONTWAIT), -1);
	cr_assert_eq(errno, EAGAIN);
	close(fd);
	control_stop(ctl);
}

Test(control_server, bad_idle_timeout_keeps_the_default)
{
	setenv("FERRY_CONTROL_IDLE_TIMEOUT", "soon", 1);
	cr_redirect_stderr();
	struct control *ctl = start();
	int fd = connect_greeted(sock_path);
	close(fd);
	control_stop(ctl);
	fflush(stderr);
	cr_assert_stderr_eq_str(
		"ferry: warning: control socket: FERRY_CONTROL_IDLE_TIMEOUT='soon' is not a number of seconds (0 to 2592000); using 600\n");
}

/* ---- a real QMP client: go-qemu ------------------------------------------ */

/* build/tests/qmpquery, next to this binary (FERRY_QMPQUERY overrides). */
static const char *qmpquery_path(void)
{
	static char path[PATH_MAX];
	const char *e = getenv("FERRY_QMPQUERY");
	ssize_t n;

	if (e && *e)
		return e;
	n = readlink("/proc/self/exe", path, sizeof(path) - 16);
	cr_assert_gt(n, 0);
	path[n] = '\0';
	strcpy(strrchr(path, '/') + 1, "qmpquery");
	return path;
}

/* Run qmpquery SOCK [CMD]; its stdout into out, exit status returned. */
static int run_qmpquery(const char *cmd, char *out, size_t outsz)
{
	const char *bin = qmpquery_path();
	int pfd[2], status;
	size_t n = 0;
	pid_t pid;

	cr_assert_eq(access(bin, X_OK), 0,
		     "%s is missing (make builds it from go-qemu)", bin);
	cr_assert_eq(pipe(pfd), 0);
	pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		dup2(pfd[1], 1);
		close(pfd[0]);
		close(pfd[1]);
		execl(bin, bin, sock_path, cmd, (char *)NULL);
		_exit(127);
	}
	close(pfd[1]);
	for (;;) {
		ssize_t r = read(pfd[0], out + n, outsz - 1 - n);
		if (r <= 0)
			break;
		n += r;
	}
	out[n] = '\0';
	close(pfd[0]);
	cr_assert_eq(waitpid(pid, &status, 0), pid);
	cr_assert(WIFEXITED(status), "qmpquery died: status %d", status);
	return WEXITSTATUS(status);
}

Test(control_server, go_qemu_client_gets_its_replies)
{
	struct control *ctl = start();
	char out[1024];

	/* go-qemu sends qmp_capabilities with a newline (json.Encoder), then
	 * query-status without one: a line-based server never answers and
	 * qmpquery exits 3 after its timeout. */
	cr_assert_eq(run_qmpquery("query-status", out, sizeof(out)), 0,
		     "qmpquery: %s", out);
	cr_assert_str_eq(out,
		"{\"return\":{\"status\":\"running\",\"running\":true,\"singlestep\":false}}\n");
	/* An error reply comes back as go-qemu's error. */
	cr_assert_eq(run_qmpquery("nope", out, sizeof(out)), 1, "%s", out);
	cr_assert_str_eq(out, "error: The command nope has not been found\n");
	control_stop(ctl);
}

/* ---- ferry ctl ------------------------------------------------------------ */

static int ctl(const char *a1, const char *a2, const char *a3)
{
	char *argv[] = { "ctl", (char *)a1, (char *)a2, (char *)a3, NULL };
	int argc = 1 + !!a1 + !!a2 + !!a3;

	return ctl_main(argc, argv);
}

/* ferry ctl --control SOCK ARGS... (NULL-terminated). */
static int ctl_sock(const char *first, ...)
{
	char *argv[16] = { "ctl", "--control", sock_path };
	int argc = 3;
	va_list ap;

	va_start(ap, first);
	for (const char *a = first; a; a = va_arg(ap, const char *)) {
		cr_assert_lt(argc, 15);
		argv[argc++] = (char *)a;
	}
	va_end(ap);
	argv[argc] = NULL;
	return ctl_main(argc, argv);
}

TestSuite(ctl_client, .init = setup, .fini = teardown, .timeout = 30);

Test(ctl_client, return_error_and_usage_statuses)
{
	struct control *c = start();
	char opt[160];

	cr_redirect_stdout();
	cr_redirect_stderr();
	cr_assert_eq(ctl("--control", sock_path,
			 "{\n \"execute\": \"echo\",\n \"arguments\": {\"v\": 3}\n}"), 0);
	snprintf(opt, sizeof(opt), "--control=%s", sock_path);
	cr_assert_eq(ctl(opt, "{\"execute\": \"fail\", \"id\": 4}", NULL), 1);
	cr_assert_eq(ctl(opt, "{\"execute\": \"nope\"}", NULL), 1);
	/* Options may follow a JSON request. */
	cr_assert_eq(ctl("{\"execute\": \"echo\"}", opt, NULL), 0);
	/* Malformed locally: never sent. */
	cr_assert_eq(ctl(opt, "{\"execute\": ", NULL), 2);
	cr_assert_eq(ctl(opt, "[1]", NULL), 2);
	cr_assert_eq(ctl(opt, NULL, NULL), 2);
	cr_assert_eq(ctl("{\"execute\": \"echo\"}", NULL, NULL), 2);
	cr_assert_eq(ctl(opt, "--bogus", "{}"), 2);
	control_stop(c);
	fflush(stdout);
	cr_assert_stdout_eq_str(
		"{\"return\":{\"v\":3}}\n"
		"{\"error\":{\"class\":\"GenericError\",\"desc\":\"it failed\"},\"id\":4}\n"
		"{\"error\":{\"class\":\"CommandNotFound\",\"desc\":\"The command nope has not been found\"}}\n"
		"{\"return\":{}}\n");
}

Test(ctl_client, connect_error_names_path)
{
	cr_redirect_stderr();
	cr_assert_eq(ctl("--control", sock_path, "{\"execute\": \"echo\"}"), 2);
	fflush(stderr);
	char want[256];
	snprintf(want, sizeof(want),
		 "ferry ctl: cannot connect to control socket %s: No such file or directory\n",
		 sock_path);
	cr_assert_stderr_eq_str(want);
}

Test(ctl_client, bare_command_and_typed_arguments)
{
	struct control *c = start();

	cr_redirect_stdout();
	cr_redirect_stderr();
	cr_assert_eq(ctl_sock("echo", NULL), 0);
	cr_assert_eq(ctl_sock("echo", "v=3", NULL), 0);
	cr_assert_eq(ctl_sock("echo", "v=-2.5", NULL), 0);
	cr_assert_eq(ctl_sock("echo", "v=true", NULL), 0);
	cr_assert_eq(ctl_sock("echo", "v=false", NULL), 0);
	cr_assert_eq(ctl_sock("echo", "v=null", NULL), 0);
	cr_assert_eq(ctl_sock("echo", "v=tcp:127.0.0.1:4444", NULL), 0);
	cr_assert_eq(ctl_sock("echo", "v=\"42\"", NULL), 0);
	cr_assert_eq(ctl_sock("echo", "v=[1,{\"a\":2}]", NULL), 0);
	cr_assert_eq(ctl_sock("echo", "v=", NULL), 0);
	cr_assert_eq(ctl_sock("echo", "v=--x", NULL), 0);
	/* The server's own checks still apply. */
	cr_assert_eq(ctl_sock("echo", "w=1", NULL), 1);
	cr_assert_eq(ctl_sock("nope", NULL), 1);
	/* Local mistakes: never sent. */
	cr_assert_eq(ctl_sock("echo", "v", NULL), 2);
	cr_assert_eq(ctl_sock("echo", "=1", NULL), 2);
	cr_assert_eq(ctl_sock("echo", "v=1", "v=2", NULL), 2);
	cr_assert_eq(ctl_sock("v=1", NULL), 2);
	cr_assert_eq(ctl_sock("{\"execute\":\"echo\"}", "v=1", NULL), 2);
	control_stop(c);
	fflush(stdout);
	cr_assert_stdout_eq_str(
		"{\"return\":{}}\n"
		"{\"return\":{\"v\":3}}\n"
		"{\"return\":{\"v\":-2.5}}\n"
		"{\"return\":{\"v\":true}}\n"
		"{\"return\":{\"v\":false}}\n"
		"{\"return\":{\"v\":null}}\n"
		"{\"return\":{\"v\":\"tcp:127.0.0.1:4444\"}}\n"
		"{\"return\":{\"v\":\"42\"}}\n"
		"{\"return\":{\"v\":[1,{\"a\":2}]}}\n"
		"{\"return\":{\"v\":\"\"}}\n"
		"{\"return\":{\"v\":\"--x\"}}\n"
		"{\"error\":{\"class\":\"GenericError\",\"desc\":\"Parameter 'w' is unexpected\"}}\n"
		"{\"error\":{\"class\":\"CommandNotFound\",\"desc\":\"The command nope has not been found\"}}\n");
}

Test(ctl_client, request_on_standard_input)
{
	struct control *c = start();
	FILE *in = cr_get_redirected_stdin();

	cr_redirect_stdout();
	fputs("{\n  \"execute\": \"echo\",\n  \"arguments\": {\"v\": \"from stdin\"},\n  \"id\": 3\n}\n", in);
	fclose(in);
	cr_assert_eq(ctl_sock("-", NULL), 0);
	control_stop(c);
	fflush(stdout);
	cr_assert_stdout_eq_str(
		"{\"return\":{\"v\":\"from stdin\"},\"id\":3}\n");
}

Test(ctl_client, bad_standard_input_is_a_usage_error)
{
	struct control *c = start();
	FILE *in = cr_get_redirected_stdin();

	cr_redirect_stderr();
	fputs("{\"execute\": ", in);
	fclose(in);
	cr_assert_eq(ctl_sock("-", NULL), 2);
	control_stop(c);
	fflush(stderr);
	cr_assert_stderr_eq_str(
		"ferry ctl: standard input is not valid JSON: unexpected token near end of file (line 1, column 12)\n");
}

Test(ctl_client, refused_connection_is_shown_as_a_qmp_error)
{
	struct control *c = start();
	int fds[CONTROL_MAX_CLIENTS];

	for (int i = 0; i < CONTROL_MAX_CLIENTS; i++)
		fds[i] = connect_greeted(sock_path);
	cr_redirect_stdout();
	cr_redirect_stderr();
	cr_assert_eq(ctl_sock("echo", NULL), 1);
	for (int i = 0; i < CONTROL_MAX_CLIENTS; i++)
		close(fds[i]);
	control_stop(c);
	fflush(stdout);
	cr_assert_stdout_eq_str(
		"{\"error\":{\"class\":\"GenericError\",\"desc\":\"too many control connections (16 are open); try again later\"}}\n");
}

/* A hand-written server that ends nothing with a newline: the client reads
 * replies as a JSON stream too. */
static void *newline_free_server(void *arg)
{
	int lfd = *(int *)arg, fd = accept(lfd, NULL, NULL);
	char buf[512];
	const char *g = "{\"QMP\":{\"version\":{},\"capabilities\":[]}}";
	const char *r = "  {\"event\":\"X\"}{\"return\":{\"ok\":1}}";

	if (fd < 0)
		return NULL;
	(void)!write(fd, g, strlen(g));
	(void)!read(fd, buf, sizeof(buf));   /* the request */
	(void)!write(fd, r, strlen(r));
	(void)!read(fd, buf, sizeof(buf));   /* until the client hangs up */
	close(fd);
	return NULL;
}

Test(ctl_client, replies_without_newlines_are_read)
{
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	int lfd = socket(AF_UNIX, SOCK_STREAM, 0);
	pthread_t t;

	snprintf(addr.sun_path, sizeof(addr.sun_path), "%s", sock_path);
	cr_assert_eq(bind(lfd, (struct sockaddr *)&addr, sizeof(addr)), 0);
	cr_assert_eq(listen(lfd, 1), 0);
	cr_assert_eq(pthread_create(&t, NULL, newline_free_server, &lfd), 0);
	cr_redirect_stdout();
	cr_assert_eq(ctl_sock("anything", NULL), 0);
	pthread_join(t, NULL);
	close(lfd);
	fflush(stdout);
	/* The event before the reply is skipped. */
	cr_assert_stdout_eq_str("{\"return\":{\"ok\":1}}\n");
}
