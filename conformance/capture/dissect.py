"""Dissection of the relevant packets into one timeline.

Layers, each fed by the one below in capture order:

    IpPacket ─► UDP datagram ───────────────────────────────► SIP (codec) | Garbage
            └─► TCP reassembly ─► TLS (if a TLS record) ─┬─► HTTP/1.1 ─► 101 ─► WebSocket ─► SIP
                                                         └─► SIP over TCP (Content-Length framing)

The SIP messages are parsed by the harness's own codec (conformance.codec.sip), so a message looks
the same whether a driver received it or the capture saw it. Bytes that cannot be dissected
become a Garbage item with the reason; nothing is dropped silently.
"""

from __future__ import annotations

import re
import zlib
from collections import deque
from collections.abc import Iterable

from conformance.capture.packets import TCP, UDP, IpPacket, PacketFilter
from conformance.capture.reassembly import TcpConnection, TcpReassembler
from conformance.capture.timeline import (
    HttpRequestSeen,
    LegCoverage,
    NodeMap,
    Timeline,
    TimelineItem,
    TlsAlertSeen,
    WsFrameSeen,
)
from conformance.capture.tls import (
    CLIENT_RANDOM_END,
    KeyLog,
    TlsConnection,
    client_random_of,
    has_all_keys,
    looks_like_tls,
)
from conformance.codec.http1 import Http1Parser, HttpError, HttpMessage
from conformance.codec.websocket import Close, Frame, FrameError, FrameParser, Message, MessageAssembler
from conformance.events import Garbage, HttpExchange, SipReceived, WsHandshake

_HTTP_START = re.compile(rb"^(?:[A-Z]+ \S+ HTTP/1\.[01]|HTTP/1\.[01] \d{3})\r\n")
_SIP_START = re.compile(rb"^(?:[A-Za-z]+ \S+ SIP/2\.0|SIP/2\.0 \d{3}[^\r\n]*)\r\n")
_CONTENT_LENGTH = re.compile(rb"^(?:content-length|l)[ \t]*:[ \t]*(\d+)[ \t]*\r?$", re.I | re.M)
DETECT_BYTES = 4096  # bytes we wait for before calling a stream unrecognised
MAX_GARBAGE = 64 * 1024  # raw bytes kept as evidence of an undissected stream
# A connection held for its TLS secrets (Dissector.hold_for_keys) is dissected anyway, with the
# secrets there are, once this much of it is held: a peer that never logs its secrets and sends
# a lot between two windows must not grow the harness's memory without bound.
MAX_HELD_BYTES = 8 * 1024 * 1024


def parse_sip(raw: bytes):
    """The harness's SIP codec; any failure becomes the reason of a Garbage item."""
    from conformance.codec import sip

    return sip.parse(raw)


def looks_like_sip(data: bytes) -> bool:
    return bool(_SIP_START.match(data))


