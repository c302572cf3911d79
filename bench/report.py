#!/usr/bin/python3
"""The benchmark report: charts (SVG, matplotlib) and a Markdown page that
links them, generated from the results JSON of bench/ceiling.py or
bench/migration.py (BENCH_OUT / BENCH_OUT_MIGRATION).

    /usr/bin/python3 bench/report.py RESULTS.json [--out docs/bench.md] [--svg-dir docs/bench]

Charts:
- ceiling.svg: raw TCP per link, 1/2/4 connections, into never-touched
  memory and into reused buffers, median bars with the runs' range;
- per scenario (migration results only): <tag>-timeline.svg, bytes sent
  and the dirty rate per round, the VMM's pause and the observer's longest
  gap marked, Ferry above QEMU (each VMM's median run by total time);
  <tag>-bars.svg, total time and observed downtime, Ferry beside QEMU,
  medians as bars and every run as a dot;
- post-copy (bench/migration.py case_postcopy): postcopy.svg, observed
  and own downtime per guest size, Ferry beside QEMU, and the hot/cold
  legs' (hybrid, pre-copy, QEMU post-copy) total time and observed
  downtime; the page tabulates the issue's targets against the medians
  and every run.
Every figure in the page comes from the JSON; nothing is typed in.  The
SVGs are deterministic (fixed hash salt, no date), so regenerating
unchanged results changes no file.
"""
import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import units  # noqa: E402

import matplotlib  # noqa: E402
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

plt.rcParams["svg.hashsalt"] = "ferry-bench"
plt.rcParams["svg.fonttype"] = "none"      # text stays text: smaller, searchable
plt.rcParams["font.size"] = 9
SVG_META = {"Date": None, "Creator": "bench/report.py"}
COLORS = {"ferry": "#1f77b4", "qemu": "#ff7f0e"}
CONN_COLORS = ["#4c72b0", "#55a868", "#c44e52", "#8172b2", "#937860"]
LINK_ORDER = ["loopback", "veth", "10gbit", "1gbit"]


def save(fig, path):
    fig.savefig(path, format="svg", metadata=SVG_META, bbox_inches="tight")
    plt.close(fig)


def _num(x):
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def gbs(x):
    return f"{x:.3f}" if _num(x) else "?"


def ms(x):
    return units.duration_ms(x) if _num(x) else "?"


def size(x):
    return units.size(x) if _num(x) else "?"


def _links(cases):
    seen = {c["link"] for c in cases}
    return [k for k in LINK_ORDER if k in seen] + sorted(seen - set(LINK_ORDER))


# ---------------------------------------------------------------- ceiling

def ceiling_chart(ceil, path):
    cases = ceil["cases"]
    links = _links(cases)
    conns = sorted({c["conns"] for c in cases})
    memories = [m for m in ("fresh", "fresh-thp", "reuse") if any(c["memory"] == m for c in cases)]
    cores = sorted({c["core"] for c in cases})
    fig, axes = plt.subplots(len(cores), len(memories), sharey=True,
                             figsize=(4.2 * len(memories), 3.2 * len(cores)), squeeze=False,
                             layout="constrained")
    width = 0.8 / max(1, len(conns))
    loads = [r["loadavg_1m"] for c in cases for r in c["runs"]]
    for ax, (mem, core) in zip(axes.flat, [(m, c) for c in cores for m in memories]):
        for j, n in enumerate(conns):
            xs, ys, lo, hi = [], [], [], []
            for i, link in enumerate(links):
                c = next((c for c in cases if (c["link"], c["conns"], c["memory"], c["core"])
                          == (link, n, mem, core)), None)
                if not c:
                    continue
                xs.append(i + (j - (len(conns) - 1) / 2) * width)
                ys.append(c["median_gb_per_s"])
                lo.append(c["median_gb_per_s"] - c["min_gb_per_s"])
                hi.append(c["max_gb_per_s"] - c["median_gb_per_s"])
            ax.bar(xs, ys, width, yerr=[lo, hi], capsize=2,
                   color=CONN_COLORS[j % len(CONN_COLORS)],
                   label=f"{n} connection{'s' if n > 1 else ''}")
            for x, y in zip(xs, ys):
                ax.text(x, y, f"{y:.2f}", ha="center", va="bottom", fontsize=7)
        ax.set_xticks(range(len(links)), links)
        what = {"fresh": "never-touched memory", "fresh-thp": "never-touched memory (THP)",
                "reuse": "reused buffers"}.get(mem, mem)
        ax.set_title(f"into {what}, {core} core" if len(cores) > 1 else f"into {what}",
                     fontsize=9)
        ax.grid(axis="y", alpha=0.3)
    for row in axes:
        row[0].set_ylabel("GB/s (10^9 B/s): median,\nrange of runs")
    axes[0][-1].legend(fontsize=7)
    fig.suptitle(f"Raw TCP ceiling (busy: one core kept busy by a spinning process)\n"
                 f"load average {min(loads):.2f}-{max(loads):.2f} during the runs", fontsize=9)
    save(fig, path)


