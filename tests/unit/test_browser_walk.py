"""The browser UE through an authorization server's own login and consent pages (browser_walk.py),
without a browser: a stand-in follows redirects the way Chromium does (a navigation's hops queued,
the page is the last one) against a scripted server shaped like oidc-provider (303 to a login page,
303 to a consent page, 303 to the client's redirect_uri on the 3rdWWS, 303 to the app page)."""

from __future__ import annotations

from contextlib import contextmanager
from types import SimpleNamespace
from urllib.parse import urljoin, urlsplit

import pytest
from playwright.sync_api import TimeoutError as NavigationTimeout

from conformance.drivers.browser import BrowserUe
from conformance.drivers.http import parse_forms, resolve_location
from conformance.events import HttpExchange, Nothing
from conformance.run import browser_actions, browser_walk
from conformance.run.actions import ActionEnv
from conformance.run.state import CaseState

AS = "https://127.0.0.12:9443"
APP = "https://127.0.0.11:8443"
CALLBACK = f"{APP}/oauth/callback?code=c-1&state=s&iss=https%3A%2F%2F127.0.0.12%3A9443"
DENIED = f"{APP}/oauth/callback?error=access_denied&state=s"
ALICE = {"identity": "alice@web.operator.example", "password": "alice-pw", "consent": "grant"}
LOGIN = """<form autocomplete="off" action="/interaction/u1/login" method="post">
<input type="hidden" name="prompt" value="login"/><input required type="text" name="login">
<input required type="password" name="password"><button type="submit">Sign-in</button></form>"""
CONSENT = """<form autocomplete="off" action="/interaction/u2/confirm" method="post">
<input type="hidden" name="prompt" value="consent"/><button autofocus type="submit">Continue</button></form>
<a href="/interaction/u2/abort">[ Cancel ]</a>"""


def _answer(url: str, status: int, location: str | None = None, html: str = "") -> HttpExchange:
    headers = [("Location", location)] if location else [("Content-Type", "text/html")]
    return HttpExchange(method="GET", url=url, status=status, headers=headers, body=html.encode())


class OidcProviderLike:
    """oidc-provider's devInteractions and the 3rdWWS's callback; records every request it got."""

    def __init__(self):
        self.requests: list[tuple[str, str, dict]] = []
        self.aborted = False

    def _abort(self, url: str) -> HttpExchange:
        self.aborted = True
        return _answer(url, 303, f"{AS}/auth/u2")

    def answer(self, method: str, url: str, entries) -> HttpExchange:
        fields = dict(entries or [])
        self.requests.append((method, urlsplit(url).path, fields))
        path = urlsplit(url).path
        routes = {
            ("GET", "/webrtc"): lambda: _answer(url, 303, f"{AS}/authorize?client_id=app&state=s"),
            ("GET", "/authorize"): lambda: _answer(url, 303, "/interaction/u1"),
            ("GET", "/interaction/u1"): lambda: _answer(url, 200, html=LOGIN),
            ("POST", "/interaction/u1/login"): lambda: _answer(url, 303, f"{AS}/auth/u1"),
            ("GET", "/auth/u1"): lambda: _answer(url, 303, "/interaction/u2"),
            ("GET", "/interaction/u2"): lambda: _answer(url, 200, html=CONSENT),
            ("POST", "/interaction/u2/confirm"): lambda: _answer(url, 303, f"{AS}/auth/u2"),
            ("GET", "/auth/u2"): lambda: _answer(url, 303, DENIED if self.aborted else CALLBACK),
            ("GET", "/interaction/u2/abort"): lambda: self._abort(url),
            ("GET", "/oauth/callback"): lambda: _answer(url, 303, "/webrtc/app"),
            ("GET", "/webrtc/app"): lambda: _answer(url, 200, html="<p>app</p>"),
        }
        exchange = routes[(method, path)]()
        exchange.method = method
        return exchange


class RedirectFollowingBrowser:
    """BrowserUe's interface: a navigation follows every redirect at once; get() takes the next hop."""

    def __init__(self, server: OidcProviderLike):
        self.server = server
        self.hops: list[HttpExchange] = []
        self.html = ""
        self.page = SimpleNamespace(url="about:blank", content=lambda: self.html)
        self.typed: list[dict] = []

    def _navigate(self, method: str, url: str, entries) -> HttpExchange:
        exchange = self.server.answer(method, url, entries)
        self.hops = [exchange]
        while exchange.status == 303:
            exchange = self.server.answer("GET", resolve_location(exchange), None)
            self.hops.append(exchange)
        self.page.url, self.html = exchange.url, exchange.text
        return self.hops.pop(0)

    def get(self, url: str, timeout_s: float) -> HttpExchange:
        if self.hops and self.hops[0].url == url:
            return self.hops.pop(0)
        return self._navigate("GET", url, None)

    follow = get

    def submit_form(self, index, entries, typed, timeout_s):
        form = parse_forms(self.html)[index]
        self.typed.append(dict(typed))
        return self._navigate(form.method.upper(), urljoin(self.page.url, form.action), entries)


