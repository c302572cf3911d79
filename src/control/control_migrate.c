/*
 * control_migrate.c - migrate, migrate-cancel, migrate-set-parameters,
 * query-migrate, query-migrate-parameters.
 *
 * The parameters a new migration starts with live in the migration module
 * (migration_get_params); `migrate` may override some of them for that one
 * migration only, which QMP cannot do but a one-line CLI wants.
 * migrate-set-parameters during a migration changes it too, as QEMU's
 * does: downtime-limit, max-bandwidth, max-rounds, timeout-s and
 * switchover at once; idle-timeout-ms from the next migration (the answer
 * says so).
 */
#include "control/control_migrate.h"
#include "control/control_vm.h"
#include "migration/channel.h"
#include "migration/destination.h"
#include "migration/multifd_send.h"
#include "migration/ram_codec.h"
#include "migration/user_caps.h"
#include "io/tls.h"
#include "vmm/instance.h"

#include <errno.h>
#include <stddef.h>
#include <string.h>

#define PARAM_ARGS \
	{ "max-bandwidth", CONTROL_ARG_UINT, true }, \
	{ "max-rounds", CONTROL_ARG_UINT, true }, \
	{ "timeout-s", CONTROL_ARG_UINT, true }, \
	{ "switchover", CONTROL_ARG_STRING, true }, \
	{ "idle-timeout-ms", CONTROL_ARG_UINT, true }, \
	{ "multifd-compression", CONTROL_ARG_STRING, true }, \
	{ "multifd-zstd-level", CONTROL_ARG_UINT, true }, \
	{ "cpu-throttle-initial", CONTROL_ARG_UINT, true }, \
	{ "cpu-throttle-increment", CONTROL_ARG_UINT, true }, \
	{ "cpu-throttle-tailslow", CONTROL_ARG_BOOL, true }, \
	{ "max-cpu-throttle", CONTROL_ARG_UINT, true }, \
	{ "throttle-trigger-threshold", CONTROL_ARG_UINT, true }, \
	{ "vcpu-dirty-limit", CONTROL_ARG_UINT, true }, \
	{ "x-vcpu-dirty-limit-period", CONTROL_ARG_UINT, true }, \
	{ "multifd-channels", CONTROL_ARG_UINT, true }, \
	{ "xbzrle-cache-size", CONTROL_ARG_UINT, true }

const struct control_arg control_migrate_args[] = {
	{ "uri", CONTROL_ARG_STRING, false },
	{ "downtime-ms", CONTROL_ARG_UINT, true },
	PARAM_ARGS,
	/* The capabilities, for this migration only (migrate-set-capabilities
	 * sets them for all). */
	{ "auto-converge", CONTROL_ARG_BOOL, true },
	{ "dirty-limit", CONTROL_ARG_BOOL, true },
	{ "x-dirty-limit-unsafe", CONTROL_ARG_BOOL, true },
	{ "xbzrle", CONTROL_ARG_BOOL, true },
	{ "x-keep-source", CONTROL_ARG_BOOL, true },
	{ "x-fault", CONTROL_ARG_STRING, true },
	{ "mode", CONTROL_ARG_STRING, true },
	{ "precopy-rounds", CONTROL_ARG_UINT, true },
	{ "precopy-ms", CONTROL_ARG_UINT, true },
	/* TLS for this migration only, instead of the process's
	 * (`ferry run --tls-creds | --tls-psk`); "tls-creds": "" is plain */
	{ "tls-creds", CONTROL_ARG_STRING, true },
	{ "tls-psk", CONTROL_ARG_STRING, true },
	/* reconnect a paused post-copy (QEMU's "resume") */
	{ "resume", CONTROL_ARG_BOOL, true },
	{ NULL, 0, false },
};

const struct control_arg control_migrate_set_capabilities_args[] = {
	{ "capabilities", CONTROL_ARG_ARRAY, false },
	{ NULL, 0, false },
};

const struct control_arg control_migrate_set_parameters_args[] = {
	/* QEMU's name, and ours (the one `migrate` and the CLI use). */
	{ "downtime-limit", CONTROL_ARG_UINT, true },
	{ "downtime-ms", CONTROL_ARG_UINT, true },
	PARAM_ARGS,
	{ NULL, 0, false },
};

static json_t *u64_json(uint64_t v)
{
	return json_integer(v > INT64_MAX ? INT64_MAX : (json_int_t)v);
}

/*
 * Fetch an optional unsigned member and check it against [min, max].
 * Returns 1 if present (*out set), 0 if absent, or -EINVAL.
 */
