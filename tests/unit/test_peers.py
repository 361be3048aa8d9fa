"""Emulated peers without sockets: scripts, evidence, the emulated core's default answers."""

from __future__ import annotations

from types import SimpleNamespace

from conformance.codec import sip
from conformance.events import HttpExchange, SipReceived
from conformance.peers.base import Users
from conformance.peers.cscf import EmulatedCscf
from conformance.peers.evidence import show_records
from conformance.peers.script import Board, Record, Script

ALICE = {"web_id": "alice@web.operator.example", "password": "pw", "impi": "alice@ims.example.net",
         "impus": ["sip:alice@ims.example.net", "tel:+15550100"]}


def test_script_shapes_the_default_json():
    default = {"active": True, "impi": "a@x", "impu": ["sip:a@x"]}
    assert Script.from_spec({"peer": "as", "on": "introspect", "answer": {"omit": ["impu"]}}).shape_json(default) \
        == {"active": True, "impi": "a@x"}
    merged = Script.from_spec({"peer": "as", "on": "introspect", "answer": {"merge": {"active": False}}})
    assert merged.shape_json(default)["active"] is False
    whole = Script.from_spec({"peer": "as", "on": "introspect", "answer": {"json": {"active": False}}})
    assert whole.shape_json(default) == {"active": False}


def test_a_script_applies_as_many_times_as_told_and_only_to_its_exchange():
    board = Board()
    board.begin([Script.from_spec({"peer": "pcscf", "on": "REGISTER", "silent": True, "times": 1})])
    assert board.script_for("as", "REGISTER") is None
    assert board.script_for("pcscf", "register").silent
    assert board.script_for("pcscf", "REGISTER") is None  # used up
    records, errors = board.end()
    assert records == [] and errors == []


def test_evidence_masks_credentials_and_tokens():
    http = HttpExchange("POST", "https://as/introspect", request_headers=[("Authorization", "Basic d3NmOnNlY3JldA==")],
                        request_body=b"token=eyJ.secret.sig&token_type_hint=access_token")
    raw = b"REGISTER sip:x SIP/2.0\r\nAuthorization: Bearer eyJ.abc.def\r\nContent-Length: 0\r\n\r\n"
    text = show_records([Record("as", "introspect", http, 0.0, "200"),
                         Record("pcscf", "REGISTER", SipReceived(sip.parse(raw), raw, "udp"), 0.0, "200")])
    assert "d3NmOnNlY3JldA" not in text and "eyJ" not in text
    assert "Authorization: Basic [redacted]" in text and "token=[token]" in text


def _core() -> EmulatedCscf:
    peers = SimpleNamespace(users=Users({"alice": ALICE}),
                            profile=SimpleNamespace(pixit={"home_domain": "ims.example.net"}))
    return EmulatedCscf(peers, "pcscf", {"address": "127.0.0.14", "port": 5060,
                                         "sip_uri": "sip:pcscf.ims.example.net"}, whole_core=True)


def _register(auth: str) -> sip.Request:
    return sip.parse((
        "REGISTER sip:ims.example.net SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.13:5060;branch=z9hG4bK1\r\n"
        "Max-Forwards: 69\r\nTo: <sip:alice@ims.example.net>\r\nFrom: <sip:alice@ims.example.net>;tag=1\r\n"
        "Call-ID: c1\r\nCSeq: 1 REGISTER\r\nContact: <sip:u@h.invalid;transport=ws>;expires=600\r\n"
        f"Path: <sip:flow@wsf.operator.example;lr;ob>\r\n{auth}Content-Length: 0\r\n\r\n").encode())


def test_emulated_core_registers_a_trusted_node_request():
    resp, _ = _core().default_answer(_register(
        'Authorization: Digest username="alice@ims.example.net", realm="ims.example.net", '
        'uri="sip:ims.example.net", nonce="", response="", integrity-protected="auth-done"\r\n'))
    assert resp.status == 200
    assert resp.headers.get_all("P-Associated-URI") == ["<sip:alice@ims.example.net>", "<tel:+15550100>"]
    assert resp.headers.get_all("Path") == ["<sip:term@pcscf.ims.example.net;lr>",
                                            "<sip:flow@wsf.operator.example;lr;ob>"]
    assert "expires=600" in resp.headers.get("Contact")


def test_emulated_core_challenges_without_auth_done_and_refuses_an_unknown_impi():
    assert _core().default_answer(_register(""))[0].status == 401
    unknown, _ = _core().default_answer(_register(
        'Authorization: Digest username="eve@ims.example.net", integrity-protected="auth-done"\r\n'))
    assert unknown.status == 403


