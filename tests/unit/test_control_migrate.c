/*
 * Unit tests for the migration commands' argument checking and parameter
 * merging (control_migrate.c), without a VM.
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <string.h>

#include "control/control_migrate.h"
#include "migration/ram_codec.h"

static json_t *args(const char *text)
{
	json_error_t jerr;
	json_t *j = json_loads(text, 0, &jerr);

	cr_assert_not_null(j, "bad test JSON %s: %s", text, jerr.text);
	return j;
}

/* Field by field: padding bytes are not part of the value. */
static bool params_eq(const struct mig_params *a, const struct mig_params *b)
{
	return a->downtime_ms == b->downtime_ms &&
	       a->max_bandwidth == b->max_bandwidth &&
	       a->max_rounds == b->max_rounds &&
	       a->timeout_s == b->timeout_s && a->policy == b->policy &&
	       a->idle_timeout_ms == b->idle_timeout_ms &&
	       a->keep_source == b->keep_source && a->fault == b->fault &&
	       a->compression == b->compression && a->zstd_level == b->zstd_level &&
	       a->ac.enabled == b->ac.enabled && a->ac.initial == b->ac.initial &&
	       a->ac.increment == b->ac.increment && a->ac.max == b->ac.max &&
	       a->ac.trigger == b->ac.trigger && a->ac.tailslow == b->ac.tailslow &&
	       a->dl.enabled == b->dl.enabled && a->dl.mbps == b->dl.mbps &&
	       a->dl.period_ms == b->dl.period_ms;
}

/* Check against spec, then merge into p; returns the first error. */
static int apply(const struct control_arg *spec, struct mig_params *p,
		 const char *text, char *err)
{
	json_t *a = args(text);
	int ret = control_check_args(spec, a, err);

	if (!ret)
		ret = control_mig_params_merge(p, a, err);
	json_decref(a);
	return ret;
}

Test(control_migrate, empty_args_keep_params)
{
	struct mig_params p, d;
	char err[ERR_MAX] = "";

	mig_params_default(&p);
	d = p;
	cr_assert_eq(apply(control_migrate_set_parameters_args, &p, "{}", err), 0);
	cr_assert(params_eq(&p, &d));
}

Test(control_migrate, migrate_overrides_only_what_is_given)
{
	struct mig_params p;
	char err[ERR_MAX] = "";

	mig_params_default(&p);
	p.max_rounds = 7;
	cr_assert_eq(apply(control_migrate_args, &p,
			   "{\"uri\": \"tcp:h:1\", \"downtime-ms\": 50, "
			   "\"max-bandwidth\": 0, \"switchover\": \"abort\"}",
			   err), 0, "%s", err);
	cr_assert_eq(p.downtime_ms, 50);
	cr_assert_eq(p.max_bandwidth, 0);
	cr_assert_eq(p.max_rounds, 7);
	cr_assert_eq(p.timeout_s, 0);
	cr_assert_eq(p.policy, MIG_POLICY_ABORT);

	cr_assert_eq(apply(control_migrate_args, &p,
			   "{\"uri\": \"tcp:h:1\", \"max-bandwidth\": 1000000000, "
			   "\"max-rounds\": 1, \"timeout-s\": 1, "
			   "\"switchover\": \"switchover\"}", err), 0, "%s", err);
	cr_assert_eq(p.max_bandwidth, 1000000000);
	cr_assert_eq(p.max_rounds, 1);
	cr_assert_eq(p.timeout_s, 1);
	cr_assert_eq(p.policy, MIG_POLICY_FORCE, "'switchover' is the old name of 'force'");
	cr_assert_eq(p.downtime_ms, 50);

	cr_assert_eq(apply(control_migrate_args, &p,
			   "{\"uri\": \"tcp:h:1\", \"max-rounds\": 0, \"timeout-s\": 0, "
			   "\"switchover\": \"wait\"}", err), 0, "%s", err);
	cr_assert_eq(p.max_rounds, 0, "0: no round limit");
	cr_assert_eq(p.timeout_s, 0, "0: no time limit");
	cr_assert_eq(p.policy, MIG_POLICY_WAIT);
	cr_assert_eq(apply(control_migrate_args, &p,
			   "{\"uri\": \"tcp:h:1\", \"switchover\": \"force\"}", err),
		     0, "%s", err);
	cr_assert_eq(p.policy, MIG_POLICY_FORCE);
}

