/*
 * Unit tests for `ferry migrate`: option parsing, the progress line and the
 * report, and the whole command against a fake control server that plays
 * a scripted migration (real socket, no VM).
 */
#include <criterion/criterion.h>
#include <criterion/redirect.h>

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "control/control.h"
#include "control/control_proto.h"
#include "control/migrate_cli.h"

/* ---- option parsing ---------------------------------------------------------- */

#define ARGV(...) ((char *[]){ "migrate", __VA_ARGS__, NULL })
#define ARGC(v) ((int)(sizeof(v) / sizeof(v[0])) - 1)

static int parse(char **argv, int argc, struct migrate_cli_opts *o)
{
	return migrate_cli_parse(argc, argv, o);
}

#define PARSE(o, ...) parse(ARGV(__VA_ARGS__), ARGC(ARGV(__VA_ARGS__)), o)

static void assert_args(json_t *args, const char *want)
{
	char *s = json_dumps(args, JSON_COMPACT | JSON_SORT_KEYS);

	cr_assert_str_eq(s, want);
	free(s);
}

Test(migrate_cli_parse, all_options)
{
	struct migrate_cli_opts o;

	cr_assert_eq(PARSE(&o, "--control", "/s.sock", "--to", "tcp:h:4444",
			   "--downtime-ms=50", "--max-bandwidth", "1G",
			   "--max-rounds", "5", "--timeout-s=60",
			   "--switchover", "abort", "--idle-timeout-ms", "2500",
			   "--wait", "--json"), -1);
	cr_assert_str_eq(o.control, "/s.sock");
	cr_assert(o.wait && o.json);
	assert_args(o.args, "{\"downtime-ms\":50,\"idle-timeout-ms\":2500,"
		    "\"max-bandwidth\":1073741824,"
		    "\"max-rounds\":5,\"switchover\":\"abort\",\"timeout-s\":60,"
		    "\"uri\":\"tcp:h:4444\"}");
	migrate_cli_opts_free(&o);

	cr_assert_eq(PARSE(&o, "--to=tcp:h:1", "--control=/x", "--max-bandwidth",
			   "500M/s"), -1);
	cr_assert(!o.wait && !o.json);
	assert_args(o.args, "{\"max-bandwidth\":524288000,\"uri\":\"tcp:h:1\"}");
	migrate_cli_opts_free(&o);

	cr_assert_eq(PARSE(&o, "--to=tcp:h:1", "--control=/x", "--auto-converge"), -1);
	assert_args(o.args, "{\"auto-converge\":true,\"uri\":\"tcp:h:1\"}");
	migrate_cli_opts_free(&o);
	cr_assert_eq(PARSE(&o, "--to=tcp:h:1", "--control=/x", "--dirty-limit"), -1);
	assert_args(o.args, "{\"dirty-limit\":true,\"uri\":\"tcp:h:1\"}");
	migrate_cli_opts_free(&o);

	cr_assert_eq(PARSE(&o, "--to=tcp:h:1", "--control=/x", "--max-bandwidth",
			   "0"), -1);
	assert_args(o.args, "{\"max-bandwidth\":0,\"uri\":\"tcp:h:1\"}");
	migrate_cli_opts_free(&o);

	cr_assert_eq(PARSE(&o, "--to=tcp:h:1", "--control=/x", "--compression",
			   "zstd", "--zstd-level=3"), -1);
	assert_args(o.args, "{\"multifd-compression\":\"zstd\",\"multifd-zstd-level\":3,"
		    "\"uri\":\"tcp:h:1\"}");
	migrate_cli_opts_free(&o);
	cr_assert_eq(PARSE(&o, "--to=tcp:h:1", "--control=/x", "--channels", "4"), -1);
	assert_args(o.args, "{\"multifd-channels\":4,\"uri\":\"tcp:h:1\"}");
	migrate_cli_opts_free(&o);
	cr_assert_eq(PARSE(&o, "--to=tcp:h:1", "--control=/x", "--compression=lz4"), -1);
	assert_args(o.args, "{\"multifd-compression\":\"lz4\",\"uri\":\"tcp:h:1\"}");
	migrate_cli_opts_free(&o);
}

/* TLS for this migration: the path made absolute (the source process
 * reads it), plain on demand, one of the three at most. */
