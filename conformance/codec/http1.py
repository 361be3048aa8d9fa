"""Passive, sans-IO HTTP/1.1 parser for one direction of a TCP stream (RFC 9112).

`Http1Parser("request")` reads what a client sent, `Http1Parser("response")` what a server sent.
Feed bytes in capture order; complete messages come out. For responses the parser must know the
method of the request each answers (HEAD, CONNECT and 1xx/204/304 have no body), so the stream
dissector calls `expect_response(method)` for every request it saw, in order.

A `101 Switching Protocols` response (and the request that asked for the upgrade) ends HTTP on
that stream: the parser hands the bytes after the header section to the next protocol
(`take_upgraded()`), e.g. the WebSocket frame parser.

    HTTP-message   = start-line CRLF *( field-line CRLF ) CRLF [ message-body ]
    request-line   = method SP request-target SP HTTP-version
    status-line    = HTTP-version SP status-code SP [ reason-phrase ]
    field-line     = field-name ":" OWS field-value OWS
"""

from __future__ import annotations

import re
from collections import deque
from dataclasses import dataclass, field

MAX_HEAD = 64 * 1024  # bound on a header section we are willing to buffer
MAX_BODY = 64 * 1024 * 1024

_TOKEN = r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"
_REQUEST_LINE = re.compile(rf"^({_TOKEN}) (\S+) (HTTP/\d\.\d)$")
_STATUS_LINE = re.compile(r"^(HTTP/\d\.\d) (\d{3})(?: (.*))?$")
_FIELD_NAME = re.compile(rf"^{_TOKEN}$")
_CHUNK_SIZE = re.compile(rb"^([0-9A-Fa-f]+)[ \t]*(;.*)?$")


@dataclass
class HttpMessage:
    kind: str  # request | response
    version: str
    headers: list[tuple[str, str]]
    body: bytes = b""
    method: str = ""  # request
    target: str = ""  # request
    status: int | None = None  # response
    reason: str = ""  # response
    request_method: str = ""  # response: the method of the request it answers, when known
    chunked: bool = False
    upgrade: str | None = None  # protocol switched to (101) or asked for (request)
    problems: list[str] = field(default_factory=list)  # deviations that did not stop parsing

    def header_values(self, name: str) -> list[str]:
        low = name.lower()
        return [v for k, v in self.headers if k.lower() == low]

    def header(self, name: str) -> str | None:
        vals = self.header_values(name)
        return vals[0] if vals else None


@dataclass
class HttpError:
    reason: str
    raw: bytes = b""
    ref: str = "RFC 9112"


def _tokens(value: str | None) -> list[str]:
    return [t.strip().lower() for t in (value or "").split(",") if t.strip()]


