#!/usr/bin/python3
"""Live-migration benchmarks (figures and ratios, never pass/fail):

1. throughput: a 1 GiB guest full of incompressible data (every page laid
   out once with random content before READY, then ~1 MiB/s of writes),
   migrated over loopback, next to raw single-stream loopback TCP measured
   in the same run (build/tcp_raw, bench/tcp_raw.c);
2. an untouched 1 GiB guest (workload=idle): total time and downtime;
3. a 512 MiB guest rewriting a 64 MiB working set as fast as one vCPU can,
   migrated by Ferry and by QEMU (same guest image and command line), each
   with its own figures and the outside heartbeat observer's longest gap;
4. TLS: the 1 GiB incompressible guest of (1) migrated plain, with TLS
   certificates (--tls-creds) and with a pre-shared key (--tls-psk),
   interleaved in one run: what encryption costs the stream.

5. the scenarios (case_scenarios): every workload of SCENARIOS (idle,
   mostly zero, compressible, incompressible, sequential, random, hot/cold
   at several dirty rates, two faster than every link) on every link of
   bench/netlinks.py (loopback; two network namespaces joined by a veth
   pair shaped with tbf to 1 and 10 Gbit/s: the source in one, the
   destination in the other), Ferry and QEMU (best matching settings,
   scenario_settings) interleaved run by run.  Each run: total time, its
   own downtime and the observer's, bytes on the wire, a timeline (query-
   migrate polled every 10 ms, turned into rounds), host cost (CPU seconds
   of each process with and without its vCPU threads, resident memory
   beyond guest RAM), the guest's slowdown (bench/sampling.py), the load
   average when it started; medians, every run, ratios Ferry/QEMU and
   Ferry's wire rate against the ceiling of the same link and number of
   connections, measured first in the same run (bench/ceiling.py).
   bench/report.py turns the JSON into charts and docs/bench.md.

6. post-copy (case_postcopy): a verifying guest rewriting 256 MiB at
   64 MiB/s in random order, in 1 GiB and 4 GiB of RAM, moved by ferry's
   post-copy and by QEMU's (postcopy-ram on both sides, migrate-start-
   postcopy at once), interleaved run by run: observed downtime (the
   heartbeat gap) and each VMM's own, ferry's fault latency p50/p99 (the
   destination's query-migrate ferry.postcopy.fault-latency-us), bytes on
   the wire against the memory the guest touched, the two processes'
   combined peak RSS against guest RAM; then hotcold-max (a working set
   pre-copy cannot converge on): ferry hybrid, ferry pre-copy (xbzrle,
   auto-converge), ferry pre-copy with no helper (BENCH_POSTCOPY_PLAIN=0
   skips it) and QEMU post-copy, total time and observed downtime.
   Alone: BENCH_CLASSIC=0 BENCH_SCENARIOS=none BENCH_LINKS=loopback.

Without a usable /dev/kvm no guest can run: only the ceiling is measured,
and the output says that every migration case was skipped.

Every run also reports the heartbeat sequence (beats lost, repeats: see
bench/observer.py) and a verification result: "verification errors N" only
when the guest verifies and the destination has completed a full pass of
its own after the move (ferry: its resume generation; QEMU: its console),
otherwise "verification: not checked" with the reason.

Environment: BENCH_REPEATS (3), BENCH_NO_QEMU=1 (skip QEMU), BENCH_NO_TLS=1
(skip 4), BENCH_CLASSIC=0 (skip 1-4), BENCH_LINKS (loopback,1gbit,10gbit),
BENCH_CHANNELS (1; e.g. 1,4), BENCH_SCENARIOS (all; names, comma-separated;
"none": no scenario), BENCH_POSTCOPY=0 (skip 6), BENCH_POSTCOPY_SIZES (1G,4G), BENCH_POSTCOPY_PLAIN=0
(6 without the helper-less pre-copy leg),
BENCH_FERRY_SRC_ARGS (options for every scenario's ferry source, e.g.
"--dirty-ring 65536"), BENCH_BUSY_SIZES (more guest sizes for
case 3, e.g. 2G,8G), BENCH_QEMU_DEFAULTS=1 (QEMU without multifd/xbzrle/auto-converge and with
its own max-bandwidth, 128 MiB/s),
BENCH_MIGRATION_TIMEOUT (60 s: a scenario migration still running then is
cancelled and reported as not finished), BENCH_PAIRED_CEILING=0 (no ceiling
run right before each Ferry run of the incompressible scenarios, whose
ratio to it is reported beside the ratio to the ceiling block),
CEILING_REPEATS (3), CEILING_IDLE=1
(the ceiling also with no busy core), BENCH_OUT_MIGRATION
(write the JSON there too), FERRY, FERRY_GUEST, QEMU, BENCH_QEMU_TCG=1 (QEMU
without -enable-kvm: a slow dry run of the QEMU path on a machine without
KVM; its figures mean nothing).
"""
import json
import os
import shlex
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ceiling  # noqa: E402
import ferry_proc as fp  # noqa: E402
import netlinks  # noqa: E402
import sampling  # noqa: E402
import units  # noqa: E402
from observer import HeartbeatObserver  # noqa: E402

GIB = 1 << 30
MIB = 1 << 20
ROOT = fp.ROOT
TCP_RAW = os.path.join(ROOT, "build", "tcp_raw")
TCP_RAW_SRC = os.path.join(ROOT, "bench", "tcp_raw.c")
QEMU = os.environ.get("QEMU", shutil.which("qemu-system-x86_64") or "qemu-system-x86_64")
REPEATS = int(os.environ.get("BENCH_REPEATS", "3"))
DOWNTIME_MS = 300                # QEMU's default downtime-limit; ferry's too
QEMU_MAX_BW = 10 * GIB           # "unlimited" for QEMU (its default is 128 MiB/s)
SETTLE_S = 1.0                   # run time after READY before migrating
POLL_S = 0.01                    # query-migrate period
BUSY_CMDLINE = "workload=dirty wss=64M rate=0"
FULL_CMDLINE = "workload=dirty wss=1000M fill=random verify=1 rate=1"