Test(migrate_cli_parse, tls_for_this_migration)
{
	struct migrate_cli_opts o;
	char cwd[4096], want[4200];
	cr_assert(getcwd(cwd, sizeof(cwd)));

	cr_assert_eq(PARSE(&o, "--control", "/s", "--to", "tcp:h:1", "--tls-creds", "."), -1);
	snprintf(want, sizeof(want), "{\"tls-creds\":\"%s\",\"uri\":\"tcp:h:1\"}", cwd);
	assert_args(o.args, want);
	migrate_cli_opts_free(&o);

	cr_assert_eq(PARSE(&o, "--control", "/s", "--to", "tcp:h:1", "--tls-psk=/dev/null"), -1);
	assert_args(o.args, "{\"tls-psk\":\"/dev/null\",\"uri\":\"tcp:h:1\"}");
	migrate_cli_opts_free(&o);

	cr_assert_eq(PARSE(&o, "--control", "/s", "--to", "tcp:h:1", "--no-tls"), -1);
	assert_args(o.args, "{\"tls-creds\":\"\",\"uri\":\"tcp:h:1\"}");
	migrate_cli_opts_free(&o);

	cr_redirect_stderr();
	cr_assert_eq(PARSE(&o, "--control", "/s", "--to", "tcp:h:1", "--tls-creds",
			   "/no/such/dir"), 2);
	cr_assert_eq(PARSE(&o, "--control", "/s", "--to", "tcp:h:1", "--no-tls",
			   "--tls-psk", "/dev/null"), 2);
	cr_assert_eq(PARSE(&o, "--control", "/s", "--to", "tcp:h:1", "--tls-psk",
			   "/dev/null", "--no-tls"), 2);
}

Test(migrate_cli_parse, usage_errors)
{
	struct migrate_cli_opts o;

	cr_redirect_stderr();
	cr_redirect_stdout();
	cr_assert_eq(PARSE(&o, "--to", "tcp:h:1"), 2);
	cr_assert_eq(PARSE(&o, "--control", "/x"), 2);
	cr_assert_eq(PARSE(&o, "--control", "/x", "--to"), 2);
	cr_assert_eq(PARSE(&o, "--control", "/x", "--to", "tcp:h:1", "--bogus"), 2);
	cr_assert_eq(PARSE(&o, "--control", "/x", "--to", "tcp:h:1", "extra"), 2);
	cr_assert_eq(PARSE(&o, "--control", "/x", "--to", "tcp:h:1",
			   "--max-rounds", "-1"), 2);
	cr_assert_eq(PARSE(&o, "--control", "/x", "--to", "tcp:h:1",
			   "--timeout-s", "31536001"), 2);
	cr_assert_eq(PARSE(&o, "--control", "/x", "--to", "tcp:h:1",
			   "--downtime-ms", "-5"), 2);
	cr_assert_eq(PARSE(&o, "--control", "/x", "--to", "tcp:h:1",
			   "--downtime-ms", "2000001"), 2);
	cr_assert_eq(PARSE(&o, "--control", "/x", "--to", "tcp:h:1",
			   "--max-bandwidth", "fast"), 2);
	cr_assert_eq(PARSE(&o, "--control", "/x", "--to", "tcp:h:1",
			   "--switchover", "maybe"), 2);
	cr_assert_eq(PARSE(&o, "--control", "/x", "--to", "tcp:h:1", "--json"), 2);
	cr_assert_eq(PARSE(&o, "--control", "/x", "--to", "tcp:h:1",
			   "--idle-timeout-ms", "99"), 2);
	cr_assert_eq(PARSE(&o, "--control", "/x", "--to", "tcp:h:1",
			   "--idle-timeout-ms", "86400001"), 2);
	cr_assert_eq(PARSE(&o, "--control", "/x", "--to", "tcp:h:1",
			   "--idle-timeout-ms", "3s"), 2);
	cr_assert_eq(PARSE(&o, "--control", "/x", "--to", "tcp:h:1",
			   "--max-roundsX", "1"), 2);
	cr_assert_eq(PARSE(&o, "--control", "/x", "--to", "tcp:h:1",
			   "--compression", "zlib"), 2);
	cr_assert_eq(PARSE(&o, "--control", "/x", "--to", "tcp:h:1",
			   "--zstd-level", "21"), 2);
	cr_assert_eq(PARSE(&o, "--control", "/x", "--to", "tcp:h:1",
			   "--zstd-level", "fast"), 2);
	cr_assert_eq(PARSE(&o, "--control", "/x", "--to", "tcp:h:1",
			   "--channels", "0"), 2);
	cr_assert_eq(PARSE(&o, "--control", "/x", "--to", "tcp:h:1",
			   "--channels", "17"), 2);
	cr_assert_eq(PARSE(&o, "--help"), 0);
	fflush(stderr);
	fflush(stdout);
}

Test(migrate_cli_parse, messages)
{
	struct migrate_cli_opts o;

	cr_redirect_stderr();
	cr_assert_eq(PARSE(&o, "--control", "/x", "--to", "tcp:h:1",
			   "--max-rounds", "x"), 2);
	cr_assert_eq(PARSE(&o, "--control", "/x", "--to", "udp:h:1"), 2);
	cr_assert_eq(PARSE(&o, "--control", "/x", "--to", "tcp:h:1",
			   "--idle-timeout-ms=50"), 2);
	fflush(stderr);
	cr_assert_stderr_eq_str(
		"ferry migrate: --max-rounds wants a whole number (0: no limit), not 'x'\n"
		"ferry migrate: --to: migration URI 'udp:h:1' is not tcp:HOST:PORT\n"
		"ferry migrate: --idle-timeout-ms wants milliseconds from 100 to 86400000, not '50'\n");
}

