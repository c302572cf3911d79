#!/usr/bin/python3
"""The ceiling: raw TCP over each link with 1, 2 and 4 connections, into
never-touched memory ("fresh", what a migration destination fills) and
into reused buffers ("reuse"), with one core kept busy by a spinning
process as a PVM test guest's vCPU keeps it (it never halts).  No guest,
no KVM: it runs anywhere; links other than loopback need root
(bench/netlinks.py).

Runs are interleaved (repeat by repeat, every link and setting in turn),
so that a noisy spell on this shared machine hits all settings alike;
each run records the 1-minute load average just before it.  Medians per
(link, connections, memory, core) with every run listed.

    /usr/bin/python3 bench/ceiling.py                 # JSON on stdout
    CEILING_LINKS=loopback,1gbit CEILING_CONNS=1,4 CEILING_REPEATS=5 ...
    CEILING_IDLE=1    also measure with no busy core (a reference)
    CEILING_MEMORIES=fresh,reuse,fresh-thp   (fresh-thp: never-touched, with THP)
    BENCH_OUT=FILE    write the JSON there too (bench/report.py reads it)

Used by bench/migration.py, which measures the ceiling of the links and
connection counts its scenarios use in the same run.
"""
import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import netlinks  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TCP_CEILING = os.environ.get("TCP_CEILING", os.path.join(ROOT, "build", "bench", "tcp_ceiling"))

# MiB per run: about 1-2 s each on these machines, short enough for a
# shared box, long enough that connection set-up does not count.
MIB_PER_LINK = {"loopback": 512, "veth": 512, "10gbit": 512, "1gbit": 128}


def log(msg):
    print(f"[ceiling] {msg}", file=sys.stderr, flush=True)


def loadavg():
    with open("/proc/loadavg") as f:
        return [float(x) for x in f.read().split()[:3]]


