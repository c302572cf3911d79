/*
 * control_client.h - the client side of the control socket, shared by
 * `ferry ctl` and `ferry migrate`: connect and check the greeting, send a
 * request, wait for its reply (skipping asynchronous events).
 *
 * Error messages name the socket path; callers print them after their own
 * prefix ("ferry ctl: ...").
 */
#ifndef FERRY_CONTROL_CLIENT_H
#define FERRY_CONTROL_CLIENT_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#include "control/control_proto.h"
#include "util/log.h"

struct ctl_conn {
	int fd;
	const char *path;     /* not owned */
	int timeout_ms;       /* per reply (and greeting); <= 0: forever */
	char *buf;            /* bytes read and not yet split */
	size_t len, cap;
	struct control_stream in;
};

/**
 * ctl_connect() - connect to the control socket at path and read its
 * greeting.  Returns 0, or a negative errno with err filled: -ENOENT or
 * -ECONNREFUSED when nobody serves path (see ctl_is_disconnect()),
 * -EREMOTEIO when the server refused the connection with a QMP error (too
 * many clients).  On failure nothing is left to close.
 */
int ctl_connect(struct ctl_conn *c, const char *path, int timeout_ms,
		char *err);

/**
 * ctl_open() - ctl_connect(), and when the server refuses with a QMP error
 * in place of the greeting, *refusal (if not NULL) gets that error message
 * (a new reference) so that it can be shown as the server said it.
 */
int ctl_open(struct ctl_conn *c, const char *path, int timeout_ms,
	     json_t **refusal, char *err);

/**
 * ctl_request() - send req (an object; sent as one compact line) and wait
 * for the reply, which is either {"return": ...} or {"error": ...} or, from
 * a broken peer, anything else.  *reply is a new reference.  Returns 0 or a
 * negative errno (transport, timeout, a reply that is not JSON).
 */
int ctl_request(struct ctl_conn *c, json_t *req, json_t **reply, char *err);

/**
 * ctl_execute() - run command name with args (borrowed; NULL for none).
 * Returns 0 with *ret the "return" value (a new reference), -EREMOTEIO
 * with err set to the server's "desc" for an error reply, or the negative
 * errno of ctl_request().
 */
int ctl_execute(struct ctl_conn *c, const char *name, json_t *args,
		json_t **ret, char *err);

/* The peer is gone (closed, reset, socket removed, nobody listening). */
bool ctl_is_disconnect(int err);

/* Close the connection; after a failed ctl_connect() or a previous
 * ctl_close() this does nothing. */
void ctl_close(struct ctl_conn *c);

#endif
