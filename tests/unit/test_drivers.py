"""I/O drivers against small local servers on 127.0.0.x (HTTPS, WSS, SIP over UDP and TCP)."""

from __future__ import annotations

import base64
import hashlib
import http.server
import json
import socket
import ssl
import threading
import time

import pytest
import requests
import trustme
from websockets.sync.server import serve as ws_serve

from conformance.codec import sip
from conformance.drivers import TransportError
from conformance.drivers import websocket as wsdrv
from conformance.drivers.http import HttpDriver, resolve_location
from conformance.drivers.sip_transport import SipTcp, SipUdp, open_transport
from conformance.drivers.tls import client_context
from conformance.events import Garbage, Nothing, SipReceived, WsClosed

HTTPS_HOST, WS_HOST, SIP_HOST, RAW_HOST = "127.0.0.21", "127.0.0.22", "127.0.0.23", "127.0.0.24"
KEYLOG_LABELS = ("CLIENT_RANDOM", "CLIENT_HANDSHAKE_TRAFFIC_SECRET", "CLIENT_TRAFFIC_SECRET_0",
                 "SERVER_HANDSHAKE_TRAFFIC_SECRET", "SERVER_TRAFFIC_SECRET_0", "EXPORTER_SECRET")


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
def server_ctx(ca) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(HTTPS_HOST, WS_HOST, "wsf.test.example").configure_cert(ctx)
    return ctx


@pytest.fixture
def tls(ca, tmp_path):
    """(client context, key log path) as the harness builds them."""
    ca_path = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_path))
    keylog = tmp_path / "keys" / "harness.keylog"
    return client_context(ca_path, keylog), keylog


def _assert_keylog_written(path):
    lines = [line for line in path.read_text().splitlines() if not line.startswith("#")]
    assert lines, "the key log has no secrets"
    assert all(line.split(" ", 1)[0] in KEYLOG_LABELS for line in lines)
    assert any(line.startswith(("CLIENT_TRAFFIC_SECRET_0", "CLIENT_RANDOM")) for line in lines)


# -- HTTPS --------------------------------------------------------------------------------------------

class _Handler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def _send(self, status, body=b"", headers=()):
        self.send_response(status)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        if self.path == "/redirect":
            self._send(302, headers=[("Location", "/target?x=1"), ("Set-Cookie", "a=1; Path=/; Secure; HttpOnly"),
                                     ("Set-Cookie", "b=2; Path=/")])
        elif self.path.startswith("/target"):
            self._send(200, (self.headers.get("Cookie") or "no cookie").encode())
        elif self.path == "/slow":
            time.sleep(1.0)
            self._send(200)
        elif self.path == "/jwks":
            self._send(200, json.dumps({"keys": []}).encode(), [("Content-Type", "application/json")])
        else:
            self._send(404)

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        echo = {"ctype": self.headers.get("Content-Type"), "body": body.decode(),
                "auth": self.headers.get("Authorization"), "x": self.headers.get("X-Test")}
        self._send(200, json.dumps(echo).encode(), [("Content-Type", "application/json")])


@pytest.fixture(scope="module")
def https_url(server_ctx):
    server = http.server.ThreadingHTTPServer((HTTPS_HOST, 0), _Handler)
    server.socket = server_ctx.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"https://{HTTPS_HOST}:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_https_writes_the_key_log_and_never_follows_redirects(tls, https_url, monkeypatch):
    # The environment must not matter: trust_env is off (no proxy, no REQUESTS_CA_BUNDLE).
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/nonexistent/ca.pem")
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:9")
    ctx, keylog = tls
    drv = HttpDriver(ctx, timeout_s=3)
    ex = drv.request("GET", f"{https_url}/redirect")
    assert ex.status == 302
    assert ex.header_values("Location") == ["/target?x=1"]
    assert ex.header_values("set-cookie") == ["a=1; Path=/; Secure; HttpOnly", "b=2; Path=/"]
    assert resolve_location(ex) == f"{https_url}/target?x=1"
    assert ("Host", https_url.split("//")[1]) == ex.request_headers[0]
    _assert_keylog_written(keylog)

    follow = drv.request("GET", resolve_location(ex))
    assert follow.status == 200
    assert sorted(follow.text.split("; ")) == ["a=1", "b=2"]  # the jar kept both cookies, Secure over https
    assert any(k == "Cookie" for k, _ in follow.request_headers)
    bare = drv.request("GET", f"{https_url}/target", send_cookies=False)
    assert bare.text == "no cookie" and not bare.request_header_values("Cookie")
    assert drv.cookie_header(f"{https_url}/x") in ("a=1; b=2", "b=2; a=1")
    drv.close()


