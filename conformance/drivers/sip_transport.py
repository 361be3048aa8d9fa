"""SIP over UDP and TCP (RFC 3261 18): client sockets that send bytes and return typed events.

UDP: one datagram is one message (RFC 3261 18.3). The socket is not connected, so a response
sent from another port of the peer (RFC 3261 18.2.2 lets a server answer from any socket) is
still received. TCP: messages are framed by Content-Length with the codec's StreamParser.
"""

from __future__ import annotations

import socket
from collections import deque

from conformance.codec import sip
from conformance.drivers import TransportError
from conformance.drivers.tls import open_tcp
from conformance.drivers.websocket import decode_sip
from conformance.events import Garbage, Nothing, SipReceived, WsClosed
from conformance.run import deadline
from conformance.run.clock import MONOTONIC

MAX_DATAGRAM = 65535


def _hostport(addr: tuple) -> str:
    return f"{addr[0]}:{addr[1]}"


class SipUdp:
    """A UDP socket bound on the UE address; sends to `remote` unless told otherwise."""

    transport = "udp"

    def __init__(self, remote: tuple[str, int] | None, *, local: tuple[str, int] = ("127.0.0.1", 0)):
        self.remote = remote
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(local)
        self._last_peer: tuple | None = None
        self.alive = False  # a datagram came back at least once: the peer is alive
        self.refused = False  # an ICMP port unreachable came back: nothing listens there

    @property
    def local_address(self) -> tuple[str, int]:
        """(host, port) for the Via sent-by and Contact of what the harness sends."""
        return self.sock.getsockname()[:2]

    @property
    def last_peer(self) -> tuple | None:
        """Where the last datagram came from (to answer a request the harness received)."""
        return self._last_peer

    def send(self, data: bytes, to: tuple[str, int] | None = None) -> None:
        target = to or self.remote
        if target is None:
            raise ValueError("no destination: give `to` or a remote")
        try:
            self.sock.sendto(data, target)
        except OSError as exc:
            raise TransportError("connect", f"udp {_hostport(target)}: {exc}") from exc

    def recv(self, timeout_s: float) -> SipReceived | Garbage | Nothing:
        """The next datagram within the step deadline (timeout_s when none is active)."""
        step = deadline.current()
        clock = step.clock if step is not None else MONOTONIC
        start = clock.now()
        end = start + timeout_s if step is None else step.end

        def waited() -> Nothing:
            return Nothing(waited_ms=(clock.now() - start) * 1000.0, peer_alive=self.alive)

        while True:
            left = end - clock.now()
            if left <= 0:
                return waited()
            self.sock.settimeout(left)
            try:
                data, peer = self.sock.recvfrom(MAX_DATAGRAM)
            except (TimeoutError, BlockingIOError):
                return waited()
            except ConnectionRefusedError:
                # Linux reports an ICMP port unreachable for an earlier datagram on the next call:
                # nothing listens there, so nothing can be observed (not a proof of life)
                self.refused = True
                continue
            break
        self._last_peer = peer
        self.alive = True
        if step is not None:
            step.record(data)
        return decode_sip(data, self.transport, _hostport(peer))

    def close(self) -> None:
        self.sock.close()


class SipTcp:
    """One TCP connection to a SIP node; received bytes are framed into messages by Content-Length."""

    transport = "tcp"

    def __init__(self, remote: tuple[str, int], *, local: tuple[str, int] | None = ("127.0.0.1", 0),
                 connect_timeout_s: float = 3.0, max_message: int = 65536):
        self.remote = remote
        try:
            self.sock = open_tcp(remote[0], remote[1], connect_timeout_s, local)
        except OSError as exc:
            kind = "timeout" if isinstance(exc, TimeoutError) else "connect"
            raise TransportError(kind, f"tcp {_hostport(remote)}: {exc}") from exc
        self._parser = sip.StreamParser(max_size=max_message)
        self._pending = bytearray()  # the bytes the parser holds, mirrored to report them as evidence
        self._queue: deque = deque()
        self.closed: WsClosed | None = None
        self.alive = False  # the peer sent something at least once

    @property
    def local_address(self) -> tuple[str, int]:
        return self.sock.getsockname()[:2]

    def send(self, data: bytes) -> None:
        try:
            self.sock.sendall(data)
        except OSError as exc:
            raise TransportError("closed", f"tcp {_hostport(self.remote)}: {exc}") from exc

    def recv(self, timeout_s: float) -> SipReceived | Garbage | Nothing | WsClosed:
        """The next message within the step deadline (timeout_s when none is active); WsClosed(None)
        once the peer closed and nothing is left to read. Bytes of a message still unfinished when
        the deadline passes are garbage (a peer dripping a message), not silence."""
        if deadline.current() is None:
            with deadline.run_within(timeout_s):
                return self._recv()
        return self._recv()

    def _recv(self) -> SipReceived | Garbage | Nothing | WsClosed:
        step = deadline.current()
        start = step.clock.now()
        while not self._queue:
            if self.closed is not None:
                return self.closed
            if step.expired():
                if bytes(self._pending).strip(b"\r\n"):
                    partial, self._pending = bytes(self._pending), bytearray()
                    self._parser.reset()
                    return Garbage(raw=partial, reason="no complete SIP message when the step deadline of "
                                   f"{step.total_s:g} s passed", transport=self.transport)
                return Nothing(waited_ms=(step.clock.now() - start) * 1000.0, peer_alive=self.alive)
            try:
                data = self.sock.recv(65536)
            except TimeoutError:
                continue
            except OSError as exc:
                self.closed = WsClosed(None, f"TCP connection reset: {exc}")
                continue
            if not data:
                self.closed = WsClosed(None, "TCP connection closed by the peer")
                self._flush_partial()
                continue
            self.alive = True
            self._feed(data)
        return self._queue.popleft()

    def _feed(self, data: bytes) -> None:
        before = self._parser.buffered
        items = self._parser.feed(data)
        stream = self._pending + data
        consumed = before + len(data) - self._parser.buffered
        taken, self._pending = bytes(stream[:consumed]), bytearray(stream[consumed:])
        for item in items:
            if isinstance(item, sip.ParseFailure):
                self._queue.append(Garbage(raw=item.raw, reason=item.reason, transport=self.transport))
            else:
                # the exact bytes when this read completed one message; else the codec's rendering
                raw = taken.lstrip(b"\r\n") if len(items) == 1 else item.serialize()
                self._queue.append(SipReceived(message=item, raw=raw, transport=self.transport,
                                               peer=_hostport(self.remote)))

    def _flush_partial(self) -> None:
        # Bytes of an unfinished message at close are evidence too (e.g. a short Content-Length body)
        if bytes(self._pending).strip(b"\r\n"):
            self._queue.append(Garbage(raw=bytes(self._pending), reason="connection closed inside a SIP message",
                                       transport=self.transport))
        self._pending.clear()

    def close(self) -> None:
        try:
            self.sock.close()
        finally:
            self.closed = self.closed or WsClosed(None, "closed by the harness")


def open_transport(over: str, host: str, port: int, *, timeout_s: float = 3.0,
                   local: tuple[str, int] = ("127.0.0.1", 0)) -> SipUdp | SipTcp:
    """A SIP client transport to host:port: `udp` or `tcp` (connect bounded by timeout_s)."""
    if over == "udp":
        return SipUdp((host, port), local=local)
    if over == "tcp":
        return SipTcp((host, port), local=local, connect_timeout_s=timeout_s)
    raise ValueError(f"unknown SIP transport {over!r}: udp | tcp")
