"""The S-CSCF's registration event package (RFC 3680, TS 24.229 5.4.2.1) and network-initiated
de-registration (TS 24.229 5.4.1.5), kept out of refnet/cscf.py (docs/lifecycle.md).

Subscriptions live in memory (a restart loses them; the UE re-subscribes). Every NOTIFY carries
the full state of the AOR (RFC 3680 5.2 allows `state="full"` at any time, with the version
counting up), plus the contacts that just went away as `terminated` with the event that ended
them, so a subscriber learns why a binding disappeared.
"""

from __future__ import annotations

import hashlib
import secrets
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field

from .sip import HeaderError, Request, parse_name_addr

REGINFO_NS = "urn:ietf:params:xml:ns:reginfo"
CONTENT_TYPE = "application/reginfo+xml"
DEFAULT_EXPIRES = 600
MAX_EXPIRES = 3600


@dataclass
class Subscription:
    """One reg-event subscription dialog, as its notifier (the S-CSCF) sees it (RFC 6665 4.2)."""

    aor: str  # the IMPU whose registration state is watched
    call_id: str
    local_tag: str  # the To tag of our 200 OK
    remote_tag: str  # the subscriber's From tag
    remote_uri: str  # the subscriber (From URI)
    target: str  # the subscriber's Contact URI: the NOTIFY's Request-URI
    route: list[str]  # the Record-Route set, in order: the NOTIFY's Route
    expires_at: float
    cseq: int = 0
    version: int = 0
    reg_id: str = field(default_factory=lambda: secrets.token_hex(4))

    def next_cseq(self) -> int:
        self.cseq += 1
        return self.cseq


class Subscriptions:
    def __init__(self):
        self._by_key: dict[tuple[str, str, str], Subscription] = {}

    def add(self, sub: Subscription) -> None:
        self._by_key[(sub.call_id, sub.local_tag, sub.remote_tag)] = sub

    def find(self, call_id: str, local_tag: str | None, remote_tag: str | None) -> Subscription | None:
        return self._by_key.get((call_id, local_tag or "", remote_tag or ""))

    def remove(self, sub: Subscription) -> None:
        self._by_key.pop((sub.call_id, sub.local_tag, sub.remote_tag), None)

    def of_aor(self, aor: str, now: float | None = None) -> list[Subscription]:
        now = time.time() if now is None else now
        for key, sub in list(self._by_key.items()):
            if sub.expires_at <= now:
                del self._by_key[key]
        return [s for s in self._by_key.values() if s.aor == aor]


def subscription_from(req: Request, aor: str, local_tag: str, expires: int) -> Subscription:
    """The dialog a SUBSCRIBE creates (RFC 3261 12.1.1 for the UAS: route set = Record-Route in order)."""
    frm = parse_name_addr(req.headers.get("From"))
    contact = parse_name_addr(req.headers.get("Contact"))
    route = []
    for value in req.headers.get_all("Record-Route"):
        route += [v.strip() for v in _split_commas(value)]
    return Subscription(aor=aor, call_id=req.call_id or "", local_tag=local_tag,
                        remote_tag=frm.params.get("tag") or "", remote_uri=str(frm.uri), target=str(contact.uri),
                        route=route, expires_at=time.time() + expires)


def _split_commas(value: str) -> list[str]:
    """Header values separated by commas outside <> and quotes (Record-Route may be combined)."""
    out, depth, quoted, cur = [], 0, False, []
    for ch in value:
        if ch == '"':
            quoted = not quoted
        elif not quoted and ch == "<":
            depth += 1
        elif not quoted and ch == ">":
            depth -= 1
        if ch == "," and depth == 0 and not quoted:
            out.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    if "".join(cur).strip():
        out.append("".join(cur))
    return out


def requested_expires(req: Request) -> int:
    raw = (req.headers.get("Expires") or "").strip()
    if raw.isascii() and raw.isdigit():
        return min(int(raw), MAX_EXPIRES)
    return DEFAULT_EXPIRES


# -- the reginfo document (RFC 3680 5.1, 5.4) ------------------------------------------------------

@dataclass(frozen=True)
class ContactState:
    uri: str
    instance: str | None
    state: str  # active | terminated
    event: str  # registered | created | refreshed | shortened | expired | deactivated | probation | unregistered | rejected
    expires: int | None
    contact_id: str


