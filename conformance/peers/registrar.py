"""The registrar state of the emulated core (P-CSCF and S-CSCF in one) after step 22
(docs/lifecycle.md sections 1-5): bindings per AOR with their expiry, Min-Expires, queries,
de-registration, and the reg-event notifier (RFC 3680, TS 24.229 5.4.2.1).

- bindings: one per `+sip.instance`/`reg-id` (RFC 5626 6), else per Contact URI; a refresh
  replaces it; `expires=0` removes it; `Contact: *` with `Expires: 0` removes all (RFC 3261
  10.3 steps 6-7); an expiry below `pixit.lifecycle.min_expires` is 423 with Min-Expires (10.3
  step 7); the granted expiry is never longer than the one asked for; an expired binding is no
  longer listed (purged when the AOR is next read);
- reg event: a SUBSCRIBE from the user itself (P-Asserted-Identity among the AOR's IMPUs, else
  403, TS 24.229 5.4.2.1.1) is answered 200 with Expires and the Record-Route, then a NOTIFY with
  the full state (RFC 6665 4.2.1); every change of the AOR's bindings is notified to its
  subscribers (RFC 3680 4.7), as is a network-initiated de-registration (TS 24.229 5.4.1.5:
  registration terminated, subscription terminated). The NOTIFY goes along the subscription's
  route set to the edge that sent the SUBSCRIBE (`send_to_edge`, the transport it came over).
"""

from __future__ import annotations

import hashlib
import secrets
import time
from dataclasses import dataclass, field
from xml.sax.saxutils import escape, quoteattr

from conformance.codec import sip
from conformance.codec.sip_headers import HeaderError, parse_name_addr

MAX_EXPIRES = 600000
DEFAULT_EXPIRES = 3600
SUB_DEFAULT_EXPIRES = 600000  # TS 24.229 5.1.1.3 asks 600000 s; a SUBSCRIBE without Expires gets it


@dataclass
class Binding:
    key: str
    value: str  # the Contact as registered (listed with its remaining expiry)
    uri: str
    instance: str | None
    expires_at: float
    id: str = field(default_factory=lambda: _contact_id())

    def remaining(self, now: float) -> int:
        return max(0, int(round(self.expires_at - now)))


@dataclass
class Subscription:
    aor: str
    call_id: str
    local_tag: str  # ours, the To tag of the 200 (the NOTIFY's From tag)
    remote: str  # the subscriber's From (the NOTIFY's To)
    local: str  # the SUBSCRIBE's To (the NOTIFY's From, with our tag)
    target: str  # the subscriber's Contact URI (the NOTIFY's Request-URI)
    routes: list[str]
    send: object  # bytes -> None: back to the edge the SUBSCRIBE came from
    expires_at: float
    cseq: int = 0
    version: int = 0


@dataclass
class Change:
    """What a REGISTER (or the network) did to an AOR: the events of the bindings it set, and the
    bindings it removed (listed once more as terminated, RFC 3680 5.1)."""
    aor: str
    events: dict[str, str]
    gone: dict[str, Binding]
    gone_event: str = "unregistered"


def _contact_id() -> str:
    return "c" + secrets.token_hex(6)


def _error(req: sip.Request, status: int, reason: str) -> sip.Response:
    return sip.make_response(req, status, reason, to_tag=sip.new_tag())


def _uri_of(value: str) -> str | None:
    try:
        return str(parse_name_addr(value).uri)
    except HeaderError:
        return None


