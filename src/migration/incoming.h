/* incoming.h - the destination's entry points beyond migration.h. */
#ifndef FERRY_MIG_INCOMING_H
#define FERRY_MIG_INCOMING_H

#include <stdint.h>

struct vm;
struct vm_config;

/**
 * migration_incoming_fd() - the destination: accept one migration on uri,
 * build the VM from the stream and take it over.  On success *out is the
 * VM, running, and the source has been told.  On failure nothing is left
 * and err says why.  max_memory (0 = no limit) is the most guest RAM this
 * destination agrees to host; host_cfg supplies the host-side settings
 * (serial, heartbeat) for the VM it builds.  Waiting ends early, with an
 * error, when sig_fd (a signalfd, or -1) becomes readable.
 */
int migration_incoming_fd(const char *uri, int sig_fd,
			  const struct vm_config *host_cfg, uint64_t max_memory,
			  struct vm **out, char *err);

/* Test hook: where a destination dies on purpose (`--x-fault`):
 * round0 / round1: while receiving memory; device: while receiving the
 * device state; before-commit: with everything loaded, before READY (the
 * source takes its guest back); after-ready: READY sent, COMMIT not read
 * (the source has sent or is sending COMMIT: it cannot know whether it
 * arrived); after-commit: COMMIT received, guest not
 * started (the source cannot know: it stays paused and says so). */
enum incoming_fault {
	FAULT_NONE, FAULT_ROUND0, FAULT_ROUND1, FAULT_DEVICE, FAULT_BEFORE_COMMIT,
	FAULT_AFTER_READY, FAULT_AFTER_COMMIT,
};
int incoming_parse_fault(const char *s, enum incoming_fault *out);
void incoming_set_fault(enum incoming_fault f);

#endif