/* The defaults never let a pause exceed the downtime limit unasked: the
 * policy waits, and no round or time limit is set (as in QEMU). */
Test(control_migrate, defaults_never_force)
{
	struct mig_params p;

	mig_params_default(&p);
	cr_assert_eq(p.policy, MIG_POLICY_WAIT);
	cr_assert_eq(p.max_rounds, 0);
	cr_assert_eq(p.timeout_s, 0);
	cr_assert_eq(p.downtime_ms, 300);
	cr_assert_str_eq(mig_policy_name(p.policy), "wait");
}

Test(control_migrate, migrate_needs_uri_and_its_own_names)
{
	struct mig_params p;
	char err[ERR_MAX] = "";

	mig_params_default(&p);
	cr_assert_eq(apply(control_migrate_args, &p, "{\"max-rounds\": 3}", err),
		     -EINVAL);
	cr_assert_str_eq(err, "Parameter 'uri' is missing");
	/* QEMU's name belongs to migrate-set-parameters. */
	cr_assert_eq(apply(control_migrate_args, &p,
			   "{\"uri\": \"tcp:h:1\", \"downtime-limit\": 3}", err),
		     -EINVAL);
	cr_assert_str_eq(err, "Parameter 'downtime-limit' is unexpected");
	cr_assert_eq(apply(control_migrate_args, &p,
			   "{\"uri\": \"tcp:h:1\", \"max-rounds\": -1}", err),
		     -EINVAL);
	cr_assert_str_eq(err,
			 "Invalid parameter type for 'max-rounds', expected: non-negative integer");
	cr_assert_eq(apply(control_migrate_args, &p,
			   "{\"uri\": 5}", err), -EINVAL);
	cr_assert_eq(apply(control_migrate_args, &p,
			   "{\"uri\": \"tcp:h:1\", \"switchover\": true}", err),
		     -EINVAL);
	cr_assert_eq(p.max_rounds, 0);
}

Test(control_migrate, ranges_are_named)
{
	static const struct { const char *args, *msg; } cases[] = {
		{ "{\"timeout-s\": 31536001}",
		  "Parameter 'timeout-s' expects a value between 0 and 31536000 (seconds, 0: no limit)" },
		{ "{\"downtime-limit\": 0}",
		  "Parameter 'downtime-limit' expects a value between 1 and 2000000 (milliseconds)" },
		{ "{\"downtime-ms\": 2000001}",
		  "Parameter 'downtime-ms' expects a value between 1 and 2000000 (milliseconds)" },
		{ "{\"switchover\": \"postcopy\"}",
		  "Parameter 'switchover' expects 'wait', 'force' or 'abort', not 'postcopy'" },
		{ "{\"downtime-limit\": 10, \"downtime-ms\": 20}",
		  "Parameters 'downtime-limit' (10) and 'downtime-ms' (20) disagree; give one" },
		{ "{\"idle-timeout-ms\": 99}",
		  "Parameter 'idle-timeout-ms' expects a value between 100 and 86400000 (milliseconds)" },
		{ "{\"idle-timeout-ms\": 86400001}",
		  "Parameter 'idle-timeout-ms' expects a value between 100 and 86400000 (milliseconds)" },
		{ "{\"max-bandwidth\": 1.5}",
		  "Invalid parameter type for 'max-bandwidth', expected: non-negative integer" },
		{ "{\"multifd-compression\": \"zlib\"}",
		  "Parameter 'multifd-compression' expects 'none', 'zstd' or 'lz4', not 'zlib'" },
		{ "{\"multifd-compression\": \"\"}",
		  "Parameter 'multifd-compression' expects 'none', 'zstd' or 'lz4', not ''" },
		{ "{\"multifd-zstd-level\": 21}",
		  "Parameter 'multifd-zstd-level' expects a value between 0 and 20" },
		{ "{\"multifd-zstd-level\": -1}",
		  "Invalid parameter type for 'multifd-zstd-level', expected: non-negative integer" },
		{ "{\"multifd-channels\": 0}",
		  "Parameter 'multifd-channels' expects a value between 1 and 16" },
		{ "{\"multifd-channels\": 17}",
		  "Parameter 'multifd-channels' expects a value between 1 and 16" },
		/* a good value beside a bad one is not applied either */
		{ "{\"multifd-compression\": \"zstd\", \"multifd-zstd-level\": 99}",
		  "Parameter 'multifd-zstd-level' expects a value between 0 and 20" },
	};
	char err[ERR_MAX];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct mig_params p, d;

		mig_params_default(&p);
		d = p;
		err[0] = '\0';
		cr_assert_eq(apply(control_migrate_set_parameters_args, &p,
				   cases[i].args, err), -EINVAL, "%s", cases[i].args);
		cr_assert_str_eq(err, cases[i].msg);
		cr_assert(params_eq(&p, &d),
			     "%s changed the parameters", cases[i].args);
	}
}