def test_https_bodies_auth_and_header_overrides(tls, https_url):
    drv = HttpDriver(tls[0], timeout_s=3)
    ex = drv.request("POST", f"{https_url}/echo", form={"grant_type": "authorization_code", "code": "c 1"},
                     basic=("thirdparty-webrtc-app", "s3cret"), headers={"X-Test": "yes", "User-Agent": None})
    echo = ex.json()
    assert echo["ctype"] == "application/x-www-form-urlencoded"
    assert echo["body"] == "grant_type=authorization_code&code=c+1"
    assert echo["auth"] == "Basic " + base64.b64encode(b"thirdparty-webrtc-app:s3cret").decode()
    assert echo["x"] == "yes" and not ex.request_header_values("User-Agent")
    assert ex.request_body == b"grant_type=authorization_code&code=c+1"
    js = drv.request("POST", f"{https_url}/echo", json_body={"a": 1}, bearer="tok").json()
    assert json.loads(js["body"]) == {"a": 1} and js["auth"] == "Bearer tok"
    assert drv.get_json(f"{https_url}/jwks") == {"keys": []}
    drv.close()


def test_https_failures_raise_transport_error(ca, tmp_path, https_url):
    other_ca = trustme.CA()  # the harness does not trust the server's CA
    other_ca.cert_pem.write_to_path(str(tmp_path / "other.pem"))
    drv = HttpDriver(ca_bundle=tmp_path / "other.pem", keylog=tmp_path / "k.log", timeout_s=2)
    # the SUT answered with a certificate the harness refuses: an observed fault, not silence
    refused = drv.request("GET", f"{https_url}/target")
    assert isinstance(refused, Garbage) and "TLS handshake failed" in refused.reason
    assert "certificate verify failed" in refused.reason
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    good = HttpDriver(ca_bundle=tmp_path / "ca.pem", keylog=tmp_path / "k.log", timeout_s=0.3)
    start = time.monotonic()
    with pytest.raises(TransportError) as exc:
        good.request("GET", f"{https_url}/slow")
    assert exc.value.kind == "timeout" and time.monotonic() - start < 1.0
    with pytest.raises(TransportError) as exc:
        good.request("GET", f"https://{HTTPS_HOST}:1/")
    assert exc.value.kind == "connect"
    assert isinstance(exc.value, ConnectionError)


# -- WebSocket ----------------------------------------------------------------------------------------

REGISTER = ("REGISTER sip:ims.example.net SIP/2.0\r\nVia: SIP/2.0/WSS h.invalid;branch=z9hG4bK1\r\n"
            "To: <sip:a@x>\r\nFrom: <sip:a@x>;tag=1\r\nCall-ID: c\r\nCSeq: 1 REGISTER\r\nContent-Length: 0\r\n\r\n")
OK = ("SIP/2.0 401 Unauthorized\r\nVia: SIP/2.0/WSS h.invalid;branch=z9hG4bK1\r\nTo: <sip:a@x>;tag=2\r\n"
      "From: <sip:a@x>;tag=1\r\nCall-ID: c\r\nCSeq: 1 REGISTER\r\nContent-Length: 0\r\n\r\n")


