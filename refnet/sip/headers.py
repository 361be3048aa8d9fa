"""The header field values the reference network reads (RFC 3261 20, 25.1): name-addr / addr-spec
(To, From, Contact, Route, Path, ...), Via, CSeq and the credentials of Authorization."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from .params import TOKEN, Params, parse_params, split_outside_quotes
from .uri import Uri, UriError, parse_uri


class HeaderError(ValueError):
    """A header field value that does not follow its grammar."""


def split_list(value: str) -> list[str]:
    """Elements of a comma-separated header value (RFC 3261 7.3.1), commas inside quotes or <...>
    kept; empty elements (",,") dropped."""
    try:
        parts = split_outside_quotes(value, ",")
    except ValueError as exc:
        raise HeaderError(str(exc)) from None
    return [p.strip(" \t") for p in parts if p.strip(" \t")]


# -- name-addr / addr-spec (20.10, 25.1) ---------------------------------------------------------

@dataclass
class NameAddr:
    uri: Uri
    display: str | None = None  # as written, quotes included
    params: Params = field(default_factory=Params)

    @property
    def tag(self) -> str | None:
        return self.params.get("tag")

    def __str__(self) -> str:
        display = f"{self.display} " if self.display else ""
        return f"{display}<{self.uri}>{self.params}"


_QUOTED_DISPLAY = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)
_TOKEN_DISPLAY = re.compile(r"[A-Za-z0-9\-.!%*_+`'~]+(?:[ \t]+[A-Za-z0-9\-.!%*_+`'~]+)*")


def parse_name_addr(value: str | None) -> NameAddr:
    """( name-addr / addr-spec ) *( SEMI param ). In the addr-spec form everything after the
    first ';' is a header parameter, not a URI parameter (20.10)."""
    if value is None:
        raise HeaderError("header missing")
    text = value.strip(" \t")
    display = None
    if text.startswith('"'):
        m = _QUOTED_DISPLAY.match(text)
        if not m:
            raise HeaderError(f"unterminated display name in {text[:80]!r}")
        display, text = m.group(), text[m.end():].lstrip(" \t")
        if not text.startswith("<"):
            raise HeaderError("a quoted display name must be followed by <URI>")
    elif "<" in text and not text.startswith("<"):
        display, text = text[:text.index("<")].strip(" \t"), text[text.index("<"):]
        if not _TOKEN_DISPLAY.fullmatch(display):
            raise HeaderError(f"display name {display!r} is neither tokens nor a quoted-string")
    if text.startswith("<"):
        end = text.find(">")
        if end < 0:
            raise HeaderError(f"no '>' in {value[:80]!r}")
        uri_text, rest = text[1:end], text[end + 1:]
    else:
        uri_text, semi, rest = text.partition(";")
        rest = semi + rest
        if any(c in uri_text for c in ",? \t"):
            raise HeaderError(f"addr-spec {uri_text!r} with ',', '?' or whitespace needs <...>")
    try:
        uri = parse_uri(uri_text)
        params = parse_params(rest)
    except UriError as exc:
        raise HeaderError(f"URI: {exc}") from None
    except ValueError as exc:
        raise HeaderError(str(exc)) from None
    return NameAddr(uri, display or None, params)


# -- Via (20.42) ---------------------------------------------------------------------------------

@dataclass
class Via:
    transport: str
    host: str
    port: int | None = None
    params: Params = field(default_factory=Params)
    protocol: str = "SIP/2.0"

    @property
    def branch(self) -> str | None:
        return self.params.get("branch")

    @property
    def sent_by(self) -> str:
        return self.host if self.port is None else f"{self.host}:{self.port}"

    def __str__(self) -> str:
        return f"{self.protocol}/{self.transport} {self.sent_by}{self.params}"


# sent-protocol = protocol-name SLASH protocol-version SLASH transport, SLASH may have LWS around it
_VIA = re.compile(r"[ \t]*([A-Za-z0-9\-.!%*_+`'~]+)[ \t]*/[ \t]*([A-Za-z0-9\-.!%*_+`'~]+)[ \t]*/[ \t]*"
                  r"([A-Za-z0-9\-.!%*_+`'~]+)[ \t]+(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9\-._]+)"
                  r"(?:[ \t]*:[ \t]*([0-9]{1,5}))?[ \t]*(;.*)?", re.DOTALL)


def parse_via(value: str | None) -> Via:
    """One via-parm (a single element of the Via list)."""
    if value is None:
        raise HeaderError("no Via")
    m = _VIA.fullmatch(value.strip(" \t"))
    if not m:
        raise HeaderError(f"Via {value[:80]!r} is not 'SIP/2.0/transport host[:port] *(;param)'")
    name, version, transport, host, port, rest = m.groups()
    if port is not None and not 0 < int(port) < 65536:
        raise HeaderError(f"Via port {port} out of range")
    try:
        params = parse_params(rest or "")
    except ValueError as exc:
        raise HeaderError(f"Via parameters: {exc}") from None
    return Via(transport, host, int(port) if port else None, params, f"{name}/{version}")


# -- CSeq (20.16) ---------------------------------------------------------------------------------

_CSEQ = re.compile(r"[ \t]*([0-9]{1,10})[ \t]+([A-Za-z0-9\-.!%*_+`'~]+)[ \t]*")


def parse_cseq(value: str | None) -> tuple[int, str]:
    m = _CSEQ.fullmatch(value or "")
    if not m:
        raise HeaderError(f"CSeq {value!r} is not '1*DIGIT LWS Method'")
    return int(m.group(1)), m.group(2)


# -- credentials (20.7, RFC 7235 2.1) ------------------------------------------------------------

@dataclass
class Credentials:
    scheme: str
    token68: str | None = None
    params: dict[str, str] = field(default_factory=dict)  # lower-case names, unquoted values


_TOKEN68 = re.compile(r"[A-Za-z0-9\-._~+/]+=*")


def _unquote(text: str) -> str:
    if len(text) >= 2 and text[0] == text[-1] == '"':
        return re.sub(r"\\(.)", r"\1", text[1:-1])
    return text


def parse_credentials(value: str) -> Credentials:
    """credentials = auth-scheme [ 1*SP ( token68 / auth-param *( COMMA auth-param ) ) ]."""
    words = value.strip(" \t").split(None, 1) or [""]
    scheme, rest = words[0], (words[1] if len(words) > 1 else "")
    if not TOKEN.fullmatch(scheme):
        raise HeaderError(f"auth scheme {scheme!r} is not a token")
    rest = rest.strip(" \t")
    if not rest:
        return Credentials(scheme)
    if _TOKEN68.fullmatch(rest) and not re.fullmatch(r"[^=]+=[^=].*", rest):
        return Credentials(scheme, token68=rest)
    params: dict[str, str] = {}
    try:
        items = split_outside_quotes(rest, ",")
    except ValueError as exc:
        raise HeaderError(str(exc)) from None
    for item in items:
        name, eq, val = item.partition("=")
        name, val = name.strip(" \t"), val.strip(" \t")
        if not eq or not TOKEN.fullmatch(name) or not val:
            raise HeaderError(f"auth-param {item.strip()!r} is not name=value")
        if val.startswith('"') and (len(val) < 2 or not val.endswith('"')):
            raise HeaderError(f"auth-param {name}: unterminated quoted-string")
        params[name.lower()] = _unquote(val)
    return Credentials(scheme, params=params)
