/*
 * control_proto.h - the VM-independent parts of the control socket: line
 * framing, request checking, argument specs, the command table and its
 * dispatcher, and a generic server that serves any table.  Kept apart from
 * the VM so the unit tests can drive all of it without a KVM guest.
 */
#ifndef FERRY_CONTROL_PROTO_H
#define FERRY_CONTROL_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "util/log.h"

#define CONTROL_VERSION   "0.1"
/* Longest request line accepted, without its '\n'.  The largest legitimate
 * request is an x-guest-memory-write of a few pages of hex. */
#define CONTROL_LINE_MAX  (64 * 1024)
#define CONTROL_MAX_CLIENTS 16

/* ---- line framing --------------------------------------------------------- */

struct control_lines {
	char *buf;
	size_t len, cap, max;
	bool discarding;   /* inside an over-long line: drop up to its '\n' */
};

/*
 * Called once per complete line, without its '\n' (and without a '\r'
 * before it).  For a line longer than max, called once with overlong set
 * and line NULL, as soon as the limit is crossed; the rest of that line is
 * dropped.  A non-zero return stops the feed and is passed back.
 */
typedef int (*control_line_fn)(void *opaque, const char *line, size_t len,
			       bool overlong);

void control_lines_init(struct control_lines *lb, size_t max);
void control_lines_free(struct control_lines *lb);
/* Returns 0, -ENOMEM, or the first non-zero return of fn. */
int control_lines_feed(struct control_lines *lb, const char *data, size_t n,
		       control_line_fn fn, void *opaque);
/* At end of input: a last line without '\n' still counts. */
int control_lines_finish(struct control_lines *lb, control_line_fn fn,
			 void *opaque);

/* ---- commands ---------------------------------------------------------------- */

enum control_arg_type {
	CONTROL_ARG_STRING,
	CONTROL_ARG_INT,     /* any JSON integer */
	CONTROL_ARG_UINT,    /* a JSON integer >= 0 */
	CONTROL_ARG_BOOL,
	CONTROL_ARG_ARRAY,
	CONTROL_ARG_OBJECT,
	CONTROL_ARG_ANY,
};

struct control_arg {
	const char *name;          /* NULL ends a list */
	enum control_arg_type type;
	bool optional;
};

typedef void (*control_after_fn)(void *opaque);
struct control_cmd;

/* One command invocation, as a handler sees it. */
struct control_call {
	void *opaque;                  /* the table's context (struct instance *) */
	const struct control_cmd *table;
	json_t *args;                  /* checked against the spec; an object */
	json_t *ret;                   /* set by the handler; NULL means {} */
	/* Set by the handler for work that must follow the reply (quit). */
	control_after_fn after_reply;
	const char *err_class;         /* NULL means "GenericError" */
	char err[ERR_MAX];
};

struct control_cmd {
	const char *name;              /* NULL ends a table */
	/* Returns 0, or a negative errno with call->err filled. */
	int (*fn)(struct control_call *call);
	const struct control_arg *args; /* NULL: takes no arguments */
};

/* A static, NULL-terminated argument list for a table entry. */
#define CONTROL_ARGS(...) \
	((const struct control_arg[]){ __VA_ARGS__, { NULL, 0, false } })

/* The VM's commands (control_commands.c); opaque is a struct instance *
 * (see control_vm.h). */
extern const struct control_cmd control_commands[];

/* Handlers every table can share: they need no VM. */
int control_cmd_qmp_capabilities(struct control_call *call);
int control_cmd_query_commands(struct control_call *call);

const struct control_cmd *control_find_cmd(const struct control_cmd *table,
					   const char *name);

/*
 * Check a parsed request's envelope: an object with a string "execute", an
 * optional object "arguments", an optional "id" of any type, nothing else.
 * On success *name and *args (never NULL: an empty object when absent,
 * with a new reference the caller drops) are set.
 */
int control_check_request(json_t *req, const char **name, json_t **args,
			  char *err);
/* Check args against spec: unknown, missing and ill-typed members. */
int control_check_args(const struct control_arg *spec, json_t *args,
		       char *err);

/* Decode an even-length, non-empty hex string into a new buffer. */
int control_parse_hex(const char *hex, uint8_t **out, size_t *len,
		      char *err);

/* Replies; id may be NULL (not echoed).  Never NULL unless out of memory. */
json_t *control_greeting(void);
json_t *control_error_reply(const char *cls, const char *desc, json_t *id);
json_t *control_return_reply(json_t *ret, json_t *id); /* steals ret */

/*
 * Run one request line against table: parse, check, dispatch.  Returns the
 * reply to send (NULL only if out of memory); *after is set to work the
 * caller must do once the reply is on its way (or NULL).
 */
json_t *control_execute_line(const struct control_cmd *table, void *opaque,
			     const char *line, size_t len,
			     control_after_fn *after);

/* ---- the server ---------------------------------------------------------- */

struct control;

/* control_start() with any table and context (the unit tests use this). */
int control_server_start(struct control **out, const char *path,
			 const struct control_cmd *table, void *opaque,
			 char *err);

#endif
