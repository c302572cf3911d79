/*
 * Unit tests for the control socket's VM-independent parts: stream framing,
 * request and argument checking, hex decoding and dispatch.
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "control/control_proto.h"

/* ---- stream framing ------------------------------------------------------- */

/* What the splitter delivered, one entry per call: the text, or "!" and
 * the error. */
struct seen {
	char msgs[32][256];
	unsigned n, errors;
	int fail_at;     /* return -EIO on this message (1-based), 0: never */
};

static int record(void *opaque, const char *msg, size_t len,
		  const char *error)
{
	struct seen *s = opaque;

	cr_assert_lt(s->n, 32);
	if (error) {
		cr_assert_null(msg);
		s->errors++;
		snprintf(s->msgs[s->n++], sizeof(s->msgs[0]), "!%s", error);
	} else {
		cr_assert_not_null(msg);
		cr_assert_gt(len, 0);
		if (len >= sizeof(s->msgs[0]))   /* long ones: the start */
			len = sizeof(s->msgs[0]) - 1;
		memcpy(s->msgs[s->n], msg, len);
		s->msgs[s->n][len] = '\0';
		s->n++;
	}
	if (s->fail_at && (int)s->n == s->fail_at)
		return -EIO;
	return 0;
}

static int feedn(struct control_stream *st, struct seen *s, const char *b,
		 size_t n)
{
	return control_stream_feed(st, b, n, record, s, NULL);
}

static int feed(struct control_stream *st, struct seen *s, const char *str)
{
	return feedn(st, s, str, strlen(str));
}

/* Feed in at every split point (two pieces) and byte by byte; the result
 * must always be the same. */
static void same_at_every_split(const char *in, size_t len, size_t max,
				const struct seen *want)
{
	for (size_t cut = 0; cut <= len + 1; cut++) {
		struct control_stream st;
		struct seen s = { 0 };

		control_stream_init(&st, max);
		if (cut <= len) {
			cr_assert_eq(feedn(&st, &s, in, cut), 0);
			cr_assert_eq(feedn(&st, &s, in + cut, len - cut), 0);
		} else {
			for (size_t i = 0; i < len; i++)
				cr_assert_eq(feedn(&st, &s, in + i, 1), 0);
		}
		cr_assert_eq(s.n, want->n, "cut %zu: %u messages, want %u",
			     cut, s.n, want->n);
		for (unsigned i = 0; i < s.n; i++)
			cr_assert_str_eq(s.msgs[i], want->msgs[i], "cut %zu",
					 cut);
		control_stream_free(&st);
	}
}

Test(control_stream, objects_with_and_without_separators)
{
	static const char in[] =
		"{\"execute\":\"a\"}{\"execute\":\"b\"}\n"
		"  {\"execute\":\"c\",\"arguments\":{\"x\":[1,{\"y\":{}}]}}\r\n"
		"\t[1,[2]]{}";
	struct seen want = { .n = 5 };

	strcpy(want.msgs[0], "{\"execute\":\"a\"}");
	strcpy(want.msgs[1], "{\"execute\":\"b\"}");
	strcpy(want.msgs[2],
	       "{\"execute\":\"c\",\"arguments\":{\"x\":[1,{\"y\":{}}]}}");
	strcpy(want.msgs[3], "[1,[2]]");
	strcpy(want.msgs[4], "{}");
	same_at_every_split(in, strlen(in), 256, &want);
}

Test(control_stream, braces_quotes_and_escapes_inside_strings)
{
	static const char in[] =
		"{\"a\":\"}}{{]\",\"b\":\"say \\\"hi}\\\" \\\\\",\"c\":\"\\\\\"}"
		"{\"u\":\"\\u007b\\u0022\\ud83d\\ude00\"}";
	struct seen want = { .n = 2 };

	strcpy(want.msgs[0],
	       "{\"a\":\"}}{{]\",\"b\":\"say \\\"hi}\\\" \\\\\",\"c\":\"\\\\\"}");
	strcpy(want.msgs[1], "{\"u\":\"\\u007b\\u0022\\ud83d\\ude00\"}");
	same_at_every_split(in, strlen(in), 256, &want);
	/* And jansson agrees that each is one complete value. */
	for (int i = 0; i < 2; i++) {
		json_t *j = json_loads(want.msgs[i], 0, NULL);
		cr_assert(json_is_object(j), "%s", want.msgs[i]);
		json_decref(j);
	}
}