def contact_states(bindings, gone: dict[str, str]) -> list[ContactState]:
    """Active contacts from the S-CSCF's bindings; `gone` = {binding key: event} of the ones that
    just ended (unregistered, deactivated, expired, ...), reported once as terminated."""
    out = []
    for b in bindings:
        uri, instance = _contact_parts(b.contact)
        out.append(ContactState(uri, instance, "active", "registered", b.remaining(), _cid(b.key)))
    for key, (contact, event) in gone.items():
        uri, instance = _contact_parts(contact)
        out.append(ContactState(uri, instance, "terminated", event, None, _cid(key)))
    return out


def _cid(key: str) -> str:
    """A contact id that stays the same in every NOTIFY (RFC 3680 5.1: id identifies the contact)."""
    return "c" + hashlib.sha1(key.encode("utf-8", "surrogateescape")).hexdigest()[:12]


def _contact_parts(contact: str) -> tuple[str, str | None]:
    try:
        na = parse_name_addr(contact)
    except HeaderError:
        return contact, None
    return str(na.uri), na.params.get("+sip.instance")


def reginfo(aor: str, reg_id: str, version: int, contacts: list[ContactState], terminated: bool) -> bytes:
    """`<reginfo>` with one `<registration>` (RFC 3680 5.1); state full."""
    ET.register_namespace("", REGINFO_NS)
    root = ET.Element(f"{{{REGINFO_NS}}}reginfo", {"version": str(version), "state": "full"})
    active = any(c.state == "active" for c in contacts)
    reg_state = "active" if active and not terminated else ("terminated" if contacts or terminated else "init")
    reg = ET.SubElement(root, f"{{{REGINFO_NS}}}registration", {"aor": aor, "id": reg_id, "state": reg_state})
    for c in contacts:
        attrs = {"id": c.contact_id, "state": c.state, "event": c.event}
        if c.expires is not None and c.state == "active":
            attrs["expires"] = str(c.expires)
        el = ET.SubElement(reg, f"{{{REGINFO_NS}}}contact", attrs)
        ET.SubElement(el, f"{{{REGINFO_NS}}}uri").text = c.uri
        if c.instance:
            param = ET.SubElement(el, f"{{{REGINFO_NS}}}unknown-param", {"name": "+sip.instance"})
            param.text = c.instance
    return b'<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root)


# -- the notifier (the S-CSCF's side) --------------------------------------------------------------

def notify_request(sub: Subscription, me_host: str, me_port: int, transport: str, name: str,
                   body: bytes, sub_state: str) -> tuple[Request, str]:
    """NOTIFY within the subscription dialog (RFC 6665 4.2.2, RFC 3261 12.2.1.1): Request-URI =
    the subscriber's Contact, Route = the dialog's route set, Event reg, Subscription-State."""
    branch = f"z9hG4bK{secrets.token_hex(10)}"
    req = Request("NOTIFY", sub.target)
    h = req.headers
    h.add("Via", f"SIP/2.0/{transport} {me_host}:{me_port};branch={branch};rport")
    h.add("Max-Forwards", "70")
    for r in sub.route:
        h.add("Route", r)
    h.add("To", f"<{sub.remote_uri}>;tag={sub.remote_tag}")
    h.add("From", f"<{sub.aor}>;tag={sub.local_tag}")
    h.add("Call-ID", sub.call_id)
    h.add("CSeq", f"{sub.next_cseq()} NOTIFY")
    h.add("Contact", f"<sip:{name}>")
    h.add("Event", "reg")
    h.add("Subscription-State", sub_state)
    h.add("Content-Type", CONTENT_TYPE)
    req.body = body
    return req, branch


def first_hop(route: list[str], target: str) -> tuple[str, int] | None:
    """(host, port) of the first Route entry (loose routing, RFC 3261 16.12), else of the target."""
    uri_text = route[0] if route else f"<{target}>"
    try:
        uri = parse_name_addr(uri_text).uri
    except HeaderError:
        return None
    host = getattr(uri, "host", None)
    if not host:
        return None
    return host, getattr(uri, "port", None) or 5060
