/*
 * Unit tests for the control socket's VM-independent parts: line framing,
 * request and argument checking, hex decoding and dispatch.
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "control/control_proto.h"

/* ---- line framing --------------------------------------------------------- */

struct seen {
	char lines[16][128];
	unsigned n, overlong;
	int fail_at;     /* return -EIO on this line number (1-based), 0: never */
};

static int record(void *opaque, const char *line, size_t len, bool overlong)
{
	struct seen *s = opaque;

	if (overlong) {
		cr_assert_null(line);
		s->overlong++;
		snprintf(s->lines[s->n++], sizeof(s->lines[0]), "<overlong>");
	} else {
		cr_assert_lt(len, sizeof(s->lines[0]));
		memcpy(s->lines[s->n], line, len);
		s->lines[s->n][len] = '\0';
		s->n++;
	}
	if (s->fail_at && (int)s->n == s->fail_at)
		return -EIO;
	return 0;
}

static int feed(struct control_lines *lb, struct seen *s, const char *str)
{
	return control_lines_feed(lb, str, strlen(str), record, s);
}

Test(control_lines, splits_on_newlines_and_strips_cr)
{
	struct control_lines lb;
	struct seen s = { 0 };

	control_lines_init(&lb, 64);
	cr_assert_eq(feed(&lb, &s, "one\ntwo\r\n\nthree"), 0);
	cr_assert_eq(s.n, 3);
	cr_assert_str_eq(s.lines[0], "one");
	cr_assert_str_eq(s.lines[1], "two");
	cr_assert_str_eq(s.lines[2], "");
	/* "three" waits for its newline. */
	cr_assert_eq(feed(&lb, &s, "-and-more\n"), 0);
	cr_assert_eq(s.n, 4);
	cr_assert_str_eq(s.lines[3], "three-and-more");
	control_lines_free(&lb);
}

Test(control_lines, byte_by_byte)
{
	struct control_lines lb;
	struct seen s = { 0 };
	const char *in = "{\"execute\":\"x\"}\n{}\n";

	control_lines_init(&lb, 64);
	for (size_t i = 0; i < strlen(in); i++)
		cr_assert_eq(control_lines_feed(&lb, in + i, 1, record, &s), 0);
	cr_assert_eq(s.n, 2);
	cr_assert_str_eq(s.lines[0], "{\"execute\":\"x\"}");
	cr_assert_str_eq(s.lines[1], "{}");
	control_lines_free(&lb);
}

Test(control_lines, exactly_max_is_accepted)
{
	struct control_lines lb;
	struct seen s = { 0 };

	control_lines_init(&lb, 8);
	cr_assert_eq(feed(&lb, &s, "12345678\n"), 0);
	cr_assert_eq(s.n, 1);
	cr_assert_eq(s.overlong, 0);
	cr_assert_str_eq(s.lines[0], "12345678");
	control_lines_free(&lb);
}

Test(control_lines, overlong_reported_once_then_recovers)
{
	struct control_lines lb;
	struct seen s = { 0 };

	control_lines_init(&lb, 8);
	/* Reported as soon as the limit is crossed, before any newline. */
	cr_assert_eq(feed(&lb, &s, "123456789"), 0);
	cr_assert_eq(s.overlong, 1);
	cr_assert_eq(feed(&lb, &s, "abcdefghijklmnop"), 0);
	cr_assert_eq(feed(&lb, &s, "qrstuvwxyz"), 0);
	cr_assert_eq(s.overlong, 1);
	cr_assert_eq(s.n, 1);
	cr_assert_eq(feed(&lb, &s, "tail\nok\n"), 0);
	cr_assert_eq(s.n, 2);
	cr_assert_str_eq(s.lines[1], "ok");
	control_lines_free(&lb);
}