Test(control_stream, empty_lines_and_blank_input_deliver_nothing)
{
	struct control_stream st;
	struct seen s = { 0 };

	/* Issue 11: an empty first line used to memcpy into a NULL buffer. */
	control_stream_init(&st, 64);
	cr_assert_eq(feed(&st, &s, "\n"), 0);
	cr_assert_eq(feed(&st, &s, "\r\n\n   \t\n"), 0);
	cr_assert_eq(feedn(&st, &s, "", 0), 0);
	cr_assert_eq(control_stream_finish(&st, record, &s), 0);
	cr_assert_eq(s.n, 0);
	cr_assert(control_stream_idle(&st));
	cr_assert_eq(feed(&st, &s, "\n{}\n"), 0);
	cr_assert_eq(s.n, 1);
	cr_assert_str_eq(s.msgs[0], "{}");
	control_stream_free(&st);
}

Test(control_stream, top_level_junk_is_one_message_per_line)
{
	struct control_stream st;
	struct seen s = { 0 };

	control_stream_init(&st, 64);
	/* Handed over whole, so jansson can say what is wrong, once. */
	cr_assert_eq(feed(&st, &s, "this is not json\n42\r\n\"a{b\"\n"), 0);
	cr_assert_eq(s.n, 3);
	cr_assert_str_eq(s.msgs[0], "this is not json");
	cr_assert_str_eq(s.msgs[1], "42\r");
	cr_assert_str_eq(s.msgs[2], "\"a{b\"");
	/* Garbage then a valid object on the same line: both. */
	cr_assert_eq(feed(&st, &s, "}} junk{\"execute\":\"x\"}"), 0);
	cr_assert_eq(s.n, 5);
	cr_assert_str_eq(s.msgs[3], "}} junk");
	cr_assert_str_eq(s.msgs[4], "{\"execute\":\"x\"}");
	/* Junk without its newline is delivered at the end of input. */
	cr_assert_eq(feed(&st, &s, "17"), 0);
	cr_assert_eq(s.n, 5);
	cr_assert_eq(control_stream_finish(&st, record, &s), 0);
	cr_assert_eq(s.n, 6);
	cr_assert_str_eq(s.msgs[5], "17");
	control_stream_free(&st);
}

Test(control_stream, malformed_string_is_one_error_then_resync)
{
	struct control_stream st;
	struct seen s = { 0 };

	control_stream_init(&st, 128);
	/* A raw newline cannot be inside a JSON string: the message ends
	 * there with one error, the rest of it is skipped to the next '{'. */
	cr_assert_eq(feed(&st, &s, "{\"execute\":\"ab\ncd\", x\"\n"), 0);
	cr_assert_eq(s.n, 2);
	cr_assert_str_eq(s.msgs[0],
			 "!JSON parse error: byte 0x0a inside a string");
	cr_assert_str_eq(s.msgs[1], "cd\", x\"");   /* junk line after */
	cr_assert_eq(feed(&st, &s, "{\"execute\":\"ok\"}"), 0);
	cr_assert_eq(s.n, 3);
	cr_assert_str_eq(s.msgs[2], "{\"execute\":\"ok\"}");
	control_stream_free(&st);
}

Test(control_stream, reset_bytes_abort_a_message)
{
	struct control_stream st;
	struct seen s = { 0 };

	control_stream_init(&st, 128);
	/* 0xFF, which QMP clients send to reset the parser, inside an object:
	 * one error, and what follows is fresh input. */
	cr_assert_eq(feed(&st, &s, "{\"execute\": \xff{\"id\":1}"), 0);
	cr_assert_eq(s.n, 2);
	cr_assert_str_eq(s.msgs[0], "!JSON parse error: invalid byte 0xff");
	cr_assert_str_eq(s.msgs[1], "{\"id\":1}");
	/* Between messages a reset byte has nothing to reset. */
	cr_assert_eq(feed(&st, &s, "\xff\x04{}"), 0);
	cr_assert_eq(s.n, 3);
	cr_assert_eq(s.errors, 1);
	cr_assert_str_eq(s.msgs[2], "{}");
	/* Ctrl-D inside a message, then the rest of that line is junk. */
	cr_assert_eq(feed(&st, &s, "[1, \x04 2]\n{}"), 0);
	cr_assert_eq(s.n, 6);
	cr_assert_str_eq(s.msgs[3], "!JSON parse error: invalid byte 0x04");
	cr_assert_str_eq(s.msgs[4], "2]");
	cr_assert_str_eq(s.msgs[5], "{}");
	/* 0xFE inside a string too. */
	cr_assert_eq(feed(&st, &s, "{\"a\":\"\xfe"), 0);
	cr_assert_eq(s.n, 7);
	cr_assert_str_eq(s.msgs[6],
			 "!JSON parse error: byte 0xfe inside a string");
	control_stream_free(&st);
}

