"""The workers of a parallel run hand their stated waits to the controller's scheduler
(conformance.run.stated_waits), so that it does not read the whole catalog on the way to the first
test case; whatever they hand over that is stale or malformed is not taken."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from conformance import plugin
from conformance.run import stated_waits
from tests.unit.xdist_fakes import FakeWorker

WAITS = {"a.yaml::A": 15000.0, "b.yaml::B": 3500.0, "c.yaml::C": 0.0}


def test_what_a_worker_writes_the_controller_reads(tmp_path):
    assert stated_waits.write(tmp_path, "gw1", "t1", WAITS)
    assert stated_waits.read(tmp_path, "t1") == {"a.yaml::A": 15000.0, "b.yaml::B": 3500.0}  # no wait: not written
    assert not list((tmp_path / stated_waits.FOLDER).glob("*.tmp"))


def test_a_file_of_another_run_is_not_taken(tmp_path):
    stated_waits.write(tmp_path, "gw0", "earlier", WAITS)
    assert stated_waits.read(tmp_path, "now") is None
    stated_waits.write(tmp_path, "gw1", "now", {"b.yaml::B": 1.0})
    assert stated_waits.read(tmp_path, "now") == {"b.yaml::B": 1.0}
    stated_waits.clear(tmp_path)
    assert stated_waits.read(tmp_path, "now") is None


@pytest.mark.parametrize("waits", [
    {"a": "15000"}, {"a": -1}, {"a": float("nan")}, {"a": True}, {"a": None}, ["a", 1], "a",
])
def test_a_malformed_file_is_not_taken(tmp_path, waits):
    folder = tmp_path / stated_waits.FOLDER
    folder.mkdir()
    (folder / "gw0.json").write_text(json.dumps({"run": "t", "waits": waits}))  # NaN as JSON's NaN
    assert stated_waits.read(tmp_path, "t") is None


def test_a_file_too_big_or_not_json_is_not_taken(tmp_path):
    folder = tmp_path / stated_waits.FOLDER
    folder.mkdir()
    (folder / "gw0.json").write_text("{" + " " * stated_waits.MAX_BYTES + "}")
    (folder / "gw1.json").write_bytes(b"\xff{")
    assert stated_waits.read(tmp_path, "t") is None


def test_a_worker_asked_for_nothing_writes_nothing(tmp_path):
    assert stated_waits.hand_over({"workerid": "gw0"}, WAITS) is False
    assert not (tmp_path / stated_waits.FOLDER).exists()


def test_a_worker_that_cannot_write_says_so(tmp_path):
    (tmp_path / stated_waits.FOLDER).write_text("a file where the folder should be")
    assert stated_waits.write(tmp_path, "gw0", "t", WAITS) is False
    assert stated_waits.read(tmp_path, "t") is None


class _Config:
    """What the plugin's controller hooks ask of pytest's config."""

    def __init__(self, workdir: Path):
        self.stash = {}
        self.options = {"--profile": "profiles/reference.yaml", "--ims-analyze": None, "--ims-workdir": str(workdir)}
        self.hook = SimpleNamespace(pytest_collectreport=lambda report: None)

    def getoption(self, name, default=None):
        return self.options.get(name, default)

    def getvalue(self, name):
        return {"dist": "load", "tx": ["popen", "popen"]}.get(name)


COLLECTION = ["a.yaml::A", "b.yaml::B", "w1.yaml::W1", "w2.yaml::W2", "w3.yaml::W3", "w4.yaml::W4"]


def _controller(tmp_path, monkeypatch, computed):
    """A controller with two workers set up (their input made); `computed` is what working the
    waits out from the catalog would give, and every time it is asked is counted."""
    asked = []
    monkeypatch.setattr(plugin, "_stated_wait_of", lambda config, nodeid: asked.append(nodeid) or computed.get(nodeid, 0))
    config = _Config(tmp_path)
    stale = tmp_path / stated_waits.FOLDER / "gw9.json"
    stale.parent.mkdir()
    stale.write_text(json.dumps({"run": "earlier", "waits": {"w4.yaml::W4": 99999}}))
    nodes = [FakeWorker(n, config) for n in ("gw0", "gw1")]
    for node in nodes:
        plugin.pytest_configure_node(node)
    assert not stale.exists()  # an earlier run's file is gone before any worker starts
    sched = plugin.pytest_xdist_make_scheduler(config, None)
    for node in nodes:
        sched.add_node(node)
    return sched, nodes, asked


def test_the_controller_takes_the_waits_a_worker_handed_over(tmp_path, monkeypatch):
    sched, (waiter, other), asked = _controller(tmp_path, monkeypatch, computed={})
    handover = other.workerinput[stated_waits.WORKERINPUT_KEY]
    assert handover == waiter.workerinput[stated_waits.WORKERINPUT_KEY]  # one token per run
    assert handover["dir"] == str(tmp_path.resolve())
    assert stated_waits.hand_over(other.workerinput, WAITS)  # as worker gw1 does, sorting its collection
    sched.add_node_collection(other, COLLECTION)
    sched.schedule()
    sched.add_node_collection(waiter, COLLECTION)
    sched.schedule()
    assert asked == []  # nothing read from the catalog
    assert waiter.sent[:2] == [0, 1] and other.sent == [2, 3, 4]


def test_without_a_handed_over_file_the_controller_works_the_waits_out(tmp_path, monkeypatch):
    sched, (waiter, other), asked = _controller(tmp_path, monkeypatch, computed=WAITS)
    sched.add_node_collection(waiter, COLLECTION)
    sched.schedule()
    assert asked[:2] == ["a.yaml::A", "b.yaml::B"]
    assert waiter.sent[:2] == [0, 1]
