"""Capture of the reference network on lo: the full relay-mode registration shows steps 13-21 in
order on every leg, decrypted with the nodes' own key logs; with the fault wsf-skip-verification
steps 15-16 are missing and the capture assertions say so."""

from __future__ import annotations

import secrets

import pytest
import websocket

from conformance.capture import CaptureSession, evaluate_capture
from conformance.match.engine import MatchContext
from conformance.report.ladder import render_ladder
from conformance.verdicts import Verdict

pytestmark = pytest.mark.integration

ALL_NODES = ("as", "3rdwws", "wsf", "pcscf", "scscf")
BLOCK = {
    "expect": [
        {"flow": 13, "from": "3rdwws", "to": "wsf", "ws_handshake": {}},
        {"flow": 14, "from": "3rdwws", "to": "wsf", "sip": {"method": "REGISTER"},
         "expect": [{"header": "Authorization", "starts_with": "Bearer "}]},
        {"flow": 15, "from": "wsf", "to": "as", "http": {"method": "POST", "path": "/introspect"}},
        {"flow": 16, "from": "as", "to": "wsf", "http": {"status": 200},
         "expect": [{"json": "$.active", "equals": True}]},
        {"flow": 17, "from": "wsf", "to": "pcscf", "sip": {"method": "REGISTER"},
         "expect": [{"header": "Authorization", "param": "integrity-protected", "equals": "auth-done"},
                    {"header": "Authorization", "not_contains": "Bearer"}]},
        {"flow": 18, "from": "pcscf", "to": "scscf", "sip": {"method": "REGISTER"}},
        {"flow": 19, "from": "scscf", "to": "pcscf", "sip": {"status": 200}},
        {"flow": 20, "from": "pcscf", "to": "wsf", "sip": {"status": 200}},
        {"flow": 21, "from": "wsf", "to": "3rdwws", "sip": {"status": 200}},
        {"flow": 22, "from": "3rdwws", "to": "ue", "sip": {"status": 200}},
    ],
}


def pixit_of(net) -> dict:
    nodes = {name: {"address": ep.host, "port": ep.port} for name, ep in net.cfg.endpoints.items()}
    return {"ue": {"address": "127.0.0.1"}, "nodes": nodes}


def keylogs_of(net) -> list:
    return [net.cfg.keylog(n) for n in ("3rdwws", "as", "wsf")]


def relay_registration(h, net) -> str:
    """Steps 1-12 and 22 from the UE: log in, authorize, REGISTER over the 3rdWWS's WebSocket."""
    user = h.user(net)
    s = h.session(net)
    assert s.post(net.url("3rdwws", "/login"), allow_redirects=False,
                  data={"username": user["tp_username"], "password": user["tp_password"]}).status_code == 303
    r2 = s.get(net.url("3rdwws", "/webrtc"), allow_redirects=False)
    r4 = s.get(r2.headers["Location"], allow_redirects=False)
    r6 = s.post(net.url("as", "/authorize"), allow_redirects=False,
                data={"transaction": h.transaction(r4.text), "web_id": user["web_id"],
                      "password": user["password"], "consent": "approve"})
    assert s.get(r6.headers["Location"], allow_redirects=False).status_code == 303
    ws = websocket.create_connection(net.url("3rdwws", "/sip", scheme="wss"), timeout=5,
                                     sslopt={"ca_certs": str(net.cfg.ca_file)},
                                     cookie=f"sid={s.cookies.get('sid')}", subprotocols=["sip"])
    try:
        r = secrets.token_hex(6)
        ws.send(f"REGISTER sip:ims.example.net SIP/2.0\r\nVia: SIP/2.0/WSS df7jal23ls0d.invalid;branch=z9hG4bK{r}\r\n"
                f"Max-Forwards: 70\r\nTo: <sip:{user['web_id']}>\r\nFrom: <sip:{user['web_id']}>;tag={r}\r\n"
                f"Call-ID: {r}\r\nCSeq: 1 REGISTER\r\n"
                f"Contact: <sip:{r}@df7jal23ls0d.invalid;transport=ws>;expires=600\r\n"
                f"Supported: path, outbound\r\nContent-Length: 0\r\n\r\n")
        return ws.recv()
    finally:
        ws.close()


def captured_registration(refnet_factory, refnet_helpers, tmp_path, faults=()):
    net = refnet_factory(faults=list(faults), nodes=ALL_NODES)
    cap = CaptureSession(pixit_of(net), keylogs_of(net), ["lo"], 300, workdir=tmp_path)
    cap.start()
    if cap.error:
        pytest.skip(cap.error)
    answer = relay_registration(refnet_helpers, net)
    result = cap.stop()
    return net, answer, result


def assert_attributed_to_nodes(result) -> None:
    """Attribution is by address (BINDING.md): a node's client connections leave from its own
    address, so the relay's WebSocket to the WSF is the 3rdWWS's, not the harness's."""
    for item in result.timeline.items:
        assert not (item.src_node == "ue" and item.dst_node == "wsf"), item


def test_full_registration_steps_13_to_22_in_order(refnet_factory, refnet_helpers, tmp_path):
    net, answer, result = captured_registration(refnet_factory, refnet_helpers, tmp_path)
    assert_attributed_to_nodes(result)
    assert answer.startswith("SIP/2.0 200")
    assert result.error is None
    incomplete = {k: (c.undecryptable, c.gaps) for k, c in result.timeline.coverage.items() if not c.complete}
    assert not incomplete
    findings = evaluate_capture(BLOCK, result, MatchContext())
    bad = [f.describe() for f in findings if f.verdict != Verdict.PASS]
    assert not bad, "\n".join(bad) + "\n" + result.timeline.describe()
    svg = render_ladder(result.timeline, findings, BLOCK, pixit_of(net))
    assert "[15] POST /introspect" in svg and "[22] 200 OK" in svg


def test_skipped_verification_misses_steps_15_and_16(refnet_factory, refnet_helpers, tmp_path):
    _, answer, result = captured_registration(refnet_factory, refnet_helpers, tmp_path,
                                              faults=["wsf-skip-verification"])
    assert answer.startswith("SIP/2.0 200")  # the fault does not show to the UE ...
    assert_attributed_to_nodes(result)
    findings = evaluate_capture(BLOCK, result, MatchContext())
    failed = [f for f in findings if f.verdict == Verdict.FAIL]
    assert [f.message for f in failed] == ["step 15 missing", "step 16 missing"]  # ... the capture does
