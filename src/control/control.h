/*
 * control.h - the control socket: a Unix stream socket speaking one JSON
 * object per line in the shape of QEMU's QMP, and `ferry ctl`, its client.
 *
 *   S: {"QMP": {"version": {"ferry": "0.1"}, "capabilities": []}}
 *   C: {"execute": "query-status", "id": 1}
 *   S: {"return": {"status": "running", "running": true, ...}, "id": 1}
 *   C: {"execute": "nope"}
 *   S: {"error": {"class": "CommandNotFound", "desc": "..."}}
 *
 * Commands are listed in control_commands.c; the wire-level rules (request
 * checking, argument specs, line framing) are in control_proto.h.
 */
#ifndef FERRY_CONTROL_H
#define FERRY_CONTROL_H

struct instance;
struct control;

/**
 * control_start() - listen on a control socket and serve it from a thread.
 * @out:  the new control object, for control_stop()
 * @path: where to create the socket (mode 0600).  A stale socket left by a
 *        dead process is replaced; a live one, or a non-socket, is refused.
 * @inst: the process the commands act on (its VM, once there is one:
 *        control_vm.h); must outlive the control object
 * @err:  ERR_MAX bytes, filled on failure
 *
 * Commands run on the control thread, one at a time, so a long command
 * (snapshot-save) delays the others but never the vCPUs beyond what the
 * command itself does.  Returns 0 or a negative errno.
 */
int control_start(struct control **out, const char *path,
		  struct instance *inst, char *err);

/**
 * control_stop() - stop serving: wake and join the thread, close every
 * connection (replies already queued are flushed first when the peer reads
 * them promptly) and remove the socket file.  NULL is a no-op.
 */
void control_stop(struct control *ctl);

/**
 * ctl_main() - `ferry ctl --control PATH [--timeout SECONDS] REQUEST`, where
 * REQUEST is COMMAND [KEY=VALUE...], a JSON object, or - (standard input).
 * @argc, @argv: argv[0] is the subcommand name ("ctl"); options follow.
 *
 * Sends one request and prints the reply as one compact JSON line.
 * Returns the process exit status: 0 for a "return" reply, 1 for an
 * "error" reply, 2 for usage, connection, timeout or protocol errors.
 */
int ctl_main(int argc, char **argv);

/**
 * migrate_cli_main() - `ferry migrate --control PATH --to tcp:HOST:PORT
 * [--downtime-ms N] [--max-bandwidth RATE] [--max-rounds N] [--timeout-s N]
 * [--switchover wait|force|abort] [--idle-timeout-ms N] [--wait] [--json]`.
 * @argc, @argv: argv[0] is the subcommand name ("migrate"); options follow.
 *
 * Starts a migration through the source's control socket; with --wait,
 * follows it (a progress line on a terminal) and prints a report, or with
 * --json the final query-migrate answer.  Returns the process exit status:
 * 0 started (with --wait: completed), 1 refused, failed, cancelled or
 * lost track of, 2 usage.
 */
int migrate_cli_main(int argc, char **argv);

#endif
