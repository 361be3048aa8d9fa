"""The reference P-CSCF and S-CSCF over the wire (BINDING.md steps 17-22), and the whole chain
UE -> WSF -> P-CSCF -> S-CSCF.

The test speaks SIP over plain UDP/TCP sockets, either as the WSF (sending to the P-CSCF) or as
the P-CSCF/S-CSCF itself (binding the node's address when that node is not started), so that what
each node adds is seen on the wire. Each P-CSCF and S-CSCF fault is made observable.
"""

from __future__ import annotations

import secrets
import socket
import time

import pytest
import websocket
from test_refnet_wsf import (
    ALICE,
    WAIT_S,
    FakeCscf,
    exchange,
    get_token,
    register,
    ws_connect,
)

from conformance.codec.sip import Response, StreamParser, parse
from conformance.codec.sip_headers import parse_credentials, parse_name_addr, parse_via

pytestmark = pytest.mark.integration

CHAIN = ("as", "wsf", "pcscf", "scscf")
CORE = ("pcscf", "scscf")


class SipClient:
    """A SIP element on 127.0.0.1 talking to one node over UDP or TCP."""

    def __init__(self, host: str, port: int, transport: str = "udp"):
        self.dest, self.transport = (host, port), transport
        if transport == "udp":
            self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            self.sock.bind(("127.0.0.1", 0))
        else:
            self.sock = socket.create_connection(self.dest, timeout=WAIT_S)
        self.parser = StreamParser()
        self.pending: list = []

    @property
    def local(self) -> tuple[str, int]:
        return self.sock.getsockname()

    def send(self, data: str | bytes) -> None:
        data = data.encode() if isinstance(data, str) else data
        if self.transport == "udp":
            self.sock.sendto(data, self.dest)
        else:
            self.sock.sendall(data)

    def receive(self, timeout: float = WAIT_S) -> Response | None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.pending:
                return self.pending.pop(0)
            self.sock.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                if self.transport == "udp":
                    return parse(self.sock.recvfrom(65536)[0])
                data = self.sock.recv(65536)
            except TimeoutError:
                return None
            if not data:
                return None
            self.pending += self.parser.feed(data)
        return None

    def request(self, data: str | bytes) -> Response:
        self.send(data)
        resp = self.receive()
        assert isinstance(resp, Response), "no response"
        return resp

    def close(self) -> None:
        self.sock.close()


def core_register(client: SipClient, impu: str = ALICE["impus"][0], impi: str | None = ALICE["impi"],
                  auth_done: bool = True, call_id: str | None = None, cseq: int = 1, contact: str | None = "new",
                  expires: int | None = 600, extra: str = "", max_forwards: int = 69) -> str:
    """A REGISTER as the WSF forwards it (step 17), sent from the test's own socket."""
    host, port = client.local
    transport = client.transport.upper()
    auth = ""
    if impi is not None:
        auth = (f'Authorization: Digest username="{impi}", realm="ims.example.net", uri="sip:ims.example.net", '
                f'nonce="", response=""' + (', integrity-protected="auth-done"' if auth_done else "") + "\r\n")
    if contact == "new":
        contact = f"<sip:{secrets.token_hex(4)}@df7jal23ls0d.invalid;transport=ws>"
    contact_line = ""
    if contact is not None:
        contact_line = f"Contact: {contact}" + (f";expires={expires}" if expires is not None else "") + "\r\n"
    return (f"REGISTER sip:ims.example.net SIP/2.0\r\n"
            f"Via: SIP/2.0/{transport} {host}:{port};branch=z9hG4bK{secrets.token_hex(8)};rport\r\n"
            f"Via: SIP/2.0/WSS df7jal23ls0d.invalid;branch=z9hG4bK{secrets.token_hex(8)}\r\n"
            f"Max-Forwards: {max_forwards}\r\n"
            f"To: <{impu}>\r\nFrom: <{impu}>;tag={secrets.token_hex(4)}\r\n"
            f"Call-ID: {call_id or secrets.token_hex(10)}\r\nCSeq: {cseq} REGISTER\r\n"
            f"{contact_line}"
            f"Supported: path, outbound\r\n"
            f"Path: <sip:{secrets.token_hex(6)}@wsf.operator.example;lr;ob>\r\n"
            f"{auth}{extra}Content-Length: 0\r\n\r\n")


