"""Links for the benchmarks: loopback, or two network namespaces joined by
a veth pair, shaped with `tbf` (token bucket) or unshaped.

    with netlinks.Links(["loopback", "1gbit", "10gbit"]) as links:
        for link in links:
            recv = subprocess.Popen(link.exec_b(["build/bench/tcp_ceiling", ...]))
            send = subprocess.Popen(link.exec_a([..., link.addr_b, ...]))

Side A is where a migration's source runs, side B its destination; B is
reached at `link.addr_b` from A.  For "loopback" both sides are this
host's own network stack and the commands run unchanged.

These machines have no `netem` (PLATFORM.md): a link has a rate, never
delay or loss.  `tbf` shapes each end's egress to the link's rate; the
burst is 2 ms of the rate (at least 128 KiB, so that one 64 KiB GSO
segment always fits) and the queue holds 10 ms more.

Namespaces and veth pairs need root (CAP_SYS_ADMIN, CAP_NET_ADMIN); Links
says so with NeedRoot before it creates anything.  Every name carries
this process's pid and a counter, so parallel runs never collide.  What
was created is removed on leaving the `with` block, on an exception, on
Ctrl-C (SIGINT) and SIGTERM (raised as KeyboardInterrupt / SystemExit so
that the `with` unwinds), and at interpreter exit as a last resort.
Deleting a namespace deletes the veth end inside it, and with it the pair.
"""
import atexit
import itertools
import os
import signal
import subprocess
import sys

IP = "/usr/sbin/ip" if os.path.exists("/usr/sbin/ip") else "ip"
TC = "/usr/sbin/tc" if os.path.exists("/usr/sbin/tc") else "tc"

# name -> rate in bit/s (None: unshaped veth; 0: loopback, no namespaces)
KINDS = {"loopback": 0, "veth": None, "1gbit": 10**9, "10gbit": 10**10}

_counter = itertools.count()
_live = set()          # namespaces this process created and not yet deleted


class NeedRoot(RuntimeError):
    pass


def can_make_namespaces():
    """(True, None) or (False, why): whether namespaces can be made here."""
    if os.geteuid() != 0:
        return False, "network namespaces need root (run as root, or use the loopback link only)"
    for tool in (IP, TC):
        if subprocess.run(["sh", "-c", f"command -v {tool}"], capture_output=True).returncode:
            return False, f"{tool} is missing (Debian package iproute2)"
    return True, None


def _run(argv):
    r = subprocess.run(argv, capture_output=True, text=True)
    if r.returncode:
        raise RuntimeError(f"{' '.join(argv)}: {r.stderr.strip() or r.returncode}")
    return r.stdout


def _delete_ns(ns):
    subprocess.run([IP, "netns", "del", ns], capture_output=True)
    _live.discard(ns)


@atexit.register
def _cleanup_all():
    for ns in list(_live):
        _delete_ns(ns)