/* ---- formatting -------------------------------------------------------------- */

static json_t *j(const char *text)
{
	json_error_t jerr;
	json_t *v = json_loads(text, 0, &jerr);

	cr_assert_not_null(v, "bad test JSON: %s", jerr.text);
	return v;
}

/* The shape src/migration/stats.c produces. */
static const char *const active_json =
	"{\"status\": \"active\", \"total-time\": 420, \"setup-time\": 12,"
	" \"expected-downtime\": 35,"
	" \"ram\": {\"transferred\": 250000000, \"total\": 536870912,"
	"  \"remaining\": 20000000, \"duplicate\": 70000, \"normal\": 60000,"
	"  \"normal-bytes\": 245760000, \"mbps\": 3200.0,"
	"  \"dirty-sync-count\": 2, \"dirty-pages-rate\": 2500,"
	"  \"pages-per-second\": 300000.0},"
	" \"ferry\": {\"rounds\": ["
	"  {\"round\": 0, \"pages\": 131072, \"zero-pages\": 70000,"
	"   \"bytes\": 240000000, \"dirty-pages\": 4000, \"duration-ms\": 600.0,"
	"   \"mbps\": 3200.0},"
	"  {\"round\": 1, \"pages\": 4000, \"zero-pages\": 0,"
	"   \"bytes\": 16400000, \"dirty-pages\": 900, \"duration-ms\": 40.5,"
	"   \"mbps\": 3239.5}],"
	" \"convergence-reason\": \"\", \"wire-bytes\": 250000000,"
	" \"bandwidth-bytes-per-second\": 400000000,"
	" \"downtime-observed-by\": \"source\"}}";

Test(migrate_format, progress_line)
{
	json_t *q = j(active_json);
	char buf[256];

	migrate_format_progress(q, buf, sizeof(buf));
	cr_assert_str_eq(buf,
		"active 420 ms | round 2 | sent 238.4 MiB at 381.5 MiB/s"
		" | dirty 9.8 MiB/s | left 19.1 MiB (next round ~50 ms)"
		" | downtime ~35 ms");
	/* Without the "ferry" object: mbps (megabits) and dirty-sync-count. */
	json_object_del(q, "ferry");
	migrate_format_progress(q, buf, sizeof(buf));
	cr_assert_str_eq(buf,
		"active 420 ms | round 2 | sent 238.4 MiB at 381.5 MiB/s"
		" | dirty 9.8 MiB/s | left 19.1 MiB (next round ~50 ms)"
		" | downtime ~35 ms");
	json_decref(q);
}

Test(migrate_format, progress_line_tolerates_little)
{
	char buf[256], tiny[8];
	json_t *q = j("{\"status\": \"setup\"}");

	migrate_format_progress(q, buf, sizeof(buf));
	cr_assert_str_eq(buf, "setup");
	json_decref(q);
	q = j("{\"status\": \"device\", \"total-time\": 12345, \"ram\": {}}");
	migrate_format_progress(q, buf, sizeof(buf));
	cr_assert_str_eq(buf, "device (guest paused) 12.3 s");
	migrate_format_progress(q, tiny, sizeof(tiny));
	cr_assert_str_eq(tiny, "device ");
	json_decref(q);
	/* Setup: the counters are all zero and say nothing yet. */
	q = j("{\"status\": \"setup\", \"total-time\": 2.5,"
	      " \"ram\": {\"transferred\": 0, \"remaining\": 0}}");
	migrate_format_progress(q, buf, sizeof(buf));
	cr_assert_str_eq(buf, "setup 2.5 ms");
	json_decref(q);
	/* The round list may skip numbers (the final one is not pre-copy). */
	q = j("{\"status\": \"active\", \"ferry\": {\"rounds\": "
	      "[{\"round\": 0}, {\"round\": 2}]}}");
	migrate_format_progress(q, buf, sizeof(buf));
	cr_assert_str_eq(buf, "active | round 3");
	json_decref(q);
	q = j("{\"status\": \"active\", \"ferry\": {\"rounds\": []}}");
	migrate_format_progress(q, buf, sizeof(buf));
	cr_assert_str_eq(buf, "active | round 0");
	json_decref(q);
	q = j("[]");
	migrate_format_progress(q, buf, sizeof(buf));
	cr_assert_str_eq(buf, "?");
	json_decref(q);
}

static char *report(json_t *q)
{
	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);

	cr_assert_not_null(f);
	migrate_print_report(f, q);
	fclose(f);
	return text;
}

