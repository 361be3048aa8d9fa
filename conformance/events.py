"""Typed events: what the drivers received and what the capture dissected.

Matchers read only these, so a message looks the same whether the harness exchanged it or
sniffed it on another leg.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any


def _get_header(headers: list[tuple[str, str]], name: str) -> list[str]:
    low = name.lower()
    return [v for k, v in headers if k.lower() == low]


@dataclass
class HttpExchange:
    """One HTTP request and its response (either may be missing in a capture)."""

    method: str
    url: str
    request_headers: list[tuple[str, str]] = field(default_factory=list)
    request_body: bytes = b""
    status: int | None = None
    reason: str = ""
    headers: list[tuple[str, str]] = field(default_factory=list)  # response headers, in order
    body: bytes = b""  # at most conformance.drivers.tls.MESSAGE_LIMIT bytes are kept
    elapsed_ms: float = 0.0
    body_length: int | None = None  # the true length when the body was cut (None: body is whole)

    def __post_init__(self) -> None:
        if self.body_length is not None and self.body_length == len(self.body):
            self.body_length = None

    @property
    def truncated(self) -> bool:
        return self.body_length is not None

    def header_values(self, name: str) -> list[str]:
        return _get_header(self.headers, name)

    def request_header_values(self, name: str) -> list[str]:
        return _get_header(self.request_headers, name)

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class WsHandshake:
    """The opening handshake of a WebSocket connection (RFC 6455 4)."""

    url: str
    status: int | None
    headers: list[tuple[str, str]] = field(default_factory=list)  # response headers
    request_headers: list[tuple[str, str]] = field(default_factory=list)
    subprotocol: str | None = None
    body: bytes = b""  # body of a refused handshake
    error: str = ""  # why the harness did not consider the connection open (e.g. bad Sec-WebSocket-Accept)
    raw: bytes = b""  # what arrived when it was not an HTTP response (garbage, a TLS alert), bounded

    def header_values(self, name: str) -> list[str]:
        return _get_header(self.headers, name)


@dataclass
class WsClosed:
    """The peer closed the connection: code None means no close frame (TCP closed or reset)."""

    code: int | None
    reason: str = ""


@dataclass
class SipReceived:
    """One SIP message received on a connection (or seen in a capture)."""

    message: Any  # conformance.codec.sip.Request | Response
    raw: bytes
    transport: str  # ws | wss | udp | tcp
    peer: str = ""  # host:port it came from


@dataclass
class Garbage:
    """Bytes that arrived but could not be decoded; kept as evidence, never dropped."""

    raw: bytes
    reason: str
    transport: str = ""


@dataclass
class Nothing:
    """No message arrived before the bounded wait ended."""

    waited_ms: float
    # Whether the peer proved alive on this connection before (answered something): a check that
    # nothing comes back means something only then. None: not known (e.g. no wait at all).
    peer_alive: bool | None = None
    # The wait was for a request the node must send on its own (a NOTIFY, a network-initiated
    # de-registration), not for an answer: a live node that does not send it misbehaves (fail),
    # whereas silence where an answer was required stays inconclusive.
    awaited_request: bool = False
