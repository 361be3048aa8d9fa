"""Robustness of the reference network's SIP side: hypothesis throws random and mutated SIP
messages (UDP, TCP) and WebSocket frames (odd opcodes, unmasked, reserved bits, oversize lengths,
fragmented control frames, bad UTF-8), and broken handshakes (TLS or not) at the WSF, the P-CSCF
and the S-CSCF.

After every example the node that was hit must still answer a well-formed request in bounded time;
after the whole run every node is alive and a conformant registration goes through the chain.
Every socket wait is bounded, so a hang fails the test instead of blocking it.
"""

from __future__ import annotations

import secrets
import socket
import ssl

import pytest
import websocket
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_refnet_cscf import CHAIN, SipClient, check_registered, core_register
from test_refnet_wsf import exchange, get_token, register, ws_connect

from conformance.codec.websocket import build_frame

pytestmark = pytest.mark.integration

# Response bases have no Via naming a CSCF, and hosts are loopback or .invalid: whatever the
# mutations do, nothing is ever relayed off the machine.
RESPONSE = (b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bKfuzz;rport\r\n"
            b"Via: SIP/2.0/UDP df7jal23ls0d.invalid;branch=z9hG4bKfuzz2\r\n"
            b"To: <sip:alice@ims.example.net>;tag=1\r\nFrom: <sip:alice@ims.example.net>;tag=2\r\n"
            b"Call-ID: fuzz\r\nCSeq: 1 REGISTER\r\nContent-Length: 0\r\n\r\n")


@pytest.fixture(scope="module")
def chain(refnet_factory):
    return refnet_factory(nodes=CHAIN)


@st.composite
def mutated(draw, base: bytes) -> bytes:
    """A valid message broken by 1-4 random edits: byte flips, cuts, insertions, line games."""
    data = bytearray(base)
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["flip", "delete", "insert", "dup-line", "drop-line", "garble-value",
                                   "truncate", "huge-value", "lf-only"]))
        pos = draw(st.integers(0, max(0, len(data) - 1)))
        if op == "flip" and data:
            data[pos] ^= 1 << draw(st.integers(0, 7))
        elif op == "delete":
            del data[pos:pos + draw(st.integers(1, 40))]
        elif op == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=40))
        elif op == "truncate":
            del data[pos:]
        elif op == "lf-only":
            data = bytearray(bytes(data).replace(b"\r\n", b"\n"))
        else:
            lines = bytes(data).split(b"\r\n")
            i = draw(st.integers(0, max(0, len(lines) - 1)))
            if op == "dup-line":
                lines.insert(i, lines[i])
            elif op == "drop-line":
                del lines[i]
            elif op == "garble-value" and b":" in lines[i]:
                name = lines[i].split(b":", 1)[0]
                lines[i] = name + b": " + draw(st.binary(max_size=60)).replace(b"\r", b"").replace(b"\n", b"")
            elif op == "huge-value":
                lines[i] = lines[i] + b"x" * draw(st.sampled_from([1000, 20000, 70000]))
            data = bytearray(b"\r\n".join(lines))
    return bytes(data)


def sip_payloads(base: bytes):
    return st.one_of(mutated(base), mutated(RESPONSE), st.binary(max_size=2000),
                     st.just(base.replace(b"Content-Length: 0\r\n", b"")))


def ws_frames():
    """Raw frames, many of them protocol errors (RFC 6455 5.2, 5.4, 5.5, 8.1)."""
    opcode = st.integers(0, 15)
    payload = st.one_of(st.binary(max_size=300), st.just(b"\xff\xfe invalid utf-8"),
                        st.just(register(None).encode()))
    frame = st.builds(lambda p, o, fin, rsv, mask: build_frame(p, o, fin=fin, rsv=rsv, mask=mask),
                      payload, opcode, st.booleans(), st.sampled_from([0, 0, 0, 1, 4]),
                      st.sampled_from([True, True, False]))
    oversize = st.just(bytes([0x81, 0xFF]) + (2**40).to_bytes(8, "big") + b"\0" * 4)  # claims 1 TiB
    return st.lists(st.one_of(frame, oversize), min_size=1, max_size=4)