def _ws_handler(conn):
    for msg in conn:
        if msg == "cookie":
            conn.send(conn.request.headers.get("Cookie") or "none")
        elif msg == "garbage":
            conn.send("hello, not SIP")
        elif msg == "binary":
            conn.send(OK.encode())
        elif msg == "close":
            conn.close(4000, "bye")
        elif isinstance(msg, str) and msg.startswith("REGISTER"):
            conn.ping()
            conn.send(OK)


def _refuse(conn, request):
    if request.path == "/forbidden":
        resp = conn.respond(403, "go away\n")
        resp.headers["X-Reason"] = "origin"
        return resp
    return None


@pytest.fixture(scope="module")
def wss_url(server_ctx):
    server = ws_serve(_ws_handler, WS_HOST, 0, ssl=server_ctx, subprotocols=["sip"], process_request=_refuse,
                      compression=None, ping_interval=None, close_timeout=1)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"wss://{WS_HOST}:{server.socket.getsockname()[1]}"
    server.shutdown()


def test_wss_handshake_subprotocol_cookies_and_key_log(tls, wss_url):
    ctx, keylog = tls
    jar = requests.cookies.RequestsCookieJar()
    jar.set("sid", "s1", domain=WS_HOST, path="/", secure=True)
    jar.set("other", "o", domain="elsewhere.example", path="/")
    conn, hs = wsdrv.connect(f"{wss_url}/sip", ssl_context=ctx, cookie_jar=jar, timeout_s=3,
                             headers={"Origin": "https://app.thirdparty.example", "X-Extra": "1"})
    try:
        assert conn is not None and hs.status == 101 and hs.subprotocol == "sip" and not hs.error
        sent = dict(hs.request_headers)
        assert sent["Sec-WebSocket-Protocol"] == "sip"
        assert sent["Origin"] == "https://app.thirdparty.example" and sent["X-Extra"] == "1"
        assert sent["Cookie"] == "sid=s1"
        assert ("Upgrade", "websocket") in hs.headers
        conn.send_text("cookie")
        echoed = conn.recv(2)
        assert isinstance(echoed, Garbage) and echoed.raw == b"sid=s1"  # not SIP, kept as evidence
        _assert_keylog_written(keylog)
    finally:
        conn.close()


def test_wss_sip_exchange_garbage_binary_and_bounded_recv(tls, wss_url):
    conn, _ = wsdrv.connect(f"{wss_url}/sip", ssl_context=tls[0], timeout_s=3)
    try:
        start = time.monotonic()
        assert isinstance(conn.recv(0.3), Nothing)
        assert time.monotonic() - start < 1.0
        conn.send_text(REGISTER)
        got = conn.recv(2)  # the server pings first: answered and skipped
        assert isinstance(got, SipReceived) and got.message.status == 401 and got.transport == "wss"
        assert got.raw == OK.encode() and got.peer == wss_url.split("//")[1]
        conn.send_text("garbage")
        junk = conn.recv(2)
        assert isinstance(junk, Garbage) and junk.raw == b"hello, not SIP" and "SIP" in junk.reason
        conn.send_text("binary")
        assert isinstance(conn.recv(2), SipReceived)  # RFC 7118 allows binary frames
        conn.send_text("close")
        closed = conn.recv(2)
        assert closed == WsClosed(4000, "bye")
        assert conn.recv(0.1) is closed
    finally:
        conn.close()


def test_unmasked_client_frame_gets_a_protocol_error_close(tls, wss_url):
    conn, _ = wsdrv.connect(f"{wss_url}/sip", ssl_context=tls[0], timeout_s=3)
    try:
        conn.send_frame("text", REGISTER.encode(), masked=False)  # RFC 6455 5.1: the server must fail
        closed = conn.recv(2)
        assert isinstance(closed, WsClosed) and closed.code == 1002
    finally:
        conn.close()


