"""The reference WSF over the wire (BINDING.md steps 13-17, 20-21; RFC 7118, RFC 8898, RFC 6750).

The test is the UE (websocket-client over TLS) and, where what the WSF forwards must be seen, the
P-CSCF too: the network runs without its P-CSCF and the test binds the P-CSCF's address itself.
Every WSF fault is made observable here. The module's UE helpers are reused by the CSCF and fuzz
tests (they import this module).
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import secrets
import socket
import time
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
import websocket
from joserfc import jwt
from joserfc.jwk import ECKey

from conformance.codec.sip import Request, Response, StreamParser, make_response, parse
from conformance.codec.sip_headers import parse_credentials, parse_name_addr, parse_via

pytestmark = pytest.mark.integration

ALICE = {"web_id": "alice@web.operator.example", "password": "alice-pw", "impi": "alice@ims.example.net",
         "impus": ["sip:alice@ims.example.net", "tel:+15550100"]}
WSF_SIDE = ("as", "wsf")  # the test plays the P-CSCF
WAIT_S = 5.0
QUIET_S = 0.4  # how long "nothing was forwarded" is watched


# -- UE helpers (shared with test_refnet_cscf.py and test_refnet_fuzz.py) --------------------------

def https(net) -> requests.Session:
    s = requests.Session()
    s.trust_env = False  # REQUESTS_CA_BUNDLE would override verify
    s.verify = str(net.cfg.ca_file)
    return s


_tokens: dict[tuple, str] = {}


def get_token(net, user: dict = ALICE, fresh: bool = False, client: tuple[str, str] | None = None) -> str:
    """Steps 4-10 with the test as the third-party client (HTTPS to the AS only); `client` is
    another registered client (id, secret) than the third-party application's."""
    cfg, s = net.cfg, https(net)
    client_id, client_secret = client or (cfg.client_id, cfg.client_secret)
    key = (str(net.cfg.state), user["web_id"], client_id)
    if key in _tokens and not fresh:
        return _tokens[key]
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    params = {"response_type": "code", "client_id": client_id, "redirect_uri": cfg.redirect_uri,
              "scope": cfg.scope, "state": secrets.token_urlsafe(8), "code_challenge": challenge,
              "code_challenge_method": "S256"}
    page = s.get(net.url("as", "/authorize"), params=params, timeout=10)
    txn = re.search(r'name="transaction" value="([^"]+)"', page.text).group(1)
    r = s.post(net.url("as", "/authorize"), allow_redirects=False, timeout=10,
               data={"transaction": txn, "web_id": user["web_id"], "password": user["password"],
                     "consent": "approve"})
    code = parse_qs(urlsplit(r.headers["Location"]).query)["code"][0]
    r = s.post(net.url("as", "/token"), auth=(client_id, client_secret), timeout=10,
               data={"grant_type": "authorization_code", "code": code, "redirect_uri": cfg.redirect_uri,
                     "code_verifier": verifier})
    assert r.status_code == 200, r.text
    _tokens[key] = r.json()["access_token"]
    return _tokens[key]


def forged_token(net, **claims) -> str:
    """A well-formed RFC 9068 token signed by a key that is not the AS's."""
    now = int(time.time())
    body = {"iss": net.cfg.issuer, "sub": ALICE["web_id"], "aud": net.cfg.audience, "client_id": net.cfg.client_id,
            "scope": net.cfg.scope, "iat": now, "exp": now + 300, "jti": secrets.token_hex(8), **claims}
    return jwt.encode({"alg": "ES256", "typ": "at+jwt"}, body, ECKey.generate_key("P-256"))


def ws_connect(net, subprotocols=("sip",), path="/sip") -> websocket.WebSocket:
    return websocket.create_connection(net.url("wsf", path, scheme="wss"), timeout=WAIT_S,
                                       subprotocols=list(subprotocols) or None,
                                       sslopt={"ca_certs": str(net.cfg.ca_file)})


