/*
 * migration.h - live migration, source side: the API the control socket
 * uses (migrate, migrate-cancel, migrate-set-parameters, query-migrate).
 *
 * One migration at a time per VM, run on its own thread.  Until the
 * destination has confirmed, the source owns the VM: on any failure the
 * guest keeps (or goes back to) running here.
 */
#ifndef FERRY_MIGRATION_H
#define FERRY_MIGRATION_H

#include "migration/auto_converge.h"
#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

struct vm;
struct tls_creds;

/* QEMU's MigrationStatus names. */
enum mig_status {
	MIG_STATUS_NONE,        /* "none": never started */
	MIG_STATUS_SETUP,       /* "setup": connecting, negotiating */
	MIG_STATUS_ACTIVE,      /* "active": pre-copy rounds, guest running */
	MIG_STATUS_DEVICE,      /* "device": stop-and-copy, guest paused */
	MIG_STATUS_COMPLETED,   /* "completed": the destination runs the VM */
	MIG_STATUS_FAILED,      /* "failed": see error-desc; VM runs here */
	MIG_STATUS_CANCELLING,  /* "cancelling" */
	MIG_STATUS_CANCELLED,   /* "cancelled": VM runs here */
	/* "postcopy-active": the destination runs the guest and pulls the
	 * pages it lacks; the source (paused for good) serves them */
	MIG_STATUS_POSTCOPY_ACTIVE,
	/* "postcopy-paused": post-copy's connections broke (not a cancel);
	 * both sides keep everything and wait for a recovery (migrate-recover
	 * at the destination, migrate with "resume" at the source) */
	MIG_STATUS_POSTCOPY_PAUSED,
	/* "postcopy-recover": a recovery is being set up (listening,
	 * connecting, exchanging what the destination has) */
	MIG_STATUS_POSTCOPY_RECOVER,
};

/* How memory moves (migrate's "mode"). */
enum mig_mode {
	MIG_MODE_PRECOPY,       /* "precopy" (default): rounds, stop-and-copy */
	MIG_MODE_POSTCOPY,      /* "postcopy": hand over at once, pull pages */
	MIG_MODE_HYBRID,        /* "hybrid": pre-copy rounds, then post-copy */
};

/* hybrid's defaults: round 0 (all memory) and one round of what the
 * guest dirtied meanwhile, or this long, whichever ends first */
#define MIG_HYBRID_ROUNDS_DEFAULT 2
#define MIG_HYBRID_MS_DEFAULT     10000

/* What to do when the rest of pre-copy does not fit the downtime limit
 * (the parameter "switchover"; convergence.h has the rules). */
enum mig_policy {
	MIG_POLICY_WAIT,        /* "wait" (default): never exceed the limit;
				   push on until it fits, a limit the user set
				   ends it (failed, the VM runs here) */
	MIG_POLICY_FORCE,       /* "force": stop-and-copy anyway; the pause may
				   exceed the limit (the report warns) */
	MIG_POLICY_ABORT,       /* "abort": give up as soon as it does not
				   converge; the VM keeps running here */
};

/* Tests only: where a source dies on purpose ("x-fault" of migrate), as a
 * crashed host would, beside the destination's --x-fault points. */
enum mig_fault {
	MIG_FAULT_NONE,
	MIG_FAULT_ROUND0,       /* "round0": round 0 sent, its ROUND_END not */
	MIG_FAULT_LATER_ROUND,  /* "round1": the same in the first pre-copy
				   round after round 0 (guest running) */
	MIG_FAULT_DEVICE,       /* "device": stop-and-copy, final pages sent,
				   state not */
	MIG_FAULT_AFTER_READY,  /* "after-ready": READY received, no COMMIT */
	MIG_FAULT_AFTER_COMMIT, /* "after-commit": COMMIT sent, RUNNING not
				   awaited */
	/* Not deaths: "postcopy-cut" breaks post-copy's two connections
	 * (both directions shut down, as a cut link) once the push has sent
	 * MIG_FAULT_CUT_PAGES pages, the first time only; "postcopy-hold"
	 * holds the push for good, so only requested pages move (a
	 * post-copy that surely lasts until the test ends it). */
	MIG_FAULT_POSTCOPY_CUT,
	MIG_FAULT_POSTCOPY_HOLD,
};
#define MIG_FAULT_CUT_PAGES 2048

