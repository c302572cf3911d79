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
#include "control/control_client.h"
#include "util/parse.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CTL_DEFAULT_TIMEOUT_S 30

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
	struct ctl_conn conn = { .fd = -1 };
	json_t *req = NULL, *msg = NULL;
	json_error_t jerr;
	char err[ERR_MAX];
	int status;

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
	if (ctl_connect(&conn, path, (int)timeout_s * 1000, err) < 0 ||
	    ctl_request(&conn, req, &msg, err) < 0) {
		fprintf(stderr, "ferry ctl: %s\n", err);
		goto out;
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
	ctl_close(&conn);
	json_decref(msg);
	json_decref(req);
	return status;
}
