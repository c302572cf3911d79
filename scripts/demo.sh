#!/bin/bash
# make demo: boot a busy, self-verifying guest, watch it work, snapshot it
# while it runs, end it, and bring it back from the snapshot in a new
# process - its counters go on where they stopped and its own full memory
# check passes.
set -euo pipefail
cd "$(dirname "$0")/.."
FERRY=build/ferry
GUEST=build/guests/testguest.elf
dir=$(mktemp -d /tmp/ferry-demo.XXXXXX)
trap 'kill $pid 2>/dev/null || true; rm -rf "$dir"' EXIT

ctl() { $FERRY ctl --control "$dir/ctl.sock" "$1"; }
wait_ready() {
	for _ in $(seq 200); do
		ctl '{"execute":"query-vm"}' 2>/dev/null | grep -q '"ready": *true' && return 0
		sleep 0.05
	done
	echo "demo: guest did not get ready" >&2; exit 1
}

cmdline="workload=dirty wss=64M pattern=random fill=counter verify=1 verify_ms=500"
echo "== boot: ferry run --memory 512M --vcpus 2 --cmdline \"$cmdline\""
$FERRY run --kernel $GUEST --memory 512M --vcpus 2 --cmdline "$cmdline" \
	--serial "file:$dir/serial1.log" --heartbeat "file:$dir/hb1.bin" \
	--control "$dir/ctl.sock" &
pid=$!
wait_ready
sleep 2
echo "== the guest at work (its console):"
grep -E "ferry-testguest|progress|verify" "$dir/serial1.log" | tail -4
echo "== query-vm:"
ctl '{"execute":"query-vm"}'
echo "== heartbeats received by the outside observer: $(stat -c %s "$dir/hb1.bin")"

echo "== snapshot-save while running"
t0=$(date +%s%N)
ctl "{\"execute\":\"snapshot-save\",\"arguments\":{\"path\":\"$dir/vm.snap\"}}"
t1=$(date +%s%N)
echo "   saved in $(( (t1 - t0) / 1000000 )) ms; file $(du -h --apparent-size "$dir/vm.snap" | cut -f1) apparent, $(du -h "$dir/vm.snap" | cut -f1) on disk"
before=$(ctl '{"execute":"query-vm"}' | python3 -c 'import json,sys; print(json.load(sys.stdin)["return"]["guest"]["pages-written"])')
ctl '{"execute":"quit"}' >/dev/null
wait $pid || true

echo "== restore in a new process: ferry run --restore vm.snap"
$FERRY run --restore "$dir/vm.snap" --serial "file:$dir/serial2.log" \
	--heartbeat "file:$dir/hb2.bin" --control "$dir/ctl.sock" &
pid=$!
sleep 2.5
echo "== the restored guest goes on:"
grep -E "progress|verify" "$dir/serial2.log" | tail -3
after=$(ctl '{"execute":"query-vm"}' | python3 -c 'import json,sys; g=json.load(sys.stdin)["return"]["guest"]; print(g["pages-written"], g["errors"])')
echo "   pages written before the snapshot: $before; now: ${after% *}; verify errors: ${after#* }"
ctl '{"execute":"quit"}' >/dev/null
wait $pid || true
[ "${after#* }" = 0 ] && echo "== demo OK: nothing lost" || { echo "== demo FAILED"; exit 1; }
