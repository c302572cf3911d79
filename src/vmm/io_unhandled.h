/*
 * io_unhandled.h - accesses no device claimed: port I/O and MMIO that a
 * guest written for another machine tries.  They stay harmless (reads see
 * all ones, writes are dropped, as on a PC bus) but are counted per
 * address, for query-vm, and each address is logged once.
 */
#ifndef FERRY_IO_UNHANDLED_H
#define FERRY_IO_UNHANDLED_H

#include <stdbool.h>
#include <stdint.h>

#define IO_UNHANDLED_MAX 64 /* distinct addresses tracked */

enum io_space { IO_SPACE_PIO, IO_SPACE_MMIO };

struct io_unhandled_entry {
	enum io_space space;
	uint64_t addr;
	uint64_t reads, writes;
};

struct io_unhandled {
	struct io_unhandled_entry e[IO_UNHANDLED_MAX];
	unsigned n;
	uint64_t untracked; /* accesses to addresses beyond the table */
};

/**
 * io_unhandled_note() - count one access to @addr in @space.
 * Return: true the first time this address is seen (the caller logs it
 * then, so each address is logged once), false afterwards or when the
 * table is full (counted in @untracked).
 */
bool io_unhandled_note(struct io_unhandled *u, enum io_space space,
		       uint64_t addr, bool is_write);

#endif
