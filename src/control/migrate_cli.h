/*
 * migrate_cli.h - the pieces of `ferry migrate` (migrate_cli_main() in
 * control.h) that need no socket, for the unit tests: option parsing and
 * the formatting of query-migrate answers.
 */
#ifndef FERRY_MIGRATE_CLI_H
#define FERRY_MIGRATE_CLI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include <jansson.h>

struct migrate_cli_opts {
	const char *control;  /* the source's control socket */
	json_t *args;         /* the `migrate` arguments, "uri" included */
	bool wait, json;
};

/**
 * migrate_cli_parse() - parse `ferry migrate` options (argv[0] is the
 * subcommand name).  Returns -1 to go on, with o->args a new object the
 * caller frees with migrate_cli_opts_free(); else the exit status to
 * return at once (0 after --help, 2 for a usage error, reported on
 * stderr).
 */
int migrate_cli_parse(int argc, char **argv, struct migrate_cli_opts *o);
void migrate_cli_opts_free(struct migrate_cli_opts *o);

/* One query-migrate answer as a one-line progress summary (no '\r' or
 * '\n'); missing fields are left out. */
void migrate_format_progress(json_t *q, char *buf, size_t len);

/* The final report for a query-migrate answer, several lines. */
void migrate_print_report(FILE *f, json_t *q);

/* `ferry migrate`'s exit statuses. */
#define MIGRATE_EXIT_OK                 0 /* started; with --wait completed */
#define MIGRATE_EXIT_FAILED             1 /* refused, failed, cancelled, lost */
#define MIGRATE_EXIT_USAGE              2
#define MIGRATE_EXIT_DOWNTIME_EXCEEDED  3 /* completed by a forced switch-over
					     whose pause exceeded the limit */

/**
 * migrate_exit_status() - the --wait exit status for a final query-migrate
 * answer: MIGRATE_EXIT_OK when completed, MIGRATE_EXIT_DOWNTIME_EXCEEDED
 * when completed by a forced switch-over (switchover "force") whose pause
 * exceeded the downtime limit, MIGRATE_EXIT_FAILED otherwise.
 */
int migrate_exit_status(json_t *q);

/* A state query-migrate stays in once reached. */
bool migrate_status_final(const char *status);

#endif
