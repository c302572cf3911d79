"""Start ferry processes and talk to their control sockets (bench helpers)."""
import json
import os
import socket
import subprocess
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FERRY = os.environ.get("FERRY", os.path.join(ROOT, "build", "ferry"))
GUEST = os.environ.get("FERRY_GUEST", os.path.join(ROOT, "build", "guests", "testguest.elf"))


def qmp(sock_path, execute, arguments=None, timeout=120):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    s.connect(sock_path)
    f = s.makefile("rwb")
    f.readline()  # greeting
    req = {"execute": execute}
    if arguments is not None:
        req["arguments"] = arguments
    f.write((json.dumps(req) + "\n").encode())
    f.flush()
    reply = json.loads(f.readline())
    s.close()
    if "error" in reply:
        raise RuntimeError(f"{execute}: {reply['error']['desc']}")
    return reply["return"]


def wait_socket(path, timeout=30):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if os.path.exists(path):
            try:
                qmp(path, "query-status", timeout=5)
                return
            except OSError:
                pass
        time.sleep(0.005)
    raise TimeoutError(f"control socket {path} did not come up")


def wait_guest(sock_path, pred, timeout=120):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        g = qmp(sock_path, "query-vm")["guest"]
        if pred(g):
            return g
        time.sleep(0.05)
    raise TimeoutError("guest condition not reached")


def start(args, workdir, name, wrap=None):
    """`ferry run ARGS`, stderr to WORKDIR/NAME.stderr.  wrap(argv) -> argv
    runs it elsewhere, e.g. in a network namespace (netlinks.Link.exec_a);
    the command must exec in place, so that the pid is ferry's own."""
    log = open(os.path.join(workdir, name + ".stderr"), "w")
    argv = [FERRY, "run"] + args
    return subprocess.Popen(wrap(argv) if wrap else argv, stdout=subprocess.DEVNULL,
                            stderr=log, stdin=subprocess.DEVNULL)


def stop(proc, sock_path):
    try:
        qmp(sock_path, "quit", timeout=10)
    except (OSError, RuntimeError):
        pass
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def vmm_overhead_kib(pid, guest_bytes):
    """Resident memory of the process outside the guest-RAM mappings."""
    total = 0
    guest = 0
    cur_size = 0
    with open(f"/proc/{pid}/smaps") as f:
        for line in f:
            parts = line.split()
            if "-" in parts[0] and len(parts) >= 5 and ":" not in parts[0]:
                lo, hi = (int(x, 16) for x in parts[0].split("-"))
                cur_size = hi - lo
            elif parts[0] == "Rss:":
                kib = int(parts[1])
                total += kib
                # Guest RAM: the big mappings whose sizes make up its slots.
                if cur_size >= min(guest_bytes, 3 << 30) or cur_size == guest_bytes - (3 << 30):
                    guest += kib
    return total - guest, guest


def verify_on(cmdline):
    return "verify=1" in cmdline.split()


def verification(sock_path, cmdline, timeout=120):
    """The moved or restored guest's own verdict after a full pass there.

    Only claims anything when the guest verifies (verify=1) and has
    completed a full pass over all its pages that started after it noticed
    its latest move: query-vm guest.verified-resume-generation has reached
    guest.resume-generation (>= 1; the VMM that loaded the state bumped it,
    include/guest_abi.h).  Then "errors" is the guest's own count as it
    reported it at the end of that pass.  Otherwise says why not.
    """
    if not verify_on(cmdline):
        return {"checked": False, "why": "the guest runs with verify=0"}
    t0 = time.monotonic()
    while True:
        g = qmp(sock_path, "query-vm")["guest"]
        gen = g.get("resume-generation")
        if gen is None:
            return {"checked": False,
                    "why": "this ferry reports no resume generation"}
        if gen < 1:
            return {"checked": False,
                    "why": "resume generation 0: the VM was not moved or restored"}
        if g.get("verified-resume-generation", 0) >= gen:
            return {"checked": True, "errors": g.get("errors"),
                    "asserts": g.get("asserts"), "resume_generation": gen,
                    "checks_done": g.get("checks-done"),
                    "wait_ms": round((time.monotonic() - t0) * 1000)}
        if time.monotonic() - t0 > timeout:
            return {"checked": False,
                    "why": f"no full pass completed there within {timeout} s"}
        time.sleep(0.05)


def verification_claim(runs, key="verification"):
    """One honest sentence about the runs' verification results.

    "verification errors N" only when every run was checked (see
    verification()); otherwise "not checked" with the reasons, and errors
    found in the runs that were checked are never hidden.
    """
    vs = [r.get(key) or {"checked": False, "why": "no result"} for r in runs]
    checked = [v for v in vs if v.get("checked")]
    whys = "; ".join(sorted({v.get("why", "?") for v in vs if not v.get("checked")}))
    if not vs:
        return "verification: not checked (no runs)"
    if not checked:
        return f"verification: not checked ({whys})"
    errs = sum(v.get("errors") or 0 for v in checked)
    if len(checked) < len(vs):
        return (f"verification errors {errs} in the {len(checked)} of {len(vs)} runs "
                f"checked; the others not checked ({whys})")
    return (f"verification errors {errs} ({len(vs)} run(s), each the destination's "
            f"own count after a full pass there)")
