"""What the engine tells a report while it runs. `NullReporter` for library use and tests;
`conformance.report.allure.AllureReporter` writes Allure steps and attachments.
"""

from __future__ import annotations

import contextlib
from typing import Any, Protocol


class StepHandle:
    def finish(self, verdict, findings) -> None:
        self.verdict, self.findings = verdict, findings


class Reporter(Protocol):
    def step(self, title: str) -> contextlib.AbstractContextManager[StepHandle]: ...

    def attach_text(self, name: str, text: str) -> None: ...
    def attach_bytes(self, name: str, data: bytes) -> None: ...
    def attach_http(self, exchange: Any) -> None: ...
    def attach_handshake(self, handshake: Any) -> None: ...
    def attach_sip(self, direction: str, raw: bytes) -> None: ...
    def attach_event(self, name: str, event: Any) -> None: ...
    def attach_file(self, name: str, path, mime: str) -> None: ...


class NullReporter(Reporter):
    """Records nothing beyond the step outcomes, which tests can inspect."""

    def __init__(self):
        self.steps: list[tuple[str, StepHandle]] = []
        self.attachments: list[tuple[str, Any]] = []

    @contextlib.contextmanager
    def step(self, title: str):
        handle = StepHandle()
        self.steps.append((title, handle))
        yield handle

    def attach_text(self, name, text):
        self.attachments.append((name, text))

    def attach_bytes(self, name, data):
        self.attachments.append((name, data))

    def attach_http(self, exchange):
        self.attachments.append(("http", exchange))

    def attach_handshake(self, handshake):
        self.attachments.append(("handshake", handshake))

    def attach_sip(self, direction, raw):
        self.attachments.append((f"sip {direction}", raw))

    def attach_event(self, name, event):
        self.attachments.append((name, event))

    def attach_file(self, name, path, mime):
        self.attachments.append((name, path))
