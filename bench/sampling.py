"""What a migration benchmark samples while a migration runs, the same way
for Ferry and for QEMU (bench/migration.py):

- the timeline: query-migrate polled every 10 ms (bytes sent, dirty-sync
  count, dirty rate), turned into rounds (timeline_rounds);
- host cost: CPU seconds of each process from /proc (all threads, and
  without the guest's vCPU threads, which spin whatever happens), and
  resident memory beyond guest RAM (ferry_proc.vmm_overhead_kib);
- guest slowdown: the guest's own count of pages written, as its progress
  reports (one a second) arrive, timestamped by the host when first seen:
  the write rate across the migration against the rate before it.
"""
import os
import threading
import time

_TICK = os.sysconf("SC_CLK_TCK")


def proc_cpu(pid):
    """(all threads, without vCPU threads) CPU seconds of a process, or None.

    The process's own line counts threads that have exited too (a ferry
    destination's receiving thread ends with the migration, and summing
    the live threads alone read 0.0 for it); the vCPU threads, which
    live as long as the VM, are summed from the task list.
    vCPU threads: ferry names them "vcpuN", QEMU "CPU N/KVM" (or /TCG)."""
    try:
        total = _stat_cpu(f"/proc/{pid}/stat")
        tids = os.listdir(f"/proc/{pid}/task")
    except (OSError, ValueError):
        return None
    vcpu = 0.0
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/comm") as f:
                comm = f.read().strip()
            if comm.startswith("vcpu") or comm.startswith("CPU "):
                vcpu += _stat_cpu(f"/proc/{pid}/task/{tid}/stat")
        except (OSError, ValueError):
            continue
    return total, total - vcpu


def _stat_cpu(path):
    """utime + stime of a /proc stat file, in seconds."""
    with open(path) as f:
        s = f.read()
    fields = s.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICK


class CostMeter:
    """CPU of a set of processes between start() and the last sample(), and
    the largest resident memory beyond guest RAM seen in any sample.

    A process that exits keeps its last sampled figures (a ferry source
    exits right after a migration)."""

    def __init__(self, procs, guest_bytes, overhead_kib):
        self.procs = dict(procs)   # role -> pid
        self.guest_bytes = guest_bytes
        self.overhead_kib = overhead_kib
        self.cpu0 = {}
        self.cpu = {}
        self.rss = {}

    def start(self):
        for role, pid in self.procs.items():
            self.cpu0[role] = proc_cpu(pid) or (0.0, 0.0)
            self.cpu[role] = self.cpu0[role]

    def sample(self, rss=False):
        for role, pid in self.procs.items():
            c = proc_cpu(pid)
            if c:
                self.cpu[role] = c
            if rss:
                try:
                    over, _ = self.overhead_kib(pid, self.guest_bytes)
                    self.rss[role] = max(self.rss.get(role, 0), over)
                except (OSError, ValueError):
                    pass

    def result(self):
        out = {}
        for role in self.procs:
            a, b = self.cpu0.get(role, (0, 0)), self.cpu.get(role, (0, 0))
            out[role] = {"cpu_s": round(b[0] - a[0], 2),
                         "cpu_s_without_vcpus": round(b[1] - a[1], 2),
                         "rss_beyond_guest_mib": (round(self.rss[role] / 1024, 1)
                                                  if role in self.rss else None)}
        return out