def wsf_alive(net) -> None:
    ws = ws_connect(net)
    try:
        assert exchange(ws, register(None)).status == 401
    finally:
        ws.close()


def cscf_alive(net, node: str) -> None:
    ep = net.cfg.endpoints[node]
    client = SipClient(ep.host, ep.port)
    try:
        options = core_register(client).replace("REGISTER sip:ims.example.net", "OPTIONS sip:ims.example.net") \
            .replace(" REGISTER\r\n", " OPTIONS\r\n")
        assert client.request(options).status == 200
    finally:
        client.close()


def send_sip(net, node: str, transport: str, payload: bytes) -> None:
    ep = net.cfg.endpoints[node]
    if transport == "udp":
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.sendto(payload[:65000], (ep.host, ep.port))
        return
    with socket.create_connection((ep.host, ep.port), timeout=2) as s:
        s.sendall(payload)
        s.settimeout(0.2)
        try:
            s.recv(65536)  # whatever comes back (a 400, a 513, nothing)
        except (TimeoutError, ConnectionError):
            pass


def send_ws(net, frames: list[bytes], as_text: bytes | None) -> None:
    ws = ws_connect(net)
    try:
        if as_text is not None:
            ws.send(as_text.decode("utf-8", "replace"))
        for frame in frames:
            ws.sock.sendall(frame)
        ws.settimeout(0.2)
        ws.recv_data_frame(True)  # whatever comes back (a SIP response, a Close, nothing)
    except (websocket.WebSocketException, OSError):
        pass  # the WSF may rightly close the connection (1002, 1007, 1009) while we still send
    finally:
        ws.shutdown()


def handshake_payloads(net):
    """What reaches the WSF before a WebSocket exists: mutated upgrade requests, random bytes."""
    ep = net.cfg.endpoints["wsf"]
    upgrade = (f"GET /sip HTTP/1.1\r\nHost: {ep.host}:{ep.port}\r\nUpgrade: websocket\r\n"
               f"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
               f"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: sip\r\n\r\n").encode()
    return st.tuples(st.booleans(), st.one_of(mutated(upgrade), st.binary(max_size=3000)))


def send_handshake(net, tls: bool, payload: bytes) -> None:
    ep = net.cfg.endpoints["wsf"]
    with socket.create_connection((ep.host, ep.port), timeout=2) as raw:
        sock = raw
        try:
            if tls:
                ctx = ssl.create_default_context(cafile=str(net.cfg.ca_file))
                sock = ctx.wrap_socket(raw, server_hostname=ep.tls_name)
            sock.sendall(payload)
            sock.settimeout(0.2)
            sock.recv(65536)
        except (TimeoutError, OSError):
            pass


BASE = register(None).encode()


@settings(max_examples=100, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=st.data(), target=st.sampled_from(["pcscf/udp", "pcscf/tcp", "scscf/udp", "scscf/tcp", "wsf/sip",
                                               "wsf/frames", "wsf/handshake"]))
def test_fuzz_does_not_break_nodes(chain, data, target):
    node, how = target.split("/")
    if node == "wsf":
        if how == "sip":
            send_ws(chain, [], data.draw(mutated(BASE)))
        elif how == "frames":
            send_ws(chain, data.draw(ws_frames()), None)
        else:
            send_handshake(chain, *data.draw(handshake_payloads(chain)))
        wsf_alive(chain)
    else:
        send_sip(chain, node, how, data.draw(sip_payloads(BASE)))
        cscf_alive(chain, node)


def test_registration_still_succeeds_after_fuzzing(chain):
    assert sorted(chain.running()) == sorted(CHAIN)
    sent = register(get_token(chain), call_id=secrets.token_hex(8))
    ws = ws_connect(chain)
    resp = exchange(ws, sent)
    ws.close()
    check_registered(resp, sent, chain)
