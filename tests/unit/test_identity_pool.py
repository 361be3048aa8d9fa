"""Identities without provisioning (issue 9 item 3): a pool of fixture users, each held by one
running test case at a time (lock files, so across processes too), inconclusive when none is
free, and a warning when the profile has no provisioning."""

from __future__ import annotations

import multiprocessing
import types
from pathlib import Path

import pytest

from conformance.run.clock import FakeClock
from conformance.run.identities import IdentityProvider, ProvisioningError, no_provisioning_warning


def user(name: str) -> dict:
    impus = [f"sip:{name}@ims.example.net"] + (["tel:+15550100"] if name == "alice" else [])
    return {"web_id": f"{name}@web.operator.example", "password": f"{name}-pw", "impi": f"{name}@ims.example.net",
            "impus": impus, "tp_username": f"tp-{name}", "tp_password": "x"}


def profile(names=("alice", "bob"), provisioning=None, pool=None):
    users = {"fixtures": {n: user(n) for n in names}}
    if provisioning:
        users["provisioning"] = provisioning
    if pool is not None:
        users["pool"] = pool
    return types.SimpleNamespace(pixit={"users": users, "home_domain": "ims.example.net"}, base_dir=".")


def case(user="fresh", steps=()):
    return types.SimpleNamespace(id="TP_X_Y_001", user=user, steps=list(steps), capture=None)


def provider(tmp_path: Path, prof=None, deadline=2.0):
    return IdentityProvider(prof or profile(), tmp_path, clock=FakeClock(start=0.0), lease_deadline_s=deadline)


def test_running_cases_never_share_a_fixture_user(tmp_path):
    ids = provider(tmp_path)
    a, b = ids.lease(case()), ids.lease(case())
    assert {a.fixture, b.fixture} == {"alice", "bob"}
    assert a.needs_reset and b.needs_reset  # shared fixtures get a preamble and a postamble


def test_no_free_user_is_inconclusive_after_a_bounded_wait(tmp_path):
    ids = provider(tmp_path, deadline=1.5)
    held = [ids.lease(case()), ids.lease(case())]
    with pytest.raises(ProvisioningError, match="never shared"):
        ids.lease(case())
    assert ids.clock.now() >= 1.5  # it waited, then gave up: bounded
    held[0].release()
    assert ids.lease(case()).fixture == held[0].fixture  # released: usable again


def test_named_fixture_and_pool_share_the_lock(tmp_path):
    ids = provider(tmp_path, profile(names=("alice",)))
    lease = ids.lease(case("alice"))
    with pytest.raises(ProvisioningError):
        ids.lease(case())  # the only pool user is held by a case that named it
    lease.release()
    assert ids.lease(case()).fixture == "alice"


def test_pool_restricts_fresh_users(tmp_path):
    ids = provider(tmp_path, profile(names=("alice", "bob", "carol"), pool=["carol"]))
    assert ids.lease(case()).fixture == "carol"
    with pytest.raises(ProvisioningError, match="carol"):
        ids.lease(case())


def _hold_in_other_process(workdir: str, ready, done):
    ids = IdentityProvider(profile(names=("alice",)), Path(workdir))
    lease = ids.lease(case())
    ready.set()
    done.wait(10)
    lease.release()


def test_locks_hold_across_processes(tmp_path):
    ctx = multiprocessing.get_context("fork")
    ready, done = ctx.Event(), ctx.Event()
    proc = ctx.Process(target=_hold_in_other_process, args=(str(tmp_path), ready, done))
    proc.start()
    try:
        assert ready.wait(10)
        with pytest.raises(ProvisioningError):
            provider(tmp_path, profile(names=("alice",)), deadline=0.3).lease(case())
    finally:
        done.set()
        proc.join(10)
    assert provider(tmp_path, profile(names=("alice",))).lease(case()).fixture == "alice"


def test_provisioned_users_are_not_leased(tmp_path, monkeypatch):
    ids = provider(tmp_path, profile(provisioning={"url": "https://as.example/admin/users"}))
    monkeypatch.setattr(ids, "_provision", lambda case_id: user("fresh1"))
    lease = ids.lease(case())
    assert lease.fixture is None and not lease.needs_reset


def test_warning_only_without_provisioning():
    assert "no users.provisioning" in no_provisioning_warning(profile())
    assert "alice, bob" in no_provisioning_warning(profile())
    assert no_provisioning_warning(profile(provisioning={"url": "https://as.example/admin/users"})) is None


def test_no_fixtures_at_all_is_a_clear_reason(tmp_path):
    with pytest.raises(ProvisioningError, match="neither users.provisioning nor fixture users"):
        provider(tmp_path, profile(names=())).lease(case())


def test_a_user_the_case_names_is_not_its_fresh_identity(tmp_path):
    ids = provider(tmp_path)
    names_bob = case(steps=[{"sip_send": {"headers": {"To": "<${users.bob.impus[0]}>"}}}])
    for _ in range(5):  # whatever the start of the round robin
        lease = ids.lease(names_bob)
        assert lease.fixture == "alice"
        lease.release()
    only_bob = provider(tmp_path, profile(names=("bob",)))
    with pytest.raises(ProvisioningError, match="no suitable fixture user"):
        only_bob.lease(names_bob)


def test_session_start_prints_the_warning():
    from conformance import plugin

    class Config:
        def __init__(self, prof):
            self.stash = {plugin._PROFILE_KEY: prof}

        def getoption(self, name):
            return {"--profile": "p.yaml", "--ims-analyze": None}[name]

    lines = plugin.pytest_report_header(Config(profile()))
    assert lines and lines[0].startswith("WARNING: the profile has no users.provisioning")
    assert plugin.pytest_report_header(Config(profile(provisioning={"url": "https://as.example/u"}))) is None


def test_a_case_using_a_second_impu_gets_a_user_that_has_one(tmp_path):
    ids = provider(tmp_path)
    second = case(steps=[{"sip_send": {"headers": {"To": "<${user.impus[1]}>"}}}])
    for _ in range(5):
        lease = ids.lease(second)
        assert lease.fixture == "alice"  # bob has one IMPU
        lease.release()
