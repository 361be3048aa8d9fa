"""Glue between the engine and conformance.capture.

One sniffer runs for the whole session (started with the first test case that has a `capture:`
block); each test case is a time window of it. A window alone is not enough: nodes keep TLS
connections open across test cases (the WSF's keep-alive connection to the AS), so the handshake
that decrypts a case's step 15 may have been captured during an earlier case. Each case is
therefore dissected with every packet of the TCP streams active in its window, and only the
messages inside the window are asserted.

Outputs per case (pcapng with the TLS secrets inside, SVG sequence diagram) are attached to the
report. Without the privilege to capture, the capture assertions are inconclusive; the steps
still run.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

from conformance.verdicts import Finding


def _resolve(profile, p: str) -> Path:
    path = Path(p)
    return path if path.is_absolute() else Path(profile.base_dir) / path


def _safe(case_id: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", case_id)


class CaptureFactory:
    def __init__(self, profile, workdir: Path, sniffer_factory=None):
        self.profile = profile
        self.workdir = Path(workdir)
        self.sniffer_factory = sniffer_factory
        self.session = None  # the session-wide CaptureSession, started on first use
        cap = profile.pixit.get("capture") or {}
        self.interfaces = cap.get("interfaces", ["lo"])
        self.settle_ms = int(cap.get("settle_ms", 300))

    @classmethod
    def for_config(cls, config, profile) -> CaptureFactory:
        return cls(profile, Path(config.getoption("--ims-workdir")))

    def _keylogs(self, harness_keylog: Path) -> list[Path]:
        return [harness_keylog] + [_resolve(self.profile, k) for k in self.profile.pixit.get("sut_keylogs") or []]

    def start(self, tc, harness_keylog: Path):
        from conformance.capture import CaptureSession

        if self.session is None:
            workdir = self.workdir / "captures"
            workdir.mkdir(parents=True, exist_ok=True)
            self.session = CaptureSession(self.profile.pixit, self._keylogs(harness_keylog), self.interfaces,
                                          0, sniffer_factory=self.sniffer_factory, workdir=workdir)
            self.session.start()
        return {"t0": time.time(), "keylogs": self._keylogs(harness_keylog)}

    def close(self) -> None:
        if self.session is not None:
            self.session.stop()
            self.session = None

    def window(self, tc, started: dict):
        """The CaptureResult of one test case: [t0, now + settle] of the session capture."""
        from conformance.capture import CaptureResult, analyze_records
        from conformance.capture.packets import Scanner
        from conformance.capture.timeline import Timeline

        settle = int((tc.capture or {}).get("settle_ms", self.settle_ms))
        time.sleep(settle / 1000.0)  # let the last answers of the test reach the sniffer
        t0, t1 = started["t0"], time.time()
        session = self.session
        if session.error and not session.records:
            return CaptureResult(Timeline(t_start=t0, t_end=t1, problems=[session.error]), None, session.error)
        records = sorted(list(session.records), key=lambda r: r[0])
        records = [r for r in records if r[0] <= t1]
        # every packet of the TCP streams seen in the window (their handshakes may be older)
        streams = set()
        for pkt in Scanner(None).scan(r for r in records if r[0] >= t0):
            if pkt.proto == 6:
                streams.add(frozenset(((pkt.src, pkt.sport), (pkt.dst, pkt.dport))))
        kept = []
        for pkt in Scanner(None).scan(records):
            if pkt.ts >= t0 or frozenset(((pkt.src, pkt.sport), (pkt.dst, pkt.dport))) in streams:
                kept.append((pkt.ts, pkt.linktype, pkt.frame, pkt.iface))
        out = self.workdir / "captures" / f"{_safe(tc.id)}.pcapng"
        result = analyze_records(kept, self.profile.pixit, started["keylogs"], pcapng_out=out, t_window=(t0, t1),
                                 interfaces=self.interfaces)
        result.timeline.items = [i for i in result.timeline.items if t0 <= i.t <= t1]
        result.timeline.observable_nodes = session.observable_nodes()
        result.error = session.error
        if session.error:
            result.timeline.problems.append(session.error)
        return result

    def finish(self, tc, started, mctx, reporter, render) -> list[Finding]:
        from conformance.capture import evaluate_capture
        from conformance.report.ladder import render_ladder

        result = self.window(tc, started)
        block = render(tc.capture)
        findings = evaluate_capture(block, result, mctx, self.profile.pixit)
        if result.pcapng_path:
            reporter.attach_file(f"{tc.id}.pcapng (TLS secrets embedded)", result.pcapng_path,
                                 "application/vnd.tcpdump.pcap")
        try:
            svg = render_ladder(result.timeline, findings, block, self.profile.pixit)
            out = self.workdir / "ladders" / f"{_safe(tc.id)}.svg"
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(svg)
            reporter.attach_file("sequence diagram", out, "image/svg+xml")
        except Exception as exc:  # noqa: BLE001 - a diagram problem must not change the verdict
            reporter.attach_text("sequence diagram not rendered", f"{type(exc).__name__}: {exc}")
        return findings
