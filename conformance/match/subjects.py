"""Subjects of an expectation (format.md "Expectations"): what value of the received event to look at.

`resolve(item, received, ctx)` turns one expectation item into a Resolution: the observed values
(one per occurrence, MISSING where the subject is not there), or the reason nothing could be
looked at. Operators are applied by the engine; `save` uses the same resolution.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any
from urllib.parse import parse_qs, urlsplit

from conformance.codec import jwt as jwt_codec
from conformance.codec import sip
from conformance.codec.sip_headers import (
    HeaderError,
    parse_credentials,
    parse_generic_params,
    parse_name_addr,
    parse_via,
)
from conformance.codec.sip_uri import SipUri, UriError, parse_uri
from conformance.codec.value_cache import cached_for_short_values
from conformance.drivers.http import find_form
from conformance.events import Garbage, HttpExchange, Nothing, SipReceived, WsClosed, WsHandshake
from conformance.match.operators import MISSING, MalformedExpectation, show
from conformance.vocabulary import subjects as vocabulary

# The subjects, their qualifiers and the meta keys are conformance/vocabulary/subjects.py's.
SUBJECTS = vocabulary.SUBJECTS.names()
MODIFIERS = vocabulary.QUALIFIERS.names()  # keys that refine a subject
_REFINEMENTS = ("param", "uri_param", "query", "fragment")  # one at most: they read one text value
_ACCEPTS = {s.name: s.accepts for s in vocabulary.SUBJECTS if s.accepts}  # which subject takes which
META = vocabulary.META.names()
ANY = "any"  # Resolution.every for `index: any`

# Headers whose value is credentials or a challenge (RFC 3261 20.7, 20.27, 20.28, 20.44; RFC 9110 11).
_AUTH_HEADERS = frozenset({"authorization", "proxy-authorization", "www-authenticate", "proxy-authenticate"})


@dataclass
class Resolution:
    label: str  # how the report names the subject, e.g. "header Location query code"
    values: list[Any] = field(default_factory=list)  # one per selected occurrence; MISSING allowed
    every: bool | str = False  # `index: all`: the operator must hold for each value; ANY: for one of them
    all_values: list[Any] | None = None  # what `count` counts (default: the present values)
    unobservable: str | None = None  # the harness could not look: inconclusive
    failure: str | None = None  # the SUT gave nothing to look at (no answer, not a JWT): fail
    note: str = ""  # context for the report (why a value is absent)
    display: str | None = None  # what to show as actual instead of the values

    def counted(self) -> int:
        pool = self.values if self.all_values is None else self.all_values
        present = [v for v in pool if v is not MISSING]
        if len(present) == 1 and isinstance(present[0], list):
            return len(present[0])
        return len(present)

    def counted_text(self) -> str:
        pool = self.values if self.all_values is None else self.all_values
        return "[" + ", ".join(show(v) for v in pool if v is not MISSING) + "]"

    def actual_text(self) -> str:
        if self.unobservable:
            return f"not observed ({self.unobservable})"
        if self.failure:
            return self.failure
        if self.display is not None:
            return self.display
        if not self.values:
            return "(absent)"
        if len(self.values) == 1 and not self.every:
            return show(self.values[0])
        return "[" + ", ".join(show(v) for v in self.values) + "]"


def subject_of(item: Mapping[str, Any]) -> str:
    found = [k for k in SUBJECTS if k in item]
    if len(found) != 1:
        raise MalformedExpectation(
            f"an expectation names exactly one subject of {', '.join(SUBJECTS)}; found {found or 'none'}")
    return found[0]


# -- what was received ----------------------------------------------------------------------------

def describe_event(received: Any) -> str:
    """One line naming what arrived, for `actual` when it is not what the subject needs."""
    if isinstance(received, Nothing):
        return f"no message within {received.waited_ms:.0f} ms"
    if isinstance(received, WsClosed):
        if received.code is None and received.reason.startswith("TCP "):
            return received.reason  # SIP over TCP (drivers/sip_transport.py): no close frame to speak of
        code = "without a close frame" if received.code is None else f"with code {received.code}"
        return f"connection closed {code}" + (f" ({received.reason})" if received.reason else "")
    if isinstance(received, Garbage):
        return f"undecodable bytes ({received.reason}): {len(received.raw)} bytes {show(received.raw, 120)}"
    if isinstance(received, SipReceived):
        return start_line(received.message)
    if isinstance(received, HttpExchange):
        return f"HTTP {received.status} to {received.method} {received.url}"
    if isinstance(received, WsHandshake):
        return f"WebSocket handshake answered {received.status}"
    return type(received).__name__


def is_request(msg: Any) -> bool:
    flag = getattr(msg, "is_request", None)
    return bool(flag) if flag is not None else hasattr(msg, "method")


def start_line(msg: Any) -> str:
    if is_request(msg):
        return f"{msg.method} {msg.uri} {getattr(msg, 'version', 'SIP/2.0')}"
    return f"{getattr(msg, 'version', 'SIP/2.0')} {msg.status} {getattr(msg, 'reason', '')}".rstrip()


class _NoMessage(Exception):
    """The subject needs a message and none (or no decodable one) arrived."""


class _Silent(Exception):
    """The subject needs a message and the SUT stayed silent: nothing observed (inconclusive)."""


def _message(received: Any, subject: str) -> tuple[str, Any]:
    """(kind, object) of a received event: http, ws, sip or data (a dict an action returned)."""
    if isinstance(received, HttpExchange):
        return "http", received
    if isinstance(received, WsHandshake):
        return "ws", received
    if isinstance(received, SipReceived):
        return "sip", received.message
    if isinstance(received, Nothing) and received.awaited_request and received.peer_alive:
        raise _NoMessage(f"{describe_event(received)}: the node is alive on this connection but did not send "
                         "the request it must send")
    if isinstance(received, Nothing):
        raise _Silent(f"{describe_event(received)}: the SUT was silent where an answer was required")
    if isinstance(received, WsClosed | Garbage):
        raise _NoMessage(describe_event(received))
    if isinstance(received, Mapping):
        return "data", received
    raise MalformedExpectation(f"subject {subject!r} does not apply to a {type(received).__name__}")


def _body_text(kind: str, obj: Any) -> str:
    if kind == "data":
        return json.dumps(obj)
    body = getattr(obj, "body", b"")
    if body is None:
        return ""
    return body.decode("utf-8", "replace") if isinstance(body, bytes | bytearray) else str(body)


def header_values(kind: str, obj: Any, name: str) -> list[str]:
    """HTTP: one value per field line (Set-Cookie cannot be split); SIP: the codec's comma-split list."""
    if kind in ("http", "ws"):
        return obj.header_values(name)
    if kind == "sip":
        return list(obj.headers.get_all(name))
    raise MalformedExpectation("header applies to an HTTP exchange, a WebSocket handshake or a SIP message")