Test(control_lines, overlong_within_one_chunk)
{
	struct control_lines lb;
	struct seen s = { 0 };

	control_lines_init(&lb, 4);
	cr_assert_eq(feed(&lb, &s, "toolongline\nfine\n"), 0);
	cr_assert_eq(s.n, 2);
	cr_assert_str_eq(s.lines[0], "<overlong>");
	cr_assert_str_eq(s.lines[1], "fine");
	control_lines_free(&lb);
}

Test(control_lines, overlong_across_partial_line)
{
	struct control_lines lb;
	struct seen s = { 0 };

	control_lines_init(&lb, 6);
	cr_assert_eq(feed(&lb, &s, "abcd"), 0);
	cr_assert_eq(feed(&lb, &s, "efg\nxy\n"), 0);
	cr_assert_eq(s.n, 2);
	cr_assert_str_eq(s.lines[0], "<overlong>");
	cr_assert_str_eq(s.lines[1], "xy");
	control_lines_free(&lb);
}

Test(control_lines, finish_delivers_last_partial_line)
{
	struct control_lines lb;
	struct seen s = { 0 };

	control_lines_init(&lb, 16);
	cr_assert_eq(feed(&lb, &s, "a\nlast"), 0);
	cr_assert_eq(control_lines_finish(&lb, record, &s), 0);
	cr_assert_eq(s.n, 2);
	cr_assert_str_eq(s.lines[1], "last");
	/* Nothing pending: nothing more. */
	cr_assert_eq(control_lines_finish(&lb, record, &s), 0);
	cr_assert_eq(s.n, 2);
	control_lines_free(&lb);
}

Test(control_lines, finish_while_discarding_delivers_nothing)
{
	struct control_lines lb;
	struct seen s = { 0 };

	control_lines_init(&lb, 4);
	cr_assert_eq(feed(&lb, &s, "0123456789"), 0);
	cr_assert_eq(control_lines_finish(&lb, record, &s), 0);
	cr_assert_eq(s.n, 1);
	cr_assert_eq(s.overlong, 1);
	control_lines_free(&lb);
}

Test(control_lines, callback_error_stops_feed)
{
	struct control_lines lb;
	struct seen s = { .fail_at = 2 };

	control_lines_init(&lb, 16);
	cr_assert_eq(feed(&lb, &s, "a\nb\nc\n"), -EIO);
	cr_assert_eq(s.n, 2);
	control_lines_free(&lb);
}

/* ---- request envelope -------------------------------------------------------- */

static int check_request_str(const char *json, char *err, const char **name,
			     json_t **args, json_t **req)
{
	*req = json_loads(json, JSON_DECODE_ANY, NULL);
	cr_assert_not_null(*req, "bad test JSON: %s", json);
	*args = NULL;
	return control_check_request(*req, name, args, err);
}

#define REJECTS(json, msg) do {                                           \
	char err[ERR_MAX] = "";                                            \
	const char *name;                                                  \
	json_t *args, *req;                                                \
	cr_assert_eq(check_request_str(json, err, &name, &args, &req),     \
		     -EINVAL, "%s accepted", json);                        \
	cr_assert_str_eq(err, msg);                                        \
	cr_assert_null(args);                                              \
	json_decref(req);                                                  \
} while (0)

Test(control_request, rejects_bad_envelopes)
{
	REJECTS("[1,2]", "QMP input must be a JSON object");
	REJECTS("42", "QMP input must be a JSON object");
	REJECTS("\"quit\"", "QMP input must be a JSON object");
	REJECTS("{}", "QMP input lacks member 'execute'");
	REJECTS("{\"id\": 1}", "QMP input lacks member 'execute'");
	REJECTS("{\"execute\": 1}",
		"QMP input member 'execute' must be a string");
	REJECTS("{\"execute\": \"stop\", \"arguments\": []}",
		"QMP input member 'arguments' must be an object");
	REJECTS("{\"execute\": \"stop\", \"argumnets\": {}}",
		"QMP input member 'argumnets' is unexpected");
}

