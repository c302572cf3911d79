/*
 * control_proto.h - the VM-independent parts of the control socket: message
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
/* Longest request accepted, in bytes.  The largest legitimate request is an
 * x-guest-memory-write of a few pages of hex. */
#define CONTROL_MSG_MAX   (64 * 1024)
/* Deepest nesting of objects and arrays in one request (QEMU's bound). */
#define CONTROL_NESTING_MAX 1024u
#define CONTROL_MAX_CLIENTS 16
/* A client silent (both ways) this long is disconnected; see
 * control_server.c for FERRY_CONTROL_IDLE_TIMEOUT, which overrides it. */
#define CONTROL_IDLE_TIMEOUT_S 600

/* ---- framing: a byte stream of JSON messages ------------------------------ */

/* State of one connection's splitter (control_stream.c); private. */
struct control_stream {
	char *buf;
	size_t len, cap, max;
	unsigned state, depth;
	bool in_junk;      /* the string being read is top-level junk */
	bool oversize;     /* reported as too long: follow it, store nothing */
	bool pushback;     /* the last byte fed was not consumed */
};

/*
 * Called once per message.  Either msg is the complete text of one
 * top-level object or array (msg[0] is '{' or '['), or of other top-level
 * text up to the end of its line (for jansson to reject with a precise
 * message), and error is NULL; or msg is NULL and error says, in QMP's
 * words, why input was dropped (malformed, too long, too deep).  A
 * non-zero return stops the feed and is passed back.
 */
typedef int (*control_msg_fn)(void *opaque, const char *msg, size_t len,
			      const char *error);

/**
 * control_stream_init() - start a splitter for messages of at most max
 * bytes.  control_stream_free() releases it.
 */
void control_stream_init(struct control_stream *s, size_t max);
void control_stream_free(struct control_stream *s);
/**
 * control_stream_feed() - split n bytes of input, calling fn for each
 * message completed (see control_msg_fn).  Returns 0, -ENOMEM, or the first
 * non-zero return of fn, in which case *used (if not NULL) tells how many
 * bytes were consumed and the caller feeds the rest later.
 */
int control_stream_feed(struct control_stream *s, const char *data,
			size_t n, control_msg_fn fn, void *opaque,
			size_t *used);
/**
 * control_stream_finish() - end of input: top-level text without its
 * newline is still delivered; an unfinished object is an error.
 */
int control_stream_finish(struct control_stream *s, control_msg_fn fn,
			  void *opaque);
/* No message is in progress (only whitespace or skipped input pending). */
bool control_stream_idle(const struct control_stream *s);

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
 * Run one request (the text of one JSON message) against table: parse,
 * check, dispatch.  Returns the reply to send (NULL only if out of memory);
 * *after is set to work the caller must do once the reply is on its way
 * (or NULL).
 */
json_t *control_execute_msg(const struct control_cmd *table, void *opaque,
			    const char *text, size_t len,
			    control_after_fn *after);

/* ---- the server ---------------------------------------------------------- */

struct control;

/* control_start() with any table and context (the unit tests use this). */
int control_server_start(struct control **out, const char *path,
			 const struct control_cmd *table, void *opaque,
			 char *err);

#endif
