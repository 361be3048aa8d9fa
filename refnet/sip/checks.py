"""What makes a received request unfit for processing (RFC 3261 8.2, 16.3 step 1, 18.3, 20):
each problem is a short sentence naming the header, for the reason phrase of the 400.

Strict only where the RFC's grammar is: the reference network answers 400 to what a conformant
UA never sends, and processes everything a conformant UA may send."""

from __future__ import annotations

import re

from .headers import HeaderError, parse_cseq, parse_name_addr, parse_via, split_list
from .message import Message, Request, header_key, long_name, parse_parts
from .params import TOKEN
from .uri import SipUri, UriError, parse_uri

MAX_32 = 2**32 - 1
MANDATORY = ("to", "from", "cseq", "call-id", "via")  # 8.1.1; Max-Forwards missing: RFC 2543 style, accepted
SINGLE_VALUED = ("to", "from", "cseq", "call-id", "max-forwards", "content-length", "content-type", "expires")
NAME_ADDR = ("to", "from", "contact", "route", "record-route", "path", "p-asserted-identity",
             "p-preferred-identity", "service-route", "p-associated-uri")
# callid = word [ "@" word ]; word = 1*(alphanum / the marks listed in RFC 3261 25.1)
_WORD = r"""[A-Za-z0-9\-.!%*_+`'~()<>:\\"/\[\]?{}]+"""
_CALL_ID = re.compile(f"{_WORD}(?:@{_WORD})?")
_DIGITS = re.compile(r"[0-9]+")
_MEDIA_TYPE = re.compile(r"[A-Za-z0-9\-.!%*_+`'~]+[ \t]*/[ \t]*[A-Za-z0-9\-.!%*_+`'~]+[ \t]*(;.*)?", re.DOTALL)


def validate(data: bytes, *, stream: bool = False) -> tuple[Message | None, list[str]]:
    """(message as far as readable, problems). No problems: fit for processing. A response is
    only framed and its start line read: nothing answers a response."""
    parsed = parse_parts(data)
    msg, problems = parsed.msg, list(parsed.problems)
    if not isinstance(msg, Request):
        return msg, problems
    if stream and parsed.content_length is None:
        problems.append("no Content-Length on a stream transport (RFC 3261 18.3)")
    for check in (_request_line, _names, _presence, _cseq, _scalars, _addresses, _vias, _body):
        try:
            problems += check(msg)
        except (HeaderError, UriError, ValueError) as exc:  # a check's own parse: still a problem
            problems.append(str(exc))
    return msg, problems


def _request_line(req: Request) -> list[str]:
    out = []
    if not TOKEN.fullmatch(req.method):
        out.append(f"method {req.method[:40]!r} is not a token")
    try:
        uri = parse_uri(req.uri)
    except UriError as exc:
        return [*out, f"Request-URI: {exc}"]
    if isinstance(uri, SipUri) and uri.headers:  # 19.1.1 table 1: not allowed in a Request-URI
        out.append("Request-URI carries headers ('?')")
    return out


def _names(req: Request) -> list[str]:
    return [f"header name {name[:40]!r} is not a token" for name, _ in req.headers if not TOKEN.fullmatch(name)]


def _presence(req: Request) -> list[str]:
    out = [f"missing mandatory header {long_name(k)}" for k in MANDATORY if k not in req.headers]
    values: dict[str, set[str]] = {}
    for name, value in req.headers:
        if header_key(name) in SINGLE_VALUED:
            values.setdefault(header_key(name), set()).add(" ".join(value.split()))
    out += [f"{long_name(k)} appears more than once with different values" for k, v in values.items() if len(v) > 1]
    return out


def _cseq(req: Request) -> list[str]:
    value = req.headers.get("CSeq")
    if value is None:
        return []
    number, method = parse_cseq(value)  # HeaderError names CSeq
    out = []
    if number > MAX_32:  # 8.1.1.5: a 32-bit unsigned integer
        out.append(f"CSeq number {number} exceeds 2**32-1")
    if method != req.method:
        out.append(f"CSeq method {method!r} differs from the request method {req.method!r}")
    return out


def _scalars(req: Request) -> list[str]:
    out = []
    call_id = req.headers.get("Call-ID")
    if call_id is not None and not _CALL_ID.fullmatch(call_id):
        out.append(f"Call-ID {call_id[:60]!r} is not word [\"@\" word]")
    mf = req.headers.get("Max-Forwards")
    if mf is not None and not (_DIGITS.fullmatch(mf) and int(mf) <= 255):
        out.append(f"Max-Forwards {mf[:40]!r} is not a number 0-255")
    expires = req.headers.get("Expires")
    if expires is not None and not (_DIGITS.fullmatch(expires) and int(expires) <= MAX_32):
        out.append(f"Expires {expires[:40]!r} is not a number 0-2**32-1")
    return out


def _addresses(req: Request) -> list[str]:
    out = []
    for key in NAME_ADDR:
        values = req.headers.get_all(key)
        for value in values:
            if key == "contact" and value.strip() == "*":
                continue  # 10.2.2 wildcard; whether it may appear here is the registrar's call
            try:
                na = parse_name_addr(value)
            except HeaderError as exc:
                out.append(f"{long_name(key)}: {exc}")
                continue
            expires = na.params.get("expires") if key == "contact" else None
            if expires is not None and not (_DIGITS.fullmatch(expires) and int(expires) <= MAX_32):
                out.append(f"Contact expires {expires[:40]!r} is not a number 0-2**32-1")
    return out


def _vias(req: Request) -> list[str]:
    out = []
    for name, line in req.headers:
        if header_key(name) != "via":
            continue
        for element in split_list(line):
            try:
                parse_via(element)
            except HeaderError as exc:
                out.append(str(exc))
    return out


def _body(req: Request) -> list[str]:
    content_type = req.headers.get("Content-Type")
    if req.body and content_type is None:  # 20.15: MUST be present when the body is not empty
        return ["a body without Content-Type"]
    if content_type is not None and not _MEDIA_TYPE.fullmatch(content_type):
        return [f"Content-Type {content_type[:60]!r} is not type/subtype"]
    return []
