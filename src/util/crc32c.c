/*
 * CRC-32C with the SSE4.2 crc32 instruction when the CPU has it (several
 * GB/s, which page checksums in a migration stream need), else a table.
 */
#include "util/crc32c.h"

#include <cpuid.h>
#include <stdbool.h>
#include <string.h>

static uint32_t table[256];
static int have_sse42 = -1;

static void crc32c_init(void)
{
	for (uint32_t i = 0; i < 256; i++) {
		uint32_t c = i;
		for (int k = 0; k < 8; k++)
			c = c & 1 ? (c >> 1) ^ 0x82F63B78u : c >> 1;
		table[i] = c;
	}
	unsigned a, b, c, d;
	have_sse42 = __get_cpuid(1, &a, &b, &c, &d) && (c & bit_SSE4_2);
}

__attribute__((target("sse4.2")))
static uint32_t crc32c_hw(uint32_t crc, const uint8_t *p, size_t len)
{
	uint64_t c = crc;
	while (len >= 8) {
		uint64_t v;
		memcpy(&v, p, 8);
		c = __builtin_ia32_crc32di(c, v);
		p += 8;
		len -= 8;
	}
	uint32_t c32 = (uint32_t)c;
	while (len--)
		c32 = __builtin_ia32_crc32qi(c32, *p++);
	return c32;
}

uint32_t crc32c(uint32_t crc, const void *data, size_t len)
{
	const uint8_t *p = data;

	if (have_sse42 < 0)
		crc32c_init();
	crc = ~crc;
	if (have_sse42)
		crc = crc32c_hw(crc, p, len);
	else
		while (len--)
			crc = table[(crc ^ *p++) & 0xff] ^ (crc >> 8);
	return ~crc;
}
