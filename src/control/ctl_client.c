/*
 * ctl_client.c - `ferry ctl`: send one request to a control socket and
 * print the reply, for scripts and tests.
 *
 *   ferry ctl --control /run/vm.sock '{"execute": "query-status"}'
 *   {"return":{"status":"running","running":true,"singlestep":false}}
 *
 * Exit status: 0 "return", 1 "error", 2 anything else (usage, connection,
 * timeout, a reply that is not QMP).
 */
#include "control/control.h"
#include "control/control_proto.h"
#include "util/parse.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define CTL_DEFAULT_TIMEOUT_S 30
/* A reply line bigger than this is not something we asked for. */
#define CTL_REPLY_MAX (16 * 1024 * 1024)

static void ctl_usage(FILE *f)
{
	fprintf(f,
		"usage: ferry ctl --control PATH [--timeout SECONDS] JSON\n"
		"  Send one QMP-style request, e.g. '{\"execute\": \"query-status\"}',\n"
		"  to the control socket at PATH and print the reply on one line.\n"
		"  --timeout  seconds to wait for the reply (default %d, 0: forever)\n"
		"  exit status: 0 reply is a return, 1 reply is an error, 2 other failure\n",
		CTL_DEFAULT_TIMEOUT_S);
}

struct ctl_reader {
	int fd;
	char *buf;
	size_t len, cap;
	int64_t deadline_ms;   /* < 0: none */
};

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/*
 * Read one line into r->buf (NUL-terminated, '\n' stripped).  Bytes after
 * the line stay in the buffer for the next call.  Returns its length, or
 * -ETIMEDOUT, -ECONNRESET (closed before a full line), -EMSGSIZE, -errno.
 */
static ssize_t ctl_read_line(struct ctl_reader *r, size_t *consumed)
{
	for (;;) {
		char *nl = r->len ? memchr(r->buf, '\n', r->len) : NULL;
		if (nl) {
			*nl = '\0';
			*consumed = nl - r->buf + 1;
			return nl - r->buf;
		}
		if (r->len >= CTL_REPLY_MAX)
			return -EMSGSIZE;
		if (r->cap - r->len < 4096) {
			size_t cap = r->cap ? r->cap * 2 : 8192;
			char *p = realloc(r->buf, cap);
			if (!p)
				return -ENOMEM;
			r->buf = p;
			r->cap = cap;
		}
		int timeout = -1;
		if (r->deadline_ms >= 0) {
			int64_t left = r->deadline_ms - now_ms();
			if (left <= 0)
				return -ETIMEDOUT;
			timeout = left > 1000000 ? 1000000 : (int)left;
		}
		struct pollfd pfd = { .fd = r->fd, .events = POLLIN };
		int ret = poll(&pfd, 1, timeout);
		if (ret < 0 && errno != EINTR)
			return -errno;
		if (ret <= 0)
			continue;
		/* Keep room for the NUL written over a '\n' or at the end. */
		ssize_t n = read(r->fd, r->buf + r->len, r->cap - r->len - 1);
		if (n < 0) {
			if (errno == EINTR || errno == EAGAIN)
				continue;
			return -errno;
		}
		if (n == 0)
			return -ECONNRESET;
		r->len += n;
	}
}

static void ctl_consume(struct ctl_reader *r, size_t consumed)
{
	memmove(r->buf, r->buf + consumed, r->len - consumed);
	r->len -= consumed;
}

/* Read the next JSON object line; *out is a new reference. */
static int ctl_read_msg(struct ctl_reader *r, const char *path, json_t **out)
{
	size_t consumed = 0;
	ssize_t n = ctl_read_line(r, &consumed);
	json_error_t jerr;

	if (n < 0) {
		if (n == -ETIMEDOUT)
			fprintf(stderr, "ferry ctl: %s: no reply in time\n",
				path);
		else if (n == -ECONNRESET)
			fprintf(stderr,
				"ferry ctl: %s: connection closed before a reply\n",
				path);
		else
			fprintf(stderr, "ferry ctl: %s: read: %s\n", path,
				strerror((int)-n));
		return (int)n;
	}
	*out = json_loadb(r->buf, n, 0, &jerr);
	ctl_consume(r, consumed);
	if (!*out) {
		fprintf(stderr, "ferry ctl: %s: reply is not JSON: %s\n", path,
			jerr.text);
		return -EPROTO;
	}
	return 0;
}

static int ctl_send_all(int fd, const char *s, size_t len)
{
	while (len) {
		ssize_t n = send(fd, s, len, MSG_NOSIGNAL);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		s += n;
		len -= n;
	}
	return 0;
}

static int ctl_connect(const char *path)
{
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	int fd;

	if (strlen(path) >= sizeof(addr.sun_path)) {
		fprintf(stderr,
			"ferry ctl: control socket path %s is longer than %zu bytes\n",
			path, sizeof(addr.sun_path) - 1);
		return -ENAMETOOLONG;
	}
	memcpy(addr.sun_path, path, strlen(path) + 1);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		int e = errno;
		fprintf(stderr, "ferry ctl: socket: %s\n", strerror(e));
		return -e;
	}
	if (connect(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0) {
		int e = errno;
		fprintf(stderr,
			"ferry ctl: cannot connect to control socket %s: %s\n",
			path, strerror(e));
		close(fd);
		return -e;
	}
	return fd;
}

