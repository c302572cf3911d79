#!/usr/bin/python3
"""Foundation benchmarks (reported, never asserted):

1. time from `ferry run` to the guest's first heartbeat (outside observer);
2. snapshot save and restore of a 1 GiB guest, untouched and full of
   incompressible data, next to this machine's file-write bandwidth;
3. the VMM's own resident memory beyond guest RAM.
"""
import json
import os
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ferry_proc as fp  # noqa: E402
from observer import HeartbeatObserver  # noqa: E402

GIB = 1 << 30


def boot_to_heartbeat(work, runs=5):
    times = []
    for i in range(runs):
        obs = HeartbeatObserver(os.path.join(work, f"hb{i}.sock"))
        ctl = os.path.join(work, f"boot{i}.sock")
        t0 = time.monotonic()
        p = fp.start(["--kernel", fp.GUEST, "--memory", "512M", "--serial", "none",
                      "--cmdline", "workload=idle", "--heartbeat", "unix:" + obs.path,
                      "--control", ctl], work, f"boot{i}")
        t1 = obs.first_after(t0)
        times.append((t1 - t0) * 1000 if t1 else float("nan"))
        fp.stop(p, ctl)
        obs.close()
    return times


def file_write_bandwidth(work, size=GIB):
    """The roofline for a snapshot: writing `size` bytes to a new file here."""
    buf = os.urandom(4 << 20)
    path = os.path.join(work, "roofline.bin")
    t0 = time.monotonic()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    for _ in range(size // len(buf)):
        os.write(fd, buf)
    os.close(fd)
    dt = time.monotonic() - t0
    os.unlink(path)
    return size / dt


def snapshot_case(work, name, cmdline, ready):
    obs = HeartbeatObserver(os.path.join(work, name + "-hb.sock"))
    ctl = os.path.join(work, name + ".sock")
    snap = os.path.join(work, name + ".snap")
    p = fp.start(["--kernel", fp.GUEST, "--memory", "1G", "--serial", "none",
                  "--cmdline", cmdline, "--heartbeat", "unix:" + obs.path,
                  "--control", ctl], work, name)
    fp.wait_socket(ctl)
    fp.wait_guest(ctl, ready, timeout=180)
    overhead, guest_rss = fp.vmm_overhead_kib(p.pid, GIB)
    t0 = time.monotonic()
    fp.qmp(ctl, "snapshot-save", {"path": snap})
    save_s = time.monotonic() - t0
    fp.stop(p, ctl)
    st = os.stat(snap)
    on_disk = st.st_blocks * 512

    ctl2 = os.path.join(work, name + "-r.sock")
    t0 = time.monotonic()
    p2 = fp.start(["--restore", snap, "--serial", "none", "--heartbeat",
                   "unix:" + obs.path, "--control", ctl2], work, name + "-restore")
    t1 = obs.first_after(t0)
    restore_s = (t1 - t0) if t1 else float("nan")
    fp.wait_socket(ctl2)
    # Counters read at once would only repeat what the snapshot held: ask
    # for the restored guest's own full pass (ferry_proc.verification).
    verification = fp.verification(ctl2, cmdline)
    fp.stop(p2, ctl2)
    obs.close()
    os.unlink(snap)
    return {"save_ms": save_s * 1000, "restore_to_heartbeat_ms": restore_s * 1000,
            "file_on_disk_mib": on_disk / (1 << 20),
            "save_mb_s": on_disk / save_s / 1e6 if save_s else 0,
            "vmm_overhead_mib": overhead / 1024, "guest_rss_mib": guest_rss / 1024,
            "verification_after_restore": verification,
            "verification": fp.verification_claim([{"verification": verification}])}


def main():
    work = tempfile.mkdtemp(prefix="ferry-bench-")
    try:
        res = {}
        b = boot_to_heartbeat(work)
        res["boot_to_first_heartbeat_ms"] = {"runs": [round(x, 1) for x in b],
                                             "median": round(sorted(b)[len(b) // 2], 1)}
        res["file_write_roofline_mb_s"] = round(file_write_bandwidth(work) / 1e6)
        res["snapshot_1g_untouched"] = snapshot_case(
            work, "idle", "workload=idle", lambda g: g.get("ready"))
        res["snapshot_1g_incompressible"] = snapshot_case(
            work, "full", "workload=dirty wss=960M fill=random verify=1 rate=1",
            lambda g: g.get("ready") and g.get("pages-written", 0) > 0)
        full = res["snapshot_1g_incompressible"]
        full["save_vs_roofline"] = round(full["save_mb_s"] / res["file_write_roofline_mb_s"], 2)
        print(json.dumps(res, indent=2, default=lambda x: round(x, 1)))
        out = os.environ.get("BENCH_OUT")
        if out:
            with open(out, "w") as f:
                json.dump(res, f, indent=2, default=lambda x: round(x, 1))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
