"""The reference 3rdWWS over the wire: steps 1-11 one redirect hop at a time, the callback checks,
relay and direct signalling (with a stand-in WSF that records what reaches it), each 3rdWWS
fault made observable, and robustness."""

from __future__ import annotations

import asyncio
import queue
import secrets
import threading
from urllib.parse import parse_qs, urlencode, urljoin, urlsplit, urlunsplit

import pytest
import websocket
from joserfc import jwt
from joserfc.jwk import KeySet
from websockets.asyncio.server import serve as ws_serve

from refnet import pki
from refnet.faults import FAULTS

pytestmark = pytest.mark.integration
TP_NODES = ("as", "3rdwws")  # the WSF is played by FakeWSF below


@pytest.fixture(scope="module")
def net(refnet_factory):
    return refnet_factory(nodes=TP_NODES)


def query(url: str) -> dict:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query, keep_blank_values=True).items()}


def login(h, net, user):
    """Step 1. Returns (session, response)."""
    s = h.session(net)
    r = s.post(net.url("3rdwws", "/login"), allow_redirects=False,
               data={"username": user["tp_username"], "password": user["tp_password"]})
    return s, r


def to_callback(h, net, s, user) -> tuple[str, dict]:
    """Steps 2-7 with a logged-in session: returns (authorization URL, callback URL)."""
    r2 = s.get(net.url("3rdwws", "/webrtc"), allow_redirects=False)
    assert r2.status_code == 302, r2.text
    r4 = s.get(r2.headers["Location"], allow_redirects=False)
    assert r4.status_code == 200, r4.text
    r6 = s.post(net.url("as", "/authorize"), allow_redirects=False,
                data={"transaction": h.transaction(r4.text), "web_id": user["web_id"],
                      "password": user["password"], "consent": "approve"})
    assert r6.status_code in (302, 303), r6.text
    return r2.headers["Location"], r6.headers["Location"]


def logged_in_app(h, net, user=None):
    """Steps 1-11; returns (session, user)."""
    user = user or h.user(net)
    s, r1 = login(h, net, user)
    assert r1.status_code == 303
    _, callback = to_callback(h, net, s, user)
    r8 = s.get(callback, allow_redirects=False)
    assert r8.status_code == 303 and r8.headers["Location"] == "/webrtc/app", r8.text
    return s, user


def with_query(url: str, **changes) -> str:
    parts = urlsplit(url)
    q = {**query(url), **changes}
    return urlunsplit(parts._replace(query=urlencode({k: v for k, v in q.items() if v is not None})))


# -- steps 1-11 ------------------------------------------------------------------------------------------
def test_steps_1_to_11(net, refnet_helpers):
    h, cfg = refnet_helpers, net.cfg
    user = h.user(net)
    s, r1 = login(h, net, user)  # step 1
    assert r1.status_code == 303 and r1.headers["Location"] == "/webrtc"
    cookie = r1.headers["Set-Cookie"]
    assert cookie.startswith("sid=") and "HttpOnly" in cookie and "Secure" in cookie and "SameSite=Lax" in cookie

    auth_url, callback = to_callback(h, net, s, user)  # steps 2-7
    assert auth_url.startswith(cfg.url("as", "/authorize?"))
    q3 = query(auth_url)
    assert q3["response_type"] == "code" and q3["client_id"] == cfg.client_id
    assert q3["redirect_uri"] == cfg.redirect_uri and q3["scope"] == "ims-webrtc"
    assert len(q3["state"]) >= 32 and q3["code_challenge_method"] == "S256" and len(q3["code_challenge"]) == 43
    assert callback.startswith(cfg.redirect_uri + "?")
    q7 = query(callback)
    assert q7["state"] == q3["state"] and q7["iss"] == cfg.issuer and q7["code"]

    r8 = s.get(callback, allow_redirects=False)  # steps 8-11 (9-10 between the 3rdWWS and the AS)
    assert r8.status_code == 303 and r8.headers["Location"] == "/webrtc/app"
    app = s.get(urljoin(r8.url, r8.headers["Location"]))
    assert app.status_code == 200 and '<script src="/webrtc/app.js">' in app.text
    js = s.get(net.url("3rdwws", "/webrtc/app.js"))
    assert js.status_code == 200 and "javascript" in js.headers["Content-Type"] and "WebSocket" in js.text
    assert "eyJ" not in app.text  # relay mode: the token stays on the server
    assert s.get(net.url("3rdwws", "/webrtc/session")).status_code == 404
    # steps 9-10 (3rdWWS -> AS) are decryptable from the 3rdWWS's own key log: its client leg
    # logged the very secrets the AS logged as server
    shared = set(cfg.keylog("3rdwws").read_text().splitlines()) & set(cfg.keylog("as").read_text().splitlines())
    assert any(line.startswith(("CLIENT_TRAFFIC_SECRET_0", "CLIENT_RANDOM")) for line in shared)


