"""An authorization server's sign-in over several pages of its own (conformance/run/sign_in_walk.py),
played by a scripted server: oidc-provider's shape (303 to a login page, 303 to a consent page,
303 back to /authorize, 303 to the client), the one-page reference shape, a re-rendered login,
a server that redirects to itself forever, and a deny nobody offers."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest

from conformance.drivers.http import find_form
from conformance.events import HttpExchange
from conformance.run import sign_in, sign_in_walk

AS = "https://127.0.0.12:9443"
CALLBACK = "https://127.0.0.11:8443/oauth/callback?code=c-1&state=s"
UI = {"identity_field": "login", "password_field": "password"}
ALICE = {"identity": "alice@web.operator.example", "password": "alice-pw", "consent": "grant"}

LOGIN = """<form autocomplete="off" action="https://127.0.0.12:9443/interaction/u1" method="post">
<input type="hidden" name="prompt" value="login"/><input required type="text" name="login">
<input required type="password" name="password"><button type="submit">Sign-in</button></form>"""
CONSENT = """<form autocomplete="off" action="https://127.0.0.12:9443/interaction/u1" method="post">
<input type="hidden" name="prompt" value="consent"/><button autofocus type="submit">Continue</button></form>
<a href="https://127.0.0.12:9443/interaction/u1/abort">[ Cancel ]</a>"""
CONSENT_WITH_DENY = """<form action="/interaction/u1" method="post"><input type="hidden" name="prompt" value="consent">
<button type="submit" name="decision" value="allow">Allow</button>
<button type="submit" name="decision" value="deny">Deny</button></form>"""


def redirect(url: str, to: str) -> HttpExchange:
    return HttpExchange(method="GET", url=url, status=303, headers=[("Location", to)])


def page(url: str, html: str) -> HttpExchange:
    return HttpExchange(method="GET", url=url, status=200, headers=[("Content-Type", "text/html")],
                        body=html.encode())


class ScriptedAs:
    """Answers each request from a script keyed by (method, path); records what was sent."""

    def __init__(self, script):
        self.script = script
        self.sent: list[tuple[str, str, dict]] = []

    def send(self, method, url, entries):
        fields = dict(entries or [])
        self.sent.append((method, url, fields))
        answer = self.script(method, urlsplit(url).path, fields)
        answer.url = url
        return answer


def oidc_provider_like(consent_page=CONSENT):
    def script(method, path, fields):
        if path == "/interaction/u1" and method == "GET":
            return page("", LOGIN if not script.logged_in else consent_page)
        if path == "/interaction/u1" and fields.get("prompt") == "login":
            script.logged_in = True
            return redirect("", f"{AS}/authorize/u1")
        if path == "/interaction/u1" and fields.get("prompt") == "consent":
            script.consent = fields
            return redirect("", f"{AS}/authorize/u1")
        if path == "/authorize/u1":
            return redirect("", "/interaction/u1" if not getattr(script, "consent", None) else CALLBACK)
        raise AssertionError(f"unexpected {method} {path}")
    script.logged_in = False
    return script


def test_follow_own_redirects_stops_at_the_page():
    server = ScriptedAs(oidc_provider_like())
    first = redirect(f"{AS}/authorize?client_id=x", "/interaction/u1")
    final = sign_in_walk.follow_own_redirects(first, server.send, [0])
    assert final.status == 200 and find_form(final.body).action.endswith("/interaction/u1")
    assert [(m, urlsplit(u).path) for m, u, _ in server.sent] == [("GET", "/interaction/u1")]


def test_follow_own_redirects_leaves_a_redirect_to_another_origin_alone():
    server = ScriptedAs(oidc_provider_like())
    first = redirect(f"{AS}/authorize?x", CALLBACK)
    assert sign_in_walk.follow_own_redirects(first, server.send, [0]) is first
    assert server.sent == []


def test_login_then_consent_pages_end_at_the_clients_redirect():
    script = oidc_provider_like()
    server = ScriptedAs(script)
    login_form = find_form(LOGIN)
    fields, done = sign_in.first_page_fields(login_form, UI, ALICE)
    assert fields == {"login": ALICE["identity"], "password": ALICE["password"]} and done
    first = server.send("POST", f"{AS}/interaction/u1", [("prompt", "login"), *fields.items()])
    final = sign_in_walk.walk(first, login_form, UI, ALICE, server.send, done)
    assert final.header_values("Location") == [CALLBACK]
    assert script.consent == {"prompt": "consent"}  # the consent page got no login fields
    paths = [(m, urlsplit(u).path) for m, u, _ in server.sent]
    assert paths == [("POST", "/interaction/u1"), ("GET", "/authorize/u1"), ("GET", "/interaction/u1"),
                     ("POST", "/interaction/u1"), ("GET", "/authorize/u1")]


def test_a_one_page_sign_in_is_not_walked_further():
    server = ScriptedAs(lambda *a: pytest.fail("nothing more may be sent"))
    answer = redirect(f"{AS}/authorize", CALLBACK)
    assert sign_in_walk.walk(answer, find_form(LOGIN), UI, ALICE, server.send, True) is answer


def test_the_same_form_again_is_the_servers_answer():
    server = ScriptedAs(lambda *a: pytest.fail("a re-rendered login is not submitted again"))
    again = page(f"{AS}/interaction/u1", LOGIN.replace("<form", "<p>wrong password</p><form"))
    assert sign_in_walk.walk(again, find_form(LOGIN), UI, ALICE, server.send, True) is again


def test_a_server_redirecting_to_itself_is_bounded():
    server = ScriptedAs(lambda method, path, fields: redirect("", f"{AS}/loop"))
    final = sign_in_walk.follow_own_redirects(redirect(f"{AS}/loop", f"{AS}/loop"), server.send, [0])
    assert final.status == 303 and len(server.sent) == sign_in_walk.MAX_HOPS


def test_deny_on_a_later_consent_page():
    script = oidc_provider_like(CONSENT_WITH_DENY)
    server = ScriptedAs(script)
    deny = ALICE | {"consent": "deny"}
    fields, done = sign_in.first_page_fields(find_form(LOGIN), UI, deny)
    assert not done and "decision" not in fields  # the login page offers no consent: later
    first = server.send("POST", f"{AS}/interaction/u1", [("prompt", "login"), *fields.items()])
    sign_in_walk.walk(first, find_form(LOGIN), UI, deny, server.send, done)
    assert script.consent == {"prompt": "consent", "decision": "deny"}


def test_deny_by_the_consent_pages_cancel_link():
    script = oidc_provider_like()
    aborted = []

    def with_abort(method, path, fields):
        if path == "/interaction/u1/abort":
            aborted.append(method)
            return redirect("", CALLBACK.replace("code=c-1", "error=access_denied"))
        return script(method, path, fields)
    server = ScriptedAs(with_abort)
    deny = ALICE | {"consent": "deny"}
    fields, done = sign_in.first_page_fields(find_form(LOGIN), UI, deny)
    first = server.send("POST", f"{AS}/interaction/u1", [("prompt", "login"), *fields.items()])
    final = sign_in_walk.walk(first, find_form(LOGIN), UI, deny, server.send, done)
    assert aborted == ["GET"] and "error=access_denied" in final.header_values("Location")[0]
    assert not getattr(script, "consent", None)  # the grant button was never pressed


def test_deny_nobody_offers_is_not_exercised():
    server = ScriptedAs(oidc_provider_like(CONSENT.replace("[ Cancel ]", "[ Back ]")))
    deny = ALICE | {"consent": "deny"}
    fields, done = sign_in.first_page_fields(find_form(LOGIN), UI, deny)
    first = server.send("POST", f"{AS}/interaction/u1", [("prompt", "login"), *fields.items()])
    with pytest.raises(sign_in.ConsentNotDiscoverable):
        sign_in_walk.walk(first, find_form(LOGIN), UI, deny, server.send, done)
    # the consent page's only control grants: it was never submitted
    assert not any(f.get("prompt") == "consent" for _, _, f in server.sent)
