#!/bin/sh
# make bench: every benchmark, results printed as JSON (see docs/results.md
# and docs/bench.md).  Without a usable /dev/kvm only the guest-less parts
# run (codec, TLS, restore copy, post-copy faults, the raw-TCP ceiling);
# what was skipped is said, never estimated.
#
# Environment: BENCH_OUT_MIGRATION (default build/bench/results.json): the
# migration/ceiling JSON; BENCH_REPORT (default build/bench/report.md): the
# report generated from it, SVG charts in BENCH_REPORT's directory under
# bench/ (to publish: bench/report.py FILE --out docs/bench.md
# --svg-dir docs/bench).  bench/migration.py's own variables (BENCH_LINKS,
# BENCH_CHANNELS, BENCH_SCENARIOS, BENCH_REPEATS, BENCH_POSTCOPY=0 to skip
# the post-copy case, BENCH_POSTCOPY_SIZES, ...) pass through.
set -eu
cd "$(dirname "$0")/.."
mkdir -p build/bench
gcc -O2 -Wall -Wextra -o build/tcp_raw bench/tcp_raw.c -lpthread
gcc -O2 -Wall -Wextra -D_GNU_SOURCE -Isrc -o build/restore_cost \
	bench/restore_cost.c src/util/extent_copy.c src/util/log.c -lpthread
build/restore_cost "${TMPDIR:-/tmp}" 1024
# post-copy fault latency and push order, no guest needed (built by make bench)
build/bench/postcopy_faults 256 2000
gcc -O2 -Wall -Wextra -D_GNU_SOURCE -Isrc -o build/tls_throughput bench/tls_throughput.c \
	src/io/channel.c src/io/channel_socket.c src/io/channel_tls.c src/io/tls_creds.c \
	src/io/record.c src/io/pacing.c src/util/crc32c.c src/util/log.c -lssl -lcrypto -lpthread
build/tls_throughput 1024
build/bench/ram_codec_bench 64
build/bench/delta_bench 4096 5
# parallel page channels against raw TCP with as many connections (docs/multifd.md)
/usr/bin/python3 bench/multifd.py

if /usr/bin/python3 -c 'import os; os.close(os.open("/dev/kvm", os.O_RDWR))' 2>/dev/null; then
	/usr/bin/python3 bench/foundation.py
else
	echo "bench: NO usable /dev/kvm on this host: no guest can run. SKIPPED:" \
	     "bench/foundation.py (boot, snapshot) and every migration scenario;" \
	     "only the guest-less parts run." >&2
fi
# With KVM: the ceiling, the classic loopback cases, the scenarios and
# post-copy against QEMU's (case_postcopy);
# without: the ceiling alone (bench/migration.py says so).
out=${BENCH_OUT_MIGRATION:-build/bench/results.json}
BENCH_OUT_MIGRATION=$out /usr/bin/python3 bench/migration.py
report=${BENCH_REPORT:-build/bench/report.md}
/usr/bin/python3 bench/report.py "$out" --out "$report" --svg-dir "$(dirname "$report")/bench"