class Link:
    """One link: loopback, or namespaces ns_a and ns_b joined by veth."""

    def __init__(self, kind):
        if kind not in KINDS:
            raise ValueError(f"unknown link {kind!r}: one of {', '.join(KINDS)}")
        self.kind = kind
        self.rate_bps = KINDS[kind]
        self.ns_a = self.ns_b = None
        self.addr_a = self.addr_b = "127.0.0.1"
        self.shaping = None

    @property
    def namespaced(self):
        return self.rate_bps != 0

    def describe(self):
        if not self.namespaced:
            return {"link": self.kind, "what": "this host's loopback (lo), no shaping"}
        return {"link": self.kind,
                "what": "veth pair between two network namespaces, MTU 1500",
                "shaping": self.shaping or "none",
                "namespaces": [self.ns_a, self.ns_b]}

    def up(self):
        if not self.namespaced:
            return self
        ok, why = can_make_namespaces()
        if not ok:
            raise NeedRoot(why)
        n = next(_counter)
        tag = f"fb{os.getpid()}x{n}"
        self.ns_a, self.ns_b = tag + "a", tag + "b"
        va, vb = tag + "va", tag + "vb"      # <= 15 characters for pid < 10^7
        # Registered before creation: a failure half-way still cleans up.
        _live.update((self.ns_a, self.ns_b))
        _run([IP, "netns", "add", self.ns_a])
        _run([IP, "netns", "add", self.ns_b])
        # Both ends are made inside their namespaces: nothing ever appears
        # in the host's own namespace.
        _run([IP, "link", "add", va, "netns", self.ns_a, "type", "veth",
              "peer", "name", vb, "netns", self.ns_b])
        self.addr_a, self.addr_b = "10.231.0.1", "10.231.0.2"
        for ns, dev, addr in ((self.ns_a, va, self.addr_a), (self.ns_b, vb, self.addr_b)):
            _run([IP, "-n", ns, "addr", "add", addr + "/30", "dev", dev])
            _run([IP, "-n", ns, "link", "set", "lo", "up"])
            _run([IP, "-n", ns, "link", "set", dev, "up"])
            if self.rate_bps:
                rate = self.rate_bps
                burst = max(128 << 10, rate // 8 // 500)          # 2 ms
                self.shaping = (f"tbf rate {rate // 10**6} Mbit/s, burst {burst} B, "
                                "latency 10 ms, on both ends' egress")
                _run([TC, "-n", ns, "qdisc", "add", "dev", dev, "root", "tbf",
                      "rate", f"{rate}bit", "burst", str(burst), "latency", "10ms"])
        return self

    def down(self):
        for ns in (self.ns_a, self.ns_b):
            if ns:
                _delete_ns(ns)

    def exec_a(self, argv):
        """argv run on side A (the source's side)."""
        return self._exec(self.ns_a, argv)

    def exec_b(self, argv):
        """argv run on side B (the destination's side)."""
        return self._exec(self.ns_b, argv)

    def _exec(self, ns, argv):
        # `ip netns exec` enters the namespace and execs argv in place: the
        # pid Popen returns is the command's own (its /proc entries count).
        return [IP, "netns", "exec", ns] + list(argv) if ns else list(argv)

    def qdisc_stats(self):
        """tc's counters of the shaping qdisc on side A (sent, dropped ...)."""
        if not self.namespaced:
            return None
        return _run([TC, "-n", self.ns_a, "-s", "qdisc", "show"]).strip()


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


class Links:
    """Several links up at once, all torn down together (see the module)."""

    def __init__(self, kinds):
        self.links = [Link(k) for k in kinds]
        self._old = {}

    def __enter__(self):
        # SIGTERM unwinds like Ctrl-C, so `with` blocks clean up.
        for sig in (signal.SIGTERM, signal.SIGHUP):
            try:
                self._old[sig] = signal.signal(sig, _raise_interrupt)
            except (ValueError, OSError):  # not the main thread
                pass
        try:
            for link in self.links:
                link.up()
        except BaseException:
            self.__exit__(*sys.exc_info())
            raise
        return self.links

    def __exit__(self, *exc):
        for link in self.links:
            link.down()
        for sig, old in self._old.items():
            signal.signal(sig, old)
        self._old = {}
        return False


if __name__ == "__main__":
    # Self-check: make every kind, show it, check A reaches B, tear down.
    kinds = sys.argv[1:] or list(KINDS)
    with Links(kinds) as links:
        for link in links:
            print(link.describe())
            if link.namespaced:
                out = _run(link.exec_a([IP, "-br", "addr"]))
                print("  side A:", " ".join(out.split()))
                print("  qdisc A:", _run([TC, "-n", link.ns_a, "qdisc", "show"]).split("\n")[0])
        names = set(_live)
    left = [ns for ns in _run([IP, "netns", "list"]).split() if ns in names]
    assert not left, f"namespaces left behind: {left}"
    print("netlinks: ok, all torn down")