static int get_uint(json_t *args, const char *name, uint64_t min,
		    uint64_t max, const char *unit, uint64_t *out, char *err)
{
	json_t *v = json_object_get(args, name);
	json_int_t i;

	if (!v)
		return 0;
	/* The spec checked the type; a caller that skipped it still gets a
	 * message rather than a zero. */
	if (!json_is_integer(v) || (i = json_integer_value(v)) < 0)
		return err_set(err, -EINVAL,
			       "Invalid parameter type for '%s', expected: non-negative integer",
			       name);
	if ((uint64_t)i < min || (uint64_t)i > max) {
		if (max == UINT64_MAX)
			return err_set(err, -EINVAL,
				       "Parameter '%s' expects a value >= %llu%s",
				       name, (unsigned long long)min, unit);
		return err_set(err, -EINVAL,
			       "Parameter '%s' expects a value between %llu and %llu%s",
			       name, (unsigned long long)min,
			       (unsigned long long)max, unit);
	}
	*out = (uint64_t)i;
	return 1;
}

/* QEMU's throttle parameters, with its ranges. */
static int throttle_merge(struct ac_params *ac, json_t *args, char *err)
{
	static const struct { const char *name; uint64_t min, max; size_t off; } u[] = {
		{ "cpu-throttle-initial", 1, 99, offsetof(struct ac_params, initial) },
		{ "cpu-throttle-increment", 1, 99, offsetof(struct ac_params, increment) },
		{ "max-cpu-throttle", 1, 99, offsetof(struct ac_params, max) },
		{ "throttle-trigger-threshold", 1, 100, offsetof(struct ac_params, trigger) },
	};
	struct ac_params n = *ac;

	for (size_t i = 0; i < sizeof(u) / sizeof(u[0]); i++) {
		uint64_t v;
		int r = get_uint(args, u[i].name, u[i].min, u[i].max, " (percent)",
				 &v, err);
		if (r < 0)
			return r;
		if (r)
			*(unsigned *)((char *)&n + u[i].off) = (unsigned)v;
	}
	json_t *t = json_object_get(args, "cpu-throttle-tailslow");
	if (t) {
		if (!json_is_boolean(t))
			return err_set(err, -EINVAL,
				       "Invalid parameter type for 'cpu-throttle-tailslow', expected: boolean");
		n.tailslow = json_is_true(t);
	}
	*ac = n;
	return 0;
}

/* QEMU's dirty-limit parameters: MB/s (>= 1) and a period of 1..1000 ms. */
static int dirty_limit_merge(struct mig_params *p, json_t *args, char *err)
{
	uint64_t mbps = p->dl.mbps, period = p->dl.period_ms;
	int r = get_uint(args, "vcpu-dirty-limit", 1, UINT64_MAX >> 20,
			 " (MiB/s per vCPU, QEMU's MB/s)", &mbps, err);
	if (r >= 0)
		r = get_uint(args, "x-vcpu-dirty-limit-period", 1, 1000,
			     " (milliseconds)", &period, err);
	if (r < 0)
		return r;
	json_t *t = json_object_get(args, "dirty-limit");
	if (t && !json_is_boolean(t))
		return err_set(err, -EINVAL,
			       "Invalid parameter type for 'dirty-limit', expected: boolean");
	if (t)
		p->dl.enabled = json_is_true(t);
	json_t *u = json_object_get(args, "x-dirty-limit-unsafe");
	if (u && !json_is_boolean(u))
		return err_set(err, -EINVAL, "Invalid parameter type for "
			       "'x-dirty-limit-unsafe', expected: boolean");
	p->dl.unsafe = json_is_true(u);
	p->dl.mbps = mbps;
	p->dl.period_ms = period;
	return 0;
}

/* The switch of auto-converge (migrate's own argument). */
static int auto_converge_merge(struct ac_params *ac, json_t *args, char *err)
{
	struct ac_params n = *ac;
	json_t *t = json_object_get(args, "auto-converge");
	if (t) {
		if (!json_is_boolean(t))
			return err_set(err, -EINVAL,
				       "Invalid parameter type for 'auto-converge', expected: boolean");
		n.enabled = json_is_true(t);
	}
	*ac = n;
	return 0;
}

