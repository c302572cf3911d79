"""Sizes, rates and durations as the report text shows them.

The same rules as src/util/units.c: binary prefixes (KiB, MiB, GiB and
MiB/s, as ferry's options and QEMU's `info migrate` use), milliseconds
below a second and seconds above.  The JSON results keep their own
plain numbers; only text goes through here.
"""

_PREFIXES = ["", "Ki", "Mi", "Gi", "Ti", "Pi"]


def _binary(v, suffix):
    if v is None or not v >= 0 or v == float("inf"):
        return "?"
    if v < 1023.5:
        return f"{v:.0f} B{suffix}"
    i = 0
    while True:
        decimals = 2 if i + 1 >= 3 else 1
        unit_max = 1023.95 if decimals == 1 else 1023.995
        i += 1
        v /= 1024
        if v < unit_max or i + 1 == len(_PREFIXES):
            return f"{v:.{decimals}f} {_PREFIXES[i]}B{suffix}"


def size(nbytes):
    """'128.0 MiB' for 134217728."""
    return _binary(nbytes, "")


def rate(bytes_per_s):
    """'8.0 MiB/s' for 8388608."""
    return _binary(bytes_per_s, "/s")


def duration_ms(ms):
    """'2.5 ms', '68.4 ms', '850 ms', '8.16 s', '42.0 s', '4 min 05 s'."""
    if ms is None or not ms >= 0 or ms == float("inf"):
        return "?"
    if ms < 0.995:
        return f"{ms:.2f} ms"
    if ms < 99.95:
        t = f"{ms:.1f}"
        if ms >= 9.95 and t.endswith(".0"):
            t = t[:-2]
        return f"{t} ms"
    if ms < 999.5:
        return f"{ms:.0f} ms"
    if ms < 9995:
        return f"{ms / 1000:.2f} s"
    if ms < 59950:
        return f"{ms / 1000:.1f} s"
    if ms < 3600000 - 500:
        s = int(ms / 1000 + 0.5)
        return f"{s // 60} min {s % 60:02d} s"
    m = int(ms / 60000 + 0.5)
    return f"{m // 60} h {m % 60:02d} min"


def gb_s(decimal_gb_per_s):
    """A rate the results keep in 10^9 bytes/s, as the text shows rates."""
    if decimal_gb_per_s is None:
        return "?"
    return rate(decimal_gb_per_s * 1e9)


if __name__ == "__main__":
    # The same cases as tests/unit/test_units.c: the two must agree.
    for got, want in [(size(128 * 2**20), "128.0 MiB"), (size(2**20 - 1), "1.0 MiB"),
                      (rate(8 * 2**20), "8.0 MiB/s"), (size(1.5 * 2**30), "1.50 GiB"),
                      (duration_ms(8161.7), "8.16 s"), (duration_ms(12), "12 ms"),
                      (duration_ms(68.4), "68.4 ms"), (duration_ms(245000), "4 min 05 s"),
                      (duration_ms(999.6), "1.00 s")]:
        assert got == want, (got, want)
    print("units: ok")
