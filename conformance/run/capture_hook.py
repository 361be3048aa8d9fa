"""Glue between the engine and conformance.capture.

One sniffer runs for the whole session (started with the first test case that has a `capture:`
block); each test case is a time window of it. A window alone is not enough: nodes keep TLS
connections open across test cases (the WSF's keep-alive connection to the AS), so the handshake
that decrypts a case's step 15 may have been captured during an earlier case. Each case is
dissected by one streaming analysis of the session (capture.stream: every packet once, the
state of long-lived connections kept), and only the messages inside the window are asserted.

Outputs per case (the decrypted traffic as a plaintext pcapng with secrets redacted, the SVG
sequence diagram; the raw pcapng with its TLS secrets only when the profile opts in) are attached
to the report. Without the privilege to capture, the capture assertions are inconclusive; the steps
still run.
"""

from __future__ import annotations

import re
import threading
import time
from pathlib import Path

from conformance.verdicts import Finding

TLS_SECRETS_WARNING = (
    "The profile sets pixit.capture.include_tls_secrets: true. The attached raw capture carries the TLS "
    "key log of every connection: anyone holding this report can decrypt the client secrets, passwords and "
    "tokens that crossed the wire. Share the report only with people allowed to see them.")
POLL_S = 0.005  # how often the settle looks for new packets (the sniffer thread only appends)
FEED_EVERY_S = 0.01  # how often the feeder dissects what the sniffer captured while a case runs
FEED_CHUNK = 16  # packets dissected before the feeder lets the test case's thread run again


def _resolve(profile, p: str) -> Path:
    path = Path(p)
    return path if path.is_absolute() else Path(profile.base_dir) / path


def own_endpoints(started: dict) -> frozenset[str]:
    """The local ends of the connections the harness opened since the test case started."""
    from conformance.drivers.tls import opened_since

    return frozenset(opened_since(started.get("opened_from", 0)))


class Feeder:
    """Dissects what the sniffer captured while the test case runs (issue 15, streaming analysis).

    Every FEED_EVERY_S it asks `feed_some` (CaptureFactory._feed_some: at most FEED_CHUNK packets
    under the analysis lock) until nothing new is left, letting the test case's thread run between
    chunks. The case's thread mostly waits for the SUT, so most of the dissection is done by the
    end of its last step and the window only dissects the tail. A TLS connection whose secrets
    are not logged yet is held, not misread (Dissector.hold_for_keys). An error is kept and
    raised in the case's thread at its window (`raise_error`), where it would have been raised."""

    def __init__(self, feed_some, every_s: float = FEED_EVERY_S):
        self._feed_some, self._every_s = feed_some, every_s
        self._stop = threading.Event()
        self.paused = False  # set by CaptureFactory.pause_feeding
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="capture-feeder", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self._every_s):
            try:
                while not self._stop.is_set() and not self.paused and self._feed_some():
                    time.sleep(0)  # the test case's thread may want the GIL back at once
            except Exception as exc:  # noqa: BLE001 - raised again in the case's thread
                self._error = exc
                return

    def raise_error(self) -> None:
        if self._error is not None:
            error, self._error = self._error, None
            raise error

    def stop(self, timeout_s: float = 3.0) -> None:
        self._stop.set()
        self._thread.join(timeout_s)


