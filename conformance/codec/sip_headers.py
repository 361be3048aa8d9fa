"""Structured SIP header values (RFC 3261 20 and 25.1), lenient: they accept what a liberal receiver
would and raise HeaderError only on garbage. The strict grammar checks used by `sip.validate` are the
`*_issues` functions at the end, which return (rule, message) pairs instead of raising.

Values are expected unfolded (as `sip.Headers` stores them). Parameter values are kept as written,
quotes included, so that `str()` round-trips; `unquote_string` removes the quotes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from .sip_uri import ParamDict, Uri, UriError, parse_uri


class HeaderError(ValueError):
    """A header value that no lenient reading can make sense of."""


# RFC 3261 25.1: token = 1*(alphanum / "-" / "." / "!" / "%" / "*" / "_" / "+" / "`" / "'" / "~" )
TOKEN = re.compile(r"[A-Za-z0-9\-.!%*_+`'~]+")
# RFC 7235 2.1: token68 = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="
TOKEN68 = re.compile(r"[A-Za-z0-9\-._~+/]+=*")
_WS = " \t"


def bounded_int(digits: str, cap: int = 10**30) -> int:
    """int() of an ASCII digit string, saturating at `cap` so that a 5000-digit value (an attack,
    or RFC 4475 scalar02) neither hits Python's int-conversion limit nor costs time."""
    digits = digits.lstrip("0") or "0"
    return cap if len(digits) > len(str(cap)) else min(int(digits), cap)


def is_token(text: str) -> bool:
    return TOKEN.fullmatch(text) is not None


# quoted-string = SWS DQUOTE *(qdtext / quoted-pair ) DQUOTE; quoted-pair = "\\" any octet but CR/LF.
# One character per repetition and disjoint alternatives: linear, no backtracking blow-up.
_QUOTED = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)


def _quote_end(text: str, start: int) -> int:
    """Index just past the quoted-string opening at text[start]."""
    m = _QUOTED.match(text, start)
    if m is None:
        raise HeaderError(f"unbalanced quote in {text!r}")
    return m.end()


def quotes_balanced(text: str) -> bool:
    i = text.find('"')
    while i >= 0:
        try:
            i = text.find('"', _quote_end(text, i))
        except HeaderError:
            return False
    return True


def split_quoted(text: str, sep: str) -> list[str]:
    """Split on `sep` outside quoted-strings and <...> (RFC 3261 7.3.1); segments are not stripped.

    An unbalanced quote swallows the rest of the text into the last segment.
    """
    if '"' not in text and "<" not in text:
        return text.split(sep)
    out, start, i, n, angle = [], 0, 0, len(text), False
    while i < n:
        c = text[i]
        if c == '"' and not angle:
            try:
                i = _quote_end(text, i)
            except HeaderError:
                break
            continue
        if c == "<":
            angle = True
        elif c == ">":
            angle = False
        elif c == sep and not angle:
            out.append(text[start:i])
            start = i + 1
        i += 1
    out.append(text[start:])
    return out


def unquote_string(value: str | None) -> str | None:
    """quoted-string -> its content with quoted-pairs resolved; anything else unchanged."""
    if value is None or len(value) < 2 or value[0] != '"' or value[-1] != '"':
        return value
    return re.sub(r"\\(.)", r"\1", value[1:-1], flags=re.DOTALL)


def quote_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def parse_generic_params(text: str) -> ParamDict:
    """*( SEMI generic-param ), generic-param = token [ EQUAL gen-value ] (leading ';' optional).

    Empty parameters (';;') are skipped here; `params_issues` reports them.
    """
    out = ParamDict()
    for seg in split_quoted(text, ";"):
        seg = seg.strip(_WS)
        if not seg:
            continue
        name, eq, value = seg.partition("=")
        name = name.rstrip(_WS)
        if not name:
            raise HeaderError(f"parameter without a name in {text!r}")
        value = value.strip(_WS) if eq else None
        if value and value[0] == '"':
            _quote_end(value, 0)  # raises on an unterminated quoted-string
        out[name] = value
    return out


def _format_params(params: ParamDict) -> str:
    return "".join(f";{n}" if v is None else f";{n}={v}" for n, v in params.items())


