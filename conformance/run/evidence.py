"""Bounded evidence: whatever a SUT sends, the report of one test case stays small.

The drivers already keep at most MESSAGE_LIMIT bytes of one received message (and its true
length); this reporter wrapper caps every attachment at that size and the whole test case at
CASE_LIMIT, so a SUT answering 10 MiB again and again cannot fill the disk with Allure results
or the report renderer's memory. Cut attachments say so, with the true length.
"""

from __future__ import annotations

import contextlib
from typing import Any

from conformance.drivers.tls import MESSAGE_LIMIT

CASE_LIMIT = 8 * MESSAGE_LIMIT  # all attachments of one test case together


def _size(value: Any) -> int:
    if isinstance(value, bytes | bytearray | str):
        return len(value)
    return sum(len(getattr(value, f, b"") or b"") for f in ("body", "request_body", "raw"))


class BoundedReporter:
    """Forwards to a Reporter, cutting what would exceed the per-attachment or per-case budget."""

    def __init__(self, inner: Any, *, per_attachment: int = MESSAGE_LIMIT, per_case: int = CASE_LIMIT):
        self.inner = inner
        self.per_attachment = per_attachment
        self.per_case = per_case
        self.spent = 0

    def __getattr__(self, name: str) -> Any:  # steps, attachments, attach_jwt, ... of the inner reporter
        return getattr(self.inner, name)

    def new_case(self) -> None:
        self.spent = 0

    def _room(self, name: str, size: int) -> bool:
        """Whether an attachment of `size` still fits the case's budget; else say it was left out."""
        if self.spent + min(size, self.per_attachment) > self.per_case:
            self.inner.attach_text(f"{name} (left out)", f"{size} bytes not attached: the evidence of this test "
                                   f"case already reached its limit of {self.per_case} bytes")
            return False
        self.spent += min(size, self.per_attachment)
        return True

    def _cut(self, data, true_length: int | None = None):
        total = len(data) if true_length is None else true_length
        if len(data) <= self.per_attachment and true_length is None:
            return data
        kept = data[: self.per_attachment]
        note = f"\n... [{total} bytes in all, the first {len(kept)} kept]"
        return kept + (note.encode() if isinstance(kept, bytes | bytearray) else note)

    @contextlib.contextmanager
    def step(self, title: str):
        with self.inner.step(title) as handle:
            yield handle

    def attach_text(self, name: str, text: str) -> None:
        if self._room(name, len(text)):
            self.inner.attach_text(name, self._cut(text))

    def attach_bytes(self, name: str, data: bytes) -> None:
        if self._room(name, len(data)):
            self.inner.attach_bytes(name, self._cut(data))

    def attach_sip(self, direction: str, raw: bytes) -> None:
        if self._room(f"SIP {direction}", len(raw)):
            self.inner.attach_sip(direction, self._cut(raw))

    def attach_http(self, exchange: Any) -> None:
        if self._room(f"HTTP {exchange.method}", _size(exchange)):
            self.inner.attach_http(exchange)

    def attach_handshake(self, handshake: Any) -> None:
        if self._room("WebSocket handshake", _size(handshake)):
            self.inner.attach_handshake(handshake)

    def attach_event(self, name: str, event: Any) -> None:
        if self._room(name, _size(event)):
            self.inner.attach_event(name, event)

    def attach_file(self, name: str, path, mime: str) -> None:
        self.inner.attach_file(name, path, mime)
