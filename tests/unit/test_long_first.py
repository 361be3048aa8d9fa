"""Parallel catalog runs hand out the test cases that wait a stated time first (conformance.run.long_first)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

from conformance.model.profile import load_profile
from conformance.model.testcase import load_testcase
from conformance.run.long_first import longest_first, make_scheduler, stated_wait_ms
from tests.unit.xdist_fakes import FakeWorker

ROOT = Path(__file__).resolve().parents[2]
PIXIT = load_profile(ROOT / "profiles" / "reference.yaml").pixit


def _case(folder: str, name: str):
    return load_testcase(ROOT / "testcases" / folder / f"{name}.yaml")


def test_stated_waits_of_the_catalog_cases():
    assert stated_wait_ms(_case("lifecycle", "TP_WSF_WSC_001"), PIXIT) == 1000  # poll: {within_ms: 1000}
    # poll: {within_ms: "${pixit.lifecycle.expiry_wait_ms}"}, resolved from the profile
    assert stated_wait_ms(_case("lifecycle", "TP_SCSCF_EXP_006"), PIXIT) == PIXIT["lifecycle"]["expiry_wait_ms"]
    assert stated_wait_ms(_case("lifecycle", "TP_WSF_RER_002"), PIXIT) == 15000  # until_exp: its max_ms bound
    assert stated_wait_ms(_case("wsf", "TP_WSF_SIP_005"), PIXIT) == 800  # expects nothing for timeout_ms
    assert stated_wait_ms(_case("flow", "TP_FLOW_REG_001"), PIXIT) == 0


def test_an_unresolvable_duration_counts_as_no_wait():
    assert stated_wait_ms(_case("lifecycle", "TP_SCSCF_EXP_006"), {}) == 0


def test_longest_first_keeps_catalog_order_among_equals():
    items = ["a0", "b1000", "c0", "d800", "e1000", "f0"]
    ordered = longest_first(items, lambda s: int(s[1:]))
    assert ordered == ["b1000", "e1000", "d800", "a0", "c0", "f0"]


def test_the_waiter_takes_the_waits_longest_first_and_the_others_the_work():
    from conformance.run.long_first import pick

    pending = [0, 1, 2, 3, 4, 5, 6, 7]  # 0-2 wait (longest first), 3-7 do not
    waiting = {0, 1, 2}
    assert pick(pending, waiting, 3, waiter=True) == [0, 1, 2]
    assert pick(pending, waiting, 3, waiter=False) == [3, 4, 5]
    # out of its own kind, each takes the other's: the waiter the work in order, the others the
    # shortest waits left
    assert pick([1, 2, 6, 7], waiting, 3, waiter=True) == [1, 2, 6]
    assert pick([0, 1, 2, 7], waiting, 3, waiter=False) == [7, 2, 1]
    assert pick([], waiting, 3, waiter=True) == []


def test_the_waiting_head_stops_at_the_first_case_that_states_no_wait():
    from conformance.run.long_first import waiting_head

    asked = []

    def wait_of(nodeid):
        asked.append(nodeid)
        return {"a": 15000, "b": 800}.get(nodeid, 0)

    assert waiting_head(["a", "b", "c", "d", "e"], wait_of, at_least_ms=1) == {0, 1}
    assert asked == ["a", "b", "c"]


def test_a_short_stated_wait_is_dealt_with_the_work():
    from conformance.run.long_first import LONG_WAIT_MS, waiting_head

    waits = {"a": 15000, "b": 3500, "c": 1000, "d": 800}
    assert LONG_WAIT_MS > 1000  # the catalog's required silences (800 ms) and pollers (1000 ms) work
    assert waiting_head(["a", "b", "c", "d", "e"], waits.get) == {0, 1}


def _scheduler(waits: dict[str, float], nodes=("gw0", "gw1")):
    reports = []
    config = SimpleNamespace(getvalue=lambda name: ["popen"] * len(nodes) if name == "tx" else None,
                             getoption=lambda name: None,
                             hook=SimpleNamespace(pytest_collectreport=lambda report: reports.append(report)))
    sched = make_scheduler(config, None, lambda nodeid: waits.get(nodeid, 0.0))
    workers = [FakeWorker(n) for n in nodes]
    for w in workers:
        sched.add_node(w)
    return sched, workers, reports


COLLECTION = ["long_a", "long_b", "work_1", "work_2", "work_3", "work_4", "work_5"]
WAITS = {"long_a": 5000.0, "long_b": 3000.0}


def test_a_worker_starts_as_soon_as_its_own_collection_is_in():
    sched, (waiter, other), _ = _scheduler(WAITS)
    sched.add_node_collection(other, COLLECTION)  # the later-spawned worker happens to collect first
    assert sched.collection_is_completed
    sched.schedule()
    assert other.sent == [2, 3, 4]  # the work, without waiting for the waiter's collection
    assert waiter.sent == []
    sched.add_node_collection(waiter, COLLECTION)
    sched.schedule()
    assert waiter.sent == [0, 1, 5]  # the waits, longest first, then what is left


def test_a_worker_that_collected_something_else_gets_no_case_and_fails_the_run():
    sched, (first, second), reports = _scheduler(WAITS)
    sched.add_node_collection(first, COLLECTION)
    sched.schedule()
    sched.add_node_collection(second, COLLECTION[:-1])
    sched.schedule()
    assert second.sent == [] and second.shutting_down
    assert [r.outcome for r in reports] == ["failed"]
    assert "Different tests were collected" in str(reports[0].longrepr)


def test_a_worker_whose_collection_comes_after_the_last_case_was_dealt_is_shut_down():
    sched, (first, second), _ = _scheduler({})
    sched.add_node_collection(first, ["only"])
    sched.schedule()
    assert first.sent == [0]
    sched.add_node_collection(second, ["only"])
    sched.schedule()
    assert second.sent == [] and second.shutting_down
