"""One timeline of dissected messages across all captured legs, and what the capture could see.

Each item says when (the packet that completed the message), from where to where (addresses and
the profile's node names), on which leg, what (an event of conformance.events or one of the small
dataclasses below), whether it came out of TLS, and on which stream.

Coverage is kept per leg (an unordered pair of nodes), because a missing message only means
something if its leg was captured and could be read.
"""

from __future__ import annotations

import ipaddress
import json
from dataclasses import dataclass, field
from typing import Any

from conformance.codec.websocket import Close, Frame

UE = "ue"


def _get(headers: list[tuple[str, str]], name: str) -> list[str]:
    low = name.lower()
    return [v for k, v in headers if k.lower() == low]


@dataclass
class HttpRequestSeen:
    """An HTTP request seen on a leg (its response, if any, is a later HttpExchange item)."""

    method: str
    url: str  # request-target as sent, e.g. /introspect
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""
    version: str = "HTTP/1.1"
    problems: list[str] = field(default_factory=list)

    def header_values(self, name: str) -> list[str]:
        return _get(self.headers, name)

    @property
    def path(self) -> str:
        return self.url.split("?", 1)[0]

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class WsFrameSeen:
    """One WebSocket frame; `close` is filled for close frames, `error` for RFC 6455 violations,
    `carried` names what the message this frame completed was dissected as (e.g. "sip")."""

    frame: Frame
    close: Close | None = None
    error: str | None = None
    carried: str | None = None

    @property
    def opcode(self) -> str:
        return self.frame.opcode_name

    @property
    def masked(self) -> bool:
        return self.frame.masked

    @property
    def fin(self) -> bool:
        return self.frame.fin

    @property
    def payload(self) -> bytes:
        return self.frame.payload


@dataclass
class TlsAlertSeen:
    description: str  # e.g. "fatal handshake_failure"
    encrypted: bool


@dataclass
class TimelineItem:
    t: float
    src: str  # "address:port"
    dst: str
    src_node: str | None
    dst_node: str | None
    proto: str  # http | ws | sip | tls | tcp | udp
    event: Any
    decrypted: bool = False
    stream: str = ""  # "tcp/3" or "udp/<src>><dst>"
    index: int = 0  # position in the timeline

    @property
    def leg(self) -> tuple[str, str] | None:
        if self.src_node and self.dst_node:
            return (self.src_node, self.dst_node)
        return None

    @property
    def kind(self) -> str:
        return type(self.event).__name__

    def summary(self) -> str:
        return summarize(self.event)


def summarize(ev: Any) -> str:
    """A one-line label for a dissected event (reports and the sequence diagram)."""
    name = type(ev).__name__
    if name == "HttpRequestSeen":
        return f"{ev.method} {ev.path}"
    if name == "HttpExchange":
        return f"{ev.status} {ev.reason}".strip()
    if name == "WsHandshake":
        return f"WS handshake {ev.status}" if ev.status is not None else f"WS handshake GET {ev.url}"
    if name == "WsFrameSeen":
        if ev.close is not None:
            return f"WS close {ev.close.code if ev.close.code is not None else ''}".strip()
        return f"WS {ev.opcode}{'' if ev.fin else ' (fragment)'}"
    if name == "SipReceived":
        msg = ev.message
        if getattr(msg, "is_request", False):
            return f"{msg.method}"
        method = getattr(msg, "method", None)
        text = f"{getattr(msg, 'status', '?')} {getattr(msg, 'reason', '')}".strip()
        return f"{text} ({method})" if method else text
    if name == "Garbage":
        return f"undissected ({ev.reason[:40]})"
    if name == "TlsAlertSeen":
        return f"TLS alert {ev.description}"
    return name


@dataclass
class LegCoverage:
    nodes: tuple[str, str]  # sorted pair
    packets: int = 0
    bytes: int = 0
    tls_connections: int = 0
    decrypted_connections: int = 0
    undecryptable: list[str] = field(default_factory=list)  # reasons, one per connection
    gaps: list[str] = field(default_factory=list)  # TCP holes, truncated streams

    @property
    def seen(self) -> bool:
        return self.packets > 0

    @property
    def complete(self) -> bool:
        return not self.undecryptable and not self.gaps


def _ip(value) -> str | None:
    """The canonical text of an IP address (as the packet reader prints it), None for a host name."""
    if value is None:
        return None
    try:
        return str(ipaddress.ip_address(str(value).strip("[]")))
    except ValueError:
        return None


class NodeMap:
    """Attributes addresses and ports to the profile's node names (pixit.nodes + pixit.ue)."""

    def __init__(self, pixit: dict):
        self.endpoints: dict[tuple[str, int], str] = {}
        self.by_address: dict[str, list[str]] = {}
        self.order: list[str] = []
        self.unaddressed: list[str] = []  # nodes whose address is not an IP literal: not attributable
        ue = _ip((pixit.get("ue") or {}).get("address"))
        if ue:
            self.by_address.setdefault(ue, []).append(UE)
            self.order.append(UE)
        for name, node in (pixit.get("nodes") or {}).items():
            if not isinstance(node, dict) or not node.get("address"):
                continue
            addr = _ip(node["address"])
            if addr is None:
                self.unaddressed.append(name)
                continue
            self.order.append(name)
            self.by_address.setdefault(addr, []).append(name)
            if node.get("port"):
                self.endpoints[(addr, int(node["port"]))] = name

    @property
    def addresses(self) -> list[str]:
        return list(self.by_address)

    def is_server(self, addr: str, port: int) -> bool:
        return (addr, port) in self.endpoints

    def name(self, addr: str, port: int, peer: str | None = None) -> str | None:
        """The node at addr:port. An ephemeral port on an address several nodes share is
        attributed to the one that is not the peer, then to the harness."""
        exact = self.endpoints.get((addr, port))
        if exact:
            return exact
        names = self.by_address.get(addr, [])
        if len(names) == 1:
            return names[0]
        others = [n for n in names if n != peer and (addr, port) not in self.endpoints]
        if UE in others:
            return UE
        return others[0] if others else None


@dataclass
class Timeline:
    items: list[TimelineItem] = field(default_factory=list)
    coverage: dict[tuple[str, str], LegCoverage] = field(default_factory=dict)
    packets: list[tuple[float, str | None, str | None, int]] = field(default_factory=list)  # (t, src, dst, payload len)
    t_start: float | None = None  # capture window (live: sniffer start/stop; offline: first/last packet)
    t_end: float | None = None
    problems: list[str] = field(default_factory=list)  # capture-wide: key log unreadable, drops, ...
    # nodes whose every packet the capture set-up is known to see (live on lo: loopback addresses);
    # others count as observable only once the capture saw them
    observable_nodes: set[str] = field(default_factory=set)

    def leg_coverage(self, a: str, b: str) -> LegCoverage:
        key = tuple(sorted((a, b)))
        return self.coverage.get(key) or LegCoverage(key)

    def on_leg(self, src: str, dst: str) -> list[TimelineItem]:
        return [i for i in self.items if i.src_node == src and i.dst_node == dst]

    def finalize(self) -> Timeline:
        self.items.sort(key=lambda i: i.t)  # stable: same-time items keep dissection order
        for n, item in enumerate(self.items):
            item.index = n
        return self

    def describe(self) -> str:
        lines = []
        for i in self.items:
            t = i.t - (self.t_start or 0)
            lines.append(f"{i.index:4d} {t * 1000:9.1f} ms {i.src_node or i.src:>7} -> {i.dst_node or i.dst:<7} "
                         f"{i.proto:5} {i.summary()}")
        return "\n".join(lines)
