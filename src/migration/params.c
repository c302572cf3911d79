/* Migration parameters and the names QEMU gives to statuses. */
#include "migration/migration.h"
#include "migration/ram_codec.h"
#include "migration/secure.h"
#include "vmm/dirty_limit.h"
#include "migration/delta_cache.h"
#include "migration/multifd_send.h"
#include "migration/user_caps.h"

#include <errno.h>
#include <string.h>

void mig_params_default(struct mig_params *p)
{
	p->downtime_ms = 300;   /* QEMU's downtime-limit default */
	p->max_bandwidth = 0;   /* unlimited: QEMU's 128 MiB/s starves LANs */
	/* No round or time limit by default, as QEMU: a limit would have to
	 * either exceed the downtime limit or fail, and neither should
	 * happen unasked. */
	p->max_rounds = 0;
	p->timeout_s = 0;
	p->policy = MIG_POLICY_WAIT;
	p->idle_timeout_ms = 30000;
	p->keep_source = false;
	p->fault = MIG_FAULT_NONE;
	/* No compression until a real migration shows it faster here
	 * (docs/compression.md): the micro-benchmark alone cannot. */
	p->compression = RAM_ENC_RAW;
	p->zstd_level = RAM_ZSTD_LEVEL_DEFAULT;
	/* QEMU's multifd-channels default too.  Measured here against one
	 * stream, same binary, interleaved (docs/multifd.md): the busy
	 * 64 MiB set in 512 MiB and 8 GiB 0.54x / 0.72x the total time and
	 * 0.44x / 0.46x the downtime, 1 GiB of random bytes 1.49x the
	 * throughput, an untouched 8 GiB guest level. */
	p->channels = MIG_CHANNELS_DEFAULT;
	p->channels_given = false;
	p->tls = mig_tls_get();
	p->tls_owned = false;
	ac_params_default(&p->ac);
	p->dl.enabled = false;
	p->dl.mbps = DIRTY_LIMIT_DEFAULT_MBPS;
	p->dl.period_ms = DIRTY_LIMIT_PERIOD_DEFAULT_MS;
	p->xbzrle_cache_size = DELTA_CACHE_DEFAULT_SIZE;
	/* Capabilities (off unless set before this process had a VM). */
	mig_ucaps_process_get(p);
	p->mode = MIG_MODE_PRECOPY;
	p->precopy_rounds = MIG_HYBRID_ROUNDS_DEFAULT;
	p->precopy_ms = MIG_HYBRID_MS_DEFAULT;
}

unsigned mig_channels_offered(const struct mig_params *p)
{
	if (!p->channels_given && (p->xbzrle || p->mode == MIG_MODE_POSTCOPY))
		return 1;
	return p->channels;
}

const char *mig_mode_name(enum mig_mode m)
{
	switch (m) {
	case MIG_MODE_PRECOPY: return "precopy";
	case MIG_MODE_POSTCOPY: return "postcopy";
	case MIG_MODE_HYBRID: return "hybrid";
	}
	return "unknown";
}

int mig_mode_parse(const char *s, enum mig_mode *out)
{
	if (!s)
		return -EINVAL;
	if (!strcmp(s, "precopy"))
		*out = MIG_MODE_PRECOPY;
	else if (!strcmp(s, "postcopy"))
		*out = MIG_MODE_POSTCOPY;
	else if (!strcmp(s, "hybrid"))
		*out = MIG_MODE_HYBRID;
	else
		return -EINVAL;
	return 0;
}

const char *mig_status_name(enum mig_status s)
{
	switch (s) {
	case MIG_STATUS_NONE: return "none";
	case MIG_STATUS_SETUP: return "setup";
	case MIG_STATUS_ACTIVE: return "active";
	case MIG_STATUS_DEVICE: return "device";
	case MIG_STATUS_COMPLETED: return "completed";
	case MIG_STATUS_FAILED: return "failed";
	case MIG_STATUS_CANCELLING: return "cancelling";
	case MIG_STATUS_CANCELLED: return "cancelled";
	case MIG_STATUS_POSTCOPY_ACTIVE: return "postcopy-active";
	case MIG_STATUS_POSTCOPY_PAUSED: return "postcopy-paused";
	case MIG_STATUS_POSTCOPY_RECOVER: return "postcopy-recover";
	}
	return "unknown";
}

const char *mig_policy_name(enum mig_policy p)
{
	switch (p) {
	case MIG_POLICY_WAIT: return "wait";
	case MIG_POLICY_FORCE: return "force";
	case MIG_POLICY_ABORT: return "abort";
	}
	return "unknown";
}

int mig_policy_parse(const char *s, enum mig_policy *out)
{
	if (!s)
		return -EINVAL;
	if (!strcmp(s, "wait"))
		*out = MIG_POLICY_WAIT;
	else if (!strcmp(s, "force") || !strcmp(s, "switchover"))
		*out = MIG_POLICY_FORCE; /* "switchover": its name before "wait" */
	else if (!strcmp(s, "abort"))
		*out = MIG_POLICY_ABORT;
	else
		return -EINVAL;
	return 0;
}
