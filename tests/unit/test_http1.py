"""Passive HTTP/1.1 parser: framing by Content-Length, chunked, close; upgrade hand-over."""

from __future__ import annotations

from conformance.codec.http1 import Http1Parser, HttpError, HttpMessage

POST = (b"POST /introspect HTTP/1.1\r\nHost: as\r\nAuthorization: Basic d3NmOndzZi1zZWNyZXQ=\r\n"
        b"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 11\r\n\r\ntoken=abcde")


def feed_bytewise(p: Http1Parser, data: bytes) -> list:
    out = []
    for i in range(len(data)):
        out += p.feed(data[i:i + 1])
    return out


def test_request_with_content_length_bytewise_and_pipelined():
    p = Http1Parser("request")
    out = feed_bytewise(p, POST + b"GET /jwks HTTP/1.1\r\nHost: as\r\n\r\n")
    assert [m.method for m in out] == ["POST", "GET"]
    assert out[0].target == "/introspect" and out[0].body == b"token=abcde"
    assert out[0].header("authorization").startswith("Basic ")
    assert out[1].body == b""


def test_chunked_response_with_trailer():
    p = Http1Parser("response")
    p.expect_response("POST")
    body = b"4\r\n{\"ac\r\nB;ext=1\r\ntive\": true\r\n1\r\n}\r\n0\r\nX-Trailer: 1\r\n\r\n"
    out = feed_bytewise(p, b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + body)
    [m] = out
    assert m.status == 200 and m.chunked and m.body == b'{"active": true}'
    assert m.request_method == "POST" and m.header("X-Trailer") == "1"


def test_no_body_responses_and_close_delimited():
    p = Http1Parser("response")
    for method in ("HEAD", "GET", "GET"):
        p.expect_response(method)
    out = p.feed(b"HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\n"  # HEAD: no body
                 b"HTTP/1.1 304 Not Modified\r\n\r\n"
                 b"HTTP/1.0 200 OK\r\n\r\nuntil close")
    assert [(m.status, m.body) for m in out] == [(200, b""), (304, b"")]
    [m] = p.feed_eof()
    assert m.body == b"until close"


def test_interim_100_continue_does_not_consume_the_request():
    p = Http1Parser("response")
    p.expect_response("POST")
    out = p.feed(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok")
    assert [(m.status, m.request_method) for m in out] == [(100, ""), (201, "POST")]


def test_websocket_upgrade_hands_over_the_rest():
    req, resp = Http1Parser("request"), Http1Parser("response")
    out = req.feed(b"GET /sip HTTP/1.1\r\nHost: wsf\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
                   b"Sec-WebSocket-Protocol: sip\r\n\r\n\x81\x85masked")
    assert out[0].upgrade == "websocket" and req.awaiting_upgrade
    resp.expect_response("GET")
    [m] = resp.feed(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n\x81\x02ok")
    assert m.status == 101 and m.upgrade == "websocket" and resp.upgraded
    assert resp.take_upgraded() == b"\x81\x02ok"
    assert req.switch() == b"\x81\x85masked"
    assert req.feed(b"more") == [] and req.take_upgraded() == b"more"


def test_refused_upgrade_continues_http():
    req = Http1Parser("request")
    req.feed(b"GET /sip HTTP/1.1\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n")
    assert req.feed(b"GET /next HTTP/1.1\r\n\r\n") == []
    [m] = req.upgrade_refused()
    assert m.target == "/next"


def test_malformed_is_reported_with_bytes_not_dropped():
    p = Http1Parser("request")
    [err] = p.feed(b"\x16\x03\x01garbage\r\n\r\n")
    assert isinstance(err, HttpError) and err.raw.startswith(b"\x16\x03") and "not an HTTP/1.1" in err.reason
    assert p.feed(b"GET / HTTP/1.1\r\n\r\n") == []  # desynchronised: stays failed
    p = Http1Parser("request")
    [err] = p.feed(b"POST / HTTP/1.1\r\nContent-Length: 1, 2\r\n\r\n")
    assert "Content-Length" in err.reason
    p = Http1Parser("response")
    p.expect_response("GET")
    [err] = p.feed(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n")
    assert "chunk-size" in err.reason
    p = Http1Parser("request")
    p.feed(b"POST / HTTP/1.1\r\nContent-Length: 10\r\n\r\nabc")
    [err] = p.feed_eof()
    assert "closed inside" in err.reason


def test_obs_fold_and_bad_field_lines_are_noted():
    [m] = Http1Parser("request").feed(b"GET / HTTP/1.1\r\nX-A: one\r\n two\r\nbad line\r\n\r\n")
    assert isinstance(m, HttpMessage) and m.header("x-a") == "one two"
    assert any("folding" in p for p in m.problems) and any("malformed" in p for p in m.problems)