def contacts(resp: Response) -> dict[str, int]:
    """Contact URI -> granted expires."""
    out = {}
    for value in resp.headers.get_all("Contact"):
        na = parse_name_addr(value)
        out[str(na.uri)] = int(na.params["expires"])
    return out


def uri_of(message: str) -> str:
    return str(parse_name_addr(parse(message.encode()).headers.get("Contact")).uri)


def to_pcscf(net, transport: str = "udp") -> SipClient:
    ep = net.cfg.endpoints["pcscf"]
    return SipClient(ep.host, ep.port, transport)


def to_scscf(net, transport: str = "udp") -> SipClient:
    ep = net.cfg.endpoints["scscf"]
    return SipClient(ep.host, ep.port, transport)


# -- the whole chain (steps 14-21) ---------------------------------------------------------------

@pytest.fixture(scope="module")
def chain(refnet_factory):
    return refnet_factory(nodes=CHAIN)


def check_registered(resp: Response, sent: str, net) -> None:
    assert resp.status == 200, resp.reason
    ue = parse(sent.encode())
    assert resp.headers.get_all("Via") == ue.headers.get_all("Via"), "only the UE's Via comes back"
    assert resp.headers.get_all("P-Associated-URI") == [f"<{u}>" for u in ALICE["impus"]]  # default first
    assert resp.headers.get_all("Service-Route") == ["<sip:orig@scscf.ims.example.net;lr>"]
    paths = [parse_name_addr(p).uri for p in resp.headers.get_all("Path")]
    assert [p.host for p in paths] == ["pcscf.ims.example.net", "wsf.operator.example"]  # in order
    assert paths[0].user == "term" and "ob" in paths[1].params
    assert contacts(resp)[uri_of(sent)] == 600
    assert parse_name_addr(resp.headers.get("To")).tag


@pytest.mark.parametrize("syntax", ["rfc8898", "ts24371"])
def test_registration_through_the_chain(chain, syntax):
    sent = register(get_token(chain), syntax=syntax)
    ws = ws_connect(chain)
    resp = exchange(ws, sent)
    ws.close()
    check_registered(resp, sent, chain)


def test_registration_tcp_core_local_jwt(refnet_factory):
    net = refnet_factory(nodes=CHAIN, verify="local_jwt", core_transport="tcp")
    sent = register(get_token(net), to=ALICE["impus"][0])  # sip.client_aor = impu
    ws = ws_connect(net)
    resp = exchange(ws, sent)
    ws.close()
    check_registered(resp, sent, net)


def test_relay_mode_end_to_end(refnet_factory, refnet_helpers):
    """Steps 1-22 in relay mode: the 3rdWWS holds the token and is the WSF's WebSocket client."""
    h = refnet_helpers
    net = refnet_factory()  # every node, default options (signalling = relay)
    user = h.user(net)
    s = h.session(net)
    assert s.post(net.url("3rdwws", "/login"), allow_redirects=False,
                  data={"username": user["tp_username"], "password": user["tp_password"]}).status_code == 303
    authorize = s.get(s.get(net.url("3rdwws", "/webrtc"), allow_redirects=False).headers["Location"])
    callback = s.post(net.url("as", "/authorize"), allow_redirects=False,
                      data={"transaction": h.transaction(authorize.text), "web_id": user["web_id"],
                            "password": user["password"], "consent": "approve"}).headers["Location"]
    assert s.get(callback, allow_redirects=False).status_code == 303
    ws = websocket.create_connection(net.url("3rdwws", "/sip", scheme="wss"), timeout=WAIT_S,
                                     subprotocols=["sip"], sslopt={"ca_certs": str(net.cfg.ca_file)},
                                     cookie=f"sid={s.cookies.get('sid')}")
    try:
        sent = register(None, to=f"sip:{user['web_id']}")  # step 12: no credentials from the UE
        resp = exchange(ws, sent)
    finally:
        ws.close()
    assert resp.status == 200, resp.reason
    assert resp.headers.get_all("P-Associated-URI") == [f"<{u}>" for u in user["impus"]]
    assert resp.headers.get_all("Via") == parse(sent.encode()).headers.get_all("Via")
    assert str(parse_name_addr(resp.headers.get("To")).uri) == user["impus"][0]


