"""Live capture on lo of real TLS + WebSocket + HTTPS + SIP/UDP traffic between small local servers,
then (when the reference network is available) the full registration on every leg.

The mini flow mirrors steps 13-20: the "UE" opens a WSS connection (subprotocol sip) to a "WSF"
and sends a REGISTER; the WSF asks an "AS" over HTTPS (POST /introspect), forwards a REGISTER to a
"P-CSCF" over UDP from its own address, and relays the 200 OK back over the WebSocket.
"""

from __future__ import annotations

import http.client
import http.server
import socket
import ssl
import threading
from pathlib import Path

import pytest

from conformance.capture import CaptureSession, evaluate_capture
from conformance.capture.synth import sip_ok, sip_register
from conformance.capture.timeline import HttpRequestSeen, WsFrameSeen
from conformance.events import HttpExchange, SipReceived, WsHandshake
from conformance.match.engine import MatchContext
from conformance.report.ladder import render_ladder
from conformance.verdicts import Verdict

trustme = pytest.importorskip("trustme")
ws_server = pytest.importorskip("websockets.sync.server")
ws_client = pytest.importorskip("websockets.sync.client")

# Addresses of their own, ports chosen by the kernel: two runs (pytest-xdist workers, a second
# checkout) never meet on a port, and a socket left in TIME_WAIT by one test cannot block the next.
WSF_HOST, AS_HOST, PCSCF_HOST = "127.0.0.41", "127.0.0.42", "127.0.0.43"

BLOCK = {
    "expect": [
        {"flow": 13, "from": "ue", "to": "wsf", "ws_handshake": {}},
        {"flow": 14, "from": "ue", "to": "wsf", "sip": {"method": "REGISTER"},
         "expect": [{"header": "Authorization", "starts_with": "Bearer "}]},
        {"flow": 15, "from": "wsf", "to": "as", "http": {"method": "POST", "path": "/introspect"}},
        {"flow": 16, "from": "as", "to": "wsf", "http": {"status": 200},
         "expect": [{"json": "$.active", "equals": True}]},
        {"flow": 17, "from": "wsf", "to": "pcscf", "sip": {"method": "REGISTER"},
         "expect": [{"header": "Authorization", "param": "integrity-protected", "equals": "auth-done"}]},
        {"flow": 20, "from": "pcscf", "to": "wsf", "sip": {"status": 200}},
        {"flow": 21, "from": "wsf", "to": "ue", "sip": {"status": 200}},
    ],
    "forbidden": [{"from": "wsf", "to": "pcscf", "sip": {"method": "INVITE"}}],
}


class MiniNetwork:
    """WSF (websockets, TLS), AS (http.server, TLS) and P-CSCF (UDP) on their own addresses."""

    def __init__(self, tmp: Path):
        self.ca = trustme.CA()
        self.sut_keylog, self.harness_keylog = tmp / "sut.keylog", tmp / "harness.keylog"
        self.threads: list[threading.Thread] = []
        self._as_server()
        self._pcscf()
        self._wsf()
        self.pixit = {"ue": {"address": "127.0.0.1"},
                      "nodes": {"as": {"address": AS_HOST, "port": self.as_addr[1]},
                                "wsf": {"address": WSF_HOST, "port": self.wsf_addr[1]},
                                "pcscf": {"address": PCSCF_HOST, "port": self.pcscf_addr[1]}}}

    def _server_ctx(self, host: str) -> ssl.SSLContext:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ca.issue_cert(host).configure_cert(ctx)
        ctx.keylog_filename = str(self.sut_keylog)
        return ctx

    def client_ctx(self, keylog: Path, tls12: bool = False) -> ssl.SSLContext:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        self.ca.configure_trust(ctx)
        ctx.keylog_filename = str(keylog)
        if tls12:
            ctx.maximum_version = ssl.TLSVersion.TLSv1_2
        return ctx

    def _spawn(self, target) -> None:
        t = threading.Thread(target=target, daemon=True)
        t.start()
        self.threads.append(t)

    def _as_server(self) -> None:
        class Introspect(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):  # noqa: N802 - http.server naming
                self.rfile.read(int(self.headers["Content-Length"]))
                body = b'{"active": true, "impi": "alice@ims.example.net", "impu": ["sip:alice@ims.example.net"]}'
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer((AS_HOST, 0), Introspect)
        self.as_addr = self.httpd.server_address
        self.httpd.socket = self._server_ctx(AS_HOST).wrap_socket(self.httpd.socket, server_side=True)
        self._spawn(self.httpd.serve_forever)

    def _pcscf(self) -> None:
        self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.udp.bind((PCSCF_HOST, 0))
        self.pcscf_addr = self.udp.getsockname()
        self.udp.settimeout(0.2)
        self.stop_udp = threading.Event()

        def serve():
            while not self.stop_udp.is_set():
                try:
                    _data, peer = self.udp.recvfrom(65535)
                except (TimeoutError, OSError):
                    continue
                self.udp.sendto(sip_ok(via="SIP/2.0/UDP 127.0.0.41;branch=z9hG4bKwsf1"), peer)
        self._spawn(serve)

    def _wsf(self) -> None:
        net = self

        def handler(conn):
            for message in conn:
                assert message.startswith("REGISTER")
                c = http.client.HTTPSConnection(*net.as_addr, context=net.client_ctx(net.sut_keylog, tls12=True),
                                                source_address=(WSF_HOST, 0), timeout=15)
                c.request("POST", "/introspect", body=b"token=abc&token_type_hint=access_token",
                          headers={"Content-Type": "application/x-www-form-urlencoded"})
                assert c.getresponse().read().startswith(b'{"active": true')
                c.close()
                u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                u.bind((WSF_HOST, 0))
                u.settimeout(15)
                u.sendto(sip_register(aor="sip:alice@ims.example.net", via="SIP/2.0/UDP 127.0.0.41;branch=z9hG4bKwsf1",
                                      auth='Digest username="alice@ims.example.net", integrity-protected="auth-done"'),
                         net.pcscf_addr)
                u.recvfrom(65535)
                u.close()
                conn.send(sip_ok().decode())

        self.wss = ws_server.serve(handler, WSF_HOST, 0, ssl=self._server_ctx(WSF_HOST), subprotocols=["sip"])
        self.wsf_addr = self.wss.socket.getsockname()
        self._spawn(self.wss.serve_forever)

    def register(self) -> str:
        """Steps 13-21 from the UE side; returns the answer the UE got."""
        # generous timeouts: on a loaded two-core machine (CI under -n 2) a TLS handshake and a
        # thread hop took over 5 s once; the test is about what the capture sees, not speed
        with ws_client.connect(f"wss://{WSF_HOST}:{self.wsf_addr[1]}/sip", ssl=self.client_ctx(self.harness_keylog),
                               subprotocols=["sip"], open_timeout=20, close_timeout=5) as ws:
            ws.send(sip_register().decode())
            return ws.recv(timeout=20)

    def close(self) -> None:
        self.wss.shutdown()
        self.httpd.shutdown()
        self.stop_udp.set()
        for t in self.threads:
            t.join(5)
        self.udp.close()
        self.httpd.server_close()


