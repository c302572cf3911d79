/*
 * migrate-set-capabilities / query-migrate-capabilities
 * (migration/user_caps.c, control_migrate.c), xbzrle-cache-size, the
 * query-migrate "xbzrle-cache" object and `ferry migrate --xbzrle`: the
 * parts that need no VM.  The commands against a real ferry process are
 * in tests/integration/test_xbzrle.c.
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "control/control_migrate.h"
#include "control/migrate_cli.h"
#include "migration/delta_cache.h"
#include "migration/stats.h"
#include "migration/user_caps.h"

static json_t *j(const char *text)
{
	json_error_t jerr;
	json_t *v = json_loads(text, JSON_DECODE_ANY, &jerr);
	cr_assert_not_null(v, "bad test JSON %s: %s", text, jerr.text);
	return v;
}

static int set(struct mig_params *p, const char *caps, char *err)
{
	json_t *c = j(caps);
	int r = mig_ucaps_apply(p, c, err);
	json_decref(c);
	return r;
}

Test(user_caps, xbzrle_on_and_off)
{
	struct mig_params p;
	char err[ERR_MAX] = "";
	mig_params_default(&p);
	cr_assert(!p.xbzrle, "off by default");
	cr_assert_eq(p.xbzrle_cache_size, 64ULL << 20, "QEMU's default size");
	cr_assert_eq(set(&p, "[{\"capability\": \"xbzrle\", \"state\": true}]", err), 0, "%s", err);
	cr_assert(p.xbzrle);
	json_t *q = mig_ucaps_json(&p);
	char *txt = json_dumps(q, JSON_COMPACT | JSON_SORT_KEYS);
	cr_assert_str_eq(txt, "[{\"capability\":\"xbzrle\",\"state\":true},"
			      "{\"capability\":\"auto-converge\",\"state\":false},"
			      "{\"capability\":\"dirty-limit\",\"state\":false},"
			      "{\"capability\":\"postcopy-ram\",\"state\":false},"
			      "{\"capability\":\"release-ram\",\"state\":false}]");
	free(txt);
	json_decref(q);
	/* the last entry for a name wins, as QEMU applies them in order */
	cr_assert_eq(set(&p, "[{\"capability\": \"xbzrle\", \"state\": true},"
			     " {\"capability\": \"xbzrle\", \"state\": false}]", err), 0);
	cr_assert(!p.xbzrle);
	/* an empty list changes nothing */
	cr_assert_eq(set(&p, "[]", err), 0);
	cr_assert(!p.xbzrle);
}

Test(user_caps, refused_whole_with_a_clear_reason)
{
	static const struct { const char *caps, *msg; } rows[] = {
		{ "{}", "Invalid parameter type for 'capabilities', expected: array" },
		{ "[1]", "Invalid parameter type for 'capabilities[0]', expected: object" },
		{ "[{\"state\": true}]", "Parameter 'capabilities[0].capability' is missing" },
		{ "[{\"capability\": 7, \"state\": true}]",
		  "Invalid parameter type for 'capabilities[0].capability', expected: string" },
		{ "[{\"capability\": \"xbzrle\"}]", "Parameter 'capabilities[0].state' is missing" },
		{ "[{\"capability\": \"xbzrle\", \"state\": \"on\"}]",
		  "Invalid parameter type for 'capabilities[0].state', expected: boolean" },
		{ "[{\"capability\": \"xbzrle\", \"state\": true, \"x\": 1}]",
		  "'capabilities[0]' has members other than 'capability' and 'state'" },
		/* unknown to everyone */
		{ "[{\"capability\": \"xbzrle\", \"state\": true}, {\"capability\": \"warp\", \"state\": true}]",
		  "Parameter 'capabilities[1].capability' does not accept value 'warp' "
		  "(this ferry's capabilities: 'xbzrle', 'auto-converge', 'dirty-limit', 'postcopy-ram', 'release-ram')" },
		{ "[{\"capability\": \"warp\", \"state\": false}]", "does not accept value 'warp'" },
		/* QEMU's, not this ferry's: on is refused */
		{ "[{\"capability\": \"rdma-pin-all\", \"state\": true}]",
		  "Capability 'rdma-pin-all' is not supported by this ferry (its capabilities: 'xbzrle', 'auto-converge', 'dirty-limit', 'postcopy-ram', 'release-ram')" },
	};
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		struct mig_params p;
		char err[ERR_MAX] = "";
		mig_params_default(&p);
		cr_expect_eq(set(&p, rows[i].caps, err), -EINVAL, "row %zu accepted", i);
		cr_expect(strstr(err, rows[i].msg), "row %zu: '%s' lacks '%s'", i, err, rows[i].msg);
		cr_expect(!p.xbzrle, "row %zu: a refused list changed something", i);
	}
	/* auto-converge too (main's switch) */
	{
		struct mig_params p;
		char err[ERR_MAX] = "";
		mig_params_default(&p);
		cr_assert_eq(set(&p, "[{\"capability\": \"auto-converge\", \"state\": true}]",
				 err), 0, "%s", err);
		cr_assert(p.ac.enabled && !p.xbzrle);
	}
	/* QEMU's, turned off: nothing to do, accepted */
	struct mig_params p;
	char err[ERR_MAX] = "";
	mig_params_default(&p);
	cr_assert_eq(set(&p, "[{\"capability\": \"x-colo\", \"state\": false}]", err), 0,
		     "%s", err);
	/* postcopy-ram: this ferry's, it makes the offer mandatory */
	cr_assert(!p.postcopy_ram);
	cr_assert_eq(set(&p, "[{\"capability\": \"postcopy-ram\", \"state\": true}]", err),
		     0, "%s", err);
	cr_assert(p.postcopy_ram);
}

