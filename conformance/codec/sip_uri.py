"""SIP, SIPS and tel URIs: parse, serialise, compare (RFC 3261 19.1, RFC 3966).

Parsed objects keep the text they came from: `str(uri)` gives it back byte for byte until a field is
changed, and only then is the URI rebuilt from its fields. Components are kept as written (escaped);
the `*_decoded` properties unescape. `uri_equal` implements RFC 3261 19.1.4 and RFC 3966 4.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping, MutableMapping
from dataclasses import dataclass, field
from urllib.parse import quote, unquote, unquote_to_bytes


class UriError(ValueError):
    """The text is not a URI of the expected kind."""


class ParamDict(MutableMapping):
    """Ordered mapping name -> value (None for a valueless parameter); names compare case-insensitively.

    Iteration yields the names as first written; replacing a value keeps the position and the name.
    """

    __slots__ = ("_d",)

    def __init__(self, data: Mapping | Iterable[tuple[str, str | None]] | None = None):
        self._d: dict[str, tuple[str, str | None]] = {}
        if data:
            self.update(data)

    def __getitem__(self, name: str) -> str | None:
        return self._d[name.lower()][1]

    def __setitem__(self, name: str, value: str | None) -> None:
        key = name.lower()
        old = self._d.get(key)
        self._d[key] = (old[0] if old else name, value)

    def __delitem__(self, name: str) -> None:
        del self._d[name.lower()]

    def __iter__(self) -> Iterator[str]:
        return (n for n, _ in self._d.values())

    def __len__(self) -> int:
        return len(self._d)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._d

    def __eq__(self, other: object) -> bool:
        if isinstance(other, ParamDict):
            return {k: v for k, (_, v) in self._d.items()} == {k: v for k, (_, v) in other._d.items()}
        if isinstance(other, Mapping):
            return {k: v for k, (_, v) in self._d.items()} == {str(k).lower(): v for k, v in other.items()}
        return NotImplemented

    __hash__ = None  # mutable

    def __repr__(self) -> str:
        return f"ParamDict({dict(self.items())!r})"

    def copy(self) -> ParamDict:
        new = ParamDict()
        new._d = dict(self._d)
        return new

    def _snapshot(self) -> tuple:
        return tuple(self._d.values())


def _params(value) -> ParamDict:
    return value if isinstance(value, ParamDict) else ParamDict(value)


def _decode(text: str | None) -> str | None:
    # Escapes may hide any octet (%00 in RFC 4475 escnull), so undecodable UTF-8 is kept reversibly.
    return None if text is None else unquote(text, errors="surrogateescape")


# RFC 3261 25.1: user = 1*( unreserved / escaped / user-unreserved ); these stay unescaped.
_USER_SAFE = "-_.!~*'()&=+$,;?/"


def escape_user(text: str) -> str:
    """Escape a user part for a SIP URI (RFC 3261 25.1 `user`)."""
    return quote(text, safe=_USER_SAFE)


# Whitespace, controls, and the delimiters that can never appear unescaped in a URI (RFC 3986 2, 3261 25.1).
_FORBIDDEN = re.compile(r'[\x00-\x20\x7f<>"]')
# hostname / IPv4address (lenient: '_' is tolerated, it occurs in the wild) / IPv6reference.
_HOST = re.compile(r"[A-Za-z0-9\-._]+|\[[0-9A-Fa-f:.]+\]")
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+\-.]*")


def _split_params(text: str, what: str, sep: str = ";") -> ParamDict:
    out = ParamDict()
    for seg in text.split(sep):
        name, eq, value = seg.partition("=")
        if not name:
            raise UriError(f"empty {what} name in {text!r}")
        out[name] = value if eq else None
    return out


@dataclass(eq=True)
class SipUri:
    """RFC 3261 19.1.1: sip:user:password@host:port;uri-parameters?headers (components as written)."""

    scheme: str = "sip"
    user: str | None = None
    password: str | None = None
    host: str = ""
    port: int | None = None
    params: ParamDict = field(default_factory=ParamDict)
    headers: ParamDict = field(default_factory=ParamDict)
    _text: str | None = field(default=None, repr=False, compare=False)
    _snap: tuple | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.params = _params(self.params)
        self.headers = _params(self.headers)

    @classmethod
    def parse(cls, text: str) -> SipUri:
        """SIP-URI / SIPS-URI (RFC 3261 25.1); raises UriError."""
        if not isinstance(text, str):
            raise UriError(f"not a string: {text!r}")
        colon = text.find(":")
        scheme = text[:colon].lower() if colon > 0 else ""
        if scheme not in ("sip", "sips"):
            raise UriError(f"not a sip/sips URI: {text!r}")
        bad = _FORBIDDEN.search(text)
        if bad:
            raise UriError(f"character {bad.group()!r} not allowed in a URI: {text!r}")
        rest = text[colon + 1:]
        user = password = None
        # userinfo = ( user / telephone-subscriber ) [ ":" password ] "@"; '@' is never legal
        # unescaped in user, password, parameters or headers, so the first one ends userinfo.
        at = rest.find("@")
        if at >= 0:
            user, colon_, password = rest[:at].partition(":")
            if not colon_:
                password = None
            if not user:
                raise UriError(f"empty user part in {text!r}")
            rest = rest[at + 1:]
        hostport, q, headers_text = rest.partition("?")
        hostport, semi, params_text = hostport.partition(";")
        if hostport.startswith("["):
            end = hostport.find("]")
            host, port_text = hostport[:end + 1], hostport[end + 1:]
            if end < 0 or (port_text and not port_text.startswith(":")):
                raise UriError(f"bad IPv6 reference in {text!r}")
            port_text = port_text[1:] if port_text else None
        else:
            host, colon_, port_text = hostport.partition(":")
            if not colon_:
                port_text = None
        if not _HOST.fullmatch(host):
            raise UriError(f"bad host {host!r} in {text!r}")
        port = None
        if port_text is not None:
            if not port_text.isascii() or not port_text.isdigit() or int(port_text) > 65535:
                raise UriError(f"bad port {port_text!r} in {text!r}")
            port = int(port_text)
        params = _split_params(params_text, "uri-parameter") if semi else ParamDict()
        headers = _split_params(headers_text, "header", "&") if q else ParamDict()
        uri = cls(scheme, user, password, host, port, params, headers)
        uri._text, uri._snap = text, uri._snapshot()
        return uri

    def _snapshot(self) -> tuple:
        return (self.scheme, self.user, self.password, self.host, self.port,
                self.params._snapshot(), self.headers._snapshot())

    def __str__(self) -> str:
        if self._text is not None and self._snapshot() == self._snap:
            return self._text
        out = [self.scheme, ":"]
        if self.user is not None:
            out.append(self.user)
            if self.password is not None:
                out += [":", self.password]
            out.append("@")
        out.append(self.host)
        if self.port is not None:
            out.append(f":{self.port}")
        for name, value in self.params.items():
            out.append(f";{name}" if value is None else f";{name}={value}")
        if self.headers:
            out.append("?" + "&".join(f"{n}={v or ''}" for n, v in self.headers.items()))
        return "".join(out)

    def copy(self) -> SipUri:
        new = SipUri(self.scheme, self.user, self.password, self.host, self.port,
                     self.params.copy(), self.headers.copy())
        new._text, new._snap = self._text, self._snap
        return new

    @property
    def user_decoded(self) -> str | None:
        return _decode(self.user)

    @property
    def password_decoded(self) -> str | None:
        return _decode(self.password)

    @property
    def transport(self) -> str | None:
        return self.params.get("transport")

    @property
    def aor(self) -> str:
        """Canonical address of record (RFC 3261 10.3 step 5): no parameters or headers, host lowercased."""
        user = f"{self.user}@" if self.user is not None else ""
        port = f":{self.port}" if self.port is not None else ""
        return f"{self.scheme}:{user}{self.host.lower()}{port}"


# RFC 3966 3: visual-separator = "-" / "." / "(" / ")"
_VISUAL = str.maketrans("", "", "-.()")
_GLOBAL_NUMBER = re.compile(r"\+[0-9\-.()]*[0-9][0-9\-.()]*")
_LOCAL_NUMBER = re.compile(r"[0-9A-Fa-f*#\-.()]*[0-9A-Fa-f*#][0-9A-Fa-f*#\-.()]*")


@dataclass(eq=True)
class TelUri:
    """RFC 3966: tel:number;params (number as written, with its visual separators)."""

    number: str
    params: ParamDict = field(default_factory=ParamDict)
    _text: str | None = field(default=None, repr=False, compare=False)
    _snap: tuple | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.params = _params(self.params)

    @classmethod
    def parse(cls, text: str) -> TelUri:
        if not isinstance(text, str) or text[:4].lower() != "tel:":
            raise UriError(f"not a tel URI: {text!r}")
        bad = _FORBIDDEN.search(text)
        if bad:
            raise UriError(f"character {bad.group()!r} not allowed in a URI: {text!r}")
        number, semi, params_text = text[4:].partition(";")
        if not (_GLOBAL_NUMBER.fullmatch(number) or _LOCAL_NUMBER.fullmatch(number)):
            raise UriError(f"bad telephone-subscriber {number!r} in {text!r}")
        uri = cls(number, _split_params(params_text, "parameter") if semi else ParamDict())
        uri._text, uri._snap = text, uri._snapshot()
        return uri

    def _snapshot(self) -> tuple:
        return (self.number, self.params._snapshot())

    def __str__(self) -> str:
        if self._text is not None and self._snapshot() == self._snap:
            return self._text
        params = "".join(f";{n}" if v is None else f";{n}={v}" for n, v in self.params.items())
        return f"tel:{self.number}{params}"

    @property
    def is_global(self) -> bool:
        return self.number.startswith("+")

    @property
    def digits(self) -> str:
        """The number without visual separators, lowercased (RFC 3966 4)."""
        return self.number.translate(_VISUAL).lower()

    @property
    def scheme(self) -> str:
        return "tel"


@dataclass(eq=True)
class AbsoluteUri:
    """Any other scheme (RFC 3261 25.1 absoluteURI): compared and kept as opaque text."""

    scheme: str
    opaque: str

    @classmethod
    def parse(cls, text: str) -> AbsoluteUri:
        if not isinstance(text, str):
            raise UriError(f"not a string: {text!r}")
        scheme, colon, opaque = text.partition(":")
        if not colon or not _SCHEME.fullmatch(scheme) or not opaque:
            raise UriError(f"not an absolute URI: {text!r}")
        bad = _FORBIDDEN.search(opaque)
        if bad:
            raise UriError(f"character {bad.group()!r} not allowed in a URI: {text!r}")
        return cls(scheme, opaque)

    def __str__(self) -> str:
        return f"{self.scheme}:{self.opaque}"


Uri = SipUri | TelUri | AbsoluteUri


def parse_uri(text: str) -> Uri:
    """sip/sips -> SipUri, tel -> TelUri, any other scheme -> AbsoluteUri; raises UriError."""
    if not isinstance(text, str):
        raise UriError(f"not a string: {text!r}")
    scheme = text[:text.find(":")].lower() if ":" in text else ""
    if scheme in ("sip", "sips"):
        return SipUri.parse(text)
    if scheme == "tel":
        return TelUri.parse(text)
    return AbsoluteUri.parse(text)


def _as_uri(value: Uri | str) -> Uri:
    return parse_uri(value) if isinstance(value, str) else value


def _ci(text: str | None) -> str | None:
    return None if text is None else unquote(text, errors="surrogateescape").lower()


# RFC 3261 19.1.4: these parameters must match whenever either URI has them (a default is not implied).
_STRICT_PARAMS = ("user", "ttl", "method", "maddr", "transport")


def _sip_equal(a: SipUri, b: SipUri) -> bool:
    if a.scheme != b.scheme:
        return False
    # "Comparison of the userinfo of SIP and SIPS URIs is case-sensitive" after unescaping.
    for x, y in ((a.user, b.user), (a.password, b.password)):
        if (x is None) != (y is None) or (x is not None and unquote_to_bytes(x) != unquote_to_bytes(y)):
            return False
    if _ci(a.host) != _ci(b.host) or a.port != b.port:
        return False
    pa = {_ci(k): _ci(v) for k, v in a.params.items()}
    pb = {_ci(k): _ci(v) for k, v in b.params.items()}
    for name in _STRICT_PARAMS:
        if (name in pa or name in pb) and pa.get(name, 0) != pb.get(name, 1):
            return False
    if any(pa[n] != pb[n] for n in pa.keys() & pb.keys()):
        return False
    # Header components are never ignored: the same set on both sides. Values are compared unescaped
    # and case-sensitively (most header values, e.g. Call-ID in Replaces, are case-sensitive).
    ha = {_ci(k): _decode(v) for k, v in a.headers.items()}
    hb = {_ci(k): _decode(v) for k, v in b.headers.items()}
    return ha == hb


def _tel_param(name: str, value: str | None) -> str | None:
    if value is None:
        return None
    value = unquote(value, errors="surrogateescape").lower()
    if name in ("ext", "isub") or (name == "phone-context" and value.startswith("+")):
        value = value.translate(_VISUAL)
    return value


def _tel_equal(a: TelUri, b: TelUri) -> bool:
    # RFC 3966 4: same kind of number, same digits without separators, same parameter set.
    if a.is_global != b.is_global or a.digits != b.digits:
        return False
    pa = {k.lower(): _tel_param(k.lower(), v) for k, v in a.params.items()}
    pb = {k.lower(): _tel_param(k.lower(), v) for k, v in b.params.items()}
    return pa == pb


def uri_equal(a: Uri | str, b: Uri | str) -> bool:
    """RFC 3261 19.1.4 (sip/sips) and RFC 3966 4 (tel) URI equivalence; strings are parsed (UriError)."""
    a, b = _as_uri(a), _as_uri(b)
    if isinstance(a, SipUri) and isinstance(b, SipUri):
        return _sip_equal(a, b)
    if isinstance(a, TelUri) and isinstance(b, TelUri):
        return _tel_equal(a, b)
    if isinstance(a, AbsoluteUri) and isinstance(b, AbsoluteUri):
        return a.scheme.lower() == b.scheme.lower() and _decode(a.opaque) == _decode(b.opaque)
    return False
