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


def start(args, workdir, name):
    log = open(os.path.join(workdir, name + ".stderr"), "w")
    return subprocess.Popen([FERRY, "run"] + args, stdout=subprocess.DEVNULL,
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