int control_mig_params_merge(struct mig_params *p, json_t *args, char *err)
{
	struct mig_params n = *p;
	uint64_t limit = 0, ms = 0;
	json_t *sw;
	int a, b, ret;

	a = get_uint(args, "downtime-limit", 1, CONTROL_MIG_DOWNTIME_MAX_MS,
		     " (milliseconds)", &limit, err);
	if (a < 0)
		return a;
	b = get_uint(args, "downtime-ms", 1, CONTROL_MIG_DOWNTIME_MAX_MS,
		     " (milliseconds)", &ms, err);
	if (b < 0)
		return b;
	if (a && b && limit != ms)
		return err_set(err, -EINVAL,
			       "Parameters 'downtime-limit' (%llu) and 'downtime-ms' (%llu) disagree; give one",
			       (unsigned long long)limit,
			       (unsigned long long)ms);
	if (a)
		n.downtime_ms = limit;
	if (b)
		n.downtime_ms = ms;

	ret = get_uint(args, "max-bandwidth", 0, UINT64_MAX, "", &n.max_bandwidth,
		       err);
	if (ret >= 0)
		ret = get_uint(args, "max-rounds", 0, UINT64_MAX, " (0: no limit)",
			       &n.max_rounds, err);
	if (ret >= 0)
		ret = get_uint(args, "timeout-s", 0, CONTROL_MIG_TIMEOUT_MAX_S,
			       " (seconds, 0: no limit)", &n.timeout_s, err);
	if (ret >= 0)
		ret = get_uint(args, "idle-timeout-ms", CONTROL_MIG_IDLE_MIN_MS,
			       CONTROL_MIG_IDLE_MAX_MS, " (milliseconds)",
			       &n.idle_timeout_ms, err);
	uint64_t level = n.zstd_level, channels = n.channels;
	if (ret >= 0)
		ret = get_uint(args, "multifd-channels", 1, MF_MAX_CHANNELS, "", &channels,
			       err);
	if (ret >= 0)
		ret = get_uint(args, "multifd-zstd-level", 0, RAM_ZSTD_LEVEL_MAX, "",
			       &level, err);
	if (ret >= 0)
		ret = get_uint(args, "xbzrle-cache-size", CONTROL_MIG_XBZRLE_CACHE_MIN,
			       CONTROL_MIG_XBZRLE_CACHE_MAX, " (bytes; whole pages are used)",
			       &n.xbzrle_cache_size, err);
	if (ret < 0)
		return ret;
	n.zstd_level = (unsigned)level;
	n.channels = (unsigned)channels;
	if (json_object_get(args, "multifd-channels"))
		n.channels_given = true;
	ret = throttle_merge(&n.ac, args, err);
	if (ret >= 0)
		ret = auto_converge_merge(&n.ac, args, err);
	if (ret >= 0)
		ret = dirty_limit_merge(&n, args, err);
	if (ret < 0)
		return ret;

	json_t *comp = json_object_get(args, "multifd-compression");
	if (comp) {
		const char *s = json_string_value(comp);
		const struct ram_encoding *enc = ram_encoding_by_name(s);
		if (!enc)
			return err_set(err, -EINVAL,
				       "Parameter 'multifd-compression' expects 'none', 'zstd' or 'lz4', not '%s'",
				       s ? s : "?");
		n.compression = enc->id;
	}

	sw = json_object_get(args, "switchover");
	if (sw) {
		const char *s = json_string_value(sw);
		if (!s || mig_policy_parse(s, &n.policy) < 0)
			return err_set(err, -EINVAL,
				       "Parameter 'switchover' expects 'wait', 'force' or 'abort', not '%s'",
				       s ? s : "?");
	}
	*p = n;
	return 0;
}

int control_mig_mode_merge(struct mig_params *p, json_t *args, char *err)
{
	struct mig_params n = *p;
	json_t *mode = json_object_get(args, "mode");
	int a, b;

	if (mode) {
		const char *s = json_string_value(mode);
		if (mig_mode_parse(s, &n.mode) < 0)
			return err_set(err, -EINVAL,
				       "Parameter 'mode' expects 'precopy', 'postcopy' or 'hybrid', not '%s'",
				       s ? s : "?");
	}
	a = get_uint(args, "precopy-rounds", 1, UINT32_MAX, " (rounds)",
		     &n.precopy_rounds, err);
	if (a < 0)
		return a;
	b = get_uint(args, "precopy-ms", 1, CONTROL_MIG_TIMEOUT_MAX_S * 1000,
		     " (milliseconds)", &n.precopy_ms, err);
	if (b < 0)
		return b;
	if ((a || b) && n.mode != MIG_MODE_HYBRID)
		return err_set(err, -EINVAL,
			       "Parameter '%s' goes with mode 'hybrid' (it limits the pre-copy "
			       "before post-copy), not with mode '%s'",
			       a ? "precopy-rounds" : "precopy-ms", mig_mode_name(n.mode));
	*p = n;
	return 0;
}

