"""The S-CSCF as notifier of the reg event package (RFC 3680, RFC 6665, TS 24.229 5.4.2.1).

Kept apart from refnet/cscf.py, which calls `snapshot`/`after_register` around every REGISTER,
`subscribe` for a SUBSCRIBE, and `flush` after each answer so that a NOTIFY always follows the
200 OK it belongs to (RFC 6665 4.2.1: the notifier sends a NOTIFY at once after accepting).

NOTIFYs go along the subscription dialog's route set (the Record-Route of the SUBSCRIBE: the
P-CSCF, then the WSF's flow URI, RFC 5626 5.3), so they reach the UE over its WebSocket.
"""

from __future__ import annotations

import ipaddress
import logging
import time

from .regevent import (
    Subscription,
    Subscriptions,
    contact_states,
    first_hop,
    notify_request,
    reginfo,
    requested_expires,
    subscription_from,
)
from .sip import HeaderError, Request, Response, UriError, parse_name_addr, parse_uri, uri_equal
from .sip_transport import make_response

log = logging.getLogger("refnet.regevent")


def resolve(cfg, host: str, port: int) -> tuple[str, int] | None:
    """An IP literal as it is; a node's certificate name to its configured address (the reference
    network resolves no names: every address is in its config)."""
    try:
        ipaddress.ip_address(host.strip("[]"))
        return host.strip("[]"), port
    except ValueError:
        pass
    for ep in cfg.endpoints.values():
        if ep.tls_name and ep.tls_name.lower() == host.lower():
            return ep.host, ep.port
    return None


