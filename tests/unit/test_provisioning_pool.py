"""Issue 15, round 2: provisioning a fresh identity per test case reuses one kept-alive HTTP
client per endpoint (conformance/run/provisioning_pool.py) instead of a new client, TLS
connection and close per case; a kept-alive connection the server closed meanwhile costs one
resend on a new connection, never a lost identity; anything else fails as before."""

from __future__ import annotations

import types

import pytest

import conformance.drivers.http as http_driver
from conformance.events import Garbage
from conformance.run import provisioning_pool
from conformance.run.clock import FakeClock
from conformance.run.identities import IdentityProvider, ProvisioningError

URL = "https://127.0.0.12:9443/admin/users"


class FakeDriver:
    """Stands for HttpDriver: answers from a script, one entry per request."""

    made: list[FakeDriver] = []
    script: list = []

    def __init__(self, ca_bundle=None):
        self.requests: list[dict] = []
        self.closed = False
        FakeDriver.made.append(self)

    def request(self, method, url, **kwargs):
        self.requests.append({"method": method, "url": url, **kwargs})
        answer = FakeDriver.script.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    def close(self):
        self.closed = True


@pytest.fixture(autouse=True)
def fake_driver(monkeypatch):
    provisioning_pool.close_all()
    FakeDriver.made, FakeDriver.script = [], []
    monkeypatch.setattr(http_driver, "HttpDriver", FakeDriver)
    yield
    provisioning_pool.close_all()


def created():
    return types.SimpleNamespace(status=201, text="")


def provider(tmp_path):
    pixit = {"users": {"provisioning": {"url": URL, "token": "t"}}, "home_domain": "ims.example.net"}
    prof = types.SimpleNamespace(pixit=pixit, base_dir=".", step_timeout_ms=5000, connect_timeout_ms=2000)
    return IdentityProvider(prof, tmp_path, clock=FakeClock(start=0.0))


def case(n: int):
    return types.SimpleNamespace(id=f"TP_X_Y_00{n}", user="fresh", steps=[], capture=None)


def test_provisionings_share_one_client(tmp_path):
    FakeDriver.script = [created(), created(), created()]
    users = [provider(tmp_path).lease(case(i)).user for i in range(3)]  # an Engine per case, as pytest makes
    assert len(FakeDriver.made) == 1
    sent = FakeDriver.made[0].requests
    assert [r["json_body"]["web_id"] for r in sent] == [u["web_id"] for u in users]
    assert len({u["web_id"] for u in users}) == 3
    assert not FakeDriver.made[0].closed
    provisioning_pool.close_all()
    assert FakeDriver.made[0].closed  # close_notify at the end of the session


def test_a_kept_alive_connection_closed_meanwhile_is_resent_once_on_a_new_one(tmp_path):
    FakeDriver.script = [created(), ConnectionError("connection reset by peer"), created()]
    ids = provider(tmp_path)
    ids.lease(case(1))
    user = ids.lease(case(2)).user
    first, second = FakeDriver.made
    assert first.closed and not second.closed
    assert first.requests[-1]["json_body"] == second.requests[0]["json_body"] == user


def test_a_closed_connection_without_an_answer_is_resent_too(tmp_path):
    FakeDriver.script = [created(), Garbage(raw=b"", reason="closed", transport="http"), created()]
    ids = provider(tmp_path)
    ids.lease(case(1))
    ids.lease(case(2))
    assert len(FakeDriver.made) == 2


def test_a_first_connection_that_fails_is_not_retried(tmp_path):
    FakeDriver.script = [ConnectionError("refused"), created()]
    with pytest.raises(ProvisioningError, match="refused"):
        provider(tmp_path).lease(case(1))
    assert len(FakeDriver.made) == 1 and FakeDriver.made[0].closed
    assert len(FakeDriver.script) == 1  # nothing resent


def test_a_broken_answer_on_a_kept_alive_connection_is_not_retried(tmp_path):
    """Bytes came back: the server answered, badly. That is its answer, not a stale connection."""
    FakeDriver.script = [created(), Garbage(raw=b"HTTP/1.1 2", reason="incomplete", transport="http"), created()]
    ids = provider(tmp_path)
    ids.lease(case(1))
    with pytest.raises(ProvisioningError, match="incomplete"):
        ids.lease(case(2))
    assert len(FakeDriver.made) == 1


def test_a_refusal_is_reported_and_the_connection_kept(tmp_path):
    FakeDriver.script = [types.SimpleNamespace(status=401, text="bad token"), created()]
    ids = provider(tmp_path)
    with pytest.raises(ProvisioningError, match="401"):
        ids.lease(case(1))
    ids.lease(case(2))
    assert len(FakeDriver.made) == 1