# -- refinements of a text value --------------------------------------------------------------------

def header_params(name: str, value: str) -> Mapping[str, str | None]:
    """The parameters of a header value: auth-params (unquoted), Via params, name-addr params, or
    generic `;p=v` (RFC 3261 7.3.1, 20; RFC 9110 11.4). Read-only: parses are shared."""
    return _header_params(sip.header_key(name), value)


@cached_for_short_values(max_len=4096, maxsize=256)  # each `param` check of a header asks again
def _header_params(key: str, value: str) -> Mapping[str, str | None]:
    text = value.strip()
    if key in _AUTH_HEADERS:
        params = parse_credentials(value).params
    elif key == "via":
        params = parse_via(value).params
    elif key in sip.NAME_ADDR_HEADERS or text.startswith(("<", '"')) or _looks_like_uri(text.split(";", 1)[0]):
        params = parse_name_addr(text).params
    else:
        first, sep, rest = text.partition(";")
        # `icid-value=x;orig-ioi=y` has a parameter first; `text/html; charset=x` has a value first
        params = parse_generic_params(text if "=" in first else rest)
    return MappingProxyType(params)


def _looks_like_uri(text: str) -> bool:
    scheme = text.split(":", 1)[0].strip().lower()
    return ":" in text and scheme in ("sip", "sips", "tel", "urn")