def test_refused_handshakes_keep_status_headers_and_body(tls, wss_url):
    conn, hs = wsdrv.connect(f"{wss_url}/forbidden", ssl_context=tls[0], timeout_s=3,
                             headers={"Origin": "https://evil.example"})
    assert conn is None
    assert hs.status == 403 and hs.body == b"go away\n" and hs.header_values("X-Reason") == ["origin"]
    assert dict(hs.request_headers)["Origin"] == "https://evil.example"
    conn, hs = wsdrv.connect(f"{wss_url}/sip", ssl_context=tls[0], subprotocols=[], timeout_s=3)
    assert conn is None and hs.status == 400 and b"subprotocol" in hs.body
    assert "Sec-WebSocket-Protocol" not in dict(hs.request_headers)


def test_wss_unreachable_or_untrusted(tmp_path, wss_url):
    other = trustme.CA()
    other.cert_pem.write_to_path(str(tmp_path / "o.pem"))
    conn, handshake = wsdrv.connect(f"{wss_url}/sip", ssl_context=client_context(tmp_path / "o.pem", None),
                                    timeout_s=2)
    assert conn is None and handshake.status is None and "certificate verify failed" in handshake.error
    with pytest.raises(TransportError) as exc:
        wsdrv.connect(f"ws://{WS_HOST}:1/sip", timeout_s=1)
    assert exc.value.kind == "connect"


