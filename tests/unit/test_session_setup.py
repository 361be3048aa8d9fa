"""The session's set-up runs beside collection and what `ims-conformance run` starts early is
taken over or stopped (conformance.run.session_setup)."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from conformance.model.profile import load_profile
from conformance.run import reference, session_setup
from conformance.run.session_setup import BackgroundSetup, SetupTimeout

ROOT = Path(__file__).resolve().parents[2]


def test_the_setup_runs_beside_the_caller_and_hands_back_its_value():
    release = threading.Event()
    setup = BackgroundSetup(lambda: release.wait(5) and "network")
    assert not setup.done()  # the caller goes on (collects) while it runs
    release.set()
    assert setup.result(5) == "network"
    assert setup.done()


def test_the_setup_error_is_raised_where_it_is_awaited_once():
    def fail():
        raise reference.NetworkMismatch("something else listens")

    setup = BackgroundSetup(fail)
    with pytest.raises(reference.NetworkMismatch, match="something else listens"):
        setup.result(5)
    assert setup.result(5) is None  # the session end waits again: the error was the session's already


def test_a_setup_that_does_not_end_is_a_bounded_wait():
    release = threading.Event()
    setup = BackgroundSetup(lambda: release.wait(5))
    with pytest.raises(SetupTimeout, match="did not end within 0 s"):
        setup.result(0.05)
    release.set()


class FakeNetwork:
    def __init__(self):
        self.stopped = 0

    def stop_all(self):
        self.stopped += 1


def test_an_early_network_not_taken_over_is_stopped(monkeypatch):
    net = FakeNetwork()
    monkeypatch.setattr(reference, "ensure_up", lambda profile: net)
    session_setup.start_early(load_profile(ROOT / "profiles" / "reference.yaml"), None, ROOT)
    session_setup.stop_untaken()  # e.g. the catalog was invalid: pytest never ran
    assert net.stopped == 1
    assert session_setup.take_early_network() is None


def test_an_early_network_taken_over_is_the_plugins_to_stop(monkeypatch):
    net = FakeNetwork()
    monkeypatch.setattr(reference, "ensure_up", lambda profile: net)
    session_setup.start_early(load_profile(ROOT / "profiles" / "reference.yaml"), None, ROOT)
    taken = session_setup.take_early_network()
    assert taken is not None and taken.result(5) is net
    session_setup.stop_untaken()
    assert net.stopped == 0


def test_nothing_starts_early_for_a_profile_that_launches_no_network(monkeypatch):
    profile = load_profile(ROOT / "profiles" / "reference.yaml")
    monkeypatch.setattr(profile, "reference_network", {"launch": False})
    monkeypatch.setattr(reference, "ensure_up", lambda p: pytest.fail("nothing to launch"))
    session_setup.start_early(profile, None, ROOT)
    session_setup.start_early(profile, "2", ROOT)
    assert session_setup.take_early_network() is None
    assert session_setup.take_early_worker_networks(2, ROOT) is None


def test_worker_networks_are_taken_only_for_the_same_workers_and_workdir(monkeypatch, tmp_path):
    from conformance.run import worker_network, worker_network_start

    started = []

    class FakeNetworks:
        def __init__(self, profile, count, workdir):
            self.count, self.workdir, self.stopped = count, workdir, 0
            started.append(self)

        def start(self):
            pass

        def stop(self):
            self.stopped += 1

    monkeypatch.setattr(worker_network, "applies", lambda profile: True)
    monkeypatch.setattr(worker_network_start, "ControllerNetworks", FakeNetworks)
    profile = load_profile(ROOT / "profiles" / "reference.yaml")
    session_setup.start_early(profile, "auto", tmp_path)  # xdist alone knows how many: nothing early
    assert started == []
    session_setup.start_early(profile, "2", tmp_path)
    assert session_setup.take_early_worker_networks(3, tmp_path) is None
    assert session_setup.take_early_worker_networks(2, tmp_path / "other") is None
    session_setup.stop_untaken()
    assert started[0].stopped == 1
