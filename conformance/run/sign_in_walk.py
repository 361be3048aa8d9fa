"""Walking an authorization server's own interaction pages (steps 4-7) without assuming how many.

BINDING shows the authorization UI as one page (step 5: 200 with the form; step 6: its POST;
step 7: the redirect to the client). RFC 6749 3.1 leaves "the way in which the authorization
server authenticates the resource owner" open, and real servers split it: oidc-provider answers
GET /authorize with 303 to its own /interaction/<uid> login page, then a consent page, then 303
back to /authorize/<uid>, then 303 to the client's redirect_uri. So:
- `follow_own_redirects`: redirects to the answering server's own origin (scheme, host, port)
  are its interaction hops, followed with GET, every hop kept as evidence, until it answers with
  something else (a page, or a redirect leaving it: to the client's redirect_uri);
- `walk`: after a sign-in form was submitted, each further page of the same server that carries
  a form is filled the same generic way (conformance/run/sign_in.py: fields from PIXIT, hidden
  inputs kept, consent discovered) and submitted, until the server redirects away from itself.
  A page whose form has the same field names as the one just submitted is the server's answer
  (it re-rendered the sign-in with an error): the walk ends there and the case judges it. A
  consent page whose refusal is a link beside its form (oidc-provider's "[ Cancel ]") is refused
  by following that link when the case denies.

Both are bounded by the step's deadline (every request of the HTTP driver honours it) and by a
number of hops, so a server that keeps redirecting to itself cannot hold a case.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from html.parser import HTMLParser
from typing import Any
from urllib.parse import urljoin, urlsplit

from conformance.drivers.http import Form, fill_form, find_form, parse_forms, resolve_location
from conformance.events import HttpExchange
from conformance.run import sign_in

MAX_HOPS = 10  # redirects plus pages of one walk; oidc-provider's whole sign-in takes 6
REDIRECTS_TO_GET = (301, 302, 303)  # RFC 9110 15.4: a user agent may re-send these as GET

# send(method, url, form_entries or None) -> the exchange (already attached as evidence), or
# anything else (Garbage: an answer that is not HTTP), which ends the walk
Send = Callable[[str, str, Any], Any]


def origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    default = {"https": 443, "http": 80}.get(parts.scheme)
    return parts.scheme, (parts.hostname or "").lower(), parts.port or default


def own_redirect(exchange: HttpExchange) -> str | None:
    """The Location of a redirect that stays on the answering server's origin, else None."""
    if exchange.status not in REDIRECTS_TO_GET or not exchange.header_values("Location"):
        return None
    target = resolve_location(exchange)
    return target if origin(target) == origin(exchange.url) else None


def follow_own_redirects(exchange: Any, send: Send, hops: list[int]) -> Any:
    """Follow `exchange`'s redirects within its server; `hops` counts against MAX_HOPS."""
    while isinstance(exchange, HttpExchange) and hops[0] < MAX_HOPS:
        target = own_redirect(exchange)
        if target is None:
            break
        hops[0] += 1
        exchange = send("GET", target, None)
    return exchange


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.links: list[list[str]] = []  # [href, text]
        self._open: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        if tag == "a" and dict(attrs).get("href"):
            self._open = [dict(attrs)["href"], ""]
            self.links.append(self._open)

    def handle_endtag(self, tag):
        if tag == "a":
            self._open = None

    def handle_data(self, data):
        if self._open is not None:
            self._open[1] += data


def deny_link(exchange: HttpExchange) -> str | None:
    """A link of the page, on the same server, whose text says deny/cancel (and not allow): some
    consent pages refuse by a link beside the form. The absolute URL, or None."""
    parser = _Links()
    parser.feed(exchange.text)
    for href, text in parser.links:
        target = urljoin(exchange.url, href)
        if (origin(target) == origin(exchange.url) and sign_in.DENY_WORDS.search(text)
                and not sign_in.GRANT_WORDS.search(text)):
            return target
    return None


def _field_names(form: Form) -> frozenset[str]:
    return frozenset(c.name for c in form.controls if c.name)


def walk(first: Any, submitted: Form, ui: Mapping[str, Any], spec: Mapping[str, Any], send: Send,
         consent_done: bool) -> Any:
    """The server's final answer to a sign-in that may span several pages (see the module doc).

    `first` answers the submission of `submitted`, the first page; `consent_done` says whether
    the requested consent choice was already made there. Raises sign_in.ConsentNotDiscoverable
    when a deny was asked for and no page offered a recognisable deny control.
    """
    server = origin(first.url) if isinstance(first, HttpExchange) else None
    hops = [0]
    last_names = _field_names(submitted)
    exchange = follow_own_redirects(first, send, hops)
    while isinstance(exchange, HttpExchange) and hops[0] < MAX_HOPS:
        if exchange.status != 200 or origin(exchange.url) != server or not parse_forms(exchange.body):
            break
        form = find_form(exchange.body)
        if _field_names(form) == last_names:  # the same form again: the server's answer to it
            break
        try:
            fields, applied = sign_in.next_page_fields(form, ui, spec)
        except sign_in.ConsentNotDiscoverable:
            link = deny_link(exchange) if spec.get("consent") == "deny" else None
            if link is None:
                raise
            hops[0] += 1  # the page refuses by a link, not by its form (oidc-provider's "[ Cancel ]")
            consent_done = True
            exchange = follow_own_redirects(send("GET", link, None), send, hops)
            continue
        consent_done = consent_done or applied
        method, action, entries = fill_form(exchange.body, None, fields, base_url=exchange.url)
        last_names = _field_names(form)
        hops[0] += 1
        exchange = follow_own_redirects(send(method, action, entries), send, hops)
    if spec.get("consent") == "deny" and not consent_done:
        raise sign_in.ConsentNotDiscoverable(
            "no page of the authorization server's sign-in offered a control recognisable as 'deny' "
            "(its pages were submitted as they come); declare pixit.authorization_ui.consent_field "
            "and consent_deny")
    return exchange
