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

Every run also reports the heartbeat sequence (beats lost, repeats: see
bench/observer.py) and a verification result: "verification errors N" only
when the guest verifies and the destination has completed a full pass of
its own after the move (ferry: its resume generation; QEMU: its console),
otherwise "verification: not checked" with the reason.

Environment: BENCH_REPEATS (3), BENCH_NO_QEMU=1 (skip QEMU), BENCH_NO_TLS=1
(skip 4), BENCH_OUT
(write the JSON there too), FERRY, FERRY_GUEST, QEMU, BENCH_QEMU_TCG=1 (QEMU
without -enable-kvm: a slow dry run of the QEMU path on a machine without
KVM; its figures mean nothing).
"""
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ferry_proc as fp  # noqa: E402
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


def kill(proc):
    if proc and proc.poll() is None:
        proc.kill()
        proc.wait()


def host_info():
    info = {"cpus": os.cpu_count()}
    try:
        with open("/proc/loadavg") as f:
            info["loadavg_at_start"] = f.read().split()[:3]
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

def ferry_migration(work, name, memory, vcpus, cmdline, ready, extra=()):
    """Boot a guest, migrate it to a second ferry over loopback, return figures.
    extra: options both ferries get (--tls-creds DIR, --tls-psk FILE)."""
    obs = HeartbeatObserver(os.path.join(work, name + "-hb.sock"))
    sctl = os.path.join(work, name + "-src.sock")
    dctl = os.path.join(work, name + "-dst.sock")
    src = dst = None
    try:
        src = fp.start(["--kernel", fp.GUEST, "--memory", memory, "--vcpus", str(vcpus),
                        "--serial", "none", "--cmdline", cmdline,
                        "--heartbeat", "unix:" + obs.path, "--control", sctl] + list(extra),
                       work, name + "-src")
        dst = fp.start(["--incoming", "tcp:127.0.0.1:0", "--serial", "none",
                        "--heartbeat", "unix:" + obs.path, "--control", dctl] + list(extra),
                       work, name + "-dst")
        derr = os.path.join(work, name + "-dst.stderr")

        def dst_port():
            with open(derr) as f:
                for line in f:
                    if "waiting for an incoming migration on" in line:
                        return int(line.rsplit(":", 1)[1])
            return None
        port = wait_for(dst_port, 30, "destination did not listen")
        fp.wait_socket(sctl)
        fp.wait_guest(sctl, ready, timeout=180)
        time.sleep(SETTLE_S)

        q = Qmp(sctl)
        q.cmd("migrate-set-parameters", {"downtime-limit": DOWNTIME_MS, "max-bandwidth": 0})
        cpu0 = (thread_cpu(src.pid), thread_cpu(dst.pid))
        t0 = time.monotonic()
        q.cmd("migrate", {"uri": f"tcp:127.0.0.1:{port}"})
        st = None
        while True:
            st = q.cmd("query-migrate")
            if st["status"] in ("completed", "failed", "cancelled"):
                break
            if time.monotonic() - t0 > 120:
                raise TimeoutError("ferry migration did not finish in 120 s")
            time.sleep(POLL_S)
        t1 = time.monotonic()
        cpu1 = (thread_cpu(src.pid), thread_cpu(dst.pid))
        q.close()
        if st["status"] != "completed":
            raise RuntimeError(f"ferry migration {st['status']}: {st.get('error-desc')}")
        # The guest runs at the destination once its heartbeats arrive again.
        resumed = obs.first_after(t1, timeout=10)
        time.sleep(0.3)
        gap = obs.max_gap(t0, time.monotonic())
        fp.wait_socket(dctl)
        g = fp.qmp(dctl, "query-vm")
        try:
            src.wait(timeout=15)
        except subprocess.TimeoutExpired:
            pass
        # After the figures: the destination's own check of all its pages.
        verification = fp.verification(dctl, cmdline)
        hb = obs.check()
        if hb["repeats"]:
            log(f"{name}: HEARTBEAT REPEATS: {hb['repeats']} (the guest ran twice "
                "from the same state)")
        rounds = st.get("ferry", {}).get("rounds", [])
        r0 = rounds[0] if rounds else {}
        return {
            "total_ms": st.get("total-time"),
            "setup_ms": st.get("setup-time"),
            # query-migrate's "downtime" is whole ms; ferry also gives us.
            "downtime_ms": (st["ferry"]["downtime-us"] / 1000
                            if st.get("ferry", {}).get("downtime-us") is not None
                            else st.get("downtime")),
            "observer_gap_ms": round(gap * 1000, 1) if gap else None,
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
        }
    finally:
        if dst is not None:
            fp.stop(dst, dctl)
        kill(src)
        obs.close()


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


def qemu_migration(work, name, memory="512M", cmdline=BUSY_CMDLINE):
    obs = HeartbeatObserver(os.path.join(work, name + "-hb.sock"))
    port = free_port()
    procs = []
    qs = qd = None
    try:
        for role, inc in (("src", None), ("dst", f"tcp:127.0.0.1:{port}")):
            n = f"{name}-{role}"
            err = open(os.path.join(work, n + ".stderr"), "w")
            procs.append(subprocess.Popen(qemu_args(work, n, obs.path, inc, memory, cmdline),
                                          stdin=subprocess.DEVNULL,
                                          stdout=subprocess.DEVNULL, stderr=err))
        serial = os.path.join(work, name + "-src.serial")

        def ready():
            for p in procs:
                if p.poll() is not None:
                    raise RuntimeError(f"qemu exited with {p.returncode}")
            return file_has(serial, "READY\n")
        wait_for(ready, 240, "QEMU guest did not reach READY", period=0.05)
        time.sleep(SETTLE_S)
        qs = Qmp(os.path.join(work, name + "-src.qmp"))
        qd = Qmp(os.path.join(work, name + "-dst.qmp"))
        qs.cmd("migrate-set-parameters", {"max-bandwidth": QEMU_MAX_BW,
                                          "downtime-limit": DOWNTIME_MS})
        t0 = time.monotonic()
        qs.cmd("migrate", {"uri": f"tcp:127.0.0.1:{port}"})
        while True:
            st = qs.cmd("query-migrate")
            if st.get("status") in ("completed", "failed", "cancelled"):
                break
            if time.monotonic() - t0 > 120:
                raise TimeoutError("QEMU migration did not finish in 120 s")
            time.sleep(POLL_S)
        t1 = time.monotonic()
        if st["status"] != "completed":
            raise RuntimeError(f"QEMU migration {st['status']}: {st.get('error-desc')}")
        resumed = obs.first_after(t1, timeout=10)
        time.sleep(0.3)
        gap = obs.max_gap(t0, time.monotonic())
        dst_status = qd.cmd("query-status").get("status")
        verification = qemu_verification(os.path.join(work, name + "-dst.serial"), cmdline)
        hb = obs.check()
        if hb["repeats"]:
            log(f"{name}: HEARTBEAT REPEATS: {hb['repeats']} (the guest ran twice "
                "from the same state)")
        ram = st.get("ram", {})
        return {
            "total_ms": st.get("total-time"),
            "setup_ms": st.get("setup-time"),
            "downtime_ms": st.get("downtime"),
            "observer_gap_ms": round(gap * 1000, 1) if gap else None,
            "resumed_seen": resumed is not None,
            "wire_bytes": ram.get("transferred"),
            "ram_normal_bytes": ram.get("normal-bytes"),
            "zero_pages": ram.get("duplicate"),
            "rounds": ram.get("dirty-sync-count"),
            "dst_status": dst_status,
            "verification": verification,
            "heartbeat_seq": {k: hb[k] for k in ("beats", "gaps", "lost", "repeats")},
            "mbps": ram.get("mbps"),
        }
    finally:
        for q in (qs, qd):
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


def case_busy(work):
    keys = ["total_ms", "downtime_ms", "observer_gap_ms", "wire_bytes", "rounds"]
    ferry, qemu = [], []
    use_qemu = os.environ.get("BENCH_NO_QEMU") != "1" and shutil.which(QEMU)
    for i in range(REPEATS):  # alternate, so that a noisy spell hits both
        r = ferry_migration(work, f"busy{i}", "512M", 1, BUSY_CMDLINE, lambda g: g.get("ready"))
        ferry.append(r)
        log(f"busy ferry {i}: {times(r)}, {units.size(r['wire_bytes'])}, "
            f"{r['rounds']} rounds")
        if use_qemu:
            r = qemu_migration(work, f"qemu{i}")
            qemu.append(r)
            log(f"busy qemu {i}: {times(r)}, {units.size(r['wire_bytes'])}, "
                f"{r['rounds']} rounds")
    res = {"guest": f"512M, 1 vCPU, cmdline '{BUSY_CMDLINE}'",
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
    b = res["busy_64m_in_512m"]
    for who in ("ferry", "qemu"):
        if who in b:
            m = b[who]["median"]
            rows.append((f"64M busy in 512M, {who}: total / downtime / observer", times(m),
                         f"{units.size(m['wire_bytes'])}, {m['rounds']:.0f} rounds"))
            rows.append((f"  {who} verification", "", b[who]["verification"]))
            rows.append((f"  {who} heartbeat", "", b[who]["heartbeat_seq"]))
    if "ferry_vs_qemu" in b:
        r = b["ferry_vs_qemu"]
        rows.append(("  ferry / QEMU: total, downtime, observer gap, bytes",
                     f"{r['total']} {r['downtime']} {r['observer_gap']} {r['wire_bytes']}", ""))
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


def main():
    build_tcp_raw()
    work = tempfile.mkdtemp(prefix="ferry-mbench-")
    t_start = time.monotonic()
    try:
        res = {"host": host_info(), "repeats": REPEATS}
        raw_before = [tcp_raw() for _ in range(2)]
        log(f"raw TCP: {', '.join(units.gb_s(x['gb_per_s']) for x in raw_before)}")
        res["throughput_1g_incompressible"] = case_throughput(work, raw_before)
        res["idle_1g"] = case_idle(work)
        res["busy_64m_in_512m"] = case_busy(work)
        if os.environ.get("BENCH_NO_TLS") != "1":
            res["tls_1g_incompressible"] = case_tls(work)
        with open("/proc/loadavg") as f:
            res["host"]["loadavg_at_end"] = f.read().split()[:3]
        res["host"]["other_vmm_processes_at_end"] = other_vmms()
        res["elapsed_s"] = round(time.monotonic() - t_start, 1)
        print(json.dumps(res, indent=2))
        print(table(res))
        out = os.environ.get("BENCH_OUT_MIGRATION")
        if out:
            with open(out, "w") as f:
                json.dump(res, f, indent=2)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