def test_reregistration_and_deregistration_through_the_chain(chain):
    token, call_id = get_token(chain), secrets.token_hex(8)
    ws = ws_connect(chain)
    instance = f"urn:uuid:{secrets.token_hex(4)}-0000-1000-8000-{secrets.token_hex(6)}"
    for cseq in (1, 2):  # re-REGISTER: same instance, the binding is refreshed, not duplicated
        sent = register(token, call_id=call_id, cseq=cseq, instance=instance)
        resp = exchange(ws, sent)
        assert resp.status == 200
        assert contacts(resp).get(uri_of(sent)) == 600
    mine = [c for c in resp.headers.get_all("Contact") if instance in c]
    assert len(mine) == 1
    resp = exchange(ws, register(token, call_id=call_id, cseq=3, instance=instance, expires=0))
    ws.close()
    assert resp.status == 200
    assert not [c for c in resp.headers.get_all("Contact") if instance in c]


# -- P-CSCF: what it adds (the test plays the S-CSCF) --------------------------------------------

def _pcscf_alone(refnet_factory, faults=()):
    net = refnet_factory(nodes=("pcscf",), faults=list(faults))
    ep = net.cfg.endpoints["scscf"]
    return net, FakeCscf(ep.host, ep.port)


def test_pcscf_forwards_with_its_headers_and_relays_back(refnet_factory):
    net, scscf = _pcscf_alone(refnet_factory)
    client = to_pcscf(net)
    try:
        sent = core_register(client)
        client.send(sent)
        fwd = scscf.receive()
        assert fwd is not None, "nothing reached the S-CSCF"
        pcscf = net.cfg.endpoints["pcscf"]
        vias = [parse_via(v) for v in fwd.headers.get_all("Via")]
        assert len(vias) == 3
        assert (vias[0].transport, vias[0].host, vias[0].port) == ("UDP", pcscf.host, pcscf.port)
        assert vias[0].branch.startswith("z9hG4bK")
        assert vias[1].params["received"] == "127.0.0.1" and vias[1].params["rport"] == str(client.local[1])
        paths = fwd.headers.get_all("Path")
        assert paths[0] == "<sip:term@pcscf.ims.example.net;lr>"  # RFC 3327: on top
        assert paths[1] == parse(sent.encode()).headers.get("Path")
        assert "path" in [v.lower() for v in fwd.headers.get_all("Require")]
        assert fwd.headers.get("P-Visited-Network-ID") == '"visited.example.net"'
        assert fwd.headers.get("P-Charging-Vector").startswith("icid-value=")
        assert fwd.headers.get("Authorization") == parse(sent.encode()).headers.get("Authorization")
        assert fwd.headers.get("Max-Forwards") == "68"
        # a second REGISTER gets another icid-value
        sent2 = core_register(client)
        client.send(sent2)
        fwd2 = scscf.receive()
        assert fwd2.headers.get("P-Charging-Vector") != fwd.headers.get("P-Charging-Vector")
        # step 20: the response goes back to the previous hop, P-CSCF Via removed
        scscf.answer(fwd, 200, "OK", [("Service-Route", "<sip:orig@scscf.ims.example.net;lr>")])
        resp = client.receive()
        assert resp is not None and resp.status == 200
        assert len(resp.headers.get_all("Via")) == 2 and parse_via(resp.headers.get("Via")).branch == \
            parse(sent.encode()).branch
        assert resp.headers.get("Service-Route") == "<sip:orig@scscf.ims.example.net;lr>"
        scscf.answer(fwd2, 200, "OK")
        assert client.receive().status == 200
    finally:
        client.close()
        scscf.close()


def test_fault_pcscf_no_path(refnet_factory):
    net, scscf = _pcscf_alone(refnet_factory, ["pcscf-no-path"])
    client = to_pcscf(net)
    try:
        sent = core_register(client)
        client.send(sent)
        fwd = scscf.receive()
        assert fwd.headers.get_all("Path") == [parse(sent.encode()).headers.get("Path")]
        assert fwd.headers.get("P-Visited-Network-ID") == '"visited.example.net"'
    finally:
        client.close()
        scscf.close()


def test_fault_pcscf_no_visited_network_id(refnet_factory):
    net, scscf = _pcscf_alone(refnet_factory, ["pcscf-no-visited-network-id"])
    client = to_pcscf(net)
    try:
        client.send(core_register(client))
        fwd = scscf.receive()
        assert "P-Visited-Network-ID" not in fwd.headers
        assert fwd.headers.get("Path") == "<sip:term@pcscf.ims.example.net;lr>"
    finally:
        client.close()
        scscf.close()