def register(token: str | None = None, to: str = f"sip:{ALICE['web_id']}", syntax: str = "rfc8898",
             cseq: int = 1, call_id: str | None = None, expires: int = 600, extra: str = "",
             max_forwards: int = 70, instance: str | None = None) -> str:
    """The REGISTER of BINDING.md step 14."""
    auth = ""
    if token is not None:
        cred = f'access_token="{token}"' if syntax == "ts24371" else token
        auth = f"Authorization: Bearer {cred}\r\n"
    instance = instance or f"urn:uuid:{secrets.token_hex(4)}-0000-1000-8000-{secrets.token_hex(6)}"
    return (f"REGISTER sip:ims.example.net SIP/2.0\r\n"
            f"Via: SIP/2.0/WSS df7jal23ls0d.invalid;branch=z9hG4bK{secrets.token_hex(8)}\r\n"
            f"Max-Forwards: {max_forwards}\r\n"
            f"To: <{to}>\r\n"
            f"From: <{to}>;tag={secrets.token_hex(4)}\r\n"
            f"Call-ID: {call_id or secrets.token_hex(10)}\r\n"
            f"CSeq: {cseq} REGISTER\r\n"
            f"Contact: <sip:{secrets.token_hex(4)}@df7jal23ls0d.invalid;transport=ws>"
            f';+sip.instance="<{instance}>";reg-id=1;expires={expires}\r\n'
            f"Supported: path, outbound\r\n"
            f"{auth}{extra}"
            f"Content-Length: 0\r\n\r\n")


def exchange(ws: websocket.WebSocket, message: str) -> Response:
    ws.send(message)
    resp = parse(ws.recv().encode())
    assert isinstance(resp, Response), resp
    return resp


def close_code(ws: websocket.WebSocket) -> int | None:
    """Read until the server's Close frame; its status code (RFC 6455 5.5.1)."""
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        try:
            opcode, frame = ws.recv_data_frame(True)
        except (websocket.WebSocketConnectionClosedException, OSError):
            return None
        if opcode == websocket.ABNF.OPCODE_CLOSE:
            return int.from_bytes(frame.data[:2], "big") if len(frame.data) >= 2 else None
    return None


class FakeCscf:
    """The test standing in for a CSCF: a UDP socket (or TCP listener) on the node's address."""

    def __init__(self, host: str, port: int, tcp: bool = False):
        self.tcp = tcp
        kind = socket.SOCK_STREAM if tcp else socket.SOCK_DGRAM
        self.sock = socket.socket(socket.AF_INET, kind)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, port))
        if tcp:
            self.sock.listen(8)
        self.conn: socket.socket | None = None
        self.parser = StreamParser()
        self.pending: list = []
        self.peer = None
        self.seen: set[str] = set()  # branches already received: retransmissions are skipped

    def receive(self, timeout: float = WAIT_S, retransmissions: bool = False) -> Request | Response | None:
        deadline = time.monotonic() + timeout
        while True:
            msg = self._receive(max(0.0, deadline - time.monotonic()))
            if msg is None or retransmissions or not isinstance(msg, Request) or msg.branch not in self.seen:
                if isinstance(msg, Request):
                    self.seen.add(msg.branch)
                return msg

    def _receive(self, timeout: float) -> Request | Response | None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.pending:
                return self.pending.pop(0)
            remaining = max(0.01, deadline - time.monotonic())
            try:
                if not self.tcp:
                    self.sock.settimeout(remaining)
                    data, self.peer = self.sock.recvfrom(65536)
                    return parse(data)
                if self.conn is None:
                    self.sock.settimeout(remaining)
                    self.conn, self.peer = self.sock.accept()
                self.conn.settimeout(remaining)
                data = self.conn.recv(65536)
                if not data:
                    return None
                self.pending += self.parser.feed(data)
            except TimeoutError:
                return None
        return None

    def answer(self, req: Request, status: int = 200, reason: str = "OK", headers=()) -> None:
        resp = make_response(req, status, reason, to_tag=secrets.token_hex(4))
        for name, value in headers:
            resp.headers.add(name, value)
        data = resp.serialize()
        if self.tcp:
            self.conn.sendall(data)
        else:
            self.sock.sendto(data, self.peer)

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
        self.sock.close()


# The fake P-CSCF sees only what a test expects: with the default wsf.on_ws_close = deregister the
# WSF's de-registrations of closed WebSockets (docs/lifecycle.md) would come in between.
FAKE_CORE = {"ws_close": "expire"}


@pytest.fixture(scope="module")
def wsf_net(refnet_factory):
    return refnet_factory(nodes=WSF_SIDE, **FAKE_CORE)


