"""Adaptive settle (issue 15): the capture window of a test case ends as soon as the capture has
caught up and the block waits for nothing more; windowed absence checks get exactly their stated
duration; `settle_ms` is only the upper bound. Time is injected: nothing here sleeps."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import yaml

from conformance.capture.assertions import evaluate_capture, match_block
from conformance.capture.settle import settle_state
from conformance.capture.synth import Capture, registration
from conformance.capture.timeline import Timeline
from conformance.match.engine import MatchContext
from conformance.run.capture_hook import CaptureFactory
from conformance.verdicts import Verdict

ROOT = Path(__file__).resolve().parents[2]
PIXIT = yaml.safe_load((ROOT / "profiles" / "reference.yaml").read_text())["pixit"]
CTX = MatchContext(identities={})

EXPECT = [
    {"flow": 15, "from": "wsf", "to": "as", "http": {"method": "POST", "path": "/introspect"}},
    {"flow": 17, "from": "wsf", "to": "pcscf", "sip": {"method": "REGISTER"}},
    {"flow": 19, "from": "scscf", "to": "pcscf", "sip": {"status": 200, "method": "REGISTER"}},
    {"flow": 21, "from": "wsf", "to": "ue|3rdwws", "sip": {"status": 200}},
]


class FakeClock:
    """Wall clock and sleep in one: `wait` advances the time and lets scheduled packets arrive."""

    def __init__(self, t: float, session):
        self.t, self.session, self.waited, self.arrivals = t, session, 0.0, []

    def __call__(self) -> float:
        return self.t

    def wait(self, seconds: float) -> None:
        self.t += seconds
        self.waited += seconds
        for rec in [r for r in self.arrivals if r[0] <= self.t]:
            self.arrivals.remove(rec)
            self.session.records.append(rec)


class FakeSession:
    """A session capture whose barrier always holds (the sniffer has caught up)."""

    def __init__(self, records, barrier=True):
        self.records, self.error, self.barrier, self.flushes = list(records), None, barrier, 0
        self.problem = None  # what the sniffers report at the end of the window

    def sniffer_problem(self) -> str | None:
        return self.problem

    def flush(self, timeout_s: float) -> bool:
        self.flushes += 1
        return self.barrier

    def observable_nodes(self) -> set[str]:
        return {"ue", "3rdwws", "as", "wsf", "pcscf", "scscf"}


def _factory(tmp_path, records, t_now, barrier=True):
    profile = SimpleNamespace(pixit=PIXIT, base_dir=str(ROOT))
    session = FakeSession(records, barrier)
    clock = FakeClock(t_now, session)
    f = CaptureFactory(profile, tmp_path, clock=clock, wait=clock.wait)
    from conformance.capture.stream import SessionAnalysis

    f.session, f._scanned = session, 0
    f._analysis = SessionAnalysis(PIXIT, [tmp_path / "k.log"])
    (tmp_path / "captures").mkdir(exist_ok=True)
    return f, clock


def _registration(tmp_path):
    cap, keylog = Capture(), tmp_path / "k.log"
    steps = registration(cap, keylog)
    return cap, keylog, steps


def _window(tmp_path, block, records, t0, t_now, barrier=True, arrivals=()):
    f, clock = _factory(tmp_path, records, t_now, barrier)
    clock.arrivals = list(arrivals)
    tc = SimpleNamespace(id="TP_SETTLE", capture=block)
    started = {"t0": t0, "keylogs": [tmp_path / "k.log"], "opened_from": 0}
    result = f.window(tc, started, block, set())
    return result, clock, f


def test_window_ends_at_once_when_every_expected_message_is_in(tmp_path):
    cap, _, _ = _registration(tmp_path)
    records = cap.frames_records()
    block = {"settle_ms": 300, "expect": EXPECT}
    result, clock, _ = _window(tmp_path, block, records, records[0][0] - 0.01, records[-1][0] + 0.001)
    assert clock.waited == 0.0  # no settle time at all
    findings = evaluate_capture(block, result, CTX, PIXIT)
    assert [f.verdict for f in findings] == [Verdict.PASS] * len(EXPECT)
    assert result.stats["settle"]["waiting_for"] == ""


def test_absence_window_waits_exactly_its_duration(tmp_path):
    cap, _, steps = _registration(tmp_path)
    records = cap.frames_records()
    anchor = records[steps[19][0]][0]  # the window starts at step 19's message
    block = {"settle_ms": 1000, "expect": EXPECT, "absent": [{"to": "scscf", "after": 19, "within_ms": 200}]}
    now = records[-1][0] + 0.001
    result, clock, _ = _window(tmp_path, block, records, records[0][0] - 0.01, now)
    assert abs((now + clock.waited) - (anchor + 0.2)) < 0.006  # closes at +200 ms (one poll of slack)
    assert clock.waited < 0.25  # not the 1000 ms upper bound
    findings = evaluate_capture(block, result, CTX, PIXIT)
    assert findings[-1].verdict == Verdict.PASS and findings[-1].actual == "nothing seen"


def test_packet_inside_the_absence_window_is_seen_and_fails(tmp_path):
    cap, _, steps = _registration(tmp_path)
    records = cap.frames_records()
    anchor = records[steps[19][0]][0]
    late = records[steps[18][0]]  # another P-CSCF -> S-CSCF REGISTER, 100 ms after step 19
    block = {"settle_ms": 1000, "expect": EXPECT, "absent": [{"to": "scscf", "after": 19, "within_ms": 200}]}
    result, clock, _ = _window(tmp_path, block, records, records[0][0] - 0.01, records[-1][0] + 0.001,
                               arrivals=[(anchor + 0.1, *late[1:])])
    findings = evaluate_capture(block, result, CTX, PIXIT)
    assert findings[-1].verdict == Verdict.FAIL


def test_missing_message_waits_up_to_settle_ms_then_fails(tmp_path):
    cap, _, steps = _registration(tmp_path)
    records = [r for i, r in enumerate(cap.frames_records()) if i not in steps[21]]
    block = {"settle_ms": 300, "expect": EXPECT}
    result, clock, _ = _window(tmp_path, block, records, records[0][0] - 0.01, records[-1][0] + 0.001)
    assert abs(clock.waited - 0.3) < 1e-4  # the upper bound, not more
    assert "missing step 21" in result.stats["settle"]["waiting_for"]
    findings = evaluate_capture(block, result, CTX, PIXIT)
    assert findings[-1].verdict == Verdict.FAIL and findings[-1].actual == "missing"


def test_late_message_ends_the_wait_when_it_arrives(tmp_path):
    cap, _, steps = _registration(tmp_path)
    all_records = cap.frames_records()
    last = steps[21][-1]
    early, tail = all_records[:steps[21][0]], all_records[steps[21][0]:last + 1]
    now = early[-1][0] + 0.001
    arrivals = [(now + 0.05 + k * 1e-4, *r[1:]) for k, r in enumerate(tail)]
    block = {"settle_ms": 300, "expect": EXPECT}
    result, clock, _ = _window(tmp_path, block, early, early[0][0] - 0.01, now, arrivals=arrivals)
    assert 0.05 - 1e-6 <= clock.waited < 0.07  # until the message came, not the 300 ms bound
    assert all(f.verdict == Verdict.PASS for f in evaluate_capture(block, result, CTX, PIXIT))


def test_without_barrier_the_window_waits_for_quiet_legs(tmp_path):
    cap, _, _ = _registration(tmp_path)
    records = cap.frames_records()
    block = {"settle_ms": 300, "expect": EXPECT}
    _, clock, _ = _window(tmp_path, block, records, records[0][0] - 0.01, records[-1][0] + 0.001,
                          barrier=False)
    assert 0.1 <= clock.waited < 0.15  # 100 ms of quiet (no way to know the sniffer caught up)


def test_settle_state_optional_and_unwindowed_entries_do_not_hold_the_window():
    block = {"expect": [{"flow": 12, "from": "ue", "to": "3rdwws", "sip": {"method": "REGISTER"},
                         "optional": True}],
             "forbidden": [{"from": "wsf", "to": "pcscf", "sip": {"method": "REGISTER"}}],
             "absent": [{"to": "pcscf", "within_ms": 500}]}
    tl = Timeline(t_start=100.0, t_end=100.2)
    bm = match_block(block, tl, PIXIT)
    state = settle_state(bm, 100.0, 100.2)
    assert not state.done and abs(state.wake_at - 100.5) < 1e-9  # only the 500 ms absence window
    assert settle_state(match_block(block, Timeline(t_start=100.0, t_end=100.5), PIXIT), 100.0, 100.5).done


def test_capture_that_never_ran_returns_at_once_with_its_reason(tmp_path):
    f, clock = _factory(tmp_path, [], 1000.0, barrier=False)
    f.session.error = "no privilege to capture on lo"
    tc = SimpleNamespace(id="TP_SETTLE", capture={"expect": EXPECT})
    result = f.window(tc, {"t0": 999.0, "keylogs": [], "opened_from": 0}, {"expect": EXPECT}, set())
    assert clock.waited == 0.0 and result.error == "no privilege to capture on lo"
    assert all(x.verdict == Verdict.INCONCLUSIVE for x in evaluate_capture({"expect": EXPECT}, result, CTX, PIXIT))


def test_closing_the_session_stops_the_sniffers_without_analysing_it_again(tmp_path):
    """Every window was dissected and written already: closing the session-wide capture stops its
    sniffers and writes no session-wide file (it used to dissect and redact the whole session)."""
    stopped = []

    class Sniffer:
        error = None

        def __init__(self, iface, bpf, on_packet):
            self.on_packet = on_packet

        def start(self):
            self.on_packet(1.0, 1, b"\x00" * 60)  # one captured frame: `stop` would analyse it

        def stop(self):
            stopped.append(True)

    profile = SimpleNamespace(pixit=PIXIT, base_dir=str(ROOT), redactor=None)
    f = CaptureFactory(profile, tmp_path, sniffer_factory=Sniffer)
    f.ensure_started(tmp_path / "harness.keylog")
    assert f.session.records, "the fake sniffer delivered its frame"
    f.close()
    assert stopped == [True] and f.session is None
    assert list((tmp_path / "captures").iterdir()) == []


def test_sniffer_trouble_during_a_session_makes_that_window_inconclusive(tmp_path):
    """A reader that failed, or packets the kernel dropped, while the session-wide capture runs:
    the window's assertions are inconclusive (not failed for messages the capture lost)."""
    cap, _, _ = _registration(tmp_path)
    records = cap.frames_records()
    f, clock = _factory(tmp_path, records, records[-1][0] + 0.001)
    f.session.problem = "the kernel dropped 3 packets on lo since the previous test case's window"
    block = {"settle_ms": 300, "expect": EXPECT}
    tc = SimpleNamespace(id="TP_SETTLE", capture=block)
    result = f.window(tc, {"t0": records[0][0] - 0.01, "keylogs": [], "opened_from": 0}, block, set())
    assert result.error == f.session.problem and f.session.problem in result.timeline.problems
    assert {x.verdict for x in evaluate_capture(block, result, CTX, PIXIT)} == {Verdict.INCONCLUSIVE}


def test_session_reports_a_failed_reader_from_then_on_and_each_drop_once():
    from conformance.capture.sniff import CaptureSession

    class Sniffer:
        def __init__(self, iface, bpf, on_packet):
            self.iface, self.error, self.drops = iface, None, []

        def start(self):
            pass

        def new_drops(self):
            return self.drops.pop(0) if self.drops else 0

        def stop(self):
            pass

    session = CaptureSession(PIXIT, [], ["lo"], 0, sniffer_factory=Sniffer)
    session.start()
    sniffer = session.sniffers[0]
    assert session.sniffer_problem() is None
    sniffer.drops = [5]
    assert "dropped 5 packets on lo" in session.sniffer_problem()
    assert session.sniffer_problem() is None  # counted once, in the window where they happened
    sniffer.error = "sniffer on lo failed: OSError: [Errno 100] Network is down"
    assert session.sniffer_problem() == sniffer.error and session.sniffer_problem() == sniffer.error
    session.halt()
