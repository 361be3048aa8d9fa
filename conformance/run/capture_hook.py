"""Glue between the engine and conformance.capture.

One sniffer runs for the whole session (started with the first test case that has a `capture:`
block); each test case is a time window of it. A window alone is not enough: nodes keep TLS
connections open across test cases (the WSF's keep-alive connection to the AS), so the handshake
that decrypts a case's step 15 may have been captured during an earlier case. Each case is
therefore dissected with every packet of the TCP streams active in its window, and only the
messages inside the window are asserted.

Outputs per case (the decrypted traffic as a plaintext pcapng with secrets redacted, the SVG
sequence diagram; the raw pcapng with its TLS secrets only when the profile opts in) are attached
to the report. Without the privilege to capture, the capture assertions are inconclusive; the steps
still run.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

from conformance.verdicts import Finding

TLS_SECRETS_WARNING = (
    "The profile sets pixit.capture.include_tls_secrets: true. The attached raw capture carries the TLS "
    "key log of every connection: anyone holding this report can decrypt the client secrets, passwords and "
    "tokens that crossed the wire. Share the report only with people allowed to see them.")


def _resolve(profile, p: str) -> Path:
    path = Path(p)
    return path if path.is_absolute() else Path(profile.base_dir) / path


def _stream(pkt) -> frozenset:
    return frozenset(((pkt.src, pkt.sport), (pkt.dst, pkt.dport)))


def _safe(case_id: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", case_id)


class CaptureFactory:
    def __init__(self, profile, workdir: Path, sniffer_factory=None):
        self.profile = profile
        self.workdir = Path(workdir)
        self.sniffer_factory = sniffer_factory
        self.session = None  # the session-wide CaptureSession, started on first use
        # parallel workers share the legs: keep only the messages of the test case (capture.correlate)
        self.correlate = False
        cap = profile.pixit.get("capture") or {}
        # the raw capture with its key log lets anyone with the report decrypt every secret on
        # the wire: only when the profile says so (pixit.capture.include_tls_secrets)
        self.include_tls_secrets = bool(cap.get("include_tls_secrets", False))
        self.interfaces = cap.get("interfaces", ["lo"])
        self.settle_ms = int(cap.get("settle_ms", 300))

    @classmethod
    def for_config(cls, config, profile) -> CaptureFactory:
        return cls(profile, Path(config.getoption("--ims-workdir")))

    def _keylogs(self, harness_keylog: Path) -> list[Path]:
        return [harness_keylog] + [_resolve(self.profile, k) for k in self.profile.pixit.get("sut_keylogs") or []]

    def ensure_started(self, harness_keylog: Path) -> None:
        """Start the session's sniffer (idempotent). The plugin calls it at session start, before
        any test case, so connections a SUT keeps open from the first case on are decryptable."""
        from conformance.capture import CaptureSession

        if self.session is None:
            workdir = self.workdir / "captures"
            workdir.mkdir(parents=True, exist_ok=True)
            self.session = CaptureSession(self.profile.pixit, self._keylogs(harness_keylog), self.interfaces,
                                          0, sniffer_factory=self.sniffer_factory, workdir=workdir)
            self.session.redactor = self.profile.redactor
            self.session.start()
            self._scanned = 0  # records of the session already scanned into packets
            self._packets: list = []
            self._streams: dict = {}  # TCP stream -> its packets, in capture order

    def start(self, tc, harness_keylog: Path):
        self.ensure_started(harness_keylog)
        return {"t0": time.time(), "keylogs": self._keylogs(harness_keylog)}

    def close(self) -> None:
        if self.session is not None:
            self.session.stop()
            self.session = None

    def _settle(self, settle_ms: int) -> None:
        """Wait for the last answers to reach the sniffer: until 100 ms pass with no new packet,
        at most settle_ms (a fixed sleep would cost every test case the whole settle time)."""
        deadline = time.monotonic() + settle_ms / 1000.0
        seen, quiet_since = len(self.session.records), time.monotonic()
        while time.monotonic() < deadline:
            time.sleep(0.025)
            now_seen = len(self.session.records)
            if now_seen != seen:
                seen, quiet_since = now_seen, time.monotonic()
            elif time.monotonic() - quiet_since >= 0.1:
                return

    def _scan_new(self) -> None:
        """Scan each captured record once; index TCP packets by stream."""
        from conformance.capture.packets import Scanner

        records = self.session.records
        new = records[self._scanned:len(records)]
        self._scanned += len(new)
        for pkt in Scanner(None).scan(sorted(new, key=lambda r: r[0])):
            self._packets.append(pkt)
            if pkt.proto == 6:
                self._streams.setdefault(_stream(pkt), []).append(pkt)

    def window(self, tc, started: dict):
        """The CaptureResult of one test case: [t0, now after settling] of the session capture."""
        from conformance.capture import CaptureResult, analyze_records
        from conformance.capture.timeline import Timeline

        self._settle(int((tc.capture or {}).get("settle_ms", self.settle_ms)))
        t0, t1 = started["t0"], time.time()
        session = self.session
        if session.error and not session.records:
            return CaptureResult(Timeline(t_start=t0, t_end=t1, problems=[session.error]), None, session.error)
        self._scan_new()
        in_window = []
        for pkt in reversed(self._packets):  # the window is at the end of the session
            if pkt.ts < t0 - 1.0:  # records of several interfaces may interleave a little
                break
            if t0 <= pkt.ts <= t1:
                in_window.append(pkt)
        streams = {_stream(p) for p in in_window if p.proto == 6}
        # every packet of the TCP streams seen in the window: their handshakes may be older
        kept = {id(p): p for key in streams for p in self._streams.get(key, ()) if p.ts <= t1}
        kept.update((id(p), p) for p in in_window)
        records = sorted(((p.ts, p.linktype, p.frame, p.iface) for p in kept.values()), key=lambda r: r[0])
        base = self.workdir / "captures" / _safe(tc.id)
        result = analyze_records(records, self.profile.pixit, started["keylogs"],
                                 pcapng_out=base.with_suffix(".tls-secrets.pcapng") if self.include_tls_secrets else None,
                                 plaintext_out=base.with_suffix(".pcapng"), redactor=self.profile.redactor,
                                 t_window=(t0, t1), interfaces=self.interfaces)
        result.timeline.items = [i for i in result.timeline.items if t0 <= i.t <= t1]
        result.timeline.observable_nodes = session.observable_nodes()
        result.error = session.error
        if session.error:
            result.timeline.problems.append(session.error)
        return result

    def finish(self, tc, started, mctx, reporter, render, markers: set[str] | None = None) -> list[Finding]:
        from conformance.capture import evaluate_capture
        from conformance.report.ladder import render_ladder

        result = self.window(tc, started)
        block = render(tc.capture)
        self.last_window = (result.timeline, block)  # the report's per-entry capture steps
        findings = evaluate_capture(block, result, mctx, self.profile.pixit)
        if self.correlate:  # parallel run: judge only this test case's messages
            from conformance.capture.correlate import for_case, unattributed

            whole = findings
            result.timeline.items = for_case(result.timeline.items, markers or set())
            findings = unattributed(evaluate_capture(block, result, mctx, self.profile.pixit), whole)
        if result.plaintext_path:
            reporter.attach_file(f"{tc.id}.pcapng (decrypted, secrets redacted)", result.plaintext_path,
                                 "application/vnd.tcpdump.pcap")
        if result.pcapng_path:  # only when the profile opted in
            reporter.attach_text("WARNING: TLS secrets attached", TLS_SECRETS_WARNING)
            reporter.attach_file(f"{tc.id}.tls-secrets.pcapng (raw, TLS secrets embedded)", result.pcapng_path,
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
