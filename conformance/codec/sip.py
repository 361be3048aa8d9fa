"""SIP messages (RFC 3261 7): a lenient parser, a serialiser, a strict validator and stream framing.

Sans-IO: bytes in, `Request` / `Response` out, and back. `parse` reads what a liberal receiver would
(LF line ends, folding, odd spacing) and fails only when there is no SIP message at all; `validate`
lists every RFC 3261 violation it can find, each with its rule id and severity; `StreamParser` frames
messages on a byte stream by the empty line and Content-Length (RFC 3261 18.3).

The header section is decoded as UTF-8 with `surrogateescape`, so invalid octets survive a
parse/serialise round trip unchanged; the body is never decoded.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field

from .sip_headers import (
    RULE_LIST,
    HeaderError,
    bounded_int,
    name_addr_issues,
    parse_cseq,
    parse_name_addr,
    parse_via,
    quotes_balanced,
    split_quoted,
    via_issues,
)
from .sip_uri import SipUri, UriError, parse_uri

SIP_VERSION = "SIP/2.0"
MAGIC_COOKIE = "z9hG4bK"  # RFC 3261 8.1.1.7
MAX_32 = 2**32 - 1

# RFC 3261 7.3.3 and the extensions that registered one (IANA "Header Fields" compact forms).
COMPACT_FORMS = {
    "i": "call-id", "m": "contact", "e": "content-encoding", "l": "content-length",
    "c": "content-type", "f": "from", "s": "subject", "k": "supported", "t": "to", "v": "via",
    "u": "allow-events", "o": "event", "r": "refer-to", "b": "referred-by", "x": "session-expires",
    "y": "identity", "a": "accept-contact", "j": "reject-contact", "d": "request-disposition",
    "n": "identity-info",
}

# Header fields whose grammar is a comma list (RFC 3261 7.3.1: such lines may be combined or split).
# Anything else, including unknown headers, Authorization, WWW-Authenticate, Date and Retry-After,
# is one value per line: their values contain commas that are not separators.
LIST_HEADERS = frozenset({
    "accept", "accept-encoding", "accept-language", "alert-info", "allow", "call-info", "contact",
    "content-encoding", "content-language", "error-info", "in-reply-to", "proxy-require",
    "record-route", "require", "route", "supported", "unsupported", "via", "warning", "path",
    "service-route", "p-associated-uri", "p-asserted-identity", "p-preferred-identity",
    "allow-events", "accept-contact", "reject-contact", "request-disposition", "security-client",
    "security-server", "security-verify", "reason", "history-info", "p-visited-network-id",
    "p-access-network-info", "p-media-authorization", "resource-priority",
    "accept-resource-priority", "recv-info", "feature-caps", "geolocation", "permission-missing",
    "trigger-consent", "p-early-media", "diversion", "user-to-user", "p-charging-function-addresses",
})

# Header fields whose grammar allows exactly one value (RFC 3261 20 and common extensions).
SINGLE_HEADERS = frozenset({
    "call-id", "cseq", "content-length", "content-type", "content-disposition", "date", "expires",
    "from", "max-forwards", "min-expires", "mime-version", "organization", "priority", "reply-to",
    "retry-after", "server", "subject", "timestamp", "to", "user-agent", "refer-to", "referred-by",
    "session-expires", "min-se", "event", "subscription-state",
})

NAME_ADDR_HEADERS = frozenset({
    "to", "from", "contact", "route", "record-route", "reply-to", "path", "service-route",
    "p-associated-uri", "p-asserted-identity", "p-preferred-identity", "refer-to", "referred-by",
    "p-called-party-id",
})

# Known header fields whose values are free text or words where a lone '"' is legal
# (callid = word [ "@" word ], word includes DQUOTE; TEXT-UTF8-TRIM; comments).
_FREE_TEXT = frozenset({
    "call-id", "subject", "organization", "server", "user-agent", "date", "in-reply-to", "timestamp",
    "identity",
})

_CANONICAL = {
    "call-id": "Call-ID", "cseq": "CSeq", "www-authenticate": "WWW-Authenticate", "mime-version": "MIME-Version",
}


_KEYS: dict[str, str] = {}  # header name as written -> key: every header lookup asks, names repeat


def header_key(name: str) -> str:
    """Lookup key of a header name: lower case, compact form expanded (RFC 3261 7.3.1, 7.3.3)."""
    key = _KEYS.get(name)
    if key is None:
        key = name.lower()
        key = COMPACT_FORMS.get(key, key)
        if len(_KEYS) < 4096:  # bounded: names come from the wire
            _KEYS[name] = key
    return key


def canonical_name(name: str) -> str:
    """Long form in conventional capitalisation: 'v' -> 'Via', 'call-id' -> 'Call-ID'."""
    key = header_key(name)
    return _CANONICAL.get(key) or "-".join(p[:1].upper() + p[1:] for p in key.split("-"))


def split_list(value: str) -> list[str]:
    """Split a comma-list header value outside quotes and <...>; empty elements dropped."""
    if "," not in value:
        return [value] if value else []
    return [p for p in (s.strip(" \t") for s in split_quoted(value, ",")) if p]


class Headers:
    """Ordered (name, value) header field lines as received; lookups are case-insensitive and
    compact-form aware ('v' finds Via). Values are unfolded and stripped.

    `get`/`get_all` see values: list headers (LIST_HEADERS) are split at commas, so the first Via
    value is the top Via whether or not the sender combined lines. `get_lines` sees lines.
    """

    __slots__ = ("_items",)

    def __init__(self, items: Mapping[str, str] | Iterable[tuple[str, str]] | None = None):
        if isinstance(items, Headers):
            items = items.items()
        elif isinstance(items, Mapping):
            items = items.items()
        self._items: list[tuple[str, str]] = [(str(n), str(v)) for n, v in items or ()]

    def _matches(self, name: str) -> Iterator[int]:
        key = header_key(name)
        for i, (n, _) in enumerate(self._items):
            if n == name or header_key(n) == key:
                yield i

    def get(self, name: str, default: str | None = None) -> str | None:
        """First value (the top one for list headers), or `default`."""
        key = header_key(name)
        split = key in LIST_HEADERS
        for n, value in self._items:  # _matches inlined: every parse asks for Content-Length
            if n == name or header_key(n) == key:
                if split:
                    values = split_list(value)
                    if not values:
                        continue
                    return values[0]
                return value
        return default

    def get_all(self, name: str) -> list[str]:
        """Every value in order; lines of list headers are split at top-level commas."""
        split = header_key(name) in LIST_HEADERS
        out: list[str] = []
        for i in self._matches(name):
            value = self._items[i][1]
            if split:
                out += split_list(value)
            else:
                out.append(value)
        return out

    def get_lines(self, name: str) -> list[str]:
        """The values of every matching header field line, unsplit."""
        return [self._items[i][1] for i in self._matches(name)]

    def set(self, name: str, value: str) -> None:
        """Replace every line of this header with one line, at the position of the first."""
        found = list(self._matches(name))
        if not found:
            self._items.append((name, str(value)))
            return
        self._items[found[0]] = (name, str(value))
        for i in reversed(found[1:]):
            del self._items[i]

    def add(self, name: str, value: str) -> None:
        self._items.append((name, str(value)))

    def insert(self, index: int, name: str, value: str) -> None:
        """Insert a line at a line position (0 = first line), e.g. a new Via above the others."""
        self._items.insert(index, (name, str(value)))

    def prepend(self, name: str, value: str) -> None:
        """Insert a line just before the first line of this header (or append if absent): a new top Via."""
        first = next(self._matches(name), None)
        self._items.insert(len(self._items) if first is None else first, (name, str(value)))

    def remove(self, name: str) -> int:
        """Delete every line of this header; returns how many were removed."""
        found = list(self._matches(name))
        for i in reversed(found):
            del self._items[i]
        return len(found)

    def remove_first(self, name: str) -> str | None:
        """Remove the first value (e.g. the top Via when relaying a response); returns it."""
        for i in self._matches(name):
            n, value = self._items[i]
            values = split_list(value) if header_key(name) in LIST_HEADERS else [value]
            if len(values) > 1:
                self._items[i] = (n, ", ".join(values[1:]))
            else:
                del self._items[i]
            return values[0] if values else value
        return None

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and next(self._matches(name), None) is not None

    def items(self) -> list[tuple[str, str]]:
        return list(self._items)

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter(list(self._items))

    def __len__(self) -> int:
        return len(self._items)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Headers):
            return self._items == other._items
        return NotImplemented

    __hash__ = None  # mutable

    def copy(self) -> Headers:
        new = Headers()
        new._items = list(self._items)
        return new

    def __repr__(self) -> str:
        return f"Headers({self._items!r})"


class _Message:
    headers: Headers
    body: bytes

    @property
    def cseq(self) -> tuple[int, str] | None:
        try:
            return parse_cseq(self.headers.get("CSeq") or "")
        except HeaderError:
            return None

    @property
    def call_id(self) -> str | None:
        return self.headers.get("Call-ID")

    @property
    def branch(self) -> str | None:
        """The branch parameter of the top Via."""
        top = self.headers.get("Via")
        try:
            return parse_via(top).branch if top else None
        except HeaderError:
            return None

    def serialize(self, *, content_length: bool = True) -> bytes:
        return serialize(self, content_length=content_length)

    def __bytes__(self) -> bytes:
        return serialize(self)


@dataclass(eq=True)
class Request(_Message):
    method: str
    uri: str
    version: str = SIP_VERSION
    headers: Headers = field(default_factory=Headers)
    body: bytes = b""

    is_request = True

    def start_line(self) -> str:
        return f"{self.method} {self.uri} {self.version}"

    def copy(self) -> Request:
        return Request(self.method, self.uri, self.version, self.headers.copy(), self.body)


@dataclass(eq=True)
class Response(_Message):
    status: int
    reason: str = ""
    version: str = SIP_VERSION
    headers: Headers = field(default_factory=Headers)
    body: bytes = b""

    is_request = False

    def start_line(self) -> str:
        return f"{self.version} {self.status} {self.reason}"

    @property
    def method(self) -> str | None:
        """The method of the request this answers (from CSeq)."""
        cseq = self.cseq
        return cseq[1] if cseq else None

    def copy(self) -> Response:
        return Response(self.status, self.reason, self.version, self.headers.copy(), self.body)


Message = Request | Response


@dataclass(frozen=True)
class Violation:
    """One broken rule. Only severity 'error' makes a message invalid; 'warning' flags what RFC 3261
    asks for but an RFC 2543-compatible element accepts (no branch cookie, no Max-Forwards, ...)."""

    rule: str  # short id with the RFC reference, e.g. 'RFC3261-8.1.1.5 cseq-range'
    message: str
    line: int | None = None  # 1-based line of the message (1 = start line)
    severity: str = "error"

    def __str__(self) -> str:
        where = f" (line {self.line})" if self.line else ""
        return f"{self.severity}: {self.rule}: {self.message}{where}"


class SipParseError(ValueError):
    def __init__(self, message: str, violations: list[Violation] | None = None):
        super().__init__(message)
        self.violations = list(violations or [])


@dataclass(frozen=True)
class ParseFailure:
    """What a StreamParser yields for bytes that do not frame or parse as a SIP message."""

    raw: bytes
    reason: str


def errors(violations: Iterable[Violation]) -> list[Violation]:
    return [v for v in violations if v.severity == "error"]


# ----------------------------------------------------------------------------------------------
# Serialise


def _enc(text: str) -> bytes:
    return text.encode("utf-8", "surrogateescape")


def serialize(msg: Message, *, content_length: bool = True) -> bytes:
    """Start line, header lines in order, CRLF, body. With content_length, the first Content-Length
    line (long or compact) carries len(body), later ones are dropped, and one is added if missing."""
    lines = [msg.start_line()]
    seen_cl = False
    for name, value in msg.headers.items():
        if content_length and header_key(name) == "content-length":
            if seen_cl:
                continue
            seen_cl, value = True, str(len(msg.body))
        lines.append(f"{name}: {value}")
    if content_length and not seen_cl:
        lines.append(f"Content-Length: {len(msg.body)}")
    return _enc("\r\n".join(lines)) + b"\r\n\r\n" + bytes(msg.body)


# ----------------------------------------------------------------------------------------------
# Parse

_HEADER_END = re.compile(rb"\r?\n\r?\n")
_DIGITS = re.compile(r"[0-9]+")
_RESPONSE_LINE = re.compile(r"(\S+)[ \t]+([0-9]+)(?:[ \t](.*))?", re.DOTALL)
_WS_SPLIT = re.compile(r"[ \t]+")
_WS_CR = " \t\r"  # a stray CR before a line's LF is line-end noise, not part of a value
_SP_HT = " \t"


def _header_end(data: bytes, start: int) -> tuple[int, int] | None:
    """(start, end) of `_HEADER_END`'s first match: the common CRLF CRLF found with bytes.find
    (the regex tries its optional CR at every octet: a tenth of a capture's SIP parsing time),
    the regex itself when a bare LF comes first."""
    p = data.find(b"\r\n\r\n", start)
    if p >= 0 and data.find(b"\n\n", start, p + 1) < 0 and data.find(b"\n\r\n", start, p + 2) < 0:
        return p, p + 4
    m = _HEADER_END.search(data, start)
    return (m.start(), m.end()) if m else None


@dataclass
class _Parsed:
    msg: Message
    start_line: str
    line_numbers: list[int]  # line of each header field, parallel to msg.headers.items()
    body_available: int  # octets after the empty line
    content_length: int | None  # the value used for framing, if any


def _fail(message: str, rule: str, line: int | None = 1) -> SipParseError:
    return SipParseError(message, [Violation(rule, message, line)])


def _parse(data: bytes, out: list[Violation] | None) -> _Parsed:
    """Lenient parse. Framing problems are appended to `out` when it is given."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError("SIP messages are bytes")
    data = bytes(data)
    # lstrip copies the message: only when there is something to strip
    start = len(data) - len(data.lstrip(b"\r\n")) if data[:1] in (b"\r", b"\n") else 0
    if start and out is not None:
        out.append(Violation("RFC3261-7.5 leading-crlf", "CRLF before the start line", 1, "warning"))
    m = _header_end(data, start)
    if m:
        head, body_start = data[start:m[0]], m[1]
    else:
        head, body_start = data[start:].rstrip(b"\r\n"), len(data)
        if out is not None:
            out.append(Violation("RFC3261-7 empty-line", "no empty line ends the header section", None))
    try:
        text, utf8 = head.decode("utf-8"), True
    except UnicodeDecodeError:
        text, utf8 = head.decode("utf-8", "surrogateescape"), False
    if not text.strip():
        raise _fail("no SIP start line", "RFC3261-7 start-line")
    if out is not None:
        if text.count("\n") != text.count("\r\n") or (m and data[m[0]:m[1]] != b"\r\n\r\n"):
            out.append(Violation("RFC3261-7 crlf", "line ends with LF instead of CRLF", None))
        if not utf8:
            out.append(Violation("RFC3261-25.1 utf8", "header section is not valid UTF-8", None, "warning"))
    lines = text.split("\n")
    first = lines[0].rstrip("\r")

    names: list[str] = []
    values: list[str] = []
    numbers: list[int] = []
    cl_text: str | None = None
    cl_known = False  # cl_text is the first Content-Length value (what headers.get would find)
    if out is None and "\n " not in text and "\n\t" not in text:
        # No continuation line and no one to tell about lines without a colon (the lenient parse
        # of every message a capture or a driver sees): the loop below without its branches,
        # and the first Content-Length noted on the way (only "l" and "content-length" in any
        # case have the key "content-length").
        cl_known = True
        for lineno, line in enumerate(lines[1:], start=2):
            name, colon, value = line.partition(":")
            if colon:
                name = name.rstrip(_SP_HT)
                value = value.strip(_WS_CR)
                names.append(name)
                values.append(value)
                numbers.append(lineno)
                if cl_text is None and len(name) in (1, 14) and header_key(name) == "content-length":
                    cl_text = value
    else:
        for lineno, line in enumerate(lines[1:], start=2):
            line = line.rstrip("\r")
            if line[:1] in (" ", "\t"):
                # RFC 3261 7.3.1: a line starting with whitespace continues the previous field; the
                # CRLF and the whitespace around it are equivalent to one SP.
                if values:
                    values[-1] = (values[-1] + " " + line.strip(_WS_CR)).strip(_WS_CR)
                elif out is not None:
                    out.append(Violation("RFC3261-7.3.1 folding", "continuation line before any header", lineno))
                continue
            colon = line.find(":")
            if colon < 0:
                if out is not None:
                    out.append(Violation("RFC3261-7.3 header-line", f"header line without ':': {line!r}", lineno))
                continue
            names.append(line[:colon].rstrip(" \t"))
            values.append(line[colon + 1:].strip(_WS_CR))
            numbers.append(lineno)
    headers = Headers()
    headers._items = list(zip(names, values))

    if first[:4].upper() == "SIP/":
        rm = _RESPONSE_LINE.fullmatch(first)
        if not rm:
            raise _fail(f"bad status line {first!r}", "RFC3261-7.2 status-line")
        msg: Message = Response(bounded_int(rm.group(2)), (rm.group(3) or "").strip(_WS_CR), rm.group(1), headers)
    else:
        parts = _WS_SPLIT.split(first.strip(_WS_CR))
        if len(parts) < 3 or parts[-1][:4].upper() != "SIP/":
            raise _fail(f"not a SIP request or status line: {first!r}", "RFC3261-7.1 request-line")
        uri = first.strip(_WS_CR)[len(parts[0]):].strip(_WS_CR)
        uri = uri[:len(uri) - len(parts[-1])].strip(_WS_CR)
        msg = Request(parts[0], uri, parts[-1], headers)

    # RFC 3261 18.3: the body is Content-Length octets; trailing octets of a datagram are discarded.
    # Without a usable Content-Length (datagram), the body is the rest of the data.
    available = len(data) - body_start
    cl = None
    if not cl_known:
        cl_text = headers.get("Content-Length")
    if cl_text is not None and _DIGITS.fullmatch(cl_text):
        cl = bounded_int(cl_text)
    msg.body = data[body_start:body_start + cl] if cl is not None else data[body_start:]
    return _Parsed(msg, first, numbers, available, cl)


def parse(data: bytes, *, strict: bool = False) -> Message:
    """Parse one SIP message (a datagram, or one framed by StreamParser).

    Lenient by default; raises SipParseError only when there is no recognisable start line.
    With strict=True, raises SipParseError if `validate` finds any error-severity violation.
    """
    if strict:
        msg, violations = validate(data)
        bad = errors(violations)
        if msg is None or bad:
            raise SipParseError("; ".join(str(v) for v in bad[:5]) or "not a SIP message", violations)
        return msg
    return _parse(data, None).msg


def truncation(data: bytes) -> str | None:
    """Why a message that arrived whole (a datagram, a WebSocket message) is cut short, or None
    when it is complete: a header section without the empty line that ends it (RFC 3261 7), or
    a body shorter than its Content-Length (RFC 3261 18.3: a datagram with fewer octets is
    discarded). The lenient `parse` accepts both; a driver reports them as garbage with the bytes.
    """
    data = bytes(data)
    # lstrip copies the message: only when there is something to strip
    start = len(data) - len(data.lstrip(b"\r\n")) if data[:1] in (b"\r", b"\n") else 0
    m = _HEADER_END.search(data, start)
    if not m:
        return "truncated: no empty line ends the header section (RFC 3261 7)"
    head = data[start:m.start()].decode("utf-8", "surrogateescape")
    for line in head.split("\n")[1:]:
        name, sep, value = line.partition(":")
        if sep and header_key(name.strip()) == "content-length":
            value = value.strip(_WS_CR)
            if _DIGITS.fullmatch(value) and bounded_int(value) > len(data) - m.end():
                return (f"truncated: Content-Length {bounded_int(value)} but only {len(data) - m.end()} "
                        "octets follow (RFC 3261 18.3)")
            break
    return None


def missing_mandatory(msg: Message) -> list[str]:
    """The mandatory header fields (RFC 3261 8.1.1, 8.2.6.2) a message lacks."""
    return [name for name in ("To", "From", "CSeq", "Call-ID", "Via") if name not in msg.headers]


# ----------------------------------------------------------------------------------------------
# Validate

_METHOD = re.compile(r"[A-Za-z0-9\-.!%*_+`'~]+")
_HEADER_NAME = _METHOD
_STRICT_REQUEST_LINE = re.compile(r"([^ ]+) ([^ ]+) ([^ ]+)")
_STRICT_STATUS_LINE = re.compile(r"([^ ]+) ([0-9]+) (.*)", re.DOTALL)
_DATE = re.compile(r"(Mon|Tue|Wed|Thu|Fri|Sat|Sun), [0-9]{2} (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) "
                   r"[0-9]{4} [0-9]{2}:[0-9]{2}:[0-9]{2} GMT")
# warning-value = warn-code SP warn-agent SP warn-text; warn-code = 3DIGIT; warn-text = quoted-string
_WARNING = re.compile(r'[0-9]{3} [^ \t"]+ "(?:[^"\\]|\\.)*"', re.DOTALL)
# callid = word [ "@" word ]
_WORD = r"""[A-Za-z0-9\-.!%*_+`'~()<>:\\"/\[\]?{}]+"""
_CALL_ID = re.compile(f"{_WORD}(?:@{_WORD})?")
_CONTENT_TYPE = re.compile(r"[A-Za-z0-9\-.!%*_+`'~]+[ \t]*/[ \t]*[A-Za-z0-9\-.!%*_+`'~]+[ \t]*(;.*)?", re.DOTALL)


class _Checker:
    def __init__(self, parsed: _Parsed, out: list[Violation], stream: bool):
        self.p, self.msg, self.out, self.stream = parsed, parsed.msg, out, stream
        self.items = parsed.msg.headers.items()
        self.keys = [header_key(n) for n, _ in self.items]
        self.lines = parsed.line_numbers

    def add(self, rule: str, message: str, line: int | None = None, severity: str = "error") -> None:
        self.out.append(Violation(rule, message, line, severity))

    def fields(self, key: str) -> list[tuple[int, str]]:
        return [(self.lines[i], self.items[i][1]) for i, k in enumerate(self.keys) if k == key]

    def run(self) -> None:
        if self.msg.is_request:
            self.request_line()
        else:
            self.status_line()
        self.header_names()
        self.mandatory()
        self.single_valued()
        self.cseq()
        self.call_id()
        self.max_forwards()
        self.content_length()
        self.scalars()
        self.date()
        self.warning()
        self.name_addrs()
        self.vias()
        self.quotes()

    def request_line(self) -> None:
        msg, line = self.msg, self.p.start_line
        # Request-Line = Method SP Request-URI SP SIP-Version CRLF (exactly one SP each)
        if not _STRICT_REQUEST_LINE.fullmatch(line):
            self.add("RFC3261-7.1 request-line", f"request line is not 'Method SP Request-URI SP SIP-Version': "
                     f"{line!r}", 1)
        if not _METHOD.fullmatch(msg.method):
            self.add("RFC3261-7.1 method", f"method {msg.method!r} is not a token", 1)
        self.version(msg.version)
        uri = msg.uri
        if not uri or any(c in uri for c in " \t<>"):
            self.add("RFC3261-19.1.1 request-uri", f"Request-URI {uri!r} contains whitespace or angle brackets", 1)
            return
        try:
            parsed = parse_uri(uri)
        except UriError as exc:
            self.add("RFC3261-19.1.1 request-uri", f"bad Request-URI: {exc}", 1)
            return
        if isinstance(parsed, SipUri) and parsed.headers:
            # 19.1.1 Table 1: headers are not allowed in a Request-URI (RFC 4475 3.1.2.11)
            self.add("RFC3261-19.1.1 ruri-headers", f"Request-URI carries escaped headers: {uri!r}", 1)

    def version(self, version: str) -> None:
        if version.upper() != SIP_VERSION:
            self.add("RFC3261-7.1 sip-version", f"SIP-Version {version!r} is not SIP/2.0", 1)
        elif version != SIP_VERSION:
            self.add("RFC3261-7.1 sip-version-case", f"SIP-Version {version!r} must be sent upper-case", 1, "warning")

    def status_line(self) -> None:
        # Status-Line = SIP-Version SP Status-Code SP Reason-Phrase CRLF; Status-Code = 3DIGIT
        m = _STRICT_STATUS_LINE.fullmatch(self.p.start_line)
        if not m:
            self.add("RFC3261-7.2 status-line", f"status line is not 'SIP-Version SP Status-Code SP "
                     f"Reason-Phrase': {self.p.start_line!r}", 1)
        self.version(self.msg.version)
        code = m.group(2) if m else str(self.msg.status)
        if len(code) != 3 or not 100 <= self.msg.status <= 699:
            self.add("RFC3261-7.2 status-code", f"status code {code} is not 3 digits in 100-699", 1)

    def header_names(self) -> None:
        for i, (name, _) in enumerate(self.items):
            if not _HEADER_NAME.fullmatch(name):
                self.add("RFC3261-7.3 header-name", f"header name {name!r} is not a token", self.lines[i])

    def mandatory(self) -> None:
        # 8.1.1: To, From, CSeq, Call-ID, Max-Forwards, Via; responses copy all but Max-Forwards (8.2.6.2)
        headers = self.msg.headers
        for name in missing_mandatory(self.msg):
            self.add("RFC3261-8.1.1 mandatory-header", f"missing mandatory header {name}")
        if self.msg.is_request:
            if "Max-Forwards" not in headers:
                self.add("RFC3261-8.1.1.6 max-forwards-missing", "no Max-Forwards (RFC 2543 style)",
                         severity="warning")
            frm = headers.get("From")
            try:
                if frm is not None and parse_name_addr(frm).tag is None:
                    self.add("RFC3261-8.1.1.3 from-tag", "From has no tag (RFC 2543 style)", severity="warning")
            except HeaderError:
                pass  # reported by name_addrs()

    def single_valued(self) -> None:
        seen: dict[str, list[tuple[int, str]]] = {}
        for i, (key, (_, value)) in enumerate(zip(self.keys, self.items)):
            if key in SINGLE_HEADERS:
                seen.setdefault(key, []).append((self.lines[i], value))
        for key, found in seen.items():
            if len(found) > 1:
                distinct = {" ".join(v.split()) for _, v in found}
                self.add("RFC3261-7.3.1 single-valued",
                         f"{canonical_name(key)} appears {len(found)} times"
                         + (" with different values" if len(distinct) > 1 else " (same value)"),
                         found[1][0], "error" if len(distinct) > 1 else "warning")

    def cseq(self) -> None:
        for line, value in self.fields("cseq")[:1]:
            try:
                number, method = parse_cseq(value)
            except HeaderError:
                self.add("RFC3261-8.1.1.5 cseq-grammar", f"CSeq {value!r} is not '1*DIGIT LWS Method'", line)
                return
            if number > MAX_32:
                self.add("RFC3261-8.1.1.5 cseq-range", f"CSeq number {number} exceeds 2**32-1", line)
            if not _METHOD.fullmatch(method):
                self.add("RFC3261-8.1.1.5 cseq-grammar", f"CSeq method {method!r} is not a token", line)
            if self.msg.is_request and method != self.msg.method:
                self.add("RFC3261-8.1.1.5 cseq-method",
                         f"CSeq method {method!r} differs from the request method {self.msg.method!r}", line)

    def call_id(self) -> None:
        for line, value in self.fields("call-id")[:1]:
            if not _CALL_ID.fullmatch(value):
                self.add("RFC3261-20.8 call-id", f"Call-ID {value!r} is not word [\"@\" word]", line)

    def max_forwards(self) -> None:
        for line, value in self.fields("max-forwards")[:1]:
            if not _DIGITS.fullmatch(value) or bounded_int(value) > 255:
                self.add("RFC3261-8.1.1.6 max-forwards", f"Max-Forwards {value!r} is not 0-255", line)

    def content_length(self) -> None:
        found = self.fields("content-length")
        if not found:
            if self.stream:
                self.add("RFC3261-18.3 content-length-stream", "no Content-Length on a stream transport")
            else:
                self.add("RFC3261-20.14 content-length-missing", "no Content-Length", severity="warning")
        else:
            line, value = found[0]
            if not _DIGITS.fullmatch(value):
                self.add("RFC3261-20.14 content-length", f"Content-Length {value!r} is not a non-negative integer",
                         line)
            elif bounded_int(value) > self.p.body_available:
                self.add("RFC3261-18.3 content-length-mismatch",
                         f"Content-Length {bounded_int(value)} but only {self.p.body_available} octets follow", line)
        if self.msg.body and "Content-Type" not in self.msg.headers:
            self.add("RFC3261-20.15 content-type-missing", "a non-empty body without Content-Type")
        for line, value in self.fields("content-type")[:1]:
            if not _CONTENT_TYPE.fullmatch(value):
                self.add("RFC3261-20.15 content-type", f"Content-Type {value!r} is not type/subtype", line)

    def scalars(self) -> None:
        for key, rule in (("expires", "RFC3261-20.19 expires"), ("min-expires", "RFC3261-20.23 min-expires")):
            for line, value in self.fields(key)[:1]:
                if not _DIGITS.fullmatch(value) or bounded_int(value) > MAX_32:
                    self.add(rule, f"{canonical_name(key)} {value[:40]!r} is not 0..2**32-1", line)
        for line, value in self.fields("retry-after")[:1]:
            # Retry-After = delta-seconds [ comment ] *( SEMI retry-param ); RFC 4475 3.1.2.5 notes that
            # RFC 3261 gives no range, so a huge value is only worth a warning.
            m = re.match(r"[0-9]+", value)
            if not m:
                self.add("RFC3261-20.33 retry-after", f"Retry-After {value!r} does not start with delta-seconds", line)
            elif bounded_int(m.group()) > MAX_32:
                self.add("RFC3261-20.33 retry-after", f"Retry-After {m.group()[:40]} exceeds 2**32-1", line,
                         "warning")

    def date(self) -> None:
        for line, value in self.fields("date")[:1]:
            if not _DATE.fullmatch(value):
                if not value.endswith(" GMT"):
                    self.add("RFC3261-20.17 date-gmt", f"Date {value!r} is not in GMT", line)
                else:
                    self.add("RFC3261-20.17 date", f"Date {value!r} is not an rfc1123-date", line)

    def warning(self) -> None:
        for line, value in self.fields("warning"):
            for element in split_quoted(value, ","):
                if not _WARNING.fullmatch(element.strip(" \t")):
                    self.add("RFC3261-20.43 warning", f"Warning {element.strip()!r} is not "
                             "3DIGIT SP warn-agent SP quoted-string", line)

    def name_addrs(self) -> None:
        for i, (key, (_, value)) in enumerate(zip(self.keys, self.items)):
            if key not in NAME_ADDR_HEADERS:
                continue
            line = self.lines[i]
            if key in LIST_HEADERS and quotes_balanced(value):
                elements = split_quoted(value, ",")
            else:
                elements = [value]
            for element in elements:
                issues = name_addr_issues(element, allow_star=key == "contact" and len(elements) == 1)
                for rule, message in issues:
                    self.add(rule, f"{canonical_name(key)}: {message}", line)
                if key == "contact" and not issues and element.strip() != "*":
                    expires = parse_name_addr(element).params.get("expires")
                    if expires is not None and (not _DIGITS.fullmatch(expires) or bounded_int(expires) > MAX_32):
                        self.add("RFC3261-20.10 contact-expires",
                                 f"Contact expires {expires[:40]!r} is not 0..2**32-1", line)

    def vias(self) -> None:
        for line, value in self.fields("via"):
            for rule, message in via_issues(value):
                self.add(rule, f"Via: {message}", line)
        if not self.msg.is_request:
            return
        vias = self.fields("via")
        if vias:
            line, value = vias[0]
            top = split_list(value)
            try:
                branch = parse_via(top[0]).branch if top else None
            except HeaderError:
                return
            if branch is None or not branch.startswith(MAGIC_COOKIE):
                self.add("RFC3261-8.1.1.7 branch-cookie", f"top Via branch {branch!r} lacks the magic cookie "
                         f"{MAGIC_COOKIE} (RFC 2543 style)", line, "warning")
            elif branch == MAGIC_COOKIE:
                self.add("RFC3261-8.1.1.7 branch-cookie", "top Via branch is only the magic cookie", line, "warning")

    def quotes(self) -> None:
        """Quote balance and empty list elements in the other known headers. Unknown headers are
        free text (header-value = *(TEXT-UTF8char / UTF8-CONT / LWS)), where a lone '"' is legal."""
        for i, (key, (name, value)) in enumerate(zip(self.keys, self.items)):
            if key not in _QUOTE_CHECKED:
                continue
            if not quotes_balanced(value):
                self.add("RFC3261-25.1 quote-balance", f"{name}: unbalanced quotes", self.lines[i])
            elif key in LIST_HEADERS and key != "warning" \
                    and any(not s.strip(" \t") for s in split_quoted(value, ",")):
                self.add(RULE_LIST, f"{name}: empty list element in {value!r}", self.lines[i])


# Known headers with quoted-string in their grammar, minus those checked by name_addrs()/vias().
_QUOTE_CHECKED = (LIST_HEADERS | SINGLE_HEADERS | frozenset({
    "authorization", "proxy-authorization", "www-authenticate", "proxy-authenticate",
    "authentication-info", "content-disposition", "p-charging-vector", "privacy",
})) - NAME_ADDR_HEADERS - _FREE_TEXT - {"via"}


def validate(data: bytes, *, stream: bool = False) -> tuple[Message | None, list[Violation]]:
    """Strict RFC 3261 check listing every violation found; never raises for bytes input.

    Returns (message or None if it cannot be parsed at all, violations). `stream=True` makes a
    missing Content-Length an error (RFC 3261 18.3); over datagrams it is only a warning.
    """
    out: list[Violation] = []
    try:
        parsed = _parse(data, out)
    except SipParseError as exc:
        return None, out + exc.violations
    try:
        _Checker(parsed, out, stream).run()
    except Exception as exc:  # a validator bug must not hide the message; report it as a finding
        out.append(Violation("internal", f"validator failed: {exc!r}", None))
    return parsed.msg, list(dict.fromkeys(out))  # one report per distinct finding, in order


# ----------------------------------------------------------------------------------------------
# Stream framing (RFC 3261 18.3, RFC 5626 4.4.1)


class StreamParser:
    """Frames SIP messages on a byte stream (TCP, TLS, a reassembled capture), RFC 3261 18.3.

    A message is the header section up to the empty line plus Content-Length octets. CRLF
    keep-alives between messages are skipped and counted (RFC 5626 4.4.1). Failures are yielded as
    ParseFailure, never raised:
    - a header section without a usable Content-Length (missing, negative, conflicting): the
      header section is the failure and framing resumes after it as if there were no body;
    - a message longer than `max_size` with a known length: skipped, so framing stays in step;
    - no empty line within `max_size` octets: framing is lost, the buffer is reset.
    """

    def __init__(self, max_size: int = 65536):
        self.max_size = max_size
        self.keepalives = 0
        self._buf = bytearray()
        self._skip = 0  # octets of an oversized message still to discard
        self._scan = 0  # where to resume looking for the empty line
        self._need: int | None = None  # total length of the message whose header section is complete

    @property
    def buffered(self) -> int:
        return len(self._buf)

    def reset(self) -> None:
        self._buf.clear()
        self._skip, self._scan, self._need = 0, 0, None

    def _consume(self, n: int) -> bytes:
        raw = bytes(self._buf[:n])
        del self._buf[:n]
        self._scan, self._need = 0, None
        return raw

    def feed(self, data: bytes) -> list[Message | ParseFailure]:
        buf = self._buf
        buf += data
        out: list[Message | ParseFailure] = []
        while True:
            if self._skip:
                n = min(self._skip, len(buf))
                del buf[:n]
                self._skip -= n
                if self._skip:
                    return out
            if self._need is None:
                # RFC 5626 4.4.1 keep-alives (CRLFCRLF ping, CRLF pong) and RFC 3261 7.5 leading CRLFs.
                lead = len(buf) - len(buf.lstrip(b"\r\n"))
                if lead:
                    self.keepalives += buf.count(b"\r\n", 0, lead) or 1
                    del buf[:lead]
                    self._scan = 0
                if not buf:
                    return out
                m = _HEADER_END.search(buf, self._scan, self.max_size + 4)
                if not m:
                    if len(buf) > self.max_size:
                        out.append(ParseFailure(bytes(buf[:1024]),
                                                f"no end of header section within {self.max_size} octets"))
                        self.reset()
                    else:
                        self._scan = max(0, len(buf) - 3)  # the empty line may straddle two feeds
                    return out
                lengths = _content_lengths(bytes(buf[:m.start()]))
                if len(set(lengths)) != 1 or not _DIGITS.fullmatch(lengths[0]):
                    reason = ("no Content-Length on a stream (RFC 3261 18.3)" if not lengths
                              else f"unusable Content-Length {lengths!r}")
                    out.append(ParseFailure(self._consume(m.end()), reason))
                    continue
                total = m.end() + bounded_int(lengths[0])
                if total > self.max_size:
                    out.append(ParseFailure(self._consume(m.end()),
                                            f"message of {total} octets exceeds {self.max_size}"))
                    self._skip = total - m.end()
                    continue
                self._need = total
            if len(buf) < self._need:
                return out
            raw = self._consume(self._need)
            try:
                out.append(_parse(raw, None).msg)
            except SipParseError as exc:
                out.append(ParseFailure(raw, str(exc)))


def _content_lengths(head: bytes) -> list[str]:
    """Every Content-Length (or compact l) value of a header section, as text."""
    out: list[str] = []
    current = False
    for line in head.split(b"\n"):
        if line[:1] in (b" ", b"\t"):  # folded continuation (RFC 3261 7.3.1)
            if current:
                out[-1] = (out[-1] + " " + line.strip(b" \t\r").decode("latin-1")).strip()
            continue
        name, colon, value = line.partition(b":")
        current = bool(colon) and name.rstrip(b" \t").lower() in (b"content-length", b"l")
        if current:
            out.append(value.strip(b" \t\r").decode("latin-1"))
    return out


# ----------------------------------------------------------------------------------------------
# Helpers


def new_branch() -> str:
    """A Via branch with the RFC 3261 magic cookie, unique over space and time (8.1.1.7)."""
    return MAGIC_COOKIE + secrets.token_hex(10)


def new_tag() -> str:
    """A From/To tag: at least 32 bits of randomness (19.3)."""
    return secrets.token_hex(6)


def new_call_id(host: str | None = None) -> str:
    cid = secrets.token_hex(12)
    return f"{cid}@{host}" if host else cid


def message_summary(msg: Message) -> str:
    """'REGISTER sip:ims.example.net' or '200 OK (REGISTER)', for reports and ladder diagrams."""
    if msg.is_request:
        return f"{msg.method} {msg.uri}"
    cseq = msg.cseq
    reason = f" {msg.reason}" if msg.reason else ""
    return f"{msg.status}{reason} ({cseq[1]})" if cseq else f"{msg.status}{reason}"


REASON_PHRASES = {
    100: "Trying", 180: "Ringing", 181: "Call Is Being Forwarded", 182: "Queued", 183: "Session Progress",
    200: "OK", 202: "Accepted", 300: "Multiple Choices", 301: "Moved Permanently", 302: "Moved Temporarily",
    305: "Use Proxy", 380: "Alternative Service", 400: "Bad Request", 401: "Unauthorized",
    402: "Payment Required", 403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed",
    406: "Not Acceptable", 407: "Proxy Authentication Required", 408: "Request Timeout", 410: "Gone",
    413: "Request Entity Too Large", 414: "Request-URI Too Long", 415: "Unsupported Media Type",
    416: "Unsupported URI Scheme", 420: "Bad Extension", 421: "Extension Required",
    423: "Interval Too Brief", 480: "Temporarily Unavailable", 481: "Call/Transaction Does Not Exist",
    482: "Loop Detected", 483: "Too Many Hops", 484: "Address Incomplete", 485: "Ambiguous",
    486: "Busy Here", 487: "Request Terminated", 488: "Not Acceptable Here", 491: "Request Pending",
    493: "Undecipherable", 500: "Server Internal Error", 501: "Not Implemented", 502: "Bad Gateway",
    503: "Service Unavailable", 504: "Server Time-out", 505: "Version Not Supported",
    513: "Message Too Large", 600: "Busy Everywhere", 603: "Decline", 604: "Does Not Exist Anywhere",
    606: "Not Acceptable",
}


def make_response(request: Request, status: int, reason: str | None = None, *, to_tag: str | None = None) -> Response:
    """A response per RFC 3261 8.2.6.2: Via (all, in order), From, To (+ tag), Call-ID, CSeq copied."""
    headers = Headers()
    for name, value in request.headers.items():
        key = header_key(name)
        if key in ("via", "from", "call-id", "cseq") or (key == "timestamp" and status == 100):
            headers.add(canonical_name(key), value)
        elif key == "to":
            if to_tag and status != 100:
                try:
                    if parse_name_addr(value).tag is None:
                        value = f"{value};tag={to_tag}"
                except HeaderError:
                    pass
            headers.add("To", value)
    return Response(status, reason if reason is not None else REASON_PHRASES.get(status, ""), SIP_VERSION, headers)


__all__ = [
    "Headers", "Request", "Response", "Message", "Violation", "SipParseError", "ParseFailure",
    "StreamParser", "parse", "serialize", "validate", "errors", "new_branch", "new_tag", "new_call_id",
    "message_summary", "make_response", "header_key", "canonical_name", "split_list", "COMPACT_FORMS",
    "LIST_HEADERS", "SINGLE_HEADERS", "REASON_PHRASES", "MAGIC_COOKIE", "SIP_VERSION",
]