unsigned control_mig_params_given(json_t *args)
{
	static const struct { const char *name; unsigned bit; } names[] = {
		{ "downtime-limit", MIG_PARAM_DOWNTIME },
		{ "downtime-ms", MIG_PARAM_DOWNTIME },
		{ "max-bandwidth", MIG_PARAM_BANDWIDTH },
		{ "max-rounds", MIG_PARAM_ROUNDS },
		{ "timeout-s", MIG_PARAM_TIMEOUT },
		{ "switchover", MIG_PARAM_POLICY },
		{ "idle-timeout-ms", MIG_PARAM_IDLE },
		{ "multifd-compression", MIG_PARAM_COMPRESSION },
		{ "multifd-zstd-level", MIG_PARAM_COMPRESSION },
		{ "multifd-channels", MIG_PARAM_CHANNELS },
		{ "cpu-throttle-initial", MIG_PARAM_THROTTLE },
		{ "cpu-throttle-increment", MIG_PARAM_THROTTLE },
		{ "cpu-throttle-tailslow", MIG_PARAM_THROTTLE },
		{ "max-cpu-throttle", MIG_PARAM_THROTTLE },
		{ "throttle-trigger-threshold", MIG_PARAM_THROTTLE },
		{ "vcpu-dirty-limit", MIG_PARAM_THROTTLE },
		{ "x-vcpu-dirty-limit-period", MIG_PARAM_THROTTLE },
		{ "xbzrle-cache-size", MIG_PARAM_XBZRLE_CACHE },
	};
	unsigned given = 0;

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (json_object_get(args, names[i].name))
			given |= names[i].bit;
	return given;
}

json_t *control_mig_params_json(const struct mig_params *p)
{
	const struct ram_encoding *enc = ram_encoding_get(p->compression);
	return json_pack("{s:o,s:o,s:o,s:o,s:s,s:o,s:s,s:o,s:i,s:i,s:b,s:i,s:i,s:o,s:o,s:o,s:o}",
			 "downtime-limit", u64_json(p->downtime_ms),
			 "max-bandwidth", u64_json(p->max_bandwidth),
			 "max-rounds", u64_json(p->max_rounds),
			 "timeout-s", u64_json(p->timeout_s),
			 "switchover", mig_policy_name(p->policy),
			 "idle-timeout-ms", u64_json(p->idle_timeout_ms),
			 "multifd-compression", enc ? enc->name : "none",
			 "multifd-zstd-level", u64_json(p->zstd_level),
			 "cpu-throttle-initial", (int)p->ac.initial,
			 "cpu-throttle-increment", (int)p->ac.increment,
			 "cpu-throttle-tailslow", (int)p->ac.tailslow,
			 "max-cpu-throttle", (int)p->ac.max,
			 "throttle-trigger-threshold", (int)p->ac.trigger,
			 "vcpu-dirty-limit", u64_json(p->dl.mbps),
			 "x-vcpu-dirty-limit-period", u64_json(p->dl.period_ms),
			 "multifd-channels", u64_json(p->channels),
			 "xbzrle-cache-size", u64_json(p->xbzrle_cache_size));
}

/*
 * migrate's "tls-creds" (a tls-creds-x509 directory; "" for plain, as
 * QEMU's empty tls-creds) or "tls-psk" (a keys.psk file): this one
 * migration's credentials instead of the process's.  The destination's
 * are fixed when it starts, and the process that arrives there leaves
 * with them again; a per-migration choice is what lets one VM cross
 * between hosts that differ (plain, X.509, PSK) without a restart.  The
 * control socket can already send the guest anywhere, so choosing plain
 * here gives its client nothing it did not have.  Relative paths are
 * this process's.  Sets p->tls (p->tls_owned when loaded here).
 */