Test(migrate_format, report_completed)
{
	json_t *q = j(active_json);
	json_t *f = json_object_get(q, "ferry");
	char *text;

	json_object_set_new(q, "status", json_string("completed"));
	json_object_set_new(q, "total-time", json_integer(667));
	json_object_del(q, "expected-downtime");
	json_object_set_new(q, "downtime", json_integer(68));
	json_object_set_new(f, "downtime-us", json_integer(68400));
	json_object_set_new(f, "convergence-reason",
			    json_string("fits the downtime target"));
	text = report(q);
	cr_assert_str_eq(text,
		"migration completed\n"
		"  total time:   667 ms\n"
		"  downtime:     68.4 ms (as seen by the source)\n"
		"  setup time:   12 ms\n"
		"  data sent:    238.4 MiB for 512.0 MiB of guest RAM\n"
		"  throughput:   357.4 MiB/s (average)\n"
		"  pages:        60000 sent, 70000 zero (not sent)\n"
		"  rounds:       2\n"
		"    round  0:    131072 pages (70000 zero)  228.9 MiB in   600 ms  381.5 MiB/s, 4000 dirty at its start\n"
		"    round  1:      4000 pages (0 zero)   15.6 MiB in  40.5 ms  386.2 MiB/s, 900 dirty at its start\n"
		"  convergence:  fits the downtime target\n");
	free(text);
	json_decref(q);
}

/* The throttle line appears only with auto-converge. */
Test(migrate_format, report_throttle)
{
	json_t *q = j("{\"status\": \"completed\", \"ferry\": {\"throttle\":"
		      " {\"auto-converge\": true, \"percentage\": 0,"
		      " \"max-percentage\": 40, \"steps\": 3,"
		      " \"throttled-ms\": 2500}}}");
	char *text = report(q);
	cr_assert_str_eq(text,
		"migration completed\n"
		"  throttle:     guest slowed to 60% of its vCPU time (3 steps), "
		"2.50 s of vCPU time taken\n");
	free(text);
	json_decref(q);
	q = j("{\"status\": \"completed\", \"ferry\": {\"throttle\":"
	      " {\"auto-converge\": true, \"percentage\": 0, \"max-percentage\": 0,"
	      " \"steps\": 0,"
	      " \"throttled-ms\": 0}}}");
	text = report(q);
	cr_assert_str_eq(text, "migration completed\n"
			 "  throttle:     auto-converge on, never needed\n");
	free(text);
	json_decref(q);
	q = j("{\"status\": \"completed\", \"ferry\": {\"throttle\":"
	      " {\"auto-converge\": false, \"percentage\": 0}}}");
	text = report(q);
	cr_assert_str_eq(text, "migration completed\n");
	free(text);
	json_decref(q);
}

/* The dirty-limit line appears only when it was on. */
Test(migrate_format, report_dirty_limit)
{
	json_t *q = j("{\"status\": \"completed\", \"ferry\": {"
		      " \"throttle\": {\"auto-converge\": false, \"throttled-ms\": 1500},"
		      " \"dirty-limit\": {\"active\": false,"
		      " \"limit-bytes-per-second\": 1048576, \"vcpus\": ["
		      "  {\"cpu-index\": 0, \"dirty-rate\": 900000, \"throttle-percentage\": 85},"
		      "  {\"cpu-index\": 1, \"dirty-rate\": 0, \"throttle-percentage\": 0}]}}}");
	char *text = report(q);
	cr_assert_str_eq(text,
		"migration completed\n"
		"  dirty limit:  each vCPU held to 1.0 MiB/s of dirtied memory "
		"(last share up to 85%), 1.50 s of vCPU time taken\n");
	free(text);
	json_decref(q);
	q = j("{\"status\": \"completed\", \"ferry\": {"
	      " \"throttle\": {\"auto-converge\": false, \"throttled-ms\": 0},"
	      " \"dirty-limit\": {\"active\": false, \"vcpus\": []}}}");
	text = report(q);
	cr_assert_str_eq(text, "migration completed\n"
			 "  dirty limit:  on, never needed\n");
	free(text);
	json_decref(q);
}

/* The compression line appears only when one was used. */
Test(migrate_format, report_compression)
{
	json_t *q = j("{\"status\": \"completed\", \"ferry\": {\"compression\":"
		      " {\"method\": \"zstd\", \"bytes-before\": 400000000,"
		      " \"bytes-after\": 100000000, \"ratio\": 4.0,"
		      " \"compressed-batches\": 300, \"raw-batches\": 12}}}");
	char *text = report(q);
	cr_assert_str_eq(text,
		"migration completed\n"
		"  compression:  zstd, 381.5 MiB of pages sent as 95.4 MiB (ratio 4.00), "
		"12 batches sent raw (did not shrink)\n");
	free(text);
	json_decref(q);
	q = j("{\"status\": \"completed\", \"ferry\": {\"compression\":"
	      " {\"method\": \"none\", \"bytes-before\": 4, \"bytes-after\": 4}}}");
	text = report(q);
	cr_assert_str_eq(text, "migration completed\n");
	free(text);
	json_decref(q);
}