struct mig_params {
	uint64_t downtime_ms;    /* target pause ("downtime-limit"), default 300 */
	uint64_t max_bandwidth;  /* bytes/s, 0 = unlimited (default) */
	uint64_t max_rounds;     /* pre-copy rounds at most; 0 (default) = no limit */
	uint64_t timeout_s;      /* pre-copy phase at most; 0 (default) = no limit */
	enum mig_policy policy;  /* default wait */
	/* The longest the source waits on a silent destination (a blocked
	 * send or an awaited reply) before it fails ("idle-timeout-ms"),
	 * default 30000; before COMMIT the guest then runs on here. */
	uint64_t idle_timeout_ms;
	/* Tests only ("x-keep-source" of migrate): after completion keep the
	 * process with the VM paused in postmigrate, as QEMU does, instead of
	 * exiting, so its memory can be compared with the destination's. */
	bool keep_source;
	enum mig_fault fault;    /* tests only ("x-fault" of migrate) */
	/* "multifd-compression": a RAM_PAGES encoding id (ram_codec.h),
	 * default none; anything else is offered as mandatory in HELLO */
	unsigned compression;
	unsigned zstd_level;     /* "multifd-zstd-level", 0..20, default 1 */
	/* "multifd-channels": connections carrying pages, 1 (the main
	 * connection carries them) to MF_MAX_CHANNELS, default
	 * MIG_CHANNELS_DEFAULT; offered in HELLO (mig_channels_offered), a
	 * destination that cannot takes 1 */
	unsigned channels;
	bool channels_given;     /* set by the user, not the default */
	/* TLS credentials for every connection (`ferry run --tls-creds` or
	 * `--tls-psk`, migration/secure.h); NULL: plain TCP. */
	struct tls_creds *tls;
	/* tls was loaded for this one migration (`migrate`'s tls-creds or
	 * tls-psk) rather than being the process's: the migration object
	 * frees it once its thread has ended (migration_start). */
	bool tls_owned;
	/* "mode" of migrate, one migration's (not a migrate-set-parameters
	 * parameter); with hybrid, its pre-copy lasts at most precopy_rounds
	 * rounds ("precopy-rounds", >= 1) and precopy_ms ("precopy-ms") */
	enum mig_mode mode;
	uint64_t precopy_rounds;
	uint64_t precopy_ms;
	/* "auto-converge" and QEMU's cpu-throttle-* parameters: slow the
	 * guest while it dirties faster than pre-copy sends (off by default,
	 * as in QEMU; migration/auto_converge.h). */
	struct ac_params ac;
	/* "dirty-limit" with QEMU's vcpu-dirty-limit (MB/s per vCPU, default
	 * 1) and x-vcpu-dirty-limit-period (ms, default 1000): instead of
	 * slowing the whole guest, hold each vCPU to that dirty rate once
	 * the same trigger fires (vmm/dirty_limit.h; needs --dirty-ring). */
	struct {
		bool enabled;
		/* x-dirty-limit-unsafe: run it although it lost pages (below) */
		bool unsafe;
		uint64_t mbps, period_ms;
	} dl;
	/* Capability "xbzrle" (migrate-set-capabilities, or migrate's own
	 * "xbzrle"): resent pages as deltas, default off; offered optional
	 * in HELLO.  "xbzrle-cache-size": bytes of the source's page cache,
	 * default 64 MiB as QEMU (migration/delta_cache.h). */
	bool xbzrle;
	/* Capability "postcopy-ram" (QEMU's): the destination must agree to
	 * post-copy at the start, so that migrate-start-postcopy can switch
	 * this pre-copy later (Ferry offers it anyway; this insists). */
	bool postcopy_ram;
	/* Capability "release-ram" (QEMU's): in post-copy the source drops
	 * each page from its memory once the destination confirms it has it
	 * (default off, as QEMU: the paused source keeps a whole copy, which
	 * a digest or a second look may want). */
	bool release_ram;
	uint64_t xbzrle_cache_size;
};

void mig_params_default(struct mig_params *p);
/* The page channels a migration offers: multifd-channels as set, else the
 * default, except 1 where extra channels would carry nothing or cost a
 * feature: xbzrle (its deltas need one stream) and pure post-copy (it
 * sends no pre-copy round). */
