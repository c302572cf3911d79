/*
 * control_migrate.h - the migration commands of the control socket, in
 * QMP's names and shapes:
 *
 *   migrate {"uri": "tcp:HOST:PORT", "downtime-ms"?, "max-bandwidth"?,
 *            "max-rounds"?, "timeout-s"?, "switchover"?: "wait"|"force"|"abort",
 *            "idle-timeout-ms"?, "multifd-compression"?: "none"|"zstd"|"lz4",
 *            "multifd-zstd-level"?: 0..20, "multifd-channels"?: 1..16, tests only: "x-keep-source"?: bool,
 *            "x-fault"?: "round0"|"round1"|"device"|"after-ready"|"after-commit",
 *            "mode"?: "precopy"|"postcopy"|"hybrid", with hybrid only:
 *            "precopy-rounds"?: >= 1, "precopy-ms"?: >= 1}
 *   migrate-start-postcopy (a running pre-copy switches to post-copy)
 *   migrate-cancel
 *   migrate-set-parameters {"downtime-limit"? (or "downtime-ms"),
 *            "max-bandwidth"?, "max-rounds"?, "timeout-s"?, "switchover"?,
 *            "idle-timeout-ms"?, "multifd-compression"?, "multifd-zstd-level"?,
 *            "multifd-channels"?}
 *   query-migrate-parameters -> {"downtime-limit", "max-bandwidth",
 *            "max-rounds", "timeout-s", "switchover", "idle-timeout-ms",
 *            "multifd-compression", "multifd-zstd-level", "xbzrle-cache-size",
 *            "multifd-channels"}
 *   migrate-set-capabilities {"capabilities": [{"capability": "xbzrle",
 *            "state": true}]} (refused during a migration; without a VM
 *            kept for the VM to come, migration/user_caps.h)
 *   query-migrate-capabilities -> [{"capability": "xbzrle", "state": false}]
 *   (migrate and migrate-set-parameters also take "xbzrle-cache-size";
 *   migrate takes "xbzrle": bool for that migration only)
 *   query-migrate -> migration_query(), or destination_query() on a
 *            destination until its VM migrates on
 *   migrate-incoming {"uri": "tcp:HOST:PORT"} (with --incoming defer)
 *   migrate-recover {"uri": "tcp:HOST:PORT"} (a destination whose
 *            post-copy is paused: listen there for the source's
 *            `migrate` with "resume": true)
 *
 * The argument checking and merging is VM-independent, for the unit tests.
 */
#ifndef FERRY_CONTROL_MIGRATE_H
#define FERRY_CONTROL_MIGRATE_H

#include <jansson.h>

#include "control/control_proto.h"
#include "migration/migration.h"

/* QEMU's ceiling for downtime-limit: 2000 s. */
#define CONTROL_MIG_DOWNTIME_MAX_MS 2000000ULL
/* A year: beyond it a deadline is a typo, and ms/ns conversions stay far
 * from overflow. */
#define CONTROL_MIG_TIMEOUT_MAX_S   (365ULL * 24 * 3600)
/* idle-timeout-ms: below 100 ms a busy host's scheduling alone would fail
 * migrations; above a day it is a typo (and must fit a socket timeout). */
#define CONTROL_MIG_IDLE_MIN_MS     100ULL
#define CONTROL_MIG_IDLE_MAX_MS     (24ULL * 3600 * 1000)

/* xbzrle-cache-size: at least a page; at most 1 TiB (a cache beyond the
 * guest's memory is cut to it anyway). */
#define CONTROL_MIG_XBZRLE_CACHE_MIN 4096ULL
#define CONTROL_MIG_XBZRLE_CACHE_MAX (1ULL << 40)

/* Argument specs, for the command table. */
extern const struct control_arg control_migrate_args[];
extern const struct control_arg control_migrate_set_parameters_args[];
extern const struct control_arg control_migrate_set_capabilities_args[];

/**
 * control_mig_params_merge() - override *p with the parameters present in
 * args ("downtime-limit"/"downtime-ms", "max-bandwidth", "max-rounds",
 * "timeout-s", "switchover", "idle-timeout-ms"; other members are ignored), after checking
 * each one's range.  Types must already be checked against a spec above.
 * All or nothing: on error *p is unchanged and err names the parameter.
 */
int control_mig_params_merge(struct mig_params *p, json_t *args, char *err);

/**
 * control_mig_mode_merge() - migrate's "mode", "precopy-rounds" and
 * "precopy-ms" into *p (types checked by the spec): a mode name other
 * than precopy/postcopy/hybrid, a limit outside its range, or a limit
 * with a mode other than hybrid is refused with a message naming it.
 * All or nothing.
 */
int control_mig_mode_merge(struct mig_params *p, json_t *args, char *err);

/* The MIG_PARAM_* bits of the parameters present in args. */
unsigned control_mig_params_given(json_t *args);

/* query-migrate-parameters' answer for p (a new reference, NULL if OOM). */
json_t *control_mig_params_json(const struct mig_params *p);

/* The handlers; call->opaque is the struct instance * (control_vm.h). */
int control_cmd_migrate(struct control_call *call);
int control_cmd_migrate_cancel(struct control_call *call);
int control_cmd_migrate_start_postcopy(struct control_call *call);
int control_cmd_migrate_incoming(struct control_call *call);
int control_cmd_migrate_recover(struct control_call *call);
int control_cmd_migrate_set_parameters(struct control_call *call);
int control_cmd_query_migrate(struct control_call *call);
int control_cmd_query_migrate_parameters(struct control_call *call);
int control_cmd_migrate_set_capabilities(struct control_call *call);
int control_cmd_query_migrate_capabilities(struct control_call *call);

#endif
