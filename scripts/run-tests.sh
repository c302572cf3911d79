#!/bin/sh
# Run Ferry's test suite: the unit tests, a short fuzzing check (every
# committed fuzz input replayed, then a few seconds per libFuzzer target:
# scripts/fuzz.sh check), then the integration tests, which
# start real `ferry` processes (the sanitizer build, build-san/ferry) with
# real guests.  Called by `make test` after everything is built; can be run
# by hand from the top of the tree.
#
#   scripts/run-tests.sh [unit|fuzz|bench|integration] [extra Criterion options...]
#   (bench: the benchmark tooling's own checks, tests/bench/report_check.py)
#   e.g. scripts/run-tests.sh integration --filter='snapshot/*'
#
# Environment: FERRY (VMM under test, default build-san/ferry if built),
# FERRY_QMPQUERY (the go-qemu client, default $BUILD/tests/qmpquery),
# FERRY_GUEST (default build/guests/testguest.elf), JOBS (parallel tests,
# default 2: one per core; every test runs real VMs), FERRY_KEEP=1 keeps
# the per-test temporary directories.
#
# Exits non-zero if any test fails, crashes or times out.
set -u
cd "$(dirname "$0")/.." || exit 2

BUILD=${BUILD:-build}
UNIT_BIN=$BUILD/tests/unit-tests
INTEG_BIN=$BUILD/tests/integration-tests
JOBS=${JOBS:-2}

what=all
case "${1:-}" in
unit|fuzz|bench|integration|all) what=$1; shift ;;
esac

# Sanitizer reports must fail the run: a distinct exit code for the VMM
# under test, and the harness also fails any test whose ferry printed one.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0:exitcode=66}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1:exitcode=66}
if [ -z "${FERRY:-}" ]; then
	if [ -x build-san/ferry ]; then FERRY=build-san/ferry; else FERRY=$BUILD/ferry; fi
fi
export FERRY
export FERRY_GUEST=${FERRY_GUEST:-$BUILD/guests/testguest.elf}
export FERRY_QMPQUERY=${FERRY_QMPQUERY:-$BUILD/tests/qmpquery}

# One scratch directory for the whole run, removed at the end even when a
# test was killed by its timeout before it could clean up.
TMPDIR=$(mktemp -d "${TMPDIR:-/tmp}/ferry-tests-XXXXXX") || exit 2
export TMPDIR
cleanup() { [ -n "${FERRY_KEEP:-}" ] || rm -rf "$TMPDIR"; }
trap cleanup EXIT INT TERM

status=0
run() {
	name=$1; shift
	bin=$1; shift
	if [ ! -x "$bin" ]; then
		echo "run-tests: $bin is missing (make test builds it)" >&2
		status=1
		return
	fi
	echo "== $name: $bin"
	start=$(date +%s)
	"$bin" "$@"
	rc=$?
	echo "== $name: exit $rc in $(( $(date +%s) - start )) s"
	[ $rc -eq 0 ] || status=1
}

if [ "$what" = all ] || [ "$what" = unit ]; then
	run "unit tests" "$UNIT_BIN" --jobs "$JOBS" "$@"
fi
if [ "$what" = all ] || [ "$what" = fuzz ]; then
	echo "== fuzz targets: scripts/fuzz.sh check"
	start=$(date +%s)
	scripts/fuzz.sh check
	rc=$?
	echo "== fuzz targets: exit $rc in $(( $(date +%s) - start )) s"
	[ $rc -eq 0 ] || status=1
fi
if [ "$what" = all ] || [ "$what" = bench ]; then
	echo "== bench tooling: tests/bench/report_check.py"
	start=$(date +%s)
	/usr/bin/python3 tests/bench/report_check.py
	rc=$?
	echo "== bench tooling: exit $rc in $(( $(date +%s) - start )) s"
	[ $rc -eq 0 ] || status=1
fi
if [ "$what" = all ] || [ "$what" = integration ]; then
	echo "   ferry: $FERRY   guest: $FERRY_GUEST"
	[ -e "$FERRY_GUEST" ] ||
		echo "   (guest image missing: tests that need it are skipped)"
	if [ ! -c /dev/kvm ]; then
		echo "run-tests: WARNING: no usable /dev/kvm on this machine: every" >&2
		echo "run-tests: integration test that needs a guest is SKIPPED (each says so)." >&2
		echo "run-tests: Only unit tests and guest-less integration tests ran." >&2
	fi
	run "integration tests" "$INTEG_BIN" --jobs "$JOBS" "$@"
fi

[ $status -eq 0 ] && echo "run-tests: all passed" || echo "run-tests: FAILURES" >&2
exit $status
