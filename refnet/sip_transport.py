"""asyncio SIP transport for the CSCFs and the WSF's core side: UDP and TCP on one host:port.

Only bytes move here; parsing and serialising are refnet's own SIP layer (refnet.sip).
What every node needs and nothing node-specific:
- RFC 3261 18: UDP datagrams and TCP streams (framed by Content-Length, StreamFramer), both
  bounded to 64 KiB per message; outgoing TCP connections are reused per destination and bound
  to the node's own address, so captures attribute every leg by address.
- RFC 3261 8.2.6 responses built from a request (`make_response`), including the 400 whose
  reason phrase names what is wrong with a malformed request (`check`, from refnet.sip.validate).
- RFC 5626 3.5.1 keep-alives: a CRLFCRLF ping on a stream is answered with a CRLF pong.
A handler error never stops the node: it is logged and the request gets a 500.
"""

from __future__ import annotations

import asyncio
import logging
import re
import signal
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from . import sip, wire_style
from .sip import FramingFailure, Request, Response, StreamFramer, parse_via

log = logging.getLogger("refnet.sip")

MAX_MESSAGE = wire_style.MAX_MESSAGE  # the default; wire_style.max_message() is what applies
TCP_IDLE_S = 120.0  # an inbound or outbound TCP connection unused this long is closed
MAX_TCP_CONNECTIONS = 512
CONNECT_TIMEOUT_S = 3.0
UDP_RCVBUF = 4 * 1024 * 1024  # absorbs bursts of the 500 REGISTER/s benchmark


@dataclass(eq=False)
class Source:
    """Where a message came from, and so where a locally generated response goes back."""

    transport: str  # "UDP" | "TCP"
    host: str
    port: int
    conn: _TcpConnection | None = None


Handler = Callable[[Request | Response, Source], Awaitable[None]]


# -- responses (RFC 3261 8.2.6) -----------------------------------------------------------------

_REASON_UNSAFE = re.compile(r"[\x00-\x1f\x7f]")


def reason_phrase(text: str, limit: int = 160) -> str:
    """Reason-Phrase = *(reserved / unreserved / escaped / UTF8-NONASCII / UTF8-CONT / SP / HTAB):
    no CR, LF or other controls; kept short."""
    text = _REASON_UNSAFE.sub(" ", text).strip()
    return text[:limit] or "Bad Request"


def stateless_tag(req: Request) -> str:
    """RFC 3261 8.2.7: a stateless UAS gives the same To tag to a retransmitted request."""
    seed = "|".join([req.call_id or "", req.headers.get("From") or "", req.branch or "", str(req.cseq)])
    return wire_style.derived_tag(seed)


def make_response(req: Request, status: int, reason: str, headers: list[tuple[str, str]] = (),
                  body: bytes = b"") -> Response:
    """8.2.6.2: Via (all, in order), From, To (with a tag), Call-ID and CSeq copied from the request,
    then `headers`; Content-Length is added when serialised."""
    resp = sip.make_response(req, status, reason_phrase(reason), to_tag=stateless_tag(req))
    for name, value in headers:
        resp.headers.add(name, value)
    resp.body = body
    return resp


def can_answer(msg: Request | Response | None) -> bool:
    """A request (not ACK) with a Via to send the answer along. 8.2.6.2 copies From, To, Call-ID
    and CSeq when present; a request missing them still gets its 400 (RFC 4475 3.3.1: a message
    without Call-ID, From or To is answered 400, not dropped), which names what is missing."""
    if not isinstance(msg, Request) or msg.method == "ACK":
        return False
    return "Via" in msg.headers


def check(data: bytes, *, stream: bool = False) -> tuple[Request | Response | None, Response | None]:
    """(message, None) for a well-formed message; (None, 400 or None) for a malformed one.

    Only what refnet.sip.validate calls a problem rejects a message (an RFC 2543 branch passes).
    The 400's reason phrase names what is wrong.

    Responses are only parsed: what relays them back (RFC 3261 16.7, 17.1.3) is the top Via's
    branch and the CSeq, and a full check of, say, a 200 OK listing 50 Contacts costs milliseconds
    on every hop. Nothing answers a response, so a stricter check could only drop it."""
    if data.lstrip(b"\r\n")[:4].upper() == b"SIP/":
        try:
            resp = sip.parse(data)
        except sip.SipError:
            return None, None
        ok = isinstance(resp, Response) and resp.branch is not None and resp.cseq is not None
        return (resp if ok else None), None
    msg, problems = sip.validate(data, stream=stream)
    if msg is not None and not problems:
        return msg, None
    if not can_answer(msg):
        return None, None
    what = "; ".join(problems[:2])
    return None, make_response(msg, 400, f"Bad Request: {what}")