Test(control_stream, exactly_max_is_accepted)
{
	struct control_stream st;
	struct seen s = { 0 };

	control_stream_init(&st, 10);
	cr_assert_eq(feed(&st, &s, "{\"a\":\"12\"}{\"a\":\"123\"}{}"), 0);
	cr_assert_eq(s.n, 3);
	cr_assert_str_eq(s.msgs[0], "{\"a\":\"12\"}");
	cr_assert_str_eq(s.msgs[1], "!request longer than 10 bytes; dropped");
	cr_assert_str_eq(s.msgs[2], "{}");
	control_stream_free(&st);
}

Test(control_stream, oversize_reported_at_once_and_followed_to_its_end)
{
	struct control_stream st;
	struct seen s = { 0 };

	control_stream_init(&st, 16);
	/* Reported as soon as the limit is crossed, before the object ends. */
	cr_assert_eq(feed(&st, &s, "{\"v\":\"0123456789abcdef"), 0);
	cr_assert_eq(s.n, 1);
	cr_assert_str_eq(s.msgs[0], "!request longer than 16 bytes; dropped");
	/* Its braces, strings and escapes are still followed: "}" and "{"
	 * inside its strings do not end it or start another. */
	cr_assert_eq(feed(&st, &s, "}{\\\"\",\"w\":{\"x\":\"}\"},"), 0);
	cr_assert_eq(feed(&st, &s, "\"y\":[{}]}"), 0);
	cr_assert_eq(s.n, 1);
	cr_assert_eq(feed(&st, &s, " {\"ok\":1}"), 0);
	cr_assert_eq(s.n, 2);
	cr_assert_str_eq(s.msgs[1], "{\"ok\":1}");
	/* An over-long junk line is dropped to its newline. */
	cr_assert_eq(feed(&st, &s, "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"), 0);
	cr_assert_eq(feed(&st, &s, "xxxx\n[]"), 0);
	cr_assert_eq(s.n, 4);
	cr_assert_str_eq(s.msgs[2], "!request longer than 16 bytes; dropped");
	cr_assert_str_eq(s.msgs[3], "[]");
	control_stream_free(&st);
}

Test(control_stream, malformed_while_oversize_is_not_reported_twice)
{
	struct control_stream st;
	struct seen s = { 0 };

	control_stream_init(&st, 8);
	cr_assert_eq(feed(&st, &s, "{\"aaaaaaaaaaaa\n{}"), 0);
	cr_assert_eq(s.n, 2);
	cr_assert_eq(s.errors, 1);
	cr_assert_str_eq(s.msgs[1], "{}");
	control_stream_free(&st);
}

Test(control_stream, nesting_is_bounded)
{
	struct control_stream st;
	struct seen s = { 0 };
	size_t deep = CONTROL_NESTING_MAX + 1;
	char *in = malloc(2 * deep + 3);

	memset(in, '[', deep);
	memset(in + deep, ']', deep);
	strcpy(in + 2 * deep, "{}");
	control_stream_init(&st, 1 << 20);
	cr_assert_eq(feed(&st, &s, in), 0);
	/* One error; the closing brackets are skipped up to the '{'. */
	cr_assert_eq(s.errors, 1);
	cr_assert_str_eq(s.msgs[0], "!JSON parse error: nesting deeper than 1024");
	cr_assert_str_eq(s.msgs[s.n - 1], "{}");
	/* Exactly at the limit is fine. */
	s = (struct seen){ 0 };
	in[0] = ' ';
	in[2 * deep - 1] = ' ';
	cr_assert_eq(feed(&st, &s, in), 0);
	cr_assert_eq(s.errors, 0);
	cr_assert_eq(s.n, 2);
	cr_assert_eq(s.msgs[0][0], '[');
	cr_assert_str_eq(s.msgs[1], "{}");
	free(in);
	control_stream_free(&st);
}