def _uri_params(value: str, bare_uri: bool = False) -> Mapping[str, str | None]:
    # In a header, `sip:a@b;p=v` without <> carries header parameters (RFC 3261 20.10); a
    # Request-URI is a bare URI whose parameters are its own.
    text = value.strip()
    named = not bare_uri and (text.startswith(("<", '"')) or ";" in text)
    uri = parse_name_addr(text).uri if named else parse_uri(text)
    if isinstance(uri, str):
        uri = parse_uri(uri)
    if not isinstance(uri, SipUri) and not hasattr(uri, "params"):
        raise UriError(f"{uri} has no parameters")
    return uri.params


def _lookup(params: Mapping[str, str | None], key: str) -> Any:
    """A parameter value: "" for a flag parameter (`;lr`), MISSING when not there."""
    if key in params:  # ParamDict is case-insensitive
        value = params[key]
        return "" if value is None else _unquote(value)
    return MISSING


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1].replace('\\"', '"').replace("\\\\", "\\")
    return value


def _url_part(value: str, part: str, key: str) -> Any:
    # RFC 3986 3.4/3.5; the fragment is read like a query (RFC 6749 4.2.2 puts tokens there)
    pieces = urlsplit(value.strip())
    text = pieces.query if part == "query" else pieces.fragment
    found = parse_qs(text, keep_blank_values=True).get(key)
    return found[0] if found else MISSING


def refine(item: Mapping[str, Any], header_name: str | None, value: Any, bare_uri: bool = False) -> tuple[Any, str]:
    """Apply param / uri_param / query / fragment to one value: (refined value, note)."""
    if value is MISSING:
        return MISSING, ""
    for key in ("param", "uri_param", "query", "fragment"):
        if key not in item:
            continue
        wanted = str(item[key])
        if not isinstance(value, str):
            return MISSING, f"{key} needs a text value, got {show(value)}"
        try:
            if key == "param":
                return _lookup(header_params(header_name or "", value), wanted), ""
            if key == "uri_param":
                return _lookup(_uri_params(value, bare_uri), wanted), ""
            return _url_part(value, key, wanted), ""
        except (HeaderError, UriError, ValueError) as exc:
            return MISSING, f"cannot read {key} {wanted!r} of {show(value)}: {exc}"
    return value, ""


def _refinement_label(item: Mapping[str, Any]) -> str:
    return "".join(f" {k} {item[k]}" for k in ("param", "uri_param", "query", "fragment") if k in item)


def _select(item: Mapping[str, Any], values: list[Any]) -> tuple[list[Any], bool]:
    """Apply `index` (default 0, negative from the end, `all`, `any`)."""
    index = item.get("index", 0)
    if index == "all":
        return list(values), True
    if index == "any":  # e.g. the session cookie among others whose order and names are the SUT's
        return list(values), ANY
    if isinstance(index, bool) or not isinstance(index, int):
        raise MalformedExpectation(f"index takes an integer, 'all' or 'any', not {index!r}")
    try:
        return [values[index]], False
    except IndexError:
        return [MISSING], False


# -- JSON -------------------------------------------------------------------------------------------

def json_path(doc: Any, path: str) -> Any:
    """A small JSONPath subset: `$`, `.name`, `['name']`, `[n]`; MISSING where the path leads nowhere."""
    steps = _parse_path(path)
    current = doc
    for step in steps:
        if isinstance(step, int):
            if not isinstance(current, list) or not -len(current) <= step < len(current):
                return MISSING
            current = current[step]
        else:
            if not isinstance(current, Mapping) or step not in current:
                return MISSING
            current = current[step]
    return current


def _parse_path(path: str) -> list[str | int]:
    text = str(path).strip()
    if text.startswith("$"):
        text = text[1:]
    elif text and not text.startswith((".", "[")):
        text = "." + text  # `access_token` means `$.access_token`
    steps: list[str | int] = []
    i = 0
    while i < len(text):
        c = text[i]
        if c == ".":
            j = i + 1
            while j < len(text) and text[j] not in ".[":
                j += 1
            if j == i + 1:
                raise MalformedExpectation(f"empty member name in JSON path {path!r}")
            steps.append(text[i + 1:j])
            i = j
        elif c == "[":
            j = text.find("]", i)
            if j < 0:
                raise MalformedExpectation(f"unclosed [ in JSON path {path!r}")
            inner = text[i + 1:j].strip()
            if len(inner) >= 2 and inner[0] == inner[-1] and inner[0] in "'\"":
                steps.append(inner[1:-1])
            else:
                try:
                    steps.append(int(inner))
                except ValueError:
                    raise MalformedExpectation(f"[{inner}] in JSON path {path!r}: an index or a quoted name") from None
            i = j + 1
        else:
            raise MalformedExpectation(f"unexpected {c!r} in JSON path {path!r}")
    return steps


