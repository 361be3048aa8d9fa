"""The actions of a step (docs/format.md "Actions"), each defined once.

The schema's step (properties, "one action" rule, the per-action key restriction), the loader's
action lookup and the engines' dispatch (conformance/run/actions.py, browser_actions.py) all come
from ACTIONS. Adding an action: one ActionDef here, its `$defs/<name>` fragment in
conformance/schema/testcase.schema.json, its function, a paragraph in docs/format.md, then
`python -m conformance.vocabulary.schema_gen --write` (tests/unit/test_vocabulary.py checks all).
"""

from __future__ import annotations

from dataclasses import dataclass

from conformance.vocabulary.definition import Registry, Word

_RUN = "conformance.run.actions"
_BROWSER = "conformance.run.browser_actions"
_LIFECYCLE = "conformance.run.lifecycle_actions"


@dataclass(frozen=True)
class ActionDef(Word):
    """An action key. `schema` is a $ref to its fragment in testcase.schema.json's $defs."""

    sip: bool = False  # puts SIP on the wire or takes it off (such a case can see registrations)
    browser: str | None = None  # "module:attribute" when a user can do it in a browser (ue.mode: browser)
    step_keys: tuple[str, ...] = ("name", "flow", "timeout_ms", "expect", "save")  # keys it allows beside itself

    def browser_implementation(self):
        from conformance.vocabulary.definition import load

        return load(self.browser)


# An action that only asks (a query REGISTER, a GET) may be repeated until the SUT's answer holds
# (`poll`, conformance/run/engine.py); one that changes state or consumes something may not.
_POLLABLE = ("name", "flow", "timeout_ms", "expect", "save", "poll")


def _action(name: str, doc: str, implemented_by: str | None, **extra) -> ActionDef:
    return ActionDef(name, doc, {"$ref": f"#/$defs/{name}"}, implemented_by, **extra)


ACTIONS: Registry[ActionDef] = Registry("action", [
    _action("http", "one HTTP exchange; redirects are never followed automatically", f"{_RUN}:_http",
            browser=f"{_BROWSER}:_http", step_keys=_POLLABLE),
    _action("oauth", "client-side OAuth helpers; saves code_verifier, code_challenge, code_challenge_method, "
            "state, nonce", f"{_RUN}:_oauth"),
    _action("ws_connect", "open a WebSocket (TLS with the harness's key log)", f"{_RUN}:_ws_connect",
            browser=f"{_BROWSER}:_ws_connect"),
    _action("ws_send", "send one raw WebSocket frame (negative cases)", f"{_RUN}:_ws_send"),
    _action("ws_close", "close a WebSocket connection", f"{_RUN}:_ws_close"),
    _action("sip_send", "send one SIP message over a WebSocket connection, UDP or TCP, and wait for the answer",
            f"{_RUN}:_sip_send", sip=True, browser=f"{_BROWSER}:_sip_send", step_keys=_POLLABLE),
    _action("sip_expect", "wait for the next SIP message on a connection (bounded by timeout_ms)",
            f"{_RUN}:_sip_expect", sip=True),
    _action("forge_token", "build a token for negative cases from a real one", f"{_RUN}:_forge_token"),
    _action("wait", "pause, always bounded", f"{_RUN}:_wait"),
    _action("sip_serve", "wait for the next SIP request on a WebSocket and answer it", f"{_LIFECYCLE}:sip_serve",
            sip=True),
    _action("reginfo", "check an RFC 3680 reginfo document against its schema", f"{_LIFECYCLE}:reginfo"),
    # expanded by the loader (conformance/model/testcase.py) before anything runs: no implementation
    _action("use", "run a fragment's steps in place", None, step_keys=("name",)),
])

# What the engines run: every action but `use`, which never reaches them.
RUNNABLE = tuple(a.name for a in ACTIONS if a.implemented_by is not None)
SIP_ACTIONS = frozenset(ACTIONS.where(sip=True))
BROWSER_ACTIONS = tuple(a.name for a in ACTIONS if a.browser is not None)
