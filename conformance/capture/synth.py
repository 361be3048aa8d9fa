"""Synthetic captures: real TLS, HTTP, WebSocket and SIP bytes wrapped in TCP/UDP frames.

For the capture tests and the benchmark, with no socket and no privilege: TLS runs between two
`ssl.SSLObject`s over memory BIOs (OpenSSL writes a genuine NSS key log), and each side's bytes
become Ethernet/IPv4/TCP frames with consistent sequence numbers. Tests then reorder, duplicate or
drop frames to exercise reassembly.
"""

from __future__ import annotations

import functools
import ssl
import struct
from dataclasses import dataclass, field
from pathlib import Path

from conformance.codec.websocket import build_frame


def _csum(data: bytes) -> int:
    """RFC 1071 Internet checksum. The ones' complement sum of the 16-bit words is the number the
    bytes spell modulo 0xFFFF (2**16 is 1 modulo 0xFFFF), with 0xFFFF in place of 0 unless every
    word is zero: one C-level conversion instead of a tuple of every word (the plaintext pcapng
    of each test case synthesizes its segments with this)."""
    if len(data) % 2:
        data += b"\x00"
    n = int.from_bytes(data, "big")
    s = n % 0xFFFF or (0xFFFF if n else 0)
    return ~s & 0xFFFF


@functools.lru_cache(maxsize=1024)  # a capture has few addresses, asked for at every segment
def _ip4(addr: str) -> bytes:
    return bytes(int(x) for x in addr.split("."))


def ipv4_frame(src: str, dst: str, proto: int, l4: bytes, ident: int = 0) -> bytes:
    """Ethernet (zero MACs, as on Linux lo) + IPv4 with a correct header checksum."""
    hdr = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(l4), ident & 0xFFFF, 0x4000, 64, proto, 0,
                      _ip4(src), _ip4(dst))
    hdr = hdr[:10] + struct.pack("!H", _csum(hdr)) + hdr[12:]
    return b"\x00" * 12 + b"\x08\x00" + hdr + l4


def tcp_segment(src: str, sport: int, dst: str, dport: int, seq: int, ack: int, flags: int,
                payload: bytes = b"") -> bytes:
    hdr = struct.pack("!HHIIBBHHH", sport, dport, seq & 0xFFFFFFFF, ack & 0xFFFFFFFF, 5 << 4, flags,
                      65535, 0, 0)
    pseudo = _ip4(src) + _ip4(dst) + struct.pack("!BBH", 0, 6, len(hdr) + len(payload))
    c = _csum(pseudo + hdr + payload)
    return ipv4_frame(src, dst, 6, hdr[:16] + struct.pack("!H", c) + hdr[18:] + payload)


def udp_datagram(src: str, sport: int, dst: str, dport: int, payload: bytes) -> bytes:
    hdr = struct.pack("!HHHH", sport, dport, 8 + len(payload), 0)
    pseudo = _ip4(src) + _ip4(dst) + struct.pack("!BBH", 0, 17, 8 + len(payload))
    c = _csum(pseudo + hdr + payload) or 0xFFFF
    return ipv4_frame(src, dst, 17, hdr[:6] + struct.pack("!H", c) + payload)


def write_pcap(path: str | Path, frames: list[tuple[float, bytes]], linktype: int = 1) -> Path:
    """A classic pcap file (microsecond timestamps)."""
    out = bytearray(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, linktype))
    for ts, frame in frames:
        sec = int(ts)
        out += struct.pack("<IIII", sec, int(round((ts - sec) * 1e6)), len(frame), len(frame)) + frame
    Path(path).write_bytes(bytes(out))
    return Path(path)


@dataclass
class Capture:
    """Frames in capture order with a clock that advances a little with every frame."""

    t: float = 1_700_000_000.0
    step: float = 0.0005
    frames: list[tuple[float, bytes]] = field(default_factory=list)

    def add(self, frame: bytes) -> int:
        self.t += self.step
        self.frames.append((self.t, frame))
        return len(self.frames) - 1

    def wait(self, seconds: float) -> None:
        self.t += seconds

    def write(self, path: str | Path) -> Path:
        return write_pcap(path, self.frames)

    def frames_records(self) -> list[tuple[float, int, bytes, int]]:
        """(timestamp, linktype, frame, interface) as the capture readers yield them."""
        return [(ts, 1, frame, 0) for ts, frame in self.frames]

    def udp(self, src: tuple[str, int], dst: tuple[str, int], payload: bytes) -> int:
        return self.add(udp_datagram(src[0], src[1], dst[0], dst[1], payload))