def test_login_and_session_required(net, refnet_helpers):
    h = refnet_helpers
    user = h.user(net)
    s, r = login(h, net, dict(user, tp_password="wrong"))
    assert r.status_code == 403 and "Set-Cookie" not in r.headers
    for path in ("/webrtc", "/oauth/callback?code=x&state=y", "/webrtc/app"):
        assert s.get(net.url("3rdwws", path), allow_redirects=False).status_code == 403
    s, r = login(h, net, {"tp_username": "jane", "tp_password": "jane-pw"})  # BINDING fixture account
    assert r.status_code == 303


@pytest.mark.parametrize("tamper", ["state", "no-state", "no-iss", "iss"])
def test_callback_checks_state_and_iss(net, refnet_helpers, tamper):
    h = refnet_helpers
    user = h.user(net)
    s, _ = login(h, net, user)
    _, callback = to_callback(h, net, s, user)
    change = {"state": {"state": "forged"}, "no-state": {"state": None}, "no-iss": {"iss": None},
              "iss": {"iss": "https://evil.example"}}[tamper]
    r = s.get(with_query(callback, **change), allow_redirects=False)
    assert r.status_code == 400 and "Location" not in r.headers


def test_authorization_error_is_not_a_login(net, refnet_helpers):
    h = refnet_helpers
    user = h.user(net)
    s, _ = login(h, net, user)
    r2 = s.get(net.url("3rdwws", "/webrtc"), allow_redirects=False)
    r4 = s.get(r2.headers["Location"])
    r6 = s.post(net.url("as", "/authorize"), allow_redirects=False,
                data={"transaction": h.transaction(r4.text), "consent": "deny"})
    assert query(r6.headers["Location"])["error"] == "access_denied"
    r8 = s.get(r6.headers["Location"], allow_redirects=False)
    assert r8.status_code == 400
    assert s.get(net.url("3rdwws", "/webrtc/app"), allow_redirects=False).status_code == 303  # no token


# -- relay signalling (steps 12-14, 21-22) with a stand-in WSF --------------------------------------------
class FakeWSF:
    """WSS server on the WSF's endpoint: records each message and answers requests with 200 OK."""

    def __init__(self, cfg):
        self.cfg = cfg
        self.received: queue.Queue[str] = queue.Queue()
        self.subprotocols: list[str | None] = []
        self.replies: list[str] = []
        self._ready = threading.Event()

    def __enter__(self):
        self.thread = threading.Thread(target=asyncio.run, args=(self._main(),), daemon=True)
        self.thread.start()
        assert self._ready.wait(5)
        return self

    def __exit__(self, *exc):
        self.loop.call_soon_threadsafe(self.stop.set)
        self.thread.join(5)

    async def _main(self):
        self.loop, self.stop = asyncio.get_running_loop(), asyncio.Event()
        ep = self.cfg.endpoints["wsf"]
        async with ws_serve(self._handle, ep.host, ep.port, subprotocols=["sip"],
                            ssl=pki.server_ssl_context(self.cfg, "wsf")):
            self._ready.set()
            await self.stop.wait()

    async def _handle(self, conn):
        self.subprotocols.append(conn.subprotocol)
        async for message in conn:
            self.received.put(message)
            if not message.startswith("SIP/2.0"):
                reply = ok_for(message)
                self.replies.append(reply)
                await conn.send(reply)


def ok_for(request: str) -> str:
    head = request.split("\r\n\r\n")[0].split("\r\n")
    keep = [line for line in head[1:] if line.split(":")[0] in ("Via", "From", "To", "Call-ID", "CSeq")]
    extra = ["P-Associated-URI: <sip:x@ims.example.net>", "Content-Length: 0"]
    return "\r\n".join(["SIP/2.0 200 OK", *keep, *extra]) + "\r\n\r\n"


