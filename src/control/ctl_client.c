/*
 * ctl_client.c - `ferry ctl`: send one request to a control socket and
 * print the reply, for scripts, tests and people.
 *
 *   ferry ctl --control /run/vm.sock query-status
 *   ferry ctl --control /run/vm.sock migrate-set-parameters downtime-ms=500
 *   ferry ctl --control /run/vm.sock '{"execute": "query-status"}'
 *   echo '{"execute": "query-status"}' | ferry ctl --control /run/vm.sock -
 *   {"return":{"status":"running","running":true,"singlestep":false}}
 *
 * A bare command's KEY=VALUE arguments are typed as QEMU's qmp-shell does:
 * a VALUE that is JSON (42, -1, 1.5, true, false, null, "quoted", [..],
 * {..}) is that JSON value, anything else is a string (tcp:host:4444).
 *
 * Exit status: 0 "return", 1 "error" (including a server that refuses the
 * connection with a QMP error), 2 anything else (usage, connection,
 * timeout, a reply that is not QMP).
 */
#include "control/control.h"
#include "control/control_client.h"
#include "util/parse.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CTL_DEFAULT_TIMEOUT_S 30
/* Standard input holds one request: more than this is a mistake. */
#define CTL_STDIN_MAX (16 * 1024 * 1024)

static void ctl_usage(FILE *f)
{
	fprintf(f,
		"usage: ferry ctl --control PATH [--timeout SECONDS] COMMAND [KEY=VALUE...]\n"
		"       ferry ctl --control PATH [--timeout SECONDS] JSON\n"
		"       ferry ctl --control PATH [--timeout SECONDS] -\n"
		"  Send one QMP request to the control socket at PATH and print the\n"
		"  reply on one line.  The request is a command name with arguments\n"
		"  (query-status; migrate-set-parameters downtime-ms=500), where a\n"
		"  VALUE that reads as JSON (42, true, null, \"text\", [1,2]) is that\n"
		"  value and anything else a string; or a JSON object\n"
		"  ('{\"execute\": \"query-status\"}'); or '-' to read that object\n"
		"  from standard input.\n"
		"  --timeout  seconds to wait for the reply (default %d, 0: forever)\n"
		"  exit status: 0 reply is a return, 1 reply is an error (or the\n"
		"  server refused the connection), 2 other failure\n",
		CTL_DEFAULT_TIMEOUT_S);
}

struct ctl_opts {
	const char *path;
	uint64_t timeout_s;
	char **words;          /* the request: JSON, '-', or NAME KEY=VALUE... */
	int nwords;
};

/* A request word that is neither JSON nor '-' for standard input. */
static bool is_command_name(const char *w)
{
	const char *p = w + strspn(w, " \t\r\n");

	return strcmp(w, "-") && *p != '{' && *p != '[';
}

/* Parse the command line; returns -1 to go on, else an exit status. */
static int ctl_parse_args(int argc, char **argv, struct ctl_opts *o)
{
	bool options_done = false;

	o->words = calloc(argc, sizeof(*o->words));
	if (!o->words) {
		fprintf(stderr, "ferry ctl: out of memory\n");
		return 2;
	}
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *val = NULL;

		/* After a command name everything is an argument (a value
		 * may start with "--"); a JSON request may come before
		 * options, as it always could. */
		if (o->nwords && is_command_name(o->words[0]))
			options_done = true;
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
			o->words[o->nwords++] = argv[i];
			continue;
		}
		if (!strncmp(a, "--control", 9)) {
			o->path = val;
		} else if (parse_uint(val, 24 * 3600, &o->timeout_s) < 0) {
			fprintf(stderr,
				"ferry ctl: --timeout wants whole seconds (0 to 86400), not '%s'\n",
				val);
			return 2;
		}
	}
	if (!o->path || !*o->path) {
		bool late = false;
		for (int i = 1; i < o->nwords; i++)
			late |= !strncmp(o->words[i], "--control", 9);
		fprintf(stderr, "ferry ctl: --control PATH is required%s\n",
			late ? " (options go before the command name)" : "");
		ctl_usage(stderr);
		return 2;
	}
	if (!o->nwords) {
		fprintf(stderr, "ferry ctl: no request given\n");
		ctl_usage(stderr);
		return 2;
	}
	return -1;
}

/* Read all of standard input (one JSON request); NULL after a message. */
static char *read_stdin(size_t *len)
{
	size_t cap = 4096, n = 0;
	char *buf = malloc(cap);

	while (buf) {
		if (n == cap) {
			char *p = cap < CTL_STDIN_MAX ? realloc(buf, cap * 2) : NULL;
			if (!p) {
				fprintf(stderr, "ferry ctl: standard input: %s\n",
					cap < CTL_STDIN_MAX ? "out of memory"
							    : "more than 16 MiB");
				free(buf);
				return NULL;
			}
			buf = p;
			cap *= 2;
		}
		size_t k = fread(buf + n, 1, cap - n, stdin);
		n += k;
		if (k == 0) {
			if (ferror(stdin)) {
				fprintf(stderr, "ferry ctl: cannot read standard input\n");
				free(buf);
				return NULL;
			}
			*len = n;
			return buf;
		}
	}
	fprintf(stderr, "ferry ctl: out of memory\n");
	return NULL;
}