# ----------------------------------------------------------------------------------------------
# name-addr / addr-spec (To, From, Contact, Route, Record-Route, Path, Service-Route, P-Associated-URI)


@dataclass
class _NameAddrParts:
    display: str | None  # as written, quotes included
    uri_text: str  # between < and > (or the addr-spec), as written
    params_text: str  # from the first ';' after the URI
    bracketed: bool


def _split_name_addr(value: str) -> _NameAddrParts:
    s = value.strip(_WS)
    if not s:
        raise HeaderError("empty name-addr")
    if s[0] == '"':
        # name-addr = [ display-name ] LAQUOT addr-spec RAQUOT; display-name = quoted-string
        end = _quote_end(s, 0)
        lt = end + len(s[end:]) - len(s[end:].lstrip(_WS))
        if not s.startswith("<", lt):
            raise HeaderError(f"quoted display-name not followed by <...> in {value!r}")
        display = s[:end]
    else:
        lt = s.find("<")
        # An unquoted display-name is tokens and LWS: it has no ':' or '"', unlike an addr-spec
        # whose parameters may hold a '<' inside a quoted value (+sip.instance="<urn:...>").
        if lt < 0 or ":" in s[:lt] or '"' in s[:lt]:
            # addr-spec form: "the URI cannot contain commas, semicolons or question marks" (20.10),
            # so parameters after the first ';' belong to the header field.
            uri_text, semi, params = s.partition(";")
            return _NameAddrParts(None, uri_text.rstrip(_WS), semi + params, False)
        display = s[:lt].rstrip(_WS) or None
    gt = s.find(">", lt)
    if gt < 0:
        raise HeaderError(f"'<' without '>' in {value!r}")
    rest = s[gt + 1:].lstrip(_WS)
    if rest and rest[0] != ";":
        raise HeaderError(f"unexpected {rest!r} after '>' in {value!r}")
    return _NameAddrParts(display, s[lt + 1:gt], rest, True)


@dataclass
class NameAddr:
    """A name-addr or addr-spec with its header parameters; `uri` is None for Contact: *."""

    display: str | None = None  # unquoted, quoted-pairs resolved
    uri: Uri | None = None
    params: ParamDict = field(default_factory=ParamDict)
    _text: str | None = field(default=None, repr=False, compare=False)
    _snap: tuple | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.params, ParamDict):
            self.params = ParamDict(self.params)

    def _snapshot(self) -> tuple:
        return (self.display, str(self.uri), self.params._snapshot())

    def __str__(self) -> str:
        if self._text is not None and self._snapshot() == self._snap:
            return self._text
        if self.uri is None:
            return "*" + _format_params(self.params)
        display = f"{quote_string(self.display)} " if self.display is not None else ""
        return f"{display}<{self.uri}>{_format_params(self.params)}"

    @property
    def is_wildcard(self) -> bool:
        return self.uri is None

    @property
    def tag(self) -> str | None:
        return self.params.get("tag")

    @property
    def expires(self) -> int | None:
        value = unquote_string(self.params.get("expires"))
        return bounded_int(value) if value and value.isascii() and value.isdigit() else None


def parse_name_addr(value: str) -> NameAddr:
    """( name-addr / addr-spec ) *( SEMI param ) (RFC 3261 20.10, 20.20, 20.39, 20.34, 20.30)."""
    s = value.strip(_WS)
    if s == "*":
        na = NameAddr()
    else:
        parts = _split_name_addr(s)
        display = parts.display
        if display is not None and display.startswith('"'):
            display = unquote_string(display)
        try:
            # Lenient: spaces just inside <...> (RFC 4475 badaspec) are dropped.
            uri = parse_uri(parts.uri_text.strip(_WS))
        except UriError as exc:
            raise HeaderError(str(exc)) from exc
        na = NameAddr(display, uri, parse_generic_params(parts.params_text))
    na._text, na._snap = s, na._snapshot()
    return na


def parse_name_addr_list(value: str) -> list[NameAddr]:
    """A comma list of name-addr (Contact, Route, Path, ...); `*` alone is the Contact wildcard."""
    return [parse_name_addr(p) for p in split_quoted(value, ",") if p.strip(_WS)]