class TcpFlow:
    """One TCP connection written into a Capture: SYN handshake, data in MSS-sized segments, FIN."""

    def __init__(self, cap: Capture, client: tuple[str, int], server: tuple[str, int], mss: int = 1400,
                 isn: tuple[int, int] = (1000, 50000)):
        self.cap, self.client, self.server, self.mss = cap, client, server, mss
        self.seq = {True: isn[0], False: isn[1]}

    def _seg(self, from_client: bool, flags: int, payload: bytes = b"") -> int:
        a, b = (self.client, self.server) if from_client else (self.server, self.client)
        idx = self.cap.add(tcp_segment(a[0], a[1], b[0], b[1], self.seq[from_client], self.seq[not from_client],
                                       flags, payload))
        self.seq[from_client] += len(payload) + (1 if flags & 0x03 else 0)
        return idx

    def open(self) -> TcpFlow:
        self._seg(True, 0x02)  # SYN
        self._seg(False, 0x12)  # SYN-ACK
        self._seg(True, 0x10)  # ACK
        return self

    def send(self, from_client: bool, data: bytes) -> list[int]:
        return [self._seg(from_client, 0x18, data[i:i + self.mss]) for i in range(0, len(data), self.mss)]

    def close(self) -> None:
        self._seg(True, 0x11)
        self._seg(False, 0x11)
        self._seg(True, 0x10)


class TlsPair:
    """A TLS client and server talking through memory BIOs; their records go onto a TcpFlow.

    `keylog` receives the NSS key log lines (written by OpenSSL for the client side).
    """

    def __init__(self, flow: TcpFlow, server_ctx: ssl.SSLContext, client_ctx: ssl.SSLContext,
                 server_hostname: str | None = None):
        self.flow = flow
        self.c_in, self.c_out, self.s_in, self.s_out = (ssl.MemoryBIO() for _ in range(4))
        self.client = client_ctx.wrap_bio(self.c_in, self.c_out, server_hostname=server_hostname)
        self.server = server_ctx.wrap_bio(self.s_in, self.s_out, server_side=True)

    def _pump(self) -> bool:
        moved = False
        data = self.c_out.read()
        if data:
            self.flow.send(True, data)
            self.s_in.write(data)
            moved = True
        data = self.s_out.read()
        if data:
            self.flow.send(False, data)
            self.c_in.write(data)
            moved = True
        return moved

    def handshake(self) -> TlsPair:
        for _ in range(20):
            for side in (self.client, self.server):
                try:
                    side.do_handshake()
                except ssl.SSLWantReadError:
                    pass
            if not self._pump() and self.client.version() and self._server_done():
                break
        # TLS 1.3 tickets arrive after the handshake: let the client read them
        self._drain_client()
        return self

    def _server_done(self) -> bool:
        try:
            self.server.do_handshake()
            return True
        except ssl.SSLWantReadError:
            return False

    def _drain_client(self) -> None:
        try:
            self.client.read(1)
        except (ssl.SSLWantReadError, ssl.SSLZeroReturnError):
            pass
        self._pump()

    def send(self, from_client: bool, data: bytes) -> bytes:
        """Write application data from one side; returns what the other side read."""
        (self.client if from_client else self.server).write(data)
        self._pump()
        peer = self.server if from_client else self.client
        got = b""
        while True:
            try:
                chunk = peer.read(65536)
            except ssl.SSLWantReadError:
                break
            if not chunk:
                break
            got += chunk
        self._pump()
        return got


def tls_contexts(keylog: str | Path, *, version: str = "1.3", ciphers: str | None = None,
                 names: tuple[str, ...] = ("wsf.operator.example", "127.0.0.13")):
    """(server_ctx, client_ctx, ca) with a throw-away CA; the client writes the key log."""
    import trustme

    ca = trustme.CA()
    cert = ca.issue_cert(*names)
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    cert.configure_cert(server)
    client = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ca.configure_trust(client)
    client.keylog_filename = str(keylog)
    if version == "1.2":
        client.maximum_version = ssl.TLSVersion.TLSv1_2
    else:
        client.minimum_version = ssl.TLSVersion.TLSv1_3
    if ciphers:
        client.set_ciphers(ciphers)
        server.set_ciphers(ciphers)
    return server, client, ca