def register(web_id: str, extra: str = "") -> str:
    r = secrets.token_hex(6)
    return (f"REGISTER sip:ims.example.net SIP/2.0\r\n"
            f"Via: SIP/2.0/WSS df7jal23ls0d.invalid;branch=z9hG4bK{r}\r\n"
            f"Max-Forwards: 70\r\nTo: <sip:{web_id}>\r\nFrom: <sip:{web_id}>;tag={r}\r\n"
            f"Call-ID: {r}\r\nCSeq: 1 REGISTER\r\n"
            f"Contact: <sip:{r}@df7jal23ls0d.invalid;transport=ws>;expires=600\r\n"
            f"Supported: path, outbound\r\n{extra}Content-Length: 0\r\n\r\n")


def ue_websocket(net, s, **kw):
    sid = s.cookies.get("sid")
    return websocket.create_connection(net.url("3rdwws", "/sip", scheme="wss"), timeout=5,
                                       sslopt={"ca_certs": str(net.cfg.ca_file)},
                                       cookie=f"sid={sid}" if sid else None, **kw)


def header_lines(message: str, name: str) -> list[str]:
    return [line.split(":", 1)[1].strip() for line in message.split("\r\n\r\n")[0].split("\r\n")[1:]
            if line.split(":", 1)[0].strip().lower() == name.lower()]


def check_bearer_relay(h, net, prefix: str):
    s, user = logged_in_app(h, net)
    with FakeWSF(net.cfg) as wsf:
        ws = ue_websocket(net, s, subprotocols=["sip"])
        try:
            assert ws.getsubprotocol() == "sip"
            sent = register(user["web_id"])
            ws.send(sent)
            relayed = wsf.received.get(timeout=5)
            assert wsf.subprotocols == ["sip"]
            (auth,) = header_lines(relayed, "Authorization")
            assert auth.startswith(prefix)
            token = auth[len(prefix):].rstrip('"')
            jwks = h.session(net).get(net.url("as", "/jwks")).json()
            assert jwt.decode(token, KeySet.import_key_set(jwks), algorithms=["ES256"]).claims["sub"] == user["web_id"]
            without_auth = [ln for ln in relayed.split("\r\n") if not ln.startswith("Authorization:")]
            assert without_auth == sent.split("\r\n")  # nothing else changed
            assert ws.recv() == wsf.replies[0]  # the response comes back unchanged

            options = sent.replace("REGISTER sip:", "OPTIONS sip:").replace("1 REGISTER", "2 OPTIONS")
            ws.send(options)
            assert wsf.received.get(timeout=5) == options  # not a REGISTER: byte for byte
            ws.recv()
            ws.send("this is not SIP\r\n\r\n")  # discarded, the connection lives on
            ws.send(sent)
            assert header_lines(wsf.received.get(timeout=5), "Authorization")
        finally:
            ws.close()


def test_relay_adds_bearer_rfc8898(net, refnet_helpers):
    check_bearer_relay(refnet_helpers, net, "Bearer ")


def test_relay_adds_bearer_ts24371(refnet_factory, refnet_helpers):
    check_bearer_relay(refnet_helpers, refnet_factory(nodes=TP_NODES, bearer_syntax="ts24371"),
                       'Bearer access_token="')


def test_relay_websocket_requires_session_subprotocol_and_bounds(net, refnet_helpers):
    h = refnet_helpers
    with pytest.raises(websocket.WebSocketBadStatusException) as no_session:
        ue_websocket(net, h.session(net), subprotocols=["sip"])
    assert no_session.value.status_code == 403
    s, _ = logged_in_app(h, net)
    with pytest.raises(websocket.WebSocketBadStatusException) as no_sip:
        ue_websocket(net, s)
    assert no_sip.value.status_code == 400
    with pytest.raises(websocket.WebSocketBadStatusException) as no_wsf:  # nobody on the WSF port
        ue_websocket(net, s, subprotocols=["sip"])
    assert no_wsf.value.status_code == 502
    with FakeWSF(net.cfg):
        ws = ue_websocket(net, s, subprotocols=["sip"])
        try:
            ws.send("x" * (65 * 1024))
            opcode, frame = ws.recv_data(control_frame=True)
            assert opcode == websocket.ABNF.OPCODE_CLOSE and int.from_bytes(frame[:2], "big") == 1009
        except (websocket.WebSocketConnectionClosedException, OSError):
            pass  # the server closed while unread bytes were pending: its RST may overtake the Close
        ws.shutdown()
    assert h.session(net).get(net.url("3rdwws", "/")).status_code == 200


