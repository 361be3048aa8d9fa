"""Messages the dissector saw but could not dissect, on the legs a capture block asserts.

A node that sends a masked server-to-client WebSocket frame, or SIP on a stream without
Content-Length, has violated a requirement: the dissector knows which one (the Garbage reason or
the frame error). Without this, the message it could not read would simply be "missing" and the
report would blame the wrong thing. Only what a network node sent counts (the harness's own
deliberately broken input is not the SUT's fault), and only where the capture itself worked: a
TCP hole or an undecryptable TLS connection is an observability problem (inconclusive), not a
violation.
"""

from __future__ import annotations

from dataclasses import dataclass

from conformance.capture.timeline import UE, TimelineItem, WsFrameSeen
from conformance.events import Garbage

EXCERPT_BYTES = 160  # evidence in a finding stays bounded; the pcapng has the rest

# Garbage reasons that say the capture could not see, not that the sender misbehaved.
_OBSERVABILITY_PREFIXES = ("TLS:", "TCP:")


@dataclass
class Undissectable:
    item: TimelineItem
    reason: str  # the violation the dissector found, with its clause when it knows it
    raw: bytes


def undissectable(item: TimelineItem) -> Undissectable | None:
    """The violation that kept this item from being dissected, or None when it was dissected."""
    ev = item.event
    if isinstance(ev, Garbage):
        if ev.reason.startswith(_OBSERVABILITY_PREFIXES):
            return None
        return Undissectable(item, ev.reason, ev.raw)
    if isinstance(ev, WsFrameSeen) and ev.error and ev.carried is None and ev.close is None:
        return Undissectable(item, f"WebSocket: {ev.error}", ev.frame.payload)
    return None


def sent_by_network(item: TimelineItem) -> bool:
    return item.src_node is not None and item.src_node != UE


def excerpt(raw: bytes, limit: int = EXCERPT_BYTES) -> str:
    """A bounded, printable view of the bytes: text as text, the rest escaped."""
    shown = raw[:limit].decode("utf-8", "backslashreplace").replace("\r", "\\r").replace("\n", "\\n")
    more = len(raw) - limit
    return repr(shown) + (f" (+{more} bytes)" if more > 0 else "") if raw else "(no bytes kept)"


def describe(u: Undissectable) -> str:
    return f"{u.reason}; bytes: {excerpt(u.raw)}"
