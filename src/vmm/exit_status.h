/*
 * exit_status.h - what `ferry run`'s exit status means (the README's
 * table): the VMM's own statuses, and the rule for passing on a guest's
 * exit code without letting it read as one of them.
 */
#ifndef FERRY_EXIT_STATUS_H
#define FERRY_EXIT_STATUS_H

#include <stddef.h>
#include <stdint.h>

#define EXIT_GUEST_FAILED 1   /* the guest failed without a usable code */
#define EXIT_USAGE        2   /* a bad command line */
#define EXIT_VMM_ERROR    120 /* the VMM failed (message on stderr) */
#define EXIT_SIGNAL(sig)  (128 + (sig)) /* SIGINT 130, SIGTERM 143 */
/* Tests only: a fault injected on purpose (--x-fault, migrate's x-fault)
 * ended the process as a crash would; never seen without those. */
#define EXIT_FAULT_INJECTED 99

/**
 * exit_status_for_guest() - the process's exit status for the code a guest
 * asked to exit with.
 * @code: the guest's code (the exit port's value, or QEMU's (V << 1) | 1)
 * @why: when the code cannot be passed on, a sentence saying why (may be
 *       NULL)
 * @len: size of @why
 *
 * A code from 0 to 255 is the status, unless it is one of ferry's own:
 * 2 (bad command line), 120 (VMM failure), 130 and 143 (SIGINT and
 * SIGTERM).  Those, and codes that do not fit in 8 bits (which the
 * kernel would cut, so that 256 read as success), give 1: the guest
 * failed, and the log names its code.  Like QEMU, 1 is also what a guest
 * that stops without a code (a triple fault) ends with.
 *
 * Return: the exit status.
 */
int exit_status_for_guest(uint64_t code, char *why, size_t len);

#endif
