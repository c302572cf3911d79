/*
 * CRC-32C with the SSE4.2 crc32 instruction when the CPU has it, else a
 * table.  The instruction has a latency of three cycles but can start one
 * per cycle, so long buffers are cut into three lanes computed side by
 * side, and the lanes' CRCs are joined with a "shift by a lane of zeros"
 * operator (a linear map over GF(2), kept as four byte tables).  That
 * triples the speed: page records are checksummed at memory speed rather
 * than at a third of the link's.
 */
#include "util/crc32c.h"

#include <cpuid.h>
#include <pthread.h>
#include <stdbool.h>
#include <string.h>

#define POLY 0x82F63B78u      /* reflected Castagnoli polynomial */
#define LANE 4096u            /* bytes per lane per step */

static uint32_t table[256];
static uint32_t shift_lane[4][256]; /* x -> x * x^(8*LANE) mod P */
static bool have_sse42;
static pthread_once_t once = PTHREAD_ONCE_INIT;

/* Raw (no pre/post inversion) CRC of n zero bytes after state v. */
static uint32_t zeros_slow(uint32_t v, size_t n)
{
	while (n--)
		v = table[v & 0xff] ^ (v >> 8);
	return v;
}

static void crc32c_init(void)
{
	for (uint32_t i = 0; i < 256; i++) {
		uint32_t c = i;
		for (int k = 0; k < 8; k++)
			c = c & 1 ? (c >> 1) ^ POLY : c >> 1;
		table[i] = c;
	}
	/* The operator is linear: find the image of each bit, then combine. */
	uint32_t bit_image[32];
	for (int b = 0; b < 32; b++)
		bit_image[b] = zeros_slow(1u << b, LANE);
	for (int k = 0; k < 4; k++)
		for (uint32_t i = 0; i < 256; i++) {
			uint32_t v = 0;
			for (int b = 0; b < 8; b++)
				if (i & (1u << b))
					v ^= bit_image[8 * k + b];
			shift_lane[k][i] = v;
		}
	unsigned a, b, c, d;
	have_sse42 = __get_cpuid(1, &a, &b, &c, &d) && (c & bit_SSE4_2);
}

static uint32_t shift(uint32_t v)
{
	return shift_lane[0][v & 0xff] ^ shift_lane[1][(v >> 8) & 0xff] ^
	       shift_lane[2][(v >> 16) & 0xff] ^ shift_lane[3][v >> 24];
}

__attribute__((target("sse4.2")))
static uint32_t crc32c_hw(uint32_t crc, const uint8_t *p, size_t len)
{
	uint64_t c0 = crc;

	while (len >= 3 * LANE) {
		uint64_t c1 = 0, c2 = 0;
		for (size_t i = 0; i < LANE; i += 8) {
			uint64_t v0, v1, v2;
			memcpy(&v0, p + i, 8);
			memcpy(&v1, p + LANE + i, 8);
			memcpy(&v2, p + 2 * LANE + i, 8);
			c0 = __builtin_ia32_crc32di(c0, v0);
			c1 = __builtin_ia32_crc32di(c1, v1);
			c2 = __builtin_ia32_crc32di(c2, v2);
		}
		c0 = shift(shift((uint32_t)c0) ^ (uint32_t)c1) ^ (uint32_t)c2;
		p += 3 * LANE;
		len -= 3 * LANE;
	}
	while (len >= 8) {
		uint64_t v;
		memcpy(&v, p, 8);
		c0 = __builtin_ia32_crc32di(c0, v);
		p += 8;
		len -= 8;
	}
	uint32_t c32 = (uint32_t)c0;
	while (len--)
		c32 = __builtin_ia32_crc32qi(c32, *p++);
	return c32;
}

uint32_t crc32c_sw(uint32_t crc, const void *data, size_t len)
{
	const uint8_t *p = data;
	pthread_once(&once, crc32c_init);
	crc = ~crc;
	while (len--)
		crc = table[(crc ^ *p++) & 0xff] ^ (crc >> 8);
	return ~crc;
}

uint32_t crc32c(uint32_t crc, const void *data, size_t len)
{
	pthread_once(&once, crc32c_init);
	if (!have_sse42)
		return crc32c_sw(crc, data, len);
	return ~crc32c_hw(~crc, data, len);
}
