#!/usr/bin/python3
"""Parallel page channels against raw TCP with as many connections.

For 1, 2 and 4 connections, into never-touched memory ("fresh") and into
memory faulted in beforehand ("prefault", what `--prealloc` gives), runs
build/bench/multifd_bench (the real engine, memory to memory over
loopback, incompressible pages) and build/tcp_raw (the same bytes as a
bare stream per connection), interleaved, RUNS times each.  Prints every
run, then per case the medians and the engine's share of raw TCP, and
the load average before and after (the machine is shared).

usage: bench/multifd.py [SIZE_MIB (256)] [RUNS (3)]
env:   MULTIFD_CHANNELS="1 2 4"
"""
import json
import os
import statistics
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENGINE = os.path.join(ROOT, "build", "bench", "multifd_bench")
RAW = os.path.join(ROOT, "build", "tcp_raw")
RAW_SRC = os.path.join(ROOT, "bench", "tcp_raw.c")


def build_raw():
    if not os.path.exists(RAW) or os.path.getmtime(RAW) < os.path.getmtime(RAW_SRC):
        subprocess.run(["gcc", "-O2", "-Wall", "-Wextra", "-o", RAW, RAW_SRC,
                        "-lpthread"], check=True)


def run(cmd):
    out = subprocess.run(cmd, capture_output=True, text=True, check=True,
                         timeout=300)
    return json.loads(out.stdout)


def main():
    mib = int(sys.argv[1]) if len(sys.argv) > 1 else 256
    runs = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    chans = [int(c) for c in os.environ.get("MULTIFD_CHANNELS", "1 2 4").split()]
    if not os.path.exists(ENGINE):
        sys.exit("multifd.py: build/bench/multifd_bench missing (make bench builds it)")
    build_raw()
    load0 = os.getloadavg()
    res = {}
    for r in range(runs):
        for n in chans:
            for mem in ("fresh", "prefault"):
                raw = run([RAW, str(mib), mem, str(n)])
                eng = run([ENGINE, str(mib), str(n), mem])
                res.setdefault((n, mem), []).append((raw, eng))
                print(json.dumps({"run": r, "channels": n, "memory": mem,
                                  "raw_gb_per_s": raw["gb_per_s"],
                                  "engine_gb_per_s": eng["gb_per_s"],
                                  "raw_cpu_s_per_gib": raw["cpu_s_per_gib"],
                                  "engine_cpu_s_per_gib": eng["cpu_s_per_gib"],
                                  "prefault_s": eng["prefault_s"]}), flush=True)
    load1 = os.getloadavg()
    summary = []
    for (n, mem), rs in sorted(res.items()):
        raw = statistics.median(x[0]["gb_per_s"] for x in rs)
        eng = statistics.median(x[1]["gb_per_s"] for x in rs)
        summary.append({"channels": n, "memory": mem, "mib": mib, "runs": len(rs),
                        "raw_median_gb_per_s": raw, "engine_median_gb_per_s": eng,
                        "engine_of_raw": round(eng / raw, 3) if raw else None,
                        "raw_cpu_s_per_gib": statistics.median(
                            x[0]["cpu_s_per_gib"] for x in rs),
                        "engine_cpu_s_per_gib": statistics.median(
                            x[1]["cpu_s_per_gib"] for x in rs),
                        "raw_runs": [x[0]["gb_per_s"] for x in rs],
                        "engine_runs": [x[1]["gb_per_s"] for x in rs],
                        "prefault_s": [x[1]["prefault_s"] for x in rs]})
    print(json.dumps({"multifd": summary,
                      "loadavg_before": [round(x, 2) for x in load0],
                      "loadavg_after": [round(x, 2) for x in load1]}, indent=1))


if __name__ == "__main__":
    main()