class Registrar:
    def __init__(self, cscf, clock=time.monotonic):
        self.cscf, self.clock = cscf, clock
        lifecycle = cscf.peers.profile.pixit.get("lifecycle") or {}
        self.min_expires = int(lifecycle.get("min_expires") or 0)
        self.aors: dict[str, dict[str, Binding]] = {}
        self.subs: list[Subscription] = []

    def bindings(self, aor: str) -> dict[str, Binding]:
        now = self.clock()
        current = self.aors.setdefault(aor, {})
        for key in [k for k, b in current.items() if b.expires_at <= now]:
            del current[key]
        return current

    # -- REGISTER ---------------------------------------------------------------------------------
    def register(self, req: sip.Request) -> tuple[sip.Response | None, Change | None]:
        """An error answer (nothing changed), or the change made (None for a query); the 200 is
        built by the caller with `contacts`. Nothing changes unless every Contact is acceptable."""
        aor = _uri_of(req.headers.get("To") or "") or ""
        contacts = req.headers.get_all("Contact")
        header_expires = (req.headers.get("Expires") or "").strip()
        if any(c.strip() == "*" for c in contacts):
            if header_expires != "0" or len(contacts) != 1:  # RFC 3261 10.3 step 6
                return _error(req, 400, "Bad Request (Contact: * needs Expires: 0)"), None
            gone = dict(self.bindings(aor))
            self.aors[aor] = {}
            return None, Change(aor, {}, gone)
        wanted = []
        for value in contacts:
            try:
                na = parse_name_addr(value)
            except HeaderError:
                return _error(req, 400, "Bad Request (Contact)"), None
            raw = na.params.get("expires") or header_expires or str(DEFAULT_EXPIRES)
            try:
                expires = int(raw)
            except ValueError:
                expires = DEFAULT_EXPIRES
            if 0 < expires < self.min_expires:
                resp = _error(req, 423, "Interval Too Brief")
                resp.headers.add("Min-Expires", str(self.min_expires))
                return resp, None
            instance = na.params.get("+sip.instance")
            key = f"{instance}|{na.params.get('reg-id', '')}" if instance else str(na.uri)
            wanted.append((key, value, str(na.uri), instance, min(expires, MAX_EXPIRES)))
        if not wanted:
            return None, None  # a query (RFC 3261 10.2.3)
        current = self.bindings(aor)
        now = self.clock()
        change = Change(aor, {}, {})
        for key, value, uri, instance, expires in wanted:
            old = current.pop(key, None)
            if expires == 0:
                if old is not None:
                    change.gone[key] = old
                continue
            current[key] = Binding(key, value, uri, instance, now + expires, old.id if old else _contact_id())
            change.events[key] = "registered" if old is None else "refreshed"
        return None, change

    def contacts(self, aor: str) -> list[str]:
        now = self.clock()
        out = []
        for b in self.bindings(aor).values():
            na = parse_name_addr(b.value)
            na.params["expires"] = str(b.remaining(now))
            out.append(str(na))
        return out

    def network_deregister(self, impu: str, event: str) -> list[tuple[Subscription, sip.Request]]:
        """TS 24.229 5.4.1.5: the IMPU's bindings go; each subscriber gets the terminated state and
        its subscription ends (RFC 6665 4.2.2: reason deactivated or rejected, as the event)."""
        gone = dict(self.bindings(impu))
        self.aors[impu] = {}
        change = Change(impu, {}, gone, gone_event=event)
        return [(sub, self.notify(sub, change, terminated=event)) for sub in self.subscribers(impu)]

    # -- reg event --------------------------------------------------------------------------------
    def subscribe(self, req: sip.Request, send, user_of) -> tuple[sip.Response, Subscription | None]:
        if (req.headers.get("Event") or "").split(";")[0].strip().lower() != "reg":
            return sip.make_response(req, 489, "Bad Event", to_tag=sip.new_tag()), None
        aor = _uri_of(req.headers.get("To") or "") or ""
        user = user_of(aor)
        asserted = {_uri_of(v) for v in req.headers.get_all("P-Asserted-Identity")}
        if user is None or not asserted & set(user.get("impus") or []):  # TS 24.229 5.4.2.1.1
            return sip.make_response(req, 403, "Forbidden (not the owner of this registration)", to_tag=sip.new_tag()), None
        try:
            expires = int((req.headers.get("Expires") or str(SUB_DEFAULT_EXPIRES)).strip())
        except ValueError:
            expires = SUB_DEFAULT_EXPIRES
        tag = sip.new_tag()
        resp = sip.make_response(req, 200, to_tag=tag)
        resp.headers.add("Expires", str(expires))
        resp.headers.add("Contact", f"<sip:{self.cscf.domain_name}>")
        for value in req.headers.get_all("Record-Route"):  # RFC 3261 12.1.1: copied, in order
            resp.headers.add("Record-Route", value)
        call_id = req.headers.get("Call-ID") or ""
        # a refresh or an unsubscription replaces the subscription of that dialog
        self.subs = [s for s in self.subs if s.call_id != call_id]
        sub = Subscription(aor, call_id, tag, req.headers.get("From") or "", f"<{aor}>;tag={tag}",
                           _uri_of(req.headers.get("Contact") or "") or "",
                           [v for v in req.headers.get_all("Record-Route") if not self._is_me(v)],
                           send, self.clock() + expires)
        if expires > 0:
            self.subs.append(sub)
        return resp, sub

    def _is_me(self, route: str) -> bool:
        try:
            host = (getattr(parse_name_addr(route).uri, "host", "") or "").lower()
        except HeaderError:
            return False
        return host in {self.cscf.domain_name.lower(), self.cscf.host}

    def subscribers(self, aor: str) -> list[Subscription]:
        now = self.clock()
        self.subs = [s for s in self.subs if s.expires_at > now]
        return [s for s in self.subs if s.aor == aor]

    def notify(self, sub: Subscription, change: Change | None = None, *, terminated: str | None = None) -> sip.Request:
        """The NOTIFY with the AOR's full state (the change's removed bindings listed as terminated);
        `terminated`: the subscription ends with that reason (RFC 6665 4.2.2)."""
        now = self.clock()
        sub.cseq += 1
        headers = sip.Headers()
        headers.add("Max-Forwards", "70")
        for route in sub.routes:
            headers.add("Route", route)
        headers.add("To", sub.remote)
        headers.add("From", sub.local)
        headers.add("Call-ID", sub.call_id)
        headers.add("CSeq", f"{sub.cseq} NOTIFY")
        headers.add("Contact", f"<sip:{self.cscf.domain_name}>")
        headers.add("Event", "reg")
        left = max(0, int(sub.expires_at - now))
        headers.add("Subscription-State", f"terminated;reason={terminated}" if terminated else f"active;expires={left}")
        headers.add("Content-Type", "application/reginfo+xml")
        if terminated:
            self.subs = [s for s in self.subs if s is not sub]
        return sip.Request("NOTIFY", sub.target, sip.SIP_VERSION, headers, self.reginfo(sub, now, change).encode())

    def reginfo(self, sub: Subscription, now: float, change: Change | None) -> str:
        """RFC 3680 5.4 document, state full (version counts per subscription, RFC 3680 5.2)."""
        version = sub.version
        sub.version += 1
        events = change.events if change else {}
        items = [self._contact(b, "active", events.get(b.key, "registered"), b.remaining(now))
                 for b in self.bindings(sub.aor).values()]
        gone = change.gone if change else {}
        items += [self._contact(b, "terminated", change.gone_event, 0) for b in gone.values()]
        state = "active" if self.bindings(sub.aor) else ("terminated" if gone else "init")
        reg_id = "r" + hashlib.sha1(sub.aor.encode()).hexdigest()[:8]
        return (f'<?xml version="1.0"?>\n<reginfo xmlns="urn:ietf:params:xml:ns:reginfo" version="{version}" '
                f'state="full"><registration aor={quoteattr(sub.aor)} id="{reg_id}" '
                f'state="{state}">{"".join(items)}</registration></reginfo>')

    @staticmethod
    def _contact(b: Binding, state: str, event: str, expires: int) -> str:
        param = (f'<unknown-param name="+sip.instance">{escape(b.instance)}</unknown-param>'
                 if b.instance else "")
        return (f'<contact id="{b.id}" state="{state}" event="{event}" expires="{expires}">'
                f"<uri>{escape(b.uri)}</uri>{param}</contact>")