Test(control_migrate, failure_is_all_or_nothing)
{
	struct mig_params p, d;
	char err[ERR_MAX];

	mig_params_default(&p);
	d = p;
	/* Valid members before the bad one must not be applied either. */
	cr_assert_eq(apply(control_migrate_set_parameters_args, &p,
			   "{\"downtime-limit\": 5, \"max-bandwidth\": 9, "
			   "\"switchover\": \"nope\"}", err), -EINVAL);
	cr_assert(params_eq(&p, &d));
}

Test(control_migrate, set_parameters_aliases)
{
	struct mig_params p;
	char err[ERR_MAX] = "";

	mig_params_default(&p);
	cr_assert_eq(apply(control_migrate_set_parameters_args, &p,
			   "{\"downtime-limit\": 120}", err), 0);
	cr_assert_eq(p.downtime_ms, 120);
	cr_assert_eq(apply(control_migrate_set_parameters_args, &p,
			   "{\"downtime-ms\": 80}", err), 0);
	cr_assert_eq(p.downtime_ms, 80);
	cr_assert_eq(apply(control_migrate_set_parameters_args, &p,
			   "{\"downtime-ms\": 2000000, \"downtime-limit\": 2000000}",
			   err), 0);
	cr_assert_eq(p.downtime_ms, 2000000);
	cr_assert_eq(apply(control_migrate_set_parameters_args, &p,
			   "{\"uri\": \"tcp:h:1\"}", err), -EINVAL);
	cr_assert_str_eq(err, "Parameter 'uri' is unexpected");
}

Test(control_migrate, query_parameters_shape)
{
	struct mig_params p;
	json_t *j;
	char *s;

	mig_params_default(&p);
	p.max_bandwidth = 500000000;
	p.policy = MIG_POLICY_ABORT;
	j = control_mig_params_json(&p);
	cr_assert_not_null(j);
	s = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);
	cr_assert_str_eq(s, "{\"cpu-throttle-increment\":10,\"cpu-throttle-initial\":20,"
			 "\"cpu-throttle-tailslow\":false,"
			 "\"downtime-limit\":300,\"idle-timeout-ms\":30000,"
			 "\"max-bandwidth\":500000000,\"max-cpu-throttle\":99,"
			 "\"max-rounds\":0,\"multifd-channels\":2,\"multifd-compression\":\"none\","
			 "\"multifd-zstd-level\":1,\"switchover\":\"abort\","
			 "\"throttle-trigger-threshold\":50,\"timeout-s\":0,"
			 "\"vcpu-dirty-limit\":1,\"x-vcpu-dirty-limit-period\":1000,"
			 "\"xbzrle-cache-size\":67108864}");
	free(s);

	/* What query-migrate-parameters says, migrate-set-parameters takes. */
	struct mig_params q;
	char err[ERR_MAX] = "";
	mig_params_default(&q);
	cr_assert_eq(control_check_args(control_migrate_set_parameters_args, j,
					err), 0, "%s", err);
	cr_assert_eq(control_mig_params_merge(&q, j, err), 0, "%s", err);
	cr_assert(params_eq(&p, &q));
	json_decref(j);
}

Test(control_migrate, idle_timeout_both_commands)
{
	struct mig_params p;
	char err[ERR_MAX] = "";

	mig_params_default(&p);
	cr_assert_eq(p.idle_timeout_ms, 30000);
	cr_assert_eq(apply(control_migrate_set_parameters_args, &p,
			   "{\"idle-timeout-ms\": 2500}", err), 0, "%s", err);
	cr_assert_eq(p.idle_timeout_ms, 2500);
	cr_assert_eq(apply(control_migrate_args, &p,
			   "{\"uri\": \"tcp:h:1\", \"idle-timeout-ms\": 100}", err),
		     0, "%s", err);
	cr_assert_eq(p.idle_timeout_ms, 100);
	cr_assert_eq(apply(control_migrate_args, &p,
			   "{\"uri\": \"tcp:h:1\", \"idle-timeout-ms\": \"1s\"}",
			   err), -EINVAL);
	cr_assert_eq(p.idle_timeout_ms, 100);
}

