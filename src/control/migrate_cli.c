/*
 * migrate_cli.c - `ferry migrate`: start a migration through the source's
 * control socket and, with --wait, follow it to its end.
 *
 *   ferry migrate --control src.sock --to tcp:dst:4444 --wait
 *
 * Exit status (migrate_cli.h): 0 started (or, with --wait, completed),
 * 3 completed by a forced switch-over whose pause exceeded the limit, 1 refused, failed,
 * cancelled or lost track of, 2 usage.
 */
#include "control/control.h"
#include "control/control_client.h"
#include "control/control_migrate.h"
#include "control/migrate_cli.h"
#include "migration/multifd_send.h"
#include "migration/channel.h"
#include "migration/ram_codec.h"
#include "util/parse.h"

#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#define POLL_MS 50
/* Per request.  Commands run one at a time on the source's control thread,
 * so a slow one (snapshot-save) may hold ours up for a while. */
#define REQUEST_TIMEOUT_MS 30000
/* A started migration leaves "none" at once; staying there means the
 * source lost it, and waiting on would be forever. */
#define NONE_POLLS_MAX (5000 / POLL_MS)

static void usage(FILE *f)
{
	fprintf(f,
		"usage: ferry migrate --control PATH --to tcp:HOST:PORT [options]\n"
		"  Migrate the VM whose control socket is PATH to a destination\n"
		"  started with `ferry run --incoming tcp:HOST:PORT`.\n"
		"  --downtime-ms N        target pause, 1 to %llu (default: the\n"
		"                         source's, see migrate-set-parameters)\n"
		"  --max-bandwidth RATE   bytes per second, e.g. 500M, 1G; 0 = unlimited\n"
		"  --max-rounds N         pre-copy rounds at most (default 0: no limit)\n"
		"  --timeout-s N          pre-copy phase at most N seconds (default 0:\n"
		"                         no limit); at a limit the policy decides\n"
		"  --switchover POLICY    when the rest does not fit the downtime limit:\n"
		"                         'wait' (default: keep pushing, never exceed it;\n"
		"                         a round or time limit then fails the migration),\n"
		"                         'force' (pause and copy the rest anyway) or\n"
		"                         'abort' (fail as soon as it stops converging)\n"
		"  --idle-timeout-ms N    fail after N ms of a silent destination (a\n"
		"                         blocked send or an awaited reply), %llu to %llu;\n"
		"                         before the hand-over the guest runs on here\n"
		"  --compression NAME     page compression: none, zstd or lz4 (QEMU's\n"
		"                         multifd-compression); the destination must\n"
		"                         support it or it refuses the migration\n"
		"  --zstd-level N         zstd's level, 0 to %u (multifd-zstd-level)\n"
		"  --channels N           connections carrying pages, 1 to 16 (QEMU's\n"
		"                         multifd-channels); default 2, or 1 with xbzrle\n"
		"                         or --mode postcopy; a destination that cannot\n"
		"                         takes one\n"
		"  --mode MODE            precopy (default), postcopy (hand the guest over\n"
		"                         at once, pull the pages it lacks) or hybrid\n"
		"                         (pre-copy first, then post-copy)\n"
		"  --precopy-rounds N     hybrid: pre-copy rounds before the switch\n"
		"                         (default %d)\n"
		"  --precopy-ms N         hybrid: pre-copy milliseconds at most before the\n"
		"                         switch (default %d)\n"
		"  --tls-creds DIR        this migration over TLS with the X.509 files in\n"
		"                         DIR (ca-cert.pem, server-/client-cert.pem and\n"
		"                         -key.pem, as `ferry run --tls-creds`)\n"
		"  --tls-psk FILE         this migration over TLS with the pre-shared key\n"
		"                         in FILE (`ferry run --tls-psk`)\n"
		"  --no-tls               this migration plain, whatever the source was\n"
		"                         started with (QEMU's empty tls-creds)\n"
		"                         (without any: the source's own credentials, if\n"
		"                         it was started with some)\n"
		"  --auto-converge        slow the guest while it dirties memory faster\n"
		"                         than the link sends it (QEMU's auto-converge;\n"
		"                         migrate-set-parameters sets cpu-throttle-*)\n"
		"  --dirty-limit          instead, hold each vCPU to vcpu-dirty-limit MB/s\n"
		"                         of dirtied memory (QEMU's dirty-limit; the source\n"
		"                         must run with --dirty-ring)\n"
		"  --xbzrle[=SIZE]        send resent pages as deltas against a cache of\n"
		"                         SIZE (e.g. 256M; default the source's\n"
		"                         xbzrle-cache-size, 64M unless set); the\n"
		"                         capability xbzrle for this migration only\n"
		"  --resume               continue a paused post-copy (postcopy-paused) at\n"
		"                         --to, where the destination listens after\n"
		"                         migrate-recover (QEMU's migrate -r); other\n"
		"                         options are the paused migration's\n"
		"  --wait                 follow the migration to its end; Ctrl-C cancels it\n"
		"  --json                 with --wait, print the final query-migrate\n"
		"                         answer as one JSON line instead of a report\n"
		"  exit status: 0 started (with --wait: completed), 1 refused, failed,\n"
		"  cancelled or connection lost, 2 usage error, 3 (with --wait)\n"
		"  completed by a forced switch-over whose pause exceeded the limit\n",
		CONTROL_MIG_DOWNTIME_MAX_MS, CONTROL_MIG_IDLE_MIN_MS,
		CONTROL_MIG_IDLE_MAX_MS, RAM_ZSTD_LEVEL_MAX, MIG_HYBRID_ROUNDS_DEFAULT,
		MIG_HYBRID_MS_DEFAULT);
}

