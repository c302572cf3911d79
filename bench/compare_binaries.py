#!/usr/bin/python3
"""Two (or more) ferry binaries side by side, in one run, interleaved.

Issue 6 asks that the restructured migration be no worse than the binary
from before it, measured in the same run; this machine is shared and
noisy (single runs swing 2x), so the binaries take turns, every run is
listed, and beside throughput each run gives the CPU seconds the two
ferry processes spent without their vCPU threads, which load moves far
less than it moves time.

  bench/compare_binaries.py [--runs N] [--case CASE] NAME=PATH NAME=PATH ...

  incompressible: 960 MiB of random bytes in a 1 GiB guest (the
                  scenario of bench/migration.py): MiB/s of page data
                  over the total time;
  busy:           the 64 MiB working set rewritten at full speed in a
                  512 MiB guest: total time, own downtime, hand-over gap;
  prealloc:       incompressible into a destination started --prealloc
                  (its memory faulted in before the stream: what is left
                  is the stream's own cost);
  idle-8g:        an untouched 8 GiB guest: what never-touched memory
                  costs round 0 (round0_ms);
  busy-8g:        the busy working set in 8 GiB: whether the pause grows
                  with memory size;
  both:           incompressible, then busy.

Build the old binary in a worktree, for example:
  git worktree add --detach /tmp/old bbd2482 && make -C /tmp/old build/ferry
  bench/compare_binaries.py old=/tmp/old/build/ferry new=build/ferry
Results (JSON) go to BENCH_OUT_COMPARE if set.
"""
import argparse
import json
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ferry_proc as fp  # noqa: E402
import migration as m  # noqa: E402

CASES = {
    "incompressible": ("1G", "workload=dirty wss=960M fill=random verify=1 rate=1",
                       m.laid_out),
    "busy": ("512M", m.BUSY_CMDLINE, m.is_ready),
    "prealloc": ("1G", "workload=dirty wss=960M fill=random verify=1 rate=1", m.laid_out),
    "idle-8g": ("8G", "workload=idle", m.is_ready),
    "busy-8g": ("8G", m.BUSY_CMDLINE, m.is_ready),
}
# Options for the destination alone.
DST_EXTRA = {"prealloc": ["--memory", "1G", "--prealloc"]}


def one(case, tag, binary, i, work):
    memory, cmdline, ready = CASES[case]
    fp.FERRY = binary
    r = m.ferry_migration(work, f"{case}-{tag}{i}", memory, 1, cmdline, ready,
                          dst_extra=DST_EXTRA.get(case, ()))
    cost = r.get("cost") or {}
    cpu = [cost.get(k, {}).get("cpu_s_without_vcpus") for k in ("src", "dst")]
    return {
        "binary": tag, "run": i, "total_ms": r["total_ms"],
        "downtime_ms": r["downtime_ms"], "handover_gap_ms": r.get("handover_gap_ms"),
        "observer_gap_ms": r.get("observer_gap_ms"),
        "mib_s": round(r["ram_normal_bytes"] / (r["total_ms"] / 1000) / 2**20, 1),
        "rounds": r["rounds"], "round0_ms": r.get("round0_ms"),
        "cpu_s": round(sum(c for c in cpu if c is not None), 2),
        "src_cpu_s": cpu[0], "dst_cpu_s": cpu[1],
        "verification": r.get("verification"), "loadavg_1m": r["loadavg_1m"],
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--case", choices=sorted(CASES) + ["both"],
                    default="both")
    ap.add_argument("binaries", nargs="+", metavar="NAME=PATH")
    a = ap.parse_args()
    bins = []
    for spec in a.binaries:
        name, _, path = spec.partition("=")
        if not name or not os.access(path, os.X_OK):
            ap.error(f"{spec!r}: want NAME=PATH to an executable ferry")
        bins.append((name, os.path.abspath(path)))
    ok, why = m.kvm_usable()
    if not ok:
        sys.exit(f"compare_binaries: needs KVM: {why}")
    cases = ["incompressible", "busy"] if a.case == "both" else [a.case]
    work = tempfile.mkdtemp(prefix="ferry-compare-")
    runs = []
    for case in cases:
        for i in range(a.runs):
            for name, path in bins:  # take turns: a noisy spell hits all
                r = dict(one(case, name, path, i, work), case=case)
                runs.append(r)
                print(f"{case} {name} run {i}: total {r['total_ms']} ms, "
                      f"{r['mib_s']} MiB/s, downtime {r['downtime_ms']} ms, hand-over "
                      f"{r['handover_gap_ms']} ms, CPU {r['cpu_s']} s "
                      f"({r['src_cpu_s']} + {r['dst_cpu_s']}), "
                      f"rounds {r['rounds']}, round 0 {r['round0_ms']} ms, "
                      f"load {r['loadavg_1m']}", flush=True)
    summary = {}
    for case in cases:
        for name, _ in bins:
            mine = [r for r in runs if r["case"] == case and r["binary"] == name]
            summary.setdefault(case, {})[name] = {
                k: m.median([r[k] for r in mine])
                for k in ("total_ms", "mib_s", "downtime_ms", "handover_gap_ms", "cpu_s",
                          "src_cpu_s", "dst_cpu_s", "round0_ms")}
        base = bins[0][0]
        for name, _ in bins[1:]:
            s, b = summary[case][name], summary[case][base]
            summary[case][f"{name}/{base}"] = {k: m.ratio(s[k], b[k]) for k in s}
        for k, v in summary[case].items():
            print(f"{case} median {k}: {json.dumps(v)}")
    out = os.environ.get("BENCH_OUT_COMPARE")
    if out:
        with open(out, "w") as f:
            json.dump({"host": m.host_info(), "binaries": dict(bins), "runs": runs,
                       "summary": summary}, f, indent=1)


if __name__ == "__main__":
    main()