def median(xs):
    xs = sorted(x for x in xs if x is not None)
    if not xs:
        return None
    n = len(xs)
    return xs[n // 2] if n % 2 else (xs[n // 2 - 1] + xs[n // 2]) / 2


class Spinner:
    """One process spinning on a core for as long as the `with` lasts."""

    def __init__(self, on=True):
        self.on = on
        self.p = None

    def __enter__(self):
        if self.on:
            self.p = subprocess.Popen([TCP_CEILING, "spin", "0"])
            time.sleep(0.05)  # running before the measurement starts
        return self

    def __exit__(self, *exc):
        if self.p:
            self.p.kill()
            self.p.wait()
        return False


def _kill(p):
    if p and p.poll() is None:
        p.kill()
        p.wait()


def measure(link, conns, memory, mib, busy=True, timeout=120):
    """One run over `link`: receiver on side B, sender on side A."""
    recv = send = None
    load = loadavg()
    with Spinner(busy):
        try:
            recv = subprocess.Popen(link.exec_b([TCP_CEILING, "recv", link.addr_b, str(conns),
                                                 str(mib), memory]),
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            first = recv.stdout.readline()
            if not first.startswith("port "):
                raise RuntimeError(f"tcp_ceiling recv: {first!r} {recv.stderr.read()}")
            port = first.split()[1]
            send = subprocess.run(link.exec_a([TCP_CEILING, "send", link.addr_b, port,
                                               str(conns), str(mib)]),
                                  capture_output=True, text=True, timeout=timeout)
            if send.returncode:
                raise RuntimeError(f"tcp_ceiling send: {send.stderr.strip()}")
            out, err = recv.communicate(timeout=timeout)
            if recv.returncode:
                raise RuntimeError(f"tcp_ceiling recv: {err.strip()}")
        finally:
            _kill(recv)
    r = json.loads(out.strip().splitlines()[-1])
    s = json.loads(send.stdout.strip().splitlines()[-1])
    return {"gb_per_s": r["gb_per_s"], "seconds": r["seconds"], "bytes": r["bytes"],
            "recv_cpu_s": round(r["cpu_user_s"] + r["cpu_sys_s"], 3),
            "send_cpu_s": round(s["cpu_user_s"] + s["cpu_sys_s"], 3),
            "recv_max_rss_kib": r["max_rss_kib"], "loadavg_1m": load[0]}


def ensure_built():
    """Build tcp_ceiling if it is missing (make bench builds it anyway)."""
    if not os.path.exists(TCP_CEILING):
        subprocess.run(["make", "-s", "--no-print-directory", "build/bench/tcp_ceiling"],
                       cwd=ROOT, check=True)


def key(link_kind, conns, memory, core):
    return f"{link_kind}/{conns}conn/{memory}/{core}"


def run(links, conns_list=(1, 2, 4), memories=("fresh", "reuse"), repeats=3,
        cores=("busy",)):
    """The matrix over links that are up (netlinks.Link objects).

    Returns {"cases": [{"link", "conns", "memory", "core", "mib",
    "median_gb_per_s", "min", "max", "median_loadavg_1m", "runs": [...]}],
    "link_info": {...}}: one case per combination, runs in order.
    """
    cases = {}
    for rep in range(repeats):
        for link in links:
            mib = MIB_PER_LINK.get(link.kind, 256)
            for core in cores:
                for memory in memories:
                    for conns in conns_list:
                        k = key(link.kind, conns, memory, core)
                        c = cases.setdefault(k, {"link": link.kind, "conns": conns,
                                                 "memory": memory, "core": core,
                                                 "mib": mib, "runs": []})
                        r = measure(link, conns, memory, mib, busy=(core == "busy"))
                        r["repeat"] = rep
                        c["runs"].append(r)
                        log(f"{k} #{rep}: {r['gb_per_s']:.3f} GB/s "
                            f"(load {r['loadavg_1m']:.2f})")
    out = []
    for c in cases.values():
        g = [r["gb_per_s"] for r in c["runs"]]
        c["median_gb_per_s"] = median(g)
        c["min_gb_per_s"], c["max_gb_per_s"] = min(g), max(g)
        c["median_loadavg_1m"] = median([r["loadavg_1m"] for r in c["runs"]])
        c["median_recv_cpu_s"] = median([r["recv_cpu_s"] for r in c["runs"]])
        out.append(c)
    return {"cases": out, "link_info": {l.kind: l.describe() for l in links},
            "method": ("tcp_ceiling: receiver on side B, sender on side A, one thread per "
                       "connection, each connection an equal share; time from the first "
                       "accepted connection to the last byte received; 'fresh' = into a new "
                       "anonymous mapping (4 KiB pages, no THP), 'reuse' = into a 1 MiB "
                       "buffer per connection; 'busy' = one more process spinning on a core")}


def lookup(ceiling, link, conns, memory="fresh", core="busy"):
    """The median GB/s of one case of run()'s result, or None."""
    for c in (ceiling or {}).get("cases", []):
        if (c["link"], c["conns"], c["memory"], c["core"]) == (link, conns, memory, core):
            return c["median_gb_per_s"]
    return None


def usable_links(kinds):
    """The kinds that can be made here, and why the others cannot."""
    ok, why = netlinks.can_make_namespaces()
    if ok:
        return list(kinds), None
    return [k for k in kinds if k == "loopback"], why


def main():
    ensure_built()
    kinds = os.environ.get("CEILING_LINKS", "loopback,1gbit,10gbit").split(",")
    conns = [int(x) for x in os.environ.get("CEILING_CONNS", "1,2,4").split(",")]
    repeats = int(os.environ.get("CEILING_REPEATS", "3"))
    cores = ("busy", "idle") if os.environ.get("CEILING_IDLE") == "1" else ("busy",)
    memories = os.environ.get("CEILING_MEMORIES", "fresh,reuse").split(",")
    kinds, why = usable_links(kinds)
    if why:
        log(f"SKIPPED the namespace links: {why}")
    t0 = time.monotonic()
    res = {"host": {"cpus": os.cpu_count(), "loadavg_at_start": loadavg(),
                    "date_utc": time.strftime("%Y-%m-%d %H:%M", time.gmtime())}}
    with netlinks.Links(kinds) as links:
        res["ceiling"] = run(links, conns, memories, repeats=repeats, cores=cores)
    res["ceiling"]["skipped_links"] = why
    res["host"]["loadavg_at_end"] = loadavg()
    res["elapsed_s"] = round(time.monotonic() - t0, 1)
    text = json.dumps(res, indent=2)
    print(text)
    out = os.environ.get("BENCH_OUT")
    if out:
        with open(out, "w") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt as e:
        # Ctrl-C or SIGTERM (netlinks.Links turns it into this): every
        # link and process of this run is gone by now.
        print(f"interrupted ({str(e) or 'Ctrl-C'}): links torn down, nothing measured kept",
              file=sys.stderr)
        sys.exit(130)