unsigned mig_channels_offered(const struct mig_params *p);
const char *mig_mode_name(enum mig_mode m);
/* "precopy", "postcopy", "hybrid"; 0 or -EINVAL. */
int mig_mode_parse(const char *s, enum mig_mode *out);
const char *mig_status_name(enum mig_status s);
const char *mig_policy_name(enum mig_policy p);
/* "wait", "force" (or its old name "switchover"), "abort"; 0 or -EINVAL. */
int mig_policy_parse(const char *s, enum mig_policy *out);
/* "round0", "round1", "device", "after-ready", "after-commit";
 * 0 or -EINVAL. */
int mig_fault_parse(const char *s, enum mig_fault *out);

/* The parameters new migrations start with (migrate-set-parameters). */
void migration_get_params(struct vm *vm, struct mig_params *out);
void migration_set_params(struct vm *vm, const struct mig_params *p);

/* Which parameters a migrate-set-parameters gave (a mask). */
#define MIG_PARAM_DOWNTIME   (1u << 0)
#define MIG_PARAM_BANDWIDTH  (1u << 1)
#define MIG_PARAM_ROUNDS     (1u << 2)
#define MIG_PARAM_TIMEOUT    (1u << 3)
#define MIG_PARAM_POLICY     (1u << 4)
#define MIG_PARAM_IDLE       (1u << 5)
/* multifd-compression, multifd-zstd-level: agreed in HELLO, so they can
 * only apply from the next migration */
#define MIG_PARAM_COMPRESSION (1u << 6)
/* cpu-throttle-*, max-cpu-throttle, throttle-trigger-threshold and the
 * auto-converge switch: read at each round's decision */
#define MIG_PARAM_THROTTLE   (1u << 7)
/* xbzrle-cache-size: the cache is made when a migration starts */
#define MIG_PARAM_XBZRLE_CACHE (1u << 8)
/* multifd-channels: agreed in HELLO, from the next migration */
#define MIG_PARAM_CHANNELS   (1u << 9)
/* What a migration in progress takes at once: the rate from the next
 * slice sent, the rest at the next convergence decision. */
#define MIG_PARAMS_LIVE (MIG_PARAM_DOWNTIME | MIG_PARAM_BANDWIDTH | \
			 MIG_PARAM_ROUNDS | MIG_PARAM_TIMEOUT | MIG_PARAM_POLICY | \
			 MIG_PARAM_THROTTLE)

/**
 * migration_apply_live() - give a migration in progress the parameters
 * in @given that p holds (MIG_PARAMS_LIVE of them; the others apply from
 * the next migration).  Returns true if a migration was in progress.
 */
bool migration_apply_live(struct vm *vm, const struct mig_params *p,
			  unsigned given);

/**
 * migration_start() - begin migrating vm to uri ("tcp:HOST:PORT") with
 * params p; returns at once (progress: migration_query).  Fails if a
 * migration is already running or the VM is not running or paused.
 * With p->tls_owned the migration takes p->tls on success (and frees it
 * when the next migration starts or the VM goes); on failure the caller
 * keeps it.
 */
int migration_start(struct vm *vm, const char *uri,
		    const struct mig_params *p, char *err);
/**
 * migration_start_postcopy() - `migrate-start-postcopy`: switch the
 * migration in progress to post-copy at its next decision (after the
 * round being sent).  Fails with a message when no migration is in
 * progress, post-copy has started already, the stop-and-copy is under
 * way, or the destination did not agree to post-copy.
 */
int migration_start_postcopy(struct vm *vm, char *err);
/* Is an outgoing migration of vm under way (setup, active, device)? */
bool migration_in_progress(struct vm *vm);
/* Stop a running migration; the source keeps (or resumes) the VM.
 * Refused once COMMIT went out (post-copy included: the guest runs at
 * the destination, which still needs this side's pages). */
int migration_cancel(struct vm *vm, char *err);
/**
 * migration_resume() - `migrate` with "resume": true: reconnect a paused
 * post-copy (status postcopy-paused) to uri, where the destination
 * listens after migrate-recover.  Returns at once; the status goes
 * postcopy-recover, then postcopy-active (or back to postcopy-paused
 * with error-desc saying why the reconnection failed).  Fails with a
 * message when no post-copy is paused.
 */
int migration_resume(struct vm *vm, const char *uri, char *err);
/* query-migrate's answer (QEMU's shape plus a "ferry" object). */
json_t *migration_query(struct vm *vm);
/* Join the migration thread and free its state (VM teardown). */
void migration_destroy(struct vm *vm);

/* The destination's entry point is migration_incoming_fd (incoming.h). */

#endif