# ----------------------------------------------------------------------------------------------
# Via (RFC 3261 20.42)


@dataclass
class Via:
    """via-parm = sent-protocol LWS sent-by *( SEMI via-params ); transport upper-cased."""

    transport: str = "UDP"
    host: str = ""
    port: int | None = None
    params: ParamDict = field(default_factory=ParamDict)
    protocol: str = "SIP/2.0"
    _text: str | None = field(default=None, repr=False, compare=False)
    _snap: tuple | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.params, ParamDict):
            self.params = ParamDict(self.params)

    def _snapshot(self) -> tuple:
        return (self.protocol, self.transport, self.host, self.port, self.params._snapshot())

    def __str__(self) -> str:
        if self._text is not None and self._snapshot() == self._snap:
            return self._text
        port = f":{self.port}" if self.port is not None else ""
        return f"{self.protocol}/{self.transport} {self.host}{port}{_format_params(self.params)}"

    @property
    def branch(self) -> str | None:
        return self.params.get("branch")

    @property
    def received(self) -> str | None:
        return self.params.get("received")

    @property
    def rport(self) -> str | None:
        return self.params.get("rport")

    @property
    def sent_by(self) -> str:
        return self.host if self.port is None else f"{self.host}:{self.port}"


_PORT_MAX = 65535


def _parse_hostport(text: str, where: str) -> tuple[str, int | None]:
    # sent-by = host [ COLON port ], COLON = SWS ":" SWS
    text = re.sub(r"[ \t]*:[ \t]*", ":", text.strip(_WS))
    if " " in text or "\t" in text:
        raise HeaderError(f"whitespace inside sent-by in {where!r}")
    if text.startswith("["):
        end = text.find("]")
        host, port_text = text[:end + 1], text[end + 1:]
        if end < 0 or (port_text and port_text[0] != ":"):
            raise HeaderError(f"bad IPv6 reference in {where!r}")
        port_text = port_text[1:] if port_text else None
    else:
        host, colon, port_text = text.partition(":")
        if not colon:
            port_text = None
    if not host or not re.fullmatch(r"[A-Za-z0-9\-._]+|\[[0-9A-Fa-f:.]+\]", host):
        raise HeaderError(f"bad sent-by host {host!r} in {where!r}")
    if port_text is None:
        return host, None
    if not port_text.isascii() or not port_text.isdigit() or int(port_text) > _PORT_MAX:
        raise HeaderError(f"bad port {port_text!r} in {where!r}")
    return host, int(port_text)


def parse_via(value: str) -> Via:
    """One via-parm. SLASH, COLON, SEMI and EQUAL all allow LWS around them (RFC 3261 25.1)."""
    s = value.strip(_WS)
    parts = split_quoted(s, ";")
    pieces = parts[0].split("/")
    if len(pieces) != 3:
        raise HeaderError(f"sent-protocol is not name/version/transport in {value!r}")
    name, version = pieces[0].strip(_WS), pieces[1].strip(_WS)
    rest = pieces[2].strip(_WS).split(None, 1)
    if not name or not version or len(rest) != 2:
        raise HeaderError(f"bad sent-protocol or missing sent-by in {value!r}")
    host, port = _parse_hostport(rest[1], value)
    params = parse_generic_params(";".join(parts[1:])) if len(parts) > 1 else ParamDict()
    via = Via(rest[0].upper(), host, port, params, f"{name}/{version}")
    via._text, via._snap = s, via._snapshot()
    return via


def parse_via_list(value: str) -> list[Via]:
    return [parse_via(p) for p in split_quoted(value, ",") if p.strip(_WS)]


# ----------------------------------------------------------------------------------------------
# Authorization / WWW-Authenticate (RFC 3261 20.7, 20.44; RFC 7235 2.1; RFC 8898 2.1; TS 24.371 A.3.2)


