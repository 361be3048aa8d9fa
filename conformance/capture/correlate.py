"""Which captured messages belong to one test case, when several run at once (`-n`).

A time window alone mixes the messages of test cases running in parallel against one network.
Each test case has values nobody else uses: its fresh identity (one local part shared by its Web
ID, IMPI, IMPUs and third-party account) and what it saved (state, code, tokens). A message
belongs to the test case when it carries one of them, or is tied to one that does:

- an HTTP request and its response are one exchange (the introspection request carries an
  opaque token, its response the user's `sub`);
- a WebSocket connection carries one UE's signalling, so all of it belongs with its SIP;
- values inside a JWT (a token response) count, decoded.

The connections the test case opened itself (their local ports, recorded by the TLS driver) are
its own whatever they carry.

Shared connections (the WSF's keep-alive connection to the AS, the UDP core legs) are split
message by message, never kept whole.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterable

_JWT = re.compile(rb"eyJ[A-Za-z0-9_-]+\.([A-Za-z0-9_-]+)\.[A-Za-z0-9_-]*")


def identity_of(user: dict) -> frozenset[str]:
    """The local part of the test case's identity (its Web ID, IMPI and IMPUs share it), when it is
    long enough to be the case's own: fixture identities (alice) are shared by consecutive test
    cases, so they cannot mark one (empty set = not known)."""
    local = str(user.get("web_id", "")).split("@", 1)[0]
    return frozenset({local}) if len(local) >= 12 else frozenset()


def markers_of(user: dict, saved: dict, cookies: Iterable[str] = ()) -> set[str]:
    """The test case's own values: its identity's local part, saved strings and cookie values long
    enough to be unique (tokens, codes, state, verifiers, the session cookie)."""
    out = set(identity_of(user))
    out.update(v for v in saved.values() if isinstance(v, str) and len(v) >= 12)
    out.update(v for v in cookies if isinstance(v, str) and len(v) >= 12)
    return out


def unattributed(correlated: list, full: list) -> list:
    """Findings of the correlated evaluation that say "missing" where the whole window has the
    message: under -n it may be this test case's or another's, so they become inconclusive."""
    from conformance.verdicts import Finding, Verdict

    seen_in_full = {f.subject for f in full if f.verdict == Verdict.PASS}
    out = []
    for f in correlated:
        if f.verdict == Verdict.FAIL and f.actual == "missing" and f.subject in seen_in_full:
            f = Finding(Verdict.INCONCLUSIVE, f.subject, f.expected, f.actual, f.ref,
                        "seen on the leg, but nothing ties it to this test case while others run in "
                        "parallel (-n); run it without -n", f.line)
        out.append(f)
    return out


def _text(ev) -> bytes:
    parts: list[bytes] = []
    for attr in ("raw", "body", "request_body", "url", "path"):
        v = getattr(ev, attr, None)
        if isinstance(v, bytes | bytearray):
            parts.append(bytes(v))
        elif isinstance(v, str):
            parts.append(v.encode("utf-8", "replace"))
    for name, value in list(getattr(ev, "headers", None) or []) + list(getattr(ev, "request_headers", None) or []):
        parts.append(f"{name}: {value}".encode("utf-8", "replace"))
    frame = getattr(ev, "frame", None)
    payload = getattr(frame, "payload", None)
    if isinstance(payload, bytes | bytearray):
        parts.append(bytes(payload))
    text = b"\n".join(parts)
    for m in _JWT.finditer(text):  # claims of JWTs in the message, decoded
        seg = m.group(1)
        try:
            parts.append(json.dumps(json.loads(base64.urlsafe_b64decode(seg + b"=" * (-len(seg) % 4)))).encode())
        except (ValueError, TypeError):
            continue
    return b"\n".join(parts)


def for_case(items: Iterable, markers: set[str], own: Iterable[str] = ()) -> list:
    """The items of one test case, in timeline order. `own`: "address:port" of the local ends of
    the connections the test case opened itself: everything on them is the test case's, whatever
    it carries (a refused handshake without a cookie, say)."""
    items = list(items)
    own = set(own)
    needles = [m.encode("utf-8", "replace") for m in markers]
    if not needles and not own:
        return items
    hit = {id(i) for i in items if i.src in own or i.dst in own or any(n in _text(i.event) for n in needles)}
    by_stream: dict[str, list] = {}
    for i in items:
        by_stream.setdefault(i.stream, []).append(i)
    keep = set(hit)
    for stream_items in by_stream.values():
        kinds = {type(i.event).__name__ for i in stream_items}
        if "WsHandshake" in kinds or "WsFrameSeen" in kinds:
            if any(id(i) in hit for i in stream_items):  # one UE's WebSocket: all of it
                keep.update(id(i) for i in stream_items)
            continue
        # HTTP: the n-th request and the n-th response of a connection are one exchange
        requests = [i for i in stream_items if type(i.event).__name__ == "HttpRequestSeen"]
        responses = [i for i in stream_items if type(i.event).__name__ == "HttpExchange"]
        for req, resp in zip(requests, responses):
            if id(req) in hit or id(resp) in hit:
                keep.update((id(req), id(resp)))
    return [i for i in items if id(i) in keep]
