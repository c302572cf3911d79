#!/bin/sh
# make bench: every benchmark, results printed as JSON (see docs/results.md).
set -eu
cd "$(dirname "$0")/.."
/usr/bin/python3 bench/foundation.py
