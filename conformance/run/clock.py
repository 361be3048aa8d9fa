"""Time, injected: the engine, the drivers and the actions read the time from a clock object, so
tests of every bound (step deadline, drip-feeding peers, ping floods) run without sleeping.

`MonotonicClock` is the real one. `FakeClock` only moves when told to (`advance`) or, with
`step`, by a fixed amount at every reading, which models a peer whose every byte costs time.
Drivers read the clock through the step's active deadline (conformance.run.deadline). Against a
real socket that stays silent, give a FakeClock a `step`: a frozen fake clock never reaches the
deadline while the socket's own timeouts keep expiring.
"""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    def now(self) -> float: ...  # seconds, monotonic
    def sleep(self, seconds: float) -> None: ...


class MonotonicClock:
    def now(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds)


class FakeClock:
    """A clock for tests: `now()` returns the fake time, then moves it on by `step`."""

    def __init__(self, start: float = 1000.0, step: float = 0.0):
        self.t = float(start)
        self.step = float(step)

    def now(self) -> float:
        t = self.t
        self.t += self.step
        return t

    def sleep(self, seconds: float) -> None:
        self.t += max(0.0, seconds)

    def advance(self, seconds: float) -> None:
        self.t += seconds


MONOTONIC = MonotonicClock()


def as_clock(clock) -> Clock:
    """Accept a clock object or a bare function returning seconds (the engine's former `clock=`)."""
    if clock is None:
        return MONOTONIC
    if hasattr(clock, "now"):
        return clock

    class _FunctionClock:
        def now(self) -> float:
            return clock()

        def sleep(self, seconds: float) -> None:
            MONOTONIC.sleep(seconds)

    return _FunctionClock()
