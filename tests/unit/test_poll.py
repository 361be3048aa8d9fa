"""`poll:` on a step (conformance/run/engine.py): the step is asked again while its expectations
fail, until `within_ms` after the first attempt, and judged on its last attempt. Time is a
FakeClock: the bounds are tested without sleeping."""

from __future__ import annotations

from pathlib import Path

import pytest

from conformance.events import HttpExchange, Nothing
from conformance.match.engine import MatchContext
from conformance.model.profile import load_profile
from conformance.run import engine as engine_module
from conformance.run.clock import FakeClock
from conformance.run.engine import Engine
from conformance.run.state import CaseState
from conformance.verdicts import Verdict

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def engine(tmp_path):
    clock = FakeClock()
    eng = Engine(load_profile(REPO / "profiles/reference.yaml"), workdir=tmp_path, clock=clock)
    return eng, clock


def _state(eng, tmp_path) -> CaseState:
    return CaseState(profile=eng.profile, user={}, users={}, keylog=tmp_path / "k")


def _answers(monkeypatch, clock, answers, cost_s=0.01):
    """actions.run answers each attempt with the next of `answers` (the last one repeats), each
    costing `cost_s` of fake time; returns the list of the fake times the attempts started at."""
    started = []

    def run(name, spec, state, env):
        started.append(clock.t)
        clock.advance(cost_s)
        return answers[min(len(started), len(answers)) - 1]

    monkeypatch.setattr(engine_module.actions, "run", run)
    return started


def _get(status: int) -> HttpExchange:
    return HttpExchange("GET", "https://127.0.0.12:9443/x", status=status)


STEP = {"http": {"url": "https://127.0.0.12:9443/x"}, "poll": {"within_ms": 1000, "every_ms": 100},
        "expect": [{"status": 200, "ref": "RFC 9110 15.3.1"}]}


def test_a_poll_ends_at_the_first_attempt_that_holds(engine, tmp_path, monkeypatch):
    eng, clock = engine
    started = _answers(monkeypatch, clock, [_get(404), _get(404), _get(200)])
    t0 = clock.t
    outcome = eng._run_step(1, STEP, _state(eng, tmp_path), MatchContext())
    assert outcome.verdict == Verdict.PASS
    assert len(started) == 3
    assert [round(t - t0, 2) for t in started] == [0.0, 0.11, 0.22]  # every_ms apart after each answer


def test_a_poll_that_never_holds_fails_at_within_ms_with_the_last_answer(engine, tmp_path, monkeypatch):
    eng, clock = engine
    started = _answers(monkeypatch, clock, [_get(404)])
    t0 = clock.t
    outcome = eng._run_step(1, STEP, _state(eng, tmp_path), MatchContext())
    assert outcome.verdict == Verdict.FAIL
    assert started[-1] - t0 <= 1.0 < clock.t - t0 + 0.2  # no attempt starts after within_ms
    assert 8 <= len(started) <= 10
    failed = [f for f in outcome.findings if f.verdict == Verdict.FAIL]
    assert failed and f"after {len(started)} attempt(s) within 1000 ms" in failed[0].message
    assert failed[0].ref == "RFC 9110 15.3.1"


def test_silence_ends_a_poll_as_inconclusive(engine, tmp_path, monkeypatch):
    eng, clock = engine
    started = _answers(monkeypatch, clock, [_get(404), Nothing(waited_ms=5000.0, peer_alive=True)])
    outcome = eng._run_step(1, STEP, _state(eng, tmp_path), MatchContext())
    assert outcome.verdict == Verdict.INCONCLUSIVE
    assert len(started) == 2  # asking a silent SUT again proves nothing


def test_a_step_without_poll_is_asked_once(engine, tmp_path, monkeypatch):
    eng, clock = engine
    started = _answers(monkeypatch, clock, [_get(404), _get(200)])
    step = {k: v for k, v in STEP.items() if k != "poll"}
    assert eng._run_step(1, step, _state(eng, tmp_path), MatchContext()).verdict == Verdict.FAIL
    assert len(started) == 1


def test_a_bad_poll_is_the_test_cases_error(engine, tmp_path, monkeypatch):
    eng, clock = engine
    _answers(monkeypatch, clock, [_get(200)])
    step = dict(STEP, poll={"within_ms": "${pixit.no.such.value}"})
    assert eng._run_step(1, step, _state(eng, tmp_path), MatchContext()).verdict == Verdict.ERROR


def test_poll_is_only_allowed_on_actions_that_only_ask(tmp_path):
    from conformance.model.testcase import check_testcase

    case = tmp_path / "TP_X_POLL_001.yaml"
    case.write_text(
        "id: TP_X_POLL_001\ntitle: t\ndescription: d\nsut: wsf\nkind: negative\nseverity: normal\nrefs: [x]\n"
        "steps:\n  - name: close\n    ws_close: {name: wsf}\n    poll: {within_ms: 1000}\n")
    tc, problems = check_testcase(case)
    assert tc is None
    assert [(p.line, "poll" in p.message and "ws_close" in p.message) for p in problems] == [(11, True)], problems
