"""What a test case tells an emulated peer to do for one exchange, and what the peer received.

Sans-IO: a Script says how to deviate from BINDING.md's default answer; the servers (oauth_as.py,
cscf.py) apply it. A Log keeps every exchange a peer saw during one test case (bounded).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

MAX_RECORDS = 200  # evidence is bounded: a looping SUT cannot fill the memory


@dataclass
class Script:
    peer: str  # as | pcscf | scscf | wsf (the emulated 3rdWWS takes no script)
    on: str  # as: metadata | jwks | authorize | token | introspect; pcscf: a SIP method
    status: int | None = None  # answer with this status instead of the default one
    reason: str | None = None
    headers: dict[str, str] = field(default_factory=dict)  # added to (or replacing) the default ones
    json: Any = None  # the whole JSON body instead of the default one
    merge: dict | None = None  # members put over the default JSON body (active: false, another impu)
    omit: list[str] = field(default_factory=list)  # members taken out of the default JSON body
    body: str | None = None  # the whole body, as text
    raw: str | None = None  # bytes sent instead of any well-formed answer (malformed)
    delay_ms: int = 0  # answer late
    silent: bool = False  # never answer
    close: bool = False  # close the connection instead of answering
    down: bool = False  # the peer does not listen while the case runs: connections are refused
    times: int | None = None  # applies to this many exchanges (default: all of the test case)
    line: int | None = None

    @classmethod
    def from_spec(cls, spec: dict) -> Script:
        answer = dict(spec.get("answer") or {})
        return cls(peer=spec["peer"], on=spec["on"], status=answer.get("status"), reason=answer.get("reason"),
                   headers={str(k): str(v) for k, v in (answer.get("headers") or {}).items()},
                   json=answer.get("json"), merge=answer.get("merge"), omit=list(answer.get("omit") or []),
                   body=answer.get("body"), raw=answer.get("raw"), delay_ms=int(spec.get("delay_ms", 0)),
                   silent=bool(spec.get("silent", False)), close=bool(spec.get("close", False)),
                   down=bool(spec.get("down", False)),
                   times=spec.get("times"), line=getattr(spec, "line", None))

    def shape_json(self, default: Any) -> Any:
        if self.json is not None:
            return self.json
        if isinstance(default, dict):
            out = {k: v for k, v in default.items() if k not in self.omit}
            out.update(self.merge or {})
            return out
        return default


@dataclass
class Record:
    peer: str
    on: str
    event: Any  # conformance.events.HttpExchange (the request) or SipReceived
    at: float
    answered: str  # what the peer did, for the report ("200", "silent", "closed", ...)


class Board:
    """Scripts of the running test case and what the peers received; shared by the peer threads."""

    def __init__(self, clock=time.monotonic):
        self._lock = threading.Lock()
        self._scripts: list[Script] = []
        self._used: dict[int, int] = {}
        self.records: list[Record] = []
        self.errors: list[str] = []  # harness bugs inside a peer: the case's verdict is error
        self.clock = clock

    def begin(self, scripts: list[Script]) -> None:
        with self._lock:
            self._scripts, self._used, self.records, self.errors = list(scripts), {}, [], []

    def end(self) -> tuple[list[Record], list[str]]:
        with self._lock:
            records, errors = self.records, self.errors
            self._scripts, self.records, self.errors = [], [], []
            return records, errors

    def error(self, text: str) -> None:
        with self._lock:
            if len(self.errors) < MAX_RECORDS:
                self.errors.append(text)

    def down(self) -> set[str]:
        """The peers the running test case wants unreachable (not listening) throughout."""
        with self._lock:
            return {s.peer for s in self._scripts if s.down}

    def script_for(self, peer: str, on: str) -> Script | None:
        with self._lock:
            for i, s in enumerate(self._scripts):
                if s.peer == peer and s.on.lower() == on.lower():
                    if s.times is not None and self._used.get(i, 0) >= s.times:
                        continue
                    self._used[i] = self._used.get(i, 0) + 1
                    return s
            return None

    def record(self, peer: str, on: str, event: Any, answered: str) -> None:
        with self._lock:
            if len(self.records) < MAX_RECORDS:
                self.records.append(Record(peer, on, event, self.clock(), answered))