def ceiling_md(ceil, chart_rel):
    cases = ceil["cases"]
    links = _links(cases)
    out = [f"![raw TCP ceiling]({chart_rel})", "",
           "Method: " + ceil.get("method", "?") + ".", ""]
    for k in links:
        info = ceil.get("link_info", {}).get(k)
        if info:
            out.append(f"- `{k}`: {info.get('what')}"
                       + (f"; {info['shaping']}" if info.get("shaping") else ""))
    if ceil.get("skipped_links"):
        out.append(f"- Links not measured: {ceil['skipped_links']}")
    out += ["", "| link | memory | core | conns | MiB/run | median GB/s | min-max | "
                "receiver CPU s (median) | runs: GB/s @ load average (1 min) |",
            "|---|---|---|---|---|---|---|---|---|"]
    order = {k: i for i, k in enumerate(links)}
    for c in sorted(cases, key=lambda c: (order[c["link"]], c["memory"], c["core"], c["conns"])):
        runs = ", ".join(f"{r['gb_per_s']:.3f} @ {r['loadavg_1m']:.2f}" for r in c["runs"])
        out.append(f"| {c['link']} | {c['memory']} | {c['core']} | {c['conns']} | {c['mib']} | "
                   f"**{gbs(c['median_gb_per_s'])}** | {gbs(c['min_gb_per_s'])}-"
                   f"{gbs(c['max_gb_per_s'])} | {c.get('median_recv_cpu_s', '?')} | {runs} |")
    return out


# ---------------------------------------------------------------- scenarios

def tag_of(e):
    return f"{e['scenario']}-{e['link']}-{e['channels']}ch"