Test(control_request, accepts_and_defaults_arguments)
{
	char err[ERR_MAX] = "";
	const char *name;
	json_t *args, *req;

	cr_assert_eq(check_request_str("{\"execute\": \"stop\", \"id\": [1]}",
				       err, &name, &args, &req), 0);
	cr_assert_str_eq(name, "stop");
	cr_assert(json_is_object(args));
	cr_assert_eq(json_object_size(args), 0);
	json_decref(args);
	json_decref(req);

	cr_assert_eq(check_request_str(
		"{\"execute\": \"snapshot-save\", \"arguments\": {\"path\": \"/x\"}}",
		err, &name, &args, &req), 0);
	cr_assert_str_eq(json_string_value(json_object_get(args, "path")), "/x");
	json_decref(args);
	json_decref(req);
}

/* ---- argument specs ------------------------------------------------------------ */

static const struct control_arg spec[] = {
	{ "path", CONTROL_ARG_STRING, false },
	{ "gpa", CONTROL_ARG_UINT, false },
	{ "delta", CONTROL_ARG_INT, true },
	{ "force", CONTROL_ARG_BOOL, true },
	{ "list", CONTROL_ARG_ARRAY, true },
	{ "opts", CONTROL_ARG_OBJECT, true },
	{ "anything", CONTROL_ARG_ANY, true },
	{ NULL, 0, false },
};

static int check_args_str(const struct control_arg *sp, const char *json,
			  char *err)
{
	json_t *args = json_loads(json, 0, NULL);
	int ret;

	cr_assert_not_null(args, "bad test JSON: %s", json);
	ret = control_check_args(sp, args, err);
	json_decref(args);
	return ret;
}

#define ARGS_REJECTED(sp, json, msg) do {                                 \
	char err[ERR_MAX] = "";                                            \
	cr_assert_eq(check_args_str(sp, json, err), -EINVAL,               \
		     "%s accepted", json);                                 \
	cr_assert_str_eq(err, msg);                                        \
} while (0)

Test(control_args, accepts_valid)
{
	char err[ERR_MAX];

	cr_assert_eq(check_args_str(spec, "{\"path\": \"a\", \"gpa\": 0}", err), 0);
	cr_assert_eq(check_args_str(spec,
		"{\"path\": \"\", \"gpa\": 4096, \"delta\": -3, \"force\": true,"
		" \"list\": [], \"opts\": {}, \"anything\": null}", err), 0);
	/* No spec: only no arguments. */
	cr_assert_eq(check_args_str(NULL, "{}", err), 0);
}

Test(control_args, rejects_unexpected_missing_and_ill_typed)
{
	ARGS_REJECTED(spec, "{\"path\": \"a\", \"gpa\": 1, \"x\": 1}",
		      "Parameter 'x' is unexpected");
	ARGS_REJECTED(NULL, "{\"verbose\": true}",
		      "Parameter 'verbose' is unexpected");
	ARGS_REJECTED(spec, "{\"gpa\": 1}", "Parameter 'path' is missing");
	ARGS_REJECTED(spec, "{\"path\": \"a\"}", "Parameter 'gpa' is missing");
	ARGS_REJECTED(spec, "{\"path\": 3, \"gpa\": 1}",
		      "Invalid parameter type for 'path', expected: string");
	ARGS_REJECTED(spec, "{\"path\": \"a\", \"gpa\": -1}",
		      "Invalid parameter type for 'gpa', expected: non-negative integer");
	ARGS_REJECTED(spec, "{\"path\": \"a\", \"gpa\": 1.5}",
		      "Invalid parameter type for 'gpa', expected: non-negative integer");
	ARGS_REJECTED(spec, "{\"path\": \"a\", \"gpa\": \"4096\"}",
		      "Invalid parameter type for 'gpa', expected: non-negative integer");
	ARGS_REJECTED(spec, "{\"path\": \"a\", \"gpa\": 1, \"force\": 1}",
		      "Invalid parameter type for 'force', expected: boolean");
	ARGS_REJECTED(spec, "{\"path\": \"a\", \"gpa\": 1, \"list\": {}}",
		      "Invalid parameter type for 'list', expected: array");
	ARGS_REJECTED(spec, "{\"path\": \"a\", \"gpa\": 1, \"opts\": []}",
		      "Invalid parameter type for 'opts', expected: object");
	ARGS_REJECTED(spec, "{\"path\": \"a\", \"gpa\": 1, \"delta\": true}",
		      "Invalid parameter type for 'delta', expected: integer");
}

