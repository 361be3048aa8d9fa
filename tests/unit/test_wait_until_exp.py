"""`wait: {until_exp}` (conformance/run/actions.py): a token is surely expired to the SUT once its
exp, the clock-skew leeway the SUT allows (PIXIT oauth.exp_leeway_s, RFC 7519 4.1.4) and one
second of slack have passed. The sleep goes to a FakeClock: nothing here sleeps."""

from __future__ import annotations

import base64
import json
import time
from types import SimpleNamespace

import pytest

from conformance.run.actions import ActionEnv, TooLong, _wait
from conformance.run.clock import FakeClock


def _jwt(exp: float) -> str:
    def part(obj) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'ES256', 'typ': 'at+jwt'})}.{part({'exp': int(exp)})}.c2ln"


def _slept(leeway=None, max_ms=10_000, lifetime_s=3) -> float:
    oauth = {} if leeway is None else {"exp_leeway_s": leeway}
    clock = FakeClock()
    env = ActionEnv(profile=SimpleNamespace(pixit={"oauth": oauth}), reporter=None, timeout_s=5.0,
                    template_context=lambda extra=None: None, clock=clock)
    before = clock.t
    _wait({"until_exp": _jwt(time.time() + lifetime_s), "max_ms": max_ms}, None, env)
    return clock.t - before


def test_without_leeway_the_wait_ends_one_second_after_exp():
    assert 2.0 <= _slept() <= 4.0  # exp in 2-3 s (whole seconds), plus 1 s


def test_the_sut_s_leeway_is_waited_out_too():
    assert 6.0 <= _slept(leeway=4) <= 8.0


def test_a_leeway_beyond_max_ms_is_too_long_to_observe_and_says_why():
    with pytest.raises(TooLong, match="leeway of 60 s"):
        _slept(leeway=60)