Test(user_caps, kept_for_the_vm_to_come)
{
	struct mig_params p;
	char err[ERR_MAX] = "";
	mig_params_default(&p);
	cr_assert_eq(set(&p, "[{\"capability\": \"xbzrle\", \"state\": true}]", err), 0);
	mig_ucaps_process_set(&p);
	struct mig_params later;
	mig_params_default(&later);
	cr_assert(later.xbzrle, "a VM's migrations start from what was set before it");
	p.xbzrle = false;
	mig_ucaps_process_set(&p);
	mig_params_default(&later);
	cr_assert(!later.xbzrle);
}

Test(user_caps, command_specs)
{
	char err[ERR_MAX] = "";
	json_t *a = j("{\"capabilities\": {}}");
	cr_assert_lt(control_check_args(control_migrate_set_capabilities_args, a, err), 0);
	json_decref(a);
	a = j("{}");
	cr_assert_lt(control_check_args(control_migrate_set_capabilities_args, a, err), 0);
	json_decref(a);
	a = j("{\"uri\": \"tcp:h:1\", \"xbzrle\": true, \"xbzrle-cache-size\": 1048576}");
	cr_assert_eq(control_check_args(control_migrate_args, a, err), 0, "%s", err);
	json_decref(a);
}

Test(user_caps, xbzrle_cache_size_parameter)
{
	struct mig_params p;
	char err[ERR_MAX] = "";
	mig_params_default(&p);
	json_t *a = j("{\"xbzrle-cache-size\": 268435456}");
	cr_assert_eq(control_mig_params_merge(&p, a, err), 0, "%s", err);
	cr_assert_eq(p.xbzrle_cache_size, 256ULL << 20);
	cr_assert_eq(control_mig_params_given(a), MIG_PARAM_XBZRLE_CACHE);
	json_decref(a);
	a = j("{\"xbzrle-cache-size\": 4095}");
	cr_assert_lt(control_mig_params_merge(&p, a, err), 0);
	cr_assert(strstr(err, "Parameter 'xbzrle-cache-size' expects a value between 4096 and"),
		  "%s", err);
	cr_assert_eq(p.xbzrle_cache_size, 256ULL << 20, "unchanged on error");
	json_decref(a);
	json_t *q = control_mig_params_json(&p);
	cr_assert_eq(json_integer_value(json_object_get(q, "xbzrle-cache-size")), 256LL << 20);
	json_decref(q);
}

Test(user_caps, query_migrate_xbzrle_cache)
{
	static struct mig_stats s;
	memset(&s, 0, sizeof(s));
	s.status = MIG_STATUS_ACTIVE;
	s.start_ns = 1;
	json_t *q = mig_stats_json(&s, 1000);
	cr_assert_null(json_object_get(q, "xbzrle-cache"), "absent when off, as QEMU");
	json_decref(q);
	s.xbzrle = s.xbzrle_agreed = true;
	s.xbzrle_cache_size = 64ULL << 20;
	s.xbzrle_eligible = 100;
	s.xbzrle_pages = 70;
	s.xbzrle_cache_miss = 25;
	s.xbzrle_overflow = 5;
	s.xbzrle_bytes = 70 * 2 + 7000;
	q = mig_stats_json(&s, 1000);
	json_t *x = json_object_get(q, "xbzrle-cache");
	cr_assert_eq(json_integer_value(json_object_get(x, "cache-size")), 64LL << 20);
	cr_assert_eq(json_integer_value(json_object_get(x, "pages")), 70);
	cr_assert_eq(json_integer_value(json_object_get(x, "bytes")), 7140);
	cr_assert_eq(json_integer_value(json_object_get(x, "cache-miss")), 25);
	cr_assert_eq(json_integer_value(json_object_get(x, "overflow")), 5);
	cr_assert_float_eq(json_real_value(json_object_get(x, "cache-miss-rate")), 0.25, 1e-9);
	cr_assert_float_eq(json_real_value(json_object_get(x, "encoding-rate")),
			   70 * 4096.0 / 7140, 1e-9);
	json_t *fx = json_object_get(json_object_get(q, "ferry"), "xbzrle");
	cr_assert(json_is_true(json_object_get(fx, "agreed")));
	cr_assert_eq(json_integer_value(json_object_get(fx, "resent-pages")), 100);

	/* ferry migrate's report says it */
	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);
	migrate_print_report(f, q);
	fclose(f);
	cr_assert(strstr(text, "xbzrle:       70 of 100 resent pages as deltas, 7.0 KiB for "
			       "280.0 KiB; 64.0 MiB cache, 25 misses (25%), 5 overflow"),
		  "%s", text);
	free(text);
	json_decref(q);
}

Test(user_caps, cli_option)
{
	struct migrate_cli_opts o;
	char *v1[] = { "migrate", "--control", "/s", "--to", "tcp:h:1", "--xbzrle", NULL };
	cr_assert_eq(migrate_cli_parse(6, v1, &o), -1);
	cr_assert(json_is_true(json_object_get(o.args, "xbzrle")));
	cr_assert_null(json_object_get(o.args, "xbzrle-cache-size"));
	migrate_cli_opts_free(&o);
	char *v2[] = { "migrate", "--control", "/s", "--to", "tcp:h:1", "--xbzrle=256M", NULL };
	cr_assert_eq(migrate_cli_parse(6, v2, &o), -1);
	cr_assert(json_is_true(json_object_get(o.args, "xbzrle")));
	cr_assert_eq(json_integer_value(json_object_get(o.args, "xbzrle-cache-size")),
		     256LL << 20);
	migrate_cli_opts_free(&o);
	char *v3[] = { "migrate", "--control", "/s", "--to", "tcp:h:1", "--xbzrle=lots", NULL };
	cr_assert_eq(migrate_cli_parse(6, v3, &o), 2);
}