# -- direct signalling -----------------------------------------------------------------------------------
def test_direct_mode_hands_token_to_the_ue(refnet_factory, refnet_helpers):
    h = refnet_helpers
    net = refnet_factory(nodes=TP_NODES, signalling="direct")
    s, user = logged_in_app(h, net)
    r = s.get(net.url("3rdwws", "/webrtc/session"))
    assert r.status_code == 200 and r.headers["Cache-Control"] == "no-store"
    body = r.json()
    assert body["wsf_url"] == net.cfg.wsf_url
    jwks = h.session(net).get(net.url("as", "/jwks")).json()
    assert jwt.decode(body["access_token"], KeySet.import_key_set(jwks)).claims["sub"] == user["web_id"]
    assert h.session(net).get(net.url("3rdwws", "/webrtc/session")).status_code == 403  # no session
    with pytest.raises(websocket.WebSocketBadStatusException) as no_relay:
        ue_websocket(net, s, subprotocols=["sip"])
    assert no_relay.value.status_code == 404


# -- faults ----------------------------------------------------------------------------------------------
def _no_pkce(h, net):
    user = h.user(net)
    s, _ = login(h, net, user)
    q = query(s.get(net.url("3rdwws", "/webrtc"), allow_redirects=False).headers["Location"])
    assert "code_challenge" not in q and "code_challenge_method" not in q


def _state_unchecked(h, net):
    user = h.user(net)
    s, _ = login(h, net, user)
    _, callback = to_callback(h, net, s, user)
    r = s.get(with_query(callback, state="forged"), allow_redirects=False)
    assert r.status_code == 303 and r.headers["Location"] == "/webrtc/app"


def _foreign_origin_accepted(h, net):
    """RFC 6455 10.2 (docs/lifecycle.md): a foreign page's handshake gets past the Origin check
    (here to the missing WSF: 502) instead of 403."""
    s, _ = logged_in_app(h, net)
    with pytest.raises(websocket.WebSocketBadStatusException) as refused:
        ue_websocket(net, s, subprotocols=["sip"], origin="https://attacker.example")
    assert refused.value.status_code == 502


def _callback_opens_app(h, net, **changes):
    """The genuine callback of a logged-in user with `changes` to its query: the application opens
    (303 to /webrtc/app) where it must refuse."""
    user = h.user(net)
    s, _ = login(h, net, user)
    _, callback = to_callback(h, net, s, user)
    r = s.get(with_query(callback, **changes), allow_redirects=False)
    assert r.status_code == 303 and r.headers["Location"] == "/webrtc/app", (r.status_code, r.text[:200])


def _iss_unchecked(h, net):  # RFC 9207 2.4: another issuer's response
    _callback_opens_app(h, net, iss="https://attacker.example")


def _authz_error_ignored(h, net):  # RFC 6749 4.1.2.1: an error response, no code
    _callback_opens_app(h, net, code=None, error="access_denied")


def _token_error_ignored(h, net):  # RFC 6749 5.2: the AS refuses the code (invalid_grant)
    _callback_opens_app(h, net, code="not-a-code-the-as-issued")


TP_FAULT_CHECKS = {"3rdwws-no-pkce": _no_pkce, "3rdwws-state-unchecked": _state_unchecked,
                   "3rdwws-accept-foreign-origin": _foreign_origin_accepted,
                   "3rdwws-iss-unchecked": _iss_unchecked, "3rdwws-ignore-authz-error": _authz_error_ignored,
                   "3rdwws-token-error-ignored": _token_error_ignored}


def test_every_3rdwws_fault_has_a_check():
    assert set(TP_FAULT_CHECKS) == {f.name for f in FAULTS if f.node == "3rdwws"}


@pytest.mark.parametrize("fault", sorted(TP_FAULT_CHECKS))
def test_3rdwws_fault_is_observable(refnet_factory, refnet_helpers, net, fault):
    TP_FAULT_CHECKS[fault](refnet_helpers, refnet_factory(faults=[fault], nodes=TP_NODES))
    with pytest.raises(AssertionError):  # and the same check fails on the clean network
        TP_FAULT_CHECKS[fault](refnet_helpers, net)


# -- robustness ------------------------------------------------------------------------------------------
def test_malformed_and_oversized_requests(net, refnet_helpers):
    s = refnet_helpers.session(net)
    url = net.url("3rdwws", "/login")
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    assert s.post(url, data=b"username=" + b"x" * (70 * 1024), headers=form).status_code == 413
    assert s.post(url, data=b"password=only", headers=form).status_code == 400
    assert s.post(url, data=b"\xff\xfe=%%%", headers=form).status_code in (400, 403)
    r = s.get(net.url("3rdwws", "/"))
    assert r.status_code == 200 and 'action="/login"' in r.text