/* ---- hex --------------------------------------------------------------------- */

Test(control_hex, decodes_both_cases)
{
	char err[ERR_MAX];
	uint8_t *p = NULL;
	size_t len = 0;

	cr_assert_eq(control_parse_hex("deadBEEF00ff", &p, &len, err), 0);
	cr_assert_eq(len, 6);
	const uint8_t want[] = { 0xde, 0xad, 0xbe, 0xef, 0x00, 0xff };
	cr_assert_arr_eq(p, want, sizeof(want));
	free(p);
}

Test(control_hex, rejects_bad_input)
{
	char err[ERR_MAX];
	uint8_t *p = NULL;
	size_t len = 0;

	cr_assert_eq(control_parse_hex("", &p, &len, err), -EINVAL);
	cr_assert_str_eq(err, "hex data is empty");
	cr_assert_eq(control_parse_hex("abc", &p, &len, err), -EINVAL);
	cr_assert(strstr(err, "odd"));
	cr_assert_eq(control_parse_hex("00zz", &p, &len, err), -EINVAL);
	cr_assert(strstr(err, "offset 2"), "%s", err);
	cr_assert_eq(control_parse_hex("0x00", &p, &len, err), -EINVAL);
	cr_assert_eq(control_parse_hex("0 00", &p, &len, err), -EINVAL);
	cr_assert_null(p);
}

/* ---- dispatch ------------------------------------------------------------------ */

struct fake_ctx {
	int calls;
	int after_calls;
	json_t *last_args;
};

static void fake_after(void *opaque)
{
	((struct fake_ctx *)opaque)->after_calls++;
}

static int fake_echo(struct control_call *call)
{
	struct fake_ctx *ctx = call->opaque;

	ctx->calls++;
	call->ret = json_deep_copy(call->args);
	return 0;
}

static int fake_fail(struct control_call *call)
{
	((struct fake_ctx *)call->opaque)->calls++;
	call->after_reply = fake_after;   /* must not run: the call failed */
	return err_set(call->err, -EIO, "disk on fire: %s",
		       json_string_value(json_object_get(call->args, "why")));
}

static int fake_quit(struct control_call *call)
{
	call->after_reply = fake_after;
	return 0;
}

static const struct control_cmd fake_table[] = {
	{ "qmp_capabilities", control_cmd_qmp_capabilities,
	  CONTROL_ARGS({ "enable", CONTROL_ARG_ARRAY, true }) },
	{ "query-commands", control_cmd_query_commands, NULL },
	{ "echo", fake_echo, CONTROL_ARGS({ "n", CONTROL_ARG_INT, true },
					  { "s", CONTROL_ARG_STRING, true }) },
	{ "fail", fake_fail, CONTROL_ARGS({ "why", CONTROL_ARG_STRING, false }) },
	{ "quit", fake_quit, NULL },
	{ NULL, NULL, NULL },
};

static json_t *run(struct fake_ctx *ctx, const char *line,
		   control_after_fn *after)
{
	control_after_fn dummy;
	json_t *reply = control_execute_line(fake_table, ctx, line,
					     strlen(line),
					     after ? after : &dummy);
	cr_assert_not_null(reply);
	return reply;
}

static const char *err_class(json_t *reply)
{
	return json_string_value(json_object_get(
		json_object_get(reply, "error"), "class"));
}

static const char *err_desc(json_t *reply)
{
	return json_string_value(json_object_get(
		json_object_get(reply, "error"), "desc"));
}

