#!/bin/sh
# make bench: every benchmark, results printed as JSON (see docs/results.md).
set -eu
cd "$(dirname "$0")/.."
mkdir -p build
gcc -O2 -Wall -Wextra -o build/tcp_raw bench/tcp_raw.c
/usr/bin/python3 bench/foundation.py
/usr/bin/python3 bench/migration.py