# -- S-CSCF: the registrar -----------------------------------------------------------------------

@pytest.fixture(scope="module")
def core(refnet_factory):
    return refnet_factory(nodes=CORE)


@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_register_via_pcscf(core, transport):
    client = to_pcscf(core, transport)
    try:
        sent = core_register(client, expires=100000)
        resp = client.request(sent)
        assert resp.status == 200, resp.reason
        assert contacts(resp)[uri_of(sent)] == 3600  # granted at most 3600 s
        assert resp.headers.get_all("P-Associated-URI")[0] == "<sip:alice@ims.example.net>"
        assert resp.headers.get("Service-Route") == "<sip:orig@scscf.ims.example.net;lr>"
        assert resp.headers.get_all("Path")[1] == parse(sent.encode()).headers.get("Path")
        assert [parse_via(v).branch for v in resp.headers.get_all("Via")] == \
            [parse_via(v).branch for v in parse(sent.encode()).headers.get_all("Via")]
        if transport == "tcp":
            assert resp.headers.get("Content-Length") == "0"
    finally:
        client.close()


def test_challenge_without_auth_done(core):
    client = to_pcscf(core)
    try:
        resp = client.request(core_register(client, auth_done=False))
    finally:
        client.close()
    assert resp.status == 401
    challenge = parse_credentials(resp.headers.get("WWW-Authenticate"))
    assert challenge.scheme == "Digest"
    assert challenge.params["realm"] == "ims.example.net" and challenge.params["nonce"]
    assert challenge.params["algorithm"] == "MD5" and challenge.params["qop"] == "auth"


def test_challenge_when_not_from_the_pcscf(core):
    client = to_scscf(core)  # auth-done, but from 127.0.0.1, not the trusted P-CSCF address
    try:
        resp = client.request(core_register(client))
    finally:
        client.close()
    assert resp.status == 401
    assert parse_credentials(resp.headers.get("WWW-Authenticate")).scheme == "Digest"


@pytest.mark.parametrize("impu,impi", [("sip:alice@ims.example.net", "mallory@ims.example.net"),
                                       ("sip:bob@ims.example.net", "alice@ims.example.net")])
def test_forbidden_identities(core, impu, impi):
    client = to_pcscf(core)
    try:
        resp = client.request(core_register(client, impu=impu, impi=impi))
    finally:
        client.close()
    assert resp.status == 403


def test_cseq_must_grow_within_a_call_id(core):
    client = to_pcscf(core)
    try:
        call_id, contact = secrets.token_hex(8), f"<sip:{secrets.token_hex(4)}@198.51.100.7>"
        assert client.request(core_register(client, call_id=call_id, cseq=5, contact=contact)).status == 200
        resp = client.request(core_register(client, call_id=call_id, cseq=4, contact=contact))
        assert resp.status == 500  # RFC 3261 10.3 step 7: the update fails
        assert client.request(core_register(client, call_id=call_id, cseq=6, contact=contact)).status == 200
    finally:
        client.close()


def test_retransmission_gets_the_same_answer(core):
    client = to_pcscf(core)
    try:
        sent = core_register(client)
        first = client.request(sent)
        again = client.request(sent)
    finally:
        client.close()
    assert first.status == again.status == 200
    assert first.headers.get("To") == again.headers.get("To")


def test_wildcard_deregistration(core):
    client = to_pcscf(core)
    try:
        call_id = secrets.token_hex(8)
        sent = core_register(client, impu="sip:bob@ims.example.net", impi="bob@ims.example.net", call_id=call_id)
        assert uri_of(sent) in contacts(client.request(sent))
        resp = client.request(core_register(client, impu="sip:bob@ims.example.net", impi="bob@ims.example.net",
                                            call_id=call_id, cseq=2, contact="*", expires=None,
                                            extra="Expires: 0\r\n"))
        assert resp.status == 200 and not resp.headers.get_all("Contact")
        resp = client.request(core_register(client, impu="sip:bob@ims.example.net", impi="bob@ims.example.net",
                                            contact="*", expires=None, extra="Expires: 60\r\n"))
        assert resp.status == 400
    finally:
        client.close()


def test_max_forwards_zero(core):
    client = to_pcscf(core)
    try:
        resp = client.request(core_register(client, max_forwards=0))
    finally:
        client.close()
    assert resp.status == 483