# -- Set-Cookie (RFC 6265 5.2, the lenient user-agent algorithm) ---------------------------------------

@dataclass
class SetCookie:
    name: str
    value: str
    attributes: list[tuple[str, str]]  # in order, names as written, value "" for flags

    def attribute(self, name: str) -> Any:
        low = name.lower()
        for k, v in reversed(self.attributes):  # 5.3: the last occurrence wins
            if k.lower() == low:
                return v
        return MISSING


def parse_set_cookie(value: str) -> SetCookie | None:
    """None when the line is ignored by a user agent (5.2: no '=' in the name-value-pair, empty name)."""
    pair, _, rest = value.partition(";")
    if "=" not in pair:
        return None
    name, _, val = pair.partition("=")
    name, val = name.strip(" \t"), val.strip(" \t")
    if not name:
        return None
    attrs = []
    for av in rest.split(";") if rest else []:
        k, _, v = av.partition("=")
        k = k.strip(" \t")
        if k:
            attrs.append((k, v.strip(" \t")))
    return SetCookie(name, val, attrs)


# -- the subjects ----------------------------------------------------------------------------------

def _check_modifiers(subject: str, item: Mapping[str, Any]) -> None:
    accepted = _ACCEPTS.get(subject, ())
    wrong = [k for k in MODIFIERS if k in item and k not in accepted]
    if wrong:
        takes = ", ".join(accepted) or "no refinement"
        raise MalformedExpectation(f"{subject} does not take {', '.join(wrong)} (it takes {takes})")
    refinements = [k for k in _REFINEMENTS if k in item]
    if len(refinements) > 1:
        raise MalformedExpectation(f"one of {', '.join(_REFINEMENTS)} per expectation; found {refinements}")


def resolve(item: Mapping[str, Any], received: Any, ctx: Any) -> Resolution:
    subject = subject_of(item)
    _check_modifiers(subject, item)
    if received is None:
        return Resolution(subject, unobservable="nothing was observed for this step")
    try:
        return _RESOLVERS[subject](item, received, ctx)
    except (_NoMessage, _Silent) as exc:
        label = subject if subject in ("status", "body", "method", "request_uri", "subprotocol", "reason") \
            else f"{subject} {item[subject]}"
        if isinstance(exc, _Silent):
            return Resolution(label + _refinement_label(item), unobservable=str(exc))
        return Resolution(label + _refinement_label(item), failure=str(exc))


def _response_field(received, field: str) -> Resolution:
    """A field of the response line: `status`, or `reason` (RFC 3261 7.2: a 400 says what is wrong)."""
    kind, obj = _message(received, field)
    if kind == "sip" and is_request(obj):
        return Resolution(field, [MISSING], note=f"received a request: {start_line(obj)}")
    if kind == "data":
        raise MalformedExpectation(f"{field} does not apply to this action")
    value = getattr(obj, field, None)
    if kind == "ws" and value is None and (obj.error or obj.raw):
        # the SUT answered the handshake with something that is not HTTP: say what, with the bytes
        seen = f"no HTTP answer ({obj.error or 'not HTTP'})"
        if obj.raw:
            seen += f"; received {len(obj.raw)} bytes: {show(obj.raw, 120)}"
        return Resolution(field, [MISSING], display=seen)
    return Resolution(field, [MISSING if value is None else value])


def _status(item, received, ctx) -> Resolution:
    return _response_field(received, "status")


def _reason(item, received, ctx) -> Resolution:
    return _response_field(received, "reason")


def _header(item, received, ctx) -> Resolution:
    name = item["header"]
    if not isinstance(name, str) or not name:
        raise MalformedExpectation(f"header takes a header name, not {name!r}")
    kind, obj = _message(received, "header")
    raw = header_values(kind, obj, name)
    selected, every = _select(item, raw)
    values, notes = [], []
    for v in selected:
        refined, note = refine(item, name, v)
        values.append(refined)
        if note:
            notes.append(note)
    all_values = [refine(item, name, v)[0] for v in raw] if _refinement_label(item) else raw
    return Resolution(f"header {name}{_refinement_label(item)}", values, every, all_values, note="; ".join(notes))