def _raw_101_server(extra_headers: bytes):
    """A plain-TCP server answering every upgrade with 101 and the given headers, no subprotocol."""
    srv = socket.socket()
    srv.bind((RAW_HOST, 0))
    srv.listen()
    srv.settimeout(5)

    def run():
        for _ in range(2):
            try:
                c, _ = srv.accept()
            except OSError:
                return
            data = b""
            while b"\r\n\r\n" not in data:
                data += c.recv(4096)
            key = next(line.split(b":", 1)[1].strip() for line in data.split(b"\r\n")
                       if line.lower().startswith(b"sec-websocket-key"))
            accept = base64.b64encode(hashlib.sha1(key + b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11").digest())
            c.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                      b"Sec-WebSocket-Accept: " + accept + b"\r\n" + extra_headers + b"\r\n")
            time.sleep(0.2)
            c.close()

    threading.Thread(target=run, daemon=True).start()
    return srv


def test_101_without_the_offered_subprotocol_is_reported_not_opened():
    srv = _raw_101_server(b"Set-Cookie: a=1\r\nSet-Cookie: b=2\r\n")
    url = f"ws://{RAW_HOST}:{srv.getsockname()[1]}/sip"
    try:
        conn, hs = wsdrv.connect(url, subprotocols=["sip"], timeout_s=2)
        assert conn is None
        assert hs.status == 101 and hs.subprotocol is None and hs.error
        assert hs.header_values("Set-Cookie") == ["a=1", "b=2"]  # every line, as received
        conn, hs = wsdrv.connect(url, subprotocols=[], timeout_s=2)  # nothing offered: a valid handshake
        assert conn is not None and hs.status == 101 and not hs.error
        conn.abort()
    finally:
        srv.close()


# -- SIP over UDP and TCP --------------------------------------------------------------------------------

def _answer(request: bytes, status: str = "200 OK") -> bytes:
    req = sip.parse(request)
    lines = [f"SIP/2.0 {status}"] + [f"{n}: {v}" for n, v in req.headers.items() if n.lower() != "content-length"]
    return ("\r\n".join(lines) + "\r\nContent-Length: 0\r\n\r\n").encode()


@pytest.fixture(scope="module")
def udp_responder():
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((SIP_HOST, 0))
    sock.settimeout(0.1)
    stop = threading.Event()

    def run():
        while not stop.is_set():
            try:
                data, peer = sock.recvfrom(65535)
            except TimeoutError:
                continue
            sock.sendto(_answer(data) if data.startswith(b"REGISTER") else b"not sip at all", peer)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    yield sock.getsockname()
    stop.set()
    t.join(2)
    sock.close()


def test_udp_request_response_garbage_and_silence(udp_responder):
    udp = open_transport("udp", *udp_responder)
    try:
        assert isinstance(udp, SipUdp) and udp.local_address[0] == "127.0.0.1"
        udp.send(REGISTER.encode())
        got = udp.recv(2)
        assert isinstance(got, SipReceived) and got.message.status == 200 and got.transport == "udp"
        assert got.peer == f"{udp_responder[0]}:{udp_responder[1]}" and got.raw.startswith(b"SIP/2.0 200 OK\r\n")
        assert got.message.headers.get("Call-ID") == "c"
        udp.send(b"junk")
        junk = udp.recv(2)
        assert isinstance(junk, Garbage) and junk.raw == b"not sip at all"
        start = time.monotonic()
        assert isinstance(udp.recv(0.2), Nothing) and time.monotonic() - start < 1.0
    finally:
        udp.close()


def test_tcp_framing_partial_message_and_close():
    srv = socket.socket()
    srv.bind((SIP_HOST, 0))
    srv.listen()
    srv.settimeout(5)

    def run():
        c, _ = srv.accept()
        data = b""
        while b"\r\n\r\n" not in data:
            data += c.recv(4096)
        # two messages in one segment, a keep-alive, then a message cut short by the close
        c.sendall(_answer(data, "100 Trying") + _answer(data) + b"\r\n\r\n")
        time.sleep(0.1)
        c.sendall(b"SIP/2.0 200 OK\r\nContent-Length: 50\r\n\r\nshort")
        time.sleep(0.1)
        c.close()

    threading.Thread(target=run, daemon=True).start()
    tcp = open_transport("tcp", *srv.getsockname(), timeout_s=2)
    try:
        assert isinstance(tcp, SipTcp)
        tcp.send(REGISTER.encode())
        first, second = tcp.recv(2), tcp.recv(2)
        assert (first.message.status, second.message.status) == (100, 200)
        assert sip.parse(second.raw).status == 200 and second.transport == "tcp"
        partial = tcp.recv(2)
        assert isinstance(partial, Garbage) and partial.raw.endswith(b"short")
        closed = tcp.recv(2)
        assert isinstance(closed, WsClosed) and closed.code is None
        assert tcp.recv(0.1) is closed
    finally:
        tcp.close()
        srv.close()


def test_tcp_single_message_keeps_exact_bytes_and_bounded_recv():
    srv = socket.socket()
    srv.bind((SIP_HOST, 0))
    srv.listen()
    wire = OK.replace("Content-Length: 0", "l: 0").encode()  # compact form: re-serializing would differ

    def run():
        c, _ = srv.accept()
        c.recv(4096)
        c.sendall(wire)
        time.sleep(1.0)
        c.close()

    threading.Thread(target=run, daemon=True).start()
    tcp = SipTcp(srv.getsockname(), connect_timeout_s=2)
    try:
        tcp.send(REGISTER.encode())
        got = tcp.recv(2)
        assert isinstance(got, SipReceived) and got.raw == wire
        start = time.monotonic()
        assert isinstance(tcp.recv(0.2), Nothing) and time.monotonic() - start < 0.8
    finally:
        tcp.close()
        srv.close()


def test_tcp_connect_refused_is_a_transport_error():
    with pytest.raises(TransportError) as exc:
        open_transport("tcp", SIP_HOST, 1, timeout_s=1)
    assert exc.value.kind == "connect"
    with pytest.raises(ValueError):
        open_transport("sctp", SIP_HOST, 5060)


def test_a_read_cut_by_the_step_deadline_is_silence_not_a_broken_answer():
    """requests wraps our deadline in ConnectionError('Connection aborted.', ...) when it fires
    while the request is still being written: that is still silence (inconclusive)."""
    import requests
    import urllib3

    from conformance.drivers.http import _timed_out
    from conformance.run.deadline import DeadlineExceeded

    cut = requests.exceptions.ConnectionError(
        urllib3.exceptions.ProtocolError("Connection aborted.", DeadlineExceeded("step deadline of 0.4 s passed")))
    reset = requests.exceptions.ConnectionError(
        urllib3.exceptions.ProtocolError("Connection aborted.", ConnectionResetError(104, "reset by peer")))
    assert _timed_out(cut)
    assert not _timed_out(reset)