Test(control_stream, end_of_input_inside_an_object)
{
	struct control_stream st;
	struct seen s = { 0 };

	control_stream_init(&st, 64);
	cr_assert_eq(feed(&st, &s, "{\"execute\":\"x\""), 0);
	cr_assert_not(control_stream_idle(&st));
	cr_assert_eq(control_stream_finish(&st, record, &s), 0);
	cr_assert_eq(s.n, 1);
	cr_assert_str_eq(s.msgs[0],
			 "!JSON parse error: input ended inside a message");
	cr_assert(control_stream_idle(&st));
	control_stream_free(&st);
}

Test(control_stream, callback_error_stops_feed_and_says_where)
{
	struct control_stream st;
	struct seen s = { .fail_at = 2 };
	const char *in = "{}[]junk{}";
	size_t used = 0;

	control_stream_init(&st, 16);
	cr_assert_eq(control_stream_feed(&st, in, strlen(in), record, &s,
					 &used), -EIO);
	cr_assert_eq(s.n, 2);
	cr_assert_eq(used, 4);
	/* A junk run ends before the '{' that follows it, which is not
	 * consumed by the stop. */
	s = (struct seen){ .fail_at = 1 };
	cr_assert_eq(control_stream_feed(&st, in + used, strlen(in) - used,
					 record, &s, &used), -EIO);
	cr_assert_str_eq(s.msgs[0], "junk");
	cr_assert_eq(used, 4);
	control_stream_free(&st);
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
	json_t *reply = control_execute_msg(fake_table, ctx, line,
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

/* A JSON string must be UTF-8: a description quoting bytes the client
 * sent, or cut at ERR_MAX inside a character, used to make jansson refuse
 * the reply, and the server dropped the client without an answer (found
 * by fuzz/fuzz_control.c; its input is fuzz/regress/control/). */
static void assert_valid_error(json_t *r, const char *want)
{
	cr_assert_not_null(r);
	cr_assert_str_eq(err_class(r), "GenericError");
	cr_assert(strstr(err_desc(r), want), "%s", err_desc(r));
	char *s = json_dumps(r, JSON_COMPACT);
	cr_assert_not_null(s);
	json_t *back = json_loads(s, 0, NULL);
	cr_assert_not_null(back, "the reply does not parse back: %s", s);
	json_decref(back);
	free(s);
	json_decref(r);
}

Test(control_dispatch, error_text_is_utf8_whatever_the_client_sent)
{
	struct fake_ctx ctx = { 0 };
	control_after_fn after;

	/* jansson quotes the token it gave up on: here a string cut after
	 * the first byte of a two-byte character (the fuzzer's input). */
	assert_valid_error(run(&ctx, "\"\\u00e9\\\xc2\x8b\x9a\": 1}", NULL),
			   "JSON parse error");
	assert_valid_error(run(&ctx, "{\"execute\": \"echo\", \xf6}", NULL),
			   "JSON parse error");
	/* Valid UTF-8 in, cut inside a character on the way out: a
	 * parameter name of 'x' and 200 two-byte characters, cut at ERR_MAX. */
	char req[1024];
	int n = snprintf(req, sizeof(req), "{\"execute\": \"echo\", \"arguments\": {\"x");
	for (int i = 0; i < 200; i++)
		n += snprintf(req + n, sizeof(req) - n, "\xc3\xa9");
	snprintf(req + n, sizeof(req) - n, "\": 1}}");
	assert_valid_error(control_execute_msg(fake_table, &ctx, req, strlen(req),
					       &after), "Parameter '");
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
		json_t *r = control_execute_msg(control_commands, NULL,
						 bad[i].line,
						 strlen(bad[i].line), &after);
		cr_assert_str_eq(err_desc(r), bad[i].desc, "%s", bad[i].line);
		json_decref(r);
	}
}