Test(migrate_format, report_failed_and_sparse)
{
	json_t *q = j("{\"status\": \"failed\", \"total-time\": 30500,"
		      " \"error-desc\": \"destination refused: not enough memory\","
		      " \"ram\": {\"transferred\": 0, \"dirty-sync-count\": 0}}");
	char *text = report(q);

	cr_assert_str_eq(text,
		"migration failed\n"
		"  total time:   30.5 s\n"
		"  data sent:    0 B\n"
		"  throughput:   0 B/s (average)\n"
		"  rounds:       0\n"
		"  error:        destination refused: not enough memory\n");
	free(text);
	json_decref(q);

	q = j("{}");
	text = report(q);
	cr_assert_str_eq(text, "migration (no status)\n");
	free(text);
	json_decref(q);
}

Test(migrate_format, report_unconfirmed_handover)
{
	json_t *q = j("{\"status\": \"failed\", \"error-desc\": \"COMMIT was sent ...\","
		      " \"ferry\": {\"handover\": {\"commit-sent\": true,"
		      " \"confirmed\": false, \"outcome\": \"unknown\"}}}");
	char *text = report(q);
	cr_assert_str_eq(text,
		"migration failed\n"
		"  error:        COMMIT was sent ...\n"
		"  hand-over:    COMMIT sent, never confirmed: the guest may run at the "
		"destination; it stays paused here (postmigrate-unknown)\n");
	free(text);
	json_decref(q);
}

Test(migrate_format, report_says_whether_encrypted)
{
	json_t *q = j("{\"status\": \"completed\", \"ferry\": {\"tls\": {\"enabled\": true,"
		      " \"version\": \"TLSv1.3\", \"cipher\": \"TLS_AES_256_GCM_SHA384\","
		      " \"auth\": \"x509\", \"peer\": \"/CN=ferry-server\"}}}");
	char *text = report(q);
	cr_assert_str_eq(text,
		"migration completed\n"
		"  encryption:   TLSv1.3 TLS_AES_256_GCM_SHA384, x509 (peer /CN=ferry-server)\n");
	free(text);
	json_decref(q);
	q = j("{\"status\": \"completed\", \"ferry\": {\"tls\": {\"enabled\": false}}}");
	text = report(q);
	cr_assert_str_eq(text, "migration completed\n  encryption:   none (plain TCP)\n");
	free(text);
	json_decref(q);
}

/* Exit 3 only for what the user must hear about: a forced switch-over
 * (switchover "force") whose pause exceeded the downtime limit. */
Test(migrate_format, exit_status)
{
	static const struct { const char *q; int want; } cases[] = {
		{ "{\"status\": \"completed\"}", 0 },
		{ "{\"status\": \"completed\", \"ferry\": {\"switchover-forced\": false,"
		  " \"downtime-exceeded\": true}}", 0 },
		{ "{\"status\": \"completed\", \"ferry\": {\"switchover-forced\": true,"
		  " \"downtime-exceeded\": false}}", 0 },
		{ "{\"status\": \"completed\", \"ferry\": {\"switchover-forced\": true,"
		  " \"downtime-exceeded\": true}}", MIGRATE_EXIT_DOWNTIME_EXCEEDED },
		{ "{\"status\": \"failed\", \"ferry\": {\"switchover-forced\": true,"
		  " \"downtime-exceeded\": true}}", 1 },
		{ "{\"status\": \"cancelled\"}", 1 },
		{ "{}", 1 },
	};
	cr_assert_eq(MIGRATE_EXIT_DOWNTIME_EXCEEDED, 3);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		json_t *q = j(cases[i].q);
		cr_expect_eq(migrate_exit_status(q), cases[i].want, "%s", cases[i].q);
		json_decref(q);
	}
}

Test(migrate_format, report_warns_of_a_forced_switchover_over_the_limit)
{
	json_t *q = j("{\"status\": \"completed\", \"downtime\": 8161,"
		      " \"ferry\": {\"downtime-us\": 8161700,"
		      " \"convergence-reason\": \"the dirty set stopped shrinking (forced)\","
		      " \"downtime-limit-ms\": 300, \"switchover-forced\": true,"
		      " \"downtime-exceeded\": true}}");
	char *text = report(q);
	cr_assert(strstr(text, "  warning:      the switch-over was forced (switchover "
			       "'force'): the pause exceeded the 300 ms downtime limit\n"),
		  "%s", text);
	free(text);
	/* Within the limit: no warning. */
	json_object_set_new(json_object_get(q, "ferry"), "downtime-exceeded",
			    json_false());
	text = report(q);
	cr_assert_null(strstr(text, "warning"), "%s", text);
	free(text);
	json_decref(q);
}

/* The source's own round number wins: during the stop-and-copy the last
 * listed round is the one being sent, not one after it. */