/* The test switches belong to one migration, never to the defaults. */
Test(control_migrate, test_switches_only_on_migrate)
{
	struct mig_params p;
	char err[ERR_MAX] = "";
	enum mig_fault f;

	mig_params_default(&p);
	cr_assert_eq(p.fault, MIG_FAULT_NONE);
	cr_assert(!p.keep_source);
	cr_assert_eq(apply(control_migrate_set_parameters_args, &p,
			   "{\"x-fault\": \"round0\"}", err), -EINVAL);
	cr_assert_str_eq(err, "Parameter 'x-fault' is unexpected");
	cr_assert_eq(apply(control_migrate_set_parameters_args, &p,
			   "{\"x-keep-source\": true}", err), -EINVAL);
	cr_assert_eq(apply(control_migrate_args, &p,
			   "{\"uri\": \"tcp:h:1\", \"x-keep-source\": 1}", err),
		     -EINVAL, "x-keep-source must be a boolean");
	cr_assert_eq(apply(control_migrate_args, &p,
			   "{\"uri\": \"tcp:h:1\", \"x-keep-source\": true, "
			   "\"x-fault\": \"device\"}", err), 0, "%s", err);

	static const struct { const char *name; enum mig_fault f; } names[] = {
		{ "round0", MIG_FAULT_ROUND0 }, { "round1", MIG_FAULT_LATER_ROUND },
		{ "device", MIG_FAULT_DEVICE }, { "after-ready", MIG_FAULT_AFTER_READY },
		{ "after-commit", MIG_FAULT_AFTER_COMMIT },
	};
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		cr_assert_eq(mig_fault_parse(names[i].name, &f), 0, "%s",
			     names[i].name);
		cr_assert_eq(f, names[i].f, "%s", names[i].name);
	}
	cr_assert_eq(mig_fault_parse("before-commit", &f), -EINVAL);
	cr_assert_eq(mig_fault_parse("", &f), -EINVAL);
	cr_assert_eq(mig_fault_parse(NULL, &f), -EINVAL);
}

/* QEMU's names, on both commands; the default stays none. */
Test(control_migrate, compression_parameters)
{
	struct mig_params p;
	char err[ERR_MAX] = "";

	mig_params_default(&p);
	cr_assert_eq(p.compression, RAM_ENC_RAW);
	cr_assert_eq(p.zstd_level, 1);
	cr_assert_eq(apply(control_migrate_set_parameters_args, &p,
			   "{\"multifd-compression\": \"zstd\", \"multifd-zstd-level\": 19}",
			   err), 0, "%s", err);
	cr_assert_eq(p.compression, RAM_ENC_ZSTD);
	cr_assert_eq(p.zstd_level, 19);
	cr_assert_eq(apply(control_migrate_args, &p,
			   "{\"uri\": \"tcp:h:1\", \"multifd-compression\": \"lz4\", "
			   "\"multifd-zstd-level\": 0}", err), 0, "%s", err);
	cr_assert_eq(p.compression, RAM_ENC_LZ4);
	cr_assert_eq(p.zstd_level, 0);
	json_t *j = control_mig_params_json(&p);
	cr_assert_str_eq(json_string_value(json_object_get(j, "multifd-compression")), "lz4");
	cr_assert_eq(json_integer_value(json_object_get(j, "multifd-zstd-level")), 0);
	json_decref(j);
	cr_assert_eq(apply(control_migrate_set_parameters_args, &p,
			   "{\"multifd-compression\": \"none\"}", err), 0, "%s", err);
	cr_assert_eq(p.compression, RAM_ENC_RAW);
	/* the spec checks the type first */
	cr_assert_eq(apply(control_migrate_set_parameters_args, &p,
			   "{\"multifd-compression\": 1}", err), -EINVAL);
	cr_assert(strstr(err, "multifd-compression"), "%s", err);
}

/* migrate-set-parameters during a migration passes on only what it was
 * given; idle-timeout-ms is the one that waits for the next migration. */