# -- application bytes ---------------------------------------------------------------------------

def ws_upgrade_request(path: str = "/sip", host: str = "127.0.0.13:7443", subprotocol: str = "sip") -> bytes:
    return (f"GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
            f"Sec-WebSocket-Protocol: {subprotocol}\r\n\r\n").encode()


def ws_upgrade_response(subprotocol: str = "sip") -> bytes:
    return ("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
            f"Sec-WebSocket-Protocol: {subprotocol}\r\n\r\n").encode()


def sip_register(aor: str = "sip:alice@web.operator.example", auth: str = "Bearer eyJ0eXAiOiJhdCtqd3QifQ.e30.sig",
                 via: str = "SIP/2.0/WSS df7jal23ls0d.invalid;branch=z9hG4bK776asdhds", cseq: int = 1,
                 extra: str = "") -> bytes:
    return (f"REGISTER sip:ims.example.net SIP/2.0\r\nVia: {via}\r\nMax-Forwards: 70\r\n"
            f"To: <{aor}>\r\nFrom: <{aor}>;tag=49583\r\nCall-ID: 843817637684230@998sdasdh09\r\n"
            f"CSeq: {cseq} REGISTER\r\nContact: <sip:abc@df7jal23ls0d.invalid;transport=ws>;expires=600\r\n"
            f"{'Authorization: ' + auth + chr(13) + chr(10) if auth else ''}{extra}Content-Length: 0\r\n\r\n").encode()


def sip_ok(via: str = "SIP/2.0/WSS df7jal23ls0d.invalid;branch=z9hG4bK776asdhds",
           aor: str = "sip:alice@ims.example.net") -> bytes:
    return (f"SIP/2.0 200 OK\r\nVia: {via}\r\nTo: <{aor}>;tag=srv1\r\nFrom: <{aor}>;tag=49583\r\n"
            f"Call-ID: 843817637684230@998sdasdh09\r\nCSeq: 1 REGISTER\r\n"
            f"P-Associated-URI: <{aor}>\r\nService-Route: <sip:orig@scscf.ims.example.net;lr>\r\n"
            f"Content-Length: 0\r\n\r\n").encode()


def http_request(method: str, path: str, body: bytes = b"", headers: dict | None = None) -> bytes:
    head = f"{method} {path} HTTP/1.1\r\nHost: test\r\n"
    for k, v in (headers or {}).items():
        head += f"{k}: {v}\r\n"
    if body or method in ("POST", "PUT"):
        head += f"Content-Length: {len(body)}\r\n"
    return head.encode() + b"\r\n" + body


def http_response(status: int, body: bytes = b"", reason: str = "OK", headers: dict | None = None,
                  chunked: bool = False) -> bytes:
    head = f"HTTP/1.1 {status} {reason}\r\n"
    for k, v in (headers or {}).items():
        head += f"{k}: {v}\r\n"
    if chunked:
        mid = len(body) // 2
        payload = b"".join(f"{len(p):x}\r\n".encode() + p + b"\r\n" for p in (body[:mid], body[mid:]) if p)
        return head.encode() + b"Transfer-Encoding: chunked\r\n\r\n" + payload + b"0\r\n\r\n"
    return head.encode() + f"Content-Length: {len(body)}\r\n\r\n".encode() + body


def ws_text(payload: bytes | str, from_client: bool) -> bytes:
    return build_frame(payload, "text", mask=from_client)


REFERENCE = {"ue": ("127.0.0.1", 0), "3rdwws": ("127.0.0.11", 8443), "as": ("127.0.0.12", 9443),
             "wsf": ("127.0.0.13", 7443), "pcscf": ("127.0.0.14", 5060), "scscf": ("127.0.0.15", 5060)}
INTROSPECTION = (b'{"active": true, "iss": "https://127.0.0.12:9443", "sub": "alice@web.operator.example", '
                 b'"client_id": "thirdparty-webrtc-app", "impi": "alice@ims.example.net", '
                 b'"impu": ["sip:alice@ims.example.net", "tel:+15550100"]}')