def test_malformed_gets_400_naming_the_problem(core):
    for node in ("pcscf", "scscf"):
        client = SipClient(core.cfg.endpoints[node].host, core.cfg.endpoints[node].port)
        try:
            bad = core_register(client).replace("Max-Forwards: 69", "Max-Forwards: lots")
            resp = client.request(bad)
            assert resp.status == 400 and "Max-Forwards" in resp.reason, (node, resp.reason)
            no_call_id = "\r\n".join(line for line in core_register(client).split("\r\n")
                                     if not line.startswith("CSeq"))
            # no CSeq: still answered 400 naming it (RFC 4475 3.3.1), with what can be copied
            resp = client.request(no_call_id)
            assert resp.status == 400 and "CSeq" in resp.reason, (node, resp.reason)
            assert client.request(f"OPTIONS sip:{node}@ims.example.net SIP/2.0\r\n"
                                  + core_register(client).split("\r\n", 1)[1]
                                  .replace("CSeq: 1 REGISTER", "CSeq: 1 OPTIONS")).status in (200, 405)
        finally:
            client.close()


def test_tcp_without_content_length(core):
    client = to_pcscf(core, "tcp")
    try:
        bad = core_register(client).replace("Content-Length: 0\r\n", "")
        resp = client.request(bad)
        assert resp.status == 400 and "Content-Length" in resp.reason
        assert client.receive(2.0) is None  # framing is lost: the P-CSCF closes the connection
    finally:
        client.close()


def test_registrations_survive_an_scscf_restart(refnet_factory):
    net = refnet_factory(nodes=CORE, core_transport="tcp")
    client = to_pcscf(net)
    try:
        call_id = secrets.token_hex(8)
        sent = core_register(client, call_id=call_id)
        assert client.request(sent).status == 200
        net.restart("scscf")
        query = core_register(client, call_id=call_id, cseq=2, contact=None)  # no Contact: a query
        resp = client.request(query)
        assert resp.status == 200
        assert 590 <= contacts(resp)[uri_of(sent)] <= 600
        gone = core_register(client, call_id=call_id, cseq=3, contact=f"<{uri_of(sent)}>", expires=0)
        assert uri_of(sent) not in contacts(client.request(gone))
        net.restart("scscf")
        resp = client.request(core_register(client, call_id=call_id, cseq=4, contact=None))
        assert uri_of(sent) not in contacts(resp)
    finally:
        client.close()


# -- S-CSCF faults -------------------------------------------------------------------------------

def _register_with_fault(refnet_factory, fault: str) -> Response:
    net = refnet_factory(nodes=CORE, faults=[fault])
    client = to_pcscf(net)
    try:
        return client.request(core_register(client))
    finally:
        client.close()


def test_fault_scscf_no_service_route(refnet_factory):
    resp = _register_with_fault(refnet_factory, "scscf-no-service-route")
    assert resp.status == 200
    assert "Service-Route" not in resp.headers
    assert resp.headers.get("P-Associated-URI")


def test_fault_scscf_no_associated_uri(refnet_factory):
    resp = _register_with_fault(refnet_factory, "scscf-no-associated-uri")
    assert resp.status == 200
    assert "P-Associated-URI" not in resp.headers
    assert resp.headers.get("Service-Route")


def test_fault_scscf_register_untrusted(refnet_factory):
    net = refnet_factory(nodes=CORE, faults=["scscf-register-untrusted"])
    for client in (to_scscf(net), to_pcscf(net)):  # neither from the P-CSCF nor auth-done: accepted
        try:
            resp = client.request(core_register(client, auth_done=False))
        finally:
            client.close()
        assert resp.status == 200
        assert resp.headers.get_all("P-Associated-URI")[0] == "<sip:alice@ims.example.net>"


def test_wsf_fault_no_auth_done_is_challenged_by_the_scscf(refnet_factory):
    """The chain catches wsf-no-auth-done: the S-CSCF challenges, the UE sees a Digest 401."""
    net = refnet_factory(nodes=CHAIN, faults=["wsf-no-auth-done"])
    ws = ws_connect(net)
    resp = exchange(ws, register(get_token(net)))
    ws.close()
    assert resp.status == 401
    assert parse_credentials(resp.headers.get("WWW-Authenticate")).scheme == "Digest"

