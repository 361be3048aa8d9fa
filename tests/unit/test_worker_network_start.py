"""The controller of a parallel run starts each worker's reference network; the worker waits for
its own (conformance.run.worker_network_start)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conformance.model.profile import load_profile
from conformance.run import reference, worker_network_start
from conformance.run.worker_network_start import (
    ControllerNetworks,
    NetworkNotStarted,
    handover_file,
    wait_for_mine,
)

ROOT = Path(__file__).resolve().parents[2]


class FakeNetwork:
    def __init__(self, profile, zygote, events):
        self.addresses = {n["address"] for n in profile.pixit["nodes"].values()}
        self.state_dir = reference.network_config(profile).state_dir
        self.zygote = zygote
        self.events = events
        self.stopped = 0

    def stop_all(self):
        self.stopped += 1
        self.events.append(f"stop {min(self.addresses)}")


class FakeZygote:
    def __init__(self, state_dirs, log_path, events):
        self.state_dirs = [str(d) for d in state_dirs]
        self.log_path = log_path
        self.events = events

    def close(self):
        self.events.append("zygote closed")


@pytest.fixture
def fakes(monkeypatch):
    """reference.ensure_up and the shared fork server, recorded instead of started."""
    started, events = [], []

    def fake_up(profile, zygote=None):
        started.append(FakeNetwork(profile, zygote, events))
        return started[-1]

    monkeypatch.setattr(reference, "ensure_up", fake_up)
    monkeypatch.setattr(reference, "shared_zygote",
                        lambda profiles, log: FakeZygote([reference.network_config(p).state_dir for p in profiles],
                                                         log, events))
    return started, events


def test_each_worker_gets_a_network_at_its_own_addresses_and_all_are_stopped(fakes, tmp_path):
    started, events = fakes
    stale = handover_file(tmp_path, 1)
    stale.parent.mkdir(parents=True)
    stale.write_text(json.dumps({"error": "an earlier run"}))  # must not be taken for this run's word
    networks = ControllerNetworks(load_profile(ROOT / "profiles" / "reference.yaml"), 2, tmp_path)
    networks.start()
    wait_for_mine(tmp_path, 0, timeout=30)
    wait_for_mine(tmp_path, 1, timeout=30)
    assert sorted(min(n.addresses) for n in started) == ["127.1.0.11", "127.2.0.11"]
    # one fork server for both networks, serving exactly their state directories
    zygote = started[0].zygote
    assert isinstance(zygote, FakeZygote) and started[1].zygote is zygote
    assert sorted(zygote.state_dirs) == sorted(n.state_dir for n in started)
    networks.stop_soon(0)  # gw0 finished first
    networks.stop()
    assert [n.stopped for n in started] == [1, 1]
    assert sorted(events[:2]) == ["stop 127.1.0.11", "stop 127.2.0.11"] and events[2:] == ["zygote closed"]


def test_a_single_network_keeps_a_fork_server_of_its_own(fakes, tmp_path):
    started, events = fakes
    networks = ControllerNetworks(load_profile(ROOT / "profiles" / "reference.yaml"), 1, tmp_path)
    networks.start()
    wait_for_mine(tmp_path, 0, timeout=30)
    assert started[0].zygote is None
    networks.stop()
    assert events == ["stop 127.1.0.11"]


def test_a_network_that_did_not_start_fails_its_worker_with_the_reason(monkeypatch, tmp_path):
    def broken(profile, zygote=None):
        raise RuntimeError("node wsf exited with 1")

    monkeypatch.setattr(reference, "ensure_up", broken)
    networks = ControllerNetworks(load_profile(ROOT / "profiles" / "reference.yaml"), 1, tmp_path)
    networks.start()
    with pytest.raises(NetworkNotStarted, match="gw0: RuntimeError: node wsf exited with 1"):
        wait_for_mine(tmp_path, 0, timeout=30)
    networks.stop()


def test_the_wait_for_a_network_is_bounded(tmp_path):
    with pytest.raises(NetworkNotStarted, match="not up within"):
        wait_for_mine(tmp_path, 3, timeout=0.2)
    assert worker_network_start.POLL_S < 0.2