def test_a_late_answer_is_evidence_from_the_moment_the_request_arrived():
    """A scripted delay may outlast the test case: the request is recorded before the wait, once."""
    import asyncio

    core = _core()
    core.peers.board = Board()
    core.peers.board.begin([Script.from_spec({"peer": "pcscf", "on": "REGISTER", "delay_ms": 50,
                                              "answer": {"status": 503}})])
    sent: list[bytes] = []

    async def scenario():
        task = asyncio.ensure_future(core.on_request(_register(""), b"raw", "udp", ("127.0.0.13", 5060),
                                                     sent.append, lambda: None))
        await asyncio.sleep(0.01)
        early = [r.answered for r in core.peers.board.records], len(sent)
        await task
        return early

    early, sent_early = asyncio.run(scenario())
    records, errors = core.peers.board.end()
    assert early == ["answered 50 ms late (scripted)"] and sent_early == 0
    assert [r.answered for r in records] == early and errors == []
    assert sent and sent[0].startswith(b"SIP/2.0 503")


def test_a_script_shapes_the_authorization_response_like_a_json_body():
    """`merge`/`omit` on `authorize` change the redirect's parameters (an error without a code,
    another iss: RFC 6749 4.1.2.1, RFC 9207); without a script the default response goes out."""
    import asyncio
    from urllib.parse import parse_qs, urlsplit

    from aiohttp.test_utils import make_mocked_request

    from conformance.peers.oauth_as import EmulatedAs

    emulated = object.__new__(EmulatedAs)  # only the answer logic: no keys, no sockets
    emulated.peers = SimpleNamespace(board=Board())
    back = {"code": "c0de", "state": "s1", "iss": "https://as.example"}

    def location(scripts):
        emulated.peers.board.begin([Script.from_spec(s) for s in scripts])
        resp = asyncio.run(emulated.answer(make_mocked_request("POST", "/authorize"), "authorize", 302,
                                           redirect=("https://app.example/cb", back)))
        records, _ = emulated.peers.board.end()
        assert resp.status == 302 and records[0].on == "authorize"
        url = urlsplit(resp.headers["Location"])
        assert f"{url.scheme}://{url.netloc}{url.path}" == "https://app.example/cb"
        return {k: v[0] for k, v in parse_qs(url.query).items()}

    assert location([]) == back
    assert location([{"peer": "as", "on": "authorize", "answer": {"merge": {"error": "access_denied"},
                                                                  "omit": ["code"]}}]) \
        == {"error": "access_denied", "state": "s1", "iss": "https://as.example"}
    assert location([{"peer": "as", "on": "authorize", "answer": {"merge": {"iss": "https://other.example"}}}])["iss"] \
        == "https://other.example"


def test_a_peer_taken_down_for_a_case_listens_again_afterwards(tmp_path):
    """`down: true`: the peer stops listening while the case runs (connections refused) and starts
    again when it ends, whatever the case did."""
    from conformance.peers.base import PeerSet

    class Server:
        def __init__(self):
            self.calls = []

        async def resume(self):
            self.calls.append("resume")

        async def pause(self):
            self.calls.append("pause")

    board = Board()
    board.begin([Script.from_spec({"peer": "as", "on": "introspect", "down": True}),
                 Script.from_spec({"peer": "pcscf", "on": "REGISTER", "silent": True})])
    assert board.down() == {"as"}
    peers = PeerSet(SimpleNamespace(fixtures={}), tmp_path, [])
    peers._thread.start()
    try:
        server = Server()
        peers._by_node = {"as": server, "pcscf": Server()}
        peers.pause(board.down())
        assert server.calls == ["pause"] and peers._by_node["pcscf"].calls == []
        peers.resume()
        peers.resume()  # idempotent: nothing left to start
        assert server.calls == ["pause", "resume"]
    finally:
        peers.close()


def test_a_late_de_registration_of_another_users_flow_is_not_this_cases():
    """wsf.on_ws_close: deregister: the WSF's de-REGISTER for the previous case's user may reach
    the emulated P-CSCF during the next case; `received: false` must not count it, but counts a
    registration or a de-registration of this case's own identity."""
    from conformance.codec import sip
    from conformance.events import SipReceived
    from conformance.match.engine import MatchContext
    from conformance.peers.evidence import _foreign_deregistration
    from conformance.peers.script import Record

    def register(aor: str, expires: str) -> Record:
        raw = (f"REGISTER sip:ims.example.net SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.13;branch=z9hG4bK1\r\n"
               f"To: <{aor}>\r\nFrom: <{aor}>;tag=1\r\nCall-ID: c1\r\nCSeq: 2 REGISTER\r\nMax-Forwards: 69\r\n"
               f"Contact: <sip:x@y.invalid;transport=ws>\r\nExpires: {expires}\r\nContent-Length: 0\r\n\r\n").encode()
        return Record("pcscf", "REGISTER", SipReceived(sip.parse(raw), raw, "udp"), 0.0, "200")

    mctx = MatchContext(identities={"u@web.operator.example": {"impi": "u@ims.example.net",
                                                                "impus": ["sip:u@ims.example.net"]}})
    assert _foreign_deregistration(register("sip:previous@ims.example.net", "0"), mctx)
    assert not _foreign_deregistration(register("sip:u@ims.example.net", "0"), mctx)
    assert not _foreign_deregistration(register("sip:previous@ims.example.net", "600"), mctx)
