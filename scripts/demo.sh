#!/bin/bash
# make demo: boot a busy, self-verifying guest, migrate it live between two
# ferry processes while an outside observer counts its heartbeats, print
# the report, and show the guest going on at the destination with its own
# full memory check passing.
set -euo pipefail
cd "$(dirname "$0")/.."
FERRY=build/ferry
GUEST=build/guests/testguest.elf
dir=$(mktemp -d /tmp/ferry-demo.XXXXXX)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$dir"; }
trap cleanup EXIT
exec 3>&2 # stderr for messages from inside wait_for's silenced checks

ctl() { $FERRY ctl --control "$1" "$2"; }
guest() { # guest FIELD SOCK
	ctl "$2" '{"execute":"query-vm"}' |
		/usr/bin/python3 -c "import json,sys; print(json.load(sys.stdin)['return']['guest']['$1'])"
}
wait_for() { # wait_for SECONDS COMMAND...
	local end=$((SECONDS + $1)); shift
	until "$@" >/dev/null 2>&1; do
		[ $SECONDS -lt $end ] || { echo "demo: timed out waiting for: $*" >&2; exit 1; }
		sleep 0.05
	done
}
port=$((20000 + RANDOM % 20000))
cmdline="workload=dirty wss=64M pattern=random fill=counter verify=1 verify_ms=500"

echo "== source: ferry run --memory 512M --vcpus 2 --cmdline \"$cmdline\""
$FERRY run --kernel $GUEST --memory 512M --vcpus 2 --cmdline "$cmdline" \
	--serial "file:$dir/source.log" --heartbeat "file:$dir/hb-source.bin" \
	--control "$dir/source.sock" 2>"$dir/source.err" &
src_pid=$!
pids+=($src_pid)
echo "== destination: ferry run --incoming tcp:127.0.0.1:$port"
$FERRY run --incoming "tcp:127.0.0.1:$port" --serial "file:$dir/dest.log" \
	--heartbeat "file:$dir/hb-dest.bin" --control "$dir/dest.sock" 2>"$dir/dest.err" &
pids+=($!)
# A source that died (no /dev/kvm, say) is reported with its own words,
# not as a time-out.
ready() {
	kill -0 "$src_pid" 2>/dev/null || {
		echo "demo: the source ferry ended before its guest was ready:" >&3
		cat "$dir/source.err" >&3
		exit 1
	}
	[ "$(guest ready "$dir/source.sock" 2>/dev/null)" = True ]
}
wait_for 30 ready
sleep 2
echo "== the guest at work on the source (its console):"
grep -E "ferry-testguest|progress" "$dir/source.log" | tail -3
before=$(guest pages-written "$dir/source.sock")

echo "== ferry migrate --to tcp:127.0.0.1:$port --wait"
$FERRY migrate --control "$dir/source.sock" --to "tcp:127.0.0.1:$port" --wait

wait_for 10 test -S "$dir/dest.sock"
sleep 1.5
echo "== the guest goes on at the destination:"
grep -E "progress|verify" "$dir/dest.log" | tail -3
ctl "$dir/dest.sock" '{"execute":"query-status"}'
after=$(guest pages-written "$dir/dest.sock")
errors=$(guest errors "$dir/dest.sock")
checks=$(guest checks-done "$dir/dest.sock")
echo "   pages written: $before before the migration, $after now; full checks: $checks; errors: $errors"
echo "   heartbeats seen by the observer: $(stat -c %s "$dir/hb-source.bin") from the source, $(stat -c %s "$dir/hb-dest.bin") from the destination"
ctl "$dir/dest.sock" '{"execute":"quit"}' >/dev/null
wait
[ "$errors" = 0 ] && [ "$after" -gt "$before" ] && echo "== demo OK: migrated live, nothing lost" ||
	{ echo "== demo FAILED"; exit 1; }
