"""Glue between the engine and conformance.capture: one capture per test case that has a
`capture:` block, started before its first step and stopped after its last (plus settle time).

Its outputs (pcapng with the TLS secrets inside, SVG sequence diagram) are attached to the report.
Without the privilege to capture, the capture assertions are inconclusive; the steps still run.
"""

from __future__ import annotations

import re
from pathlib import Path

from conformance.verdicts import Finding


def _resolve(profile, p: str) -> Path:
    path = Path(p)
    return path if path.is_absolute() else Path(profile.base_dir) / path


class CaptureFactory:
    def __init__(self, profile, workdir: Path, sniffer_factory=None):
        self.profile = profile
        self.workdir = workdir
        self.sniffer_factory = sniffer_factory

    @classmethod
    def for_config(cls, config, profile) -> CaptureFactory:
        return cls(profile, Path(config.getoption("--ims-workdir")))

    def _keylogs(self, harness_keylog: Path) -> list[Path]:
        return [harness_keylog] + [_resolve(self.profile, k) for k in self.profile.pixit.get("sut_keylogs") or []]

    def start(self, tc, harness_keylog: Path):
        from conformance.capture import CaptureSession

        cap = self.profile.pixit.get("capture") or {}
        settle = int((tc.capture or {}).get("settle_ms", cap.get("settle_ms", 300)))
        session = CaptureSession(self.profile.pixit, self._keylogs(harness_keylog), cap.get("interfaces", ["lo"]),
                                 settle, sniffer_factory=self.sniffer_factory)
        session.start()
        return session

    def finish(self, tc, session, mctx, reporter, render) -> list[Finding]:
        from conformance.capture import evaluate_capture
        from conformance.report.ladder import render_ladder

        result = session.stop()
        block = render(tc.capture)
        findings = evaluate_capture(block, result, mctx)
        safe = re.sub(r"[^A-Za-z0-9_.-]", "_", tc.id)
        if result.pcapng_path:
            reporter.attach_file(f"{tc.id}.pcapng (TLS secrets embedded)", result.pcapng_path,
                                 "application/vnd.tcpdump.pcap")
        try:
            svg = render_ladder(result.timeline, findings, block, self.profile.pixit)
            out = self.workdir / "ladders" / f"{safe}.svg"
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(svg)
            reporter.attach_file("sequence diagram", out, "image/svg+xml")
        except Exception as exc:  # noqa: BLE001 - a diagram problem must not change the verdict
            reporter.attach_text("sequence diagram not rendered", f"{type(exc).__name__}: {exc}")
        return findings
