"""A run starts up without the cyclic collector and runs its cases with it
(conformance.run.start_up_gc, and where the plugin and the CLI call it)."""

from __future__ import annotations

import gc
from types import SimpleNamespace

import pytest

from conformance import plugin
from conformance.run import start_up_gc


@pytest.fixture(autouse=True)
def _collector_restored():
    was = gc.isenabled()
    yield
    start_up_gc.resume()
    gc.enable() if was else gc.disable()


def test_pause_turns_the_collector_off_and_resume_back_on():
    gc.enable()
    start_up_gc.pause()
    assert not gc.isenabled()
    start_up_gc.resume()
    assert gc.isenabled()


def test_a_collector_the_process_had_turned_off_stays_off():
    gc.disable()
    start_up_gc.pause()
    start_up_gc.resume()
    assert not gc.isenabled()


def test_resume_without_pause_changes_nothing():
    gc.disable()
    start_up_gc.resume()
    assert not gc.isenabled()


def test_what_start_up_built_is_moved_to_the_oldest_generation():
    gc.enable()
    gc.collect()
    start_up_gc.pause()
    built = [[] for _ in range(10)]  # tracked containers, young when made
    assert any(o is built for o in gc.get_objects(generation=0))
    start_up_gc.resume()
    assert not any(o is built for o in gc.get_objects(generation=0))
    assert any(o is built for o in gc.get_objects(generation=2))


def _config(profile: str | None):
    options = {"--profile": profile}
    return SimpleNamespace(stash=pytest.Stash(), getoption=lambda name, default=None: options.get(name, default),
                           option=SimpleNamespace(collectonly=False), addinivalue_line=lambda *a: None)


def test_the_plugin_pauses_a_catalog_run_until_its_test_loop():
    gc.enable()
    config = _config("profiles/reference.yaml")
    plugin.pytest_configure(config)
    assert not gc.isenabled()  # collection and set-up
    plugin.pytest_runtestloop(SimpleNamespace(config=config))
    assert gc.isenabled()  # the cases


def test_a_session_that_never_reaches_its_loop_gets_the_collector_back_at_unconfigure():
    gc.enable()
    config = _config("profiles/reference.yaml")
    plugin.pytest_configure(config)
    plugin.pytest_unconfigure(config)
    assert gc.isenabled()


def test_a_session_without_a_profile_is_left_alone():
    gc.enable()
    plugin.pytest_configure(_config(None))
    assert gc.isenabled()


def test_a_run_that_stops_before_pytest_gives_the_collector_back(tmp_path, capsys):
    from conformance import cli

    gc.enable()
    assert cli.main(["run", "--profile", str(tmp_path / "missing.yaml")]) == cli.EXIT_ERROR
    assert gc.isenabled()
