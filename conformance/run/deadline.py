"""One deadline per step, over everything the step does: connect, TLS, the request, every read,
reassembly of fragmented messages, pings answered on the way, and the checks' own look-ups.

A per-read timeout lets a peer that drips one byte a second hold a step forever; here every
socket read and write of the harness asks the *active* deadline how much time is left (the
harness's socket classes in `conformance.drivers.tls` do it), so the total is bounded whatever
the peer does. The deadline is active for one thread inside `with deadline.active():`.

The same object records, bounded, the bytes received during the step: evidence for a peer that
sent something the codecs could not make a message of (garbage, a half response, a TLS alert).
"""

from __future__ import annotations

import threading
from contextlib import contextmanager

from conformance.run.clock import MONOTONIC, Clock

EXCERPT_BYTES = 64 * 1024  # raw bytes kept per step as evidence of an undecodable answer


class DeadlineExceeded(TimeoutError):
    """The step's deadline passed during a socket operation (a TimeoutError, as socket timeouts are)."""


class Deadline:
    def __init__(self, seconds: float, clock: Clock = MONOTONIC, *, connect_s: float | None = None):
        self.clock = clock
        self.total_s = max(0.0, float(seconds))
        self.start = clock.now()
        self.end = self.start + self.total_s
        self.connect_s = connect_s  # bound of connect + TLS handshake (timeouts.connect_ms)
        self.received = bytearray()  # first EXCERPT_BYTES received during the step
        self.received_total = 0

    def remaining(self) -> float:
        return max(0.0, self.end - self.clock.now())

    def expired(self) -> bool:
        return self.remaining() <= 0.0

    def elapsed(self) -> float:
        return self.clock.now() - self.start

    def connect_timeout(self) -> float:
        """Time a connect (TCP + TLS) may take: connect_ms, never past the step's end."""
        left = self.remaining()
        return max(0.001, min(left, self.connect_s) if self.connect_s is not None else left)

    def socket_timeout(self) -> float:
        """A timeout for the next socket operation; raises DeadlineExceeded when none is left."""
        left = self.remaining()
        if left <= 0.0:
            raise DeadlineExceeded(f"step deadline of {self.total_s:g} s passed")
        return left

    def record(self, data: bytes) -> None:
        self.received_total += len(data)
        room = EXCERPT_BYTES - len(self.received)
        if room > 0:
            self.received += data[:room]

    def mark(self) -> int:
        """Where the recording stands now: bytes received since `mark()` are `received_since(m)`."""
        return self.received_total

    def received_since(self, mark: int) -> bytes:
        start = min(mark, len(self.received))
        return bytes(self.received[start:])

    @contextmanager
    def active(self):
        """Make this the deadline of the current thread's socket operations."""
        previous = getattr(_local, "deadline", None)
        _local.deadline = self
        try:
            yield self
        finally:
            _local.deadline = previous


_local = threading.local()


def current() -> Deadline | None:
    """The deadline active in this thread, if any (library use outside a step has none)."""
    return getattr(_local, "deadline", None)


def run_within(seconds: float, clock: Clock = MONOTONIC, connect_s: float | None = None):
    """A fresh deadline made active: `with run_within(2.0) as d: ...`."""
    return Deadline(seconds, clock, connect_s=connect_s).active()
