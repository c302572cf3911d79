#!/bin/sh
# Run Ferry's libFuzzer targets (fuzz/, docs/fuzzing.md), built by
# `make fuzz-build` into build-fuzz/fuzz/bin/.
#
#   scripts/fuzz.sh run   [TARGET...]   a session of FUZZ_TIME s per target
#                                       (default 60); `make fuzz` calls it
#   scripts/fuzz.sh check [TARGET...]   replay the seed corpus and every
#                                       regression input, then FUZZ_TIME s
#                                       (default 4) per target on a scratch
#                                       corpus; `make test` calls it
#
# run keeps what it finds in build-fuzz/corpus/TARGET (seeded from
# fuzz/corpus/TARGET and fuzz/regress/TARGET; not committed), crashes in
# build-fuzz/crashes/TARGET/, libFuzzer's output in build-fuzz/logs/.
# Each target's line in the summary: seconds, executions, executions/s,
# coverage (edges), features, corpus size, crashes.
#
# Exits non-zero if any target crashed, leaked, hit UB or timed out, or a
# binary is missing.  A crash input belongs in fuzz/regress/TARGET/ once
# the bug is fixed: check replays it on every `make test`.
set -u
cd "$(dirname "$0")/.." || exit 2

BIN=build-fuzz/fuzz/bin
mode=${1:-}
case "$mode" in
run) TIME=${FUZZ_TIME:-60} ;;
check) TIME=${FUZZ_TIME:-4} ;;
*) echo "usage: scripts/fuzz.sh run|check [TARGET...]" >&2; exit 2 ;;
esac
shift
targets="$*"
[ -n "$targets" ] || targets=$(ls fuzz/corpus)

# The sanitizers' verdict is the test: stop at the first report.
export ASAN_OPTIONS=${FUZZ_ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:allocator_may_return_null=1}
export UBSAN_OPTIONS=${FUZZ_UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
# Per input: seconds before a hang counts as a crash; memory cap.
OPTS="-timeout=10 -rss_limit_mb=2048 -print_final_stats=1"

mkdir -p build-fuzz/logs
status=0
scratch=""
cleanup() { [ -n "$scratch" ] && rm -rf "$scratch"; }
trap cleanup EXIT INT TERM

printf '%-10s %5s %10s %8s %6s %6s %8s  %s\n' target secs execs exec/s cov ft corpus result
for t in $targets; do
	bin=$BIN/$t
	log=build-fuzz/logs/$t.log
	if [ ! -x "$bin" ]; then
		echo "fuzz: $bin is missing (make fuzz-build)" >&2
		status=1
		continue
	fi
	seeds=fuzz/corpus/$t
	regress=""
	[ -d fuzz/regress/$t ] && regress=fuzz/regress/$t
	crashes=build-fuzz/crashes/$t
	mkdir -p "$crashes"
	# The words of the JSON-speaking targets' formats.
	dict=""
	[ -f fuzz/dict/$t.dict ] && dict=-dict=fuzz/dict/$t.dict
	start=$(date +%s)
	if [ "$mode" = check ]; then
		# Every committed input once (seeds and regressions), then a
		# short session whose finds are thrown away.
		"$bin" $OPTS $dict -runs=0 -artifact_prefix="$crashes/" "$seeds" $regress \
			>"$log" 2>&1
		rc=$?
		if [ $rc -eq 0 ]; then
			scratch=$(mktemp -d "${TMPDIR:-/tmp}/ferry-fuzz-XXXXXX")
			"$bin" $OPTS $dict -max_total_time="$TIME" -artifact_prefix="$crashes/" \
				"$scratch" "$seeds" $regress >>"$log" 2>&1
			rc=$?
			rm -rf "$scratch"
			scratch=""
		fi
	else
		corpus=build-fuzz/corpus/$t
		mkdir -p "$corpus"
		"$bin" $OPTS $dict -max_total_time="$TIME" -artifact_prefix="$crashes/" \
			"$corpus" "$seeds" $regress >"$log" 2>&1
		rc=$?
	fi
	secs=$(( $(date +%s) - start ))
	execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
	rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
	line=$(grep -E '^#[0-9]+[[:space:]]+(DONE|INITED|pulse|NEW|REDUCE)' "$log" | tail -1)
	cov=$(echo "$line" | sed -n 's/.* cov: \([0-9]*\).*/\1/p')
	ft=$(echo "$line" | sed -n 's/.* ft: \([0-9]*\).*/\1/p')
	corp=$(echo "$line" | sed -n 's/.* corp: \([^ ]*\).*/\1/p')
	if [ $rc -eq 0 ]; then
		result=ok
	else
		result="FAILED (exit $rc; see $log, input in $crashes/)"
		status=1
	fi
	printf '%-10s %5s %10s %8s %6s %6s %8s  %s\n' "$t" "$secs" "${execs:-?}" \
		"${rate:-?}" "${cov:-?}" "${ft:-?}" "${corp:-?}" "$result"
	if [ $rc -ne 0 ]; then
		grep -E 'ERROR|SUMMARY|runtime error|Test unit written' "$log" | head -5 >&2
	fi
done
[ $status -eq 0 ] && echo "fuzz: all targets clean" || echo "fuzz: FAILURES" >&2
exit $status