def median_run(runs):
    done = sorted((r for r in runs if r.get("finished") and r.get("total_ms") is not None),
                  key=lambda r: r["total_ms"])
    return done[len(done) // 2] if done else None


def timeline_chart(e, path):
    vmms = [v for v in ("ferry", "qemu") if v in e]
    fig, axes = plt.subplots(len(vmms), 1, sharex=True, figsize=(7, 2.3 * len(vmms)),
                             squeeze=False, layout="constrained")
    for ax, v in zip(axes[:, 0], vmms):
        r = median_run(e[v]["runs"])
        if not r:
            ax.text(0.5, 0.5, f"{v}: no run finished", transform=ax.transAxes, ha="center")
            continue
        tl = r.get("timeline") or {}
        rounds = tl.get("rounds") or []
        ax.bar([x["start_ms"] for x in rounds], [x["bytes"] / 2**20 for x in rounds],
               [max(x["end_ms"] - x["start_ms"], 1) for x in rounds], align="edge",
               color=COLORS[v], alpha=0.75, edgecolor="black", linewidth=0.4,
               label="MiB sent in the round")
        if tl.get("pause_ms"):
            a, b = tl["pause_ms"]
            ax.axvspan(a, b, color="red", alpha=0.25,
                       label=f"pause ({v}'s own downtime {ms(r.get('downtime_ms'))})")
        if tl.get("observer_gap_ms"):
            a, b = tl["observer_gap_ms"]
            ax.axvspan(a, b, facecolor="none", edgecolor="black", hatch="///", linewidth=0.5,
                       label=f"observer's longest gap {ms(r.get('observer_gap_ms'))}")
        ax.set_ylabel("MiB per round")
        ax.set_title(f"{v}: total {ms(r.get('total_ms'))}, {r.get('rounds')} rounds",
                     fontsize=9, loc="left")
        rates = [(x["start_ms"], x["end_ms"], x["dirty_pages_rate"] * 4096 / 2**20)
                 for x in rounds if x.get("dirty_pages_rate")]
        if rates:
            ax2 = ax.twinx()
            for a, b, y in rates:
                ax2.hlines(y, a, max(b, a + 1), colors="black", linewidth=1.5)
            ax2.set_ylabel("dirty MiB/s (—)")
            ax2.set_ylim(bottom=0)
        ax.legend(fontsize=7, loc="upper right")
        ax.grid(axis="y", alpha=0.3)
    axes[-1, 0].set_xlabel("ms from the migrate command (median run by total time)")
    fig.suptitle(f"{e['scenario']} on {e['link']}, {e['channels']} channel(s): {e['what']}",
                 fontsize=9)
    save(fig, path)


def bars_chart(e, path):
    vmms = [v for v in ("ferry", "qemu") if v in e]
    fig, axes = plt.subplots(1, 2, figsize=(6, 2.6), layout="constrained")
    for ax, key, title in ((axes[0], "total_ms", "total time (ms)"),
                           (axes[1], "observer_gap_ms", "observed downtime (ms)")):
        for i, v in enumerate(vmms):
            med = e[v]["median"].get(key)
            runs = [r.get(key) for r in e[v]["runs"] if r.get("finished") and r.get(key)]
            if med is not None:
                ax.bar(i, med, 0.6, color=COLORS[v])
                ax.text(i, med, f"{med:.0f}", ha="center", va="bottom", fontsize=7)
            ax.plot([i] * len(runs), runs, "k.", markersize=4)
            unfinished = len(e[v]["runs"]) - len(runs)
            if unfinished:
                ax.text(i, 0, f"{unfinished} not\nfinished", ha="center", va="bottom",
                        fontsize=7, color="red")
        ax.set_xticks(range(len(vmms)), vmms)
        ax.set_title(title)
        ax.grid(axis="y", alpha=0.3)
    fig.suptitle(f"{e['scenario']} on {e['link']}, {e['channels']} channel(s): "
                 "median bars, every run a dot", fontsize=9)
    save(fig, path)


def scenario_md(e, svg_rel):
    t = tag_of(e)
    out = [f"### {e['scenario']} on {e['link']}, {e['channels']} channel(s)", "",
           f"{e['what']}; guest `--memory {e['memory']}`, cmdline `{e['cmdline']}`.",
           f"Ceiling on this link with {e['channels']} connection(s): "
           f"{gbs(e.get('ceiling_fresh_gb_s'))} GB/s into never-touched memory, "
           f"{gbs(e.get('ceiling_reuse_gb_s'))} GB/s into reused buffers.", ""]
    for v in ("ferry", "qemu"):
        if v in e:
            st = e.get(f"{v}_settings") or {}
            ran = e[v]["runs"][0].get("settings") if e[v]["runs"] else None
            out.append(f"- {v} settings asked: `{json.dumps(st)}`"
                       + (f"; as applied: `{json.dumps(ran)}`" if ran else ""))
    out += ["", f"![timeline]({svg_rel}/{t}-timeline.svg) ![bars]({svg_rel}/{t}-bars.svg)", "",
            "| | finished | total | downtime (own) | observer gap | hand-over gap | wire | "
            "GB/s | rounds | CPU s src/dst (no vCPU) | CPU s/GiB | "
            "RSS beyond guest src/dst MiB | guest slowdown | load |", "|" + "---|" * 14]
    for v in ("ferry", "qemu"):
        if v not in e:
            continue
        m = {k: ("?" if x is None else x) for k, x in e[v]["median"].items()}
        out.append(f"| **{v} median** | {e[v]['finished']} | {ms(m['total_ms'])} | "
                   f"{ms(m['downtime_ms'])} | {ms(m['observer_gap_ms'])} | "
                   f"{ms(m.get('handover_gap_ms', '?'))} | "
                   f"{size(m['wire_bytes'])} | {gbs(m['wire_gb_s'])} | {m['rounds']} | "
                   f"{m['src_cpu_s']}/{m['dst_cpu_s']} | {m['cpu_s_per_gib']} | "
                   f"{m['src_rss_beyond_guest_mib']}/{m['dst_rss_beyond_guest_mib']} | "
                   f"{m['guest_slowdown']} | {m['loadavg_1m']} |")
        for i, r in enumerate(e[v]["runs"]):
            if not r.get("finished"):
                cells = [f"{v} run {i}", f"no: {r.get('why')}"] + [""] * 11
                out.append("| " + " | ".join(cells + [str(r.get("loadavg_1m"))]) + " |")
                continue
            c = r.get("cost") or {}
            sd = (r.get("slowdown") or {}).get("slowdown")
            wire_gbs = (r["wire_bytes"] / (r["total_ms"] / 1000) / 1e9
                        if r.get("wire_bytes") and r.get("total_ms") else None)
            out.append(f"| {v} run {i} | yes | {ms(r.get('total_ms'))} | "
                       f"{ms(r.get('downtime_ms'))} | {ms(r.get('observer_gap_ms'))} | "
                       f"{ms(r.get('handover_gap_ms'))} | "
                       f"{size(r.get('wire_bytes'))} | {gbs(wire_gbs)} | "
                       f"{r.get('rounds')} | "
                       f"{c.get('src', {}).get('cpu_s_without_vcpus')}/"
                       f"{c.get('dst', {}).get('cpu_s_without_vcpus')} | | "
                       f"{c.get('src', {}).get('rss_beyond_guest_mib')}/"
                       f"{c.get('dst', {}).get('rss_beyond_guest_mib')} | {sd} | "
                       f"{r.get('loadavg_1m')} |")
    rq = {k: v for k, v in (e.get("ferry_vs_qemu") or {}).items() if v is not None}
    out.append("")
    if rq:
        out.append("Ferry / QEMU (medians): " + ", ".join(
            f"{k.replace('_ms', '').replace('_', ' ')} {v}x" for k, v in rq.items()))
    if e.get("ferry_vs_ceiling_fresh") is not None:
        out.append(f"Ferry's wire rate / the ceiling into never-touched memory: "
                   f"{e['ferry_vs_ceiling_fresh']}x")
    pc = e.get("ferry_vs_paired_ceiling")
    if pc:
        out.append(f"Ferry's wire rate / a ceiling run ({pc['memory']} memory) just before "
                   f"each Ferry run: median {pc['median']}x; per run "
                   f"{', '.join(f'{x}x' for x in pc['per_run'])} (ceilings "
                   f"{', '.join(f'{g:.3f}' for g in pc['ceiling_gb_s'])} GB/s)")
    if e.get("ferry_vs_ceiling_reuse") is not None:
        out.append(f"Ferry's wire rate / the ceiling into reused buffers: "
                   f"{e['ferry_vs_ceiling_reuse']}x")
    for v, key in (("ferry", "throttle"), ("qemu", "cpu_throttle_percentage")):
        seen = [r.get(key) for r in e.get(v, {}).get("runs", []) if r.get(key)]
        if seen:
            out.append(f"{v} throttle per run: " + "; ".join(json.dumps(x) for x in seen))
    for v in ("ferry", "qemu"):
        if v in e:
            out.append(f"{v}: {e[v]['verification']}; {e[v]['heartbeat_seq']}.")
    return out + [""]


def summary_md(scen):
    """One row per scenario: medians of both VMMs side by side, ratios."""
    out = ["| scenario | link | ch | total Ferry / QEMU | ratio | observed downtime "
           "Ferry / QEMU | ratio | wire GB/s Ferry / QEMU | Ferry / ceiling | finished F / Q |",
           "|---|---|---|---|---|---|---|---|---|---|"]
    for e in scen:
        f = (e.get("ferry") or {}).get("median", {})
        q = (e.get("qemu") or {}).get("median", {})
        rq = e.get("ferry_vs_qemu") or {}

        def x(v):
            return f"{v}x" if v is not None else "?"
        out.append(f"| [{e['scenario']}](#{e['scenario']}-on-{e['link']}-{e['channels']}-channels) "
                   f"| {e['link']} | {e['channels']} | {ms(f.get('total_ms'))} / "
                   f"{ms(q.get('total_ms'))} | {x(rq.get('total_ms'))} | "
                   f"{ms(f.get('observer_gap_ms'))} / {ms(q.get('observer_gap_ms'))} | "
                   f"{x(rq.get('observer_gap_ms'))} | {gbs(f.get('wire_gb_s'))} / "
                   f"{gbs(q.get('wire_gb_s'))} | {x(e.get('ferry_vs_ceiling_fresh'))} | "
                   f"{(e.get('ferry') or {}).get('finished', '-')} / "
                   f"{(e.get('qemu') or {}).get('finished', '-')} |")
    return out


# ---------------------------------------------------------------- post-copy

PC_TARGETS = {"observer_gap_ms": 5.0, "fault_p50_us": 100.0, "wire_vs_touched": 0.02}
PC_LEGS = ["ferry-hybrid", "ferry-precopy", "ferry-precopy-plain", "qemu-postcopy"]
PC_COLORS = {"ferry": COLORS["ferry"], "qemu": COLORS["qemu"], "ferry-hybrid": "#1f77b4",
             "ferry-precopy": "#9ecae1", "ferry-precopy-plain": "#c6dbef",
             "qemu-postcopy": COLORS["qemu"]}


def _pc_runs(summary, key):
    return [r.get(key) for r in summary["runs"] if r.get("finished") and _num(r.get(key))]


def postcopy_chart(pc, path):
    """Observed downtime and own downtime per guest size (Ferry beside QEMU),
    and the hot/cold legs' total time and observed downtime: medians as
    bars, every run a dot."""
    sizes = pc.get("sizes") or []
    hc = pc.get("hotcold") or {}
    legs = [n for n in PC_LEGS if n in hc]
    panels = [("observer_gap_ms", "post-copy: observed downtime (ms)"),
              ("downtime_ms", "post-copy: own downtime (ms)")]
    hpanels = [("total_ms", "hotcold-max: total time (ms)"),
               ("observer_gap_ms", "hotcold-max: observed downtime (ms)")] if legs else []
    fig, axes = plt.subplots(1, len(panels) + len(hpanels),
                             figsize=(3.0 * (len(panels) + len(hpanels)), 2.8),
                             squeeze=False, layout="constrained")
    for ax, (key, title) in zip(axes[0], panels):
        vmms = [v for v in ("ferry", "qemu") if any(v in e for e in sizes)]
        w = 0.8 / max(1, len(vmms))
        for j, v in enumerate(vmms):
            for i, e in enumerate(sizes):
                if v not in e:
                    continue
                x = i + (j - (len(vmms) - 1) / 2) * w
                med = e[v]["median"].get(key)
                if _num(med):
                    ax.bar(x, med, w, color=COLORS[v], label=v if i == 0 else None)
                    ax.text(x, med, f"{med:.1f}", ha="center", va="bottom", fontsize=7)
                runs = _pc_runs(e[v], key)
                ax.plot([x] * len(runs), runs, "k.", markersize=4)
        if key == "observer_gap_ms":
            ax.axhline(PC_TARGETS[key], color="red", linestyle="--", linewidth=0.8,
                       label="target 5 ms")
        ax.set_xticks(range(len(sizes)), [e["memory"] for e in sizes])
        ax.set_title(title, fontsize=8)
        ax.grid(axis="y", alpha=0.3)
        ax.legend(fontsize=6)
    for ax, (key, title) in zip(axes[0][len(panels):], hpanels):
        for i, n in enumerate(legs):
            med = hc[n]["median"].get(key)
            if _num(med):
                ax.bar(i, med, 0.6, color=PC_COLORS[n])
                ax.text(i, med, f"{med:.0f}", ha="center", va="bottom", fontsize=7)
            runs = _pc_runs(hc[n], key)
            ax.plot([i] * len(runs), runs, "k.", markersize=4)
            unfinished = len(hc[n]["runs"]) - len(runs)
            if unfinished:
                ax.text(i, 0, f"{unfinished} not\nfinished", ha="center", va="bottom",
                        fontsize=6, color="red")
        ax.set_xticks(range(len(legs)), [n.replace("-", "\n") for n in legs], fontsize=7)
        ax.set_title(title, fontsize=8)
        ax.grid(axis="y", alpha=0.3)
    fig.suptitle("Post-copy, Ferry and QEMU: median bars, every run a dot", fontsize=9)
    save(fig, path)


def _x(v):
    return f"{v}x" if v is not None else "?"


def _pct(r):
    return f"{(r - 1) * 100:+.1f}%" if _num(r) else "?"


def _us(x):
    return f"{x:.0f}" if _num(x) else "?"


def _target(value, ok):
    if not _num(value):
        return "not measured"
    return "met" if ok(value) else "**not met**"


def _gaps(r):
    """' at 12 ms; 3 gaps > 5 ms: 12+30, ...' from a run's gap list."""
    out = ""
    if _num(r.get("observer_gap_at_ms")):
        out += f" at {r['observer_gap_at_ms']:.0f} ms"
    if _num(r.get("observer_handover_ms")):
        out += f"; hand-over {ms(r['observer_handover_ms'])}"
    g = r.get("observer_gaps_over_5ms")
    if g is not None:
        n = r.get("observer_gaps_over_5ms_count", len(g))
        out += (f"; {n} gap(s) > 5 ms" + (": " + ", ".join(map(_gap, g[:8]))
                                          + (" ..." if n > 8 else "") if g else ""))
    if _num(r.get("observer_floor_ms")):
        out += f"; floor {ms(r['observer_floor_ms'])}"
    return out


def _gap(g):
    """'12+30' (start+length, ms), '12+30 (x29)' when 29 beats were read
    at once at its end (the observer was held up, not the guest)."""
    s = f"{g[0]:.0f}+{g[1]:.0f}"
    return s + (f" (x{g[2]})" if len(g) > 2 and g[2] > 1 else "")


def _twice(r):
    n = r.get("pages_sent_twice")
    out = f" ({n} pages sent twice, {size(n * 4096)})" if _num(n) and n > 0 else ""
    if r.get("convergence"):
        out += f"; pre-copy ended: {r['convergence']}"
    return out


def pc_run_row(label, r):
    if not r.get("finished"):
        return f"| {label} | no: {r.get('why')} |" + " |" * 10 + f" {r.get('loadavg_1m')} |"
    lat = r.get("fault_latency_us") or {}
    rs = r.get("rss") or {}
    v = r.get("verification") or {}
    ver = (f"errors {v.get('errors')}" if v.get("checked")
           else f"not checked ({v.get('why')})")
    if r.get("vmm") == "qemu":
        faults = (f"requests {r.get('postcopy_requests')}; blocktime "
                  f"{r.get('postcopy_blocktime_ms')} ms")
    else:
        faults = (f"{_us(lat.get('p50'))} / {_us(lat.get('p99'))} / {_us(lat.get('max'))} us "
                  f"({lat.get('samples')} faults; vCPUs waited "
                  f"{ms(r.get('vcpu_waited_ms'))})" if lat.get("samples") else "none")
    bd = r.get("downtime_breakdown_us") or {}
    parts = ", ".join(f"{k} {v / 1000:.1f}" for k, v in bd.items() if _num(v))
    return (f"| {label} | yes (order {r.get('order')}) | {ms(r.get('total_ms'))} | "
            f"{ms(r.get('downtime_ms'))}{f' ({parts} ms)' if parts else ''} | "
            f"**{ms(r.get('observer_gap_ms'))}**{_gaps(r)} | "
            f"{size(r.get('wire_bytes'))} | {size(r.get('touched_bytes'))} | "
            f"{_pct(r.get('wire_vs_touched'))}{_twice(r)} | {faults} | "
            f"{size(rs.get('combined_peak_rss_bytes'))} "
            f"({rs.get('combined_peak_vs_guest_ram')}x RAM) | {ver} | {r.get('loadavg_1m')} |")


PC_RUN_HEADER = ["| run | finished | total | downtime (own) | observed downtime (when it "
                 "began; gaps over 5 ms as start+length, ms from migrate) | wire | "
                 "touched | wire vs touched | fault latency p50 / p99 / max (Ferry); "
                 "QEMU's requests, blocktime | peak RSS src+dst | verification | load |",
                 "|" + "---|" * 12]


def postcopy_md(pc, chart_rel):
    sizes = pc.get("sizes") or []
    hc = pc.get("hotcold") or {}
    out = [f"![post-copy]({chart_rel})", "", "Method: " + pc.get("method", "?"), "",
           f"Guest: 1 vCPU, cmdline `{pc.get('cmdline')}`.", ""]
    # The targets, each against the medians of this run.
    out += ["| figure | target | Ferry (median) | QEMU (median) | Ferry / QEMU | "
            "Ferry against the target |", "|---|---|---|---|---|---|"]
    for e in sizes:
        f = e["ferry"]["median"]
        q = (e.get("qemu") or {}).get("median", {})
        rq = e.get("ferry_vs_qemu") or {}
        mem = e["memory"]
        out.append(f"| {mem}: observed downtime | < 5 ms | **{ms(f['observer_gap_ms'])}** | "
                   f"{ms(q.get('observer_gap_ms'))} | {_x(rq.get('observer_gap_ms'))} | "
                   f"{_target(f['observer_gap_ms'], lambda v: v < 5)} |")
        if f.get("observer_handover_ms") is not None:
            out.append(f"| {mem}: hand-over gap (observed: source's last beat to the "
                       f"destination's first) | < 5 ms | **{ms(f['observer_handover_ms'])}** | "
                       f"{ms(q.get('observer_handover_ms'))} | "
                       f"{_x(ratio(f['observer_handover_ms'], q.get('observer_handover_ms')))} | "
                       f"{_target(f['observer_handover_ms'], lambda v: v < 5)} |")
        if f.get("observer_floor_ms") is not None:
            out.append(f"| {mem}: longest gap with no migration (a window as long, right "
                       f"before; this host's floor) | | {ms(f['observer_floor_ms'])} | "
                       f"{ms(q.get('observer_floor_ms'))} | | |")
        out.append(f"| {mem}: own downtime | | {ms(f['downtime_ms'])} | "
                   f"{ms(q.get('downtime_ms'))} | {_x(rq.get('downtime_ms'))} | |")
        out.append(f"| {mem}: total time | | {ms(f['total_ms'])} | {ms(q.get('total_ms'))} | "
                   f"{_x(rq.get('total_ms'))} | |")
        out.append(f"| {mem}: fault latency p50 / p99 | p50 < 100 us | "
                   f"{_us(f['fault_p50_us'])} / {_us(f['fault_p99_us'])} us | (not reported) "
                   f"| | {_target(f['fault_p50_us'], lambda v: v < 100)} |")
        out.append(f"| {mem}: wire vs touched | within 2% | {_pct(f['wire_vs_touched'])} | "
                   f"{_pct(q.get('wire_vs_touched'))} | {_x(rq.get('wire_bytes'))} (bytes) | "
                   f"{_target(f['wire_vs_touched'], lambda v: abs(v - 1) <= 0.02)} |")
        out.append(f"| {mem}: combined peak RSS / guest RAM | | "
                   f"{f['combined_peak_vs_guest_ram']}x ({size(f['combined_peak_rss_bytes'])})"
                   f" | {q.get('combined_peak_vs_guest_ram')}x "
                   f"({size(q.get('combined_peak_rss_bytes'))}) | "
                   f"{_x(rq.get('combined_peak_rss_bytes'))} | |")
    if len(sizes) >= 2:
        a, b = sizes[0], sizes[-1]
        for v in ("ferry", "qemu"):
            if v in a and v in b:
                g = ratio(b[v]["median"]["observer_gap_ms"], a[v]["median"]["observer_gap_ms"])
                d = ratio(b[v]["median"]["downtime_ms"], a[v]["median"]["downtime_ms"])
                h = ratio(b[v]["median"].get("observer_handover_ms"),
                          a[v]["median"].get("observer_handover_ms"))
                out.append(f"| {v}: {b['memory']} / {a['memory']} | not growing with size | "
                           f"observed {_x(g)}, own {_x(d)}"
                           + (f", hand-over {_x(h)}" if h is not None else "") + " | | | |")
    out.append("")
    for e in sizes:
        out += [f"### Post-copy, {e['memory']} guest", ""] + PC_RUN_HEADER
        for v in ("ferry", "qemu"):
            if v in e:
                for i, r in enumerate(e[v]["runs"]):
                    out.append(pc_run_row(f"{v} run {i}", r))
        out.append("")
        for v in ("ferry", "qemu"):
            if v in e:
                out.append(f"- {v}: {e[v]['finished']} finished; {e[v]['verification']}; "
                           f"{e[v]['heartbeat_seq']}.")
        out.append("")
    if hc:
        out += [f"### Hybrid, pre-copy and QEMU post-copy on {hc['scenario']}", "",
                f"{hc['what']}; guest `--memory {hc['memory']}`, cmdline `{hc['cmdline']}`. "
                f"Ferry hybrid: {pc.get('hybrid_rounds')} pre-copy round(s), then post-copy. "
                f"Ferry pre-copy: `{json.dumps(hc.get('precopy_settings'))}`; "
                "ferry-precopy-plain: pre-copy with no helper. A run still going after "
                f"{hc.get('timeout_s')} s is cancelled (not finished). QEMU: post-copy "
                "started at once.", "",
                "| | finished | total (median) | own downtime | observed downtime | wire |",
                "|---|---|---|---|---|---|"]
        for n in PC_LEGS:
            if n in hc:
                m = hc[n]["median"]
                out.append(f"| **{n}** | {hc[n]['finished']} | {ms(m['total_ms'])} | "
                           f"{ms(m['downtime_ms'])} | {ms(m['observer_gap_ms'])} | "
                           f"{size(m['wire_bytes'])} |")
        out.append("")
        for other in ("ferry-precopy", "ferry-precopy-plain", "qemu-postcopy"):
            r = hc.get(f"hybrid_vs_{other}")
            if r:
                out.append(f"Hybrid / {other} (medians): total {_x(r.get('total_ms'))}, "
                           f"observed downtime {_x(r.get('observer_gap_ms'))}, wire "
                           f"{_x(r.get('wire_bytes'))}.")
        out += [""] + PC_RUN_HEADER
        for n in PC_LEGS:
            if n in hc:
                for i, r in enumerate(hc[n]["runs"]):
                    out.append(pc_run_row(f"{n} run {i}", r))
        out.append("")
        for n in PC_LEGS:
            if n in hc:
                out.append(f"- {n}: {hc[n]['finished']} finished; {hc[n]['verification']}; "
                           f"{hc[n]['heartbeat_seq']}.")
        out.append("")
    return out


def ratio(a, b):
    return round(a / b, 3) if _num(a) and _num(b) and b else None



# ---------------------------------------------------------------- the page

def generate(results, out_md, svg_dir, source_names, title="Benchmark report"):
    os.makedirs(svg_dir, exist_ok=True)
    rel = os.path.relpath(svg_dir, os.path.dirname(os.path.abspath(out_md)))
    h = results.get("host", {})
    md = [f"# {title}", "",
          f"Generated by `bench/report.py` from {', '.join(f'`{s}`' for s in source_names)} "
          "(do not edit by hand: rerun it). Every figure below is a measurement of that run; "
          "nothing is asserted.", "",
          f"- Run: {h.get('date_utc', '?')} UTC, {h.get('cpus', '?')} CPUs, load average at "
          f"start {h.get('loadavg_at_start', '?')}, at end {h.get('loadavg_at_end', '?')}"
          + (f", {results['elapsed_s']} s" if "elapsed_s" in results else "") + "."]
    kvm = results.get("kvm")
    if kvm and not kvm.get("usable"):
        md.append(f"- **No KVM on this host ({kvm.get('why')})**: no guest could run, so "
                  "only the guest-less parts ran. Every migration scenario (Ferry and QEMU) "
                  "is missing below: not measured, not estimated.")
    elif "scenarios" not in results:
        md.append("- Guest-less parts only (bench/ceiling.py): no migration scenario ran.")
    written = []
    if results.get("ceiling"):
        p = os.path.join(svg_dir, "ceiling.svg")
        ceiling_chart(results["ceiling"], p)
        written.append(p)
        md += ["", "## The ceiling: raw TCP over each link", ""]
        md += ceiling_md(results["ceiling"], f"{rel}/ceiling.svg")
    scen = results.get("scenarios") or []
    if scen:
        md += ["", "## Scenarios: Ferry and QEMU, interleaved", "",
               "Medians with every run listed; `load` is the 1-minute load average "
               "when the run started. Downtime (own) is each VMM's figure; the observer "
               "gap is the longest silence between heartbeats seen from outside "
               "(bench/observer.py). CPU seconds exclude the guest's vCPU threads (they "
               "spin whatever happens); RSS beyond guest RAM is the largest seen while "
               "migrating. Guest slowdown: 1 - the guest's write rate across the "
               "migration / before it (its own counters, one report a second).", ""]
        md += summary_md(scen) + [""]
        for e in scen:
            t = tag_of(e)
            for kind, fn in (("timeline", timeline_chart), ("bars", bars_chart)):
                p = os.path.join(svg_dir, f"{t}-{kind}.svg")
                fn(e, p)
                written.append(p)
            md += scenario_md(e, rel)
    pc = results.get("postcopy")
    if pc:
        p = os.path.join(svg_dir, "postcopy.svg")
        postcopy_chart(pc, p)
        written.append(p)
        md += ["", "## Post-copy: Ferry and QEMU, interleaved", "",
               "Medians with every run listed (`order`: its place in its round of "
               "runs; `load`: the 1-minute load average when it started). The observed "
               "downtime is the longest silence between the guest's 1 ms heartbeats "
               "seen from outside (bench/observer.py): it counts the resumed guest's "
               "stall on its first faults, which a VMM's own downtime does not.", ""]
        md += postcopy_md(pc, f"{rel}/postcopy.svg")
    with open(out_md, "w") as f:
        f.write("\n".join(md) + "\n")
    return written


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("results", help="JSON from bench/ceiling.py or bench/migration.py")
    ap.add_argument("--out", default="docs/bench.md")
    ap.add_argument("--svg-dir", default="docs/bench")
    ap.add_argument("--name", help="how the page names the results file")
    ap.add_argument("--title", default="Benchmark report", help="the page's heading")
    a = ap.parse_args()
    with open(a.results) as f:
        results = json.load(f)
    written = generate(results, a.out, a.svg_dir, [a.name or a.results], a.title)
    print(f"report: {a.out} and {len(written)} SVG(s) in {a.svg_dir}")


if __name__ == "__main__":
    main()
