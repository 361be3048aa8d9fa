"""Bounds against a hostile or broken SUT and hostile input, tested without sleeping: the step
deadline on an injected clock, truncated SIP messages, bounded evidence, input limits."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest
import yaml

from conformance.codec import sip
from conformance.codec.websocket import build_frame
from conformance.drivers import websocket as wsdrv
from conformance.drivers.sip_transport import SipTcp, SipUdp
from conformance.drivers.tls import TranscriptSocket
from conformance.events import Garbage, HttpExchange, Nothing, SipReceived
from conformance.model.testcase import check_testcase
from conformance.model.yaml_marks import MAX_DOCUMENT_BYTES, loads
from conformance.run.clock import FakeClock
from conformance.run.deadline import Deadline, DeadlineExceeded
from conformance.run.evidence import BoundedReporter
from conformance.run.reporter import NullReporter
from conformance.verdicts import Finding, Verdict

RESPONSE_483 = (b"SIP/2.0 483 Too Many Hops\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK1\r\n"
                b"To: <sip:a@x>;tag=2\r\nFrom: <sip:a@x>;tag=1\r\nCall-ID: c\r\nCSeq: 1 REGISTER\r\n"
                b"Content-Length: 0\r\n\r\n")


# -- the step deadline on an injected clock ------------------------------------------------------------
def _pair() -> tuple[TranscriptSocket, socket.socket]:
    a, b = socket.socketpair()
    return TranscriptSocket(fileno=a.detach()), b


def test_deadline_counts_on_the_injected_clock():
    clock = FakeClock()
    d = Deadline(2.0, clock, connect_s=0.5)
    assert d.remaining() == 2.0 and d.connect_timeout() == 0.5
    clock.advance(1.8)
    assert d.remaining() == pytest.approx(0.2) and d.connect_timeout() == pytest.approx(0.2)
    clock.advance(0.3)
    assert d.expired()
    with pytest.raises(DeadlineExceeded):
        d.socket_timeout()


def test_a_dripping_peer_cannot_outlive_the_step():
    """Data keeps arriving, but once the step's time is up the next read fails: the bound is on
    the total, not per read (a per-read timeout would wait forever on a drip)."""
    ours, peer = _pair()
    clock = FakeClock(step=0.3)  # every reading of the clock costs 0.3 s: each byte is late
    peer.sendall(b"x" * 100)
    got = b""
    with Deadline(2.0, clock).active(), pytest.raises(TimeoutError):
        while True:
            got += ours.recv(1)
    assert 0 < len(got) < 10  # a few bytes were read before the deadline, not all 100
    ours.close()
    peer.close()


def test_ping_flood_and_endless_fragments_end_at_the_deadline():
    for frames, expected in ((build_frame(b"p", 9, mask=False) * 2000, Nothing),
                             (build_frame(b"SIP", 1, fin=False, mask=False)
                              + build_frame(b"x" * 10, 0, fin=False, mask=False) * 2000, Garbage)):
        ours, peer = _pair()
        peer.setblocking(False)
        try:
            peer.send(frames)
        except BlockingIOError:
            pass
        conn = _ws_connection(ours)
        clock = FakeClock(step=0.01)
        with Deadline(1.0, clock).active():
            event = conn.recv(1.0)
        assert isinstance(event, expected), event
        assert clock.t - 1000.0 < 60  # ended by the fake clock, after at most a few thousand readings
        ours.close()
        peer.close()


def _ws_connection(sock) -> wsdrv.WsConnection:
    import websocket as wsc

    ws = wsc.WebSocket(skip_utf8_validation=True, enable_multithread=True)
    ws.sock, ws.connected = sock, True
    return wsdrv.WsConnection(ws, None, transport="ws", peer="test")


def test_a_giant_websocket_message_is_cut_at_the_limit():
    ours, peer = _pair()
    peer.setblocking(False)
    header = bytes([0x81, 127]) + (10 * 1024 * 1024).to_bytes(8, "big")
    peer.send(header)
    conn = _ws_connection(ours)

    import threading

    def feed():
        chunk = b"x" * 65536
        try:
            peer.setblocking(True)
            for _ in range(40):
                peer.sendall(chunk)
        except OSError:
            pass

    threading.Thread(target=feed, daemon=True).start()
    event = conn.recv(5.0)
    assert isinstance(event, Garbage) and "1048576" in event.reason
    assert len(event.raw) <= 64 * 1024  # evidence is an excerpt
    peer.close()


def test_sip_tcp_partial_message_at_the_deadline_is_garbage_with_its_bytes():
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen()
    tcp = SipTcp(srv.getsockname())
    peer, _ = srv.accept()
    peer.sendall(RESPONSE_483[:40])
    clock = FakeClock(step=0.2)  # the message never completes; the step's time runs out
    with Deadline(1.0, clock).active():
        event = tcp.recv(1.0)
    assert isinstance(event, Garbage) and event.raw == RESPONSE_483[:40] and "deadline" in event.reason
    tcp.close()
    peer.close()
    srv.close()


def test_udp_silence_of_a_node_never_heard_is_not_proof():
    udp = SipUdp(("127.0.0.1", 9))
    clock = FakeClock()
    d = Deadline(0.5, clock)
    clock.advance(1.0)
    with d.active():
        event = udp.recv(0.5)
    assert isinstance(event, Nothing) and event.peer_alive is False
    udp.close()


# -- truncated SIP messages ------------------------------------------------------------------------------
@pytest.mark.parametrize("cut,reason", [
    (RESPONSE_483[:60], "no empty line"),  # cut in the middle of a header (a datagram cut short)
    (RESPONSE_483[:-2], "no empty line"),  # the last CRLF missing
    (RESPONSE_483.replace(b"Content-Length: 0", b"Content-Length: 20") + b"v=0\r\n", "only 5 octets"),
])
def test_truncated_messages_are_recognised(cut, reason):
    assert reason in sip.truncation(cut)
    assert sip.truncation(RESPONSE_483) is None
    event = wsdrv.decode_sip(cut, "udp", "x")
    assert isinstance(event, Garbage) and event.raw == cut and reason in event.reason


def test_missing_mandatory_headers_are_reported_by_strict_validation():
    cut = RESPONSE_483.replace(b"CSeq: 1 REGISTER\r\n", b"").replace(b"Call-ID: c\r\n", b"")
    assert sip.missing_mandatory(sip.parse(cut)) == ["CSeq", "Call-ID"]
    _, violations = sip.validate(cut)
    assert {v.message for v in sip.errors(violations)} >= {"missing mandatory header CSeq",
                                                          "missing mandatory header Call-ID"}
    assert isinstance(wsdrv.decode_sip(RESPONSE_483, "udp", "x"), SipReceived)


# -- bounded evidence ------------------------------------------------------------------------------------
def test_findings_quote_an_excerpt_and_attachments_are_bounded():
    f = Finding(Verdict.FAIL, "body", "contains x", "y" * 5_000_000)
    assert len(f.actual) < 1100 and "5000000 chars" in f.actual
    inner = NullReporter()
    rep = BoundedReporter(inner, per_attachment=1000, per_case=2500)
    rep.attach_bytes("a", b"z" * 10_000)
    name, data = inner.attachments[0]
    assert len(data) < 1100 and b"10000 bytes in all" in data
    rep.attach_text("b", "t" * 1000)
    rep.attach_text("c", "t" * 1000)  # over the case budget: left out, and it says so
    assert inner.attachments[-1][0] == "c (left out)"
    rep.new_case()
    rep.attach_text("d", "ok")
    assert inner.attachments[-1] == ("d", "ok")


def test_http_exchange_keeps_its_true_length():
    ex = HttpExchange("GET", "https://x/", status=200, body=b"x" * 10, body_length=10_485_760)
    assert ex.truncated and ex.body_length == 10_485_760
    assert not HttpExchange("GET", "https://x/", status=200, body=b"x", body_length=1).truncated


# -- input limits ----------------------------------------------------------------------------------------
BOMB = "id: TP_X\n" + "\n".join(
    f"{chr(97 + i)}: &{chr(97 + i)} [" + ",".join([f"*{chr(96 + i)}"] * 9 if i else ['"lol"'] * 9) + "]"
    for i in range(9))


def test_alias_bomb_is_rejected_fast_with_its_line():
    start = time.monotonic()
    data, problems = loads(BOMB, "bomb.yaml")
    assert time.monotonic() - start < 1.0  # a correctness bound: expanding it would take hours
    assert data is None and "alias bomb" in problems[0].message and problems[0].line > 1
    assert str(problems[0]).startswith("bomb.yaml:")


def test_document_size_is_bounded():
    data, problems = loads("a: " + "x" * (MAX_DOCUMENT_BYTES + 1), "big.yaml")
    assert data is None and "larger than" in problems[0].message


def test_invalid_regex_is_found_at_validation(tmp_path: Path):
    case = {"id": "TP_AS_META_901", "title": "t", "sut": "as", "kind": "positive", "severity": "minor",
            "refs": ["RFC 8414 3"], "steps": [{"name": "get", "http": {"url": "https://x/"},
                                               "expect": [{"header": "Location", "regex": "([a-z"}]}]}
    path = tmp_path / "TP_AS_META_901.yaml"
    path.write_text(yaml.safe_dump(case, sort_keys=False))
    tc, problems = check_testcase(path, fragments_dir=tmp_path)
    line = next(i for i, text in enumerate(path.read_text().splitlines(), 1) if "regex:" in text)
    assert tc is None and any("does not compile" in p.message and p.line == line for p in problems), problems
