#!/bin/sh
# The soak: SOAK_HOPS (default 100) migrations of a busy verifying guest,
# hop after hop through every mode the build has, plain and over TLS (X.509
# and PSK) interleaved, each proven equal from outside, with each arrived
# process's fds, threads and resident memory (tests/integration/test_soak.c;
# `make test` runs 10 hops).  The per-hop lines and the summary go to
# stdout and to build/soak.txt; docs/soak.md has the last figures.
#   bench/soak.sh [HOPS]
set -eu
cd "$(dirname "$0")/.."
hops=${1:-${SOAK_HOPS:-100}}
bin=build/tests/integration-tests
[ -x "$bin" ] || { echo "soak: build the tests first (make build/tests/integration-tests)" >&2; exit 2; }
if [ ! -r /dev/kvm ]; then
	echo "soak: needs KVM (/dev/kvm): no guest can run here, nothing measured" >&2
	exit 2
fi
out=build/soak.txt
start=$(date -u +%FT%TZ)
status=0
SOAK_HOPS=$hops FERRY=${FERRY:-build/ferry} "$bin" --filter='soak/*' --jobs=1 \
	2>&1 | tee "$out.raw" | grep '^soak:' | tee "$out" || true
grep -q 'Failing: 0' "$out.raw" && grep -q 'Crashing: 0' "$out.raw" || status=1
echo "soak: $hops hops from $start, $(grep -c '^soak: hop' "$out") completed," \
	"$( [ $status = 0 ] && echo 'no failure' || echo 'FAILED: see build/soak.txt.raw')" | tee -a "$out"
exit $status
