/*
 * The control socket of a real ferry process as a byte stream: a
 * destination waiting for a migration serves it without a guest, so these
 * run without KVM.  Raw requests without newlines, split, joined; `ferry
 * ctl`'s request forms; a client over the limit; an idle client.
 */
#include "harness/harness.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

TestSuite(control_stream, H_FIXTURES, .timeout = 90);

/* A destination whose control socket is up (it answers "inmigrate"). */
static struct h_vm *waiting_dst(void)
{
	struct h_vm *dst = h_incoming("dst", H_CONTROL, NULL);

	h_assert(h_wait_for(h_control_alive(dst), 20),
		 "the destination's control socket is not up while it waits");
	return dst;
}

static int raw_connect(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct timeval tv = { .tv_sec = 10 };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	h_assert(fd >= 0, "socket");
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	h_assert(connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0,
		 "connect %s: %s", path, strerror(errno));
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	return fd;
}

/* One reply line, parsed (the server ends each with '\n'). */
static json_t *raw_reply(int fd)
{
	char line[4096];
	size_t n = 0;
	char ch;

	while (read(fd, &ch, 1) == 1 && ch != '\n' && n < sizeof(line) - 1)
		line[n++] = ch;
	line[n] = '\0';
	json_t *m = json_loads(line, 0, NULL);
	h_assert(m, "reply is not one JSON line: '%s'", line);
	return m;
}

static void raw_send(int fd, const char *s, size_t n)
{
	h_assert(write(fd, s, n) == (ssize_t)n, "write: %s", strerror(errno));
}

static const char *status_of(json_t *reply)
{
	return json_string_value(json_object_get(
		json_object_get(reply, "return"), "status"));
}

static const char *desc_of(json_t *reply)
{
	return json_string_value(json_object_get(
		json_object_get(reply, "error"), "desc"));
}

Test(control_stream, raw_requests_without_newlines_split_and_joined)
{
	struct h_vm *dst = waiting_dst();
	int fd = raw_connect(dst->control);
	json_t *m = raw_reply(fd);   /* greeting */
	h_assert(json_object_get(m, "QMP"), "no greeting");
	json_decref(m);

	/* Issue 11: an empty first line used to abort the sanitizer build. */
	raw_send(fd, "\n", 1);
	/* No trailing newline. */
	const char *q = "{\"execute\":\"query-status\"}";
	raw_send(fd, q, strlen(q));
	m = raw_reply(fd);
	h_assert(status_of(m) && !strcmp(status_of(m), "inmigrate"),
		 "query-status did not answer inmigrate");
	json_decref(m);
	/* Two in one write. */
	const char *two = "{\"execute\":\"query-status\",\"id\":1}"
			  "{\"execute\":\"query-status\",\"id\":2}";
	raw_send(fd, two, strlen(two));
	for (int id = 1; id <= 2; id++) {
		m = raw_reply(fd);
		h_assert(json_integer_value(json_object_get(m, "id")) == id,
			 "reply %d out of order", id);
		json_decref(m);
	}
	/* Byte by byte. */
	for (size_t i = 0; i < strlen(q); i++) {
		raw_send(fd, q + i, 1);
		h_sleep_ms(2);
	}
	m = raw_reply(fd);
	h_assert(status_of(m), "byte by byte: no status");
	json_decref(m);
	/* Garbage gets one QMP error; the stream goes on. */
	raw_send(fd, "hello\n", 6);
	m = raw_reply(fd);
	h_assert(desc_of(m) && strstr(desc_of(m), "JSON parse error"),
		 "no parse error for garbage");
	json_decref(m);
	raw_send(fd, q, strlen(q));
	m = raw_reply(fd);
	h_assert(status_of(m), "no reply after garbage");
	json_decref(m);
	close(fd);
	h_vm_stop(dst);
}

Test(control_stream, ferry_ctl_request_forms)
{
	struct h_vm *dst = waiting_dst();
	char *out = NULL, *err = NULL;

	int rc = h_run(20, &out, &err, "ctl", "--control", dst->control,
		       "query-status", NULL);
	h_assert(rc == 0 && strstr(out, "\"status\":\"inmigrate\""),
		 "bare command: exit %d: %s %s", rc, out, err);
	free(out);
	free(err);
	rc = h_run(20, &out, &err, "ctl", "--control", dst->control,
		   "query-status", "bogus=1", NULL);
	h_assert(rc == 1 && strstr(out, "Parameter 'bogus' is unexpected"),
		 "key=value: exit %d: %s %s", rc, out, err);
	free(out);
	free(err);
	rc = h_run(20, &out, &err, "ctl", "--control", dst->control,
		   "{\"execute\": \"query-status\"}", NULL);
	h_assert(rc == 0 && strstr(out, "inmigrate"), "JSON: exit %d: %s %s",
		 rc, out, err);
	free(out);
	free(err);
	h_vm_stop(dst);
}

Test(control_stream, refused_client_gets_a_qmp_error_and_ferry_ctl_shows_it)
{
	struct h_vm *dst = waiting_dst();
	int fds[16];

	for (int i = 0; i < 16; i++) {
		fds[i] = raw_connect(dst->control);
		json_decref(raw_reply(fds[i]));
	}
	char *out = NULL, *err = NULL;
	int rc = h_run(20, &out, &err, "ctl", "--control", dst->control,
		       "query-status", NULL);
	h_assert(rc == 1 &&
		 strstr(out, "{\"error\":{\"class\":\"GenericError\",\"desc\":\"too many control connections"),
		 "exit %d: %s %s", rc, out, err);
	free(out);
	free(err);
	for (int i = 0; i < 16; i++)
		close(fds[i]);
	h_vm_stop(dst);
}

Test(control_stream, idle_client_is_told_and_dropped)
{
	setenv("FERRY_CONTROL_IDLE_TIMEOUT", "0.5", 1);
	struct h_vm *dst = waiting_dst();
	int fd = raw_connect(dst->control);
	json_decref(raw_reply(fd));   /* greeting */

	double t0 = h_now();
	json_t *m = raw_reply(fd);
	h_assert(desc_of(m) && !strcmp(desc_of(m),
				       "closing the connection: idle for 500 ms"),
		 "no idle error");
	h_assert(h_now() - t0 < 5, "dropped too late");
	json_decref(m);
	char ch;
	h_assert(read(fd, &ch, 1) == 0, "still connected");
	close(fd);
	h_vm_stop(dst);
}