static int tls_merge(struct mig_params *p, json_t *args, char *err)
{
	const char *dir = json_string_value(json_object_get(args, "tls-creds"));
	const char *psk = json_string_value(json_object_get(args, "tls-psk"));
	char why[ERR_MAX];
	struct tls_creds *c = NULL;

	if (dir && psk)
		return err_set(err, -EINVAL, "tls-creds and tls-psk exclude each other");
	if (dir && !*dir) {
		p->tls = NULL;
		return 0;
	}
	if (psk && !*psk)
		return err_set(err, -EINVAL, "tls-psk names no file (a plain migration "
			       "is \"tls-creds\": \"\")");
	if (!dir && !psk)
		return 0;
	int ret = dir ? tls_creds_load_x509(&c, dir, why) : tls_creds_load_psk(&c, psk, why);
	if (ret < 0)
		return err_set(err, ret, "%s: %s", dir ? "tls-creds" : "tls-psk", why);
	p->tls = c;
	p->tls_owned = true;
	return 0;
}

int control_cmd_migrate(struct control_call *call)
{
	const char *uri = json_string_value(json_object_get(call->args, "uri"));
	struct vm *vm = control_vm(call);
	struct mig_params p;
	struct mig_uri u;
	int ret;

	if (!vm)
		return -ENODEV;
	/* The migration thread would find a bad URI too, but only as a
	 * "failed" status later: refuse it here, where the caller waits. */
	ret = channel_parse_uri(uri, &u, call->err);
	if (ret < 0)
		return ret;
	/* A resume takes only the address: everything else is the paused
	 * migration's. */
	if (json_is_true(json_object_get(call->args, "resume")))
		return migration_resume(vm, uri, call->err);
	migration_get_params(vm, &p);
	ret = control_mig_params_merge(&p, call->args, call->err);
	if (ret < 0)
		return ret;
	/* How memory moves is one migration's choice. */
	ret = control_mig_mode_merge(&p, call->args, call->err);
	if (ret < 0)
		return ret;
	json_t *xb = json_object_get(call->args, "xbzrle");
	if (xb)
		p.xbzrle = json_is_true(xb);
	/* One migration's test switch, never a default. */
	p.keep_source = json_is_true(json_object_get(call->args, "x-keep-source"));
	json_t *fault = json_object_get(call->args, "x-fault");
	if (fault && mig_fault_parse(json_string_value(fault), &p.fault) < 0)
		return err_set(call->err, -EINVAL,
			       "Parameter 'x-fault' expects round0, round1, device, after-ready, after-commit, "
			       "postcopy-cut or postcopy-hold, not '%s'",
			       json_string_value(fault));
	/* Last: from here on the loaded credentials must be freed on a
	 * refusal. */
	ret = tls_merge(&p, call->args, call->err);
	if (ret < 0)
		return ret;
	ret = migration_start(vm, uri, &p, call->err);
	if (ret < 0 && p.tls_owned)
		tls_creds_free(p.tls);
	return ret;
}

int control_cmd_migrate_cancel(struct control_call *call)
{
	struct vm *vm = instance_vm(control_instance(call));
	struct destination *d = control_destination(call);

	/* As QEMU: post-copy cannot be cancelled.  The guest runs here and
	 * only the source has the pages it still lacks. */
	if (d && destination_in_postcopy(d))
		return err_set(call->err, -EBUSY,
			       "post-copy cannot be cancelled: the guest runs here and still "
			       "needs pages only the source holds (if post-copy is paused, "
			       "recover it with migrate-recover)");
	/* No VM yet: the migration to cancel is the one bringing it. */
	if (!vm && d) {
		destination_cancel(d, "cancelled on the destination (migrate-cancel)");
		return 0;
	}
	vm = control_vm(call);
	if (!vm)
		return -ENODEV;
	return migration_cancel(vm, call->err);
}

int control_cmd_migrate_start_postcopy(struct control_call *call)
{
	struct vm *vm = instance_vm(control_instance(call));

	if (!vm && control_destination(call))
		return err_set(call->err, -EINVAL,
			       "this is a migration's destination: migrate-start-postcopy "
			       "goes to the source");
	vm = control_vm(call);
	if (!vm)
		return -ENODEV;
	return migration_start_postcopy(vm, call->err);
}

int control_cmd_migrate_incoming(struct control_call *call)
{
	const char *uri = json_string_value(json_object_get(call->args, "uri"));
	struct destination *d = control_destination(call);

	if (!d)
		return err_set(call->err, -EINVAL,
			       "this ferry was not started with --incoming defer");
	return destination_set_uri(d, uri, call->err);
}

int control_cmd_migrate_recover(struct control_call *call)
{
	const char *uri = json_string_value(json_object_get(call->args, "uri"));
	struct destination *d = control_destination(call);
	struct mig_uri u;

	if (!d)
		return err_set(call->err, -EINVAL,
			       "migrate-recover goes to the destination of a paused post-copy; "
			       "this ferry is not a migration's destination");
	int r = channel_parse_uri(uri, &u, call->err);
	if (r < 0)
		return r;
	return destination_recover(d, uri, call->err);
}