/* Parse the command line; returns -1 to go on, else an exit status. */
static int ctl_parse_args(int argc, char **argv, const char **path,
			  const char **request, uint64_t *timeout_s)
{
	bool options_done = false;

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *val = NULL;

		if (!options_done && !strcmp(a, "--")) {
			options_done = true;
			continue;
		}
		if (!options_done && (!strcmp(a, "-h") || !strcmp(a, "--help"))) {
			ctl_usage(stdout);
			return 0;
		}
		if (!options_done && (!strcmp(a, "--control") ||
				      !strcmp(a, "--timeout"))) {
			if (i + 1 >= argc) {
				fprintf(stderr, "ferry ctl: %s needs a value\n", a);
				return 2;
			}
			val = argv[++i];
		} else if (!options_done && (!strncmp(a, "--control=", 10) ||
					     !strncmp(a, "--timeout=", 10))) {
			val = a + 10;
		} else if (!options_done && a[0] == '-' && a[1] == '-') {
			fprintf(stderr, "ferry ctl: unknown option %s\n", a);
			ctl_usage(stderr);
			return 2;
		} else {
			if (*request) {
				fprintf(stderr,
					"ferry ctl: expected one JSON request, got another: %s\n",
					a);
				return 2;
			}
			*request = a;
			continue;
		}
		if (!strncmp(a, "--control", 9)) {
			*path = val;
		} else if (parse_uint(val, 24 * 3600, timeout_s) < 0) {
			fprintf(stderr,
				"ferry ctl: --timeout wants whole seconds (0 to 86400), not '%s'\n",
				val);
			return 2;
		}
	}
	if (!*path || !**path) {
		fprintf(stderr, "ferry ctl: --control PATH is required\n");
		ctl_usage(stderr);
		return 2;
	}
	if (!*request) {
		fprintf(stderr, "ferry ctl: no JSON request given\n");
		ctl_usage(stderr);
		return 2;
	}
	return -1;
}

int ctl_main(int argc, char **argv)
{
	const char *path = NULL, *request = NULL;
	uint64_t timeout_s = CTL_DEFAULT_TIMEOUT_S;
	struct ctl_reader r = { .fd = -1 };
	json_t *req = NULL, *msg = NULL;
	json_error_t jerr;
	char *line = NULL;
	int status = 2;

	status = ctl_parse_args(argc, argv, &path, &request, &timeout_s);
	if (status >= 0)
		return status;
	status = 2;

	req = json_loads(request, JSON_REJECT_DUPLICATES, &jerr);
	if (!req) {
		fprintf(stderr, "ferry ctl: request is not valid JSON: %s (column %d)\n",
			jerr.text, jerr.column);
		goto out;
	}
	if (!json_is_object(req)) {
		fprintf(stderr, "ferry ctl: request must be a JSON object\n");
		goto out;
	}
	/* Re-encoded compactly, a request the user wrote over several lines
	 * still goes out as one line. */
	line = json_dumps(req, JSON_COMPACT);
	if (!line) {
		fprintf(stderr, "ferry ctl: out of memory\n");
		goto out;
	}

	r.fd = ctl_connect(path);
	if (r.fd < 0)
		goto out;
	r.deadline_ms = timeout_s ? now_ms() + (int64_t)timeout_s * 1000 : -1;

	if (ctl_read_msg(&r, path, &msg) < 0)
		goto out;
	if (!json_object_get(msg, "QMP")) {
		char *s = json_dumps(msg, JSON_COMPACT);
		fprintf(stderr, "ferry ctl: %s: unexpected greeting: %s\n",
			path, s ? s : "?");
		free(s);
		goto out;
	}
	json_decref(msg);
	msg = NULL;

	int ret = ctl_send_all(r.fd, line, strlen(line));
	if (!ret)
		ret = ctl_send_all(r.fd, "\n", 1);
	if (ret < 0) {
		fprintf(stderr, "ferry ctl: %s: send: %s\n", path,
			strerror(-ret));
		goto out;
	}

	for (;;) {
		if (ctl_read_msg(&r, path, &msg) < 0)
			goto out;
		/* Asynchronous events (QMP "event") are not the answer. */
		if (!json_is_object(msg) || !json_object_get(msg, "event"))
			break;
		json_decref(msg);
		msg = NULL;
	}
	if (json_object_get(msg, "return"))
		status = 0;
	else if (json_object_get(msg, "error"))
		status = 1;
	char *s = json_dumps(msg, JSON_COMPACT | JSON_ENCODE_ANY);
	if (status == 2)
		fprintf(stderr, "ferry ctl: %s: reply is neither return nor error: %s\n",
			path, s ? s : "?");
	else if (s)
		printf("%s\n", s);
	free(s);
	fflush(stdout);
out:
	if (r.fd >= 0)
		close(r.fd);
	free(r.buf);
	free(line);
	json_decref(msg);
	json_decref(req);
	return status;
}
