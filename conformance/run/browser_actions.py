"""The actions of a flow test case when the profile says `pixit.ue.mode: browser`: the user is
played in a real browser (conformance/drivers/browser.py) and the page's own JavaScript client
does the signalling. The step's expectations are unchanged; only who produces the event differs.

| action | what the browser does |
|---|---|
| http, a form POST | opens the site, fills the form whose action is the URL, submits it |
| http, GET / follow: location | the next hop of the last navigation, a request the page made itself, or the user opens the URL |
| http, follow_own_redirects | takes the hops the browser followed within the AS, each one evidence |
| http, form_from_previous | fills the current page's form (typed fields, hidden fields, consent) and submits it; with `sign_in`, every further page of the AS the same way until it redirects away (browser_walk) |
| ws_connect | the WebSocket the page's client opened to that URL (its handshake) |
| sip_send over ws | the request the page's client sent on that WebSocket and the final response to it |

Anything else (forged requests, raw frames, custom headers) is not something a user does: the test
case cannot run in browser mode and gets the verdict error naming the step.
"""

from __future__ import annotations

from urllib.parse import urljoin

from conformance.events import HttpExchange
from conformance.run import browser_walk, sign_in, sign_in_walk
from conformance.run.actions import ActionEnv, NotExercised, StepError, SutUnreachable
from conformance.run.state import CaseState
from conformance.vocabulary import actions as vocabulary

BROWSER_ACTIONS = vocabulary.BROWSER_ACTIONS  # the actions whose ActionDef names a `browser` function
# follow_own_redirects: the browser followed them already; the hops are taken one by one as evidence
_HTTP_KEYS = {"method", "url", "form", "follow", "follow_own_redirects", "form_from_previous"}


def browser_mode(profile) -> bool:
    return (profile.pixit.get("ue") or {}).get("mode", "scripted") == "browser"


def plays(tc) -> bool:
    """The browser plays the UE of the flow test cases (the others script the UE's faults)."""
    return tc.sut == "flow"


def run(name: str, spec: dict, state: CaseState, env: ActionEnv):
    if name not in BROWSER_ACTIONS:
        raise StepError(f"{name} is not something a user does in a browser (ue.mode: browser)")
    return vocabulary.ACTIONS[name].browser_implementation()(spec or {}, state, env)


def _http(spec: dict, state: CaseState, env: ActionEnv) -> HttpExchange:
    from conformance.drivers.http import fill_form, find_form, parse_forms

    extra = set(spec) - _HTTP_KEYS
    if extra or spec.get("cookies") is False:
        raise StepError(f"http with {', '.join(sorted(extra)) or 'cookies: false'} is not a user action "
                        "(ue.mode: browser)")
    browser = state.browser
    method = spec.get("method", "GET").upper()
    walk = None  # after the first answer: how the AS's own interaction pages are walked (sign_in_walk)
    try:
        if spec.get("follow") == "location":
            prev = state.last_http
            locs = prev.header_values("Location") if prev is not None else []
            if not locs:
                raise StepError("follow: location, but the previous HTTP response has no Location header")
            exchange = browser.follow(urljoin(prev.url, locs[0]), env.timeout_s)
            if spec.get("follow_own_redirects"):
                walk = lambda first, send: sign_in_walk.follow_own_redirects(first, send, [0])  # noqa: E731
        elif "form_from_previous" in spec:
            ffp = spec["form_from_previous"] or {}
            html = browser.page.content()
            try:
                form = find_form(html, ffp.get("select"))
                fields, consent_done = _form_fields(form, ffp, env.profile)
                _, _, entries = fill_form(html, ffp.get("select"), fields)
            except sign_in.ConsentNotDiscoverable as exc:
                raise NotExercised(str(exc)) from None
            except LookupError as exc:
                prev = state.last_http
                return HttpExchange(method="(form)", url=prev.url if prev else "", status=None,
                                    reason=f"no form: {exc}", body=html.encode())
            typed = {k: str(v) for k, v in fields.items() if v is not None and not isinstance(v, list | tuple)}
            exchange = browser.submit_form(parse_forms(html).index(form), entries, typed, env.timeout_s)
            if ffp.get("sign_in") is not None:  # the AS's further pages (a separate consent page)
                ui = env.profile.pixit.get("authorization_ui") or {}
                walk = lambda first, send: sign_in_walk.walk(  # noqa: E731
                    first, form, ui, ffp["sign_in"], send, consent_done)
        elif method == "POST" and "form" in spec:
            url = spec["url"]
            html = browser.open_page_with_form(url, env.timeout_s)
            forms = parse_forms(html)
            index = next((i for i, f in enumerate(forms) if urljoin(browser.page.url, f.action or "") == url), None)
            if index is None:
                raise StepError(f"the browser found no form posting to {url} on {browser.page.url}")
            fields = {k: str(v) for k, v in (spec.get("form") or {}).items()}
            entries = [(n, fields.get(n, v)) for n, v in forms[index].entries()]
            exchange = browser.submit_form(index, entries, fields, env.timeout_s)
        elif method == "GET" and spec.get("url"):
            exchange = browser.get(spec["url"], env.timeout_s)
        else:
            raise StepError(f"http {method} is not a user action (ue.mode: browser)")
        state.last_http = exchange
        env.reporter.attach_http(exchange)
        if walk is not None:
            try:
                exchange = walk(exchange, browser_walk.sender(state, env))
            except sign_in.ConsentNotDiscoverable as exc:
                raise NotExercised(str(exc)) from None
    except ConnectionError as exc:
        raise SutUnreachable(f"browser: {exc}") from exc
    return exchange


def _form_fields(form, ffp: dict, profile) -> tuple[dict, bool]:
    """The fields form_from_previous sets: `fields`, over what `sign_in` discovers in the form
    (conformance/run/sign_in.py, where the catalog uses it) from pixit.authorization_ui; and
    whether the consent choice was made on this page (else a later page of the AS offers it)."""
    fields = dict(ffp.get("fields") or {})
    if ffp.get("sign_in") is None:
        return fields, True
    ui = profile.pixit.get("authorization_ui") or {}
    discovered, consent_done = sign_in.first_page_fields(form, ui, ffp["sign_in"])
    return discovered | fields, consent_done


def _ws_connect(spec: dict, state: CaseState, env: ActionEnv):
    handshake = state.browser.websocket(spec["url"], env.timeout_s)
    env.reporter.attach_handshake(handshake)
    state.browser_ws[spec.get("name", "ws")] = spec["url"]
    return handshake


def _sip_send(spec: dict, state: CaseState, env: ActionEnv):
    if spec.get("over", "ws") != "ws" or "raw" in spec:
        raise StepError("only the page's own SIP over WebSocket is a user action (ue.mode: browser)")
    url = state.browser_ws.get(spec.get("name", "ws"))
    if url is None:
        raise StepError(f"no WebSocket named {spec.get('name', 'ws')!r} (ws_connect it first)")
    method = (spec.get("method") or "REGISTER").upper()
    raw, received = state.browser.sip_exchange(url, method, env.timeout_s)
    if raw is not None:
        env.reporter.attach_sip("sent by the page's client", raw)
    env.reporter.attach_event("received", received)
    return received
