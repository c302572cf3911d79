#!/bin/sh
# Line coverage of the decoders by the fuzz corpora: every input of
# fuzz/corpus, fuzz/regress and build-fuzz/corpus run once through the
# coverage build (make fuzz-coverage builds build-fuzzcov/fuzz/bin/),
# then llvm-cov's report for the files the targets exist for.
set -u
cd "$(dirname "$0")/.." || exit 2
BIN=build-fuzzcov/fuzz/bin
OUT=build-fuzzcov/profiles
rm -rf "$OUT"
mkdir -p "$OUT"
export ASAN_OPTIONS=detect_leaks=0
objs=""
for t in $(ls fuzz/corpus); do
	dirs="fuzz/corpus/$t"
	[ -d fuzz/regress/$t ] && dirs="$dirs fuzz/regress/$t"
	[ -d build-fuzz/corpus/$t ] && dirs="$dirs build-fuzz/corpus/$t"
	LLVM_PROFILE_FILE="$OUT/$t.profraw" "$BIN/$t" -runs=0 $dirs >/dev/null 2>&1 ||
		echo "fuzz-coverage: $t failed on its corpus" >&2
	if [ -z "$objs" ]; then objs="$BIN/$t"; else objs="$objs -object $BIN/$t"; fi
done
llvm-profdata merge -sparse -o "$OUT/all.profdata" "$OUT"/*.profraw || exit 1
# shellcheck disable=SC2086
llvm-cov report -instr-profile="$OUT/all.profdata" $objs \
	src/io/record.c src/migration/preamble.c src/migration/caps.c \
	src/migration/ram_codec.c src/migration/incoming.c src/vmm/machine_desc.c \
	src/vmm/machine_state.c src/vmm/vcpu_state.c src/vmm/platform_state.c \
	src/devices/uart8250.c src/devices/testdev.c src/devices/fwcfg.c \
	src/devices/heartbeat.c src/devices/debugexit.c src/snapshot/snapshot.c \
	src/control/control_stream.c src/control/control_proto.c \
	src/control/control_commands.c src/control/control_migrate.c