def _case(browser):
    profile = SimpleNamespace(pixit={"ue": {"mode": "browser"},
                                     "authorization_ui": {"identity_field": "login", "password_field": "password"}})
    evidence: list = []
    reporter = SimpleNamespace(attach_http=evidence.append)
    state = CaseState(profile=profile, user={}, users={}, keylog=None, browser=browser)
    return state, ActionEnv(profile=profile, reporter=reporter, timeout_s=5.0, template_context=None), evidence


def test_login_and_consent_pages_walked_to_the_clients_redirect():
    server = OidcProviderLike()
    browser = RedirectFollowingBrowser(server)
    state, env, evidence = _case(browser)
    browser_actions.run("http", {"url": f"{APP}/webrtc"}, state, env)
    page = browser_actions.run("http", {"follow": "location", "follow_own_redirects": True}, state, env)
    assert page.status == 200 and urlsplit(page.url).path == "/interaction/u1"

    final = browser_actions.run("http", {"form_from_previous": {"sign_in": ALICE}}, state, env)

    assert final.status == 303 and final.header_values("Location") == [CALLBACK]
    assert state.last_http is final
    walked = [(e.method, urlsplit(e.url).path) for e in evidence[-5:]]
    assert walked == [("POST", "/interaction/u1/login"), ("GET", "/auth/u1"), ("GET", "/interaction/u2"),
                      ("POST", "/interaction/u2/confirm"), ("GET", "/auth/u2")]
    # identity and password typed on the login page; the consent page got only its own form
    assert browser.typed[0]["login"] == ALICE["identity"] and browser.typed[0]["password"] == ALICE["password"]
    assert [f for m, p, f in server.requests if p == "/interaction/u2/confirm"] == [{"prompt": "consent"}]
    # the browser followed on to the client by itself: the next step takes that hop, nothing re-sent
    sent = len(server.requests)
    callback = browser_actions.run("http", {"follow": "location"}, state, env)
    assert urlsplit(callback.url).path == "/oauth/callback" and len(server.requests) == sent


def test_deny_follows_the_consent_pages_cancel_link():
    server = OidcProviderLike()
    browser = RedirectFollowingBrowser(server)
    state, env, evidence = _case(browser)
    browser_actions.run("http", {"url": f"{APP}/webrtc"}, state, env)
    browser_actions.run("http", {"follow": "location", "follow_own_redirects": True}, state, env)
    final = browser_actions.run("http", {"form_from_previous": {"sign_in": ALICE | {"consent": "deny"}}}, state, env)
    assert final.header_values("Location") == [DENIED]
    assert ("GET", "/interaction/u2/abort", {}) in server.requests
    assert not [p for m, p, f in server.requests if p == "/interaction/u2/confirm"]  # never granted


def test_the_walk_has_one_deadline():
    browser = RedirectFollowingBrowser(OidcProviderLike())
    state, env, evidence = _case(browser)
    now = [0.0]
    send = browser_walk.sender(state, env, clock=lambda: now[0])
    assert send("GET", f"{APP}/webrtc", None).status == 303
    now[0] = browser_walk.WALK_STEP_TIMEOUTS * env.timeout_s  # the whole walk's time is used up
    assert isinstance(send("GET", f"{AS}/authorize?client_id=app&state=s", None), Nothing)


def test_a_page_that_never_loads_is_silence_not_a_harness_error():
    @contextmanager
    def never_navigates(timeout, wait_until):
        yield None
        raise NavigationTimeout(f"Timeout {timeout}ms exceeded")

    browser = BrowserUe.__new__(BrowserUe)  # no Chromium: only the page's navigation wait
    browser.observed = []
    browser.page = SimpleNamespace(url=f"{AS}/interaction/u2", expect_navigation=never_navigates)
    with pytest.raises(ConnectionError, match="no page loaded within 2 s"):
        browser._navigated(lambda: None, 2.0)
