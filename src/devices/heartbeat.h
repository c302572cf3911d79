/*
 * heartbeat.h - the heartbeat port (0xe9, QEMU's isa-debugcon address).
 * The guest writes one byte per heartbeat; the device forwards it at once to
 * an outside observer, which timestamps arrivals and so measures how long the
 * guest stood still without trusting the VMM's clock.
 */
#ifndef FERRY_HEARTBEAT_H
#define FERRY_HEARTBEAT_H

#include <stdbool.h>
#include <stdint.h>

struct vm;
struct heartbeat;
struct outbuf_stats;

/**
 * heartbeat_check_target() - whether @target is a heartbeat target's
 * spelling, without opening or connecting (a bad --heartbeat is a
 * command-line error).
 * Return: 0, or -EINVAL with @err saying what is accepted.
 */
int heartbeat_check_target(const char *target, char *err);

/* target: "none", "file:PATH" (appended) or "unix:PATH" (a stream socket
 * the observer listens on). */
int heartbeat_create(struct vm *vm, const char *target,
		     struct heartbeat **out, char *err);
uint64_t heartbeat_count(struct heartbeat *hb);
/* Bytes written to the observer, dropped (it lagged or left), queued. */
void heartbeat_output_stats(struct heartbeat *hb, struct outbuf_stats *st);
/* Wait up to @max_ms for queued beats to go out; true when none is left. */
bool heartbeat_drain(struct heartbeat *hb, unsigned max_ms);

#endif