@pytest.fixture
def pcscf(wsf_net):
    ep = wsf_net.cfg.endpoints["pcscf"]
    fake = FakeCscf(ep.host, ep.port, tcp=wsf_net.cfg.options.core_transport == "tcp")
    yield fake
    fake.close()


def forward(net, fake: FakeCscf, message: str, answer: bool = True) -> tuple[Request, websocket.WebSocket]:
    """Send from a new flow, capture what reaches the fake P-CSCF; answer it (200) unless told not to,
    so that the WSF stops retransmitting."""
    ws = ws_connect(net)
    ws.send(message)
    fwd = fake.receive()
    assert isinstance(fwd, Request), "the WSF forwarded nothing to the P-CSCF"
    if answer:
        fake.answer(fwd)
        assert parse(ws.recv().encode()).status == 200
    return fwd, ws


def digest_of(req: Request):
    creds = [parse_credentials(v) for v in req.headers.get_all("Authorization")]
    return next((c for c in creds if c.scheme.lower() == "digest"), None)


# -- step 17: what the WSF forwards --------------------------------------------------------------

def test_forwarded_register_and_relayed_response(wsf_net, pcscf):
    token = get_token(wsf_net)
    sent = register(token)
    fwd, ws = forward(wsf_net, pcscf, sent, answer=False)
    try:
        ue = parse(sent.encode())
        for name in ("To", "From"):
            na = parse_name_addr(fwd.headers.get(name))
            assert str(na.uri) == ALICE["impus"][0], f"{name} must carry the default IMPU"
        assert parse_name_addr(fwd.headers.get("From")).tag == parse_name_addr(ue.headers.get("From")).tag
        assert not any(v.lower().startswith("bearer") for v in fwd.headers.get_all("Authorization"))
        assert token not in fwd.serialize().decode()
        digest = digest_of(fwd)
        assert digest is not None
        assert digest.params["username"] == ALICE["impi"]
        assert digest.params["realm"] == "ims.example.net"
        assert digest.params["uri"] == "sip:ims.example.net"
        assert digest.params["nonce"] == "" and digest.params["response"] == ""
        assert digest.params["integrity-protected"] == "auth-done"
        vias = [parse_via(v) for v in fwd.headers.get_all("Via")]
        assert len(vias) == 2 and vias[1].branch == ue.branch
        wsf_host = wsf_net.cfg.endpoints["wsf"].host
        assert vias[0].transport == "UDP" and vias[0].host == wsf_host
        assert vias[0].branch.startswith("z9hG4bK") and "rport" in vias[0].params
        assert fwd.headers.get("Max-Forwards") == "69"
        path = parse_name_addr(fwd.headers.get("Path"))
        assert path.uri.host == "wsf.operator.example" and path.uri.user
        assert "lr" in path.uri.params and "ob" in path.uri.params
        assert fwd.headers.get("Contact") == ue.headers.get("Contact")
        assert fwd.call_id == ue.call_id and fwd.cseq == ue.cseq
        # steps 20-21: the response comes back on the same flow with the WSF's Via removed
        pcscf.answer(fwd, 200, "OK", [("P-Associated-URI", "<sip:alice@ims.example.net>"),
                                      ("Service-Route", "<sip:orig@scscf.ims.example.net;lr>")])
        resp = parse(ws.recv().encode())
        assert resp.status == 200
        assert resp.headers.get_all("Via") == ue.headers.get_all("Via")
        assert resp.headers.get("P-Associated-URI") == "<sip:alice@ims.example.net>"
        assert resp.headers.get("Service-Route") == "<sip:orig@scscf.ims.example.net;lr>"
    finally:
        ws.close()


def test_each_flow_gets_its_own_path_token(wsf_net, pcscf):
    token = get_token(wsf_net)
    users = []
    for _ in range(2):
        fwd, ws = forward(wsf_net, pcscf, register(token))
        users.append(parse_name_addr(fwd.headers.get("Path")).uri.user)
        ws.close()
    assert users[0] != users[1]


@pytest.mark.parametrize("syntax", ["rfc8898", "ts24371"])
def test_both_bearer_syntaxes_are_accepted(wsf_net, pcscf, syntax):
    fwd, ws = forward(wsf_net, pcscf, register(get_token(wsf_net), syntax=syntax))
    ws.close()
    assert digest_of(fwd).params["username"] == ALICE["impi"]


