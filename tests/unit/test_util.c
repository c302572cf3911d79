/* Unit tests for the pure helpers: size parsing, buffers, CRC-32C. */
#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

#include "util/buf.h"
#include "util/crc32c.h"
#include "util/parse.h"

Test(parse, sizes)
{
	uint64_t v;
	cr_assert_eq(parse_size("512M", &v), 0);
	cr_assert_eq(v, 512ULL << 20);
	cr_assert_eq(parse_size("4G", &v), 0);
	cr_assert_eq(v, 4ULL << 30);
	cr_assert_eq(parse_size("64KiB", &v), 0);
	cr_assert_eq(v, 64ULL << 10);
	cr_assert_eq(parse_size("4096", &v), 0);
	cr_assert_eq(v, 4096);
	cr_assert_eq(parse_size("1gb", &v), 0);
	cr_assert_eq(v, 1ULL << 30);
}

Test(parse, bad_sizes)
{
	uint64_t v;
	cr_assert_eq(parse_size("", &v), -EINVAL);
	cr_assert_eq(parse_size("12X", &v), -EINVAL);
	cr_assert_eq(parse_size("-1", &v), -EINVAL);
	cr_assert_eq(parse_size("M", &v), -EINVAL);
	cr_assert_eq(parse_size("1MM", &v), -EINVAL);
	cr_assert_eq(parse_size("99999999999999T", &v), -ERANGE);
	cr_assert_eq(parse_size(NULL, &v), -EINVAL);
}

Test(parse, uints)
{
	uint64_t v;
	cr_assert_eq(parse_uint("8", 64, &v), 0);
	cr_assert_eq(v, 8);
	cr_assert_eq(parse_uint("65", 64, &v), -EINVAL);
	cr_assert_eq(parse_uint("1x", 64, &v), -EINVAL);
	cr_assert_eq(parse_uint(" 1", 64, &v), -EINVAL);
}

Test(buf, roundtrip)
{
	struct buf b;
	struct cursor c;
	char s[16];

	buf_init(&b);
	buf_put_u8(&b, 0xab);
	buf_put_u16(&b, 0x1234);
	buf_put_u32(&b, 0xdeadbeef);
	buf_put_u64(&b, 0x0123456789abcdefULL);
	buf_put_str(&b, "uart");
	for (int i = 0; i < 1000; i++) /* forces growth */
		buf_put_u32(&b, i);
	cr_assert(!b.oom);

	cursor_init(&c, b.data, b.len);
	cr_assert_eq(cursor_u8(&c), 0xab);
	cr_assert_eq(cursor_u16(&c), 0x1234);
	cr_assert_eq(cursor_u32(&c), 0xdeadbeef);
	cr_assert_eq(cursor_u64(&c), 0x0123456789abcdefULL);
	cr_assert(cursor_str(&c, s, sizeof(s)));
	cr_assert_str_eq(s, "uart");
	for (int i = 0; i < 1000; i++)
		cr_assert_eq(cursor_u32(&c), (uint32_t)i);
	cr_assert(cursor_done(&c));
	buf_free(&b);
}

Test(buf, short_reads_are_sticky)
{
	uint8_t data[3] = { 1, 2, 3 };
	struct cursor c;
	char s[4];

	cursor_init(&c, data, sizeof(data));
	cr_assert_eq(cursor_u32(&c), 0);
	cr_assert(c.short_read);
	cr_assert_eq(cursor_u8(&c), 0, "reads after a short read return 0");
	cr_assert(!cursor_done(&c));

	/* A string whose length prefix runs past the end. */
	uint8_t bad[6] = { 100, 0, 0, 0, 'a', 'b' };
	cursor_init(&c, bad, sizeof(bad));
	cr_assert(!cursor_str(&c, s, sizeof(s)));
	cr_assert(c.short_read);
}

Test(crc32c, known_vectors)
{
	/* RFC 3720 (iSCSI) test vectors and the classic check value. */
	cr_assert_eq(crc32c(0, "123456789", 9), 0xE3069283);
	uint8_t zeros[32] = { 0 };
	cr_assert_eq(crc32c(0, zeros, 32), 0x8A9136AA);
	uint8_t ones[32];
	memset(ones, 0xff, 32);
	cr_assert_eq(crc32c(0, ones, 32), 0x62A8AB43);
	/* Incremental equals one shot. */
	uint32_t c = crc32c(0, "1234", 4);
	cr_assert_eq(crc32c(c, "56789", 5), 0xE3069283);
}

Test(crc32c, lanes_match_the_table_version)
{
	/* Lengths around the three-lane block (3 x 4096) and odd offsets. */
	static uint8_t buf[3 * 4096 * 3 + 64];
	for (size_t i = 0; i < sizeof(buf); i++)
		buf[i] = (uint8_t)(i * 2654435761u >> 13);
	const size_t lens[] = { 0, 1, 7, 8, 4095, 12287, 12288, 12289,
				24576, 24577, 36863, sizeof(buf) - 3 };
	for (size_t k = 0; k < sizeof(lens) / sizeof(lens[0]); k++)
		for (size_t off = 0; off < 3; off++)
			cr_assert_eq(crc32c(0x1234, buf + off, lens[k]),
				     crc32c_sw(0x1234, buf + off, lens[k]),
				     "len %zu off %zu", lens[k], off);
}
