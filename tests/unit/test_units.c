/* Unit tests for units.c: the one way sizes, rates and times read. */
#include <criterion/criterion.h>
#include <math.h>
#include <string.h>

#include "util/units.h"

#define SIZE_IS(bytes, want) do {					\
	char b_[UNITS_LEN];						\
	cr_expect_str_eq(units_size(b_, sizeof(b_), (bytes)), (want));	\
} while (0)
#define RATE_IS(bps, want) do {						\
	char b_[UNITS_LEN];						\
	cr_expect_str_eq(units_rate(b_, sizeof(b_), (bps)), (want));	\
} while (0)
#define TIME_IS(ms, want) do {						\
	char b_[UNITS_LEN];						\
	cr_expect_str_eq(units_duration_ms(b_, sizeof(b_), (ms)), (want)); \
} while (0)

Test(units, sizes_are_binary)
{
	SIZE_IS(0, "0 B");
	SIZE_IS(512, "512 B");
	SIZE_IS(1023, "1023 B");
	SIZE_IS(1024, "1.0 KiB");
	SIZE_IS(4096, "4.0 KiB");
	/* Issue 11: a 128M guest read "134.2 MB". */
	SIZE_IS(128.0 * 1024 * 1024, "128.0 MiB");
	SIZE_IS(1.5 * 1024 * 1024 * 1024, "1.50 GiB");
	SIZE_IS(2.0 * 1024 * 1024 * 1024 * 1024, "2.00 TiB");
}

Test(units, rounding_never_shows_1024_of_a_prefix)
{
	SIZE_IS(1023.6, "1.0 KiB");
	SIZE_IS(1024.0 * 1024 - 1, "1.0 MiB");
	SIZE_IS(1024.0 * 1024 * 1024 - 1, "1.00 GiB");
	SIZE_IS(1023.9 * 1024, "1023.9 KiB");
}

Test(units, rates)
{
	RATE_IS(100, "100 B/s");
	/* --max-bandwidth 8M is 8 MiB/s and reads so. */
	RATE_IS(8.0 * 1024 * 1024, "8.0 MiB/s");
	RATE_IS(1.25 * 1024 * 1024 * 1024, "1.25 GiB/s");
}

Test(units, durations_switch_to_seconds_past_one_second)
{
	TIME_IS(0, "0.00 ms");
	TIME_IS(0.25, "0.25 ms");
	TIME_IS(2.5, "2.5 ms");
	TIME_IS(9, "9.0 ms");
	TIME_IS(12, "12 ms");
	TIME_IS(68.4, "68.4 ms");
	TIME_IS(99.96, "100 ms");
	TIME_IS(850, "850 ms");
	TIME_IS(999.4, "999 ms");
	TIME_IS(999.6, "1.00 s");
	/* Issue 11: "downtime: 8161.7 ms". */
	TIME_IS(8161.7, "8.16 s");
	TIME_IS(42000, "42.0 s");
	TIME_IS(245000, "4 min 05 s");
	TIME_IS(59999, "1 min 00 s");
	TIME_IS(7380000, "2 h 03 min");
}

Test(units, nonsense_reads_as_unknown)
{
	SIZE_IS(-1, "?");
	SIZE_IS(NAN, "?");
	RATE_IS(INFINITY, "?");
	TIME_IS(-5, "?");
	TIME_IS(NAN, "?");
}

Test(units, small_buffers_are_not_overrun)
{
	char b[6];

	memset(b, 'x', sizeof(b));
	units_size(b, 5, 128.0 * 1024 * 1024);
	cr_expect_eq(strlen(b), 4);
	cr_expect_eq(b[5], 'x');
}