Test(control_migrate, params_given_mask)
{
	json_t *a = json_loads("{\"downtime-limit\": 5, \"max-bandwidth\": 0, "
			       "\"idle-timeout-ms\": 1000}", 0, NULL);
	cr_assert_eq(control_mig_params_given(a),
		     MIG_PARAM_DOWNTIME | MIG_PARAM_BANDWIDTH | MIG_PARAM_IDLE);
	json_decref(a);
	a = json_loads("{\"downtime-ms\": 5, \"switchover\": \"force\", "
		       "\"max-rounds\": 0, \"timeout-s\": 0}", 0, NULL);
	cr_assert_eq(control_mig_params_given(a),
		     MIG_PARAM_DOWNTIME | MIG_PARAM_POLICY | MIG_PARAM_ROUNDS |
		     MIG_PARAM_TIMEOUT);
	cr_assert_eq(control_mig_params_given(a) & ~MIG_PARAMS_LIVE, 0,
		     "all of these apply live");
	json_decref(a);
	/* compression is agreed when a migration starts: never live */
	a = json_loads("{\"multifd-compression\": \"zstd\", "
		       "\"multifd-zstd-level\": 3}", 0, NULL);
	cr_assert_eq(control_mig_params_given(a), MIG_PARAM_COMPRESSION);
	cr_assert_eq(control_mig_params_given(a) & MIG_PARAMS_LIVE, 0);
	json_decref(a);
	a = json_object();
	cr_assert_eq(control_mig_params_given(a), 0);
	json_decref(a);
}

/* QEMU's throttle parameters and ranges; the switch is per migration. */
Test(control_migrate, throttle_parameters)
{
	struct mig_params p;
	char err[ERR_MAX] = "";

	mig_params_default(&p);
	cr_assert(!p.ac.enabled, "auto-converge is off unless asked (as QEMU)");
	cr_assert_eq(apply(control_migrate_set_parameters_args, &p,
			   "{\"cpu-throttle-initial\": 30, \"cpu-throttle-increment\": 5,"
			   " \"max-cpu-throttle\": 80, \"throttle-trigger-threshold\": 100,"
			   " \"cpu-throttle-tailslow\": true}", err), 0, "%s", err);
	cr_assert_eq(p.ac.initial, 30);
	cr_assert_eq(p.ac.increment, 5);
	cr_assert_eq(p.ac.max, 80);
	cr_assert_eq(p.ac.trigger, 100);
	cr_assert(p.ac.tailslow);
	cr_assert(!p.ac.enabled);

	const char *bad[] = {
		"{\"cpu-throttle-initial\": 0}", "{\"cpu-throttle-initial\": 100}",
		"{\"cpu-throttle-increment\": 100}", "{\"max-cpu-throttle\": 0}",
		"{\"throttle-trigger-threshold\": 101}",
		"{\"cpu-throttle-tailslow\": 1}",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct mig_params q = p;
		err[0] = '\0';
		cr_assert_eq(apply(control_migrate_set_parameters_args, &q, bad[i], err),
			     -EINVAL, "%s", bad[i]);
		cr_assert(strstr(err, "throttl"), "%s: %s", bad[i], err);
		cr_assert(params_eq(&q, &p), "%s changed something", bad[i]);
	}
	/* The switch: migrate's own argument (and the CLI's --auto-converge),
	 * not a parameter. */
	cr_assert_eq(apply(control_migrate_set_parameters_args, &p,
			   "{\"auto-converge\": true}", err), -EINVAL);
	cr_assert_eq(apply(control_migrate_args, &p,
			   "{\"uri\": \"tcp:h:1\", \"auto-converge\": true}", err), 0,
		     "%s", err);
	cr_assert(p.ac.enabled);

	json_t *a = json_loads("{\"max-cpu-throttle\": 50}", 0, NULL);
	cr_assert_eq(control_mig_params_given(a), MIG_PARAM_THROTTLE);
	cr_assert_eq(control_mig_params_given(a) & ~MIG_PARAMS_LIVE, 0,
		     "applies to a migration in progress");
	json_decref(a);
}