@pytest.fixture
def mini(tmp_path):
    net = MiniNetwork(tmp_path)
    yield net
    net.close()


def _session(mini, tmp_path, **kw) -> CaptureSession:
    return CaptureSession(mini.pixit, [mini.harness_keylog, mini.sut_keylog], ["lo"], 150, workdir=tmp_path, **kw)


def test_live_capture_sees_every_leg_decrypted_in_order(mini, tmp_path):
    cap = _session(mini, tmp_path)
    cap.start()
    if cap.error and "privilege" in cap.error:
        pytest.skip(cap.error)
    answer = mini.register()
    result = cap.stop()
    assert answer.startswith("SIP/2.0 200 OK")
    assert result.error is None, result.error
    assert result.stats["kernel"]["lo"]["drops"] == 0
    tl = result.timeline
    assert all(c.complete for c in tl.coverage.values()), tl.coverage
    kinds = [(i.src_node, i.dst_node, type(i.event).__name__) for i in tl.items if i.proto != "ws"
             or isinstance(i.event, WsHandshake)]
    assert ("ue", "wsf", "WsHandshake") in kinds and ("wsf", "ue", "WsHandshake") in kinds
    sips = [i for i in tl.items if isinstance(i.event, SipReceived)]
    assert [(i.src_node, i.dst_node, i.event.transport) for i in sips] == [
        ("ue", "wsf", "wss"), ("wsf", "pcscf", "udp"), ("pcscf", "wsf", "udp"), ("wsf", "ue", "wss")]
    assert all(i.decrypted for i in sips if i.event.transport == "wss")
    http = [i.event for i in tl.items if isinstance(i.event, HttpRequestSeen | HttpExchange)]
    assert http[0].method == "POST" and http[1].status == 200 and http[1].json()["active"] is True
    # the client frames were masked, the server's not (RFC 6455 5.1); websockets negotiates
    # permessage-deflate, so the SIP text above came out of the inflater
    frames = [i for i in tl.items if isinstance(i.event, WsFrameSeen)]
    assert all(f.event.masked == (f.src_node == "ue") for f in frames)
    findings = evaluate_capture(BLOCK, result, MatchContext())
    assert [f.verdict for f in findings] == [Verdict.PASS] * len(findings), "\n".join(f.describe() for f in findings)
    assert result.plaintext_path.exists() and result.plaintext_path.stat().st_size > 1000
    assert result.pcapng_path is None  # the raw capture with TLS secrets only when the profile opts in
    svg = render_ladder(tl, findings, BLOCK, mini.pixit)
    assert "[17] REGISTER" in svg and "[21] 200 OK" in svg
    assert "missing:" not in svg and 'stroke-dasharray="6,4"' not in svg


def test_without_privilege_assertions_are_inconclusive_and_steps_still_run(mini, tmp_path):
    def no_privilege(iface, bpf, on_packet):
        raise PermissionError(1, "Operation not permitted")

    cap = _session(mini, tmp_path, sniffer_factory=no_privilege)
    cap.start()
    assert mini.register().startswith("SIP/2.0 200 OK")  # the test's own steps are unaffected
    result = cap.stop()
    assert "no privilege" in result.error
    findings = evaluate_capture(BLOCK, result, MatchContext())
    assert findings and {f.verdict for f in findings} == {Verdict.INCONCLUSIVE}
    assert all("no privilege" in f.message for f in findings)


def test_sniffer_dying_mid_test_is_reported(mini, tmp_path):
    """A socket error inside the sniffer thread must reach the result, not a log line."""
    from conformance.capture.sniff import ScapySniffer

    holder = {}

    def factory(iface, bpf, on_packet):
        holder["s"] = ScapySniffer(iface, bpf, on_packet)
        return holder["s"]

    cap = _session(mini, tmp_path, sniffer_factory=factory)
    cap.start()
    if cap.error:
        pytest.skip(cap.error)
    sniffer = holder["s"]
    real = sniffer._recvmsg

    def broken(*args):
        raise OSError(100, "Network is down")
    sniffer._recvmsg = broken
    mini.register()
    sniffer._recvmsg = real
    result = cap.stop()
    assert result.error and "Network is down" in result.error
    findings = evaluate_capture(BLOCK, result, MatchContext())
    assert {f.verdict for f in findings} == {Verdict.INCONCLUSIVE}