int control_cmd_migrate_set_parameters(struct control_call *call)
{
	struct vm *vm = control_vm(call);
	struct mig_params p;
	int ret;

	if (!vm)
		return -ENODEV;
	/* The control thread runs one command at a time, so nothing changes
	 * the parameters between this read and the write below. */
	migration_get_params(vm, &p);
	ret = control_mig_params_merge(&p, call->args, call->err);
	if (ret < 0)
		return ret;
	migration_set_params(vm, &p);
	/* As QEMU: a migration in progress takes the new values too (only
	 * those given: a migrate's own overrides stay otherwise). */
	unsigned given = control_mig_params_given(call->args);
	if (migration_apply_live(vm, &p, given) && (given & ~MIG_PARAMS_LIVE)) {
		/* Said plainly, in the answer: QMP clients ignore members
		 * they do not know. */
		unsigned later = given & ~MIG_PARAMS_LIVE;
		const char *what = later == MIG_PARAM_IDLE ? "idle-timeout-ms applies"
			: later == MIG_PARAM_COMPRESSION
				? "multifd-compression and multifd-zstd-level (agreed when a "
				  "migration starts) apply"
			: later == MIG_PARAM_CHANNELS
				? "multifd-channels (agreed when a migration starts) applies"
			: later == MIG_PARAM_XBZRLE_CACHE
				? "xbzrle-cache-size (the cache is made when a migration "
				  "starts) applies"
				: "idle-timeout-ms, multifd-compression, multifd-zstd-level, "
				  "multifd-channels and xbzrle-cache-size apply";
		char note[300];
		snprintf(note, sizeof(note),
			 "%s from the next migration; the one in progress keeps its own. "
			 "The other parameters given apply now.", what);
		call->ret = json_pack("{s:s}", "note", note);
		if (!call->ret)
			return err_set(call->err, -ENOMEM, "out of memory");
	}
	return 0;
}

int control_cmd_query_migrate(struct control_call *call)
{
	struct vm *vm = instance_vm(control_instance(call));
	struct destination *d = control_destination(call);

	if (vm)
		call->ret = migration_query(vm);
	/* A destination tells its incoming migration until the VM that came
	 * in starts one of its own. */
	if (d && (!vm || !strcmp(json_string_value(json_object_get(call->ret,
					"status")) ?: "", "none"))) {
		json_decref(call->ret);
		call->ret = destination_query(d);
	}
	if (!vm && !d)
		return control_vm(call) ? 0 : -ENODEV;
	return call->ret ? 0 : err_set(call->err, -ENOMEM, "out of memory");
}

/* What a migration from here would start with; without a VM yet (a
 * destination), the defaults with the capabilities kept for the VM. */
static void current_params(struct vm *vm, struct mig_params *p)
{
	if (vm)
		migration_get_params(vm, p);
	else
		mig_params_default(p);
}

int control_cmd_query_migrate_parameters(struct control_call *call)
{
	struct vm *vm = instance_vm(control_instance(call));
	struct mig_params p;

	current_params(vm, &p);
	call->ret = control_mig_params_json(&p);
	return call->ret ? 0 : err_set(call->err, -ENOMEM, "out of memory");
}

int control_cmd_migrate_set_capabilities(struct control_call *call)
{
	struct vm *vm = instance_vm(control_instance(call));
	json_t *caps = json_object_get(call->args, "capabilities");
	struct mig_params p;

	/* As QEMU: never while a migration runs (a capability decides what
	 * a migration agrees and does from its start). */
	if (vm && migration_in_progress(vm))
		return err_set(call->err, -EBUSY, MIG_UCAPS_ACTIVE_MSG);
	current_params(vm, &p);
	int ret = mig_ucaps_apply(&p, caps, call->err);
	if (ret < 0)
		return ret;
	/* Without a VM yet (a destination): kept for the VM to come. */
	if (vm)
		migration_set_params(vm, &p);
	else
		mig_ucaps_process_set(&p);
	return 0;
}

int control_cmd_query_migrate_capabilities(struct control_call *call)
{
	struct vm *vm = instance_vm(control_instance(call));
	struct mig_params p;

	current_params(vm, &p);
	call->ret = mig_ucaps_json(&p);
	return call->ret ? 0 : err_set(call->err, -ENOMEM, "out of memory");
}