def test_to_naming_an_impu_is_kept_and_checked(wsf_net, pcscf):
    token = get_token(wsf_net)
    fwd, ws = forward(wsf_net, pcscf, register(token, to="tel:+15550100"))
    ws.close()
    assert str(parse_name_addr(fwd.headers.get("To")).uri) == "tel:+15550100"
    ws = ws_connect(wsf_net)
    resp = exchange(ws, register(token, to="sip:bob@ims.example.net"))
    ws.close()
    assert resp.status == 403
    assert pcscf.receive(QUIET_S) is None, "a REGISTER for someone else's IMPU was forwarded"


# -- step 14 rejected: 401 and nothing forwarded --------------------------------------------------

def test_missing_token_gets_bearer_challenge(wsf_net, pcscf):
    ws = ws_connect(wsf_net)
    resp = exchange(ws, register(None))
    ws.close()
    assert resp.status == 401
    challenge = parse_credentials(resp.headers.get("WWW-Authenticate"))
    assert challenge.scheme == "Bearer"
    assert challenge.params["realm"] == "ims.example.net"
    assert challenge.params["authz_server"] == wsf_net.cfg.issuer
    assert "error" not in challenge.params  # RFC 6750 3.1: no error code when no token was sent
    assert parse_name_addr(resp.headers.get("To")).tag
    assert pcscf.receive(QUIET_S) is None


@pytest.mark.parametrize("kind", ["garbage", "forged", "alg-none", "wrong-aud"])
def test_invalid_token_gets_invalid_token(wsf_net, pcscf, kind):
    token = {"garbage": lambda: "not-a-token",
             "forged": lambda: forged_token(wsf_net),
             "alg-none": lambda: _alg_none(get_token(wsf_net)),
             "wrong-aud": lambda: forged_token(wsf_net, aud="elsewhere.example")}[kind]()
    ws = ws_connect(wsf_net)
    resp = exchange(ws, register(token))
    ws.close()
    assert resp.status == 401
    challenge = parse_credentials(resp.headers.get("WWW-Authenticate"))
    assert challenge.params["error"] == "invalid_token"
    assert challenge.params["authz_server"] == wsf_net.cfg.issuer
    assert pcscf.receive(QUIET_S) is None


def _alg_none(token: str) -> str:
    """The AS's own claims, re-wrapped as an unsecured JWS (RFC 7515 A.5)."""
    payload = token.split(".")[1]
    header = base64.urlsafe_b64encode(json.dumps({"alg": "none", "typ": "at+jwt"}).encode()).rstrip(b"=")
    return f"{header.decode()}.{payload}."


def test_max_forwards_zero_is_too_many_hops(wsf_net, pcscf):
    ws = ws_connect(wsf_net)
    resp = exchange(ws, register(get_token(wsf_net), max_forwards=0))
    ws.close()
    assert resp.status == 483
    assert pcscf.receive(QUIET_S) is None


# -- RFC 7118 transport rules ----------------------------------------------------------------------

def test_handshake_requires_sip_subprotocol(wsf_net):
    with pytest.raises(websocket.WebSocketBadStatusException) as exc:
        ws_connect(wsf_net, subprotocols=())
    assert exc.value.status_code == 400
    ws = ws_connect(wsf_net, subprotocols=("chat", "sip"))
    assert ws.getsubprotocol() == "sip"
    ws.close()


def test_other_paths_are_not_found(wsf_net):
    with pytest.raises(websocket.WebSocketBadStatusException) as exc:
        ws_connect(wsf_net, path="/other")
    assert exc.value.status_code == 404


def test_oversize_message_closes_1009(wsf_net):
    ws = ws_connect(wsf_net)
    # Only the header of a 70000-octet text frame: the WSF refuses it from the length alone, and
    # no unread payload makes its TCP stack reset the connection before the Close frame is read.
    ws.sock.sendall(bytes([0x81, 0x80 | 127]) + (70000).to_bytes(8, "big") + secrets.token_bytes(4))
    assert close_code(ws) == 1009
    ws = ws_connect(wsf_net)  # and a whole one, fragmented in two frames (RFC 6455 5.4)
    try:
        ws.send_frame(websocket.ABNF.create_frame("a" * 40000, websocket.ABNF.OPCODE_TEXT, fin=0))
        ws.send_frame(websocket.ABNF.create_frame("a" * 40000, websocket.ABNF.OPCODE_CONT, fin=1))
    except websocket.WebSocketConnectionClosedException:
        pass
    assert close_code(ws) in (1009, None)  # None: the reset beat the Close frame


