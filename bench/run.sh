#!/bin/sh
# make bench: every benchmark, results printed as JSON (see docs/results.md).
set -eu
cd "$(dirname "$0")/.."
mkdir -p build
gcc -O2 -Wall -Wextra -o build/tcp_raw bench/tcp_raw.c
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
/usr/bin/python3 bench/foundation.py
/usr/bin/python3 bench/migration.py