static int usage_error(const char *fmt, ...)
	__attribute__((format(printf, 1, 2)));
static int usage_error(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "ferry migrate: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return 2;
}

static int set_uint(json_t *args, const char *key, uint64_t v)
{
	return json_object_set_new(args, key, json_integer((json_int_t)v));
}

/* One option with its value; returns 0 or an exit status. */
static int parse_opt(struct migrate_cli_opts *o, const char *opt,
		     const char *val)
{
	uint64_t v;
	enum mig_policy pol;
	char rate[64];

	if (!strcmp(opt, "--control")) {
		o->control = val;
	} else if (!strcmp(opt, "--to")) {
		struct mig_uri u;
		char err[ERR_MAX];
		if (channel_parse_uri(val, &u, err) < 0)
			return usage_error("--to: %s", err);
		json_object_set_new(o->args, "uri", json_string(val));
	} else if (!strcmp(opt, "--downtime-ms")) {
		if (parse_uint(val, CONTROL_MIG_DOWNTIME_MAX_MS, &v) < 0 || !v)
			return usage_error("--downtime-ms wants milliseconds from 1 to %llu, not '%s'",
					   CONTROL_MIG_DOWNTIME_MAX_MS, val);
		set_uint(o->args, "downtime-ms", v);
	} else if (!strcmp(opt, "--max-bandwidth")) {
		/* "1G/s" reads naturally for a rate: allow the unit. */
		size_t n = strlen(val);
		snprintf(rate, sizeof(rate), "%s", n < sizeof(rate) ? val : "");
		if (n >= 2 && n < sizeof(rate) && !strcmp(rate + n - 2, "/s"))
			rate[n - 2] = '\0';
		if (parse_size(rate, &v) < 0 || v > INT64_MAX)
			return usage_error("--max-bandwidth wants bytes per second like 500M or 1G (0: unlimited), not '%s'",
					   val);
		set_uint(o->args, "max-bandwidth", v);
	} else if (!strcmp(opt, "--max-rounds")) {
		if (parse_uint(val, INT64_MAX, &v) < 0)
			return usage_error("--max-rounds wants a whole number (0: no limit), not '%s'",
					   val);
		set_uint(o->args, "max-rounds", v);
	} else if (!strcmp(opt, "--timeout-s")) {
		if (parse_uint(val, CONTROL_MIG_TIMEOUT_MAX_S, &v) < 0)
			return usage_error("--timeout-s wants whole seconds from 0 (no limit) to %llu, not '%s'",
					   CONTROL_MIG_TIMEOUT_MAX_S, val);
		set_uint(o->args, "timeout-s", v);
	} else if (!strcmp(opt, "--idle-timeout-ms")) {
		if (parse_uint(val, CONTROL_MIG_IDLE_MAX_MS, &v) < 0 ||
		    v < CONTROL_MIG_IDLE_MIN_MS)
			return usage_error("--idle-timeout-ms wants milliseconds from %llu to %llu, not '%s'",
					   CONTROL_MIG_IDLE_MIN_MS,
					   CONTROL_MIG_IDLE_MAX_MS, val);
		set_uint(o->args, "idle-timeout-ms", v);
	} else if (!strcmp(opt, "--switchover")) {
		if (mig_policy_parse(val, &pol) < 0)
			return usage_error("--switchover wants 'wait', 'force' or 'abort', not '%s'",
					   val);
		json_object_set_new(o->args, "switchover", json_string(val));
	} else if (!strcmp(opt, "--compression")) {
		if (!ram_encoding_by_name(val))
			return usage_error("--compression wants none, zstd or lz4, not '%s'",
					   val);
		json_object_set_new(o->args, "multifd-compression", json_string(val));
	} else if (!strcmp(opt, "--zstd-level")) {
		if (parse_uint(val, RAM_ZSTD_LEVEL_MAX, &v) < 0)
			return usage_error("--zstd-level wants a level from 0 to %u, not '%s'",
					   RAM_ZSTD_LEVEL_MAX, val);
		set_uint(o->args, "multifd-zstd-level", v);
	} else if (!strcmp(opt, "--channels")) {
		if (parse_uint(val, MF_MAX_CHANNELS, &v) < 0 || v < 1)
			return usage_error("--channels wants a number of connections from 1 to %u, "
					   "not '%s'", MF_MAX_CHANNELS, val);
		set_uint(o->args, "multifd-channels", v);
	} else if (!strcmp(opt, "--tls-creds") || !strcmp(opt, "--tls-psk")) {
		/* The source process reads it: a path relative to here would
		 * mean something else there. */
		char *abs = realpath(val, NULL);
		if (!abs)
			return usage_error("%s %s: %s", opt, val, strerror(errno));
		if (json_object_get(o->args, "tls-creds") || json_object_get(o->args, "tls-psk")) {
			free(abs);
			return usage_error("--tls-creds, --tls-psk and --no-tls exclude each other");
		}
		json_object_set_new(o->args, opt + 2, json_string(abs));
		free(abs);
	} else if (!strcmp(opt, "--mode")) {
		enum mig_mode m;
		if (mig_mode_parse(val, &m) < 0)
			return usage_error("--mode wants precopy, postcopy or hybrid, not '%s'",
					   val);
		json_object_set_new(o->args, "mode", json_string(val));
	} else if (!strcmp(opt, "--precopy-rounds")) {
		if (parse_uint(val, UINT32_MAX, &v) < 0 || !v)
			return usage_error("--precopy-rounds wants a number of rounds from 1, not '%s'",
					   val);
		set_uint(o->args, "precopy-rounds", v);
	} else if (!strcmp(opt, "--precopy-ms")) {
		if (parse_uint(val, CONTROL_MIG_TIMEOUT_MAX_S * 1000, &v) < 0 || !v)
			return usage_error("--precopy-ms wants milliseconds from 1 to %llu, not '%s'",
					   CONTROL_MIG_TIMEOUT_MAX_S * 1000, val);
		set_uint(o->args, "precopy-ms", v);
	}
	return 0;
}