def median(xs):
    xs = sorted(x for x in xs if x is not None)
    if not xs:
        return None
    n = len(xs)
    return xs[n // 2] if n % 2 else (xs[n // 2 - 1] + xs[n // 2]) / 2


def ratio(a, b):
    return round(a / b, 3) if a is not None and b else None


def log(msg):
    print(f"[migration] {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------- helpers

class Qmp:
    """One QMP connection kept open (QEMU and ferry); events are skipped."""

    def __init__(self, path, timeout=30, capabilities=True):
        end = time.monotonic() + timeout
        while True:
            try:
                self.s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                self.s.settimeout(timeout)
                self.s.connect(path)
                break
            except OSError:
                self.s.close()
                if time.monotonic() > end:
                    raise
                time.sleep(0.01)
        self.f = self.s.makefile("rwb")
        self.f.readline()  # greeting
        if capabilities:
            self.cmd("qmp_capabilities")

    def cmd(self, execute, arguments=None):
        req = {"execute": execute}
        if arguments is not None:
            req["arguments"] = arguments
        self.f.write((json.dumps(req) + "\n").encode())
        self.f.flush()
        while True:
            line = self.f.readline()
            if not line:
                raise OSError(f"{execute}: connection closed")
            reply = json.loads(line)
            if "event" in reply:
                continue
            if "error" in reply:
                raise RuntimeError(f"{execute}: {reply['error'].get('desc')}")
            return reply.get("return")

    def close(self):
        try:
            self.s.close()
        except OSError:
            pass


def wait_for(pred, timeout, what, period=0.01):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        v = pred()
        if v:
            return v
        time.sleep(period)
    raise TimeoutError(what)


def file_has(path, text):
    try:
        with open(path, errors="replace") as f:
            return text in f.read()
    except OSError:
        return False


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def listening_port(work, name):
    """The port a ferry destination started as `name`-dst listens on
    (it asks for port 0 and logs the one it got)."""
    derr = os.path.join(work, name + "-dst.stderr")

    def port():
        with open(derr) as f:
            for line in f:
                if "waiting for an incoming migration on" in line:
                    return int(line.rsplit(":", 1)[1])
        return None
    return wait_for(port, 30, "destination did not listen")


def teardown(qmps, procs, obs):
    """Quit both VMMs (politely, then by force) and close the observer."""
    for q in qmps:
        if q:
            try:
                q.cmd("quit")
            except (OSError, RuntimeError):
                pass
            q.close()
    for p in procs:
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            kill(p)
    obs.close()


def kill(proc):
    if proc and proc.poll() is None:
        proc.kill()
        proc.wait()


def host_info():
    info = {"cpus": os.cpu_count()}
    try:
        with open("/proc/loadavg") as f:
            info["loadavg_at_start"] = [float(x) for x in f.read().split()[:3]]
    except OSError:
        pass
    try:
        info["kvm_module"] = ("kvm_pvm" if os.path.exists("/sys/module/kvm_pvm")
                              else "kvm_intel" if os.path.exists("/sys/module/kvm_intel")
                              else "kvm_amd" if os.path.exists("/sys/module/kvm_amd") else "?")
    except OSError:
        pass
    try:
        out = subprocess.run([QEMU, "--version"], capture_output=True, text=True, timeout=10)
        info["qemu"] = out.stdout.splitlines()[0] if out.stdout else None
    except (OSError, subprocess.TimeoutExpired):
        info["qemu"] = None
    info["other_vmm_processes"] = other_vmms()
    return info


def thread_cpu(pid):
    """CPU seconds (user + system) per thread name of a process."""
    out = {}
    tick = os.sysconf("SC_CLK_TCK")
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/stat") as f:
                s = f.read()
        except OSError:
            continue
        comm = s[s.index("(") + 1:s.rindex(")")]
        fields = s.rsplit(")", 1)[1].split()
        out[comm] = out.get(comm, 0) + (int(fields[11]) + int(fields[12])) / tick
    return out


def cpu_delta(before, after):
    return {k: round(v - before.get(k, 0), 2) for k, v in after.items()
            if round(v - before.get(k, 0), 2) > 0}


def other_vmms():
    """ferry/qemu processes that are not ours: other people's test runs."""
    n = 0
    me = os.getpid()
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                argv0 = f.read().split(b"\0")[0]
            with open(f"/proc/{pid}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        base = os.path.basename(argv0)
        if ppid != me and (base == b"ferry" or base.startswith(b"qemu-system")):
            n += 1
    return n


# ---------------------------------------------------------------- raw TCP

def build_tcp_raw():
    if (not os.path.exists(TCP_RAW)
            or os.path.getmtime(TCP_RAW) < os.path.getmtime(TCP_RAW_SRC)):
        os.makedirs(os.path.dirname(TCP_RAW), exist_ok=True)
        subprocess.run(["gcc", "-O2", "-Wall", "-o", TCP_RAW, TCP_RAW_SRC, "-lpthread"],
                       check=True)


def tcp_raw(mib=2048, memory="reuse"):
    out = subprocess.run([TCP_RAW, str(mib), memory],
                         capture_output=True, text=True,
                         check=True, timeout=120)
    return json.loads(out.stdout)


# ---------------------------------------------------------------- ferry

def parse_size(text):
    """'512M' / '1G' / '1024' (bytes) -> bytes."""
    mult = {"K": 1 << 10, "M": MIB, "G": GIB, "T": GIB << 10}
    t = text.strip().upper()
    return int(t[:-1]) * mult[t[-1]] if t[-1] in mult else int(t)


def apply_ferry_settings(q, params, caps):
    """Set what this ferry knows of params/caps; say what it does not know.

    Parameters are checked against query-migrate-parameters, capabilities
    tried with migrate-set-capabilities: a ferry built before a feature
    still runs the scenario, and the results say it ran without it."""
    applied, unsupported = {}, {}
    known = q.cmd("query-migrate-parameters") or {}
    for k, v in (params or {}).items():
        if k not in known:
            unsupported[k] = f"{v} (not in query-migrate-parameters)"
            continue
        try:
            q.cmd("migrate-set-parameters", {k: v})
            applied[k] = v
        except RuntimeError as e:
            unsupported[k] = f"{v} ({e})"
    migrate_args = {}
    for k, v in (caps or {}).items():
        try:
            q.cmd("migrate-set-capabilities",
                  {"capabilities": [{"capability": k, "state": bool(v)}]})
            applied[k] = bool(v)
        except RuntimeError as e:
            # A ferry without the command may take the switch as an
            # argument of `migrate` (auto-converge does): ferry_start_migrate
            # tries that and says which way it went.
            migrate_args[k] = bool(v)
            unsupported[k] = f"{v} ({e})"
    return {"applied": applied, "unsupported": unsupported, "migrate_args": migrate_args}


def ferry_start_migrate(q, uri, settings):
    """`migrate` with the switches that had no capability command as its
    own arguments; if this ferry refuses them too, again without them
    (the settings record what happened)."""
    extra = settings.pop("migrate_args", {})
    if extra:
        try:
            q.cmd("migrate", dict({"uri": uri}, **extra))
            for k, v in extra.items():
                settings["unsupported"].pop(k, None)
                settings["applied"][k] = f"{v} (as an argument of migrate)"
            return
        except RuntimeError as e:
            for k in extra:
                settings["unsupported"][k] += f"; as an argument of migrate: {e}"
    q.cmd("migrate", {"uri": uri})


def poll_migration(q, t0, timeout, samples, cost, cancel):
    """Poll query-migrate until it ends or `timeout` s pass (then cancel
    and return None).  Each poll is a timeline sample; CPU every poll,
    resident memory every 10th."""
    n = 0
    while True:
        st = q.cmd("query-migrate")
        now = time.monotonic()
        samples.append(sampling.migrate_sample(st, (now - t0) * 1000))
        if cost:
            cost.sample(rss=(n % 10 == 0))
        n += 1
        if st.get("status") in ("completed", "failed", "cancelled"):
            return st
        if now - t0 > timeout:
            try:
                q.cmd(cancel)
            except (OSError, RuntimeError):
                pass
            return None
        time.sleep(POLL_S)


def ferry_knows(option):
    """Whether this ferry's `run --help` lists OPTION (e.g. --prealloc)."""
    try:
        out = subprocess.run([fp.FERRY, "run", "--help"], capture_output=True, text=True,
                             timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return option in (out.stdout + out.stderr).split()


def handover_figures(obs, t0):
    """The observer's hand-over gap (the source's last beat to the
    destination's first) and the longest silence elsewhere in the
    migration (observer.HeartbeatObserver.handover), in ms: on a loaded
    host the longest gap of all is often a pre-copy stall of the source's
    vCPU thread, which both VMMs suffer alike, not the pause."""
    h = obs.handover(t0, time.monotonic())
    if not h:
        return {"handover_gap_ms": None, "stall_elsewhere_ms": None}
    return {"handover_gap_ms": round(h["handover_gap_s"] * 1000, 1),
            "stall_elsewhere_ms": round(h["longest_elsewhere_s"] * 1000, 1)}


def ferry_arrival_checks(name, src, dctl, cmdline, obs):
    """After a ferry migration's figures: the source's exit (it quits once
    the guest has left), the destination's own full check of its pages
    (fp.verification) and the heartbeat sequence, a repeat logged.
    Returns (verification, observer check)."""
    try:
        src.wait(timeout=15)
    except subprocess.TimeoutExpired:
        pass
    verification = fp.verification(dctl, cmdline)
    hb = obs.check()
    if hb["repeats"]:
        log(f"{name}: HEARTBEAT REPEATS: {hb['repeats']} (the guest ran twice "
            "from the same state)")
    return verification, hb


def ferry_migration(work, name, memory, vcpus, cmdline, ready, extra=(), link=None,
                    params=None, caps=None, settle=SETTLE_S, timeout=120, dst_extra=(),
                    src_extra=()):
    """Boot a guest, migrate it to a second ferry, return figures.
    extra: options both ferries get (--tls-creds DIR, --tls-psk FILE).
    link: a netlinks.Link that is up (source on side A, destination on
    side B; default loopback).  params/caps: set through the source's
    control socket where this ferry knows them (apply_ferry_settings).
    dst_extra: options the destination alone gets (--memory M --prealloc);
    src_extra: the source alone (--dirty-ring N).
    A migration still running after `timeout` s is cancelled and reported
    with "finished": False (no exception)."""
    link = link or netlinks.Link("loopback")
    obs = HeartbeatObserver(os.path.join(work, name + "-hb.sock"))
    sctl = os.path.join(work, name + "-src.sock")
    dctl = os.path.join(work, name + "-dst.sock")
    src = dst = rate = None
    state = {"done": False}
    load = ceiling.loadavg()
    try:
        src = fp.start(["--kernel", fp.GUEST, "--memory", memory, "--vcpus", str(vcpus),
                        "--serial", "none", "--cmdline", cmdline,
                        "--heartbeat", "unix:" + obs.path, "--control", sctl] + list(extra)
                       + list(src_extra), work, name + "-src", wrap=link.exec_a)
        dst = fp.start(["--incoming", f"tcp:{link.addr_b}:0", "--serial", "none",
                        "--heartbeat", "unix:" + obs.path, "--control", dctl] + list(extra)
                       + list(dst_extra), work, name + "-dst", wrap=link.exec_b)
        port = listening_port(work, name)
        alive(src, name + "-src", work)
        fp.wait_socket(sctl)
        fp.wait_guest(sctl, ready, timeout=180)

        def progress():
            side, ctl = ("dst", dctl) if state["done"] else ("src", sctl)
            g = fp.qmp(ctl, "query-vm", timeout=2).get("guest") or {}
            # A destination's count starts at 0 with no report of its own yet.
            if g.get("progress-reports") is None or (side == "dst" and
                                                     not g["progress-reports"]):
                return None
            return side, g["progress-reports"], g.get("pages-written")
        rate = sampling.GuestRate(progress)
        rate.start()
        time.sleep(settle)

        q = Qmp(sctl)
        settings = apply_ferry_settings(q, params, caps)
        q.cmd("migrate-set-parameters", {"downtime-limit": DOWNTIME_MS, "max-bandwidth": 0})
        cost = sampling.CostMeter({"src": src.pid, "dst": dst.pid}, parse_size(memory),
                                  fp.vmm_overhead_kib)
        cost.start()
        cpu0 = (thread_cpu(src.pid), thread_cpu(dst.pid))
        samples = []
        t0 = time.monotonic()
        ferry_start_migrate(q, f"tcp:{link.addr_b}:{port}", settings)
        st = poll_migration(q, t0, timeout, samples, cost, "migrate-cancel")
        t1 = time.monotonic()
        cpu1 = (thread_cpu(src.pid), thread_cpu(dst.pid))
        q.close()
        if st is None:
            log(f"{name}: did not finish in {timeout} s: cancelled")
            return {"finished": False, "why": f"not finished after {timeout} s (cancelled)",
                    "loadavg_1m": load[0], "settings": settings,
                    "timeline": {"samples": samples,
                                 "rounds": sampling.timeline_rounds(samples)},
                    "cost": cost.result()}
        if st["status"] != "completed":
            raise RuntimeError(f"ferry migration {st['status']}: {st.get('error-desc')}")
        state["done"] = True
        # The guest runs at the destination once its heartbeats arrive again.
        resumed = obs.first_after(t1, timeout=10)
        time.sleep(0.3)
        gap_r = obs.check(t0, time.monotonic())
        gap = gap_r["max_gap_s"]
        handover = handover_figures(obs, t0)
        fp.wait_socket(dctl)
        cost.sample(rss=True)
        g = fp.qmp(dctl, "query-vm")
        rate.wait_after("dst", t1 + 1.0, timeout=3)
        rate.stop()
        # After the figures: the destination's own check of all its pages.
        verification, hb = ferry_arrival_checks(name, src, dctl, cmdline, obs)
        rounds = st.get("ferry", {}).get("rounds", [])
        r0 = rounds[0] if rounds else {}
        total = st.get("total-time")
        down = (st["ferry"]["downtime-us"] / 1000
                if st.get("ferry", {}).get("downtime-us") is not None
                else st.get("downtime"))
        return {
            "finished": True,
            "loadavg_1m": load[0],
            "link": link.kind,
            "settings": settings,
            "total_ms": total,
            "setup_ms": st.get("setup-time"),
            # query-migrate's "downtime" is whole ms; ferry also gives us.
            "downtime_ms": down,
            "observer_gap_ms": round(gap * 1000, 1) if gap else None,
            **handover,
            "resumed_seen": resumed is not None,
            "wire_bytes": st["ram"]["transferred"],
            "ram_normal_bytes": st["ram"]["normal-bytes"],
            "zero_pages": st["ram"]["duplicate"],
            "rounds": st["ram"]["dirty-sync-count"],
            "round_pages": [r["pages"] for r in rounds],
            "round0_bytes": r0.get("bytes"),
            "round0_ram_bytes": (r0.get("pages", 0) - r0.get("zero-pages", 0)) * 4096,
            "round0_ms": r0.get("duration-ms"),
            "convergence": st.get("ferry", {}).get("convergence-reason"),
            "compression": st.get("ferry", {}).get("compression"),
            # auto-converge: how far and how long the guest was slowed.
            "throttle": st.get("ferry", {}).get("throttle"),
            "tls": st.get("ferry", {}).get("tls"),
            "dst_status": g.get("status"),
            # Only a full pass at the destination proves anything (see
            # ferry_proc.verification); counters read on arrival do not.
            "verification": verification,
            "heartbeat_seq": {k: hb[k] for k in ("beats", "gaps", "lost", "repeats")},
            "source_exit": src.returncode,
            # CPU seconds per thread while the migration ran (coarse: 10 ms
            # ticks); the guest's vCPU always spins, it never halts at CPL 3.
            "cpu_s": {"window_s": round(t1 - t0, 2),
                      "src": cpu_delta(cpu0[0], cpu1[0]),
                      "dst": cpu_delta(cpu0[1], cpu1[1])},
            "cost": cost.result(),
            "slowdown": sampling.slowdown(rate.samples, t0, t1),
            "timeline": timeline(samples, st.get("ferry", {}).get("rounds"), total, down,
                                 gap_r, t0),
        }
    finally:
        if rate is not None:
            rate.stop()
        if dst is not None:
            fp.stop(dst, dctl)
        kill(src)
        obs.close()


def alive(proc, name, work, wait_s=30):
    """Wait until a ferry started as NAME has its control socket up; if it
    exits first (no /dev/kvm, a bad option), raise with its last message
    at once instead of waiting out the socket's timeout."""
    sock = os.path.join(work, name + ".sock")
    end = time.monotonic() + wait_s
    while time.monotonic() < end and not os.path.exists(sock):
        if proc.poll() is not None:
            try:
                with open(os.path.join(work, name + ".stderr")) as f:
                    last = (f.read().strip().splitlines() or ["(nothing)"])[-1]
            except OSError:
                last = "(no stderr)"
            raise RuntimeError(f"ferry {name} exited with {proc.returncode}: {last}")
        time.sleep(0.01)


def timeline(samples, exact_rounds, total_ms, downtime_ms, gap, t0):
    """What a timeline chart needs: rounds from the polled samples, the
    VMM's own rounds where it gives them, the pause (its own downtime,
    placed at the end of the total time) and the observer's longest gap,
    all in ms from the migrate command."""
    out = {"samples": samples, "rounds": sampling.timeline_rounds(samples),
           "exact_rounds": exact_rounds, "total_ms": total_ms}
    if total_ms is not None and downtime_ms is not None:
        out["pause_ms"] = [max(0.0, total_ms - downtime_ms), total_ms]
    if gap and gap.get("max_gap_s") and gap.get("max_gap_end"):
        end = (gap["max_gap_end"] - t0) * 1000
        out["observer_gap_ms"] = [round(end - gap["max_gap_s"] * 1000, 1), round(end, 1)]
    return out


# ---------------------------------------------------------------- QEMU

def qemu_args(work, name, hb, incoming=None, memory="512M", cmdline=BUSY_CMDLINE):
    accel = [] if os.environ.get("BENCH_QEMU_TCG") == "1" else ["-enable-kvm"]
    a = [QEMU] + accel + ["-m", memory, "-smp", "1", "-display", "none",
         "-serial", "file:" + os.path.join(work, name + ".serial"),
         "-kernel", fp.GUEST, "-append", cmdline,
         "-device", "isa-debug-exit,iobase=0xf4,iosize=4",
         "-chardev", f"socket,id=hb,path={hb}",
         "-device", "isa-debugcon,iobase=0xe9,chardev=hb",
         "-qmp", f"unix:{os.path.join(work, name + '.qmp')},server=on,wait=off"]
    if incoming:
        a += ["-incoming", incoming]
    return a


def qemu_verification(serial, cmdline, timeout=60):
    """The QEMU destination guest's own verdict after a full pass there.

    QEMU has no test device, so the guest does not learn it moved; but the
    destination's console only holds what the guest printed there.  The
    first pass result on it may belong to a pass started at the source;
    the second pass started at the destination.  The errors figure is the
    one of the first progress line after that second result.
    """
    if not fp.verify_on(cmdline):
        return {"checked": False, "why": "the guest runs with verify=0"}
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        try:
            with open(serial, errors="replace") as f:
                lines = f.read().splitlines()
        except OSError:
            lines = []
        results = [i for i, l in enumerate(lines) if l.startswith("verify: pass ")]
        if len(results) >= 2:
            for l in lines[results[1] + 1:]:
                if l.startswith("progress: ") and " errors=" in l:
                    errs = int(l.split(" errors=")[1].split()[0])
                    return {"checked": True, "errors": errs,
                            "wait_ms": round((time.monotonic() - t0) * 1000)}
        time.sleep(0.1)
    return {"checked": False,
            "why": f"no full pass completed at the destination within {timeout} s"}


def qemu_progress(serial):
    """(number of progress lines, pages of the last) on a QEMU guest's console."""
    try:
        with open(serial, errors="replace") as f:
            lines = [l for l in f.read().splitlines()
                     if l.startswith("progress: ") and " pages=" in l]
    except OSError:
        return None
    if not lines:
        return None
    return len(lines), int(lines[-1].split(" pages=")[1].split()[0])


def qemu_pair(work, name, obs, memory, cmdline, procs, link=None, dst_extra=()):
    """Start a QEMU source (on link's side A) and a destination waiting
    with -incoming defer (side B, with dst_extra), appending both to procs
    (the caller tears them down); wait until the source's guest is READY.
    Returns the two serial log paths (source, destination)."""
    link = link or netlinks.Link("loopback")
    for role, inc, wrap in (("src", None, link.exec_a), ("dst", "defer", link.exec_b)):
        n = f"{name}-{role}"
        err = open(os.path.join(work, n + ".stderr"), "w")
        argv = qemu_args(work, n, obs.path, inc, memory, cmdline)
        if role == "dst":
            argv += list(dst_extra)
        procs.append(subprocess.Popen(wrap(argv), stdin=subprocess.DEVNULL,
                                      stdout=subprocess.DEVNULL, stderr=err))
    serial = os.path.join(work, name + "-src.serial")

    def ready():
        for p in procs:
            if p.poll() is not None:
                raise RuntimeError(f"qemu exited with {p.returncode}")
        return file_has(serial, "READY\n")
    wait_for(ready, 240, "QEMU guest did not reach READY", period=0.05)
    return serial, os.path.join(work, name + "-dst.serial")


def qemu_migration(work, name, memory="512M", cmdline=BUSY_CMDLINE, link=None,
                   caps=None, params=None, settle=SETTLE_S, timeout=120,
                   max_bandwidth=QEMU_MAX_BW, dst_extra=()):
    """The same guest migrated between two QEMU processes.  link: as for
    ferry_migration.  caps ({"multifd": True, ...}) and params
    ({"multifd-channels": 4, ...}) are set on both sides before the
    destination starts listening (it waits with -incoming defer), as
    QEMU's multifd needs; max-bandwidth and downtime-limit on the source
    (max_bandwidth None: QEMU's own default, 128 MiB/s).  dst_extra:
    options the destination alone gets (-mem-prealloc)."""
    link = link or netlinks.Link("loopback")
    obs = HeartbeatObserver(os.path.join(work, name + "-hb.sock"))
    port = free_port()
    procs = []
    qs = qd = rate = None
    state = {"done": False}
    load = ceiling.loadavg()
    try:
        serial, dserial = qemu_pair(work, name, obs, memory, cmdline, procs, link, dst_extra)

        def progress():
            side = "dst" if state["done"] else "src"
            v = qemu_progress(dserial if state["done"] else serial)
            return (side,) + v if v else None
        rate = sampling.GuestRate(progress)
        rate.start()
        time.sleep(settle)
        qs = Qmp(os.path.join(work, name + "-src.qmp"))
        qd = Qmp(os.path.join(work, name + "-dst.qmp"))
        settings = {"capabilities": dict(caps or {}), "parameters": dict(params or {})}
        for q in (qs, qd):
            if caps:
                q.cmd("migrate-set-capabilities", {"capabilities": [
                    {"capability": k, "state": bool(v)} for k, v in caps.items()]})
            if params:
                q.cmd("migrate-set-parameters", dict(params))
        qd.cmd("migrate-incoming", {"uri": f"tcp:{link.addr_b}:{port}"})
        limits = {"downtime-limit": DOWNTIME_MS}
        if max_bandwidth is not None:
            limits["max-bandwidth"] = max_bandwidth
        qs.cmd("migrate-set-parameters", limits)
        settings["limits"] = limits
        cost = sampling.CostMeter({"src": procs[0].pid, "dst": procs[1].pid},
                                  parse_size(memory), fp.vmm_overhead_kib)
        cost.start()
        samples = []
        t0 = time.monotonic()
        qs.cmd("migrate", {"uri": f"tcp:{link.addr_b}:{port}"})
        st = poll_migration(qs, t0, timeout, samples, cost, "migrate_cancel")
        t1 = time.monotonic()
        if st is None:
            log(f"{name}: QEMU did not finish in {timeout} s: cancelled")
            return {"finished": False, "why": f"not finished after {timeout} s (cancelled)",
                    "loadavg_1m": load[0], "settings": settings,
                    "timeline": {"samples": samples,
                                 "rounds": sampling.timeline_rounds(samples)},
                    "cost": cost.result()}
        if st["status"] != "completed":
            raise RuntimeError(f"QEMU migration {st['status']}: {st.get('error-desc')}")
        state["done"] = True
        resumed = obs.first_after(t1, timeout=10)
        time.sleep(0.3)
        gap_r = obs.check(t0, time.monotonic())
        gap = gap_r["max_gap_s"]
        handover = handover_figures(obs, t0)
        cost.sample(rss=True)
        dst_status = qd.cmd("query-status").get("status")
        rate.wait_after("dst", t1 + 1.0, timeout=3)
        rate.stop()
        verification = qemu_verification(dserial, cmdline)
        hb = obs.check()
        if hb["repeats"]:
            log(f"{name}: HEARTBEAT REPEATS: {hb['repeats']} (the guest ran twice "
                "from the same state)")
        ram = st.get("ram", {})
        # QEMU 7.2 now and then answers a completed migration with
        # total-time and downtime both 0 (seen once in 9 busy runs): not
        # a measurement.  The total then comes from our own polling (the
        # first sample that saw "completed"), the downtime is unknown.
        total, down = st.get("total-time"), st.get("downtime")
        if not total:
            done = [x["t_ms"] for x in samples if x.get("status") == "completed"]
            total = round(done[0]) if done else None
            down = None
            log(f"{name}: QEMU reported total-time 0: total from polling, {total} ms; "
                "downtime unknown")
        return {
            "finished": True,
            "loadavg_1m": load[0],
            "link": link.kind,
            "settings": settings,
            "total_ms": total,
            "setup_ms": st.get("setup-time"),
            "downtime_ms": down,
            "observer_gap_ms": round(gap * 1000, 1) if gap else None,
            **handover,
            "resumed_seen": resumed is not None,
            "wire_bytes": ram.get("transferred"),
            "ram_normal_bytes": ram.get("normal-bytes"),
            "zero_pages": ram.get("duplicate"),
            "rounds": ram.get("dirty-sync-count"),
            "xbzrle": st.get("xbzrle-cache"),
            "cpu_throttle_percentage": st.get("cpu-throttle-percentage"),
            "dst_status": dst_status,
            "verification": verification,
            "heartbeat_seq": {k: hb[k] for k in ("beats", "gaps", "lost", "repeats")},
            "mbps": ram.get("mbps"),
            "cost": cost.result(),
            "slowdown": sampling.slowdown(rate.samples, t0, t1),
            "timeline": timeline(samples, None, total, down, gap_r, t0),
        }
    finally:
        if rate is not None:
            rate.stop()
        teardown((qs, qd), procs, obs)


# ---------------------------------------------------------------- cases

def heartbeat_claim(runs):
    """The heartbeat sequence over all runs (bench/observer.py's rules)."""
    hs = [r.get("heartbeat_seq") for r in runs if r and r.get("heartbeat_seq")]
    if not hs:
        return "heartbeat sequence: not checked"
    lost = sum(h["lost"] for h in hs)
    reps = sum(h["repeats"] for h in hs)
    beats = sum(h["beats"] for h in hs)
    s = f"heartbeat sequence: {lost} beats lost, {reps} repeats in {beats} beats"
    if reps:
        s += " (REPEATS: the guest ran twice from the same state)"
    return s


def summarize(runs, keys):
    return {k: median([r.get(k) for r in runs]) for k in keys}


def case_throughput(work, raw_before):
    runs = []
    for i in range(REPEATS):
        r = ferry_migration(work, f"full{i}", "1G", 1, FULL_CMDLINE,
                            lambda g: g.get("ready") and g.get("pages-written", 0) > 0)
        r["round0_gb_s"] = round(r["round0_ram_bytes"] / (r["round0_ms"] / 1000) / 1e9, 3)
        r["wire_total_gb_s"] = round(r["wire_bytes"] / (r["total_ms"] / 1000) / 1e9, 3)
        runs.append(r)
        log(f"full {i}: total {units.duration_ms(r['total_ms'])}, "
            f"round 0 {units.duration_ms(r['round0_ms'])} {units.gb_s(r['round0_gb_s'])}, "
            f"wire/total {units.gb_s(r['wire_total_gb_s'])}")
    raw_after = [tcp_raw() for _ in range(2)]
    raw = raw_before + raw_after
    raw_gbs = median([x["gb_per_s"] for x in raw])
    # The destination fills never-touched memory; faulting it in is costly
    # here (Firecracker VM): the same stream into fresh 1 GiB mappings.
    fresh = [tcp_raw(1024, "fresh") for _ in range(2)]
    fresh_gbs = median([x["gb_per_s"] for x in fresh])
    thp = [tcp_raw(1024, "fresh-thp") for _ in range(2)]
    # The same guest under QEMU: the anchor for what this machine allows
    # with a spinning guest vCPU on one of its two cores.
    qemu = None
    if os.environ.get("BENCH_NO_QEMU") != "1" and shutil.which(QEMU):
        q = qemu_migration(work, "qemufull", "1G", FULL_CMDLINE)
        q["wire_total_gb_s"] = round(q["wire_bytes"] / (q["total_ms"] / 1000) / 1e9, 3)
        qemu = q
        log(f"full qemu: total {units.duration_ms(q['total_ms'])}, "
            f"wire/total {units.gb_s(q['wire_total_gb_s'])}")
    m = summarize(runs, ["total_ms", "setup_ms", "downtime_ms", "observer_gap_ms",
                         "wire_bytes", "round0_ms", "round0_gb_s", "wire_total_gb_s"])
    return {
        "guest": f"--memory 1G --vcpus 1 --cmdline '{FULL_CMDLINE}'",
        "raw_tcp_gb_s_runs": [x["gb_per_s"] for x in raw],
        "raw_tcp_gb_s": raw_gbs,
        "raw_tcp_into_fresh_memory_gb_s_runs": [x["gb_per_s"] for x in fresh],
        "raw_tcp_into_fresh_memory_gb_s": fresh_gbs,
        "raw_tcp_into_fresh_thp_memory_gb_s_runs": [x["gb_per_s"] for x in thp],
        "raw_tcp_into_fresh_thp_memory_gb_s": median([x["gb_per_s"] for x in thp]),
        "median": m,
        "round0_vs_raw": ratio(m["round0_gb_s"], raw_gbs),
        "wire_total_vs_raw": ratio(m["wire_total_gb_s"], raw_gbs),
        "round0_vs_raw_into_fresh_memory": ratio(m["round0_gb_s"], fresh_gbs),
        "qemu": qemu,
        "ferry_vs_qemu_wire_total": ratio(m["wire_total_gb_s"], qemu["wire_total_gb_s"]) if qemu else None,
        "verification": fp.verification_claim(runs),
        "qemu_verification": fp.verification_claim([qemu]) if qemu else None,
        "heartbeat_seq": heartbeat_claim(runs),
        "runs": runs,
    }


def case_tls(work):
    """The throughput case, plain and over TLS, interleaved in one run."""
    creds = os.path.join(work, "tls-creds")
    psk = os.path.join(work, "keys.psk")
    make = os.path.join(ROOT, "scripts", "tls-make-creds.sh")
    subprocess.run([make, creds], check=True, capture_output=True)
    subprocess.run([make, "--psk", psk], check=True, capture_output=True)
    modes = {"plain": [], "tls-x509": ["--tls-creds", creds], "tls-psk": ["--tls-psk", psk]}
    runs = {m: [] for m in modes}
    for i in range(REPEATS):  # alternate, so that a noisy spell hits all
        for mode, extra in modes.items():
            r = ferry_migration(work, f"tls-{mode}{i}", "1G", 1, FULL_CMDLINE,
                                lambda g: g.get("ready") and g.get("pages-written", 0) > 0,
                                extra)
            r["round0_gb_s"] = round(r["round0_ram_bytes"] / (r["round0_ms"] / 1000) / 1e9, 3)
            r["wire_total_gb_s"] = round(r["wire_bytes"] / (r["total_ms"] / 1000) / 1e9, 3)
            enabled = bool(r["tls"] and r["tls"].get("enabled"))
            if enabled != (mode != "plain"):
                raise RuntimeError(f"{mode}: query-migrate says tls {r['tls']}")
            runs[mode].append(r)
            log(f"{mode} {i}: total {r['total_ms']} ms, round 0 {r['round0_gb_s']} GB/s, "
                f"downtime {r['downtime_ms']} ms, src CPU {r['cpu_s']['src']}")
    keys = ["total_ms", "downtime_ms", "observer_gap_ms", "round0_gb_s", "wire_total_gb_s"]
    res = {"guest": f"--memory 1G --vcpus 1 --cmdline '{FULL_CMDLINE}'"}
    for mode in modes:
        res[mode] = {"median": summarize(runs[mode], keys),
                     "cipher": (runs[mode][0]["tls"] or {}).get("cipher"),
                     "verification": fp.verification_claim(runs[mode]),
                     "runs": runs[mode]}
    for mode in ("tls-x509", "tls-psk"):
        res[mode + "_vs_plain_round0"] = ratio(res[mode]["median"]["round0_gb_s"],
                                               res["plain"]["median"]["round0_gb_s"])
    return res


def case_idle(work):
    runs = [ferry_migration(work, f"idle{i}", "1G", 1, "workload=idle",
                            lambda g: g.get("ready")) for i in range(REPEATS)]
    for i, r in enumerate(runs):
        log(f"idle {i}: total {units.duration_ms(r['total_ms'])}, "
            f"downtime {units.duration_ms(r['downtime_ms'])}")
    return {
        "guest": "--memory 1G --vcpus 1 --cmdline 'workload=idle'",
        "median": summarize(runs, ["total_ms", "setup_ms", "downtime_ms", "observer_gap_ms",
                                   "wire_bytes"]),
        "verification": fp.verification_claim(runs),
        "heartbeat_seq": heartbeat_claim(runs),
        "runs": runs,
    }


def case_busy(work, memory="512M"):
    """The busy 64 MiB working set in a guest of `memory` (the pause must
    not grow with memory size: BENCH_BUSY_SIZES adds 2G, 8G, ...)."""
    keys = ["total_ms", "downtime_ms", "observer_gap_ms", "handover_gap_ms",
            "stall_elsewhere_ms", "wire_bytes", "rounds"]
    ferry, qemu = [], []
    use_qemu = os.environ.get("BENCH_NO_QEMU") != "1" and shutil.which(QEMU)
    for i in range(REPEATS):  # alternate, so that a noisy spell hits both
        r = ferry_migration(work, f"busy{memory}{i}", memory, 1, BUSY_CMDLINE,
                            lambda g: g.get("ready"))
        ferry.append(r)
        log(f"busy {memory} ferry {i}: {times(r)}, {units.size(r['wire_bytes'])}, "
            f"{r['rounds']} rounds")
        if use_qemu:
            r = qemu_migration(work, f"qemu{memory}{i}", memory=memory)
            qemu.append(r)
            log(f"busy {memory} qemu {i}: {times(r)}, {units.size(r['wire_bytes'])}, "
                f"{r['rounds']} rounds")
    res = {"guest": f"{memory}, 1 vCPU, cmdline '{BUSY_CMDLINE}'",
           "ferry": {"median": summarize(ferry, keys), "runs": ferry,
                     "verification": fp.verification_claim(ferry),
                     "heartbeat_seq": heartbeat_claim(ferry)}}
    if qemu:
        fm, qm = res["ferry"]["median"], summarize(qemu, keys)
        res["qemu"] = {"median": qm, "runs": qemu,
                       "verification": fp.verification_claim(qemu),
                       "heartbeat_seq": heartbeat_claim(qemu),
                       "max_bandwidth": QEMU_MAX_BW, "downtime_limit_ms": DOWNTIME_MS}
        res["ferry_vs_qemu"] = {
            "total": ratio(fm["total_ms"], qm["total_ms"]),
            "downtime": ratio(fm["downtime_ms"], qm["downtime_ms"]),
            "observer_gap": ratio(fm["observer_gap_ms"], qm["observer_gap_ms"]),
            "handover_gap": ratio(fm.get("handover_gap_ms"), qm.get("handover_gap_ms")),
            "wire_bytes": ratio(fm["wire_bytes"], qm["wire_bytes"]),
        }
    return res


def times(m):
    """total / downtime / observer gap, each in its own unit."""
    return " / ".join(units.duration_ms(m.get(k))
                      for k in ("total_ms", "downtime_ms", "observer_gap_ms"))


def table(res):
    rows = []
    t = res["throughput_1g_incompressible"]
    m = t["median"]
    rows.append(("1 GiB incompressible: raw loopback TCP", units.gb_s(t['raw_tcp_gb_s']), ""))
    rows.append(("  raw TCP into fresh 4K-page memory (1 GiB)",
                 units.gb_s(t['raw_tcp_into_fresh_memory_gb_s']), ""))
    rows.append(("  ferry round 0 RAM bytes / round-0 time", units.gb_s(m['round0_gb_s']),
                 f"{t['round0_vs_raw']:.2f}x raw"))
    rows.append(("  ferry wire bytes / total time", units.gb_s(m['wire_total_gb_s']),
                 f"{t['wire_total_vs_raw']:.2f}x raw"))
    rows.append(("  ferry total / downtime / observer gap", times(m), ""))
    rows.append(("  ferry verification", "", t["verification"]))
    rows.append(("  ferry heartbeat", "", t["heartbeat_seq"]))
    if t.get("qemu"):
        q = t["qemu"]
        rows.append(("  qemu wire bytes / total time", units.gb_s(q['wire_total_gb_s']),
                     f"ferry {t['ferry_vs_qemu_wire_total']}x qemu"))
        rows.append(("  qemu total / downtime / observer gap", times(q), ""))
        rows.append(("  qemu verification", "", t["qemu_verification"]))
    m = res["idle_1g"]["median"]
    rows.append(("1 GiB untouched: total / downtime / observer gap", times(m),
                 f"{units.size(m['wire_bytes'])} sent"))
    rows.append(("  verification", "", res["idle_1g"]["verification"]))
    rows.append(("  heartbeat", "", res["idle_1g"]["heartbeat_seq"]))
    busy = [("512M", res["busy_64m_in_512m"])] + list(res.get("busy_64m_by_size", {}).items())
    for size, b in busy:
        for who in ("ferry", "qemu"):
            if who in b:
                m = b[who]["median"]
                rows.append((f"64M busy in {size}, {who}: total / downtime / observer",
                             times(m), f"{units.size(m['wire_bytes'])}, "
                             f"{m['rounds']:.0f} rounds"))
                rows.append((f"  {who} hand-over gap / longest stall elsewhere",
                             " / ".join(units.duration_ms(m.get(k)) for k in
                                        ("handover_gap_ms", "stall_elsewhere_ms")), ""))
                rows.append((f"  {who} verification", "", b[who]["verification"]))
                rows.append((f"  {who} heartbeat", "", b[who]["heartbeat_seq"]))
        if "ferry_vs_qemu" in b:
            r = b["ferry_vs_qemu"]
            rows.append(("  ferry / QEMU: total, downtime, observer gap, hand-over, bytes",
                         f"{r['total']} {r['downtime']} {r['observer_gap']} "
                         f"{r.get('handover_gap')} {r['wire_bytes']}", ""))
    t = res.get("tls_1g_incompressible")
    if t:
        for mode in ("plain", "tls-x509", "tls-psk"):
            m = t[mode]["median"]
            rows.append((f"1 GiB incompressible, {mode}: round 0 / downtime",
                         f"{m['round0_gb_s']:.2f} GB/s / {m['downtime_ms']:.1f} ms",
                         (t[mode]["cipher"] or "") +
                         (f" {t[mode + '_vs_plain_round0']}x plain" if mode != "plain" else "")))
            rows.append((f"  {mode} verification", "", t[mode]["verification"]))
    w = max(len(a) for a, _, _ in rows)
    return "\n".join(f"{a:<{w}}  {b_:>22}  {c}" for a, b_, c in rows)


# ---------------------------------------------------------------- scenarios

def laid_out(g):
    return g.get("ready") and g.get("pages-written", 0) > 0


def is_ready(g):
    return g.get("ready")


# The guest kit's workloads (guests/README.md).  verify=1 lays out every
# page of the working set before READY, so "fill" decides what the first
# round carries; "rate" is the guest's page-write rate in MiB/s (0: as fast
# as one vCPU writes, ~1 GB/s under PVM).  compress/delta/converge: which
# helpers the best matching settings turn on (scenario_settings).
SCENARIOS = [
    {"name": "idle", "memory": "1G", "cmdline": "workload=idle", "ready": is_ready,
     "what": "1 GiB never touched (the guest spins on its clock)"},
    # The guest's page header keeps these pages from being zero pages:
    # compression is what a user would turn on for them (issue 8: mostly
    # zero memory must go faster than the link's ceiling), both VMMs.
    {"name": "mostly-zero", "memory": "1G", "ready": laid_out, "compress": True,
     "cmdline": "workload=dirty wss=960M fill=zero verify=1 rate=1",
     "what": "960 MiB of pages zero but for a 16-byte header, then 1 MiB/s of writes "
             "(zstd on both VMMs)"},
    {"name": "compressible", "memory": "1G", "ready": laid_out, "compress": True,
     "cmdline": "workload=dirty wss=960M fill=counter verify=1 rate=1",
     "what": "960 MiB of runs of equal words, then 1 MiB/s of writes"},
    {"name": "incompressible", "memory": "1G", "ready": laid_out,
     "cmdline": "workload=dirty wss=960M fill=random verify=1 rate=1",
     "what": "960 MiB of random bytes, then 1 MiB/s of writes"},
    {"name": "incompressible-prealloc", "memory": "1G", "ready": laid_out, "prealloc": True,
     "cmdline": "workload=dirty wss=960M fill=random verify=1 rate=1",
     "what": "incompressible, into a destination that faulted in all guest RAM while "
             "waiting (ferry --prealloc, QEMU -mem-prealloc): against the ceiling into "
             "reused buffers"},
    {"name": "sequential", "memory": "1G", "ready": laid_out,
     "cmdline": "workload=dirty wss=256M pattern=seq rate=64 verify=1",
     "what": "64 MiB/s of writes sweeping a 256 MiB working set in order"},
    {"name": "random", "memory": "1G", "ready": laid_out,
     "cmdline": "workload=dirty wss=256M pattern=random rate=64 verify=1",
     "what": "64 MiB/s of writes to random pages of a 256 MiB working set"},
    # Issue 8's "a workload QEMU's defaults cannot finish at 1 Gbit/s": the
    # whole 512 MiB set stays dirty (~4 s of the link) while one round's
    # rest must fit 300 ms (~35 MB); only slowing the guest converges it.
    {"name": "random-max", "memory": "1G", "ready": laid_out, "converge": True,
     "cmdline": "workload=dirty wss=512M pattern=random rate=0 verify=1",
     "what": "random pages of a 512 MiB working set as fast as one vCPU writes"},
    {"name": "hotcold-16", "memory": "1G", "ready": laid_out, "delta": True,
     "cmdline": "workload=dirty wss=512M pattern=hot rate=16 verify=1",
     "what": "16 MiB/s, 90% of writes to the first 10% of 512 MiB"},
    {"name": "hotcold-64", "memory": "1G", "ready": laid_out, "delta": True,
     "cmdline": "workload=dirty wss=512M pattern=hot rate=64 verify=1",
     "what": "64 MiB/s, 90% of writes to the first 10% of 512 MiB"},
    {"name": "hotcold-256", "memory": "1G", "ready": laid_out, "delta": True, "converge": True,
     "cmdline": "workload=dirty wss=512M pattern=hot rate=256 verify=1",
     "what": "256 MiB/s hot/cold: faster than the 1 Gbit/s link (~119 MB/s)"},
    {"name": "hotcold-max", "memory": "1G", "ready": laid_out, "delta": True, "converge": True,
     "cmdline": "workload=dirty wss=512M pattern=hot rate=0 verify=1",
     "what": "hot/cold as fast as one vCPU writes: faster than every link here"},
]
SCENARIO_SETTLE_S = 2.5      # two guest progress reports before the migration
PAIRED_CEILING_MIB = 512     # each paired ceiling run (paired_ceiling)
XBZRLE_CACHE = 64 * MIB      # QEMU's default xbzrle-cache-size


def scenario_settings(scn, channels):
    """Best matching settings: (ferry params, ferry caps, qemu caps, qemu params).

    QEMU: multifd with `channels` channels (zstd for compressible memory)
    unless the scenario rewrites pages, where xbzrle (which QEMU uses only
    without multifd) matters more; auto-converge for a guest faster than
    the link.  BENCH_QEMU_DEFAULTS=1: QEMU with none of that.  Ferry gets
    the same helpers under QEMU's names; a ferry that lacks one runs without
    it and the results say so (apply_ferry_settings)."""
    # Always named: ferry's default is 2 channels, and a row says how many.
    fparams, fcaps, qcaps, qparams = {"multifd-channels": channels}, {}, {}, {}
    if scn.get("compress"):
        fparams["multifd-compression"] = "zstd"
    if scn.get("delta"):
        fcaps["xbzrle"] = True
        fparams["xbzrle-cache-size"] = XBZRLE_CACHE
    if scn.get("converge"):
        fcaps["auto-converge"] = True
    if os.environ.get("BENCH_QEMU_DEFAULTS") == "1":
        return fparams, fcaps, qcaps, qparams
    if scn.get("delta"):
        qcaps["xbzrle"] = True
        qparams["xbzrle-cache-size"] = XBZRLE_CACHE
    elif channels > 1 or scn.get("compress"):
        qcaps["multifd"] = True
        qparams["multifd-channels"] = channels
        if scn.get("compress"):
            qparams["multifd-compression"] = "zstd"
    if scn.get("converge"):
        qcaps["auto-converge"] = True
    return fparams, fcaps, qcaps, qparams


def run_metrics(r, guest_bytes):
    """The figures a scenario compares, from one finished run."""
    c = r.get("cost") or {}
    cpu = [c.get(k, {}).get("cpu_s_without_vcpus") for k in ("src", "dst")]
    cpu_sum = sum(x for x in cpu if x is not None) if any(x is not None for x in cpu) else None
    sd = r.get("slowdown") or {}
    return {
        "total_ms": r.get("total_ms"), "downtime_ms": r.get("downtime_ms"),
        "observer_gap_ms": r.get("observer_gap_ms"),
        "handover_gap_ms": r.get("handover_gap_ms"), "wire_bytes": r.get("wire_bytes"),
        "rounds": r.get("rounds"),
        "wire_gb_s": (round(r["wire_bytes"] / (r["total_ms"] / 1000) / 1e9, 3)
                      if r.get("wire_bytes") and r.get("total_ms") else None),
        "src_cpu_s": c.get("src", {}).get("cpu_s_without_vcpus"),
        "dst_cpu_s": c.get("dst", {}).get("cpu_s_without_vcpus"),
        "cpu_s_per_gib": round(cpu_sum / (guest_bytes / GIB), 3) if cpu_sum is not None else None,
        "src_rss_beyond_guest_mib": c.get("src", {}).get("rss_beyond_guest_mib"),
        "dst_rss_beyond_guest_mib": c.get("dst", {}).get("rss_beyond_guest_mib"),
        "guest_slowdown": sd.get("slowdown"),
        "loadavg_1m": r.get("loadavg_1m"),
    }


METRIC_KEYS = ["total_ms", "downtime_ms", "observer_gap_ms", "handover_gap_ms",
               "wire_bytes", "rounds",
               "wire_gb_s", "src_cpu_s", "dst_cpu_s", "cpu_s_per_gib",
               "src_rss_beyond_guest_mib", "dst_rss_beyond_guest_mib", "guest_slowdown",
               "loadavg_1m"]


def vmm_summary(runs, guest_bytes):
    done = [r for r in runs if r.get("finished")]
    ms = [run_metrics(r, guest_bytes) for r in done]
    return {"finished": f"{len(done)} of {len(runs)}",
            "median": {k: median([m[k] for m in ms]) for k in METRIC_KEYS},
            "verification": fp.verification_claim(done) if done else "no run finished",
            "heartbeat_seq": heartbeat_claim(done),
            "runs": runs}


def guarded(fn, *args, **kw):
    """A run that raises is recorded as not finished; the suite goes on."""
    try:
        return fn(*args, **kw)
    except Exception as e:  # noqa: BLE001 - any failure of one run
        log(f"run failed: {type(e).__name__}: {e}")
        return {"finished": False, "why": f"{type(e).__name__}: {e}",
                "loadavg_1m": ceiling.loadavg()[0]}


def paired_ceiling(link, conns, scn):
    """One ceiling run (bench/ceiling.py) with the scenario's connections,
    into the memory its destination fills (fresh, or reused buffers when
    it is preallocated), for the throughput scenarios; None when
    BENCH_PAIRED_CEILING=0 or for the others."""
    if os.environ.get("BENCH_PAIRED_CEILING", "1") == "0" or \
            not scn["name"].startswith("incompressible"):
        return None
    memory = "reuse" if scn.get("prealloc") else "fresh"
    try:
        m = ceiling.measure(link, conns, memory, PAIRED_CEILING_MIB)
    except Exception as ex:  # noqa: BLE001 - a failed ceiling run is reported, not fatal
        log(f"paired ceiling on {link.kind}/{conns}: {ex}")
        return None
    m["memory"] = memory
    return m


def case_scenarios(work, links, ceil, channels_list, names=None):
    """Every scenario on every link, Ferry and QEMU interleaved run by run."""
    use_qemu = os.environ.get("BENCH_NO_QEMU") != "1" and shutil.which(QEMU)
    timeout = float(os.environ.get("BENCH_MIGRATION_TIMEOUT", "60"))
    qemu_defaults = os.environ.get("BENCH_QEMU_DEFAULTS") == "1"
    # e.g. "--dirty-ring 65536": the dirty-tracking backend under test.
    fsrc = shlex.split(os.environ.get("BENCH_FERRY_SRC_ARGS", ""))
    out = []
    for link in links:
        for scn in SCENARIOS:
            if names and scn["name"] not in names:
                continue
            for ch in channels_list:
                fparams, fcaps, qcaps, qparams = scenario_settings(scn, ch)
                tag = f"{scn['name']}@{link.kind}/{ch}ch"
                fdst, qdst, note = (), (), None
                if scn.get("prealloc"):
                    qdst = ("-mem-prealloc",)
                    if ferry_knows("--prealloc"):
                        fdst = ("--memory", scn["memory"], "--prealloc")
                    else:
                        note = "this ferry has no --prealloc: its destination ran without"
                ferry, qemu = [], []

                def run_ferry(n):
                    # The ceiling again right before the run (BENCH_PAIRED_CEILING):
                    # the load on this shared host moves 2x between the
                    # ceiling's block and a run minutes later, and the
                    # ratio should not.
                    pc = paired_ceiling(link, ch, scn)
                    r = guarded(ferry_migration, work, n + "f", scn["memory"], 1,
                                scn["cmdline"], scn["ready"], link=link, params=fparams,
                                caps=fcaps, settle=SCENARIO_SETTLE_S, timeout=timeout,
                                dst_extra=fdst, src_extra=fsrc)
                    if pc:
                        r["paired_ceiling"] = pc
                    return r

                def run_qemu(n):
                    return guarded(qemu_migration, work, n + "q", scn["memory"], scn["cmdline"],
                                   link=link, caps=qcaps, params=qparams,
                                   settle=SCENARIO_SETTLE_S, timeout=timeout,
                                   max_bandwidth=(None if qemu_defaults else QEMU_MAX_BW),
                                   dst_extra=qdst)
                for i in range(REPEATS):
                    # Interleaved, and who goes first alternates: neither
                    # VMM always runs right after the other's migration.
                    order = [("ferry", run_ferry, ferry)]
                    if use_qemu:
                        order.append(("qemu", run_qemu, qemu))
                    if i % 2:
                        order.reverse()
                    for who, fn, runs in order:
                        r = fn(f"s{len(out)}-{i}")
                        r["order"] = order.index((who, fn, runs))
                        runs.append(r)
                        log(f"{tag} {who} {i}: "
                            f"{times(r) if r.get('finished') else r.get('why')}")
                gb = parse_size(scn["memory"])
                e = {"scenario": scn["name"], "link": link.kind, "channels": ch,
                     "memory": scn["memory"], "cmdline": scn["cmdline"], "what": scn["what"],
                     "ferry_settings": {"parameters": fparams, "capabilities": fcaps,
                                        "destination": list(fdst), "source": fsrc,
                                        "note": note},
                     "qemu_settings": {"parameters": qparams, "capabilities": qcaps,
                                       "destination": list(qdst),
                                       "defaults": qemu_defaults},
                     "ceiling_fresh_gb_s": ceiling.lookup(ceil, link.kind, ch, "fresh"),
                     "ceiling_reuse_gb_s": ceiling.lookup(ceil, link.kind, ch, "reuse"),
                     "ferry": vmm_summary(ferry, gb)}
                fm = e["ferry"]["median"]
                e["ferry_vs_ceiling_fresh"] = ratio(fm["wire_gb_s"], e["ceiling_fresh_gb_s"])
                pairs = [round(r["wire_bytes"] / (r["total_ms"] / 1000) / 1e9
                               / r["paired_ceiling"]["gb_per_s"], 3)
                         for r in ferry if r.get("paired_ceiling") and r.get("wire_bytes")
                         and r.get("total_ms") and r["paired_ceiling"].get("gb_per_s")]
                if pairs:
                    e["ferry_vs_paired_ceiling"] = {
                        "memory": ferry[0]["paired_ceiling"]["memory"],
                        "per_run": pairs, "median": statistics.median(pairs),
                        "ceiling_gb_s": [r["paired_ceiling"]["gb_per_s"] for r in ferry
                                         if r.get("paired_ceiling")]}
                if scn.get("prealloc"):
                    e["ferry_vs_ceiling_reuse"] = ratio(fm["wire_gb_s"],
                                                        e["ceiling_reuse_gb_s"])
                if qemu:
                    e["qemu"] = vmm_summary(qemu, gb)
                    qm = e["qemu"]["median"]
                    e["ferry_vs_qemu"] = {k: ratio(fm[k], qm[k]) for k in
                                          ("total_ms", "downtime_ms", "observer_gap_ms",
                                           "wire_bytes", "wire_gb_s", "cpu_s_per_gib")}
                out.append(e)
    return out


# ---------------------------------------------------------------- post-copy

# The post-copy case (case_postcopy): a verifying guest rewriting a 256 MiB
# working set at 64 MiB/s in random order, in 1 GiB and 4 GiB of RAM, moved
# by ferry's post-copy (mode "postcopy": no pre-copy round) and by QEMU's
# (postcopy-ram on both sides, migrate, migrate-start-postcopy at once);
# then a hot/cold working set pre-copy cannot converge on (hotcold-max),
# ferry hybrid against ferry pre-copy and QEMU post-copy.
PC_CMDLINE = "workload=dirty wss=256M pattern=random rate=64 verify=1"
PC_SIZES = ["1G", "4G"]
PC_HYBRID_ROUNDS = 1
PC_RSS_PERIOD_S = 0.01


def pc_release_ram():
    """release-ram on both VMMs' sources (QEMU's capability, Ferry's the
    same): each page leaves the source once the destination has it, so
    the two processes hold about one copy (the combined peak RSS figure).
    BENCH_PC_RELEASE_RAM=0 keeps the source's copy; read at each run, so
    that bench/postcopy_ab.py can compare the two."""
    return os.environ.get("BENCH_PC_RELEASE_RAM", "1") != "0"


def proc_status_kib(pid, field):
    """A '<field>: N kB' line of /proc/PID/status, in KiB, or None."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return None


class RssPeak:
    """Samples VmRSS of the source and destination together every 10 ms
    and keeps the largest sum seen (both processes at the same moment),
    each one's largest VmRSS and VmHWM (the kernel's own peak, read while
    the process lives: a ferry source exits once its migration is done)."""

    def __init__(self, pids):
        import threading
        self.pids = dict(pids)
        self.peak_sum_kib = 0
        self.peak_kib = {k: 0 for k in self.pids}
        self.hwm_kib = {k: None for k in self.pids}
        self.samples = 0
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)

    def start(self):
        self._t.start()
        return self

    def sample(self):
        tot = 0
        for k, pid in self.pids.items():
            v = proc_status_kib(pid, "VmRSS")
            h = proc_status_kib(pid, "VmHWM")
            if h is not None:
                self.hwm_kib[k] = max(self.hwm_kib[k] or 0, h)
            if v is not None:
                tot += v
                self.peak_kib[k] = max(self.peak_kib[k], v)
        self.peak_sum_kib = max(self.peak_sum_kib, tot)
        self.samples += 1

    def _run(self):
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(PC_RSS_PERIOD_S)

    def stop(self, guest_bytes):
        self._stop.set()
        self._t.join(timeout=2)
        self.sample()
        return {"combined_peak_rss_bytes": self.peak_sum_kib * 1024,
                "combined_peak_vs_guest_ram": round(self.peak_sum_kib * 1024 / guest_bytes, 3),
                "peak_rss_bytes": {k: v * 1024 for k, v in self.peak_kib.items()},
                "vm_hwm_bytes": {k: (v * 1024 if v is not None else None)
                                 for k, v in self.hwm_kib.items()},
                "samples": self.samples, "period_ms": PC_RSS_PERIOD_S * 1000}


def guest_rss_bytes(pid, guest_bytes):
    """Resident guest RAM of a process (its guest-RAM mappings): what the
    guest has touched, measured the same way for ferry and QEMU."""
    try:
        _, guest = fp.vmm_overhead_kib(pid, guest_bytes)
        return guest * 1024
    except (OSError, ValueError):
        return None


PC_GAP_LIST_MS = 5.0


def observed(obs, t0, t_end):
    """The observer's figures over [t0, t_end]: the longest gap (ms), when
    it began (ms from t0), every gap longer than PC_GAP_LIST_MS as
    [start ms from t0, length ms, beats read at once at its end] (at most
    50; k beats read together after a gap of about k ms mean the observer
    was held up, not the guest): one pause, or a pause and
    then the stalls of a guest waiting for its pages; their count; and
    the hand-over gap (ms: the source's last beat to the destination's
    first, the pause alone as seen from outside)."""
    gap_r = obs.check(t0, t_end)
    gap = gap_r["max_gap_s"]
    _, times_ = obs._window(t0, t_end)
    gaps = [[round((times_[i] - t0) * 1000, 1),
             round((times_[i + 1] - times_[i]) * 1000, 1),
             sum(1 for t in times_[i + 1:i + 200] if t == times_[i + 1])]
            for i in range(len(times_) - 1)
            if (times_[i + 1] - times_[i]) * 1000 > PC_GAP_LIST_MS]
    h = obs.handover(t0, t_end)
    hand = h["handover_gap_s"] if h else None
    return (round(gap * 1000, 1) if gap else None,
            (round((gap_r["max_gap_end"] - t0) * 1000 - gap * 1000, 1)
             if gap and gap_r.get("max_gap_end") else None),
            gaps[:50], len(gaps), round(hand * 1000, 1) if hand else None)


def observer_floor(obs, t0, t_end):
    """The longest gap (ms) in a window as long as [t0, t_end] right
    before t0, with no migration running: this host's own stalls (an
    idle real-time thread sleeping 1 ms here wakes 4-17 ms late about
    twice a second: the hypervisor takes the VM's cores), the floor under
    any observed downtime.  None without beats there."""
    r = obs.check(t0 - (t_end - t0), t0)
    return round(r["max_gap_s"] * 1000, 1) if r["max_gap_s"] else None


def ferry_pc_run(work, name, memory, cmdline, ready, mode, timeout, params=None, caps=None):
    """One ferry migration of mode postcopy, hybrid (PC_HYBRID_ROUNDS
    pre-copy rounds, then post-copy) or precopy (params/caps as the
    scenario's best settings), with the post-copy figures: both VMMs'
    downtime, the observer's gap, the destination's fault latency, wire
    bytes against the memory the guest touched, combined peak RSS."""
    obs = HeartbeatObserver(os.path.join(work, name + "-hb.sock"))
    sctl = os.path.join(work, name + "-src.sock")
    dctl = os.path.join(work, name + "-dst.sock")
    src = dst = None
    load = ceiling.loadavg()
    gbytes = parse_size(memory)
    try:
        src = fp.start(["--kernel", fp.GUEST, "--memory", memory, "--vcpus", "1",
                        "--serial", "none", "--cmdline", cmdline,
                        "--heartbeat", "unix:" + obs.path, "--control", sctl],
                       work, name + "-src")
        dst = fp.start(["--incoming", "tcp:127.0.0.1:0", "--serial", "none",
                        "--heartbeat", "unix:" + obs.path, "--control", dctl],
                       work, name + "-dst")
        port = listening_port(work, name)
        alive(src, name + "-src", work)
        fp.wait_socket(sctl)
        fp.wait_guest(sctl, ready, timeout=180)
        time.sleep(SCENARIO_SETTLE_S)
        q = Qmp(sctl)
        if mode != "precopy" and pc_release_ram():
            caps = dict(caps or {}, **{"release-ram": True})
        settings = apply_ferry_settings(q, params, caps)
        # A ferry without release-ram keeps its copy: not a migrate argument.
        settings["migrate_args"].pop("release-ram", None)
        q.cmd("migrate-set-parameters", {"downtime-limit": DOWNTIME_MS, "max-bandwidth": 0})
        touched = guest_rss_bytes(src.pid, gbytes)
        rss = RssPeak({"src": src.pid, "dst": dst.pid}).start()
        args = {"uri": f"tcp:127.0.0.1:{port}"}
        if mode != "precopy":
            args["mode"] = mode
        if mode == "hybrid":
            args["precopy-rounds"] = PC_HYBRID_ROUNDS
        settings["migrate"] = dict(args)
        samples = []
        t0 = time.monotonic()
        if settings.get("migrate_args"):
            args.update(settings.pop("migrate_args"))
        q.cmd("migrate", args)
        st = poll_migration(q, t0, timeout, samples, None, "migrate-cancel")
        q.close()
        if st is None:
            log(f"{name}: did not finish in {timeout} s: cancelled")
            return {"finished": False, "why": f"not finished after {timeout} s (cancelled)",
                    "mode": mode, "loadavg_1m": load[0], "settings": settings,
                    "rss": rss.stop(gbytes)}
        if st["status"] != "completed":
            raise RuntimeError(f"ferry migration {st['status']}: {st.get('error-desc')}")
        resumed = obs.first_after(t0, timeout=10)
        time.sleep(0.3)
        t_end = time.monotonic()
        gap_ms, gap_at, gaps, ngaps, hand_ms = observed(obs, t0, t_end)
        floor_ms = observer_floor(obs, t0, t_end)
        fp.wait_socket(dctl)
        # The destination's post-copy figures once its pull has ended.
        dq = None
        end = time.monotonic() + 15
        while time.monotonic() < end:
            dq = fp.qmp(dctl, "query-migrate")
            if dq.get("status") in ("completed", "failed"):
                break
            time.sleep(0.05)
        rss_r = rss.stop(gbytes)
        verification, hb = ferry_arrival_checks(name, src, dctl, cmdline, obs)
        fe = st.get("ferry", {})
        spc = fe.get("postcopy") or {}
        dpc = (dq or {}).get("ferry", {}).get("postcopy") or {}
        lat = dpc.get("fault-latency-us") or {}
        main = st["ram"]["transferred"]
        pc_bytes = (spc.get("bytes-answers") or 0) + (spc.get("bytes-push") or 0)
        wire = main + pc_bytes
        down = fe["downtime-us"] / 1000 if fe.get("downtime-us") is not None \
            else st.get("downtime")
        return {
            "finished": True, "vmm": "ferry", "mode": mode, "loadavg_1m": load[0],
            "memory": memory, "settings": settings,
            "total_ms": st.get("total-time"),
            "downtime_ms": down,
            "observer_gap_ms": gap_ms, "observer_gap_at_ms": gap_at,
            "observer_gaps_over_5ms": gaps, "observer_gaps_over_5ms_count": ngaps,
            "observer_handover_ms": hand_ms, "observer_floor_ms": floor_ms,
            "resumed_seen": resumed is not None,
            "wire_bytes": wire, "wire_main_bytes": main, "wire_postcopy_bytes": pc_bytes,
            "touched_bytes": touched,
            "wire_vs_touched": ratio(wire, touched),
            "rounds": st["ram"].get("dirty-sync-count"),
            "postcopy_source": spc, "postcopy_destination": dpc,
            "fault_latency_us": {"p50": lat.get("p50"), "p99": lat.get("p99"),
                                 "max": lat.get("max"), "samples": lat.get("samples")},
            "faults": dpc.get("faults"), "pages_requested": dpc.get("pages-requested"),
            "vcpu_waited_ms": dpc.get("waited-ms"),
            "postcopy_ms": spc.get("duration-ms"),
            "dst_status": (dq or {}).get("status"),
            "rss": rss_r,
            "verification": verification,
            "heartbeat_seq": {k: hb[k] for k in ("beats", "gaps", "lost", "repeats")},
            "source_exit": src.returncode,
            "throttle": fe.get("throttle"),
            # Where the pause went (pause, final-round, state, load, commit).
            "downtime_breakdown_us": fe.get("downtime-breakdown-us"),
            # Why pre-copy (or a hybrid's pre-copy part) stopped.
            "convergence": fe.get("convergence-reason"),
            # Pages the source sent twice (answered on request and pushed):
            # pushed + requested - missing, less the requests it did not
            # answer because the push had delivered the page already.
            "pages_sent_twice": ((spc.get("pages-pushed") or 0) + (spc.get("pages-requested") or 0)
                                 - (spc.get("missing-pages") or 0)
                                 - (spc.get("prepage-not-resent") or 0)) if spc else None,
        }
    finally:
        if dst is not None:
            fp.stop(dst, dctl)
        kill(src)
        obs.close()


def qemu_pc_run(work, name, memory, cmdline, timeout):
    """The same guest moved by QEMU's post-copy: postcopy-ram on both
    sides (postcopy-blocktime too at the destination: its own count of
    the time vCPUs waited for pages), migrate, migrate-start-postcopy at
    once."""
    obs = HeartbeatObserver(os.path.join(work, name + "-hb.sock"))
    port = free_port()
    procs = []
    qs = qd = None
    load = ceiling.loadavg()
    gbytes = parse_size(memory)
    try:
        serial, dserial = qemu_pair(work, name, obs, memory, cmdline, procs)
        time.sleep(SCENARIO_SETTLE_S)
        qs = Qmp(os.path.join(work, name + "-src.qmp"))
        qd = Qmp(os.path.join(work, name + "-dst.qmp"))
        qs.cmd("migrate-set-capabilities", {"capabilities": [
            {"capability": "postcopy-ram", "state": True}]
            + ([{"capability": "release-ram", "state": True}] if pc_release_ram() else [])})
        qd.cmd("migrate-set-capabilities", {"capabilities": [
            {"capability": "postcopy-ram", "state": True},
            {"capability": "postcopy-blocktime", "state": True}]})
        qd.cmd("migrate-incoming", {"uri": f"tcp:127.0.0.1:{port}"})
        limits = {"downtime-limit": DOWNTIME_MS, "max-bandwidth": QEMU_MAX_BW}
        qs.cmd("migrate-set-parameters", limits)
        settings = {"capabilities": {"postcopy-ram": True, "release-ram": pc_release_ram()},
                    "destination_capabilities": {"postcopy-ram": True,
                                                 "postcopy-blocktime": True},
                    "limits": limits, "start_postcopy": "at once"}
        touched = guest_rss_bytes(procs[0].pid, gbytes)
        rss = RssPeak({"src": procs[0].pid, "dst": procs[1].pid}).start()
        samples = []
        t0 = time.monotonic()
        qs.cmd("migrate", {"uri": f"tcp:127.0.0.1:{port}"})
        qs.cmd("migrate-start-postcopy")
        st = poll_migration(qs, t0, timeout, samples, None, "migrate_cancel")
        t1 = time.monotonic()
        if st is None:
            log(f"{name}: QEMU did not finish in {timeout} s: cancelled")
            return {"finished": False, "why": f"not finished after {timeout} s (cancelled)",
                    "loadavg_1m": load[0], "settings": settings, "rss": rss.stop(gbytes)}
        if st["status"] != "completed":
            raise RuntimeError(f"QEMU migration {st['status']}: {st.get('error-desc')}")
        resumed = obs.first_after(t0, timeout=10)
        time.sleep(0.3)
        t_end = time.monotonic()
        gap_ms, gap_at, gaps, ngaps, hand_ms = observed(obs, t0, t_end)
        floor_ms = observer_floor(obs, t0, t_end)
        dq = None
        end = time.monotonic() + 15
        while time.monotonic() < end:
            dq = qd.cmd("query-migrate")
            if dq.get("status") in ("completed", "failed"):
                break
            time.sleep(0.05)
        rss_r = rss.stop(gbytes)
        verification = qemu_verification(dserial, cmdline)
        hb = obs.check()
        if hb["repeats"]:
            log(f"{name}: HEARTBEAT REPEATS: {hb['repeats']}")
        ram = st.get("ram", {})
        wire = ram.get("transferred")
        return {
            "finished": True, "vmm": "qemu", "mode": "postcopy", "loadavg_1m": load[0],
            "memory": memory, "settings": settings,
            "total_ms": st.get("total-time"),
            "downtime_ms": st.get("downtime"),
            "observer_gap_ms": gap_ms, "observer_gap_at_ms": gap_at,
            "observer_gaps_over_5ms": gaps, "observer_gaps_over_5ms_count": ngaps,
            "observer_handover_ms": hand_ms, "observer_floor_ms": floor_ms,
            "resumed_seen": resumed is not None,
            "wire_bytes": wire, "touched_bytes": touched,
            "wire_vs_touched": ratio(wire, touched),
            "rounds": ram.get("dirty-sync-count"),
            "postcopy_requests": ram.get("postcopy-requests"),
            "postcopy_blocktime_ms": (dq or {}).get("postcopy-blocktime"),
            "postcopy_vcpu_blocktime_ms": (dq or {}).get("postcopy-vcpu-blocktime"),
            "dst_status": (dq or {}).get("status"),
            "rss": rss_r,
            "verification": verification,
            "heartbeat_seq": {k: hb[k] for k in ("beats", "gaps", "lost", "repeats")},
            "time_to_complete_s": round(t1 - t0, 3),
        }
    finally:
        teardown((qs, qd), procs, obs)


PC_KEYS = ["total_ms", "downtime_ms", "observer_gap_ms", "observer_handover_ms",
           "observer_floor_ms",
           "wire_bytes", "touched_bytes",
           "wire_vs_touched", "fault_p50_us", "fault_p99_us", "combined_peak_rss_bytes",
           "combined_peak_vs_guest_ram", "loadavg_1m"]


def pc_metrics(r):
    lat = r.get("fault_latency_us") or {}
    rs = r.get("rss") or {}
    return {"total_ms": r.get("total_ms"), "downtime_ms": r.get("downtime_ms"),
            "observer_gap_ms": r.get("observer_gap_ms"),
            "observer_handover_ms": r.get("observer_handover_ms"),
            "observer_floor_ms": r.get("observer_floor_ms"), "wire_bytes": r.get("wire_bytes"),
            "touched_bytes": r.get("touched_bytes"), "wire_vs_touched": r.get("wire_vs_touched"),
            "fault_p50_us": lat.get("p50"), "fault_p99_us": lat.get("p99"),
            "combined_peak_rss_bytes": rs.get("combined_peak_rss_bytes"),
            "combined_peak_vs_guest_ram": rs.get("combined_peak_vs_guest_ram"),
            "loadavg_1m": r.get("loadavg_1m")}


def pc_summary(runs):
    done = [r for r in runs if r.get("finished")]
    ms_ = [pc_metrics(r) for r in done]
    return {"finished": f"{len(done)} of {len(runs)}",
            "median": {k: median([m[k] for m in ms_]) for k in PC_KEYS},
            "verification": fp.verification_claim(done) if done else "no run finished",
            "heartbeat_seq": heartbeat_claim(done),
            "runs": runs}


def pc_interleaved(legs, tag):
    """legs: [(name, fn(i) -> run)]: REPEATS rounds, every leg once a
    round, the order rotated a round so that no leg always follows the
    same one.  Returns {name: [runs]}."""
    out = {n: [] for n, _ in legs}
    for i in range(REPEATS):
        k = i % len(legs)
        for pos, (n, fn) in enumerate(legs[k:] + legs[:k]):
            r = guarded(fn, i)
            r["order"] = pos
            out[n].append(r)
            if r.get("finished"):
                lat = r.get("fault_latency_us") or {}
                log(f"{tag} {n} {i}: {times(r)}, wire {units.size(r.get('wire_bytes'))} "
                    f"/ touched {units.size(r.get('touched_bytes'))}"
                    + (f", fault p50/p99 {lat.get('p50')}/{lat.get('p99')} us"
                       if lat.get("p50") is not None else "")
                    + f", peak RSS {units.size((r.get('rss') or {}).get('combined_peak_rss_bytes'))}")
            else:
                log(f"{tag} {n} {i}: {r.get('why')}")
    return out


def postcopy_table(pc):
    """Text summary of case_postcopy (medians; every run is in the JSON)."""
    rows = []
    for e in pc["sizes"]:
        for v in ("ferry", "qemu"):
            if v not in e:
                continue
            m = e[v]["median"]
            rows.append(f"{e['memory']} {v}: total/own downtime/observed "
                        f"{times(m)}; wire/touched {m['wire_vs_touched']}; fault p50/p99 "
                        f"{m['fault_p50_us']}/{m['fault_p99_us']} us; peak RSS "
                        f"{m['combined_peak_vs_guest_ram']}x guest RAM; {e[v]['finished']} "
                        f"finished; {e[v]['verification']}")
    hc = pc.get("hotcold") or {}
    for n in ("ferry-hybrid", "ferry-precopy", "ferry-precopy-plain", "qemu-postcopy"):
        if n in hc:
            m = hc[n]["median"]
            rows.append(f"hotcold-max {n}: total/own downtime/observed {times(m)}; "
                        f"{hc[n]['finished']} finished; {hc[n]['verification']}")
    return "\n".join(rows)


def case_postcopy(work, sizes=None):
    """Ferry post-copy vs QEMU post-copy (1 GiB and 4 GiB), then hybrid vs
    pre-copy vs QEMU post-copy on hot/cold at full speed."""
    use_qemu = os.environ.get("BENCH_NO_QEMU") != "1" and shutil.which(QEMU)
    timeout = float(os.environ.get("BENCH_MIGRATION_TIMEOUT", "60"))
    sizes = sizes or PC_SIZES
    res = {"cmdline": PC_CMDLINE, "sizes": [], "hybrid_rounds": PC_HYBRID_ROUNDS,
           "method": ("ferry: migrate mode postcopy (no pre-copy round); QEMU 7.2: "
                      "postcopy-ram on both sides, migrate, migrate-start-postcopy at once; "
                      + ("release-ram on both sources; " if pc_release_ram() else "") +
                      "both over loopback, max-bandwidth unlimited, downtime-limit "
                      f"{DOWNTIME_MS} ms. Observed downtime: the longest heartbeat gap "
                      "(1 ms beats) from the migrate command to 0.3 s after completion. "
                      "Touched memory: the source's resident guest RAM just before "
                      "migrating. Wire bytes: ferry's main connection plus its two "
                      "post-copy connections (page answers, push); QEMU's ram "
                      "transferred. Combined peak RSS: the largest sum of both "
                      "processes' VmRSS sampled together every "
                      f"{PC_RSS_PERIOD_S * 1000:.0f} ms during the migration.")}
    for mem in sizes:
        legs = [("ferry", lambda i, mem=mem: ferry_pc_run(
            work, f"pc{mem}-{i}f", mem, PC_CMDLINE, laid_out, "postcopy", timeout))]
        if use_qemu:
            legs.append(("qemu", lambda i, mem=mem: qemu_pc_run(
                work, f"pc{mem}-{i}q", mem, PC_CMDLINE, timeout)))
        runs = pc_interleaved(legs, f"postcopy {mem}")
        e = {"memory": mem, "guest_bytes": parse_size(mem),
             "ferry": pc_summary(runs["ferry"])}
        if "qemu" in runs:
            e["qemu"] = pc_summary(runs["qemu"])
            fm, qm = e["ferry"]["median"], e["qemu"]["median"]
            e["ferry_vs_qemu"] = {k: ratio(fm[k], qm[k]) for k in
                                  ("total_ms", "downtime_ms", "observer_gap_ms", "wire_bytes",
                                   "combined_peak_rss_bytes")}
        res["sizes"].append(e)
    # Hot/cold faster than the link: pre-copy with its best settings
    # (xbzrle, auto-converge) against hybrid and QEMU's post-copy.
    scn = next(s for s in SCENARIOS if s["name"] == "hotcold-max")
    fparams, fcaps, _, _ = scenario_settings(scn, 1)
    legs = [("ferry-hybrid", lambda i: ferry_pc_run(
                work, f"hc-{i}h", scn["memory"], scn["cmdline"], laid_out, "hybrid", timeout)),
            ("ferry-precopy", lambda i: ferry_pc_run(
                work, f"hc-{i}p", scn["memory"], scn["cmdline"], laid_out, "precopy", timeout,
                params=fparams, caps=fcaps))]
    if os.environ.get("BENCH_POSTCOPY_PLAIN") != "0":
        # Pre-copy with no helper (no xbzrle, no throttle): what pre-copy
        # does with a working set it cannot converge on.
        legs.append(("ferry-precopy-plain", lambda i: ferry_pc_run(
            work, f"hc-{i}n", scn["memory"], scn["cmdline"], laid_out, "precopy", timeout)))
    if use_qemu:
        legs.append(("qemu-postcopy", lambda i: qemu_pc_run(
            work, f"hc-{i}q", scn["memory"], scn["cmdline"], timeout)))
    runs = pc_interleaved(legs, "hotcold-max")
    hc = {"scenario": scn["name"], "memory": scn["memory"], "cmdline": scn["cmdline"],
          "what": scn["what"], "timeout_s": timeout,
          "precopy_settings": {"parameters": fparams, "capabilities": fcaps}}
    for n in runs:
        hc[n] = pc_summary(runs[n])
    hm = hc["ferry-hybrid"]["median"]
    for other in ("ferry-precopy", "ferry-precopy-plain", "qemu-postcopy"):
        if other in hc:
            om = hc[other]["median"]
            hc[f"hybrid_vs_{other}"] = {k: ratio(hm[k], om[k]) for k in
                                        ("total_ms", "observer_gap_ms", "wire_bytes")}
    res["hotcold"] = hc
    return res


def kvm_usable():
    """(True, None) or (False, why): can a guest run on this host?"""
    try:
        fd = os.open("/dev/kvm", os.O_RDWR | os.O_CLOEXEC)
    except OSError as e:
        return False, f"cannot open /dev/kvm: {e.strerror}"
    os.close(fd)
    return True, None


def env_list(name, default):
    return [x for x in os.environ.get(name, default).split(",") if x]


def main():
    """Environment: BENCH_LINKS (loopback,1gbit,10gbit), BENCH_CHANNELS (1),
    BENCH_SCENARIOS (all: names from SCENARIOS; "none": no scenario),
    BENCH_CLASSIC=0 (skip the loopback cases 1-4 of the module text),
    BENCH_POSTCOPY=0 (skip case 6), BENCH_POSTCOPY_SIZES (1G,4G), CEILING_REPEATS (3),
    BENCH_MIGRATION_TIMEOUT (60 s per scenario migration)."""
    kinds = env_list("BENCH_LINKS", "loopback,1gbit,10gbit")
    channels = [int(x) for x in env_list("BENCH_CHANNELS", "1")]
    names = env_list("BENCH_SCENARIOS", "")
    kvm_ok, kvm_why = kvm_usable()
    kinds, link_why = ceiling.usable_links(kinds)
    if link_why:
        log(f"SKIPPED the namespace links: {link_why}")
    ceiling.ensure_built()
    work = tempfile.mkdtemp(prefix="ferry-mbench-")
    t_start = time.monotonic()
    try:
        res = {"host": host_info(), "repeats": REPEATS,
               "kvm": {"usable": kvm_ok, "why": kvm_why}, "skipped_links": link_why}
        res["host"]["date_utc"] = time.strftime("%Y-%m-%d %H:%M", time.gmtime())
        with netlinks.Links(kinds) as links:
            # The ceiling in the same run: every link, the scenarios'
            # connection counts and 1, 2, 4.
            res["ceiling"] = ceiling.run(links, sorted(set([1, 2, 4] + channels)),
                                         repeats=int(os.environ.get("CEILING_REPEATS", "3")),
                                         cores=(("busy", "idle")
                                                if os.environ.get("CEILING_IDLE") == "1"
                                                else ("busy",)))
            if not kvm_ok:
                log(f"NO KVM ({kvm_why}): no guest can run here. Only the guest-less "
                    "part ran: the raw-TCP ceiling. Every migration scenario (Ferry and "
                    "QEMU) was SKIPPED; no migration figures were produced.")
                res["skipped"] = ("every migration scenario and case: " + kvm_why)
            else:
                if os.environ.get("BENCH_CLASSIC") != "0":
                    build_tcp_raw()
                    raw_before = [tcp_raw() for _ in range(2)]
                    log(f"raw TCP: {', '.join(units.gb_s(x['gb_per_s']) for x in raw_before)}")
                    res["throughput_1g_incompressible"] = case_throughput(work, raw_before)
                    res["idle_1g"] = case_idle(work)
                    res["busy_64m_in_512m"] = case_busy(work)
                    more = [x for x in env_list("BENCH_BUSY_SIZES", "") if x != "512M"]
                    if more:
                        res["busy_64m_by_size"] = {m: case_busy(work, m) for m in more}
                    if os.environ.get("BENCH_NO_TLS") != "1":
                        res["tls_1g_incompressible"] = case_tls(work)
                res["scenarios"] = case_scenarios(work, links, res["ceiling"], channels, names)
                if os.environ.get("BENCH_POSTCOPY") != "0":
                    res["postcopy"] = case_postcopy(work, env_list("BENCH_POSTCOPY_SIZES",
                                                                   ",".join(PC_SIZES)))
                    log("post-copy:\n" + postcopy_table(res["postcopy"]))
        res["host"]["loadavg_at_end"] = ceiling.loadavg()
        res["host"]["other_vmm_processes_at_end"] = other_vmms()
        res["elapsed_s"] = round(time.monotonic() - t_start, 1)
        print(json.dumps(res, indent=2))
        if "throughput_1g_incompressible" in res:
            print(table(res))
        out = os.environ.get("BENCH_OUT_MIGRATION")
        if out:
            with open(out, "w") as f:
                json.dump(res, f, indent=2)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt as e:
        # Ctrl-C or SIGTERM (netlinks.Links turns it into this): every
        # link and process of this run is gone by now.
        print(f"interrupted ({str(e) or 'Ctrl-C'}): links torn down, nothing measured kept",
              file=sys.stderr)
        sys.exit(130)
