"""WebSocket driver (RFC 6455, SIP over WebSocket per RFC 7118), on websocket-client.

The driver opens the TCP/TLS socket itself (harness context, so the key log is written; bounded
connect) and hands it to websocket-client for the opening handshake and framing. The socket
records the handshake bytes, so a refused or malformed handshake is reported with its status,
every header line and the body, exactly as received.
"""

from __future__ import annotations

import http.client
import io
import select
import ssl
import time
from collections.abc import Mapping, Sequence
from urllib.parse import urlsplit, urlunsplit

import requests
import websocket as wsc  # websocket-client
from websocket import _handshake as _wsc_handshake

from conformance.codec import sip
from conformance.codec.websocket import OPCODES_BY_NAME, build_frame, parse_close
from conformance.drivers import TransportError
from conformance.drivers.tls import MESSAGE_LIMIT, ReceiveLimit, TranscriptSSLSocket, open_tcp
from conformance.events import Garbage, Nothing, SipReceived, WsClosed, WsHandshake
from conformance.run import deadline


def connect(
    url: str,
    *,
    ssl_context: ssl.SSLContext | None = None,
    subprotocols: Sequence[str] = ("sip",),
    cookie: str | None = None,
    cookie_jar: requests.cookies.RequestsCookieJar | None = None,
    headers: Mapping[str, str | None] | None = None,
    timeout_s: float = 3.0,
    server_hostname: str | None = None,
    source_address: tuple[str, int] | None = None,
) -> tuple[WsConnection | None, WsHandshake]:
    """Open a WebSocket: (connection, handshake); the connection is None when the handshake failed.

    subprotocols: offered in Sec-WebSocket-Protocol ([] offers none).
    cookie: a Cookie header value to send (HttpDriver.cookie_header); or cookie_jar: the test
    case's HTTP jar, whose cookies for this URL are sent (ws -> http, wss -> https for Secure and
    domain matching).
    headers: extra handshake headers; a value replaces the one websocket-client would send
    (Origin, Host, Sec-WebSocket-Key, ...), None suppresses it where websocket-client allows.
    Raises TransportError when nothing answered (refused, silent until the deadline); an answer
    that is not a valid handshake (TLS refused, garbage, a close, a wrong accept key) is returned
    as a handshake with its error and the bytes received.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("ws", "wss"):
        raise ValueError(f"not a WebSocket URL: {url}")
    secure = parts.scheme == "wss"
    host = parts.hostname or ""
    port = parts.port or (443 if secure else 80)
    options = _handshake_options(url, subprotocols, cookie_jar, headers)
    if cookie:
        options["cookie"] = cookie

    if deadline.current() is None:  # library use: the handshake gets a deadline of its own
        with deadline.run_within(timeout_s, connect_s=timeout_s):
            return _connect(url, host, port, secure, ssl_context, server_hostname, timeout_s, source_address,
                            options)
    return _connect(url, host, port, secure, ssl_context, server_hostname, timeout_s, source_address, options)


def _connect(url, host, port, secure, ssl_context, server_hostname, timeout_s, source_address, options):
    step = deadline.current()
    try:
        sock = _open_socket(host, port, secure, ssl_context, server_hostname or host, timeout_s, source_address)
    except TransportError as exc:
        if exc.kind != "tls":
            raise
        # the SUT answered with a certificate or TLS message the harness refuses: observed, its fault
        return None, WsHandshake(url=url, status=None, error=f"TLS handshake failed: {exc.detail}")
    sock.start_transcript()
    ws = wsc.WebSocket(skip_utf8_validation=True, enable_multithread=True)
    failure: Exception | None = None
    _wsc_handshake.CookieJar.jar.clear()  # a module-global jar would leak cookies between cases
    try:
        ws.connect(url, socket=sock, timeout=max(step.remaining(), 0.001), redirect_limit=0, **options)
    except wsc.WebSocketTimeoutException as exc:
        sent, received = sock.stop_transcript()
        sock.close()
        if not received:  # silence: nothing observed
            raise TransportError("timeout", f"{url}: no handshake answer within the step deadline of "
                                 f"{step.total_s:g} s") from exc
        handshake = _handshake_event(url, sent, received, exc)
        handshake.error = f"incomplete handshake answer when the step deadline of {step.total_s:g} s passed"
        return None, handshake
    except (wsc.WebSocketException, OSError) as exc:
        failure = exc
    finally:
        _wsc_handshake.CookieJar.jar.clear()
    sent, received = sock.stop_transcript()
    handshake = _handshake_event(url, sent, received, failure)
    if failure is not None:
        sock.close()
        return None, handshake
    peer = f"{host}:{port}"
    return WsConnection(ws, handshake, transport="wss" if secure else "ws", peer=peer), handshake


def _handshake_options(url, subprotocols, cookie_jar, headers) -> dict:
    options: dict = {"subprotocols": list(subprotocols) or None}
    extra: dict[str, str] = {}
    for name, value in (headers or {}).items():
        low = name.lower()
        if low in ("origin", "host"):  # websocket-client writes these itself unless told
            if value is None:
                options[f"suppress_{low}"] = True
            else:
                options[low] = str(value)
        elif low == "connection":
            if value is not None:
                options["connection"] = f"Connection: {value}"
        elif value is not None:
            extra[name] = str(value)
    if cookie_jar is not None:
        http_url = urlunsplit(("https" if url.startswith("wss") else "http",) + tuple(urlsplit(url))[1:])
        probe = requests.Request("GET", http_url).prepare()
        cookie = requests.cookies.get_cookie_header(cookie_jar, probe)
        if cookie:
            options["cookie"] = cookie
    if extra:
        options["header"] = extra  # a dict: websocket-client then honours Sec-WebSocket-Key/-Version
    return options


def _open_socket(host, port, secure, ctx, server_hostname, timeout_s, source_address):
    try:
        raw = open_tcp(host, port, timeout_s, source_address)
    except OSError as exc:
        raise TransportError("connect", f"{host}:{port}: {exc}") from exc
    if not secure:
        return raw
    if ctx is None:
        raise ValueError("wss needs the harness ssl_context")
    try:
        # SNI only for names (RFC 6066 3); the certificate is checked against the IP SAN otherwise
        tls = ctx.wrap_socket(raw, server_hostname=server_hostname)
    except (ssl.SSLError, ssl.CertificateError, OSError) as exc:
        raw.close()
        kind = "timeout" if isinstance(exc, TimeoutError) else "tls"
        raise TransportError(kind, f"{host}:{port}: TLS handshake: {exc}") from exc
    if not isinstance(tls, TranscriptSSLSocket):
        raise TypeError("ssl_context must come from conformance.drivers.tls.client_context")
    return tls


def _parse_head(data: bytes) -> tuple[str, list[tuple[str, str]], bytes] | None:
    head, sep, body = data.partition(b"\r\n\r\n")
    if not head:
        return None
    start, _, fields = head.partition(b"\r\n")
    try:
        msg = http.client.parse_headers(io.BytesIO(fields + b"\r\n\r\n"))
    except http.client.HTTPException:  # garbage or too many header lines: no header section to show
        return start.decode("latin-1"), [], body
    return start.decode("latin-1"), [(k, v) for k, v in msg.items()], body


def _handshake_event(url: str, sent: bytes, received: bytes, failure: Exception | None) -> WsHandshake:
    request = _parse_head(sent)
    response = _parse_head(received)
    status: int | None = None
    resp_headers: list[tuple[str, str]] = []
    body = b""
    if response is not None:
        status_line, resp_headers, body = response
        pieces = status_line.split(" ", 2)
        if len(pieces) >= 2 and pieces[1].isdigit():
            status = int(pieces[1])
    if status is None and isinstance(failure, wsc.WebSocketBadStatusException):
        status = failure.status_code
        resp_headers = list((failure.resp_headers or {}).items())
        body = failure.resp_body or b""
    # what the server claims, also when websocket-client rejected the handshake (evidence)
    subprotocol = next((v.strip() for k, v in resp_headers if k.lower() == "sec-websocket-protocol"), None)
    return WsHandshake(
        url=url,
        status=status,
        headers=resp_headers,
        request_headers=request[1] if request else [],
        subprotocol=subprotocol,
        body=body,
        error="" if failure is None else f"handshake failed: {failure}".split(" -+-+- ")[0],
        # the raw bytes whenever the answer was not a usable handshake: a drip-fed status line
        # ("HTTP/1.1 101 Swi" at the deadline) parses to a status but is still the evidence
        raw=received if status is None or failure is not None else b"",
    )


SEND_CHUNK = 16384


def _peer_spoke(sock) -> bool:
    """Data waits to be read (TLS-buffered or on the socket); never blocks."""
    if getattr(sock, "pending", None) is not None and sock.pending():
        return True
    try:
        readable, _, _ = select.select([sock], [], [], 0)
    except (OSError, ValueError):
        return True
    return bool(readable)


def _data_started(raw: bytes, ws) -> bool:
    """Whether the bytes since the last complete frame began a data message (RFC 6455 5.2
    opcodes 0-2) or fragments are pending: an unfinished message, not silence. A partial ping
    at the deadline is not a message."""
    pending = getattr(getattr(ws, "cont_frame", None), "recving_frames", None)
    return pending is not None or (bool(raw) and raw[0] & 0x0F in (0, 1, 2))


def decode_sip(data: bytes, transport: str, peer: str) -> SipReceived | Garbage:
    """One SIP message that arrived whole (a WebSocket message, a datagram): a cut one is garbage."""
    cut = sip.truncation(data)
    if cut is not None:
        return Garbage(raw=data, reason=f"not a complete SIP message: {cut}", transport=transport)
    try:
        message = sip.parse(data)
    except sip.SipParseError as exc:
        return Garbage(raw=data, reason=f"not a SIP message: {exc}", transport=transport)
    return SipReceived(message=message, raw=data, transport=transport, peer=peer)


class WsConnection:
    """An open WebSocket: raw sends for negative cases, bounded receives decoded as SIP."""

    def __init__(self, ws: wsc.WebSocket, handshake: WsHandshake, *, transport: str, peer: str):
        self._ws = ws
        self.handshake = handshake
        self.transport = transport
        self.peer = peer
        self.closed: WsClosed | None = None
        self.alive = True  # the peer answered the opening handshake

    @property
    def subprotocol(self) -> str | None:
        return self.handshake.subprotocol

    def send_text(self, text: str) -> None:
        """One text message in one masked frame (RFC 7118 5: one SIP message per WebSocket message).

        Text decoded with errors="surrogateescape" goes out as the original bytes (negative cases).
        """
        self.send_frame("text", text.encode("utf-8", "surrogateescape"))

    def send_frame(self, opcode: int | str = "text", payload: bytes | str = b"", *, masked: bool = True,
                   fin: bool = True, rsv: int = 0) -> None:
        """One frame as given: unmasked, unfinished, reserved opcodes included (RFC 6455 5.2)."""
        if isinstance(opcode, str):
            if opcode not in OPCODES_BY_NAME:
                raise ValueError(f"unknown opcode {opcode!r}: {', '.join(OPCODES_BY_NAME)} or a number 0-15")
            opcode = OPCODES_BY_NAME[opcode]
        data = build_frame(payload, opcode, fin=fin, rsv=rsv, mask=masked)
        try:
            with self._ws.lock:
                sock = self._ws.sock
                for i in range(0, len(data), SEND_CHUNK):
                    # A peer refusing a large message (close 1009) answers before it is all sent;
                    # sending on would make its TCP stack reset the connection and drop that close
                    # frame unread. So a large frame goes in chunks, and stops when the peer speaks.
                    if i and _peer_spoke(sock):
                        return
                    sock.sendall(data[i:i + SEND_CHUNK])
                    if len(data) > SEND_CHUNK:
                        time.sleep(0.005)
        except (OSError, AttributeError) as exc:  # sock None once websocket-client saw the close
            raise TransportError("closed", f"{self.peer}: {exc}") from exc

    def recv(self, timeout_s: float) -> SipReceived | Garbage | WsClosed | Nothing:
        """The next data message or the close, within the step deadline (or timeout_s when no step
        deadline is active); pings are answered on the way, fragments reassembled, both bounded:
        the deadline covers them all, and one message may take at most MESSAGE_LIMIT bytes."""
        if self.closed is not None:
            return self.closed
        if deadline.current() is None:
            with deadline.run_within(timeout_s):
                return self._recv()
        return self._recv()

    def _recv(self) -> SipReceived | Garbage | WsClosed | Nothing:
        step = deadline.current()
        start = step.clock.now()
        mark = step.mark()

        def waited() -> Nothing:
            return Nothing(waited_ms=(step.clock.now() - start) * 1000.0, peer_alive=True)

        sock = self._ws.sock
        while True:
            if step.expired():
                return waited()
            if sock is not None:
                sock.recv_budget = MESSAGE_LIMIT + 16 * 1024  # payload plus frame headers
            try:
                opcode, frame = self._ws.recv_data_frame(control_frame=True)
            except wsc.WebSocketTimeoutException:
                raw = step.received_since(mark)
                if _data_started(raw, self._ws):  # a data message began (fragments, a partial frame)
                    return Garbage(raw=raw, reason="no complete WebSocket message when the step deadline of "
                                   f"{step.total_s:g} s passed", transport=self.transport)
                return waited()
            except ReceiveLimit as exc:
                self.abort()
                return Garbage(raw=step.received_since(mark), reason=str(exc), transport=self.transport)
            except wsc.WebSocketProtocolException as exc:
                return Garbage(raw=step.received_since(mark), reason=f"WebSocket protocol error: {exc}",
                               transport=self.transport)
            except (wsc.WebSocketConnectionClosedException, OSError, AttributeError) as exc:
                self.closed = WsClosed(None, f"connection closed without a close frame ({exc})")
                return self.closed
            finally:
                if sock is not None:
                    sock.recv_budget = None
            if opcode == wsc.ABNF.OPCODE_CLOSE:
                close = parse_close(frame.data)
                self.closed = WsClosed(close.code, close.reason)
                return self.closed
            if opcode in (wsc.ABNF.OPCODE_TEXT, wsc.ABNF.OPCODE_BINARY):
                return self._decode(bytes(frame.data), text=opcode == wsc.ABNF.OPCODE_TEXT)
            mark = step.mark()  # a ping (answered by websocket-client) or pong: wait on within the deadline

    def _decode(self, data: bytes, *, text: bool) -> SipReceived | Garbage:
        if text:
            try:
                data.decode("utf-8")
            except UnicodeDecodeError as exc:
                return Garbage(raw=data, reason=f"text frame is not UTF-8 (RFC 6455 5.6): {exc}",
                               transport=self.transport)
        return decode_sip(data, self.transport, self.peer)

    def close(self, code: int = 1000, reason: str = "", timeout_s: float = 2.0) -> WsClosed | None:
        """Send a close frame and wait (bounded) for the peer's; returns the peer's close if seen."""
        if self.closed is None:
            try:
                self._ws.close(status=code, reason=reason.encode("utf-8"), timeout=timeout_s)
            except (wsc.WebSocketException, OSError, ValueError):
                pass
            frame = self._ws.close_frame
            if frame is not None:
                close = parse_close(frame.data)
                self.closed = WsClosed(close.code, close.reason)
            else:
                self.closed = WsClosed(None, "no close frame from the peer")
        self._ws.shutdown()
        return self.closed

    def abort(self) -> None:
        """Drop the TCP connection without a close frame."""
        self._ws.shutdown()
        self.closed = self.closed or WsClosed(None, "closed by the harness")