static const char *const valued_opts[] = {
	"--control", "--to", "--downtime-ms", "--max-bandwidth",
	"--max-rounds", "--timeout-s", "--switchover", "--idle-timeout-ms",
	"--compression", "--zstd-level", "--channels", "--mode", "--precopy-rounds",
	"--precopy-ms", "--tls-creds", "--tls-psk", NULL,
};

/* The valued option a names, with its length before any '='. */
static const char *valued_opt(const char *a, size_t *len)
{
	for (const char *const *o = valued_opts; *o; o++) {
		size_t n = strlen(*o);
		if (!strncmp(a, *o, n) && (a[n] == '\0' || a[n] == '=')) {
			*len = n;
			return *o;
		}
	}
	return NULL;
}

int migrate_cli_parse(int argc, char **argv, struct migrate_cli_opts *o)
{
	int ret;

	*o = (struct migrate_cli_opts){ .args = json_object() };
	if (!o->args) {
		fprintf(stderr, "ferry migrate: out of memory\n");
		return 2;
	}
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *opt, *val;
		size_t n;

		if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
			usage(stdout);
			ret = 0;
			goto fail;
		}
		if (!strcmp(a, "--wait")) {
			o->wait = true;
			continue;
		}
		if (!strcmp(a, "--json")) {
			o->json = true;
			continue;
		}
		if (!strcmp(a, "--no-tls")) {
			if (json_object_get(o->args, "tls-creds") ||
			    json_object_get(o->args, "tls-psk")) {
				ret = usage_error("--tls-creds, --tls-psk and --no-tls exclude "
						  "each other");
				goto fail;
			}
			json_object_set_new(o->args, "tls-creds", json_string(""));
			continue;
		}
		if (!strcmp(a, "--resume")) {
			json_object_set_new(o->args, "resume", json_true());
			continue;
		}
		if (!strcmp(a, "--auto-converge") || !strcmp(a, "--dirty-limit")) {
			json_object_set_new(o->args, a + 2, json_true());
			continue;
		}
		if (!strcmp(a, "--xbzrle") || !strncmp(a, "--xbzrle=", 9)) {
			uint64_t size;
			json_object_set_new(o->args, "xbzrle", json_true());
			if (a[8] == '=' &&
			    (parse_size(a + 9, &size) < 0 || size < CONTROL_MIG_XBZRLE_CACHE_MIN ||
			     size > CONTROL_MIG_XBZRLE_CACHE_MAX)) {
				ret = usage_error("--xbzrle=SIZE wants a cache size from 4K to 1T "
						  "like 64M or 1G, not '%s'", a + 9);
				goto fail;
			}
			if (a[8] == '=')
				set_uint(o->args, "xbzrle-cache-size", size);
			continue;
		}
		opt = valued_opt(a, &n);
		if (!opt) {
			ret = usage_error(a[0] == '-' ? "unknown option %s"
					  : "unexpected argument '%s'", a);
			usage(stderr);
			goto fail;
		}
		if (a[n] == '=') {
			val = a + n + 1;
		} else if (i + 1 < argc) {
			val = argv[++i];
		} else {
			ret = usage_error("%s needs a value", opt);
			goto fail;
		}
		ret = parse_opt(o, opt, val);
		if (ret)
			goto fail;
	}
	ret = 2;
	if (!o->control || !*o->control) {
		usage_error("--control PATH (the source's control socket) is required");
		goto fail;
	}
	if (!json_object_get(o->args, "uri")) {
		usage_error("--to tcp:HOST:PORT (the destination) is required");
		goto fail;
	}
	const char *mode = json_string_value(json_object_get(o->args, "mode"));
	if ((json_object_get(o->args, "precopy-rounds") ||
	     json_object_get(o->args, "precopy-ms")) &&
	    (!mode || strcmp(mode, "hybrid"))) {
		usage_error("--precopy-rounds and --precopy-ms go with --mode hybrid");
		goto fail;
	}
	if (o->json && !o->wait) {
		usage_error("--json goes with --wait");
		goto fail;
	}
	return -1;