def _json(item, received, ctx) -> Resolution:
    path = item["json"]
    kind, obj = _message(received, "json")
    label = f"json {path}{_refinement_label(item)}"
    if kind == "data":
        doc = obj
    else:
        text = _body_text(kind, obj)
        try:
            doc = json.loads(text)
        except json.JSONDecodeError as exc:
            return Resolution(label, [MISSING], note=f"the body is not JSON ({exc}): {show(text, 120)}")
    value = json_path(doc, path)
    if "index" in item and isinstance(value, list):
        values, every = _select(item, value)
    else:
        values, every = [value], False
    refined = [refine(item, None, v) for v in values]
    return Resolution(label, [r[0] for r in refined], every, note="; ".join(r[1] for r in refined if r[1]))


def _jwt(item, received, ctx) -> Resolution:
    token = item["jwt"]
    if isinstance(token, Mapping):  # a selector: the token is in what was received
        try:
            token = save_value(token, received, ctx)
        except SaveError as exc:
            return Resolution("jwt", failure=str(exc))
    parts = [k for k in ("claim", "jwt_header", "signature") if k in item]
    if len(parts) > 1:
        raise MalformedExpectation(f"jwt takes one of claim, jwt_header, signature; found {parts}")
    label = "jwt" + (f" {parts[0]} {item[parts[0]]}" if parts and parts[0] != "signature" else
                     " signature" if parts else "")
    if not isinstance(token, str) or not token:
        return Resolution(label, failure=f"no token to inspect: {show(token)}")
    try:
        header, claims = jwt_codec.decode_unverified(token)
    except jwt_codec.JwtError as exc:
        return Resolution(label, failure=f"not a JWT ({exc}): {show(token, 80)}")
    if "claim" in item:
        value = _member(claims, str(item["claim"]))
    elif "jwt_header" in item:
        value = _member(header, str(item["jwt_header"]))
    elif "signature" in item:
        try:
            jwks = ctx.jwks()
        except Exception as exc:  # noqa: BLE001 - any failure to get the JWKS means we could not look
            return Resolution(label, unobservable=f"the AS JWKS could not be fetched: {exc}")
        try:
            value = "valid" if jwt_codec.verify(token, jwks) else "invalid"
        except jwt_codec.JwtError as exc:
            return Resolution(label, unobservable=f"the AS JWKS is unusable: {exc}")
    else:
        value = token
    if "index" in item and isinstance(value, list):
        values, every = _select(item, value)
    else:
        values, every = [value], False
    return Resolution(label, values, every)


def _member(obj: Mapping[str, Any], name: str) -> Any:
    if name in obj:
        return obj[name]
    return json_path(obj, name) if "." in name or "[" in name else MISSING


def _body(item, received, ctx) -> Resolution:
    kind, obj = _message(received, "body")
    text = _body_text(kind, obj)
    return Resolution("body", [text if text else MISSING])


# `field: "@hidden"`: the values of the form's named hidden inputs (BINDING: "a hidden transaction
# field", name unspecified); `field: "@choice"`: the values of its named radio, checkbox and
# submit controls ("a consent choice").
FORM_PSEUDO_FIELDS = {
    "@hidden": lambda c: c.type == "hidden",
    "@choice": lambda c: c.type in ("radio", "checkbox", "submit", "image") or (c.tag == "button" and c.type in ("", "submit")),
}