class Dissector:
    """Feed `IpPacket`s in capture order with `packet()`, then `finish()` for the Timeline."""

    def __init__(self, pixit: dict, keylog: KeyLog):
        self.nodes = NodeMap(pixit)
        self.keylog = keylog
        self.timeline = Timeline()
        self.tcp = TcpReassembler(self._open, self.nodes.is_server)
        self.tls: list[TlsConnection] = []
        self.plaintext = None  # a conformance.capture.plaintext.PlaintextRecorder, when one is wanted
        # Dissecting while the test case runs (capture.stream), a TLS connection may be seen before
        # its secrets are in the key logs: an endpoint writes them as it derives them, and the
        # sniffer can be faster. With `hold_for_keys`, such a connection's bytes are held, in
        # order with their capture times, until every secret it may need is logged (`release_ready`)
        # or the window ends (`release_all`): then it is dissected exactly as it would have been
        # with the whole capture at hand. Off (the default), nothing is held.
        self.hold_for_keys = False
        self.held: list[_Conn] = []
        self._names: dict[tuple, tuple[str | None, str | None]] = {}  # per (src, dst): every packet asks
        # per (src, sport, dst, dport): (src, dst, src node, dst node, the leg's coverage), one
        # flat look-up per packet instead of nested tuples hashed for two (issue 15)
        self._flows: dict[tuple, tuple] = {}
        self._ends: dict[tuple, tuple[str, str, str | None, str | None]] = {}  # (src, dst) -> texts, names
        if keylog.problems:
            self.timeline.problems += keylog.problems
        for name in self.nodes.unaddressed:
            self.timeline.problems.append(f"node {name}: pixit address is not an IP address, its legs are not captured")

    def packet_filter(self, any_port_hosts: Iterable[str] = ()) -> PacketFilter:
        return PacketFilter(self.nodes.endpoints, self.nodes.addresses, any_port_hosts)

    # -- attribution ----------------------------------------------------------------------
    def names(self, src: tuple[str, int], dst: tuple[str, int]) -> tuple[str | None, str | None]:
        key = (src, dst)
        known = self._names.get(key)
        if known is not None:
            return known
        dn = self.nodes.name(*dst)
        sn = self.nodes.name(*src, peer=dn)
        if dn is None or (dn == sn):
            dn = self.nodes.name(*dst, peer=sn)
        self._names[key] = (sn, dn)
        return sn, dn

    def coverage(self, sn: str | None, dn: str | None, src: str, dst: str) -> LegCoverage:
        key = tuple(sorted((sn or src, dn or dst)))
        cov = self.timeline.coverage.get(key)
        if cov is None:
            cov = self.timeline.coverage[key] = LegCoverage(key)
        return cov

    def emit(self, t: float, src: tuple[str, int], dst: tuple[str, int], proto: str, event, *,
             decrypted: bool = False, stream: str = "") -> TimelineItem:
        ends = self._ends.get((src, dst))
        if ends is None:  # per (src, dst): the texts and names every item of the flow repeats
            ends = self._ends[(src, dst)] = (f"{src[0]}:{src[1]}", f"{dst[0]}:{dst[1]}", *self.names(src, dst))
        item = TimelineItem(t, *ends, proto, event, decrypted, stream)
        self.timeline.items.append(item)
        return item

    # -- packets --------------------------------------------------------------------------
    def packet(self, pkt: IpPacket) -> None:
        tl = self.timeline
        ts = pkt.ts
        if tl.t_start is None or ts < tl.t_start:
            tl.t_start = ts
        if tl.t_end is None or ts > tl.t_end:
            tl.t_end = ts
        flow = self._flows.get((pkt.src, pkt.sport, pkt.dst, pkt.dport))
        if flow is None:
            src, dst = (pkt.src, pkt.sport), (pkt.dst, pkt.dport)
            sn, dn = self.names(src, dst)
            cov = self.coverage(sn, dn, f"{pkt.src}:{pkt.sport}", f"{pkt.dst}:{pkt.dport}")
            flow = self._flows[(pkt.src, pkt.sport, pkt.dst, pkt.dport)] = (src, dst, sn, dn, cov)
        src, dst, sn, dn, cov = flow
        size = len(pkt.payload)
        tl.packets.append((ts, sn, dn, size))
        cov.packets += 1
        cov.bytes += size
        if pkt.proto == TCP:
            self.tcp.packet(pkt)
        elif pkt.proto == UDP:
            self._udp(pkt, src, dst)

    def _udp(self, pkt: IpPacket, src, dst) -> None:
        data = pkt.payload
        if not data or (data[0] in (10, 13) and not data.strip(b"\r\n")):
            return  # RFC 5626 4.4.1 CRLF keep-alive (the strip copies: only when it may be one)
        if self.plaintext is not None:
            self.plaintext.udp(src, dst, pkt.ts, data)
        stream = f"udp/{pkt.src}:{pkt.sport}>{pkt.dst}:{pkt.dport}"
        self.emit(pkt.ts, src, dst, "sip" if looks_like_sip(data) else "udp",
                  sip_event(data, "udp", f"{pkt.src}:{pkt.sport}"), stream=stream)

    def _open(self, conn: TcpConnection) -> _Conn:
        return _Conn(self, conn)

    # -- what a split analysis (capture.shards) overrides to merge shards in capture order --------
    def stream_name(self, conn: TcpConnection) -> str:
        return f"tcp/{conn.ident}"

    def tls_opened(self, tls: TlsConnection) -> None:
        self.tls.append(tls)

    def note(self, cov: LegCoverage, kind: str, reason: str) -> None:
        """A gap or an undecryptable connection on a leg (`kind`: "gaps" | "undecryptable")."""
        getattr(cov, kind).append(reason)

    def release_ready(self) -> None:
        """Dissect the held connections whose secrets have all been logged since."""
        if self.held:
            for conn in [c for c in self.held if c.keys_ready()]:
                conn.release()

    def release_all(self) -> None:
        """Dissect every held connection with the secrets there are (the end of a window)."""
        while self.held:
            self.held[0].release()

    def finish(self) -> Timeline:
        self.tcp.finish()
        # No packet comes after the end of the capture. The reassembler's reference back to us
        # (on_open) made the whole dissector, every connection's state included, cyclic garbage:
        # about 25,000 objects per offline analysis that only the cyclic GC freed, 5-9 % of its
        # CPU time (gc callbacks, issue 15). Without the cycle, reference counting frees them.
        self.tcp.on_open = None
        return self.timeline.finalize()

    def client_randoms(self) -> list[bytes]:
        return [t.client_random for t in self.tls if t.client_random]