fail:
	migrate_cli_opts_free(o);
	return ret;
}

void migrate_cli_opts_free(struct migrate_cli_opts *o)
{
	json_decref(o->args);
	o->args = NULL;
}

/* ---- following a migration -------------------------------------------------- */

static volatile sig_atomic_t interrupted;

static void on_signal(int sig)
{
	(void)sig;
	interrupted = 1;
}

static void sleep_ms(int ms)
{
	struct timespec ts = { .tv_sec = ms / 1000,
			       .tv_nsec = (long)(ms % 1000) * 1000000 };

	/* A signal cuts the nap short, which is what Ctrl-C wants. */
	nanosleep(&ts, NULL);
}

/* Ctrl-C while waiting cancels the migration (the VM stays on the source)
 * and waits for the source to confirm; a second one leaves at once. */
static void cancel_once(struct ctl_conn *c, struct sigaction *old)
{
	json_t *ret = NULL;
	char err[ERR_MAX];

	sigaction(SIGINT, &old[0], NULL);
	sigaction(SIGTERM, &old[1], NULL);
	fprintf(stderr, "\nferry migrate: cancelling (Ctrl-C again to stop waiting)\n");
	if (ctl_execute(c, "migrate-cancel", NULL, &ret, err) < 0)
		fprintf(stderr, "ferry migrate: migrate-cancel: %s\n", err);
	json_decref(ret);
}

/* A line wider than the terminal wraps, and '\r' then redraws only its
 * last part: cut it to the width instead. */