def test_malformed_sip_gets_400_naming_the_problem(wsf_net, pcscf):
    ws = ws_connect(wsf_net)
    bad = re.sub(r"Call-ID: [^\r]*\r\n", "", register(get_token(wsf_net)))
    bad = bad.replace("Max-Forwards: 70", "Max-Forwards: 70\r\nCall-ID: a b c")  # not word ["@" word]
    resp = exchange(ws, bad)
    assert resp.status == 400
    assert "Call-ID" in resp.reason
    # the flow stays usable
    resp = exchange(ws, register(None))
    assert resp.status == 401
    ws.close()
    assert pcscf.receive(QUIET_S) is None


def test_binary_frames_carry_sip_too(wsf_net):
    ws = ws_connect(wsf_net)
    ws.send_binary(register(None).encode())
    reply = ws.recv()
    resp = parse(reply if isinstance(reply, bytes) else reply.encode())
    ws.close()
    assert resp.status == 401


def test_not_sip_closes_1007(wsf_net):
    ws = ws_connect(wsf_net)
    ws.send("hello, this is not SIP")
    assert close_code(ws) == 1007


# -- local_jwt mode and the TCP core -------------------------------------------------------------

def test_local_jwt_mode(refnet_factory):
    net = refnet_factory(nodes=WSF_SIDE, verify="local_jwt", token_lifetime_s=2, **FAKE_CORE)
    ep = net.cfg.endpoints["pcscf"]
    fake = FakeCscf(ep.host, ep.port)
    try:
        token = get_token(net, fresh=True)
        fwd, ws = forward(net, fake, register(token))
        ws.close()
        assert digest_of(fwd).params["username"] == ALICE["impi"]
        assert str(parse_name_addr(fwd.headers.get("To")).uri) == ALICE["impus"][0]
        ws = ws_connect(net)
        for bad in (forged_token(net), _alg_none(token), forged_token(net, aud="x")):
            resp = exchange(ws, register(bad))
            assert resp.status == 401, bad
        time.sleep(2.5)  # RFC 9068 4: an expired token is rejected
        resp = exchange(ws, register(token))
        assert resp.status == 401
        assert "expired" in resp.reason
        ws.close()
        assert fake.receive(QUIET_S) is None
    finally:
        fake.close()


def test_tcp_core(refnet_factory):
    net = refnet_factory(nodes=WSF_SIDE, core_transport="tcp", **FAKE_CORE)
    ep = net.cfg.endpoints["pcscf"]
    fake = FakeCscf(ep.host, ep.port, tcp=True)
    try:
        fwd, ws = forward(net, fake, register(get_token(net)), answer=False)
        assert fake.peer[0] == net.cfg.endpoints["wsf"].host  # the leg is attributable by address
        top = parse_via(fwd.headers.get("Via"))
        assert top.transport == "TCP"
        assert fwd.headers.get("Content-Length") == "0"
        fake.answer(fwd, 200, "OK")
        resp = parse(ws.recv().encode())
        assert resp.status == 200 and len(resp.headers.get_all("Via")) == 1
        ws.close()
    finally:
        fake.close()


def test_udp_core_retransmits(wsf_net, pcscf):
    """RFC 3261 17.1.2.2 Timer E: an unanswered REGISTER over UDP is sent again, same branch."""
    first, ws = forward(wsf_net, pcscf, register(get_token(wsf_net)), answer=False)
    again = pcscf.receive(2.0, retransmissions=True)
    assert isinstance(again, Request) and again.branch == first.branch
    pcscf.answer(again)
    assert parse(ws.recv().encode()).status == 200  # one answer, relayed once
    ws.close()


# -- the WSF faults: each one observable ---------------------------------------------------------

def _fault_net(refnet_factory, fault, **options):
    net = refnet_factory(nodes=WSF_SIDE, faults=[fault], **(FAKE_CORE | options))
    ep = net.cfg.endpoints["pcscf"]
    return net, FakeCscf(ep.host, ep.port)


def test_fault_wsf_skip_verification(refnet_factory):
    net, fake = _fault_net(refnet_factory, "wsf-skip-verification")
    try:
        fwd, ws = forward(net, fake, register(forged_token(net)))  # accepted without 15-16
        ws.close()
        assert digest_of(fwd).params["username"] == ALICE["impi"]
    finally:
        fake.close()