def sip_event(data: bytes, transport: str, peer: str) -> SipReceived | Garbage:
    try:
        return SipReceived(message=parse_sip(data), raw=data, transport=transport, peer=peer)
    except Exception as exc:  # noqa: BLE001 - whatever the codec says, the bytes stay as evidence
        return Garbage(raw=data, reason=f"not a SIP message: {exc}", transport=transport)


class _Conn:
    """One TCP connection: picks TLS or plaintext on its first bytes."""

    def __init__(self, d: Dissector, conn: TcpConnection):
        self.d, self.conn = d, conn
        self.stream = d.stream_name(conn)
        self.tls: TlsConnection | None = None
        self.app = _App(self, decrypted=False)
        self.mode: str | None = None
        self.dead = [False, False]  # per direction (client, server): a hole stopped dissection
        self.first = {True: bytearray(), False: bytearray()}
        self.tls_error_reported = False
        self.holding: list[tuple] | None = None  # (method, args) held until the keys are logged
        self.held_bytes = 0
        self.hello = bytearray()  # the client's first bytes, up to its ClientHello's random

    # -- held until the TLS secrets are logged (Dissector.hold_for_keys) ---------------------------
    def _hold(self, call: tuple) -> bool:
        """Keep `call` for later if this connection is held; release it once its keys are in.
        (Its callers look at `holding` first: no call tuple is built for a connection not held,
        which is every connection of an offline analysis.)"""
        if self.holding is None:
            return False
        self.holding.append(call)
        if call[0] == "data":
            self.held_bytes += len(call[2])
            if call[1] and len(self.hello) < CLIENT_RANDOM_END:
                self.hello += call[2][:CLIENT_RANDOM_END - len(self.hello)]
        if self.held_bytes > MAX_HELD_BYTES or self.keys_ready():
            self.release()
        return True

    def keys_ready(self) -> bool:
        random = client_random_of(bytes(self.hello))
        if random is None:
            return False
        return random == b"" or has_all_keys(self.d.keylog, random)

    def release(self) -> None:
        held, self.holding = self.holding or [], None
        if self in self.d.held:
            self.d.held.remove(self)
        for name, *args in held:
            getattr(self, name)(*args)

    def ends(self, from_client: bool):
        c, s = self.conn.client, self.conn.server
        return (c, s) if from_client else (s, c)

    def emit(self, from_client: bool, t: float, proto: str, event, decrypted: bool = False) -> TimelineItem:
        src, dst = self.ends(from_client)
        return self.d.emit(t, src, dst, proto, event, decrypted=decrypted, stream=self.stream)

    def data(self, from_client: bool, data: bytes, ts: float) -> None:
        if self.holding is not None and self._hold(("data", from_client, data, ts)):
            return
        if self.dead[not from_client]:
            return
        if self.mode is None:
            buf = self.first[from_client]
            buf += data
            if len(buf) < 3:
                return
            self.mode = "tls" if looks_like_tls(bytes(buf)) else "plain"
            if self.mode == "tls":
                self.tls = TlsConnection(self.d.keylog)
                self.d.tls_opened(self.tls)
                self.app.decrypted = True
            data = bytes(buf)
            other = bytes(self.first[not from_client])
            self.first = {True: bytearray(), False: bytearray()}
            if self.tls is not None and self.d.hold_for_keys:  # from its first bytes on (see Dissector)
                self.holding = []
                self.d.held.append(self)
                if other:
                    self._hold(("data", not from_client, other, ts))
                self._hold(("data", from_client, data, ts))
                return
            if other:
                self._route(not from_client, other, ts)
        self._route(from_client, data, ts)

    def _plain(self, from_client: bool, data: bytes, ts: float) -> None:
        if self.d.plaintext is not None:
            self.d.plaintext.tcp(self.conn.client, self.conn.server, from_client, ts, data)

    def _route(self, from_client: bool, data: bytes, ts: float) -> None:
        if self.tls is None:
            self._plain(from_client, data, ts)
            self.app.data(from_client, data, ts)
            return
        for ev in self.tls.feed(from_client, data):
            if ev.kind == "data":
                self._plain(from_client, ev.data, ts)
                self.app.data(from_client, ev.data, ts)
            elif ev.kind == "alert":
                self.emit(from_client, ts, "tls", TlsAlertSeen(ev.detail, encrypted=self.tls.decrypted_any))
            elif ev.kind == "error" and not self.tls_error_reported:
                self.tls_error_reported = True
                self.emit(from_client, ts, "tls", Garbage(raw=ev.data[:MAX_GARBAGE], reason=f"TLS: {ev.detail}",
                                                          transport="tls"))

    def gap(self, from_client: bool, missing: int, ts: float) -> None:
        if self.holding is not None and self._hold(("gap", from_client, missing, ts)):
            return
        self.dead[not from_client] = True
        src, dst = self.ends(from_client)
        reason = f"TCP: {missing} bytes of {src[0]}:{src[1]} > {dst[0]}:{dst[1]} missing from the capture"
        self.emit(from_client, ts, "tcp", Garbage(raw=b"", reason=reason, transport="tcp"))
        sn, dn = self.d.names(src, dst)
        self.d.note(self.d.coverage(sn, dn, "", ""), "gaps", reason)

    def eof(self, from_client: bool, ts: float) -> None:
        if self.holding is not None and self._hold(("eof", from_client, ts)):
            return
        if self.dead[not from_client]:
            return
        if self.mode is None and self.first[from_client]:
            self.mode = "plain"
            self._plain(from_client, bytes(self.first[from_client]), ts)
            self.app.data(from_client, bytes(self.first[from_client]), ts)
        if self.tls is not None:
            d = self.tls.c if from_client else self.tls.s
            if d.buf:
                self.emit(from_client, ts, "tls", Garbage(raw=bytes(d.buf[:MAX_GARBAGE]),
                                                          reason="TLS: connection closed inside a record",
                                                          transport="tls"))
                d.buf.clear()
        self.app.eof(from_client, ts)

    def close(self, ts: float) -> None:
        if self.holding is not None and self._hold(("close", ts)):
            return
        try:
            self._close(ts)
        finally:
            # the reassembler never calls a closed connection again: break the _App -> _Conn
            # back reference, so both are freed by reference counting (see Dissector.finish)
            self.app.c = None

    def _close(self, ts: float) -> None:
        if self.d.plaintext is not None:
            self.d.plaintext.tcp_close(self.conn.client, self.conn.server, ts)
        if self.tls is None:
            return
        self.tls.finish()
        src, dst = self.conn.client, self.conn.server
        sn, dn = self.d.names(src, dst)
        cov = self.d.coverage(sn, dn, f"{src[0]}:{src[1]}", f"{dst[0]}:{dst[1]}")
        cov.tls_connections += 1
        if self.tls.undecryptable or self.tls.failed:
            self.d.note(cov, "undecryptable", f"{self.stream} {src[0]}:{src[1]} > {dst[0]}:{dst[1]}: {self.tls.status}")
            if not self.tls_error_reported:
                self.tls_error_reported = True
                self.emit(True, ts, "tls", Garbage(raw=b"", reason=f"TLS: {self.tls.status}", transport="tls"))
        else:
            cov.decrypted_connections += 1