/* QEMU's dirty-limit parameters; the switch is per migration. */
Test(control_migrate, dirty_limit_parameters)
{
	struct mig_params p;
	char err[ERR_MAX] = "";

	mig_params_default(&p);
	cr_assert(!p.dl.enabled);
	cr_assert_eq(p.dl.mbps, 1, "QEMU's default: 1 MB/s");
	cr_assert_eq(p.dl.period_ms, 1000);
	cr_assert_eq(apply(control_migrate_set_parameters_args, &p,
			   "{\"vcpu-dirty-limit\": 50, \"x-vcpu-dirty-limit-period\": 500}",
			   err), 0, "%s", err);
	cr_assert_eq(p.dl.mbps, 50);
	cr_assert_eq(p.dl.period_ms, 500);
	const char *bad[] = { "{\"vcpu-dirty-limit\": 0}",
			      "{\"x-vcpu-dirty-limit-period\": 0}",
			      "{\"x-vcpu-dirty-limit-period\": 1001}" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct mig_params q = p;
		cr_assert_eq(apply(control_migrate_set_parameters_args, &q, bad[i], err),
			     -EINVAL, "%s", bad[i]);
		cr_assert(strstr(err, "dirty-limit"), "%s: %s", bad[i], err);
		cr_assert(params_eq(&q, &p));
	}
	cr_assert_eq(apply(control_migrate_set_parameters_args, &p,
			   "{\"dirty-limit\": true}", err), -EINVAL, "not a parameter");
	cr_assert_eq(apply(control_migrate_args, &p,
			   "{\"uri\": \"tcp:h:1\", \"dirty-limit\": true}", err), 0,
		     "%s", err);
	cr_assert(p.dl.enabled);
	json_t *a = json_loads("{\"vcpu-dirty-limit\": 5}", 0, NULL);
	cr_assert_eq(control_mig_params_given(a) & ~MIG_PARAMS_LIVE, 0,
		     "applies to a migration in progress");
	json_decref(a);
}

/* multifd-channels, QEMU's name, on both commands; the default is two
 * channels, as QEMU's. */
Test(control_migrate, channels_parameter)
{
	struct mig_params p;
	char err[ERR_MAX] = "";

	mig_params_default(&p);
	cr_assert_eq(p.channels, 2);
	cr_assert_not(p.channels_given);
	cr_assert_eq(apply(control_migrate_set_parameters_args, &p,
			   "{\"multifd-channels\": 4}", err), 0, "%s", err);
	cr_assert_eq(p.channels, 4);
	cr_assert(p.channels_given);
	cr_assert_eq(apply(control_migrate_args, &p,
			   "{\"uri\": \"tcp:h:1\", \"multifd-channels\": 16}", err), 0, "%s", err);
	cr_assert_eq(p.channels, 16);
	json_t *j = control_mig_params_json(&p);
	cr_assert_eq(json_integer_value(json_object_get(j, "multifd-channels")), 16);
	json_decref(j);
	json_t *given = json_pack("{s:i}", "multifd-channels", 2);
	cr_assert_eq(control_mig_params_given(given), MIG_PARAM_CHANNELS);
	json_decref(given);
}

/* What a migration offers: the user's count whatever else is on; the
 * default only where extra channels carry something and cost nothing. */
Test(control_migrate, channels_offered)
{
	static const struct {
		const char *name;
		bool given, xbzrle;
		unsigned channels;
		enum mig_mode mode;
		unsigned want;
	} t[] = {
		{ "default", false, false, 2, MIG_MODE_PRECOPY, 2 },
		{ "default, hybrid (its rounds use them)", false, false, 2, MIG_MODE_HYBRID, 2 },
		{ "default with xbzrle: one stream for the deltas", false, true, 2,
		  MIG_MODE_PRECOPY, 1 },
		{ "default, pure post-copy: no round to carry", false, false, 2,
		  MIG_MODE_POSTCOPY, 1 },
		{ "set to 1", true, false, 1, MIG_MODE_PRECOPY, 1 },
		{ "set to 4 with xbzrle: the user's choice", true, true, 4, MIG_MODE_PRECOPY, 4 },
		{ "set to 2, pure post-copy", true, false, 2, MIG_MODE_POSTCOPY, 2 },
	};
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		struct mig_params p;
		mig_params_default(&p);
		p.channels_given = t[i].given;
		p.channels = t[i].channels;
		p.xbzrle = t[i].xbzrle;
		p.mode = t[i].mode;
		cr_assert_eq(mig_channels_offered(&p), t[i].want, "%s: %u, wanted %u",
			     t[i].name, mig_channels_offered(&p), t[i].want);
	}
}