def _safe(case_id: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", case_id)


class CaptureFactory:
    def __init__(self, profile, workdir: Path, sniffer_factory=None, *, clock=time.time, wait=time.sleep):
        # clock: wall time, the time base of packet timestamps; both injected so the settle logic
        # is tested without sleeping
        self.clock, self.wait = clock, wait
        self.profile = profile
        self.workdir = Path(workdir)
        self.sniffer_factory = sniffer_factory
        self.session = None  # the session-wide CaptureSession, started on first use
        self._feeder: Feeder | None = None  # dissects while the cases run (started with the session)
        self._feed_lock = threading.Lock()  # one thread at a time in the streaming analysis
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
        from conformance.capture.stream import SessionAnalysis, keylog_ends

        if self.session is None:
            workdir = self.workdir / "captures"
            workdir.mkdir(parents=True, exist_ok=True)
            keylogs = self._keylogs(harness_keylog)
            # before the sniffer starts: secrets logged earlier are of handshakes it cannot see
            read_from = keylog_ends(keylogs)
            self.session = CaptureSession(self.profile.pixit, keylogs, self.interfaces,
                                          0, sniffer_factory=self.sniffer_factory, workdir=workdir,
                                          barrier=True)
            self.session.redactor = self.profile.redactor
            self.session.start()
            self._scanned = 0  # records of the session already fed to the streaming analysis
            self._analysis = SessionAnalysis(self.profile.pixit, keylogs, read_from)
            self._feeder = Feeder(self._feed_some)

    def _feed_some(self) -> int:
        """(The feeder's thread) dissect up to FEED_CHUNK captured packets; how many there were."""
        with self._feed_lock:
            if self.session is None:
                return 0
            return self._feed_new(final=False, limit=FEED_CHUNK)

    def _feed_new(self, *, final: bool, limit: int | None = None) -> int:
        """Dissect the records captured since the last feed (at most `limit`); the caller holds
        the analysis lock. How many there were."""
        records = self.session.records
        end = len(records) if limit is None else min(len(records), self._scanned + limit)
        if end == self._scanned and not final:  # nothing new: the feeder's wake-up costs no look at the key logs
            return 0
        new = records[self._scanned:end]
        self._scanned = end
        self._analysis.feed(new, final=final)
        return len(new)

    def start(self, tc, harness_keylog: Path):
        self.ensure_started(harness_keylog)
        from conformance.drivers.tls import opened_count

        return {"t0": self.clock(), "keylogs": self._keylogs(harness_keylog), "opened_from": opened_count()}

    def pause_feeding(self) -> None:
        """Stop dissecting in the background until resume_feeding (benchmarks/bench_harness_flow.py:
        the hand-written script's traffic, captured too, must not be dissected while it runs)."""
        if self._feeder is not None:
            self._feeder.paused = True

    def resume_feeding(self) -> None:
        """Dissect everything captured meanwhile in this thread, then go on in the background."""
        if self._feeder is not None:
            while self._feed_some():
                pass
            self._feeder.paused = False

    def close(self) -> None:
        if self._feeder is not None:
            self._feeder.stop()
            self._feeder = None
        if self.session is not None:
            self.session.halt()  # the windows are analysed and written already
            self.session = None

    def _settle_quiet(self, settle_ms: int) -> None:
        """Without a barrier (capture not on lo): until 100 ms pass with no new packet, at most
        settle_ms (a fixed sleep would cost every test case the whole settle time)."""
        deadline = self.clock() + settle_ms / 1000.0
        seen, quiet_since = len(self.session.records), self.clock()
        while self.clock() < deadline:
            self.wait(0.025)
            now_seen = len(self.session.records)
            if now_seen != seen:
                seen, quiet_since = now_seen, self.clock()
            elif self.clock() - quiet_since >= 0.1:
                return

    def _wait_for_packets(self, until: float) -> None:
        """Until a new packet is captured or `until` (polling: the sniffer thread only appends)."""
        seen = len(self.session.records)
        while self.clock() < until and len(self.session.records) == seen:
            self.wait(min(POLL_S, max(0.0, until - self.clock())))

    def window(self, tc, started: dict, block=None, markers: set[str] | None = None, identity: frozenset = frozenset()):
        """The CaptureResult of one test case: [t0, end of the settle] of the session capture.

        Adaptive settle (capture.settle): with a barrier, the window ends as soon as the capture
        has caught up and the block waits for nothing more; `settle_ms` is only the upper bound.
        """
        t_last = self.clock()  # the last step is done
        with self._feed_lock:  # the feeder waits: the window's analysis and outputs are this thread's
            return self._window(tc, started, block, markers, identity, t_last)

    def _window(self, tc, started: dict, block, markers, identity, t_last: float):
        from conformance.capture import CaptureResult
        from conformance.capture.timeline import Timeline

        settle_ms = int((tc.capture or {}).get("settle_ms", self.settle_ms))
        session = self.session
        t0 = started["t0"]
        deadline = t_last + settle_ms / 1000.0
        if session.error and not session.records:  # the capture never ran: nothing to wait for
            return CaptureResult(Timeline(t_start=t0, t_end=t_last, problems=[session.error]), None, session.error)
        if not session.flush(settle_ms / 1000.0):
            self._settle_quiet(max(0, int((deadline - self.clock()) * 1000)))
            t1 = self.clock()
            return self._write_outputs(tc, self._analyze(tc, started, t0, t1), t0, t1)
        while True:
            t1 = self.clock()  # the barrier just proved every packet before t1 captured
            if session.error and not session.records:
                return CaptureResult(Timeline(t_start=t0, t_end=t1, problems=[session.error]), None, session.error)
            result = self._analyze(tc, started, t0, t1)
            state = self._settle_state(block, result, t0, t1, markers, own_endpoints(started), identity)
            if state.done or t1 >= deadline:
                result.stats["settle"] = {"ms": round((t1 - t_last) * 1000, 1),
                                          "waiting_for": "" if state.done else state.waiting_for}
                return self._write_outputs(tc, result, t0, t1)
            self._wait_for_packets(min(deadline, state.wake_at or deadline))
            session.flush(max(0.0, deadline - self.clock()))

    def _settle_state(self, block, result, t0: float, t1: float, markers, own=frozenset(), identity=frozenset()):
        from conformance.capture.assertions import BlockError, SettleMatch, match_block
        from conformance.capture.settle import SettleState, settle_state
        from conformance.capture.timeline import Timeline

        if not block:
            return SettleState(True)
        timeline = result.timeline
        if self.correlate:  # under -n other cases' messages must not end this case's window
            from conformance.capture.correlate import for_case

            timeline = Timeline(items=for_case(timeline.items, markers or set(), own),
                                coverage=timeline.coverage, packets=timeline.packets,
                                t_start=timeline.t_start, t_end=timeline.t_end,
                                observable_nodes=timeline.observable_nodes)
        try:
            if self.correlate:
                bm = match_block(block, timeline, self.profile.pixit, unusable=result.error, identity=identity)
            else:  # on the result itself: evaluate_capture takes the last one unless something changed
                result.settle_match = SettleMatch.of(block, result, self.profile.pixit, identity)
                bm = result.settle_match.bm
        except BlockError:
            return SettleState(True)  # the test case is wrong: evaluate_capture says so, no waiting
        return settle_state(bm, t0, t1)

    def _analyze(self, tc, started: dict, t0: float, t1: float):
        """The window [t0, t1] of the session's streaming analysis (capture.stream): only the
        packets captured since the last window are dissected now."""
        session = self.session
        if self._feeder is not None:
            self._feeder.raise_error()  # a dissection that failed in the feeder fails the case, as here
        self._feed_new(final=True)
        result = self._analysis.window(t0, t1)
        result.timeline.observable_nodes = session.observable_nodes()
        result.error = session.error
        if session.error:
            result.timeline.problems.append(session.error)
        return result

    def _write_outputs(self, tc, result, t0: float, t1: float):
        """Once per window, after settling: the decrypted traffic as a plaintext pcapng, redacted;
        the raw capture with its TLS secrets only where the profile opts in."""
        problem = self.session.sniffer_problem()
        if problem:  # a capture with holes or none at all: its assertions become inconclusive
            result.error = result.error or problem
            result.timeline.problems.append(problem)
        base = self.workdir / "captures" / _safe(tc.id)
        self._analysis.write(result, t0, t1, interfaces=self.interfaces, redactor=getattr(self.profile, "redactor", None),
                             plaintext_out=base.with_suffix(".pcapng"),
                             pcapng_out=base.with_suffix(".tls-secrets.pcapng") if self.include_tls_secrets else None)
        return result

    def finish(self, tc, started, mctx, reporter, render, markers: set[str] | None = None,
               identity: frozenset = frozenset()) -> list[Finding]:
        """`identity`: the case's own identity when unique (correlate.identity_of): with it a capture
        entry never takes a request of another user's flow (capture/pairing.py)."""
        from conformance.capture import evaluate_capture
        from conformance.report.ladder import render_ladder

        block = render(tc.capture)
        result = self.window(tc, started, block, markers, identity)
        self.last_window = (result.timeline, block, None)  # the report's per-entry capture steps
        findings = evaluate_capture(block, result, mctx, self.profile.pixit, identity)
        if self.correlate:  # parallel run: judge only this test case's messages
            from conformance.capture.correlate import for_case, unattributed

            whole = findings
            result.timeline.items = for_case(result.timeline.items, markers or set(), own_endpoints(started))
            findings = unattributed(evaluate_capture(block, result, mctx, self.profile.pixit, identity), whole)
        # the report's per-entry capture steps, from the match the findings were judged on
        self.last_window = (result.timeline, block, result.block_match)
        if result.plaintext_path:
            reporter.attach_file(f"{tc.id}.pcapng (decrypted, secrets redacted)", result.plaintext_path,
                                 "application/vnd.tcpdump.pcap")
        if result.pcapng_path:  # only when the profile opted in
            reporter.attach_text("WARNING: TLS secrets attached", TLS_SECRETS_WARNING)
            reporter.attach_file(f"{tc.id}.tls-secrets.pcapng (raw, TLS secrets embedded)", result.pcapng_path,
                                 "application/vnd.tcpdump.pcap")
        try:
            svg = render_ladder(result.timeline, findings, block, self.profile.pixit, bm=result.block_match)
            out = self.workdir / "ladders" / f"{_safe(tc.id)}.svg"
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(svg)
            reporter.attach_file("sequence diagram", out, "image/svg+xml")
        except Exception as exc:  # noqa: BLE001 - a diagram problem must not change the verdict
            reporter.attach_text("sequence diagram not rendered", f"{type(exc).__name__}: {exc}")
        return findings
