/*
 * control_client.c - connect to a control socket and exchange requests and
 * replies with it: JSON objects, each request sent on a line of its own.
 */
#include "control/control_client.h"
#include "util/clock.h"

#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

/* A reply bigger than this is not something we asked for. */
#define CTL_REPLY_MAX (16 * 1024 * 1024)

struct got {
	struct ctl_conn *c;
	json_t *msg;
	char *err;
	int ret;
};

/* The splitter's callback: take the first message and stop. */
static int got_msg(void *opaque, const char *text, size_t len,
		   const char *error)
{
	struct got *g = opaque;
	json_error_t jerr;

	if (error) {
		g->ret = err_set(g->err, -EPROTO, "%s: reply is not JSON: %s",
				 g->c->path, error);
		return 1;
	}
	g->msg = json_loadb(text, len, 0, &jerr);
	if (!g->msg)
		g->ret = err_set(g->err, -EPROTO, "%s: reply is not JSON: %s",
				 g->c->path, jerr.text);
	return 1;
}

/* Feed what was read and not yet split; 1 when a message came out. */
static int split_pending(struct ctl_conn *c, struct got *g)
{
	size_t used = 0;
	int ret;

	if (!c->len)
		return 0;    /* c->buf may still be NULL: no memmove on it */
	ret = control_stream_feed(&c->in, c->buf, c->len, got_msg, g, &used);
	if (ret < 0)
		return err_set(g->err, ret, "%s: %s", c->path, strerror(-ret));
	memmove(c->buf, c->buf + used, c->len - used);
	c->len -= used;
	return ret;
}

/*
 * Read the next JSON message; *out is a new reference.  Replies are split
 * as a stream, like requests on the server side, so a peer that ends its
 * replies without a newline is understood too.
 */
static int read_msg(struct ctl_conn *c, int64_t deadline_ms, json_t **out,
		    char *err)
{
	struct got g = { .c = c, .err = err };
	int ret;

	*out = NULL;
	for (;;) {
		ret = split_pending(c, &g);
		if (ret)
			break;
		if (c->cap - c->len < 4096) {
			size_t cap = c->cap ? c->cap * 2 : 8192;
			char *p = realloc(c->buf, cap);
			if (!p)
				return err_set(err, -ENOMEM, "out of memory");
			c->buf = p;
			c->cap = cap;
		}
		int timeout = -1;
		if (deadline_ms >= 0) {
			int64_t left = deadline_ms - clock_mono_ms();
			if (left <= 0)
				return err_set(err, -ETIMEDOUT,
					       "%s: no reply in time", c->path);
			timeout = left > 1000000 ? 1000000 : (int)left;
		}
		struct pollfd pfd = { .fd = c->fd, .events = POLLIN };
		ret = poll(&pfd, 1, timeout);
		if (ret < 0 && errno != EINTR)
			return err_set(err, -errno, "%s: poll: %s", c->path,
				       strerror(errno));
		if (ret <= 0)
			continue;
		ssize_t n = read(c->fd, c->buf + c->len, c->cap - c->len);
		if (n < 0) {
			if (errno == EINTR || errno == EAGAIN)
				continue;
			return err_set(err, -errno, "%s: read: %s", c->path,
				       strerror(errno));
		}
		if (n == 0) {
			ret = control_stream_finish(&c->in, got_msg, &g);
			if (ret)
				break;
			return err_set(err, -ECONNRESET,
				       "%s: connection closed before a reply",
				       c->path);
		}
		c->len += n;
	}
	if (ret < 0 || g.ret < 0) {
		json_decref(g.msg);
		return ret < 0 ? ret : g.ret;
	}
	*out = g.msg;
	return 0;
}

static int64_t deadline(const struct ctl_conn *c)
{
	return c->timeout_ms > 0 ? clock_mono_ms() + c->timeout_ms : -1;
}

static int send_all(int fd, const char *s, size_t len)
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

