"""An outside observer of a guest's heartbeat.

The guest writes one byte per heartbeat (default every 1 ms) to port 0xe9:
its beat counter mod 256, so consecutive beats differ by exactly one
(include/guest_abi.h).  ferry forwards the bytes to a Unix socket this
observer listens on (QEMU does the same through isa-debugcon and a chardev
socket).  The observer timestamps arrivals with its own clock, so the
longest silence is the time the guest stood still as a user would see it,
without trusting the VMM.  Several VMM processes may connect one after
another or at once (a migration's source and destination); arrivals from
all of them form one timeline, in arrival order.

What the sequence says (the same rules as the integration harness,
tests/integration/harness/harness.h): for consecutive beats b0, b1,
d = (b1 - b0) mod 256:
  d == 1                  in sequence;
  2 <= d <= MAX_LOST + 1  a sequence gap: d - 1 beats lost on the way (the
                          guest never skips a number: the host dropped them);
  d == 0 or larger        a repeat: the counter went back, i.e. the guest
                          ran twice from the same state (two copies).
Downtime from outside: the longest interval between the arrivals of two
consecutive beats, in the observer's clock; it includes one beat period.
A paused guest shows as one such silence with the sequence intact (late
beats are skipped, not numbered).

The observer reads in a process of its own, at real-time priority where
it may (SCHED_FIFO, else nice -10): a beat is timed when it is read, and
on a 2-core host whose cores the guest and the VMM keep busy, a reader
thread in the bench's own process (sharing the interpreter's lock with its
other threads) was found reading 5-10 beats at once after a silence of as
many milliseconds: the guest had not stopped, the reader had.  A read of k
beats after a silence is kept in the figures (k, for each listed gap).
"""
import os
import selectors
import socket
import subprocess
import sys
import threading
import time

MAX_LOST = 127


def scan(seq, times=None):
    """Check a heartbeat sequence (bytes) with optional arrival times.

    Returns a dict: beats, gaps (places with lost beats), lost (beats
    lost), repeats (places where the counter went back), max_gap_s (longest
    silence, None without times or with fewer than 2 beats), max_gap_end
    (arrival time of the beat that ended it), first_bad (index of the first
    beat out of sequence, or None).

    >>> r = scan(bytes([254, 255, 0, 1]))
    >>> (r["gaps"], r["repeats"], r["first_bad"])
    (0, 0, None)
    >>> r = scan(bytes([10, 11, 15, 16]))
    >>> (r["gaps"], r["lost"], r["repeats"], r["first_bad"])
    (1, 3, 0, 2)
    >>> r = scan(bytes([40, 41, 42, 41, 42, 42]))
    >>> (r["gaps"], r["repeats"], r["first_bad"])
    (0, 2, 3)
    >>> r = scan(bytes([1, 2, 3]), [0.0, 0.001, 0.501])
    >>> (round(r["max_gap_s"], 3), r["max_gap_end"])
    (0.5, 0.501)
    """
    r = {"beats": len(seq), "gaps": 0, "lost": 0, "repeats": 0,
         "max_gap_s": None, "max_gap_end": None, "first_bad": None}
    for i in range(1, len(seq)):
        if times is not None:
            g = times[i] - times[i - 1]
            if r["max_gap_s"] is None or g > r["max_gap_s"]:
                r["max_gap_s"], r["max_gap_end"] = g, times[i]
        d = (seq[i] - seq[i - 1]) & 0xff
        if d == 1:
            continue
        if r["first_bad"] is None:
            r["first_bad"] = i
        if 2 <= d <= MAX_LOST + 1:
            r["gaps"] += 1
            r["lost"] += d - 1
        else:
            r["repeats"] += 1
    return r


