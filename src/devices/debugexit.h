/*
 * debugexit.h - QEMU's exit convention, `ferry run --exit-port
 * isa-debug-exit`: a write of V to port 0xf4 (4 bytes wide) ends the run
 * with status (V << 1) | 1, as QEMU's
 * `-device isa-debug-exit,iobase=0xf4,iosize=4` does, so scripts written
 * for QEMU read the same results.  It takes the port from the test
 * device's exit port (Ferry's own convention: status V), which stays the
 * default.
 */
#ifndef FERRY_DEBUGEXIT_H
#define FERRY_DEBUGEXIT_H

#include <stdint.h>

#define DEBUGEXIT_PORT 0xf4
#define DEBUGEXIT_SIZE 4

struct vm;
struct device;

/* The code a write of v asks for, (v << 1) | 1, uncut: from 256 up it
 * does not fit an exit status (exit_status_for_guest() decides). */
static inline uint64_t debugexit_status(uint32_t v)
{
	return ((uint64_t)v << 1) | 1;
}

/**
 * debugexit_create() - put the device on @vm's I/O bus; it must be added
 * before the test device so that it claims port 0xf4.
 * Return: 0 or -errno.
 */
int debugexit_create(struct vm *vm);

#endif