def registration(cap: Capture, keylog: str | Path, *, verify: bool = True, forward_first: bool = False,
                 tls_version: str = "1.3", mss: int = 1400, port: int = 40000, token: bool = True) -> dict[int, list[int]]:
    """Steps 9-10 (token request, so the AS is on the wire as in a real test case) and 13-21 of
    BINDING.md (relay mode) between the reference addresses, as real bytes.

    `verify=False`: the WSF forwards without steps 15-16 (fault wsf-skip-verification).
    `forward_first=True`: step 17 goes out before steps 15-16 (verification too late).
    Returns the capture frame indices of each step.
    """
    n = REFERENCE
    steps: dict[int, list[int]] = {}
    wsf_via = "SIP/2.0/UDP wsf.operator.example;branch=z9hG4bKwsf17"
    if token:
        tsrv, tcli, _ = tls_contexts(keylog, version=tls_version, names=("wws.operator.example", "127.0.0.12"))
        tok = TcpFlow(cap, (n["3rdwws"][0], port + 2), n["as"], mss=mss).open()
        ttls = TlsPair(tok, tsrv, tcli).handshake()
        first = len(cap.frames)
        ttls.send(True, http_request("POST", "/token", b"grant_type=authorization_code&code=c1",
                                     {"Content-Type": "application/x-www-form-urlencoded"}))
        steps[9] = list(range(first, len(cap.frames)))
        first = len(cap.frames)
        ttls.send(False, http_response(200, b'{"access_token": "eyJ0eXAiOiJhdCtqd3QifQ.e30.sig", "token_type": "Bearer"}',
                                       headers={"Content-Type": "application/json", "Cache-Control": "no-store"}))
        steps[10] = list(range(first, len(cap.frames)))
        tok.close()
    srv, cli, _ca = tls_contexts(keylog, version=tls_version)
    ws = TcpFlow(cap, (n["3rdwws"][0], port), n["wsf"], mss=mss).open()
    tls = TlsPair(ws, srv, cli).handshake()
    first = len(cap.frames)
    tls.send(True, ws_upgrade_request())
    tls.send(False, ws_upgrade_response())
    steps[13] = list(range(first, len(cap.frames)))
    first = len(cap.frames)
    tls.send(True, ws_text(sip_register(), True))
    steps[14] = list(range(first, len(cap.frames)))

    def forward():
        auth = ('Digest username="alice@ims.example.net", realm="ims.example.net", uri="sip:ims.example.net", '
                'nonce="", response="", integrity-protected="auth-done"')
        register = sip_register(aor="sip:alice@ims.example.net", auth=auth, via=wsf_via,
                                extra="Path: <sip:flow1@wsf.operator.example;lr;ob>\r\n")
        steps[17] = [cap.udp((n["wsf"][0], 5062), n["pcscf"], register)]
        pcscf_via = "SIP/2.0/UDP pcscf.ims.example.net;branch=z9hG4bKp18"
        steps[18] = [cap.udp(n["pcscf"], n["scscf"], register.replace(b"Via: ", f"Via: {pcscf_via}\r\nVia: ".encode(), 1))]
        # the S-CSCF answers with the whole Via stack of step 18 (RFC 3261 8.2.6.2)
        steps[19] = [cap.udp(n["scscf"], n["pcscf"], sip_ok(via=f"{pcscf_via}\r\nVia: {wsf_via}"))]
        steps[20] = [cap.udp(n["pcscf"], (n["wsf"][0], 5062), sip_ok(via=wsf_via))]

    if forward_first:
        forward()
    if verify:
        asrv, acli, _ = tls_contexts(keylog, version="1.2", names=("wws.operator.example", "127.0.0.12"))
        intro = TcpFlow(cap, (n["wsf"][0], port + 1), n["as"], mss=mss).open()
        itls = TlsPair(intro, asrv, acli).handshake()
        first = len(cap.frames)
        itls.send(True, http_request("POST", "/introspect", b"token=eyJ0eXAiOiJhdCtqd3QifQ.e30.sig&token_type_hint=access_token",
                                     {"Authorization": "Basic d3NmOndzZi1zZWNyZXQ=",
                                      "Content-Type": "application/x-www-form-urlencoded"}))
        steps[15] = list(range(first, len(cap.frames)))
        first = len(cap.frames)
        itls.send(False, http_response(200, INTROSPECTION, headers={"Content-Type": "application/json"}))
        steps[16] = list(range(first, len(cap.frames)))
        intro.close()
    if not forward_first:
        forward()
    first = len(cap.frames)
    tls.send(False, ws_text(sip_ok(), False))
    steps[21] = list(range(first, len(cap.frames)))
    ws.close()
    return steps