def _html_form(item, received, ctx) -> Resolution:
    select = item["html_form"]
    kind, obj = _message(received, "html_form")
    field_name = item.get("field")
    label = f"html_form {select or '(first)'}" + (f" field {field_name}" if field_name else "")
    try:
        form = find_form(_body_text(kind, obj), None if select in (None, True, "") else str(select))
    except LookupError as exc:
        return Resolution(label, [MISSING], note=str(exc))
    if field_name is None:
        return Resolution(label, [form.action if form.action is not None else ""])
    if field_name in FORM_PSEUDO_FIELDS:  # what the binding requires without naming it
        values = [c.value or "" for c in form.controls if c.name and FORM_PSEUDO_FIELDS[field_name](c)]
    else:
        values = [v for n, v in form.entries() if n == field_name]
    if not values and field_name not in FORM_PSEUDO_FIELDS:
        # a control may exist without contributing an entry (unchecked box, button)
        values = [c.value or "" for c in form.controls if c.name == field_name]
    selected, every = _select(item, values)
    refined = [refine(item, None, v) for v in selected]
    return Resolution(label + _refinement_label(item), [r[0] for r in refined], every, values)


def _cookie(item, received, ctx) -> Resolution:
    name = str(item["cookie"])
    kind, obj = _message(received, "cookie")
    if kind not in ("http", "ws"):
        raise MalformedExpectation("cookie applies to an HTTP response or a WebSocket handshake")
    cookies = [c for c in (parse_set_cookie(v) for v in obj.header_values("Set-Cookie")) if c and c.name == name]
    attribute = item.get("attribute")
    label = f"cookie {name}" + (f" attribute {attribute}" if attribute else "")
    selected, every = _select(item, cookies)
    values = [MISSING if c is MISSING else (c.attribute(str(attribute)) if attribute else c.value)
              for c in selected]
    return Resolution(label, values, every, [c.value for c in cookies])


def _method(item, received, ctx) -> Resolution:
    kind, obj = _message(received, "method")
    if kind == "http":
        return Resolution("method", [obj.method])
    if kind == "sip" and is_request(obj):
        return Resolution("method", [obj.method])
    return Resolution("method", [MISSING], note=f"received {describe_event(received)}")


def _request_uri(item, received, ctx) -> Resolution:
    kind, obj = _message(received, "request_uri")
    if kind == "http":
        return Resolution("request_uri", [obj.url])
    if kind == "sip" and is_request(obj):
        return Resolution("request_uri" + _refinement_label(item), [refine(item, None, str(obj.uri), bare_uri=True)[0]])
    return Resolution("request_uri", [MISSING], note=f"received {describe_event(received)}")


def _subprotocol(item, received, ctx) -> Resolution:
    if not isinstance(received, WsHandshake):
        raise MalformedExpectation(f"subprotocol applies to a ws_connect step, not a {type(received).__name__}")
    return Resolution("subprotocol", [MISSING if received.subprotocol is None else received.subprotocol])


def _ws_closed(item, received, ctx) -> Resolution:
    if isinstance(received, WsClosed):
        return Resolution("ws_closed", [received.code], note=received.reason,
                          display=None if received.code is not None else "closed without a close frame")
    return Resolution("ws_closed", [MISSING], display=f"not closed: {describe_event(received)}")


def _nothing(item, received, ctx) -> Resolution:
    quiet = isinstance(received, Nothing | WsClosed)
    if isinstance(received, Nothing) and received.peer_alive is False:
        # silence from a node never heard on this connection proves nothing: it may be down
        return Resolution("nothing", unobservable="the node never answered on this connection, so its "
                          "silence proves nothing (precede the check with an exchange it must answer)")
    return Resolution("nothing", [quiet], display=describe_event(received))


# The resolver of each subject, as the registry names it ("conformance.match.subjects:_status");
# looked up in this module's namespace because the module is still loading here.
_RESOLVERS = {s.name: globals()[s.implemented_by.rpartition(":")[2]] for s in vocabulary.SUBJECTS}


class SaveError(LookupError):
    """The value to save is not in what was received."""


def save_value(spec: Mapping[str, Any], received: Any, ctx: Any) -> Any:
    """The value a `save` selector picks (format.md "Save"): first occurrence, or a list for `index: all`."""
    if not isinstance(spec, Mapping):
        raise MalformedExpectation(f"a save selector is a mapping like {{json: $.access_token}}, not {spec!r}")
    res = resolve(spec, received, ctx)
    if res.unobservable or res.failure:
        raise SaveError(f"{res.label}: {res.actual_text()}")
    present = [v for v in res.values if v is not MISSING]
    if res.every:
        return present
    if not present:
        raise SaveError(f"{res.label} is absent" + (f" ({res.note})" if res.note else ""))
    return present[0]