Test(migrate_format, progress_round_is_the_sources)
{
	json_t *q = j("{\"status\": \"device\", \"ferry\": {\"rounds\": "
		      "[{\"round\": 0}, {\"round\": 1}, {\"round\": 2}],"
		      " \"current-round\": 2}}");
	char buf[256];
	migrate_format_progress(q, buf, sizeof(buf));
	cr_assert_str_eq(buf, "device (guest paused) | round 2");
	json_decref(q);
	q = j("{\"status\": \"active\", \"ferry\": {\"rounds\": [],"
	      " \"current-round\": 0}}");
	migrate_format_progress(q, buf, sizeof(buf));
	cr_assert_str_eq(buf, "active | round 0");
	json_decref(q);
}

Test(migrate_format, report_of_many_rounds_says_how_many)
{
	json_t *q = j("{\"status\": \"completed\", \"ram\": {\"dirty-sync-count\": 300},"
		      " \"ferry\": {\"rounds\": [{\"round\": 298}, {\"round\": 299}]}}");
	char *text = report(q);
	cr_assert(strstr(text, "  rounds:       300 (the last 2 listed)\n"), "%s", text);
	free(text);
	json_decref(q);
}

Test(migrate_format, progress_says_it_waits)
{
	json_t *q = j("{\"status\": \"active\", \"ferry\": {\"rounds\": [],"
		      " \"not-converging\": \"the dirty set stopped shrinking: ...\"}}");
	char buf[256];
	migrate_format_progress(q, buf, sizeof(buf));
	cr_assert(strstr(buf, "| not converging: waiting for the rest to fit"), "%s", buf);
	json_decref(q);
}

Test(migrate_format, final_statuses)
{
	cr_assert(migrate_status_final("completed"));
	cr_assert(migrate_status_final("failed"));
	cr_assert(migrate_status_final("cancelled"));
	cr_assert(!migrate_status_final("cancelling"));
	cr_assert(!migrate_status_final("device"));
	cr_assert(!migrate_status_final("none"));
	cr_assert(!migrate_status_final(NULL));
}

/* ---- against a fake source ----------------------------------------------------- */

struct fake_source {
	const char *const *script;  /* query-migrate answers, in order */
	unsigned n;
	atomic_uint next;
	atomic_bool script_done;    /* the last answer has been given */
	const char *refuse;         /* migrate's error, or NULL */
	json_t *migrate_args;
	atomic_uint cancels;
};

static int fake_migrate(struct control_call *call)
{
	struct fake_source *fs = call->opaque;

	if (fs->refuse)
		return err_set(call->err, -EBUSY, "%s", fs->refuse);
	fs->migrate_args = json_deep_copy(call->args);
	return 0;
}

static int fake_cancel(struct control_call *call)
{
	struct fake_source *fs = call->opaque;

	atomic_fetch_add(&fs->cancels, 1);
	return 0;
}

static int fake_query(struct control_call *call)
{
	struct fake_source *fs = call->opaque;
	unsigned i = atomic_load(&fs->next);

	if (i + 1 < fs->n)
		atomic_store(&fs->next, i + 1);
	else
		atomic_store(&fs->script_done, true);
	call->ret = json_loads(fs->script[i], 0, NULL);
	return call->ret ? 0 : err_set(call->err, -EINVAL, "bad script");
}

static const struct control_cmd fake_table[] = {
	{ "migrate", fake_migrate, CONTROL_ARGS({ "uri", CONTROL_ARG_STRING, false },
		{ "max-rounds", CONTROL_ARG_UINT, true },
		{ "downtime-ms", CONTROL_ARG_UINT, true }) },
	{ "migrate-cancel", fake_cancel, NULL },
	{ "query-migrate", fake_query, NULL },
	{ NULL, NULL, NULL },
};

static char dir[64], sock_path[96];

static void setup(void)
{
	snprintf(dir, sizeof(dir), "/tmp/ferry-mig-cli-XXXXXX");
	cr_assert_not_null(mkdtemp(dir));
	snprintf(sock_path, sizeof(sock_path), "%s/src.sock", dir);
}

static void teardown(void)
{
	unlink(sock_path);
	rmdir(dir);
}

static struct control *serve(struct fake_source *fs)
{
	struct control *c = NULL;
	char err[ERR_MAX] = "";

	cr_assert_eq(control_server_start(&c, sock_path, fake_table, fs, err), 0,
		     "%s", err);
	return c;
}

static int run_cli(const char *a1, const char *a2, const char *a3)
{
	char *argv[] = { "migrate", "--control", sock_path, "--to", "tcp:d:4444",
			 (char *)a1, (char *)a2, (char *)a3, NULL };
	int argc = 5 + !!a1 + !!a2 + !!a3;

	return migrate_cli_main(argc, argv);
}