static void fit_terminal(char *line)
{
	struct winsize ws;

	if (ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 1 &&
	    strlen(line) >= ws.ws_col)
		line[ws.ws_col - 1] = '\0';
}

/*
 * Poll query-migrate until a final status.  Returns 0 with *last the final
 * answer, or -1 after reporting why it could not tell (*last is then the
 * last answer seen, or NULL).
 */
static int follow(struct ctl_conn *c, bool progress, json_t **last)
{
	struct sigaction sa = { .sa_handler = on_signal }, old[2];
	bool cancelled = false, drawn = false;
	unsigned none_polls = 0;
	char line[256], err[ERR_MAX];
	int ret = -1;

	interrupted = 0;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, &old[0]);
	sigaction(SIGTERM, &sa, &old[1]);
	*last = NULL;
	for (;;) {
		json_t *q = NULL;
		const char *status;

		if (interrupted && !cancelled) {
			cancelled = true;
			cancel_once(c, old);
		}
		int rc = ctl_execute(c, "query-migrate", NULL, &q, err);
		if (rc < 0) {
			const char *was = json_string_value(
				json_object_get(*last, "status"));
			if (drawn)
				printf("\n");
			if (ctl_is_disconnect(rc) && was && !strcmp(was, "device"))
				fprintf(stderr,
					"ferry migrate: the source's control socket went away during the final stop-and-copy (status 'device'), before it reported completion: whether the destination runs the VM is unknown; check the destination (%s)\n",
					err);
			else if (ctl_is_disconnect(rc))
				fprintf(stderr,
					"ferry migrate: lost the source's control socket (last status '%s'): %s\n",
					was ? was : "none", err);
			else
				fprintf(stderr, "ferry migrate: query-migrate: %s\n",
					err);
			goto out;
		}
		json_decref(*last);
		*last = q;
		status = json_string_value(json_object_get(q, "status"));
		if (progress) {
			migrate_format_progress(q, line, sizeof(line));
			fit_terminal(line);
			/* \033[K: a shorter line must not leave the tail of
			 * the longer one before it. */
			printf("\r%s\033[K", line);
			fflush(stdout);
			drawn = true;
		}
		if (migrate_status_final(status)) {
			ret = 0;
			break;
		}
		if (status && !strcmp(status, "none") &&
		    ++none_polls > NONE_POLLS_MAX) {
			if (drawn)
				printf("\n");
			fprintf(stderr,
				"ferry migrate: the source reports no migration in progress\n");
			goto out;
		}
		sleep_ms(POLL_MS);
	}
	if (drawn)
		printf("\r\033[K");
out:
	if (!cancelled) {
		sigaction(SIGINT, &old[0], NULL);
		sigaction(SIGTERM, &old[1], NULL);
	}
	fflush(stdout);
	return ret;
}

int migrate_cli_main(int argc, char **argv)
{
	struct migrate_cli_opts o;
	struct ctl_conn c = { .fd = -1 };
	json_t *ret = NULL, *last = NULL;
	const char *uri;
	char err[ERR_MAX];
	int status;

	status = migrate_cli_parse(argc, argv, &o);
	if (status >= 0)
		return status;
	status = 1;
	uri = json_string_value(json_object_get(o.args, "uri"));
	if (ctl_connect(&c, o.control, REQUEST_TIMEOUT_MS, err) < 0) {
		fprintf(stderr, "ferry migrate: %s\n", err);
		goto out;
	}
	if (ctl_execute(&c, "migrate", o.args, &ret, err) < 0) {
		fprintf(stderr, "ferry migrate: migration to %s refused: %s\n",
			uri, err);
		goto out;
	}
	if (!o.wait) {
		printf("migration to %s started; `ferry ctl --control %s '{\"execute\": \"query-migrate\"}'` follows it\n",
		       uri, o.control);
		status = 0;
		goto out;
	}
	if (follow(&c, !o.json && isatty(STDOUT_FILENO), &last) < 0)
		goto out;
	if (o.json) {
		char *s = json_dumps(last, JSON_COMPACT);
		printf("%s\n", s ? s : "{}");
		free(s);
	} else {
		migrate_print_report(stdout, last);
	}
	status = migrate_exit_status(last);
out:
	fflush(stdout);
	ctl_close(&c);
	json_decref(ret);
	json_decref(last);
	migrate_cli_opts_free(&o);
	return status;
}