Test(control_dispatch, malformed_json_has_no_id)
{
	struct fake_ctx ctx = { 0 };
	json_t *r = run(&ctx, "{\"execute\": \"echo\", \"id\": 1", NULL);

	cr_assert_str_eq(err_class(r), "GenericError");
	cr_assert(strstr(err_desc(r), "JSON parse error"), "%s", err_desc(r));
	cr_assert_null(json_object_get(r, "id"));
	json_decref(r);

	r = run(&ctx, "{\"execute\": \"echo\"} {\"execute\": \"echo\"}", NULL);
	cr_assert_str_eq(err_class(r), "GenericError");
	json_decref(r);

	r = run(&ctx, "{\"execute\": \"echo\", \"execute\": \"quit\"}", NULL);
	cr_assert_str_eq(err_class(r), "GenericError");
	json_decref(r);
	cr_assert_eq(ctx.calls, 0);
}

Test(control_dispatch, envelope_errors_echo_id)
{
	struct fake_ctx ctx = { 0 };
	json_t *r = run(&ctx, "{\"id\": \"abc\"}", NULL);

	cr_assert_str_eq(err_class(r), "GenericError");
	cr_assert_str_eq(err_desc(r), "QMP input lacks member 'execute'");
	cr_assert_str_eq(json_string_value(json_object_get(r, "id")), "abc");
	json_decref(r);

	r = run(&ctx, "[]", NULL);
	cr_assert_str_eq(err_desc(r), "QMP input must be a JSON object");
	json_decref(r);
}

Test(control_dispatch, unknown_command)
{
	struct fake_ctx ctx = { 0 };
	json_t *r = run(&ctx, "{\"execute\": \"migrate-now\", \"id\": {\"a\": [1]}}",
			NULL);

	cr_assert_str_eq(err_class(r), "CommandNotFound");
	cr_assert_str_eq(err_desc(r), "The command migrate-now has not been found");
	json_t *want = json_pack("{s:[i]}", "a", 1);
	cr_assert(json_equal(json_object_get(r, "id"), want));
	json_decref(want);
	json_decref(r);
}

Test(control_dispatch, argument_errors_do_not_call_handler)
{
	struct fake_ctx ctx = { 0 };
	json_t *r = run(&ctx, "{\"execute\": \"echo\", \"arguments\": {\"x\": 1}, \"id\": 7}",
			NULL);

	cr_assert_str_eq(err_class(r), "GenericError");
	cr_assert_str_eq(err_desc(r), "Parameter 'x' is unexpected");
	cr_assert_eq(json_integer_value(json_object_get(r, "id")), 7);
	json_decref(r);

	r = run(&ctx, "{\"execute\": \"fail\"}", NULL);
	cr_assert_str_eq(err_desc(r), "Parameter 'why' is missing");
	json_decref(r);
	cr_assert_eq(ctx.calls, 0);
}

Test(control_dispatch, success_returns_handler_value)
{
	struct fake_ctx ctx = { 0 };
	json_t *r = run(&ctx, "{\"execute\": \"echo\", \"arguments\": {\"n\": 5, \"s\": \"hi\"}, \"id\": 1}",
			NULL);

	cr_assert_eq(ctx.calls, 1);
	json_t *want = json_pack("{s:{s:i,s:s},s:i}", "return", "n", 5, "s",
				 "hi", "id", 1);
	cr_assert(json_equal(r, want));
	json_decref(want);
	json_decref(r);

	/* No arguments, no id: {"return": {}} and nothing else. */
	r = run(&ctx, "{\"execute\": \"echo\"}", NULL);
	want = json_pack("{s:{}}", "return");
	cr_assert(json_equal(r, want));
	json_decref(want);
	json_decref(r);
}