static const char *const good_script[] = {
	"{\"status\": \"setup\", \"total-time\": 1}",
	"{\"status\": \"active\", \"total-time\": 50, \"ram\": {\"transferred\": 1000000}}",
	"{\"status\": \"device\", \"total-time\": 100, \"ram\": {\"transferred\": 2000000}}",
	("{\"status\": \"completed\", \"total-time\": 120, \"downtime\": 9,"
	 " \"ram\": {\"transferred\": 3000000}}"),
};

TestSuite(migrate_cli, .init = setup, .fini = teardown, .timeout = 30);

Test(migrate_cli, wait_until_completed_json)
{
	struct fake_source fs = { .script = good_script, .n = 4 };
	struct control *c = serve(&fs);

	cr_redirect_stdout();
	cr_assert_eq(run_cli("--wait", "--json", "--max-rounds=3"), 0);
	control_stop(c);
	fflush(stdout);
	cr_assert_stdout_eq_str("{\"status\":\"completed\",\"total-time\":120,"
				"\"downtime\":9,\"ram\":{\"transferred\":3000000}}\n");
	char *s = json_dumps(fs.migrate_args, JSON_COMPACT | JSON_SORT_KEYS);
	cr_assert_str_eq(s, "{\"max-rounds\":3,\"uri\":\"tcp:d:4444\"}");
	free(s);
	json_decref(fs.migrate_args);
}

Test(migrate_cli, wait_until_completed_report)
{
	struct fake_source fs = { .script = good_script, .n = 4 };
	struct control *c = serve(&fs);

	cr_redirect_stdout();
	cr_assert_eq(run_cli("--wait", NULL, NULL), 0);
	control_stop(c);
	fflush(stdout);
	/* Not a terminal: no progress line, only the report. */
	cr_assert_stdout_eq_str("migration completed\n"
				"  total time:   120 ms\n"
				"  downtime:     9.0 ms\n"
				"  data sent:    2.9 MiB\n"
				"  throughput:   23.8 MiB/s (average)\n");
	json_decref(fs.migrate_args);
}

Test(migrate_cli, no_wait_and_refused)
{
	struct fake_source fs = { .script = good_script, .n = 4 };
	struct control *c = serve(&fs);

	cr_redirect_stdout();
	cr_redirect_stderr();
	cr_assert_eq(run_cli(NULL, NULL, NULL), 0);
	cr_assert_eq(atomic_load(&fs.next), 0, "polled without --wait");
	json_decref(fs.migrate_args);
	fs.migrate_args = NULL;
	fs.refuse = "a migration is already running";
	cr_assert_eq(run_cli("--wait", NULL, NULL), 1);
	control_stop(c);
	fflush(stderr);
	cr_assert_stderr_eq_str("ferry migrate: migration to tcp:d:4444 refused: "
				"a migration is already running\n");
}

Test(migrate_cli, failed_exits_1)
{
	static const char *const script[] = {
		"{\"status\": \"active\"}",
		"{\"status\": \"failed\", \"error-desc\": \"connection reset\"}",
	};
	struct fake_source fs = { .script = script, .n = 2 };
	struct control *c = serve(&fs);

	cr_redirect_stdout();
	cr_assert_eq(run_cli("--wait", NULL, NULL), 1);
	control_stop(c);
	fflush(stdout);
	cr_assert_stdout_eq_str("migration failed\n"
				"  error:        connection reset\n");
	json_decref(fs.migrate_args);
}

Test(migrate_cli, forced_over_the_limit_exits_3)
{
	static const char *const script[] = {
		"{\"status\": \"active\"}",
		("{\"status\": \"completed\", \"downtime\": 900, \"ferry\": "
		 "{\"downtime-limit-ms\": 300, \"switchover-forced\": true,"
		 " \"downtime-exceeded\": true}}"),
	};
	struct fake_source fs = { .script = script, .n = 2 };
	struct control *c = serve(&fs);

	cr_redirect_stdout();
	cr_assert_eq(run_cli("--wait", NULL, NULL), 3);
	fs.next = 0;
	fs.script_done = false;
	json_decref(fs.migrate_args);
	cr_assert_eq(run_cli("--wait", "--json", NULL), 3, "--json: another status");
	control_stop(c);
	json_decref(fs.migrate_args);
}

Test(migrate_cli, no_source)
{
	cr_redirect_stderr();
	cr_assert_eq(run_cli("--wait", NULL, NULL), 1);
	fflush(stderr);
	char want[256];
	snprintf(want, sizeof(want),
		 "ferry migrate: cannot connect to control socket %s: No such file or directory\n",
		 sock_path);
	cr_assert_stderr_eq_str(want);
}

struct cli_thread {
	pthread_t t;
	const char *a1, *a2;
	int status;
};

static void *cli_thread(void *opaque)
{
	struct cli_thread *ct = opaque;

	ct->status = run_cli(ct->a1, ct->a2, NULL);
	return NULL;
}

