/*
 * units.c - sizes, rates and durations as text (see units.h).
 */
#include "util/units.h"

#include <math.h> /* isinf: a macro, no libm */
#include <stdio.h>
#include <string.h>

static const char *const prefixes[] = { "", "Ki", "Mi", "Gi", "Ti", "Pi" };
#define NPREFIX (sizeof(prefixes) / sizeof(prefixes[0]))

/*
 * The largest prefix whose figure is at least 1, with one decimal (two
 * from GiB up, where one decimal hides 100 MiB).  The figure is rounded
 * before the prefix is chosen, so 1048575 bytes read "1.0 MiB", never
 * "1024.0 KiB".
 */
static const char *binary(char *buf, size_t len, double v, const char *suffix)
{
	size_t i = 0;

	if (!(v >= 0) || isinf(v)) {
		snprintf(buf, len, "?");
		return buf;
	}
	if (v < 1023.5) {
		snprintf(buf, len, "%.0f B%s", v, suffix);
		return buf;
	}
	for (;;) {
		int decimals = i + 1 >= 3 ? 2 : 1;
		/* Below what would round up to 1024 at this precision. */
		double unit_max = decimals == 1 ? 1023.95 : 1023.995;

		i++;
		v /= 1024;
		if (v < unit_max || i + 1 == NPREFIX) {
			snprintf(buf, len, "%.*f %sB%s", decimals, v,
				 prefixes[i], suffix);
			return buf;
		}
	}
}

const char *units_size(char *buf, size_t len, double bytes)
{
	return binary(buf, len, bytes, "");
}

const char *units_rate(char *buf, size_t len, double bytes_per_s)
{
	return binary(buf, len, bytes_per_s, "/s");
}

const char *units_duration_ms(char *buf, size_t len, double ms)
{
	if (!(ms >= 0) || isinf(ms)) {
		snprintf(buf, len, "?");
	} else if (ms < 0.995) {
		snprintf(buf, len, "%.2f ms", ms);
	} else if (ms < 99.95) {
		/* A good downtime is tens of ms: a tenth still matters
		 * from 10 ms up, unless it is a whole number ("12 ms"). */
		size_t n = (size_t)snprintf(buf, len, "%.1f ms", ms);
		if (ms >= 9.95 && n < len && n > 5 &&
		    !strcmp(buf + n - 5, ".0 ms"))
			memmove(buf + n - 5, buf + n - 3, 4);
	} else if (ms < 999.5) {
		snprintf(buf, len, "%.0f ms", ms);
	} else if (ms < 9995) {
		snprintf(buf, len, "%.2f s", ms / 1000);
	} else if (ms < 59950) {
		snprintf(buf, len, "%.1f s", ms / 1000);
	} else if (ms < 3600000 - 500) {
		long s = (long)(ms / 1000 + 0.5);
		snprintf(buf, len, "%ld min %02ld s", s / 60, s % 60);
	} else {
		long m = (long)(ms / 60000 + 0.5);
		snprintf(buf, len, "%ld h %02ld min", m / 60, m % 60);
	}
	return buf;
}