def test_fault_wsf_accept_expired(refnet_factory):
    net, fake = _fault_net(refnet_factory, "wsf-accept-expired", verify="local_jwt", token_lifetime_s=1)
    try:
        ws = ws_connect(net)  # only the expiry check is off: a foreign signature is still refused
        assert exchange(ws, register(forged_token(net, exp=int(time.time()) - 60))).status == 401
        ws.close()
        token = get_token(net, fresh=True)
        claims = json.loads(base64.urlsafe_b64decode(token.split(".")[1] + "=="))
        time.sleep(max(0.0, claims["exp"] - time.time()) + 0.2)
        fwd, ws = forward(net, fake, register(token))
        ws.close()
        assert digest_of(fwd).params["username"] == ALICE["impi"]
    finally:
        fake.close()


def test_genuine_token_for_another_audience_is_refused(wsf_net, pcscf):
    """The AS's own token for another resource server: only the audience check can refuse it."""
    cfg = wsf_net.cfg
    token = get_token(wsf_net, client=(cfg.other_audience_client_id, cfg.other_audience_client_secret))
    ws = ws_connect(wsf_net)
    resp = exchange(ws, register(token))
    ws.close()
    assert resp.status == 401
    assert parse_credentials(resp.headers.get("WWW-Authenticate")).params["error"] == "invalid_token"
    assert pcscf.receive(QUIET_S) is None


def test_fault_wsf_ignore_audience(refnet_factory):
    net, fake = _fault_net(refnet_factory, "wsf-ignore-audience")
    try:
        cfg = net.cfg
        token = get_token(net, fresh=True, client=(cfg.other_audience_client_id, cfg.other_audience_client_secret))
        fwd, ws = forward(net, fake, register(token))  # introspection says aud voicemail; forwarded anyway
        ws.close()
        assert digest_of(fwd).params["username"] == ALICE["impi"]
    finally:
        fake.close()


def test_fault_wsf_forward_bearer(refnet_factory):
    net, fake = _fault_net(refnet_factory, "wsf-forward-bearer")
    try:
        token = get_token(net)
        fwd, ws = forward(net, fake, register(token))
        ws.close()
        assert f"Bearer {token}" in fwd.headers.get_all("Authorization")
        assert digest_of(fwd) is not None
    finally:
        fake.close()


def test_fault_wsf_keep_web_id(refnet_factory):
    net, fake = _fault_net(refnet_factory, "wsf-keep-web-id")
    try:
        fwd, ws = forward(net, fake, register(get_token(net)))
        ws.close()
        assert str(parse_name_addr(fwd.headers.get("To")).uri) == f"sip:{ALICE['web_id']}"
        assert digest_of(fwd).params["integrity-protected"] == "auth-done"
    finally:
        fake.close()


def test_fault_wsf_no_auth_done(refnet_factory):
    net, fake = _fault_net(refnet_factory, "wsf-no-auth-done")
    try:
        fwd, ws = forward(net, fake, register(get_token(net)))
        ws.close()
        digest = digest_of(fwd)
        assert digest.params["username"] == ALICE["impi"]
        assert "integrity-protected" not in digest.params
    finally:
        fake.close()


def test_fault_wsf_no_challenge(refnet_factory):
    net, fake = _fault_net(refnet_factory, "wsf-no-challenge")
    try:
        ws = ws_connect(net)
        resp = exchange(ws, register(None))
        ws.close()
        assert resp.status == 403
        assert "WWW-Authenticate" not in resp.headers
    finally:
        fake.close()


def test_fault_wsf_accept_no_subprotocol(refnet_factory):
    net, fake = _fault_net(refnet_factory, "wsf-accept-no-subprotocol")
    try:
        ws = ws_connect(net, subprotocols=())
        assert ws.getsubprotocol() is None
        assert exchange(ws, register(None)).status == 401
        ws.close()
    finally:
        fake.close()


def test_fault_wsf_no_path(refnet_factory):
    net, fake = _fault_net(refnet_factory, "wsf-no-path")
    try:
        fwd, ws = forward(net, fake, register(get_token(net)))
        ws.close()
        assert "Path" not in fwd.headers
        assert digest_of(fwd).params["integrity-protected"] == "auth-done"
    finally:
        fake.close()