/* The source exits while in "device": the CLI cannot know the outcome. */
Test(migrate_cli, source_gone_during_device_is_an_error)
{
	static const char *const script[] = {
		"{\"status\": \"active\"}",
		"{\"status\": \"device\"}",
	};
	struct fake_source fs = { .script = script, .n = 2 };
	struct control *c = serve(&fs);
	struct cli_thread ct = { .a1 = "--wait" };

	cr_redirect_stderr();
	cr_redirect_stdout();
	cr_assert_eq(pthread_create(&ct.t, NULL, cli_thread, &ct), 0);
	while (!atomic_load(&fs.script_done))
		usleep(1000);
	control_stop(c);
	pthread_join(ct.t, NULL);
	cr_assert_eq(ct.status, 1);
	fflush(stderr);
	FILE *f = cr_get_redirected_stderr();
	char line[1024] = "";
	cr_assert_not_null(fgets(line, sizeof(line), f));
	cr_assert(strstr(line, "status 'device'") &&
		  strstr(line, "check the destination"), "%s", line);
	json_decref(fs.migrate_args);
}

/* The source exits earlier: a plain connection loss, also exit 1. */
Test(migrate_cli, source_gone_while_active)
{
	static const char *const script[] = { "{\"status\": \"active\"}" };
	struct fake_source fs = { .script = script, .n = 1 };
	struct control *c = serve(&fs);
	struct cli_thread ct = { .a1 = "--wait", .a2 = "--json" };

	cr_redirect_stderr();
	cr_redirect_stdout();
	cr_assert_eq(pthread_create(&ct.t, NULL, cli_thread, &ct), 0);
	while (!atomic_load(&fs.script_done))
		usleep(1000);
	control_stop(c);
	pthread_join(ct.t, NULL);
	cr_assert_eq(ct.status, 1);
	fflush(stderr);
	FILE *f = cr_get_redirected_stderr();
	char line[1024] = "";
	cr_assert_not_null(fgets(line, sizeof(line), f));
	cr_assert(strstr(line, "lost the source's control socket (last status 'active')"),
		  "%s", line);
	fflush(stdout);
	cr_assert_stdout_eq_str("");
	json_decref(fs.migrate_args);
}

/* The channels line appears only with page channels. */
Test(migrate_format, report_channels)
{
	json_t *q = j("{\"status\": \"completed\", \"ferry\": {\"channels\":"
		      " {\"count\": 2, \"per-channel\": [{\"channel\": 0, \"pages\": 700},"
		      " {\"channel\": 1, \"pages\": 650}]}}}");
	char *text = report(q);
	cr_assert_str_eq(text, "migration completed\n"
			 "  channels:     2, pages per channel: 700 650\n");
	free(text);
	json_decref(q);
	q = j("{\"status\": \"completed\", \"ferry\": {\"channels\":"
	      " {\"count\": 1, \"per-channel\": []}}}");
	text = report(q);
	cr_assert_str_eq(text, "migration completed\n");
	free(text);
	json_decref(q);
}

Test(migrate_format, report_postcopy)
{
	json_t *q = j("{\"status\": \"completed\", \"ferry\": {\"postcopy\":"
		      " {\"missing-pages\": 65536, \"pages-pushed\": 60000,"
		      " \"pages-requested\": 5600, \"prepage-hits\": 64,"
		      " \"duration-ms\": 850}}}");
	char *text = report(q);
	cr_assert_str_eq(text,
		"migration completed\n"
		"  post-copy:    65536 pages the destination lacked: 60000 pushed, "
		"5600 requested (64 already pushed), in 850 ms\n");
	free(text);
	json_decref(q);
}

Test(migrate_cli_parse, modes)
{
	struct migrate_cli_opts o;

	cr_assert_eq(PARSE(&o, "--to=tcp:h:1", "--control=/x", "--mode", "postcopy"), -1);
	assert_args(o.args, "{\"mode\":\"postcopy\",\"uri\":\"tcp:h:1\"}");
	migrate_cli_opts_free(&o);
	cr_assert_eq(PARSE(&o, "--to=tcp:h:1", "--control=/x", "--mode=hybrid",
			   "--precopy-rounds", "3", "--precopy-ms=1500"), -1);
	assert_args(o.args, "{\"mode\":\"hybrid\",\"precopy-ms\":1500,\"precopy-rounds\":3,"
		    "\"uri\":\"tcp:h:1\"}");
	migrate_cli_opts_free(&o);
	/* usage errors: exit 2 */
	cr_assert_eq(PARSE(&o, "--to=tcp:h:1", "--control=/x", "--mode", "fast"), 2);
	cr_assert_eq(PARSE(&o, "--to=tcp:h:1", "--control=/x", "--precopy-rounds", "2"), 2);
	cr_assert_eq(PARSE(&o, "--to=tcp:h:1", "--control=/x", "--mode", "postcopy",
			   "--precopy-ms", "10"), 2);
	cr_assert_eq(PARSE(&o, "--to=tcp:h:1", "--control=/x", "--mode", "hybrid",
			   "--precopy-rounds", "0"), 2);
}