@dataclass
class Credentials:
    """credentials / challenge: `scheme token68` or `scheme auth-param *(COMMA auth-param)`."""

    scheme: str
    params: ParamDict = field(default_factory=ParamDict)  # values unquoted
    token68: str | None = None
    raw_params: ParamDict = field(default_factory=ParamDict)  # values as on the wire

    def __str__(self) -> str:
        if self.token68 is not None:
            return f"{self.scheme} {self.token68}"
        if not self.raw_params:
            return self.scheme
        return f"{self.scheme} " + ", ".join(f"{n}={v}" for n, v in self.raw_params.items())

    def get(self, name: str, default: str | None = None) -> str | None:
        return self.params.get(name, default)


def parse_credentials(value: str) -> Credentials:
    """`Bearer <token68>` (RFC 8898), `Bearer access_token="..."` (TS 24.371), `Digest k=v, k="v"`."""
    s = value.strip(_WS)
    scheme, _, rest = s.partition(" ")
    if "\t" in scheme:
        scheme, _, more = scheme.partition("\t")
        rest = f"{more} {rest}"
    rest = rest.strip(_WS)
    if not is_token(scheme):
        raise HeaderError(f"bad auth-scheme in {value!r}")
    if not rest:
        return Credentials(scheme)
    if TOKEN68.fullmatch(rest):
        return Credentials(scheme, token68=rest)
    params, raw = ParamDict(), ParamDict()
    for seg in split_quoted(rest, ","):
        seg = seg.strip(_WS)
        if not seg:
            continue
        name, eq, val = seg.partition("=")
        name, val = name.rstrip(_WS), val.strip(_WS)
        if not eq or not is_token(name):
            raise HeaderError(f"bad auth-param {seg!r} in {value!r}")
        if val.startswith('"'):
            if _quote_end(val, 0) != len(val):
                raise HeaderError(f"junk after quoted auth-param value in {seg!r}")
        elif any(c in val for c in ' \t"'):  # auth-param value = token / quoted-string
            raise HeaderError(f"bad auth-param value in {seg!r}")
        raw[name] = val
        params[name] = unquote_string(val)
    return Credentials(scheme, params, None, raw)


# Digest parameters whose ABNF value is a token, not a quoted-string (RFC 3261 25.1, RFC 7616).
_UNQUOTED = frozenset({"algorithm", "nc", "stale"})


def format_credentials(scheme: str, params: dict | None = None, quote: set[str] | None = None, *,
                       token68: str | None = None) -> str:
    """Build a credentials/challenge value. `quote` names the parameters to quote (case-insensitive);
    by default every value is quoted except algorithm, nc and stale. Pass quote explicitly for
    `qop` in an Authorization (unquoted there, quoted in a challenge)."""
    if token68 is not None:
        return f"{scheme} {token68}"
    wanted = {q.lower() for q in quote} if quote is not None else None
    out = []
    for name, val in (params or {}).items():
        quoted = (name.lower() not in _UNQUOTED) if wanted is None else (name.lower() in wanted)
        out.append(f"{name}={quote_string(str(val)) if quoted else val}")
    return f"{scheme} {', '.join(out)}" if out else scheme


# ----------------------------------------------------------------------------------------------
# CSeq (RFC 3261 20.16)

_CSEQ = re.compile(r"[ \t]*([0-9]+)[ \t]+([^ \t]+)[ \t]*")


def parse_cseq(value: str) -> tuple[int, str]:
    """CSeq = 1*DIGIT LWS Method; the number is not range-checked here (sip.validate does)."""
    m = _CSEQ.fullmatch(value or "")
    if not m:
        raise HeaderError(f"bad CSeq {value!r}")
    return bounded_int(m.group(1)), m.group(2)


# ----------------------------------------------------------------------------------------------
# Strict grammar checks for sip.validate: (rule, message) pairs, never raising.

RULE_QUOTES = "RFC3261-25.1 quote-balance"
RULE_NAME_ADDR = "RFC3261-25.1 name-addr"
RULE_DISPLAY = "RFC3261-25.1 display-name"
RULE_LAQUOT = "RFC3261-25.1 name-addr-lws"
RULE_ADDR_SPEC = "RFC3261-20.10 addr-spec-reserved"
RULE_PARAMS = "RFC3261-25.1 generic-param"
RULE_VIA = "RFC3261-20.42 via-grammar"
RULE_LIST = "RFC3261-7.3.1 empty-list-element"

