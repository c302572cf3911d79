#!/usr/bin/python3
"""Interleaved A/B of ferry binaries on the post-copy case.

bench/migration.py measures one ferry binary (FERRY) against QEMU.  To
judge a change on a shared 2-core host, where one run's figures move by
several times with the load, this runs two or more ferry binaries on the
same post-copy migration (case_postcopy's guest and figures: ferry_pc_run)
one after the other, round by round, the order reversed every other round,
and prints every run and the medians.  No QEMU.

  /usr/bin/python3 bench/postcopy_ab.py base=/tmp/base/build/ferry new=build/ferry \\
      [--sizes 1G,4G] [--rounds 3] [--json out.json] [--keep] [--hybrid]

A variant may carry environment for its processes: name=binary:VAR=v|VAR2=w.
"""
import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import migration as M  # noqa: E402


def row(label, mem, rnd, r):
    d = r.get("postcopy_destination") or {}
    lat = d.get("fault-latency-us") or {}
    return {"label": label, "mem": mem, "round": rnd, "finished": r.get("finished"),
            "total": r.get("total_ms"), "own": r.get("downtime_ms"),
            "obs": r.get("observer_gap_ms"), "obs_at": r.get("observer_gap_at_ms"),
            "gaps": r.get("observer_gaps_over_5ms"), "floor": r.get("observer_floor_ms"),
            "rss": (r.get("rss") or {}).get("combined_peak_vs_guest_ram"),
            "hand": r.get("observer_handover_ms"), "wvt": r.get("wire_vs_touched"),
            "twice": r.get("pages_sent_twice"), "faults": r.get("faults"),
            "p50": lat.get("p50"), "p99": lat.get("p99"), "waited": r.get("vcpu_waited_ms"),
            "bd": r.get("downtime_breakdown_us"),
            "verify": (r.get("verification") or {}).get("errors"), "load": r.get("loadavg_1m")}


def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def num(x, fmt="{:.1f}"):
    return "?" if x is None else fmt.format(x)


def table(rows, labels, sizes):
    out = ["| run | size | total ms | own downtime ms (final-round) | hand-over gap ms | "
           "longest gap ms (at) | floor ms | wire vs touched | pages twice | faults | fault p50 us | "
           "errors | load |", "|" + "---|" * 13]
    for r in rows:
        fr = (r["bd"] or {}).get("final-round")
        out.append(f"| {r['label']} r{r['round']} | {r['mem']} | {r['total']} | "
                   f"{num(r['own'])} ({num(fr / 1000 if fr is not None else None)}) | "
                   f"{num(r['hand'])} | {num(r['obs'])} ({num(r['obs_at'], '{:.0f}')}) | "
                   f"{num(r['floor'])} | "
                   f"{num((r['wvt'] - 1) * 100 if r['wvt'] else None, '{:+.1f}%')} | "
                   f"{r['twice']} | {r['faults']} | {num(r['p50'], '{:.0f}')} | "
                   f"{r['verify']} | {r['load']} |")
    out += ["", "| variant | size | total ms | own downtime ms | final-round ms | "
            "hand-over gap ms | longest gap ms | floor ms | wire vs touched | fault p50 us | "
            "combined peak RSS / guest RAM |", "|" + "---|" * 11]
    for lab in labels:
        for mem in sizes:
            rr = [r for r in rows if r["label"] == lab and r["mem"] == mem and r["finished"]]
            if not rr:
                continue
            fr = med([(r["bd"] or {}).get("final-round") for r in rr])
            w = med([r["wvt"] for r in rr])
            out.append(f"| {lab} | {mem} | {num(med([r['total'] for r in rr]), '{:.0f}')} | "
                       f"{num(med([r['own'] for r in rr]))} | "
                       f"{num(fr / 1000 if fr is not None else None)} | "
                       f"{num(med([r['hand'] for r in rr]))} | "
                       f"{num(med([r['obs'] for r in rr]))} | "
                       f"{num(med([r['floor'] for r in rr]))} | "
                       f"{num((w - 1) * 100 if w else None, '{:+.1f}%')} | "
                       f"{num(med([r['p50'] for r in rr]), '{:.0f}')} | "
                       f"{num(med([r['rss'] for r in rr]), '{:.3f}')} |")
    return "\n".join(out)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("variants", nargs="+", help="name=binary[:VAR=v|VAR2=w]")
    ap.add_argument("--sizes", default="1G,4G")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--json")
    ap.add_argument("--keep", action="store_true",
                    help="keep the work directory (each process's stderr)")
    ap.add_argument("--hybrid", action="store_true",
                    help="the hybrid case instead: hotcold-max in 1G, mode hybrid "
                         "(bench/migration.py's; --sizes is ignored)")
    a = ap.parse_args()
    variants = []
    for v in a.variants:
        name, _, spec = v.partition("=")
        binary, _, envs = spec.partition(":")
        env = dict(kv.partition("=")[::2] for kv in envs.split("|") if kv)
        variants.append((name, os.path.abspath(binary), env))
    sizes = a.sizes.split(",")
    mode, cmdline = "postcopy", M.PC_CMDLINE
    if a.hybrid:
        scn = next(x for x in M.SCENARIOS if x["name"] == "hotcold-max")
        mode, cmdline, sizes = "hybrid", scn["cmdline"], [scn["memory"]]
    work = tempfile.mkdtemp(prefix="ferry-pcab-")
    rows = []
    try:
        for i in range(a.rounds):
            order = variants if i % 2 == 0 else variants[::-1]
            for mem in sizes:
                for name, binary, env in order:
                    M.fp.FERRY = binary
                    saved = {k: os.environ.get(k) for k in env}
                    os.environ.update(env)
                    try:
                        r = M.guarded(lambda _i, mem=mem: M.ferry_pc_run(
                            work, f"{name}{mem}-{i}", mem, cmdline, M.laid_out,
                            mode, 60), i)
                    finally:
                        for k, v in saved.items():
                            if v is None:
                                os.environ.pop(k, None)
                            else:
                                os.environ[k] = v
                    rows.append(row(name, mem, i, r))
                    print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    finally:
        if a.keep:
            print(f"kept: {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(rows, f, indent=1)
    print(table(rows, [v[0] for v in variants], sizes))


if __name__ == "__main__":
    main()
