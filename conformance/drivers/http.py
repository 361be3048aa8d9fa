"""HTTP driver: one exchange per call, never following redirects, one cookie jar per test case.

Built on requests. The session ignores the environment (proxies, REQUESTS_CA_BUNDLE): the
profile says whom to trust. TLS goes through the harness context so the key log is written.
"""

from __future__ import annotations

import http.client
import socket
import ssl
from collections.abc import Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

import requests
import urllib3
from requests.adapters import HTTPAdapter
from requests.auth import HTTPBasicAuth
from urllib3.exceptions import ConnectTimeoutError, NameResolutionError, NewConnectionError

from conformance.drivers import TransportError
from conformance.drivers.tls import MESSAGE_LIMIT, client_context, open_tcp
from conformance.events import Garbage, HttpExchange
from conformance.run import deadline


class _HarnessConnectionMixin:
    """urllib3 connections on the harness socket class: every read and write obeys the step
    deadline and is recorded as evidence (conformance.drivers.tls)."""

    def _new_conn(self):
        try:
            return open_tcp(self._dns_host, self.port, self.timeout, self.source_address)
        except socket.gaierror as exc:
            raise NameResolutionError(self.host, self, exc) from exc
        except TimeoutError as exc:
            raise ConnectTimeoutError(self, f"connect to {self.host} timed out") from exc
        except OSError as exc:
            raise NewConnectionError(self, f"Failed to establish a new connection: {exc}") from exc


class _HttpConnection(_HarnessConnectionMixin, urllib3.connection.HTTPConnection):
    pass


class _HttpsConnection(_HarnessConnectionMixin, urllib3.connection.HTTPSConnection):
    pass


class _HttpPool(urllib3.HTTPConnectionPool):
    ConnectionCls = _HttpConnection


class _HttpsPool(urllib3.HTTPSConnectionPool):
    ConnectionCls = _HttpsConnection


