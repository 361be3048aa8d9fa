"""Readable diffs of an expected message against a received one, for reports.

Both sides become lines (start line, then `Name: value` per header field, then the body) and
difflib renders a unified diff. Header names are written in their canonical form (SIP compact
forms expanded) so that `v:` against `Via:` is not reported as a difference; `sort_headers`
makes the comparison ignore the order of different header fields (the order of the values of
one header, e.g. Via or Path, is kept: it is significant, RFC 3261 7.3.1).
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from typing import Any

from conformance.codec import sip
from conformance.events import Garbage, HttpExchange, Nothing, SipReceived, WsClosed, WsHandshake
from conformance.match.subjects import describe_event

Lines = list[str]


def _text(data: bytes | str) -> str:
    return data.decode("utf-8", "replace") if isinstance(data, bytes | bytearray) else str(data)


def _sip_lines(msg: Any) -> tuple[str, list[tuple[str, str]], str]:
    return msg.start_line(), [(sip.canonical_name(n), v) for n, v in msg.headers.items()], _text(msg.body)


def _parts(obj: Any) -> tuple[str, list[tuple[str, str]], str]:
    """(start line, header fields, body) of anything a report may want to compare."""
    if isinstance(obj, SipReceived):
        return _sip_lines(obj.message)
    if isinstance(obj, sip.Request | sip.Response):
        return _sip_lines(obj)
    if isinstance(obj, HttpExchange):
        return f"HTTP/1.1 {obj.status} {obj.reason}".rstrip(), list(obj.headers), obj.text
    if isinstance(obj, WsHandshake):
        return f"HTTP/1.1 {obj.status}", list(obj.headers), _text(obj.body)
    if isinstance(obj, Nothing | WsClosed | Garbage):
        return f"({describe_event(obj)})", [], ""
    if isinstance(obj, bytes | str):
        try:
            return _sip_lines(sip.parse(obj.encode("utf-8") if isinstance(obj, str) else obj))
        except sip.SipParseError:
            return "", [], _text(obj)
    if isinstance(obj, Mapping):  # expected header fields: {name: value | [values] | None (absent)}
        fields: list[tuple[str, str]] = []
        for name, value in obj.items():
            for v in value if isinstance(value, list | tuple) else [value]:
                if v is not None:
                    fields.append((name, str(v)))
        return "", fields, ""
    if isinstance(obj, Iterable):
        return "", [(str(n), str(v)) for n, v in obj], ""
    raise TypeError(f"cannot diff a {type(obj).__name__}")


def message_lines(obj: Any, *, headers_only: bool = False, only: Iterable[str] | None = None,
                  sort_headers: bool = False) -> Lines:
    start, fields, body = _parts(obj)
    if only is not None:
        wanted = {_key(n) for n in only}
        fields = [(n, v) for n, v in fields if _key(n) in wanted]
    if sort_headers:
        fields = sorted(fields, key=lambda f: _key(f[0]))  # stable: values of one header keep their order
    lines = [] if headers_only or not start else [start]
    lines += [f"{n}: {v}" for n, v in fields]
    if body and not headers_only:
        lines += [""] + body.splitlines()
    return lines


def _key(name: str) -> str:
    return sip.canonical_name(name).lower()


def unified_diff(expected: Any, received: Any, *, expected_label: str = "expected",
                 received_label: str = "received", headers_only: bool = False,
                 sort_headers: bool = False, context: int = 3) -> str:
    """A unified diff (empty when both sides render the same). With a mapping of expected header
    fields, only those headers of the received message are compared."""
    only = list(expected) if isinstance(expected, Mapping) else None
    exp = message_lines(expected, headers_only=headers_only or only is not None, sort_headers=sort_headers)
    got = message_lines(received, headers_only=headers_only or only is not None, only=only,
                        sort_headers=sort_headers)
    return "\n".join(difflib.unified_diff(exp, got, expected_label, received_label, n=context, lineterm=""))
