"""Parallel runs: a test case keeps only the captured messages tied to it."""

from __future__ import annotations

import base64
import json

import pytest

from conformance.capture.correlate import for_case, markers_of, unattributed
from conformance.capture.timeline import HttpRequestSeen, TimelineItem
from conformance.events import HttpExchange, SipReceived
from conformance.verdicts import Finding, Verdict

MINE, OTHER = "tp-wsf-reg-001-1a2b3c4d", "tp-wsf-reg-002-9f8e7d6c"


def item(ev, stream: str, t: float) -> TimelineItem:
    return TimelineItem(t=t, src="a:1", dst="b:2", src_node="wsf", dst_node="as", proto="http", event=ev,
                        stream=stream)


def sip(user: str) -> SipReceived:
    raw = f"REGISTER sip:ims.example.net SIP/2.0\r\nTo: <sip:{user}@ims.example.net>\r\n\r\n".encode()
    return SipReceived(message=None, raw=raw, transport="udp")


def introspection(user: str) -> tuple[HttpRequestSeen, HttpExchange]:
    req = HttpRequestSeen("POST", "/introspect", body=b"token=opaque-" + user[-4:].encode())
    resp = HttpExchange("POST", "/introspect", status=200, body=json.dumps({"active": True,
                                                                           "sub": f"{user}@web"}).encode())
    return req, resp


def test_markers_are_the_identity_saved_values_and_cookies_never_short_or_shared():
    m = markers_of({"web_id": f"{MINE}@web.operator.example"}, {"state": "s" * 20, "n": 3, "x": "short"},
                   ["c" * 24, "tiny"])
    assert m == {MINE, "s" * 20, "c" * 24}
    assert markers_of({"web_id": "alice@web.operator.example"}, {}) == set()


def test_shared_connections_are_split_per_exchange_and_websockets_kept_whole():
    mine_req, mine_resp = introspection(MINE)
    other_req, other_resp = introspection(OTHER)
    items = [item(other_req, "tcp/1", 1), item(other_resp, "tcp/1", 2),  # the WSF's shared keep-alive
             item(mine_req, "tcp/1", 3), item(mine_resp, "tcp/1", 4),
             item(sip(MINE), "udp/x", 5), item(sip(OTHER), "udp/x", 6)]
    kept = for_case(items, {MINE})
    assert [i.t for i in kept] == [3, 4, 5]


def test_values_inside_a_jwt_count():
    claims = base64.urlsafe_b64encode(json.dumps({"sub": f"{MINE}@web"}).encode()).rstrip(b"=").decode()
    token = f"eyJhbGciOiJFUzI1NiJ9.{claims}.c2ln"
    resp = HttpExchange("POST", "/token", status=200, body=json.dumps({"access_token": token}).encode())
    req = HttpRequestSeen("POST", "/token", body=b"grant_type=authorization_code&code=zzz")
    assert len(for_case([item(req, "tcp/2", 1), item(resp, "tcp/2", 2)], {MINE})) == 2
    assert for_case([item(req, "tcp/2", 1), item(resp, "tcp/2", 2)], {OTHER}) == []


def test_missing_but_seen_on_the_leg_is_inconclusive_not_fail():
    missing = Finding(Verdict.FAIL, "capture step 13 3rdwws->wsf ws_handshake", "present", "missing")
    wrong = Finding(Verdict.FAIL, "capture step 17 header To", "x", "y")
    whole = [Finding(Verdict.PASS, missing.subject, "present", "#3")]
    out = unattributed([missing, wrong], whole)
    assert [f.verdict for f in out] == [Verdict.INCONCLUSIVE, Verdict.FAIL]


def test_connections_the_case_opened_are_its_own_whatever_they_carry():
    from dataclasses import replace

    from conformance.events import WsHandshake

    refused = WsHandshake(url="/sip", status=403, headers=[], request_headers=[])  # no cookie, no token
    mine = replace(item(refused, "tcp/7", 1), src="127.0.0.11:8443", dst="127.0.0.1:40001")
    other = replace(item(refused, "tcp/8", 2), src="127.0.0.11:8443", dst="127.0.0.1:40002")
    kept = for_case([mine, other], {MINE}, own={"127.0.0.1:40001"})
    assert kept == [mine]
    assert for_case([mine, other], set(), own=()) == [mine, other]  # nothing to tie by: the window


def test_tls_driver_records_the_local_end_of_each_connection():
    import socket
    import ssl
    import threading

    from conformance.drivers.tls import HarnessSSLContext, opened_count, opened_since

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    threading.Thread(target=lambda: server.accept()[0].close(), daemon=True).start()
    mark = opened_count()
    ctx = HarnessSSLContext(ssl.PROTOCOL_TLS_CLIENT)
    sock = socket.create_connection(server.getsockname(), timeout=5)
    local = sock.getsockname()
    try:
        with pytest.raises((ssl.SSLError, OSError)):  # the peer is no TLS server: only the record counts
            ctx.wrap_socket(sock, server_hostname="x")
    finally:
        sock.close()
        server.close()
    assert opened_since(mark) == [f"{local[0]}:{local[1]}"]