class HeartbeatObserver:
    def __init__(self, path):
        self.path = path
        if os.path.exists(path):
            os.unlink(path)
        self.lock = threading.Lock()
        self.times = []   # arrival time (monotonic) of every byte
        self.seq = bytearray()
        self.conn_of = []  # which connection (in accept order) each byte came on
        # Bound and listening before the constructor returns: a VMM
        # started next connects at once.  The reader process owns it.
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.bind(path)
        sock.listen(8)
        self.proc = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--serve",
                                      str(sock.fileno())],
                                     pass_fds=[sock.fileno()], stdout=subprocess.PIPE)
        sock.close()
        self._t = threading.Thread(target=self._collect, daemon=True)
        self._t.start()

    def _collect(self):
        """The reader's lines: connection, arrival (ns), bytes (hex)."""
        for line in self.proc.stdout:
            cid, t_ns, data = line.split()
            data = bytes.fromhex(data.decode())
            now = int(t_ns) / 1e9
            with self.lock:
                # Bytes read together arrived together.
                self.times.extend([now] * len(data))
                self.seq.extend(data)
                self.conn_of.extend([int(cid)] * len(data))

    def _window(self, t_from, t_to):
        with self.lock:
            idx = [i for i, t in enumerate(self.times) if t_from <= t <= t_to]
            return (bytes(self.seq[i] for i in idx), [self.times[i] for i in idx])

    def first_after(self, t0, timeout=30.0):
        """Monotonic time of the first heartbeat at or after t0."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            first = None
            with self.lock:
                # Arrivals are appended in (nearly) time order: walk back
                # from the newest to the first one before t0.
                for t in reversed(self.times):
                    if t < t0:
                        break
                    first = t
            if first is not None:
                return first
            time.sleep(0.0002)
        return None

    def count(self):
        with self.lock:
            return len(self.seq)

    def max_gap(self, t_from, t_to):
        """Longest silence (s) between two beats that arrived in the window."""
        return self.check(t_from, t_to)["max_gap_s"]

    def check(self, t_from=float("-inf"), t_to=float("inf")):
        """scan() of the beats that arrived in [t_from, t_to]."""
        seq, times = self._window(t_from, t_to)
        return scan(seq, times)

    def handover(self, t_from=float("-inf"), t_to=float("inf")):
        """The hand-over of a migration, from the beats of [t_from, t_to]:
        the silence from the source's last beat to the destination's first
        (the pause itself, as the guest's user sees it), apart from the
        longest silence anywhere in the window, which on a loaded host is
        often a stall of the source's vCPU thread in pre-copy, not the
        pause.  The source is the connection of the window's first beat;
        the destination, the first other connection with a beat.  Returns
        {"handover_gap_s", "handover_start", "longest_elsewhere_s"}, or None
        without a beat from a second connection.

        >>> o = HeartbeatObserver.__new__(HeartbeatObserver)
        >>> o.lock = threading.Lock()
        >>> o.times, o.seq, o.conn_of = [0.0, 0.001, 0.009, 0.010, 0.050], bytearray(5), [0, 0, 1, 1, 1]
        >>> h = o.handover(0.0, 1.0)
        >>> (round(h["handover_gap_s"], 3), h["handover_start"], round(h["longest_elsewhere_s"], 3))
        (0.008, 0.001, 0.04)
        """
        with self.lock:
            idx = [i for i, t in enumerate(self.times) if t_from <= t <= t_to]
            times = [self.times[i] for i in idx]
            conns = [self.conn_of[i] for i in idx]
        if not times:
            return None
        src = conns[0]
        first = next((k for k, c in enumerate(conns) if c != src), None)
        if first is None:
            return None
        # The source's output may still arrive after the destination's
        # first beat (it is drained at hand-over): the gap ends at the
        # destination's first beat and starts at the source's last before.
        before = [t for t, c in zip(times[:first], conns[:first]) if c == src]
        if not before:
            return None
        gap = times[first] - before[-1]
        rest = [b - a for a, b, ca, cb in zip(times, times[1:], conns, conns[1:])
                if ca == cb]
        return {"handover_gap_s": gap, "handover_start": before[-1],
                "longest_elsewhere_s": max(rest, default=0.0)}

    def close(self):
        if self.proc.poll() is None:
            self.proc.terminate()
        self.proc.wait()
        self._t.join(timeout=2)
        self.proc.stdout.close()
        if os.path.exists(self.path):
            os.unlink(self.path)


def serve(fd):
    """The reader process: accept on the listening socket @fd, read every
    connection, write "connection arrival_ns hex" per read to stdout."""
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(1))
    except (OSError, AttributeError):
        try:
            os.nice(-10)
        except OSError:
            pass
    try:
        import ctypes
        # Gone with the bench: PR_SET_PDEATHSIG, SIGTERM.
        ctypes.CDLL(None).prctl(1, 15)
    except (OSError, AttributeError):
        pass
    lsock = socket.socket(fileno=fd)
    sel = selectors.DefaultSelector()
    sel.register(lsock, selectors.EVENT_READ, None)
    out = os.fdopen(1, "wb", buffering=0)
    cids = 0
    while True:
        for key, _ in sel.select():
            if key.data is None:
                conn, _ = lsock.accept()
                sel.register(conn, selectors.EVENT_READ, cids)
                cids += 1
                continue
            try:
                data = key.fileobj.recv(65536)
            except OSError:
                data = b""
            now = time.monotonic_ns()
            if not data:
                sel.unregister(key.fileobj)
                key.fileobj.close()
                continue
            out.write(b"%d %d %s\n" % (key.data, now, data.hex().encode()))


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--serve":
        try:
            serve(int(sys.argv[2]))
        except (BrokenPipeError, KeyboardInterrupt):
            pass
        sys.exit(0)
    import doctest
    sys.exit(doctest.testmod().failed)