class _HarnessAdapter(HTTPAdapter):
    """Hands every HTTPS connection the harness SSLContext (requests would build its own)."""

    def __init__(self, ssl_context: ssl.SSLContext, **kwargs: Any):
        self._ssl_context = ssl_context
        super().__init__(max_retries=0, **kwargs)

    def init_poolmanager(self, connections, maxsize, block=False, **pool_kwargs):
        pool_kwargs["ssl_context"] = self._ssl_context
        super().init_poolmanager(connections, maxsize, block=block, **pool_kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": _HttpPool, "https": _HttpsPool}

    def build_connection_pool_key_attributes(self, request, verify, cert=None):
        host_params, pool_kwargs = super().build_connection_pool_key_attributes(request, verify, cert)
        # The context already trusts the profile's CA; `ca_certs` would make urllib3 reload it
        # into the shared context on every connection.
        pool_kwargs.pop("ca_certs", None)
        pool_kwargs.pop("ca_cert_dir", None)
        pool_kwargs["ssl_context"] = self._ssl_context
        return host_params, pool_kwargs

    def cert_verify(self, conn, url, verify, cert):
        # requests would point the pool at certifi's bundle, which urllib3 then loads into the
        # shared context: the harness trusts the profile's CA only.
        conn.cert_reqs = "CERT_REQUIRED"
        conn.ca_certs = conn.ca_cert_dir = None


class HttpDriver:
    """The UE's browser, reduced to what a test case asks for: one request, one response."""

    def __init__(self, ssl_context: ssl.SSLContext | None = None, *, ca_bundle: str | Path | None = None,
                 keylog: str | Path | None = None, timeout_s: float = 5.0, user_agent: str | None = None):
        """ssl_context: the harness context; else one is made from ca_bundle and keylog (tls.client_context)."""
        self.timeout_s = timeout_s
        self.session = requests.Session()
        self._jars: dict[str, requests.cookies.RequestsCookieJar] = {}  # other user agents (as_user_agent)
        self.session.trust_env = False  # no proxies, no REQUESTS_CA_BUNDLE, no .netrc
        self.session.verify = True  # verification by the harness context (CERT_REQUIRED)
        ctx = ssl_context if ssl_context is not None else client_context(ca_bundle, keylog)
        adapter = _HarnessAdapter(ctx)
        self.session.mount("https://", adapter)
        self.session.mount("http://", adapter)
        if user_agent:
            self.session.headers["User-Agent"] = user_agent

    @property
    def cookies(self) -> requests.cookies.RequestsCookieJar:
        return self.session.cookies

    @contextmanager
    def as_user_agent(self, name: str):
        """Requests inside go from another user agent of the test case (another browser of the
        user): its own cookie jar, kept by name for its later steps. An authorization server that
        remembers a signed-in user (RFC 6749 3.1 leaves that open) then shows its sign-in again."""
        saved = self.session.cookies
        self.session.cookies = self._jars.setdefault(name, requests.cookies.RequestsCookieJar())
        try:
            yield
        finally:
            self.session.cookies = saved

    def cookie_header(self, url: str) -> str | None:
        """The Cookie header the jar would send to `url` (RFC 6265 5.4), for the WebSocket handshake."""
        return requests.cookies.get_cookie_header(self.session.cookies, requests.Request("GET", url).prepare())

    def get_json(self, url: str, *, timeout_s: float | None = None) -> Any:
        """GET a JSON document (the AS JWKS); raises TransportError or ValueError."""
        exchange = self.request("GET", url, headers={"Accept": "application/json"}, send_cookies=False,
                                timeout_s=timeout_s)
        if isinstance(exchange, Garbage):
            raise ValueError(f"GET {url}: {exchange.reason}")
        if exchange.status != 200:
            raise ValueError(f"GET {url} answered {exchange.status}")
        return exchange.json()

    def request(
        self,
        method: str,
        url: str,
        *,
        params: Mapping[str, Any] | Sequence[tuple[str, Any]] | None = None,
        headers: Mapping[str, str | None] | None = None,
        form: Mapping[str, Any] | Sequence[tuple[str, Any]] | None = None,
        json_body: Any = None,
        body: str | bytes | None = None,
        basic: tuple[str, str] | None = None,
        bearer: str | None = None,
        send_cookies: bool = True,
        timeout_s: float | None = None,
    ) -> HttpExchange | Garbage:
        """Send one request; return the exchange, or Garbage (with the bytes) when the SUT answered
        something that is not a complete response. Raises TransportError if no answer came at all.

        headers: override the defaults (None removes one); basic: (user, secret) for RFC 7617;
        send_cookies False sends none of the jar's cookies (those received are still stored).
        """
        data: Any = form if form is not None else body
        if isinstance(data, str):
            data = data.encode("utf-8")
        req = requests.Request(method.upper(), url, params=params, data=data, json=json_body,
                               auth=HTTPBasicAuth(str(basic[0]), str(basic[1])) if basic else None)
        prepared = self.session.prepare_request(req)
        for name, value in (headers or {}).items():  # after prepare: override session defaults
            if value is None:
                prepared.headers.pop(name, None)
            else:
                prepared.headers[name] = str(value)
        if bearer is not None:
            prepared.headers["Authorization"] = f"Bearer {bearer}"
        if not send_cookies:
            prepared.headers.pop("Cookie", None)
        timeout = self.timeout_s if timeout_s is None else timeout_s
        step = deadline.current()
        if step is None:  # library use: a deadline of its own, so the total stays bounded here too
            with deadline.run_within(timeout, connect_s=timeout):
                return self._send(prepared, method, url)
        return self._send(prepared, method, url)

    def _send(self, prepared: requests.PreparedRequest, method: str, url: str) -> HttpExchange | Garbage:
        step = deadline.current()
        mark = step.mark()
        start = step.clock.now()
        connect_s, read_s = step.connect_timeout(), max(step.remaining(), 0.001)
        what = f"{method} {url}"
        try:
            resp = self.session.send(prepared, allow_redirects=False, timeout=(connect_s, read_s), stream=True)
            try:
                body, total = _read_capped(resp)
            finally:
                resp.close()
        except requests.exceptions.ConnectTimeout as exc:
            raise TransportError("connect", f"{what}: no connection within {connect_s:.3g} s") from exc
        except requests.exceptions.SSLError as exc:
            if "timed out" in str(exc):  # silence during the TLS handshake
                raise TransportError("timeout", f"{what}: TLS handshake: no answer in time") from exc
            # the SUT answered, with a certificate or a TLS message the harness refuses: its fault
            return Garbage(raw=step.received_since(mark), reason=f"TLS handshake failed: {_reason(exc)}",
                           transport="https")
        except requests.exceptions.ConnectionError as exc:
            if _never_connected(exc):
                raise TransportError("connect", f"{what}: {_reason(exc)}") from exc
            return self._broken(step, mark, what, exc, timeout=_timed_out(exc))
        except (requests.exceptions.Timeout, urllib3.exceptions.TimeoutError, TimeoutError) as exc:
            return self._broken(step, mark, what, exc, timeout=True)
        except (requests.exceptions.RequestException, urllib3.exceptions.HTTPError, http.client.HTTPException,
                OSError) as exc:  # the body cut short, chunked framing, decoding: a broken answer
            return self._broken(step, mark, what, exc)
        elapsed_ms = (step.clock.now() - start) * 1000.0
        body_bytes = prepared.body or b""
        return HttpExchange(
            method=prepared.method or method.upper(),
            url=prepared.url or url,
            request_headers=_sent_headers(prepared),
            request_body=body_bytes.encode("utf-8") if isinstance(body_bytes, str) else bytes(body_bytes),
            status=resp.status_code,
            reason=resp.reason or "",
            # urllib3 keeps every field line; requests' own dict merges duplicates (Set-Cookie)
            headers=list(resp.raw.headers.iteritems()),
            body=body,
            elapsed_ms=elapsed_ms,
            body_length=total,
        )

    @staticmethod
    def _broken(step, mark: int, what: str, exc: Exception, timeout: bool = False) -> Garbage:
        """The SUT accepted the connection, then answered something that is not a complete HTTP
        response (garbage, a half response, a close) or nothing at all before the deadline."""
        raw = step.received_since(mark)
        if timeout and not raw:
            raise TransportError("timeout", f"{what}: no answer within the step deadline of {step.total_s:g} s") \
                from exc
        why = (f"incomplete answer when the step deadline of {step.total_s:g} s passed" if timeout
               else f"not a complete HTTP response: {_reason(exc)}")
        return Garbage(raw=raw, reason=why, transport="http")

    def close(self) -> None:
        close_session(self.session)


def close_session(session: requests.Session) -> None:
    """Close a session's pooled TLS connections with a close_notify first (RFC 8446 6.1): a bare
    TCP FIN makes a server answer with a fatal alert (OpenSSL sends decode_error), which then
    shows in every capture as if the server had misbehaved."""
    import contextlib
    import ssl

    for adapter in session.adapters.values():
        manager = getattr(adapter, "poolmanager", None)
        pools = getattr(manager, "pools", None)
        for key in list(pools.keys()) if pools is not None else []:  # the container refuses .values()
            pool = pools.get(key)
            queue = getattr(getattr(pool, "pool", None), "queue", None) or []  # idle connections
            for conn in list(queue):
                sock = getattr(conn, "sock", None)
                if isinstance(sock, ssl.SSLSocket):
                    with contextlib.suppress(OSError, ValueError, ssl.SSLError):
                        sock.settimeout(0.2)  # bounded: a peer that never answers does not hold us
                        sock.unwrap()
    session.close()


def _read_capped(resp: requests.Response) -> tuple[bytes, int]:
    """The body, at most MESSAGE_LIMIT bytes kept, and its true length (the rest is read and
    dropped within the deadline, so a 10 MiB answer costs 1 MiB of memory)."""
    kept = bytearray()
    total = 0
    for chunk in resp.raw.stream(65536, decode_content=True):
        total += len(chunk)
        if len(kept) < MESSAGE_LIMIT:
            kept += chunk[:MESSAGE_LIMIT - len(kept)]
    return bytes(kept), total


def _never_connected(exc: Exception) -> bool:
    """True when no TCP connection was made at all (refused, no route, unknown name)."""
    return _in_chain(exc, NewConnectionError | NameResolutionError | ConnectionRefusedError)


def _timed_out(exc: Exception) -> bool:
    """True when the step deadline (or a socket timeout) ended the read. requests reports a read
    cut by our deadline as ConnectionError('Connection aborted.', DeadlineExceeded(...)), not as
    a Timeout: without this, a silent SUT on a loaded machine read as a broken answer (fail)
    instead of silence (inconclusive)."""
    return _in_chain(exc, TimeoutError)


def _in_chain(exc: BaseException, kinds) -> bool:
    seen: set[int] = set()
    stack: list = [exc]
    while stack:
        e = stack.pop()
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        if isinstance(e, kinds):
            return True
        stack += [getattr(e, "reason", None), e.__cause__, e.__context__] + [a for a in getattr(e, "args", ())
                                                                            if isinstance(a, BaseException)]
    return False


def _reason(exc: Exception) -> str:
    """The innermost message of a requests/urllib3 exception chain, short."""
    text = str(exc)
    inner = getattr(exc, "args", ())
    if inner and isinstance(inner[0], BaseException):
        text = str(getattr(inner[0], "reason", None) or inner[0])
    return text[:300]


def _sent_headers(prepared: requests.PreparedRequest) -> list[tuple[str, str]]:
    """Request headers in sending order; http.client adds Host first (RFC 9110 7.2)."""
    out = [(k, v if isinstance(v, str) else v.decode("latin-1")) for k, v in prepared.headers.items()]
    if not any(k.lower() == "host" for k, _ in out):
        parts = urlsplit(prepared.url or "")
        default = {"http": 80, "https": 443}.get(parts.scheme)
        host = parts.hostname or ""
        if ":" in host:
            host = f"[{host}]"
        if parts.port and parts.port != default:
            host = f"{host}:{parts.port}"
        out.insert(0, ("Host", host))
    return out


def resolve_location(exchange: HttpExchange) -> str:
    """The absolute URL of the response's Location (RFC 9110 10.2.2: relative to the request URL)."""
    values = exchange.header_values("Location")
    if not values:
        raise LookupError(f"{exchange.method} {exchange.url} answered {exchange.status} without Location")
    return urljoin(exchange.url, values[0].strip())


# ---------------------------------------------------------------------------------------------
# HTML forms (HTML Living Standard 4.10.21.4 "constructing the entry list", the parts a login or
# consent page uses).


@dataclass
class FormControl:
    tag: str  # input | button | select | textarea
    name: str
    type: str = ""
    value: str | None = None
    checked: bool = False
    disabled: bool = False
    options: list[tuple[str, bool]] = field(default_factory=list)  # select: (value, selected)


@dataclass
class Form:
    id: str | None
    name: str | None
    action: str | None
    method: str
    controls: list[FormControl] = field(default_factory=list)

    def entries(self) -> list[tuple[str, str]]:
        """What a browser submits without user input, the first named submit button counting as clicked."""
        out: list[tuple[str, str]] = []
        clicked = False
        for c in self.controls:
            if c.disabled or not c.name:
                continue
            if c.tag == "select":
                chosen = [v for v, sel in c.options if sel] or [v for v, _ in c.options[:1]]
                out.extend((c.name, v) for v in chosen)
            elif c.tag == "textarea":
                out.append((c.name, c.value or ""))
            elif c.type in ("submit", "image") or c.tag == "button" and c.type in ("", "submit"):
                if not clicked:
                    clicked = True
                    out.append((c.name, c.value or ""))
            elif c.type in ("checkbox", "radio"):
                if c.checked:
                    out.append((c.name, c.value if c.value is not None else "on"))
            elif c.type in ("reset", "file") or c.tag == "button":
                continue
            else:
                out.append((c.name, c.value or ""))
        return out


class _FormParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.forms: list[Form] = []
        self._form: Form | None = None
        self._text_target: FormControl | None = None  # textarea or option collecting text
        self._option: list | None = None  # [value or None, selected, text]

    def handle_starttag(self, tag, attrs):
        a = {k.lower(): (v if v is not None else "") for k, v in attrs}
        if tag == "form":
            self._form = Form(a.get("id"), a.get("name"), a.get("action"), (a.get("method") or "GET").upper())
            self.forms.append(self._form)
            return
        if self._form is None:
            return
        if tag in ("input", "button", "select", "textarea"):
            default_type = {"input": "text", "button": "submit"}.get(tag, "")
            control = FormControl(
                tag=tag, name=a.get("name", ""), type=(a.get("type") or default_type).lower(),
                value=a.get("value"), checked="checked" in a, disabled="disabled" in a,
            )
            self._form.controls.append(control)
            if tag == "textarea":
                control.value = ""
                self._text_target = control
        elif tag == "option" and self._form.controls and self._form.controls[-1].tag == "select":
            self._close_option()
            self._option = [a.get("value"), "selected" in a, ""]

    def handle_endtag(self, tag):
        if tag == "form":
            self._close_option()
            self._form = None
        elif tag == "textarea":
            self._text_target = None
        elif tag in ("option", "select"):
            self._close_option()

    def handle_data(self, data):
        if self._text_target is not None:
            self._text_target.value = (self._text_target.value or "") + data
        elif self._option is not None:
            self._option[2] += data

    def _close_option(self):
        if self._option is not None and self._form and self._form.controls:
            value, selected, text = self._option
            self._form.controls[-1].options.append((value if value is not None else text.strip(), selected))
        self._option = None


def parse_forms(html: str | bytes) -> list[Form]:
    if isinstance(html, bytes):
        html = html.decode("utf-8", "replace")
    parser = _FormParser()
    parser.feed(html)
    parser.close()
    return parser.forms


class FormNotFound(LookupError):
    pass


def find_form(html: str | bytes, select: str | None = None) -> Form:
    """The form named by `select`: `#id`, a form name, or a substring of its action; default the first."""
    forms = parse_forms(html)
    if not forms:
        raise FormNotFound("the page has no <form>")
    if not select or select is True:
        return forms[0]
    select = str(select)
    for f in forms:
        if select.startswith("#") and f.id == select[1:] or f.name == select:
            return f
    for f in forms:
        if f.action and select in f.action:
            return f
    described = ", ".join(f"#{f.id or '-'} action={f.action!r}" for f in forms)
    raise FormNotFound(f"no form matches {select!r} among: {described}")


def fill_form(
    html: str | bytes,
    select: str | None = None,
    fields: Mapping[str, Any] | None = None,
    base_url: str = "",
) -> tuple[str, str, list[tuple[str, str]]]:
    """(method, absolute action URL, entries) of the selected form after setting `fields`.

    Hidden inputs, checked radios and checkboxes, and selected options are kept. A field in
    `fields` replaces every entry of that name (or is appended if the form has none); a None
    value removes it, which is how a negative case drops a hidden transaction field.
    """
    form = find_form(html, select)
    entries = form.entries()
    for name, value in (fields or {}).items():
        kept = [(n, v) for n, v in entries if n != name]
        if value is not None:
            values = value if isinstance(value, list | tuple) else [value]
            pos = next((i for i, (n, _) in enumerate(entries) if n == name), len(kept))
            kept[pos:pos] = [(name, _form_text(v)) for v in values]
        entries = kept
    action = urljoin(base_url, form.action) if form.action else base_url
    return form.method, action, entries


def _form_text(value: Any) -> str:
    if isinstance(value, bool):
        return "on" if value else ""
    return str(value)