def stamp_via(value: str, host: str, port: int) -> str:
    """RFC 3261 18.2.1 `received` and RFC 3581 4 `rport`: where the request really came from."""
    via = parse_via(value)
    if "rport" in via.params:
        via.params["rport"] = str(port)
        via.params["received"] = host  # RFC 3581 4: always, when rport is present
    elif via.host != host:
        via.params["received"] = host
    return str(via)


def replace_first(headers: sip.Headers, name: str, value: str) -> None:
    """Replace the first value of a list header (e.g. the top Via), even in a combined line."""
    headers.remove_first(name)
    headers.prepend(name, value)


# -- transport ----------------------------------------------------------------------------------

class SipTransport:
    """UDP and TCP listeners on one host:port (port 0: any free port, the same for both)."""

    def __init__(self, host: str, port: int, handler: Handler, name: str = "sip"):
        self.host = host
        self.port = port
        self.handler = handler
        self.name = name
        self._udp: asyncio.DatagramTransport | None = None
        self._server: asyncio.base_events.Server | None = None
        self._conns: dict[tuple[str, int], _TcpConnection] = {}
        self._connecting: dict[tuple[str, int], asyncio.Future] = {}
        self._tasks: set[asyncio.Task] = set()
        self._sweeper: asyncio.Task | None = None

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        for _attempt in range(20):
            server = await loop.create_server(lambda: _TcpConnection(self), self.host, self.port,
                                              reuse_address=True)
            port = server.sockets[0].getsockname()[1]
            try:
                sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, UDP_RCVBUF)
                sock.bind((self.host, port))
            except OSError:
                sock.close()
                server.close()
                if self.port:
                    raise
                continue  # the ephemeral TCP port is taken for UDP: try another
            self._udp, _ = await loop.create_datagram_endpoint(lambda: _Udp(self), sock=sock)
            self._server, self.port = server, port
            break
        else:
            raise OSError(f"no port free for both UDP and TCP on {self.host}")
        self._sweeper = asyncio.create_task(self._sweep())

    async def close(self) -> None:
        if self._sweeper:
            self._sweeper.cancel()
        for conn in list(self._conns.values()):
            conn.close()
        if self._udp:
            self._udp.close()
        if self._server:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()

    # -- sending -----------------------------------------------------------------------------
    async def send(self, data: bytes, transport: str, host: str, port: int) -> None:
        """Send to host:port over UDP or TCP (reusing a connection to or from that peer).

        Raises OSError when a TCP connection cannot be made (RFC 3261 18.4: a transport error)."""
        if transport.upper() == "UDP":
            self.send_udp(data, host, port)
            return
        conn = await self._connection(host, port)
        conn.write(data)

    def send_udp(self, data: bytes, host: str, port: int) -> None:
        if self._udp is not None and not self._udp.is_closing():
            self._udp.sendto(wire_style.restyle(data), (host, port))

    def reply(self, source: Source, data: bytes) -> None:
        """Back where the request came from: same TCP connection, or the UDP source address
        (RFC 3581 behaviour for everyone: the source address is the one that is known to work)."""
        if source.transport == "TCP":
            if source.conn is not None:
                source.conn.write(data)
        else:
            self.send_udp(data, source.host, source.port)

    def connection_to(self, host: str, port: int) -> _TcpConnection | None:
        conn = self._conns.get((host, port))
        return conn if conn is not None and not conn.closed else None

    async def _connection(self, host: str, port: int) -> _TcpConnection:
        key = (host, port)
        conn = self.connection_to(host, port)
        if conn is not None:
            return conn
        pending = self._connecting.get(key)
        if pending is None:
            pending = asyncio.ensure_future(self._connect(host, port))
            self._connecting[key] = pending
            pending.add_done_callback(lambda _f: self._connecting.pop(key, None))
        return await asyncio.shield(pending)

    async def _connect(self, host: str, port: int) -> _TcpConnection:
        loop = asyncio.get_running_loop()
        _transport, conn = await asyncio.wait_for(
            loop.create_connection(lambda: _TcpConnection(self), host, port, local_addr=(self.host, 0)),
            CONNECT_TIMEOUT_S)
        return conn

    # -- receiving ---------------------------------------------------------------------------
    def _received(self, data: bytes, source: Source) -> None:
        try:
            msg, rejection = check(data)
        except Exception:  # a codec bug must not take the node down
            log.exception("%s: codec failed on %d bytes", self.name, len(data))
            return
        if rejection is not None:
            self.reply(source, rejection.serialize())
        if msg is not None:
            self._spawn(self._dispatch(msg, source))

    def _spawn(self, coro) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _dispatch(self, msg: Request | Response, source: Source) -> None:
        try:
            await self.handler(msg, source)
        except Exception as exc:  # keep serving everyone else
            log.exception("%s: handler failed", self.name)
            if can_answer(msg):
                try:
                    self.reply(source, make_response(msg, 500, f"Server Internal Error: {exc}").serialize())
                except Exception:
                    log.exception("%s: could not answer 500", self.name)

    async def _sweep(self) -> None:
        while True:
            await asyncio.sleep(TCP_IDLE_S / 4)
            now = time.monotonic()
            for conn in list(self._conns.values()):
                if now - conn.last_used > TCP_IDLE_S:
                    conn.close()


