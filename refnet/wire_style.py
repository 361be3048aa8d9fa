"""How the SIP nodes of the reference network write their messages, and the conformant
variations of it (refnet/variations.py): compact header names, other branch and tag formats,
extension headers and parameters, another header order, other reason phrases, other size limits.

Every SIP message a node sends passes `restyle` (UDP, TCP and the WSF's WebSocket side), so a
variation changes the wire form of everything without touching the nodes' logic. Without a SIP
variation switched on, `restyle` returns its input unchanged (no parse, no cost).
"""

from __future__ import annotations

import hashlib
import secrets

from . import sip
from .sip import Request, Response, header_key

MAX_MESSAGE = 64 * 1024
MAX_MESSAGE_LARGER = 1024 * 1024  # variation size-limits-larger

# RFC 3261 7.3.3 (and RFC 3841 / RFC 3903 registrations) compact forms
COMPACT = {"call-id": "i", "from": "f", "to": "t", "via": "v", "contact": "m", "content-length": "l",
           "content-type": "c", "supported": "k"}
# RFC 3261 21: the phrase is for a human reader; these say the same thing in other words
REASONS = {200: "Registered", 401: "Authentication Needed", 403: "Not Permitted", 404: "No Such User",
           483: "Hop Limit Reached", 501: "Method Not Supported"}
TRACE_HEADER = "X-Refnet-Trace"

_RESTYLING = ("sip-compact-headers", "sip-unknown-headers", "sip-header-order", "sip-reason-phrases")
_active: frozenset[str] = frozenset()


def configure(variations) -> None:
    """Called once per node process with the network's variations."""
    global _active
    _active = frozenset(variations)


def on(name: str) -> bool:
    return name in _active


def max_message() -> int:
    return MAX_MESSAGE_LARGER if on("size-limits-larger") else MAX_MESSAGE


def new_branch() -> str:
    """A fresh Via branch (RFC 3261 8.1.1.7: the magic cookie, then anything unique)."""
    if on("sip-branch-tag-formats"):
        return f"z9hG4bK-{secrets.token_urlsafe(18)}.{secrets.randbelow(1000)}~x"
    return f"z9hG4bK{secrets.token_hex(10)}"


def derived_branch(seed: str) -> str:
    """A branch derived from a request (stateless proxies, RFC 3261 16.11)."""
    digest = hashlib.sha1(seed.encode(errors="replace")).hexdigest()
    if on("sip-branch-tag-formats"):
        return f"z9hG4bK.{digest[:8]}-{digest[8:32]}!"
    return "z9hG4bK" + digest[:20]


def derived_tag(seed: str) -> str:
    """A To tag derived from the request (a stateless UAS, RFC 3261 8.2.7)."""
    digest = hashlib.sha1(seed.encode("utf-8", "surrogateescape")).hexdigest()
    if on("sip-branch-tag-formats"):
        return f"{digest[:6]}.{digest[6:30]}-T"
    return digest[:12]


def restyle(data: bytes) -> bytes:
    if not any(on(v) for v in _RESTYLING) or not data.strip(b"\r\n"):
        return data
    try:
        msg = sip.parse(data)
    except ValueError:  # SipError included
        return data  # not ours to fix: sent as it is
    return sip.serialize(_restyled(msg))


def restyle_text(text: str) -> str:
    if not any(on(v) for v in _RESTYLING):
        return text
    return restyle(text.encode("utf-8")).decode("utf-8", "surrogateescape")


def _restyled(msg: Request | Response) -> Request | Response:
    items = list(msg.headers.items())
    if on("sip-unknown-headers"):
        if not any(header_key(n) == TRACE_HEADER.lower() for n, _ in items):
            items.insert(len(items) // 2, (TRACE_HEADER, f"refnet;x-hop={secrets.token_hex(3)}"))
            items.append(("X-Refnet-Feature", "unknown-extension;level=2"))
        if isinstance(msg, Request):  # our own (top) Via gets an extension parameter
            for i, (name, value) in enumerate(items):
                if header_key(name) == "via":
                    if ";x-refnet" not in value.split(",")[0]:
                        first, sep, rest = value.partition(",")
                        items[i] = (name, f"{first};x-refnet=1{sep}{rest}")
                    break
    if on("sip-header-order"):  # groups of one name keep their own order (RFC 3261 7.3.1)
        order: list[str] = []
        for name, _ in items:
            if header_key(name) not in order:
                order.append(header_key(name))
        order.reverse()
        items = sorted(items, key=lambda item: order.index(header_key(item[0])))
    if on("sip-compact-headers"):
        items = [(COMPACT.get(header_key(n), n), v) for n, v in items]
    msg.headers = sip.Headers(items)
    if on("sip-reason-phrases") and isinstance(msg, Response) and msg.status in REASONS:
        msg.reason = REASONS[msg.status]
    return msg
