"""Browser UE mode without a browser: which profiles and test cases it applies to, and that a step
no user could take is a test-case error naming the step, never silently scripted."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from conformance.run import browser_actions
from conformance.run.actions import ActionEnv, StepError
from conformance.run.state import CaseState


def _profile(mode=None):
    ue = {"address": "127.0.0.1"} | ({"mode": mode} if mode else {})
    return SimpleNamespace(pixit={"ue": ue})


def test_browser_mode_is_the_profiles_choice_and_scripted_by_default():
    assert browser_actions.browser_mode(_profile("browser"))
    assert not browser_actions.browser_mode(_profile("scripted"))
    assert not browser_actions.browser_mode(_profile())


def test_the_browser_plays_the_flow_test_cases_only():
    assert browser_actions.plays(SimpleNamespace(sut="flow"))
    assert not browser_actions.plays(SimpleNamespace(sut="as"))


@pytest.mark.parametrize("name, spec", [
    ("forge_token", {"from": "x"}),
    ("ws_send", {"text": "x"}),
    ("http", {"url": "https://as/token", "auth": {"basic": ["a", "b"]}}),
    ("http", {"url": "https://as/x", "headers": {"X": "1"}}),
    ("http", {"method": "DELETE", "url": "https://as/x"}),
    ("sip_send", {"over": "udp", "to": "pcscf"}),
    ("sip_send", {"over": "ws", "name": "app", "raw": "REGISTER ..."}),
])
def test_what_no_user_does_is_a_test_case_error(name, spec):
    state = CaseState(profile=_profile("browser"), user={}, users={}, keylog=None, browser=object())
    env = ActionEnv(profile=state.profile, reporter=None, timeout_s=1.0, template_context=None)
    with pytest.raises(StepError):
        browser_actions.run(name, spec, state, env)