static json_t *parse_json_request(const char *text, size_t len,
				  const char *what)
{
	json_error_t jerr;
	json_t *req = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);

	if (!req) {
		fprintf(stderr, "ferry ctl: %s is not valid JSON: %s (line %d, column %d)\n",
			what, jerr.text, jerr.line, jerr.column);
		return NULL;
	}
	if (!json_is_object(req)) {
		fprintf(stderr, "ferry ctl: %s must be a JSON object\n", what);
		json_decref(req);
		return NULL;
	}
	return req;
}

/* A KEY=VALUE argument's value: JSON if it reads as JSON, else a string. */
static json_t *arg_value(const char *v)
{
	json_t *j = json_loads(v, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES,
			       NULL);

	return j ? j : json_string(v);
}

/* NAME KEY=VALUE... as {"execute": NAME, "arguments": {...}}. */
static json_t *build_request(char **words, int n)
{
	json_t *args = json_object(), *req;

	if (!args)
		goto oom;
	for (int i = 1; i < n; i++) {
		const char *eq = strchr(words[i], '=');
		char *key;
		json_t *val;

		if (!eq || eq == words[i]) {
			fprintf(stderr,
				"ferry ctl: argument '%s' is not KEY=VALUE\n",
				words[i]);
			json_decref(args);
			return NULL;
		}
		key = strndup(words[i], eq - words[i]);
		if (!key)
			goto oom;
		if (json_object_get(args, key)) {
			fprintf(stderr, "ferry ctl: argument '%s' given twice\n",
				key);
			free(key);
			json_decref(args);
			return NULL;
		}
		val = arg_value(eq + 1);
		if (!val || json_object_set_new(args, key, val) < 0) {
			free(key);
			goto oom;
		}
		free(key);
	}
	req = json_pack("{s:s,s:o}", "execute", words[0], "arguments", args);
	if (!req)
		fprintf(stderr, "ferry ctl: command name is not valid UTF-8\n");
	return req;
oom:
	json_decref(args);
	fprintf(stderr, "ferry ctl: out of memory\n");
	return NULL;
}

static json_t *make_request(struct ctl_opts *o)
{
	const char *first = o->words[0];

	if (!is_command_name(first)) {
		json_t *req = NULL;

		if (o->nwords > 1) {
			fprintf(stderr,
				"ferry ctl: expected one JSON request, got another: %s\n",
				o->words[1]);
			return NULL;
		}
		if (!strcmp(first, "-")) {
			size_t len;
			char *text = read_stdin(&len);
			if (text)
				req = parse_json_request(text, len,
							 "standard input");
			free(text);
		} else {
			req = parse_json_request(first, strlen(first),
						 "request");
		}
		return req;
	}
	if (!*first || first[0] == '-' || strchr(first, '=')) {
		fprintf(stderr, "ferry ctl: '%s' is not a command name\n", first);
		return NULL;
	}
	return build_request(o->words, o->nwords);
}

int ctl_main(int argc, char **argv)
{
	struct ctl_opts o = { .timeout_s = CTL_DEFAULT_TIMEOUT_S };
	struct ctl_conn conn = { .fd = -1 };
	json_t *req = NULL, *msg = NULL;
	char err[ERR_MAX];
	int status;

	status = ctl_parse_args(argc, argv, &o);
	if (status >= 0)
		goto out;
	status = 2;

	req = make_request(&o);
	if (!req)
		goto out;
	if (ctl_open(&conn, o.path, (int)o.timeout_s * 1000, &msg, err) < 0) {
		/* A refusal is the server's QMP error: show it like one. */
		if (msg) {
			status = 1;
			goto print;
		}
		fprintf(stderr, "ferry ctl: %s\n", err);
		goto out;
	}
	if (ctl_request(&conn, req, &msg, err) < 0) {
		fprintf(stderr, "ferry ctl: %s\n", err);
		goto out;
	}
	if (json_object_get(msg, "return"))
		status = 0;
	else if (json_object_get(msg, "error"))
		status = 1;
print:;
	char *s = json_dumps(msg, JSON_COMPACT | JSON_ENCODE_ANY);
	if (status == 2)
		fprintf(stderr, "ferry ctl: %s: reply is neither return nor error: %s\n",
			o.path, s ? s : "?");
	else if (s)
		printf("%s\n", s);
	free(s);
	fflush(stdout);
out:
	ctl_close(&conn);
	json_decref(msg);
	json_decref(req);
	free(o.words);
	return status;
}
