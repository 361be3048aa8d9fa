"""The emulated WSF and 3rdWWS (issue 12 item 1): their wire transformations without sockets, then
one live registration in direct mode: UE -> emulated WSF -> emulated core,
the token verified by introspection at the emulated AS (free ports on 127.0.0.1)."""

from __future__ import annotations

import asyncio
import ssl
from pathlib import Path

import pytest
import yaml
from websockets.asyncio.client import connect

from conformance.codec import sip
from conformance.model.profile import load_profile
from conformance.peers import pki
from conformance.peers.base import PeerSet
from conformance.peers.thirdparty import pkce_pair, with_bearer
from conformance.peers.wsf import bearer_token, forwarded_register
from tests.unit.free_ports import free_tcp_and_udp_port

REPO = Path(__file__).resolve().parents[2]
UE_REGISTER = (
    "REGISTER sip:ims.example.net SIP/2.0\r\nVia: SIP/2.0/WSS df7jal23ls0d.invalid;branch=z9hG4bKue1\r\n"
    "Max-Forwards: 70\r\nTo: <sip:alice@web.operator.example>\r\nFrom: <sip:alice@web.operator.example>;tag=f1\r\n"
    "Call-ID: c1\r\nCSeq: 1 REGISTER\r\nContact: <sip:u1@df7jal23ls0d.invalid;transport=ws>;expires=600\r\n"
    "Supported: path, outbound\r\n{auth}Content-Length: 0\r\n\r\n")


def _register(auth: str = "") -> sip.Request:
    return sip.parse(UE_REGISTER.format(auth=auth).encode())


@pytest.mark.parametrize("value", ["Bearer abc.DEF-1_~+/=", 'Bearer access_token="abc.DEF-1_~+/="'])
def test_the_wsf_reads_the_token_in_both_bearer_syntaxes(value):
    assert bearer_token(_register(f"Authorization: {value}\r\n")) == "abc.DEF-1_~+/="


def test_the_wsf_finds_no_token_in_digest_or_nothing():
    assert bearer_token(_register()) is None
    assert bearer_token(_register('Authorization: Digest username="x"\r\n')) is None


def test_the_forwarded_register_carries_the_mapping_and_no_bearer():
    out = forwarded_register(_register("Authorization: Bearer tok\r\n"), "alice@ims.example.net",
                             ["sip:alice@ims.example.net", "tel:+15550100"], home_domain="ims.example.net",
                             wsf_name="wsf.operator.example", flow="f10")
    assert out.headers.get("To") == "<sip:alice@ims.example.net>"
    assert out.headers.get("From") == "<sip:alice@ims.example.net>;tag=f1"  # the dialog's tag is kept
    auth = out.headers.get_all("Authorization")
    assert len(auth) == 1 and "Bearer" not in auth[0] and "tok" not in auth[0]
    assert 'username="alice@ims.example.net"' in auth[0] and 'integrity-protected="auth-done"' in auth[0]
    assert out.headers.get("Max-Forwards") == "69"
    assert out.headers.get("Path") == "<sip:f10@wsf.operator.example;lr;ob>"


def test_the_3rdwws_adds_the_session_token_to_a_register_only():
    rfc = sip.parse(with_bearer(UE_REGISTER.format(auth="").encode(), "t0k", "rfc8898"))
    assert rfc.headers.get_all("Authorization") == ["Bearer t0k"]
    ts = sip.parse(with_bearer(UE_REGISTER.format(auth="Authorization: Bearer old\r\n").encode(), "t0k", "ts24371"))
    assert ts.headers.get_all("Authorization") == ['Bearer access_token="t0k"']
    options = b"OPTIONS sip:x SIP/2.0\r\nVia: SIP/2.0/WSS h;branch=z9hG4bK2\r\nContent-Length: 0\r\n\r\n"
    assert with_bearer(options, "t0k", "rfc8898") == options
    assert with_bearer(b"not sip", "t0k", "rfc8898") is None


def test_pkce_pair_is_s256():
    import base64
    import hashlib
    verifier, challenge = pkce_pair()
    assert 43 <= len(verifier) <= 128
    assert challenge == base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()


@pytest.fixture()
def peers(tmp_path):
    """AS, WSF, P-CSCF and S-CSCF played on free ports of 127.0.0.1 (no fixed address is bound)."""
    doc = yaml.safe_load((REPO / "profiles" / "wsf-only.yaml").read_text())
    doc.pop("peers"), doc.pop("reference_network")
    nodes = doc["pixit"]["nodes"]
    for spec in nodes.values():
        spec.update(address="127.0.0.1", port=free_tcp_and_udp_port(), supplied=False)
    as_url = f"https://127.0.0.1:{nodes['as']['port']}"
    nodes["as"].update(base_url=as_url, issuer=as_url, jwks_uri=f"{as_url}/jwks")
    nodes["wsf"]["url"] = f"wss://127.0.0.1:{nodes['wsf']['port']}/sip"
    nodes["3rdwws"]["supplied"] = True  # not needed here
    doc["pixit"]["tls"] = {}
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump(doc))
    profile = load_profile(path)
    ps = PeerSet(profile, tmp_path / "work", ["as", "pcscf", "scscf", "wsf"]).start()
    yield ps
    ps.close()


def _exchange(peers, request: str) -> sip.Response:
    ctx = ssl.create_default_context(cafile=str(pki.ca_file(peers.profile, peers.workdir)))
    url = peers.profile.pixit["nodes"]["wsf"]["url"]

    async def go():
        async with connect(url, ssl=ctx, subprotocols=["sip"], open_timeout=5) as ws:
            await ws.send(request)
            return sip.parse((await asyncio.wait_for(ws.recv(), 10)).encode())
    return asyncio.run(go())


def test_a_valid_token_registers_through_the_emulated_wsf_and_core(peers):
    emulated_as = peers._servers[0]
    token, _ = emulated_as._issue("alice@web.operator.example", "ims-webrtc")
    peers.board.begin([])
    resp = _exchange(peers, UE_REGISTER.format(auth=f"Authorization: Bearer {token}\r\n"))
    records, errors = peers.board.end()
    assert errors == []
    assert resp.status == 200, resp
    assert resp.headers.get_all("Via") == ["SIP/2.0/WSS df7jal23ls0d.invalid;branch=z9hG4bKue1"]
    assert resp.headers.get("P-Associated-URI") == "<sip:alice@ims.example.net>"
    seen = {(r.peer, r.on) for r in records}
    assert ("as", "introspect") in seen and ("wsf", "REGISTER") in seen
    at_core = next(r.event.message for r in records if r.peer == "pcscf")
    assert token not in bytes(at_core).decode() and at_core.headers.get("To") == "<sip:alice@ims.example.net>"


def test_an_unknown_token_gets_401_bearer_and_nothing_reaches_the_core(peers):
    peers.board.begin([])
    resp = _exchange(peers, UE_REGISTER.format(auth="Authorization: Bearer not-a-token\r\n"))
    records, _ = peers.board.end()
    assert resp.status == 401
    assert resp.headers.get("WWW-Authenticate").startswith('Bearer realm="ims.example.net"')
    assert 'error="invalid_token"' in resp.headers.get("WWW-Authenticate")
    assert not [r for r in records if r.peer in ("pcscf", "scscf")]