class RegEventNotifier:
    def __init__(self, scscf):
        self.scscf = scscf
        self.subs = Subscriptions()
        self._pending: list[tuple[Subscription, str, dict]] = []

    # -- registrations ---------------------------------------------------------------------------
    def _aor_of(self, req: Request) -> str | None:
        try:
            to_uri = parse_name_addr(req.headers.get("To")).uri
        except HeaderError:
            return None
        ident = self.scscf.identities.by_impu(str(to_uri))
        if ident is None:
            return None
        return next((u for u in ident["impus"] if _same(u, to_uri)), None)

    def snapshot(self, req: Request) -> tuple[str | None, dict[str, str]]:
        aor = self._aor_of(req)
        if aor is None:
            return None, {}
        return aor, {b.key: b.contact for b in self.scscf.registrations.bindings(aor)}

    def after_register(self, req: Request, resp: Response, before: tuple[str | None, dict[str, str]]) -> None:
        """A registration change (a binding added or removed) is notified to the AOR's
        subscribers (RFC 3680 5.2); a plain refresh is not."""
        aor, old = before
        if aor is None or resp.status != 200 or self.scscf.faults.on("scscf-regevent-no-change-notify"):
            return
        now = {b.key for b in self.scscf.registrations.bindings(aor)}
        gone = {k: (c, "unregistered") for k, c in old.items() if k not in now}
        if not gone and now <= set(old):
            return
        for sub in self.subs.of_aor(aor):
            self._pending.append((sub, "active", gone))

    # -- SUBSCRIBE (RFC 6665 4.2.1, TS 24.229 5.4.2.1.1) -----------------------------------------
    def subscribe(self, req: Request, source) -> Response:
        cfg, faults = self.scscf.cfg, self.scscf.faults
        if (req.headers.get("Event") or "").split(";")[0].strip().lower() != "reg":
            return make_response(req, 489, "Bad Event", [("Allow-Events", "reg")])
        if source.host != cfg.endpoints["pcscf"].host:
            return make_response(req, 403, "Forbidden (SUBSCRIBE only through the P-CSCF)")
        expires = requested_expires(req)
        to_tag = parse_name_addr(req.headers.get("To")).params.get("tag")
        if to_tag:  # a refresh or an unsubscribe within the dialog
            # RFC 3261 12.2.2: matched to its dialog by Call-ID and tags; its Request-URI is our
            # Contact (the remote target), not the subscribed IMPU, which the dialog already names
            frm_tag = parse_name_addr(req.headers.get("From")).params.get("tag")
            sub = self.subs.find(req.call_id or "", to_tag, frm_tag)
            if sub is None:
                return make_response(req, 481, "Subscription Does Not Exist")
            resp = make_response(req, 200, "OK", [("Expires", str(expires)), ("Contact", f"<sip:{self.scscf.name}>")])
            if expires == 0:
                self.subs.remove(sub)
                self._pending.append((sub, "terminated;reason=timeout", {}))
            else:
                sub.expires_at = time.time() + expires
                self._pending.append((sub, f"active;expires={expires}", {}))
            return resp
        try:
            target = parse_uri(str(req.uri))
        except (UriError, ValueError) as exc:
            return make_response(req, 400, f"Bad Request: Request-URI: {exc}")
        owner = self.scscf.identities.by_impu(str(target))
        if owner is None:
            return make_response(req, 404, "Not Found (no such public user identity)")
        aor = next((u for u in owner["impus"] if _same(u, target)), str(target))
        if not faults.on("scscf-regevent-any-subscriber") and not self._authorized(req, owner):
            return make_response(req, 403, "Forbidden (the subscriber is not the owner of this registration)")
        if not req.headers.get("Contact"):
            return make_response(req, 400, "Bad Request (SUBSCRIBE without Contact)")
        # RFC 3261 12.1.1: the dialog-creating answer copies the Record-Route, in order
        resp = make_response(req, 200, "OK", [("Expires", str(expires)), ("Contact", f"<sip:{self.scscf.name}>")]
                             + [("Record-Route", v) for v in req.headers.get_all("Record-Route")])
        local_tag = parse_name_addr(resp.headers.get("To")).params.get("tag") or ""
        sub = subscription_from(req, aor, local_tag, expires)
        if expires > 0:
            self.subs.add(sub)
            self._pending.append((sub, f"active;expires={expires}", {}))
        else:  # a fetch: one NOTIFY, no subscription (RFC 6665 4.1.2.3)
            self._pending.append((sub, "terminated;reason=timeout", {}))
        return resp

    def _authorized(self, req: Request, owner: dict) -> bool:
        """TS 24.229 5.4.2.1.1: the UE may subscribe to the registration state of its own
        identities; who it is comes from P-Asserted-Identity, asserted by the trusted edge."""
        for value in req.headers.get_all("P-Asserted-Identity"):
            try:
                uri = parse_name_addr(value).uri
            except HeaderError:
                continue
            if any(_same(u, uri) for u in owner["impus"]):
                return True
        return False

    # -- network-initiated de-registration (TS 24.229 5.4.1.5) ------------------------------------
    async def network_deregister(self, impu: str, event: str) -> None:
        scscf = self.scscf
        owner = scscf.identities.by_impu(impu)
        if owner is None:
            log.info("network de-registration of unknown %s", impu)
            return
        aor = next((u for u in owner["impus"] if _same(u, impu)), impu)
        bindings = scscf.registrations.bindings(aor)
        gone = {b.key: (b.contact, event) for b in bindings}
        if not scscf.faults.on("scscf-netdereg-keeps-binding"):
            scscf.registrations.drop_aor(aor)
        reason = "rejected" if event == "rejected" else "deactivated"
        for sub in self.subs.of_aor(aor):
            if scscf.faults.on("scscf-netdereg-not-notified"):
                continue
            self.subs.remove(sub)
            self._pending.append((sub, f"terminated;reason={reason}", gone))
        await self.flush()

    # -- NOTIFY ----------------------------------------------------------------------------------
    async def flush(self) -> None:
        pending, self._pending = self._pending, []
        for sub, state, gone in pending:
            await self._notify(sub, state, gone)

    async def _notify(self, sub: Subscription, state: str, gone: dict) -> None:
        scscf = self.scscf
        bindings = scscf.registrations.bindings(sub.aor)
        sub.version += 1
        ended = state.startswith("terminated") and bool(gone)  # the registration itself ended
        bindings = [b for b in bindings if b.key not in gone]
        body = reginfo(sub.aor, sub.reg_id, sub.version - 1, contact_states(bindings, gone), terminated=ended)
        transport = scscf.cfg.options.core_transport.upper()
        me = scscf.cfg.endpoints["scscf"]
        req, _branch = notify_request(sub, me.host, me.port, transport, scscf.name, body, state)
        hop = first_hop(sub.route, sub.target)
        addr = resolve(scscf.cfg, *hop) if hop else None
        if addr is None:
            log.info("no route for the NOTIFY of %s (route %s)", sub.aor, sub.route)
            return
        try:
            await scscf.transport.send(req.serialize(), transport, *addr)
        except OSError as exc:
            log.info("NOTIFY to %s failed: %s", addr, exc)


def _same(a: str, b) -> bool:
    try:
        return uri_equal(parse_uri(a) if isinstance(a, str) else a, parse_uri(b) if isinstance(b, str) else b)
    except (UriError, ValueError):
        return False
