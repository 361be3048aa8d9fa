"""The WSF's part of the registration lifecycle after step 22 (docs/lifecycle.md).

Kept apart from refnet/wsf.py, which only calls in at a few points:
- the WebSocket handshake's Origin check (RFC 6455 10.2: a server that is meant for pages of
  known origins refuses others, so a foreign page cannot open the SIP WebSocket in the victim's
  name, "cross-site WebSocket hijacking");
- what a flow has registered: the identity of its last successful REGISTER (PICS
  wsf.reregister_token = first lets later REGISTERs on the flow go without a token) and the
  bindings it holds at the S-CSCF;
- the de-registration the WSF sends on the UE's behalf when the WebSocket closes or is lost
  (PICS wsf.on_ws_close = deregister; RFC 5626 5.2 / TS 24.229 5.2.2: the flow is gone, so the
  binding that names it can never reach the UE again).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .sip import HeaderError, Request, Response, parse_name_addr

# -- Origin (RFC 6455 4.2.1 item 8 and 10.2) ---------------------------------------------------

def origin_refusal(origin: str | None, allowed: set[str], missing: str, accept_foreign: bool) -> str | None:
    """Why the handshake is refused (a 403 body), or None to accept it.

    `allowed` holds lower-case origins without a trailing slash; `missing` is PICS
    wsf.origin_missing (accept | reject)."""
    if accept_foreign:
        return None
    if origin is None or not origin.strip():
        if missing == "reject":
            return "Forbidden: the handshake carries no Origin (RFC 6455 10.2)\n"
        return None
    if origin.strip().rstrip("/").lower() in allowed:
        return None
    return f"Forbidden: Origin {origin.strip()} is not allowed to open this WebSocket (RFC 6455 10.2)\n"


# -- what a flow has registered ------------------------------------------------------------------

@dataclass
class FlowRegistration:
    """The identity and bindings a WebSocket flow holds (one per flow)."""

    sub: str | None = None
    impi: str | None = None
    impus: list[str] = field(default_factory=list)
    # (AOR as forwarded, Contact URI) -> the Contact value as registered (parameters kept)
    bindings: dict[tuple[str, str], str] = field(default_factory=dict)

    @property
    def registered(self) -> bool:
        return self.impi is not None


def _contact_expires(value: str, default: int) -> tuple[str, int]:
    na = parse_name_addr(value)
    raw = na.params.get("expires")
    try:
        return str(na.uri), int(raw) if raw is not None else default
    except ValueError:
        return str(na.uri), default


def record_success(reg: FlowRegistration, forwarded: Request, response: Response, ident) -> None:
    """A 2xx to a REGISTER the flow sent: remember the identity and the bindings it now holds.

    The granted set is the one the registrar lists in the 200 OK (RFC 3261 10.3 step 8); only the
    flow's own Contacts (those of the request) are ours to remove later."""
    if not 200 <= response.status < 300:
        return
    reg.sub, reg.impi, reg.impus = ident.sub, ident.impi, list(ident.impus)
    to = forwarded.headers.get("To") or ""
    try:
        aor = str(parse_name_addr(to).uri)
    except HeaderError:
        return
    expires_header = forwarded.headers.get("Expires")
    default = int(expires_header) if expires_header and expires_header.strip().isdigit() else 3600
    for value in forwarded.headers.get_all("Contact"):
        if value.strip() == "*":
            for key in [k for k in reg.bindings if k[0] == aor]:
                del reg.bindings[key]
            continue
        try:
            uri, expires = _contact_expires(value, default)
        except HeaderError:
            continue
        if expires == 0:
            reg.bindings.pop((aor, uri), None)
        else:
            reg.bindings[(aor, uri)] = value


def deregistration(aor: str, contact: str, impi: str, home_domain: str, call_id: str) -> Request:
    """REGISTER removing one binding (RFC 3261 10.2.2: expires=0), trusted-node authenticated
    like every REGISTER the WSF forwards (TS 24.229 5.2.2). Via, Max-Forwards and CSeq are the
    caller's; a fresh Call-ID keeps it clear of the UE's CSeq ordering (10.3 step 7)."""
    na = parse_name_addr(contact)
    na.params.pop("expires", None)
    na.params["expires"] = "0"
    req = Request("REGISTER", f"sip:{home_domain}")
    h = req.headers
    h.add("To", f"<{aor}>")
    h.add("From", f"<{aor}>;tag={call_id[:10]}")
    h.add("Call-ID", call_id)
    h.add("CSeq", "1 REGISTER")
    h.add("Contact", str(na))
    h.add("Authorization", f'Digest username="{impi}", realm="{home_domain}", uri="sip:{home_domain}", '
                           f'nonce="", response="", integrity-protected="auth-done"')
    return req
