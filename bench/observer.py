"""An outside observer of a guest's heartbeat.

The guest writes one byte per heartbeat (default every 1 ms) to port 0xe9;
ferry forwards it to a Unix socket this observer listens on.  The observer
timestamps arrivals with its own clock, so the longest gap is the time the
guest stood still as a user would see it, without trusting the VMM.
Several VMM processes may connect one after another (a migration's source
and destination); arrivals from all of them form one timeline.
"""
import os
import socket
import threading
import time


class HeartbeatObserver:
    def __init__(self, path):
        self.path = path
        if os.path.exists(path):
            os.unlink(path)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(path)
        self.sock.listen(8)
        self.lock = threading.Lock()
        self.arrivals = []  # (monotonic time, byte count)
        self.stop = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        self.sock.settimeout(0.2)
        while not self.stop:
            try:
                conn, _ = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            threading.Thread(target=self._read, args=(conn,), daemon=True).start()

    def _read(self, conn):
        with conn:
            while not self.stop:
                data = conn.recv(65536)
                if not data:
                    return
                now = time.monotonic()
                with self.lock:
                    self.arrivals.append((now, len(data)))

    def first_after(self, t0, timeout=30.0):
        """Monotonic time of the first heartbeat at or after t0."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            with self.lock:
                for t, _ in self.arrivals:
                    if t >= t0:
                        return t
            time.sleep(0.0002)
        return None

    def count(self):
        with self.lock:
            return sum(n for _, n in self.arrivals)

    def max_gap(self, t_from, t_to):
        with self.lock:
            ts = [t for t, _ in self.arrivals if t_from <= t <= t_to]
        gaps = [b - a for a, b in zip(ts, ts[1:])]
        return max(gaps) if gaps else None

    def close(self):
        self.stop = True
        self.sock.close()
        if os.path.exists(self.path):
            os.unlink(self.path)
