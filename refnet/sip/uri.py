"""SIP URIs for the reference network: RFC 3261 19.1 syntax (as much as the nodes read) and the
19.1.4 comparison rules. Other schemes (tel:, urn:, ...) are kept as opaque text.

Written for refnet alone, apart from the harness's codec, so that a codec defect can show up as a
failing verdict against the reference network instead of being shared by both sides.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import unquote

from .params import URI_PARAM_NAME, Params, parse_params


class UriError(ValueError):
    """Text that is not a URI the reference network can use."""


_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*")
# hostname or IPv4 (letters, digits, '-', '.') or an IPv6 reference in brackets (RFC 3261 25.1)
_HOST = re.compile(r"[A-Za-z0-9.\-_]+|\[[0-9A-Fa-f:.]+\]")
_NOT_IN_URI = re.compile(r'[\x00-\x20\x7f<>"]')


@dataclass
class SipUri:
    """sip: or sips: URI; user, password, host and parameter values are kept as written (escaped)."""

    scheme: str
    host: str
    user: str | None = None
    password: str | None = None
    port: int | None = None
    params: Params = field(default_factory=Params)
    headers: dict[str, str] = field(default_factory=dict)  # ?name=value&..., as written

    @property
    def user_decoded(self) -> str | None:
        return unquote(self.user) if self.user is not None else None

    def __str__(self) -> str:
        userinfo = ""
        if self.user is not None:
            userinfo = self.user + (f":{self.password}" if self.password is not None else "") + "@"
        port = f":{self.port}" if self.port is not None else ""
        query = "&".join(f"{k}={v}" for k, v in self.headers.items())
        return f"{self.scheme}:{userinfo}{self.host}{port}{self.params}" + (f"?{query}" if query else "")


@dataclass
class OtherUri:
    """Any other absoluteURI (tel:, urn:, http:, ...): the scheme and the rest, as written."""

    scheme: str
    rest: str

    def __str__(self) -> str:
        return f"{self.scheme}:{self.rest}"


Uri = SipUri | OtherUri


def parse_uri(text: str) -> Uri:
    text = text.strip()
    scheme, colon, rest = text.partition(":")
    if not colon or not _SCHEME.fullmatch(scheme) or not rest:
        raise UriError(f"{text[:80]!r} is not scheme:rest")
    if _NOT_IN_URI.search(rest):
        raise UriError(f"{text[:80]!r} contains a space, a control character, '<', '>' or '\"'")
    if scheme.lower() not in ("sip", "sips"):
        return OtherUri(scheme, rest)
    return _parse_sip(scheme, rest)


def _parse_sip(scheme: str, rest: str) -> SipUri:
    # '@' appears nowhere else unescaped (19.1.1), while the user part may hold ';' and '?':
    # so the userinfo is cut off first, then the headers ('?'), then the parameters (';')
    user = password = None
    if "@" in rest:
        userinfo, _at, rest = rest.partition("@")
        user, colon, pw = userinfo.partition(":")
        password = pw if colon else None
        if not user:
            raise UriError("empty user part before '@'")
    rest, _q, query = rest.partition("?")
    hostport, _semi, param_text = rest.partition(";")
    host, port = _split_hostport(hostport)
    try:
        params = parse_params(";" + param_text if _semi else "", names=URI_PARAM_NAME)
    except ValueError as exc:
        raise UriError(f"URI parameters: {exc}") from None
    headers: dict[str, str] = {}
    for item in query.split("&") if query else ():
        name, _eq, value = item.partition("=")
        if not name:
            raise UriError(f"empty URI header name in {query!r}")
        headers[name] = value
    return SipUri(scheme, host, user, password, port, params, headers)


def _split_hostport(text: str) -> tuple[str, int | None]:
    if text.startswith("["):
        host, _b, after = text.partition("]")
        host += "]"
        port_text = after[1:] if after.startswith(":") else None
        if after and port_text is None:
            raise UriError(f"junk after the IPv6 reference in {text!r}")
    else:
        host, colon, port_text = text.partition(":")
        port_text = port_text if colon else None
    if not _HOST.fullmatch(host or ""):
        raise UriError(f"bad host {host!r}")
    if port_text is None:
        return host, None
    if not (port_text.isascii() and port_text.isdigit()) or not 0 < int(port_text) < 65536:
        raise UriError(f"bad port {port_text!r}")
    return host, int(port_text)


# -- RFC 3261 19.1.4 ----------------------------------------------------------------------------

# "A URI that includes ... user, ttl, method, maddr or transport ... MUST be compared against the
# other URI's; if absent from one it is absent from the other" (19.1.4, third bullet from the end)
_MUST_MATCH = ("user", "ttl", "method", "maddr", "transport")


def _ci(text: str | None) -> str | None:
    return unquote(text).lower() if text is not None else None


def _sip_equal(a: SipUri, b: SipUri) -> bool:
    if a.scheme.lower() != b.scheme.lower():  # a SIP and a SIPS URI are never equivalent
        return False
    # userinfo is case-sensitive; escaped characters compare as their unescaped form
    if (a.user is None) != (b.user is None) or unquote(a.user or "") != unquote(b.user or ""):
        return False
    if (a.password is None) != (b.password is None) or unquote(a.password or "") != unquote(b.password or ""):
        return False
    # host case-insensitive; a URI omitting the port never equals one naming 5060
    if a.host.lower() != b.host.lower() or a.port != b.port:
        return False
    for name in _MUST_MATCH:
        if _ci(a.params.get(name)) != _ci(b.params.get(name)) or ((name in a.params) != (name in b.params)):
            return False
    for name in a.params:  # any other parameter matters only when both carry it
        if name in b.params and _ci(a.params.get(name)) != _ci(b.params.get(name)):
            return False
    # header components: all present in both, equal (names case-insensitive, values unescaped)
    ha = {k.lower(): unquote(v) for k, v in a.headers.items()}
    hb = {k.lower(): unquote(v) for k, v in b.headers.items()}
    return ha == hb


_VISUAL_SEPARATORS = str.maketrans("", "", "-.()")


def _other_key(uri: OtherUri) -> tuple:
    """tel: (RFC 3966 4): number without visual separators, parameters as a set; anything else:
    the scheme case-insensitively and the rest as written."""
    if uri.scheme.lower() != "tel":
        return uri.scheme.lower(), uri.rest
    number, *params = uri.rest.split(";")
    return "tel", number.translate(_VISUAL_SEPARATORS).lower(), frozenset(p.lower() for p in params)


def uri_equal(a: Uri | str, b: Uri | str) -> bool:
    """RFC 3261 19.1.4 equivalence for SIP/SIPS URIs; a string is parsed first (UriError if bad)."""
    a = parse_uri(a) if isinstance(a, str) else a
    b = parse_uri(b) if isinstance(b, str) else b
    if isinstance(a, SipUri) and isinstance(b, SipUri):
        return _sip_equal(a, b)
    if isinstance(a, OtherUri) and isinstance(b, OtherUri):
        return _other_key(a) == _other_key(b)
    return False