class GuestRate(threading.Thread):
    """Polls read() every 50 ms; read() returns (side, report_no, pages) of
    the guest's latest progress report, or None.  A new (side, report_no)
    is a new sample, timestamped with the host's clock."""

    def __init__(self, read, period=0.05):
        super().__init__(daemon=True)
        self.read = read
        self.period = period
        self.samples = []      # (host monotonic time, side, pages)
        self._halt = threading.Event()
        self._last = None

    def run(self):
        while not self._halt.is_set():
            try:
                v = self.read()
            except Exception:  # a process going away mid-read
                v = None
            if v and (v[0], v[1]) != self._last:
                self._last = (v[0], v[1])
                self.samples.append((time.monotonic(), v[0], v[2]))
            self._halt.wait(self.period)

    def stop(self):
        self._halt.set()
        self.join(timeout=2)

    def wait_after(self, side, t, timeout):
        """Wait until a sample from `side` taken at or after time t exists."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if any(s[1] == side and s[0] >= t for s in self.samples):
                return True
            time.sleep(0.05)
        return False


def slowdown(samples, t0, t1, after_s=1.0):
    """The guest's page-write rate across a migration against before it.

    samples: (host time, side, pages) from GuestRate.  Before: the slope of
    the last two source samples taken before t0.  Across: from the last of
    those to the first destination sample taken at least after_s after t1
    (the migration's end), so the window holds the whole migration and
    the pause.  Granularity: the guest reports once a second and the host
    sees a report within 50 ms.

    >>> s = [(0.0, "src", 0), (1.0, "src", 100), (2.0, "src", 200), (5.0, "dst", 400)]
    >>> r = slowdown(s, 2.5, 3.5)
    >>> (r["rate_before_pages_s"], r["rate_across_pages_s"], r["slowdown"])
    (100.0, 66.7, 0.333)
    >>> slowdown(s[:1] + s[3:], 2.5, 3.5) is None
    True
    """
    before = [s for s in samples if s[1] == "src" and s[0] <= t0]
    after = [s for s in samples if s[1] == "dst" and s[0] >= t1 + after_s]
    if len(before) < 2 or not after:
        return None
    (ta, _, pa), (tb, _, pb) = before[-2], before[-1]
    tc, _, pc = after[0]
    if tb <= ta or tc <= tb:
        return None
    rb = (pb - pa) / (tb - ta)
    rc = (pc - pb) / (tc - tb)
    return {"rate_before_pages_s": round(rb, 1), "rate_across_pages_s": round(rc, 1),
            "window_s": round(tc - tb, 2),
            "slowdown": round(1 - rc / rb, 3) if rb > 0 else None}


def migrate_sample(st, t_ms):
    """The few query-migrate fields a timeline needs (Ferry and QEMU alike)."""
    ram = st.get("ram") or {}
    return {"t_ms": round(t_ms, 1), "status": st.get("status"),
            "transferred": ram.get("transferred"),
            "sync": ram.get("dirty-sync-count"),
            "dirty_pages_rate": ram.get("dirty-pages-rate"),
            "remaining": ram.get("remaining")}


def timeline_rounds(samples):
    """Rounds from polled samples: a round ends where dirty-sync-count
    moves on.  Each: {"round", "start_ms", "end_ms", "bytes", "dirty_pages_rate"}
    (the rate QEMU or Ferry reported during the round, pages/s).

    >>> s = [{"t_ms": 0, "transferred": 0, "sync": 1, "dirty_pages_rate": 0},
    ...      {"t_ms": 10, "transferred": 500, "sync": 1, "dirty_pages_rate": 0},
    ...      {"t_ms": 20, "transferred": 900, "sync": 2, "dirty_pages_rate": 50},
    ...      {"t_ms": 30, "transferred": 950, "sync": 2, "dirty_pages_rate": 40}]
    >>> [(r["round"], r["start_ms"], r["end_ms"], r["bytes"]) for r in timeline_rounds(s)]
    [(1, 0, 20, 900), (2, 20, 30, 50)]
    """
    rounds = []
    for s in samples:
        if s.get("transferred") is None or s.get("sync") is None:
            continue
        if not rounds or rounds[-1]["round"] != s["sync"]:
            # Bytes seen at the first sample of a round were mostly sent
            # before the sync: they count for the round that ended.
            b0 = 0
            if rounds:
                prev = rounds[-1]
                prev["end_ms"] = s["t_ms"]
                prev["bytes"] = s["transferred"] - prev["_b0"]
                b0 = s["transferred"]
            rounds.append({"round": s["sync"], "start_ms": s["t_ms"], "_b0": b0,
                           "dirty_pages_rate": None})
        r = rounds[-1]
        r["end_ms"] = s["t_ms"]
        r["bytes"] = s["transferred"] - r["_b0"]
        if s.get("dirty_pages_rate"):
            r["dirty_pages_rate"] = s["dirty_pages_rate"]
    for r in rounds:
        del r["_b0"]
    return rounds


if __name__ == "__main__":
    import doctest
    import sys
    sys.exit(doctest.testmod().failed)
