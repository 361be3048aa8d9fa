"""Step actions: one function per action key of the test-case format (docs/format.md).

Each action takes its rendered spec and the case state, does its I/O through a driver, attaches
what went over the wire to the report, and returns the event the expectations are checked
against. A misbehaving SUT never raises here: silence, a close or garbage come back as events
(`Nothing`, `WsClosed`, `Garbage`) so the expectations turn them into a verdict with evidence.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

from conformance.codec import jwt as jwt_codec
from conformance.codec import sip
from conformance.events import Garbage, HttpExchange, Nothing, SipReceived, WsClosed
from conformance.run import sign_in, sip_templates
from conformance.run.clock import MONOTONIC, Clock
from conformance.run.deadline import Deadline
from conformance.run.state import CaseState
from conformance.vocabulary import actions as vocabulary

ACTIONS = vocabulary.RUNNABLE  # every action but `use`, which the loader expands (conformance/vocabulary)


class StepError(Exception):
    """The test case asked for something impossible (its fault, not the SUT's): verdict error."""


class NotExercised(Exception):
    """The case cannot do what it needs with this SUT and profile (verdict inconclusive)."""


class SutUnreachable(Exception):
    """The SUT refused or never accepted a connection: nothing could be observed (inconclusive)."""


@dataclass
class ActionEnv:
    profile: Any
    reporter: Any
    timeout_s: float
    template_context: Callable
    clock: Clock = MONOTONIC
    deadline: Deadline | None = None  # the step's; every wait of the action ends by it

    def __post_init__(self) -> None:
        if self.deadline is None:
            self.deadline = Deadline(self.timeout_s, self.clock)


def action_of(step: dict) -> str:
    found = [k for k in ACTIONS if k in step]
    if len(found) != 1:
        raise StepError(f"a step needs exactly one action of {', '.join(ACTIONS)}; found {found or 'none'}")
    return found[0]


def run(name: str, spec: Any, state: CaseState, env: ActionEnv):
    if state.browser is not None:  # pixit.ue.mode: browser, a flow test case
        from conformance.run import browser_actions

        return browser_actions.run(name, spec, state, env)
    return _handler(name)(spec or {}, state, env)


@functools.cache
def _handler(name: str) -> Callable:
    """The function the registry names for an action (imported on first use: sip_serve and
    reginfo live in conformance/run/lifecycle_actions.py, which imports this module)."""
    if name not in ACTIONS:
        raise StepError(f"no action {name!r}; actions: {', '.join(ACTIONS)}")
    return vocabulary.ACTIONS[name].implementation()


# -- HTTP ------------------------------------------------------------------------------------------
def http_driver(state: CaseState, profile) -> Any:
    if state.http is None:
        from conformance.drivers.http import HttpDriver

        state.http = HttpDriver(ca_bundle=_ca_bundle(profile), keylog=state.keylog)
    return state.http


def _ca_bundle(profile) -> str | None:
    ca = (profile.pixit.get("tls") or {}).get("ca_bundle")
    if ca and not Path(ca).is_absolute():
        ca = str(Path(profile.base_dir) / ca)
    return ca


def _http(spec: dict, state: CaseState, env: ActionEnv) -> HttpExchange:
    agent = spec.get("user_agent")  # another browser of the user: its own cookies
    if agent:
        with http_driver(state, env.profile).as_user_agent(str(agent)):
            return _http_request(spec, state, env)
    return _http_request(spec, state, env)


def _http_request(spec: dict, state: CaseState, env: ActionEnv) -> HttpExchange:
    from conformance.drivers.http import fill_form, find_form

    method = spec.get("method", "GET").upper()
    url = spec.get("url")
    form = spec.get("form")
    if spec.get("follow") == "location":
        prev = state.last_http
        locs = prev.header_values("Location") if prev is not None else []
        if not locs:
            raise StepError("follow: location, but the previous HTTP response has no Location header")
        url = urljoin(prev.url, locs[0])
    if "form_from_previous" in spec:
        prev = state.last_http
        if prev is None:
            raise StepError("form_from_previous, but there is no previous HTTP response")
        ffp = spec["form_from_previous"] or {}
        try:
            fields = dict(ffp.get("fields") or {})
            if ffp.get("sign_in") is not None:
                ui = env.profile.pixit.get("authorization_ui") or {}
                signed_form = find_form(prev.text, ffp.get("select"))
                discovered, consent_done = sign_in.first_page_fields(signed_form, ui, ffp["sign_in"])
                fields = discovered | fields  # explicit fields of the case win
            method, action, form = fill_form(prev.text, ffp.get("select"), fields)
        except sign_in.ConsentNotDiscoverable as exc:
            raise NotExercised(str(exc)) from None
        except LookupError as exc:
            # the SUT did not serve the form it must serve: that is its failure, with evidence
            return HttpExchange(method="(form)", url=prev.url, status=None, reason=f"no form: {exc}",
                                body=prev.body)
        url = urljoin(prev.url, action) if not url else url
    if not url:
        raise StepError("http needs url, follow: location or form_from_previous")
    auth = spec.get("auth") or {}
    exchange = _send_http(state, env, method, url, params=spec.get("params"), headers=spec.get("headers"),
                          form=form, json_body=spec.get("json"), body=spec.get("body"),
                          basic=tuple(auth["basic"]) if "basic" in auth else None,
                          send_cookies=spec.get("cookies", True))
    ffp = spec.get("form_from_previous") or {}
    # the authorization server's own interaction pages (conformance/run/sign_in_walk.py)
    if isinstance(exchange, HttpExchange) and (ffp.get("sign_in") is not None or spec.get("follow_own_redirects")):
        from conformance.run import sign_in_walk

        def send(m, u, entries):
            return _send_http(state, env, m, u, form=entries, send_cookies=spec.get("cookies", True))

        if ffp.get("sign_in") is None:
            return sign_in_walk.follow_own_redirects(exchange, send, [0])
        try:
            return sign_in_walk.walk(exchange, signed_form, ui, ffp["sign_in"], send, consent_done)
        except sign_in.ConsentNotDiscoverable as exc:
            raise NotExercised(str(exc)) from None
    return exchange


def _send_http(state: CaseState, env: ActionEnv, method: str, url: str, **request) -> HttpExchange | Garbage:
    """One request of the step, its exchange kept as evidence and as the step's last HTTP response."""
    try:
        exchange = http_driver(state, env.profile).request(method, url, timeout_s=env.timeout_s, **request)
    except ConnectionError as exc:
        raise SutUnreachable(f"{method} {url}: {exc}") from exc
    if isinstance(exchange, Garbage):  # answered, but not with an HTTP response: evidence, then fail
        env.reporter.attach_event("received", exchange)
        return exchange
    state.last_http = exchange
    env.reporter.attach_http(exchange)
    return exchange


# -- OAuth helpers ---------------------------------------------------------------------------------
def _oauth(spec: dict, state: CaseState, env: ActionEnv) -> dict:
    out: dict = {}
    method = spec.get("pkce")
    if method:
        verifier = secrets.token_urlsafe(48)  # 64 chars, RFC 7636 4.1: 43..128 unreserved chars
        if method == "S256":
            challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
        elif method == "plain":
            challenge = verifier
        else:
            raise StepError(f"oauth.pkce must be S256 or plain, not {method!r}")
        out.update(code_verifier=verifier, code_challenge=challenge, code_challenge_method=method)
    if spec.get("state"):
        out["state"] = secrets.token_urlsafe(16)
    if spec.get("nonce"):
        out["nonce"] = secrets.token_urlsafe(16)
    state.saved.update(out)
    return out


# -- WebSocket -------------------------------------------------------------------------------------
def _ws_connect(spec: dict, state: CaseState, env: ActionEnv):
    from conformance.drivers import websocket
    from conformance.drivers.tls import client_context

    name = spec.get("name", "ws")
    url = spec["url"]
    cookie = None
    if spec.get("cookies", True) and state.http is not None:
        cookie = state.http.cookie_header(url.replace("wss://", "https://", 1).replace("ws://", "http://", 1))
    ctx = client_context(_ca_bundle(env.profile), state.keylog) if url.startswith("wss://") else None
    old = state.ws.pop(name, None)
    if old is not None:
        old.close()
    try:
        conn, handshake = websocket.connect(url, subprotocols=spec.get("subprotocols", ["sip"]),
                                            headers=spec.get("headers") or {}, cookie=cookie,
                                            ssl_context=ctx, timeout_s=env.timeout_s)
    except ConnectionError as exc:
        # refused, or silent until the deadline: nothing observed (an answer that is not a valid
        # handshake comes back as a handshake with its error and bytes, judged by the checks)
        raise SutUnreachable(f"WebSocket {url}: {exc}") from exc
    env.reporter.attach_handshake(handshake)
    if conn is not None:
        state.ws[name] = conn
        state.held.pop(name, None)
    return handshake


def _conn(state: CaseState, name: str):
    conn = state.ws.get(name)
    if conn is None:
        raise StepError(f"no open WebSocket connection named {name!r} (ws_connect it first)")
    return conn


def _ws_send(spec: dict, state: CaseState, env: ActionEnv):
    conn = _conn(state, spec.get("name", "ws"))
    payload = spec.get("text", "")
    size = _over_limit(spec["over_limit"]) if "over_limit" in spec else spec.get("size")
    if size is not None:  # pad to an exact size, for the oversized-message cases
        payload = (payload + "x" * int(size))[: int(size)]
    data = payload.encode() if isinstance(payload, str) else payload
    env.reporter.attach_bytes("WebSocket frame sent", data)
    try:
        conn.send_frame(opcode=spec.get("opcode", "text"), payload=data, masked=spec.get("masked", True),
                        fin=spec.get("fin", True))
    except ConnectionError as exc:
        return _closed_while_sending(conn, env, exc)
    if spec.get("expect_response", True):
        return _receive(conn, env, "ws")
    return Nothing(0.0)


def _over_limit(limit: Any) -> int:
    """One byte more than a size limit the profile declares (PIXIT pixit.limits.*)."""
    try:
        return int(limit) + 1
    except (TypeError, ValueError):
        raise StepError(f"over_limit takes a size in bytes, not {limit!r}") from None


def _closed_while_sending(conn, env: ActionEnv, exc: Exception):
    """The SUT closed the connection while the harness was still sending (e.g. 1009 on an
    oversized message): what it said before closing, if anything arrived, is the outcome."""
    try:
        event = conn.recv(min(env.deadline.remaining(), 1.0))
    except Exception:  # noqa: BLE001 - the socket is gone: only the close is left to report
        event = None
    if isinstance(event, WsClosed):
        return event
    return WsClosed(None, f"connection closed while sending: {exc}")


def _ws_close(spec: dict, state: CaseState, env: ActionEnv):
    conn = state.ws.pop(spec.get("name", "ws"), None)
    state.held.pop(spec.get("name", "ws"), None)
    if conn is not None and spec.get("abort"):  # lost, not closed: the peer sees the TCP end only
        conn.abort()
    elif conn is not None:
        conn.close(spec.get("code", 1000))
    return Nothing(0.0)


# -- SIP -------------------------------------------------------------------------------------------
def _receive(conn, env: ActionEnv, transport: str, skip_provisional: bool = True, hold: list | None = None):
    """The next message of `conn` within the step. With `hold` (awaiting the answer to a request of
    ours), a request of the node is not that answer: it goes into `hold` and the wait goes on."""
    step = env.deadline
    while True:
        if step.expired():
            return Nothing(step.elapsed() * 1000.0, peer_alive=getattr(conn, "alive", None))
        event = conn.recv(step.remaining())
        if isinstance(event, SipReceived):
            env.reporter.attach_sip("received", event.raw)
            msg = event.message
            if skip_provisional and not msg.is_request and 100 <= msg.status < 200:
                continue
            if hold is not None and msg.is_request:
                hold.append(event)
                continue
        else:
            env.reporter.attach_event("received", event)
        return event


def _sip_target(spec: dict, state: CaseState, env: ActionEnv):
    over = spec.get("over", "ws")
    if over == "ws":
        return over, _conn(state, spec.get("name", "ws"))
    from conformance.drivers.sip_transport import open_transport

    node = env.profile.pixit["nodes"].get(spec.get("to", ""))
    if node is None:
        raise StepError(f"sip_send over {over} needs `to:` naming a node of pixit.nodes")
    key = f"{over}:{node['address']}:{node['port']}"
    if key not in state.sip:
        try:
            state.sip[key] = open_transport(over, node["address"], int(node["port"]), timeout_s=env.timeout_s)
        except ConnectionError as exc:
            raise SutUnreachable(f"SIP {key}: {exc}") from exc
    return over, state.sip[key]


def _sip_send(spec: dict, state: CaseState, env: ActionEnv):
    over, conn = _sip_target(spec, state, env)
    if "raw" in spec:
        raw = spec["raw"]
        data = raw.encode() if isinstance(raw, str) else bytes(raw)
        if spec.get("crlf", True) and isinstance(raw, str) and "\r\n" not in raw:
            data = raw.replace("\n", "\r\n").encode()
    else:
        local = {} if over == "ws" else dict(zip(("local_host", "local_port"), conn.local_address))
        data = sip_templates.build(spec, state, env, {"transport": over.upper(), **local})
        _remember_contacts(data, state)
    env.reporter.attach_sip("sent", data)
    try:
        if over == "ws":
            conn.send_text(data.decode("utf-8", "surrogateescape"))
        else:
            conn.send(data)
    except ConnectionError as exc:
        return _closed_while_sending(conn, env, exc)
    if spec.get("expect_response", True):
        # RFC 6665 4.1.2.4: a NOTIFY may arrive before the final response to the SUBSCRIBE that
        # caused it (they take separate paths through the proxies); sip_serve answers it later
        hold = state.held.setdefault(spec.get("name", "ws"), []) if over == "ws" else None
        event = _receive(conn, env, over, spec.get("skip_provisional", True), hold)
        _remember_dialog(spec.get("dialog"), data, event, state)
        return event
    return Nothing(0.0)


def _remember_contacts(sent: bytes, state: CaseState) -> None:
    """The Contact URI of each +sip.instance the harness registers: a reginfo document identifies
    a contact by its <uri> (RFC 3680 5.1); the instance in <unknown-param> is optional there."""
    from conformance.codec.sip_headers import HeaderError, parse_name_addr_list

    try:
        msg = sip.parse(sent)
        if not msg.is_request or msg.method != "REGISTER":
            return
        for value in msg.headers.get_all("Contact"):
            for na in parse_name_addr_list(value):
                instance = (na.params.get("+sip.instance") or "").strip('"')
                if instance and na.uri is not None:  # every URI sent with it: a removal may name another
                    uris = state.registered_contacts.setdefault(instance, [])
                    if str(na.uri) not in uris:
                        uris.append(str(na.uri))
    except (sip.SipParseError, HeaderError):
        pass


def _remember_dialog(name: str | None, sent: bytes, event, state: CaseState) -> None:
    """The first 2xx of a `dialog:` send creates the dialog its later sends go within."""
    from conformance.run.sip_dialog import Dialog, NoDialog

    if not name or name in state.dialogs or not isinstance(event, SipReceived) or event.message.is_request:
        return
    try:
        request = sip.parse(sent)
        if event.message.cseq == request.cseq:  # the answer to this request, not a stray one
            state.dialogs[name] = Dialog.from_response(request, event.message)
    except (NoDialog, sip.SipParseError):
        pass  # no dialog: a later send with this name goes as written, and its expectations judge


def _sip_expect(spec: dict, state: CaseState, env: ActionEnv):
    if spec.get("over", "ws") == "ws":
        conn = _conn(state, spec.get("name", "ws"))
    else:
        _, conn = _sip_target(spec, state, env)
    return _receive(conn, env, spec.get("over", "ws"), spec.get("skip_provisional", True))


# -- tokens and time -------------------------------------------------------------------------------
def _forge_token(spec: dict, state: CaseState, env: ActionEnv) -> dict:
    try:
        token = jwt_codec.forge(spec["from"], alg=spec.get("alg"), header=spec.get("header"),
                                claims=spec.get("claims"), remove_claims=spec.get("remove_claims") or (),
                                resign=spec.get("resign", "harness_key"))
    except jwt_codec.JwtError as exc:
        raise StepError(f"forge_token: the source token is not a JWT: {exc}") from exc
    state.saved[spec.get("save_as", "forged_token")] = token
    env.reporter.attach_text("forged token", token)
    return {"token": token}


MAX_WAIT_MS = 60_000.0


class TooLong(Exception):
    """A wait the test case asks for is longer than it allows: nothing to observe (inconclusive)."""


def _wait(spec: dict, state: CaseState, env: ActionEnv):
    ms = float(spec.get("ms", 0))
    if "until_exp" in spec:  # until a token has expired (its exp claim, plus one second of slack)
        try:
            _, claims = jwt_codec.decode_unverified(str(spec["until_exp"]))
            exp = float(claims["exp"])
        except (jwt_codec.JwtError, KeyError, TypeError, ValueError) as exc:
            # an opaque token says nothing about itself: its lifetime from the token response
            # (expires_in, counted from now, so never shorter than the real one) takes its place
            if spec.get("expires_in") is None:
                raise StepError(f"wait.until_exp needs a JWT with an exp claim, or expires_in: {exc}") from exc
            try:
                exp = time.time() + float(spec["expires_in"])
            except (TypeError, ValueError) as bad:
                raise StepError(f"wait.expires_in must be a number of seconds: {bad}") from bad
        # RFC 7519 4.1.4: the SUT MAY accept a token for a small leeway past its exp (clock skew);
        # a token is surely expired to it only once that has passed too (PIXIT oauth.exp_leeway_s)
        leeway = float((env.profile.pixit.get("oauth") or {}).get("exp_leeway_s", 0) or 0)
        ms = max(0.0, (exp + leeway + 1.0 - time.time()) * 1000.0)
        limit = float(spec.get("max_ms", 10_000))
        if ms > limit:
            raise TooLong(f"the token expires to the SUT in {ms / 1000:.0f} s (exp plus a leeway of {leeway:g} s), "
                          f"longer than max_ms {limit:.0f} ms allows (shorten the token lifetime of the SUT for this test)")
    ms = min(ms, MAX_WAIT_MS)  # bounded whatever the YAML says
    env.clock.sleep(ms / 1000.0)
    return Nothing(ms)
