/*
 * units.h - how sizes, rates and durations read wherever a person reads
 * them (log lines, `ferry migrate`'s progress and report, errors).
 *
 * One set of units: binary prefixes (KiB, MiB, GiB, and MiB/s), as the
 * options take them (--memory 512M is 512 MiB) and as QEMU's `info
 * migrate` prints them; milliseconds below a second, seconds above.
 * JSON answers stay in plain bytes and milliseconds: this is for text.
 */
#ifndef FERRY_UNITS_H
#define FERRY_UNITS_H

#include <stddef.h>

/* Enough for every string these functions write. */
#define UNITS_LEN 32

/**
 * units_size() - a byte count for people: "512 B", "4.0 KiB", "128.0 MiB",
 * "1.50 GiB", "2.00 TiB".
 * @buf: where the text goes (UNITS_LEN bytes are always enough)
 * @len: size of @buf
 * @bytes: the count; negative or not a number reads "?"
 *
 * Return: @buf, so that a call can be a printf argument.
 */
const char *units_size(char *buf, size_t len, double bytes);

/**
 * units_rate() - bytes per second for people: "512 B/s", "8.0 MiB/s",
 * "1.25 GiB/s" (the prefixes of units_size()).
 */
const char *units_rate(char *buf, size_t len, double bytes_per_s);

/**
 * units_duration_ms() - a duration given in milliseconds, for people:
 * "0.25 ms", "2.5 ms", "68.4 ms", "850 ms", "8.16 s", "42.0 s", "4 min 05 s",
 * "2 h 03 min".  Precise when short, readable when long; never "1000 ms".
 */
const char *units_duration_ms(char *buf, size_t len, double ms);

#endif