Test(control_dispatch, handler_error_and_after_reply)
{
	struct fake_ctx ctx = { 0 };
	control_after_fn after = NULL;
	json_t *r = run(&ctx, "{\"execute\": \"fail\", \"arguments\": {\"why\": \"x\"}}",
			&after);

	cr_assert_str_eq(err_class(r), "GenericError");
	cr_assert_str_eq(err_desc(r), "disk on fire: x");
	cr_assert_null(after);
	json_decref(r);

	r = run(&ctx, "{\"execute\": \"quit\"}", &after);
	cr_assert(json_is_object(json_object_get(r, "return")));
	cr_assert_eq(after, fake_after);
	/* The dispatcher leaves the follow-up to its caller. */
	cr_assert_eq(ctx.after_calls, 0);
	json_decref(r);
}

Test(control_dispatch, qmp_capabilities_and_query_commands)
{
	struct fake_ctx ctx = { 0 };
	json_t *r = run(&ctx, "{\"execute\": \"qmp_capabilities\"}", NULL);

	cr_assert(json_is_object(json_object_get(r, "return")));
	json_decref(r);
	r = run(&ctx, "{\"execute\": \"qmp_capabilities\", \"arguments\": {\"enable\": []}}",
		NULL);
	cr_assert(json_is_object(json_object_get(r, "return")));
	json_decref(r);
	r = run(&ctx, "{\"execute\": \"qmp_capabilities\", \"arguments\": {\"enable\": [\"oob\"]}}",
		NULL);
	cr_assert_str_eq(err_desc(r), "Capability 'oob' not available");
	json_decref(r);

	r = run(&ctx, "{\"execute\": \"query-commands\"}", NULL);
	json_t *list = json_object_get(r, "return");
	cr_assert_eq(json_array_size(list), 5);
	cr_assert_str_eq(json_string_value(json_object_get(
		json_array_get(list, 2), "name")), "echo");
	json_decref(r);
}

Test(control_dispatch, greeting_shape)
{
	json_t *g = control_greeting();
	json_t *want = json_pack("{s:{s:{s:s},s:[]}}", "QMP", "version",
				 "ferry", "0.1", "capabilities");

	cr_assert(json_equal(g, want));
	json_decref(want);
	json_decref(g);
}

/* ---- the VM command table (argument specs only: no VM is touched) ---------- */

Test(control_commands, names_unique_and_specs_enforced)
{
	for (const struct control_cmd *a = control_commands; a->name; a++) {
		cr_assert_not_null(a->fn, "%s has no handler", a->name);
		for (const struct control_cmd *b = a + 1; b->name; b++)
			cr_assert_str_neq(a->name, b->name);
	}
	const char *needed[] = { "qmp_capabilities", "query-status", "stop",
				 "cont", "quit", "query-vm", "snapshot-save",
				 "x-guest-memory-write" };
	for (size_t i = 0; i < sizeof(needed) / sizeof(needed[0]); i++)
		cr_assert_not_null(control_find_cmd(control_commands, needed[i]),
				   "%s missing", needed[i]);

	static const struct { const char *line, *desc; } bad[] = {
		{ "{\"execute\": \"snapshot-save\"}", "Parameter 'path' is missing" },
		{ "{\"execute\": \"snapshot-save\", \"arguments\": {\"path\": 1}}",
		  "Invalid parameter type for 'path', expected: string" },
		{ "{\"execute\": \"query-status\", \"arguments\": {\"verbose\": true}}",
		  "Parameter 'verbose' is unexpected" },
		{ "{\"execute\": \"x-guest-memory-write\", \"arguments\": {\"gpa\": -4096, \"hex\": \"00\"}}",
		  "Invalid parameter type for 'gpa', expected: non-negative integer" },
		{ "{\"execute\": \"x-guest-memory-write\", \"arguments\": {\"gpa\": 0}}",
		  "Parameter 'hex' is missing" },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		control_after_fn after;
		/* A NULL VM: the argument check must answer before any handler. */
		json_t *r = control_execute_line(control_commands, NULL,
						 bad[i].line,
						 strlen(bad[i].line), &after);
		cr_assert_str_eq(err_desc(r), bad[i].desc, "%s", bad[i].line);
		json_decref(r);
	}
}
