"""A capture barrier: proof that the sniffer has caught up with everything sent so far.

The sniffer thread lags the wire by an unknown amount, so "the last step is done" does not mean
"its packets are in the capture". The harness sends itself one UDP datagram on loopback and
waits until the sniffer hands it over: a packet socket queues loopback packets in the order they
cross `lo`, so every packet that crossed before the marker (all the harness sent and received,
and every SUT packet that caused an answer it received) is captured by then. That replaces a
guessed quiet time with an exact, usually sub-millisecond, wait.

Only for captures that see loopback (`lo` or `any`) with the harness on a loopback address; the
marker is dropped by the collector and never reaches a timeline or a pcapng.
"""

from __future__ import annotations

import ipaddress
import os
import socket
import threading
import time

PREFIX = b"IMS-CONFORMANCE-CAPTURE-BARRIER "
PAYLOAD_LEN = 72  # longer than any link-layer minimum: the marker always ends the frame


class Barrier:
    def __init__(self, address: str, clock=time.monotonic):
        family = socket.AF_INET6 if ipaddress.ip_address(address).version == 6 else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_DGRAM)
        self.sock.bind((address, 0))
        self.sock.setblocking(False)  # our own markers are read back only to keep the buffer empty
        self.address, self.port = address, self.sock.getsockname()[1]
        self.tag = PREFIX + os.urandom(8).hex().encode() + b" "
        self.clock = clock
        self._sent = 0
        self._seen = 0
        self._cond = threading.Condition()

    @staticmethod
    def usable(address: str | None, interfaces: list[str]) -> bool:
        if not address or not interfaces or not set(interfaces) <= {"lo", "any"}:
            return False
        try:
            return ipaddress.ip_address(str(address).strip("[]")).is_loopback
        except ValueError:
            return False

    def bpf_clause(self) -> str:
        return f"(udp and dst host {self.address} and dst port {self.port})"

    def is_marker(self, frame: bytes) -> bool:
        """Called by the collector for every captured frame: cheap, one slice and a comparison."""
        tail = frame[-PAYLOAD_LEN:]
        if tail[:len(self.tag)] != self.tag:
            return False
        try:
            n = int(tail[len(self.tag):].rstrip(b" ."))
        except ValueError:
            return False
        with self._cond:
            if n > self._seen:
                self._seen = n
                self._cond.notify_all()
        return True

    def flush(self, timeout_s: float) -> bool:
        """Send a marker and wait until the sniffer saw it; False when it did not within the time."""
        with self._cond:
            self._sent += 1
            n = self._sent
        payload = (self.tag + str(n).encode()).ljust(PAYLOAD_LEN, b".")
        self._drain_own()
        try:
            self.sock.sendto(payload, (self.address, self.port))
        except OSError:
            return False
        deadline = self.clock() + max(0.0, timeout_s)
        with self._cond:
            while self._seen < n:
                left = deadline - self.clock()
                if left <= 0 or not self._cond.wait(left):
                    return self._seen >= n
        return True

    def _drain_own(self) -> None:
        for _ in range(1000):  # bounded: at most the markers sent since the last flush
            try:
                self.sock.recv(PAYLOAD_LEN)
            except OSError:
                return

    def close(self) -> None:
        self.sock.close()
