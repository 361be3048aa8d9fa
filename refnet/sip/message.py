"""SIP requests and responses for the reference network (RFC 3261 7, 8.2.6, 18.3, 20).

`parse` reads what a node receives or restyles, `serialize` writes it, `validate` lists what makes a
request unfit for processing (the 400's reason names it), `StreamFramer` cuts a TCP byte stream into
messages by Content-Length and `make_response` builds an 8.2.6.2 response. Written for refnet alone,
from the RFC, apart from the harness's codec (see refnet/sip/__init__.py for why).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache

from .headers import HeaderError, parse_cseq, parse_name_addr, parse_via, split_list

SIP_VERSION = "SIP/2.0"

# RFC 3261 7.3.3 compact forms, and those later RFCs registered for headers refnet may meet
COMPACT = {"i": "call-id", "m": "contact", "e": "content-encoding", "l": "content-length",
           "c": "content-type", "f": "from", "s": "subject", "k": "supported", "t": "to", "v": "via",
           "o": "event", "u": "allow-events", "r": "refer-to", "b": "referred-by", "x": "session-expires"}

# Headers whose grammar is a comma-separated list (7.3.1: lines may be combined or split). The
# credentials and challenges are not: their auth-params hold commas of their own.
LIST_HEADERS = frozenset({
    "via", "contact", "route", "record-route", "path", "service-route", "p-associated-uri",
    "p-asserted-identity", "p-preferred-identity", "supported", "require", "proxy-require", "unsupported",
    "allow", "allow-events", "accept", "accept-encoding", "accept-language", "content-encoding",
    "content-language", "warning", "in-reply-to", "alert-info", "call-info", "error-info",
    "security-client", "security-server", "security-verify",
})

_LONG_NAMES = {"call-id": "Call-ID", "cseq": "CSeq"}


@lru_cache(maxsize=1024)  # every lookup scans all lines, and names repeat; bounded: names come from the wire
def header_key(name: str) -> str:
    """Case-insensitive, compact-form-expanded key of a header name ('v' and 'VIA' -> 'via')."""
    low = name.strip().lower()
    return COMPACT.get(low, low)


def long_name(key: str) -> str:
    return _LONG_NAMES.get(key) or "-".join(w.capitalize() for w in key.split("-"))


class Headers:
    """Header field lines in order, as (name as written, value). Lookups ignore case and compact
    forms; for list headers `get`/`get_all`/`remove_first` see the comma-separated elements, so the
    top Via is the top Via whether the sender combined lines or not."""

    def __init__(self, items=()):
        self._lines: list[tuple[str, str]] = [(str(n), str(v)) for n, v in items]

    def _where(self, name: str) -> list[int]:
        key = header_key(name)
        return [i for i, (n, _) in enumerate(self._lines) if header_key(n) == key]

    def get_all(self, name: str) -> list[str]:
        values = [self._lines[i][1] for i in self._where(name)]
        if header_key(name) not in LIST_HEADERS:
            return values
        out: list[str] = []
        for value in values:
            try:
                out += split_list(value)
            except HeaderError:
                out.append(value)  # unbalanced quotes: one element, for the grammar checks to reject
        return out

    def get(self, name: str, default: str | None = None) -> str | None:
        values = self.get_all(name)
        return values[0] if values else default

    def set(self, name: str, value: str) -> None:
        """One line with this value, where the first line of that header was (else at the end)."""
        where = self._where(name)
        if not where:
            self._lines.append((name, value))
            return
        self._lines[where[0]] = (name, value)
        for i in reversed(where[1:]):
            del self._lines[i]

    def add(self, name: str, value: str) -> None:
        self._lines.append((name, value))

    def prepend(self, name: str, value: str) -> None:
        """Above the first line of this header (a new top Via), or at the end when there is none."""
        where = self._where(name)
        self._lines.insert(where[0] if where else len(self._lines), (name, value))

    def remove(self, name: str) -> None:
        for i in reversed(self._where(name)):
            del self._lines[i]

    def remove_first(self, name: str) -> str | None:
        """Take off the first element (the top Via when relaying a response, 16.7 step 3)."""
        where = self._where(name)
        if not where:
            return None
        line_name, value = self._lines[where[0]]
        try:
            elements = split_list(value) if header_key(name) in LIST_HEADERS else [value]
        except HeaderError:
            elements = [value]  # unbalanced quotes: the whole line is one element
        if len(elements) > 1:
            self._lines[where[0]] = (line_name, ", ".join(elements[1:]))
        else:
            del self._lines[where[0]]
        return elements[0] if elements else value

    def items(self) -> list[tuple[str, str]]:
        return list(self._lines)

    def __iter__(self):
        return iter(list(self._lines))

    def __len__(self) -> int:
        return len(self._lines)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and bool(self._where(name))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Headers) and self._lines == other._lines

    def copy(self) -> Headers:
        return Headers(self._lines)

    def __repr__(self) -> str:
        return f"Headers({self._lines!r})"


class _Message:
    headers: Headers
    body: bytes

    @property
    def call_id(self) -> str | None:
        return self.headers.get("Call-ID")

    @property
    def cseq(self) -> tuple[int, str] | None:
        try:
            return parse_cseq(self.headers.get("CSeq"))
        except HeaderError:
            return None

    @property
    def branch(self) -> str | None:
        try:
            return parse_via(self.headers.get("Via")).branch
        except HeaderError:
            return None

    def serialize(self) -> bytes:
        return serialize(self)


@dataclass
class Request(_Message):
    method: str
    uri: str
    headers: Headers = field(default_factory=Headers)
    body: bytes = b""
    version: str = SIP_VERSION

    def start_line(self) -> str:
        return f"{self.method} {self.uri} {self.version}"

    def copy(self) -> Request:
        return Request(self.method, self.uri, self.headers.copy(), self.body, self.version)


@dataclass
class Response(_Message):
    status: int
    reason: str = ""
    headers: Headers = field(default_factory=Headers)
    body: bytes = b""
    version: str = SIP_VERSION

    def start_line(self) -> str:
        return f"{self.version} {self.status} {self.reason}"

    @property
    def method(self) -> str | None:
        """The method of the request answered, from CSeq."""
        cseq = self.cseq
        return cseq[1] if cseq else None

    def copy(self) -> Response:
        return Response(self.status, self.reason, self.headers.copy(), self.body, self.version)


Message = Request | Response


def serialize(msg: Message) -> bytes:
    """Start line, header lines in order, empty line, body. Content-Length always states the body's
    size: the first such line carries it, others go, one is added when missing (18.3, 20.14)."""
    lines = [msg.start_line()]
    length_written = False
    for name, value in msg.headers.items():
        if header_key(name) == "content-length":
            if length_written:
                continue
            value, length_written = str(len(msg.body)), True
        lines.append(f"{name}: {value}")
    if not length_written:
        lines.append(f"Content-Length: {len(msg.body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8", "surrogateescape") + bytes(msg.body)


# -- parsing ------------------------------------------------------------------------------------

class SipError(ValueError):
    """Bytes that are not a SIP message."""


@dataclass
class Parsed:
    """A message as far as it could be read, and what is wrong with its framing or lines."""

    msg: Message | None
    problems: list[str]
    body_available: int = 0  # octets after the empty line
    content_length: str | None = None


_STATUS_CODE = re.compile(r"[1-6][0-9][0-9]")


def _start_line(line: str, problems: list[str]) -> Message | None:
    if line.upper().startswith("SIP/"):
        version, _sp, rest = line.partition(" ")
        code, _sp, reason = rest.partition(" ")
        if not _STATUS_CODE.fullmatch(code):
            problems.append(f"status line {line[:80]!r} has no status code 100-699")
            return None
        return Response(int(code), reason, version=version)
    parts = line.split(" ")
    if len(parts) != 3 or not all(parts):
        problems.append(f"request line {line[:80]!r} is not 'Method SP Request-URI SP SIP-Version'")
        # still a request with a method, for a 400 that can copy the headers
        words = line.split()
        return Request(words[0], words[1] if len(words) > 1 else "", version=words[-1]) if words else None
    if parts[2].upper() != SIP_VERSION:
        problems.append(f"SIP-Version {parts[2][:20]!r} is not SIP/2.0")
    return Request(parts[0], parts[1], version=parts[2])


def parse_parts(data: bytes, *, datagram: bool = True) -> Parsed:
    """Read a message without judging its header values. A datagram's body is what follows the
    empty line, cut to Content-Length (18.3: a shorter datagram is a problem)."""
    data = data.lstrip(b"\r\n")  # 7.5: CRLFs before the start line are ignored
    end = data.find(b"\r\n\r\n")
    sep = 4
    if end < 0:
        end, sep = data.find(b"\n\n"), 2  # bare LF line ends: read them, the message is unambiguous
    problems: list[str] = []
    if end < 0:
        head, body = data, b""
        problems.append("no empty line at the end of header")
    else:
        head, body = data[:end], data[end + sep:]
    text = head.decode("utf-8", "surrogateescape")
    lines: list[str] = []
    for line in re.split(r"\r?\n", text):
        if line[:1] in (" ", "\t") and len(lines) > 1:  # 7.3.1 folding: continuation of the last line
            lines[-1] = lines[-1].rstrip(" \t") + " " + line.strip(" \t")
        else:
            lines.append(line)
    msg = _start_line(lines[0].rstrip("\r"), problems) if lines and lines[0] else None
    if msg is None:
        if not problems:
            problems.append("no start line")
        return Parsed(None, problems)
    for number, line in enumerate(lines[1:], start=2):
        name, colon, value = line.partition(":")
        if not colon:
            problems.append(f"header line {number} {line[:60]!r} has no colon")
            continue
        msg.headers.add(name.rstrip(" \t"), value.strip(" \t\r"))
    length = msg.headers.get("Content-Length")
    parsed = Parsed(msg, problems, len(body), length)
    if length is not None and length.isascii() and length.isdigit():
        if int(length) > len(body):
            problems.append(f"Content-Length {int(length)} exceeds the {len(body)} octets after the header")
        body = body[:int(length)]
    elif length is not None:
        problems.append(f"Content-Length {length[:40]!r} is not a number")
    msg.body = body
    return parsed


def parse(data: bytes) -> Message:
    """A well-framed message, or SipError naming the first problem."""
    parsed = parse_parts(data)
    if parsed.msg is None or parsed.problems:
        raise SipError(parsed.problems[0] if parsed.problems else "not a SIP message")
    return parsed.msg


def make_response(request: Request, status: int, reason: str, *, to_tag: str | None = None) -> Response:
    """8.2.6.2: every Via in order, From, To (with `to_tag` unless it has a tag or this is a 100),
    Call-ID and CSeq copied from the request; 8.2.6.1: a 100 also copies Timestamp."""
    resp = Response(status, reason)
    for name, value in request.headers.items():
        key = header_key(name)
        if key == "to" and to_tag and status != 100:
            try:
                if parse_name_addr(value).tag is None:
                    value = f"{value};tag={to_tag}"
            except HeaderError:
                pass  # copied as it is: the request's own defect
        if key in ("via", "from", "to", "call-id", "cseq") or (key == "timestamp" and status == 100):
            resp.headers.add(long_name(key), value)
    return resp
