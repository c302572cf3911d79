/* zero.h - is a 4 KiB page all zeros?  At any alignment. */
#ifndef FERRY_ZERO_H
#define FERRY_ZERO_H

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

static inline bool page_is_zero(const void *page)
{
	const uint8_t *p = page;
	uint64_t acc = 0;
	/* memcpy loads: no alignment assumed, and gcc turns the loop into
	 * wide OR-accumulates. */
	for (size_t i = 0; i < 4096; i += 8) {
		uint64_t v;
		memcpy(&v, p + i, 8);
		acc |= v;
	}
	return acc == 0;
}

#endif