class _Udp(asyncio.DatagramProtocol):
    def __init__(self, owner: SipTransport):
        self.owner = owner

    def datagram_received(self, data: bytes, addr) -> None:
        if len(data) > wire_style.max_message() or not data.strip(b"\r\n\0 \t"):
            return  # oversize, or a keep-alive (RFC 5626 4.4.1 CRLF over UDP)
        self.owner._received(data, Source("UDP", addr[0], addr[1]))

    def error_received(self, exc: Exception) -> None:  # ICMP port unreachable from a gone peer
        log.debug("udp error: %s", exc)


class _TcpConnection(asyncio.Protocol):
    """One TCP connection, inbound or outbound; messages framed by refnet.sip's StreamFramer."""

    def __init__(self, owner: SipTransport):
        self.owner = owner
        self.parser = StreamFramer(max_size=wire_style.max_message())
        self.transport: asyncio.Transport | None = None
        self.peer: tuple[str, int] = ("", 0)
        self.closed = False
        self.last_used = time.monotonic()

    def connection_made(self, transport) -> None:
        self.transport = transport
        peer = transport.get_extra_info("peername")
        self.peer = (peer[0], peer[1])
        if len(self.owner._conns) >= MAX_TCP_CONNECTIONS:
            transport.abort()
            return
        self.owner._conns[self.peer] = self

    def connection_lost(self, exc) -> None:
        self.closed = True
        if self.owner._conns.get(self.peer) is self:
            del self.owner._conns[self.peer]

    def write(self, data: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.last_used = time.monotonic()
            self.transport.write(wire_style.restyle(data))

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def data_received(self, data: bytes) -> None:
        self.last_used = time.monotonic()
        if self.parser.buffered == 0 and b"\r\n\r\n" in data and not data.strip(b"\r\n"):
            self.write(b"\r\n")  # RFC 5626 3.5.1: CRLFCRLF ping -> CRLF pong
            return
        source = Source("TCP", self.peer[0], self.peer[1], self)
        for item in self.parser.feed(data):
            if not isinstance(item, FramingFailure):
                # framed by Content-Length; now the same checks as a datagram, plus 18.3
                msg, rejection = check(item, stream=True)
                if rejection is not None:
                    self.write(rejection.serialize())
                elif msg is not None:
                    self.owner._spawn(self.owner._dispatch(msg, source))
                continue
            head, _problems = sip.validate(item.head, stream=True)
            if "exceeds" in item.reason:  # the parser skips it by its Content-Length: still in step
                if can_answer(head):
                    self.write(make_response(head, 513, f"Message Too Large: {item.reason}").serialize())
                continue
            if can_answer(head):
                self.write(make_response(head, 400, f"Bad Request: {item.reason}").serialize())
            if "Content-Length" in item.reason or "end of header" in item.reason:
                # RFC 3261 18.3: without a usable Content-Length the stream cannot be framed any more
                log.info("closing TCP %s:%d: %s", self.peer[0], self.peer[1], item.reason)
                self.close()
                return


# -- process plumbing shared by the nodes ---------------------------------------------------------

def announce(node: str, host: str, port: int) -> None:
    """The one line refnet.launcher waits for."""
    print(f"listening {node} {host}:{port}", flush=True)


def run_until_signal(main: Callable[[asyncio.Event], Awaitable[None]]) -> None:
    """Run `main(stop)` in a fresh event loop; SIGTERM and SIGINT set `stop`."""

    async def runner() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            try:
                loop.add_signal_handler(sig, stop.set)
            except (ValueError, RuntimeError, NotImplementedError):  # not the main thread
                pass
        await main(stop)

    asyncio.run(runner())


async def serve_transport(node: str, transport: SipTransport, stop: asyncio.Event) -> None:
    await transport.start()
    announce(node, transport.host, transport.port)
    try:
        await stop.wait()
    finally:
        await transport.close()
