"""The browser's side of an authorization server's sign-in over pages of its own (ue.mode: browser).

conformance/run/sign_in_walk.py decides what a user does on each page (which form, which fields,
when the walk is over); it asks a `send(method, url, entries)` for the next answer. Here that is
the browser: a GET is the next hop the browser already followed (or the link the user opens), a
form is the current page's form, found by its action and method, filled and submitted the way a
person does (conformance/drivers/browser.py: typed fields by key strokes, the rest set in the page).
So the scripted UE and the browser UE walk oidc-provider's login and consent pages by the same
rules, and every hop is evidence in both.

The whole walk has one deadline: WALK_STEP_TIMEOUTS times the step's timeout (oidc-provider's
sign-in is two pages and four redirects); when it has passed, `send` answers Nothing, which ends
the walk and makes the step's expectations judge a silent server.
"""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import urljoin

from conformance.drivers.http import parse_forms
from conformance.events import HttpExchange, Nothing
from conformance.run.actions import ActionEnv, StepError
from conformance.run.state import CaseState

WALK_STEP_TIMEOUTS = 4  # the walk's total deadline, in step timeouts


def _form_index(html: str, page_url: str, method: str, action: str) -> int:
    for i, form in enumerate(parse_forms(html)):
        if (form.method or "GET").upper() == method and urljoin(page_url, form.action or "") == action:
            return i
    # the walk read the form from the page the browser is on: not finding it is the harness's defect
    raise StepError(f"the browser's page {page_url} has no form {method} {action} (the sign-in walk saw one)")


def submit(browser: Any, method: str, action: str, entries: list[tuple[str, str]], timeout_s: float):
    """Submit the current page's form that sends `method` to `action`, with `entries`."""
    index = _form_index(browser.page.content(), browser.page.url, method.upper(), action)
    typed = {name: value for name, value in entries}  # the driver types only visible text inputs
    return browser.submit_form(index, list(entries), typed, timeout_s)


def sender(state: CaseState, env: ActionEnv, clock=time.monotonic):
    """A sign_in_walk `send` played by the browser, each answer kept as the step's evidence."""
    browser = state.browser
    deadline = clock() + WALK_STEP_TIMEOUTS * env.timeout_s

    def send(method: str, url: str, entries) -> Any:
        left = deadline - clock()
        if left <= 0:
            return Nothing(waited_ms=WALK_STEP_TIMEOUTS * env.timeout_s * 1000.0)
        timeout_s = min(env.timeout_s, left)
        if method.upper() == "GET" and not entries:
            exchange = browser.get(url, timeout_s)  # a hop the browser followed, or a link opened
        else:
            exchange = submit(browser, method, url, entries, timeout_s)
        if isinstance(exchange, HttpExchange):
            state.last_http = exchange
        env.reporter.attach_http(exchange)
        return exchange

    return send