class _App:
    """The application protocol of one connection (after TLS, if any): HTTP/1.1 (+ WebSocket) or SIP."""

    def __init__(self, conn: _Conn, decrypted: bool):
        self.c = conn
        self.decrypted = decrypted
        self.mode: str | None = None  # http | ws | sip | raw
        self.pending = {True: bytearray(), False: bytearray()}
        self.req = Http1Parser("request")
        self.resp = Http1Parser("response")
        self.requests: deque[HttpMessage] = deque()
        self.frames: dict[bool, FrameParser] = {}
        self.assemblers: dict[bool, MessageAssembler] = {}
        self.inflate: dict[bool, object] = {}
        self.deflate = False
        self.subprotocol: str | None = None
        self.sipbuf = {True: bytearray(), False: bytearray()}
        self.raw_kept = {True: 0, False: 0}

    @property
    def transport(self) -> str:
        return "tls" if self.decrypted else "tcp"

    def emit(self, fc: bool, t: float, proto: str, event) -> TimelineItem:
        return self.c.emit(fc, t, proto, event, self.decrypted)

    def data(self, fc: bool, data: bytes, ts: float) -> None:
        if self.mode is None:
            buf = self.pending[fc]
            buf += data
            head = bytes(buf[:DETECT_BYTES]).lstrip(b"\r\n")  # CRLF keep-alives may come first
            if _HTTP_START.match(head):
                self.mode = "http"
            elif _SIP_START.match(head):
                self.mode = "sip"
            elif b"\r\n" in head or len(buf) >= DETECT_BYTES:
                self.mode = "raw"
            else:
                return
            data = bytes(buf)
            self.pending[fc] = bytearray()
            other = bytes(self.pending[not fc])
            self.pending[not fc] = bytearray()
            if other:
                self._dispatch(not fc, other, ts)
        self._dispatch(fc, data, ts)

    def _dispatch(self, fc: bool, data: bytes, ts: float) -> None:
        if self.mode == "http":
            self._http(fc, data, ts)
        elif self.mode == "ws":
            self._ws(fc, data, ts)
        elif self.mode == "sip":
            self._sip_stream(fc, data, ts)
        else:
            self._raw(fc, data, ts, "unrecognised application protocol")

    def _raw(self, fc: bool, data: bytes, ts: float, reason: str) -> None:
        room = MAX_GARBAGE - self.raw_kept[fc]
        if room <= 0 or not data:
            return
        self.raw_kept[fc] += min(room, len(data))
        self.emit(fc, ts, self.transport, Garbage(raw=data[:room], reason=reason, transport=self.transport))

    # -- HTTP -----------------------------------------------------------------------------
    def _http(self, fc: bool, data: bytes, ts: float) -> None:
        if fc:
            for m in self.req.feed(data):
                self._request(m, ts)
            if self.mode == "ws":
                return
        else:
            for m in self.resp.feed(data):
                self._response(m, ts)
                if self.mode == "ws":
                    return

    def _request(self, m: HttpMessage | HttpError, ts: float) -> None:
        if isinstance(m, HttpError):
            self.emit(True, ts, "http", Garbage(raw=m.raw[:MAX_GARBAGE], reason=f"HTTP: {m.reason}",
                                                transport=self.transport))
            return
        self.requests.append(m)
        self.resp.expect_response(m.method)
        if m.upgrade == "websocket":
            self.emit(True, ts, "ws", WsHandshake(url=m.target, status=None, request_headers=m.headers,
                                                  subprotocol=m.header("Sec-WebSocket-Protocol")))
        else:
            self.emit(True, ts, "http", HttpRequestSeen(m.method, m.target, m.headers, m.body, m.version,
                                                        m.problems))

    def _response(self, m: HttpMessage | HttpError, ts: float) -> None:
        if isinstance(m, HttpError):
            self.emit(False, ts, "http", Garbage(raw=m.raw[:MAX_GARBAGE], reason=f"HTTP: {m.reason}",
                                                 transport=self.transport))
            return
        final = m.status is not None and (m.status >= 200 or m.status == 101)
        req = self.requests.popleft() if final and self.requests else None
        if req is not None and req.upgrade == "websocket":
            sub = m.header("Sec-WebSocket-Protocol")
            self.emit(False, ts, "ws", WsHandshake(url=req.target, status=m.status, headers=m.headers,
                                                   request_headers=req.headers, subprotocol=sub, body=m.body))
            if m.status == 101:
                self._switch_to_ws(sub, m, ts)
            else:
                for r in self.req.upgrade_refused():
                    self._request(r, ts)
            return
        self.emit(False, ts, "http", HttpExchange(
            method=req.method if req else m.request_method, url=req.target if req else "",
            request_headers=req.headers if req else [], request_body=req.body if req else b"",
            status=m.status, reason=m.reason, headers=m.headers, body=m.body))

    def _switch_to_ws(self, sub: str | None, m: HttpMessage, ts: float) -> None:
        self.mode, self.subprotocol = "ws", (sub or "").strip().lower() or None
        exts = ",".join(m.header_values("Sec-WebSocket-Extensions")).lower()
        self.deflate = "permessage-deflate" in exts
        no_takeover = {True: "client_no_context_takeover" in exts, False: "server_no_context_takeover" in exts}
        for fc in (True, False):
            self.frames[fc] = FrameParser(require_mask=fc, allowed_rsv=4 if self.deflate else 0)
            self.assemblers[fc] = MessageAssembler()
            self.inflate[fc] = (no_takeover[fc], zlib.decompressobj(-15)) if self.deflate else None
        server_rest, client_rest = self.resp.take_upgraded(), self.req.switch()
        if server_rest:
            self._ws(False, server_rest, ts)
        if client_rest:
            self._ws(True, client_rest, ts)

    # -- WebSocket ------------------------------------------------------------------------
    def _ws(self, fc: bool, data: bytes, ts: float) -> None:
        for f in self.frames[fc].feed(data):
            if isinstance(f, FrameError):
                if f.frame is None:
                    self.emit(fc, ts, "ws", Garbage(raw=f.raw[:MAX_GARBAGE], reason=f"WebSocket: {f.reason}",
                                                    transport="ws"))
                else:
                    self.emit(fc, ts, "ws", WsFrameSeen(f.frame, error=f"{f.reason} ({f.ref})"))
                continue
            self._frame(fc, f, ts)

    def _frame(self, fc: bool, f: Frame, ts: float) -> None:
        ev = WsFrameSeen(f)
        self.emit(fc, ts, "ws", ev)
        result = self.assemblers[fc].feed(f)
        if isinstance(result, Close):
            ev.close = result
            ev.error = result.error
        elif isinstance(result, FrameError):
            ev.error = f"{result.reason} ({result.ref})"
        elif isinstance(result, Message):
            payload = result.payload
            if result.compressed and self.deflate:
                payload = self._inflate(fc, payload)
                if payload is None:
                    ev.error = "permessage-deflate data does not inflate (RFC 7692 7.2.2)"
                    return
                if result.opcode == 1 and not _utf8(payload):
                    ev.error = "text message is not valid UTF-8 (RFC 6455 8.1)"
                    return
            if self.subprotocol == "sip" or looks_like_sip(payload):
                ev.carried = "sip"
                transport = "wss" if self.decrypted else "ws"
                src, _ = self.c.ends(fc)
                item_ev = sip_event(payload, transport, f"{src[0]}:{src[1]}")
                self.emit(fc, ts, "sip", item_ev)

    def _inflate(self, fc: bool, payload: bytes) -> bytes | None:
        """RFC 7692 7.2.2: append 0x00 0x00 0xff 0xff and inflate (raw DEFLATE)."""
        no_takeover, inflater = self.inflate[fc]
        if no_takeover:
            inflater = zlib.decompressobj(-15)
        try:
            out = inflater.decompress(payload + b"\x00\x00\xff\xff")
        except zlib.error:
            return None
        if not no_takeover:
            self.inflate[fc] = (no_takeover, inflater)
        return out

    # -- SIP over a stream (RFC 3261 18.3: Content-Length frames the message) ---------------
    def _sip_stream(self, fc: bool, data: bytes, ts: float) -> None:
        buf = self.sipbuf[fc]
        buf += data
        src, _ = self.c.ends(fc)
        while True:
            while buf[:2] == b"\r\n":  # RFC 5626 4.4.1 CRLF keep-alives
                del buf[:2]
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                if len(buf) > MAX_GARBAGE:
                    self._raw(fc, bytes(buf), ts, "SIP header section too long or not SIP")
                    buf.clear()
                return
            head = bytes(buf[:end + 4])
            m = _CONTENT_LENGTH.search(head)
            if m is None:  # the message is kept as evidence; framing goes on after its header section
                del buf[:end + 4]
                self.emit(fc, ts, "sip", Garbage(raw=head, reason="SIP: no Content-Length on a stream (RFC 3261 18.3)",
                                                 transport="tls" if self.decrypted else "tcp"))
                continue
            length = int(m.group(1))
            if len(buf) < end + 4 + length:
                return
            raw = bytes(buf[:end + 4 + length])
            del buf[:end + 4 + length]
            self.emit(fc, ts, "sip", sip_event(raw, "tls" if self.decrypted else "tcp", f"{src[0]}:{src[1]}"))

    def eof(self, fc: bool, ts: float) -> None:
        if self.mode is None and self.pending[fc]:
            self.mode = "raw"
            self._raw(fc, bytes(self.pending[fc]), ts, "unrecognised application protocol")
        elif self.mode == "http":
            for m in (self.req if fc else self.resp).feed_eof():
                (self._request if fc else self._response)(m, ts)
        elif self.mode == "ws" and self.frames[fc].pending:
            self.emit(fc, ts, "ws", Garbage(raw=self.frames[fc].take_rest(),
                                            reason="WebSocket: connection closed inside a frame", transport="ws"))
        elif self.mode == "sip" and self.sipbuf[fc].strip(b"\r\n"):
            self._raw(fc, bytes(self.sipbuf[fc]), ts, "SIP: connection closed inside a message")
            self.sipbuf[fc].clear()


def _utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def dissect(packets: Iterable[IpPacket], pixit: dict, keylog: KeyLog) -> tuple[Timeline, Dissector]:
    d = Dissector(pixit, keylog)
    for pkt in packets:
        d.packet(pkt)
    return d.finish(), d