int ctl_open(struct ctl_conn *c, const char *path, int timeout_ms,
	     json_t **refusal, char *err)
{
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	json_t *greeting = NULL, *e;
	int ret;

	*c = (struct ctl_conn){ .fd = -1, .path = path,
				.timeout_ms = timeout_ms };
	if (refusal)
		*refusal = NULL;
	if (strlen(path) >= sizeof(addr.sun_path))
		return err_set(err, -ENAMETOOLONG,
			       "control socket path %s is longer than %zu bytes",
			       path, sizeof(addr.sun_path) - 1);
	memcpy(addr.sun_path, path, strlen(path) + 1);
	control_stream_init(&c->in, CTL_REPLY_MAX);
	c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (c->fd < 0) {
		ret = err_set(err, -errno, "socket: %s", strerror(errno));
		goto fail;
	}
	if (connect(c->fd, (struct sockaddr *)&addr, sizeof(addr)) < 0) {
		ret = err_set(err, -errno,
			      "cannot connect to control socket %s: %s", path,
			      strerror(errno));
		goto fail;
	}
	ret = read_msg(c, deadline(c), &greeting, err);
	if (ret < 0)
		goto fail;
	e = json_object_get(greeting, "error");
	if (json_is_object(e)) {
		/* Refused (too many clients): a QMP error, not a greeting. */
		const char *desc = json_string_value(json_object_get(e, "desc"));
		ret = err_set(err, -EREMOTEIO, "%s: refused: %s", path,
			      desc ? desc : "(no desc)");
		if (refusal)
			*refusal = json_incref(greeting);
		goto fail;
	}
	if (!json_is_object(greeting) || !json_object_get(greeting, "QMP")) {
		char *s = json_dumps(greeting, JSON_COMPACT | JSON_ENCODE_ANY);
		ret = err_set(err, -EPROTO, "%s: unexpected greeting: %s",
			      path, s ? s : "?");
		free(s);
		goto fail;
	}
	json_decref(greeting);
	return 0;
fail:
	json_decref(greeting);
	ctl_close(c);
	return ret;
}

int ctl_connect(struct ctl_conn *c, const char *path, int timeout_ms,
		char *err)
{
	return ctl_open(c, path, timeout_ms, NULL, err);
}

int ctl_request(struct ctl_conn *c, json_t *req, json_t **reply, char *err)
{
	/* Compact encoding: a request written over several lines still goes
	 * out as the one line the protocol wants. */
	char *line = json_dumps(req, JSON_COMPACT);
	int64_t dl;
	int ret;

	*reply = NULL;
	if (!line)
		return err_set(err, -ENOMEM, "out of memory");
	ret = send_all(c->fd, line, strlen(line));
	if (!ret)
		ret = send_all(c->fd, "\n", 1);
	free(line);
	if (ret < 0)
		return err_set(err, ret, "%s: send: %s", c->path,
			       strerror(-ret));
	dl = deadline(c);
	for (;;) {
		ret = read_msg(c, dl, reply, err);
		if (ret < 0)
			return ret;
		/* Asynchronous events (QMP "event") are not the answer. */
		if (!json_is_object(*reply) || !json_object_get(*reply, "event"))
			return 0;
		json_decref(*reply);
		*reply = NULL;
	}
}

int ctl_execute(struct ctl_conn *c, const char *name, json_t *args,
		json_t **ret, char *err)
{
	json_t *req, *reply, *r, *e;
	int rc;

	*ret = NULL;
	req = json_pack("{s:s}", "execute", name);
	if (!req)
		return err_set(err, -ENOMEM, "out of memory");
	if (args)
		json_object_set(req, "arguments", args);
	rc = ctl_request(c, req, &reply, err);
	json_decref(req);
	if (rc < 0)
		return rc;
	r = json_object_get(reply, "return");
	e = json_object_get(reply, "error");
	if (r) {
		*ret = json_incref(r);
	} else if (e) {
		const char *desc = json_string_value(json_object_get(e, "desc"));
		rc = err_set(err, -EREMOTEIO, "%s", desc ? desc : "(no desc)");
	} else {
		rc = err_set(err, -EPROTO,
			     "%s: reply to %s is neither return nor error",
			     c->path, name);
	}
	json_decref(reply);
	return rc;
}

bool ctl_is_disconnect(int err)
{
	return err == -ECONNRESET || err == -EPIPE || err == -ENOENT ||
	       err == -ECONNREFUSED || err == -ENOTCONN;
}

void ctl_close(struct ctl_conn *c)
{
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	control_stream_free(&c->in);
	free(c->buf);
	c->buf = NULL;
	c->len = c->cap = 0;
}