# gen-value = token / host / quoted-string
_GEN_VALUE = re.compile(r"""[A-Za-z0-9\-.!%*_+`'~]+|\[?[0-9A-Fa-f:.]+\]?|"(?:[^"\\]|\\.)*\"""", re.DOTALL)


def params_issues(text: str, rule: str = RULE_PARAMS) -> list[tuple[str, str]]:
    """*( SEMI generic-param ): no empty parameter, token names, token/host/quoted-string values."""
    issues = []
    segments = split_quoted(text, ";")
    if segments and segments[0].strip(_WS):
        issues.append((rule, f"parameters must start with ';': {text!r}"))
    for seg in segments[1:]:
        name, eq, val = seg.strip(_WS).partition("=")
        name, val = name.rstrip(_WS), val.strip(_WS)
        if not name:
            issues.append((rule, f"empty parameter in {text!r}"))
        elif not is_token(name):
            issues.append((rule, f"parameter name {name!r} is not a token"))
        elif eq and not _GEN_VALUE.fullmatch(val):
            issues.append((rule, f"parameter {name} has a bad value {val!r}"))
    return issues


def name_addr_issues(value: str, *, allow_star: bool = False) -> list[tuple[str, str]]:
    """Strict RFC 3261 25.1 reading of one ( name-addr / addr-spec ) *( SEMI param )."""
    s = value.strip(_WS)
    if not s:
        return [(RULE_LIST, "empty element")]
    if s == "*":
        return [] if allow_star else [(RULE_NAME_ADDR, "'*' is only allowed in Contact")]
    if not quotes_balanced(s):
        return [(RULE_QUOTES, f"unbalanced quotes in {s!r}")]
    try:
        parts = _split_name_addr(s)
        parse_uri(parts.uri_text.strip(_WS))
    except (HeaderError, UriError) as exc:
        return [(RULE_NAME_ADDR, str(exc))]
    issues = []
    if parts.bracketed:
        # display-name = *(token LWS) / quoted-string; LAQUOT = SWS "<", RAQUOT = ">" SWS
        if parts.display and parts.display[0] != '"' and not all(is_token(w) for w in parts.display.split()):
            issues.append((RULE_DISPLAY, f"unquoted display-name {parts.display!r} has non-token characters"))
        if parts.uri_text != parts.uri_text.strip(_WS):
            issues.append((RULE_LAQUOT, f"whitespace inside <...> in {s!r}"))
    elif any(c in parts.uri_text for c in "?,"):
        issues.append((RULE_ADDR_SPEC, f"URI with '?' or ',' must be in <...>: {parts.uri_text!r}"))
    if parts.params_text:
        issues += params_issues(parts.params_text)
    return issues


def via_issues(value: str) -> list[tuple[str, str]]:
    """Strict RFC 3261 20.42 reading of a Via header field line (a comma list of via-parm)."""
    if not quotes_balanced(value):
        return [(RULE_QUOTES, f"unbalanced quotes in Via {value!r}")]
    issues = []
    for element in split_quoted(value, ","):
        if not element.strip(_WS):
            issues.append((RULE_VIA, f"empty via-parm in {value!r}"))
            continue
        try:
            parse_via(element)
        except HeaderError as exc:
            issues.append((RULE_VIA, str(exc)))
            continue
        segments = split_quoted(element, ";")
        if not is_token(segments[0].split("/")[0].strip(_WS)):
            issues.append((RULE_VIA, f"protocol-name is not a token in {element!r}"))
        issues += [(RULE_VIA, msg) for _, msg in params_issues(";" + ";".join(segments[1:]))] \
            if len(segments) > 1 else []
    return issues


__all__ = [
    "HeaderError", "NameAddr", "Via", "Credentials", "ParamDict",
    "parse_name_addr", "parse_name_addr_list", "parse_via", "parse_via_list", "parse_credentials",
    "format_credentials", "parse_cseq", "parse_generic_params", "split_quoted", "unquote_string",
    "quote_string", "quotes_balanced", "is_token", "bounded_int", "name_addr_issues", "via_issues", "params_issues",
]