class Http1Parser:
    def __init__(self, role: str):
        if role not in ("request", "response"):
            raise ValueError("role must be request or response")
        self.role = role
        self._buf = bytearray()
        self._head: HttpMessage | None = None  # header section parsed, body in progress
        self._body_mode = ""  # length | chunked | close
        self._remaining = 0
        self._chunks: list[bytes] = []
        self._chunk_state = "size"
        self._methods: deque[str] = deque()  # response role: methods of requests not yet answered
        self.upgraded = False  # HTTP is over on this direction; bytes go to the next protocol
        self.awaiting_upgrade = False  # request role: sent an Upgrade request, answer not seen yet
        self.failed: HttpError | None = None

    # -- wiring with the other direction ---------------------------------------------------
    def expect_response(self, method: str) -> None:
        self._methods.append(method.upper())

    def switch(self) -> bytes:
        """Request role: the server answered 101; the rest of this direction is the new protocol."""
        self.awaiting_upgrade, self.upgraded = False, True
        return self.take_upgraded()

    def upgrade_refused(self) -> list[HttpMessage | HttpError]:
        """Request role: the server refused the upgrade; what followed is more HTTP."""
        self.awaiting_upgrade = False
        return self.feed(b"")

    def take_upgraded(self) -> bytes:
        data = bytes(self._buf)
        self._buf.clear()
        return data

    # -- parsing ----------------------------------------------------------------------------
    def feed(self, data: bytes) -> list[HttpMessage | HttpError]:
        if self.failed is not None:
            return []
        self._buf += data
        if self.upgraded or self.awaiting_upgrade:
            return []
        out: list[HttpMessage | HttpError] = []
        while not (self.upgraded or self.awaiting_upgrade or self.failed):
            item = self._body() if self._head is not None else self._start()
            if item is None:
                break
            out.append(item)
        return out

    def feed_eof(self) -> list[HttpMessage | HttpError]:
        """The direction was closed: a body delimited by the close is complete now."""
        if self._head is not None and self._body_mode == "close":
            msg, self._head = self._head, None
            msg.body = bytes(self._buf)
            self._buf.clear()
            return [msg]
        if self._head is not None or (self._buf and not self.upgraded and not self.failed):
            return [self._fail("connection closed inside an HTTP message")]
        return []

    def _fail(self, reason: str) -> HttpError:
        err = HttpError(reason, bytes(self._buf))
        self._buf.clear()
        self._head = None
        self.failed = err
        return err

    def _start(self) -> HttpMessage | HttpError | None:
        # RFC 9112 2.2: a recipient SHOULD ignore at least one empty line before the start line.
        while self._buf[:2] == b"\r\n":
            del self._buf[:2]
        end = self._buf.find(b"\r\n\r\n")
        if end < 0:
            if len(self._buf) > MAX_HEAD:
                return self._fail(f"header section longer than {MAX_HEAD} bytes")
            return None
        head = bytes(self._buf[:end])
        del self._buf[:end + 4]
        try:
            text = head.decode("latin-1")
        except UnicodeDecodeError:  # pragma: no cover - latin-1 decodes everything
            return self._fail("undecodable header section")
        lines = text.split("\r\n")
        msg = self._start_line(lines[0])
        if msg is None:
            self._buf[:0] = head + b"\r\n\r\n"
            return self._fail(f"not an HTTP/1.1 {self.role} line: {lines[0][:80]!r}")
        for line in lines[1:]:
            if line[:1] in (" ", "\t"):
                # obs-fold (RFC 9112 5.2): replace with SP, and note it.
                if not msg.headers:
                    return self._fail("header section starts with a continuation line")
                name, value = msg.headers[-1]
                msg.headers[-1] = (name, f"{value} {line.strip()}")
                msg.problems.append("obsolete line folding")
                continue
            name, sep, value = line.partition(":")
            if not sep or not _FIELD_NAME.match(name):
                msg.problems.append(f"malformed field line {line[:60]!r}")
                continue
            msg.headers.append((name, value.strip(" \t")))
        return self._framing(msg)

    def _start_line(self, line: str) -> HttpMessage | None:
        if self.role == "request":
            m = _REQUEST_LINE.match(line)
            if not m:
                return None
            return HttpMessage("request", m.group(3), [], method=m.group(1), target=m.group(2))
        m = _STATUS_LINE.match(line)
        if not m:
            return None
        return HttpMessage("response", m.group(1), [], status=int(m.group(2)), reason=m.group(3) or "")

    def _framing(self, msg: HttpMessage) -> HttpMessage | HttpError | None:
        """RFC 9112 6.3: message body length."""
        if msg.kind == "response":
            if msg.status is not None and msg.status >= 200 or msg.status == 101:
                msg.request_method = self._methods.popleft() if self._methods else ""
            if msg.status == 101:
                msg.upgrade = (msg.header("Upgrade") or "").strip().lower() or None
                self.upgraded = True
                return msg
            if msg.request_method == "HEAD" or (msg.status or 0) < 200 or msg.status in (204, 304) \
                    or (msg.request_method == "CONNECT" and 200 <= (msg.status or 0) < 300):
                return msg
        elif "upgrade" in _tokens(msg.header("Connection")) and msg.header("Upgrade"):
            msg.upgrade = msg.header("Upgrade").strip().lower()
            self.awaiting_upgrade = True
        te = _tokens(",".join(msg.header_values("Transfer-Encoding")))
        lengths = {v.strip() for v in ",".join(msg.header_values("Content-Length")).split(",") if v.strip()}
        if te:
            if te[-1] != "chunked":
                if msg.kind == "request":
                    return self._fail("request Transfer-Encoding does not end with chunked (RFC 9112 6.3)")
                self._head, self._body_mode = msg, "close"
                return None
            if lengths:
                msg.problems.append("both Transfer-Encoding and Content-Length (RFC 9112 6.3)")
            msg.chunked = True
            self._head, self._body_mode, self._chunk_state, self._chunks = msg, "chunked", "size", []
            return self._body()
        if lengths:
            if len(lengths) != 1 or not next(iter(lengths)).isdigit():
                return self._fail(f"invalid Content-Length {sorted(lengths)}")
            n = int(next(iter(lengths)))
            if n > MAX_BODY:
                return self._fail(f"Content-Length {n} exceeds the dissector bound")
            self._head, self._body_mode, self._remaining = msg, "length", n
            return self._body()
        if msg.kind == "request":
            return msg  # no body
        self._head, self._body_mode = msg, "close"
        return None

    def _body(self) -> HttpMessage | HttpError | None:
        msg = self._head
        assert msg is not None
        if self._body_mode == "length":
            if len(self._buf) < self._remaining:
                return None
            msg.body = bytes(self._buf[:self._remaining])
            del self._buf[:self._remaining]
        elif self._body_mode == "chunked":
            done = self._chunked()
            if isinstance(done, HttpError) or not done:
                return done or None
            msg.body = b"".join(self._chunks)
        else:
            return None  # until the connection closes
        self._head = None
        return msg

    def _chunked(self) -> bool | HttpError:
        """chunk = chunk-size [ chunk-ext ] CRLF chunk-data CRLF; last-chunk; trailer-section CRLF."""
        while True:
            if self._chunk_state == "size":
                end = self._buf.find(b"\r\n")
                if end < 0:
                    return self._fail("chunk-size line too long") if len(self._buf) > 4096 else False
                m = _CHUNK_SIZE.match(bytes(self._buf[:end]))
                if not m:
                    return self._fail(f"invalid chunk-size line {bytes(self._buf[:end])[:40]!r}")
                del self._buf[:end + 2]
                self._remaining = int(m.group(1), 16)
                if sum(map(len, self._chunks)) + self._remaining > MAX_BODY:
                    return self._fail("chunked body exceeds the dissector bound")
                self._chunk_state = "trailer" if self._remaining == 0 else "data"
            elif self._chunk_state == "data":
                if len(self._buf) < self._remaining + 2:
                    return False
                if self._buf[self._remaining:self._remaining + 2] != b"\r\n":
                    return self._fail("chunk-data not followed by CRLF")
                self._chunks.append(bytes(self._buf[:self._remaining]))
                del self._buf[:self._remaining + 2]
                self._chunk_state = "size"
            else:  # trailer-section CRLF
                end = self._buf.find(b"\r\n")
                if end < 0:
                    return False
                line = bytes(self._buf[:end])
                del self._buf[:end + 2]
                if not line:
                    return True
                name, _, value = line.decode("latin-1").partition(":")
                assert self._head is not None
                self._head.headers.append((name, value.strip()))
