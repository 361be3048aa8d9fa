"""P-CSCF and S-CSCF of the reference network (BINDING.md steps 17-20, "What each node must do").

P-CSCF: a stateless proxy for REGISTER (RFC 3261 16.11). It adds its Via, its Path (RFC 3327),
`Require: path`, P-Visited-Network-ID and P-Charging-Vector (RFC 7315, TS 24.229 5.2.2), keeps the
Authorization, and relays responses back along the Via chain.

S-CSCF: the registrar (RFC 3261 10.3). It registers without a challenge only a REGISTER that carries
`integrity-protected="auth-done"` and came from the P-CSCF's address (TS 24.229 5.4.1.2.2, trusted
node authentication); anything else gets a Digest challenge. The 200 OK carries the bindings with
their granted expiry, the Path values echoed in order, Service-Route (RFC 3608) and
P-Associated-URI (RFC 7315 4.1), default IMPU first. Bindings live in SQLite (refnet.registrations).
"""

from __future__ import annotations

import asyncio
import base64
import email.utils
import ipaddress
import logging
import os
import time
from collections import OrderedDict

from . import wire_style
from .config import NetworkConfig
from .faults import ActiveFaults
from .pcscf_routing import learn_edge, proxy_request
from .regevent_notifier import RegEventNotifier
from .registrar_rules import FIXED_TO_TAG, TooBrief, check_min_expires, fix_to_tag
from .registrations import ContactUpdate, Identities, OutOfOrder, Registrations
from .sip import (
    HeaderError,
    Request,
    Response,
    UriError,
    parse_credentials,
    parse_name_addr,
    parse_uri,
    parse_via,
    uri_equal,
)
from .sip_transport import (
    SipTransport,
    Source,
    make_response,
    replace_first,
    run_until_signal,
    serve_transport,
    stamp_via,
)

log = logging.getLogger("refnet.cscf")

MAX_EXPIRES = 3600  # granted at most (RFC 3261 10.3 step 7: the registrar MAY shorten)
DEFAULT_EXPIRES = 3600
SUPPORTED_EXTENSIONS = {"path", "outbound", "gruu"}  # what a Require may name without a 420


def _max_forwards(req: Request) -> int | None:
    value = req.headers.get("Max-Forwards")
    return None if value is None else int(value.strip())


# -- P-CSCF ------------------------------------------------------------------------------------

class Pcscf:
    def __init__(self, cfg: NetworkConfig, faults: ActiveFaults):
        self.cfg, self.faults = cfg, faults
        me = cfg.endpoints["pcscf"]
        self.name = me.tls_name or f"pcscf.{cfg.home_domain}"
        self.transport = SipTransport(me.host, me.port, self.on_message, "pcscf")
        self.edges: dict[str, tuple[str, int]] = {}  # WSF name -> address (refnet/pcscf_routing.py)

    async def on_message(self, msg: Request | Response, source: Source) -> None:
        if isinstance(msg, Response):
            await self.relay_response(msg)
        elif msg.method == "REGISTER":
            await self.forward_register(msg, source)
        elif msg.method == "ACK":
            return
        elif msg.method == "OPTIONS":
            self.transport.reply(source, make_response(msg, 200, "OK", [("Allow", "REGISTER, OPTIONS")]).serialize())
        else:  # SUBSCRIBE / NOTIFY of the reg event (docs/lifecycle.md)
            await proxy_request(self, msg, source)

    def _branch(self, req: Request) -> str:
        """RFC 3261 16.11: a stateless proxy derives its branch from the request, so that a
        retransmission is forwarded with the same branch."""
        seed = "|".join([req.headers.get("Via") or "", req.call_id or "", str(req.cseq), str(req.uri)])
        return wire_style.derived_branch(seed)

    async def forward_register(self, req: Request, source: Source) -> None:
        cfg = self.cfg
        learn_edge(self.edges, req, source)
        mf = _max_forwards(req)
        if mf is not None and mf <= 0:  # RFC 3261 16.3 item 2
            self.transport.reply(source, make_response(req, 483, "Too Many Hops").serialize())
            return
        h = req.headers
        h.set("Max-Forwards", str(70 if mf is None else mf - 1))  # 16.6 item 3
        # 18.2.1 / RFC 3581 4: record where the request really came from, so the response finds
        # its way back (and over TCP, to the same connection).
        replace_first(h, "Via", stamp_via(h.get("Via"), source.host, source.port))
        branch = self._branch(req)
        transport = cfg.options.core_transport.upper()
        me = cfg.endpoints["pcscf"]
        h.prepend("Via", f"SIP/2.0/{transport} {me.host}:{me.port};branch={branch};rport")
        if not self.faults.on("pcscf-no-path"):
            # RFC 3327 4.1: a proxy that wants to stay on the path adds its own URI on top
            h.prepend("Path", f"<sip:term@{self.name};lr>")
            if "path" not in {v.lower() for v in h.get_all("Require")}:
                h.add("Require", "path")
        if not self.faults.on("pcscf-no-visited-network-id"):
            h.set("P-Visited-Network-ID", f'"{cfg.visited_network_id}"')
        if not h.get("P-Charging-Vector"):
            # RFC 7315 4.6: icid-value, globally unique; derived from the branch so that a
            # retransmission keeps it
            h.set("P-Charging-Vector", f"icid-value={branch[7:]};icid-generated-at={me.host}")
        target = cfg.endpoints["scscf"]
        try:
            await self.transport.send(req.serialize(), transport, target.host, target.port)
        except OSError as exc:  # RFC 3261 16.9: a transport error is a 503
            self.transport.reply(source, make_response(req, 503, f"Service Unavailable: S-CSCF "
                                                                 f"unreachable ({exc})").serialize())

    async def relay_response(self, resp: Response) -> None:
        """RFC 3261 16.7 / 18.2.2: pop our Via, send to the next one (received/rport aware)."""
        vias = resp.headers.get_all("Via")
        if len(vias) < 2:
            return
        top = parse_via(vias[0])
        me = self.cfg.endpoints["pcscf"]
        if top.host != me.host or (top.port or 5060) != me.port:
            log.info("dropping a response whose top Via is not ours: %s", vias[0])
            return
        resp.headers.remove_first("Via")
        if resp.status >= 300 and self.faults.on("pcscf-core-error-as-480"):
            resp = _as_480(resp)
        await send_to_via(self.transport, resp, parse_via(vias[1]))


def _as_480(resp: Response) -> Response:
    """Fault pcscf-core-error-as-480: the core's error replaced by a 480 of the P-CSCF's own,
    with only the dialog-identifying header fields of the original (its reason and the rest lost)."""
    keep = [(n, v) for n, v in resp.headers.items() if n.lower() in ("via", "to", "from", "call-id", "cseq")]
    out = Response(480, "Temporarily Unavailable")
    for name, value in keep:
        out.headers.add(name, value)
    return out


async def send_to_via(transport: SipTransport, resp: Response, via) -> None:
    """RFC 3261 18.2.2 with RFC 3581: received and rport say where the request came from.

    Only IP literals are used: the reference network resolves no names (a name would mean a DNS
    query leaving the machine, and every address of the network is an IP in its config)."""
    host = via.params.get("received") or via.host
    rport = via.params.get("rport")
    port = int(rport) if rport and rport.isdigit() else (via.port or 5060)
    data = resp.serialize()
    kind = via.transport.upper()
    if not 0 < port < 65536 or kind not in ("UDP", "TCP"):
        log.info("cannot relay a response to %s", via)
    elif kind == "UDP" and _is_ip(host):
        transport.send_udp(data, host, port)
    elif kind == "TCP" and (conn := transport.connection_to(host, port)) is not None:
        conn.write(data)
    elif kind == "TCP" and _is_ip(via.host):  # the connection is gone: open one to sent-by (18.2.2)
        try:
            await transport.send(data, "TCP", via.host, via.port or 5060)
        except OSError as exc:
            log.info("cannot relay a response to %s: %s", via.sent_by, exc)
    else:
        log.info("not relaying a response to a Via without an IP address: %s", via)


# -- S-CSCF ------------------------------------------------------------------------------------

class Scscf:
    RETRANSMIT_CACHE_S = 32.0  # RFC 3261 17.2.2 Timer J (64*T1) for unreliable transports
    RETRANSMIT_CACHE_MAX = 50_000  # answers kept at most (500/s for 32 s, with room)

    def __init__(self, cfg: NetworkConfig, faults: ActiveFaults):
        self.cfg, self.faults = cfg, faults
        me = cfg.endpoints["scscf"]
        self.name = me.tls_name or f"scscf.{cfg.home_domain}"
        self.transport = SipTransport(me.host, me.port, self.on_message, "scscf")
        self.registrations = Registrations(cfg.state / "scscf-registrations.sqlite3")
        self.identities = Identities(cfg.db_path)
        self._answered: OrderedDict[tuple, tuple[float, bytes]] = OrderedDict()
        self.regevent = RegEventNotifier(self)  # RFC 3680 (docs/lifecycle.md)

    def close(self) -> None:
        self.registrations.close()
        self.identities.close()

    async def on_message(self, msg: Request | Response, source: Source) -> None:
        if isinstance(msg, Response) or msg.method == "ACK":
            return  # the S-CSCF sends no requests, so no response or ACK is for it
        key = (msg.branch, msg.method, msg.headers.get("Via"), msg.call_id, msg.cseq)
        now = time.monotonic()
        while self._answered and next(iter(self._answered.values()))[0] < now:
            self._answered.popitem(last=False)
        cached = self._answered.get(key)
        if cached is not None:  # a retransmission: the same answer again (17.2.2)
            self.transport.reply(source, cached[1])
            return
        if msg.method == "REGISTER":
            before = self.regevent.snapshot(msg)
            resp = self.register(msg, source)
            self.regevent.after_register(msg, resp, before)
        elif msg.method == "SUBSCRIBE":
            resp = self.regevent.subscribe(msg, source)
        elif msg.method == "OPTIONS":
            resp = make_response(msg, 200, "OK", [("Allow", "REGISTER, OPTIONS")])
        else:
            resp = make_response(msg, 405, "Method Not Allowed", [("Allow", "REGISTER, SUBSCRIBE, OPTIONS")])
        if self.faults.on("scscf-fixed-to-tag"):
            fix_to_tag(resp, FIXED_TO_TAG)
        data = resp.serialize()
        if source.transport == "UDP":  # over TCP nothing is retransmitted (17.2.2: Timer J is 0)
            self._answered[key] = (now + self.RETRANSMIT_CACHE_S, data)
            if len(self._answered) > self.RETRANSMIT_CACHE_MAX:
                self._answered.popitem(last=False)
        self.transport.reply(source, data)
        await self.regevent.flush()  # the NOTIFYs a SUBSCRIBE or a registration change calls for

    def _challenge(self, req: Request, why: str) -> Response:
        nonce = base64.b64encode(os.urandom(18)).decode()
        return make_response(req, 401, f"Unauthorized ({why})", [(
            "WWW-Authenticate",
            f'Digest realm="{self.cfg.home_domain}", nonce="{nonce}", algorithm=MD5, qop="auth"')])

    def _digest(self, req: Request):
        for value in req.headers.get_all("Authorization"):
            try:
                cred = parse_credentials(value)
            except ValueError:
                continue
            if cred.scheme.lower() == "digest":
                return cred
        return None

    def register(self, req: Request, source: Source) -> Response:
        cfg = self.cfg
        # 10.3 step 1: the Request-URI names the domain this registrar serves
        try:
            ruri = parse_uri(str(req.uri))
        except UriError as exc:
            return make_response(req, 400, f"Bad Request: Request-URI: {exc}")
        if getattr(ruri, "host", "").lower() != cfg.home_domain.lower():
            return make_response(req, 404, f"Not Found (this registrar serves {cfg.home_domain})")
        # 10.3 step 2 / 8.2.2.3: every Require option must be understood
        unsupported = [o for o in req.headers.get_all("Require") if o.lower() not in SUPPORTED_EXTENSIONS]
        if unsupported:
            return make_response(req, 420, "Bad Extension", [("Unsupported", ", ".join(unsupported))])
        # 10.3 step 3 / TS 24.229 5.4.1.2.2: trusted node authentication
        cred = self._digest(req)
        auth_done = cred is not None and (cred.params.get("integrity-protected") or "").lower() == "auth-done"
        from_pcscf = source.host == cfg.endpoints["pcscf"].host
        if not (auth_done and from_pcscf) and not self.faults.on("scscf-register-untrusted"):
            why = "no integrity-protected=auth-done" if not auth_done else "not from the trusted P-CSCF"
            return self._challenge(req, why)
        to_uri = parse_name_addr(req.headers.get("To")).uri
        impi = (cred.params.get("username") or "") if cred is not None else ""
        ident = self.identities.by_impi(impi) if impi else self.identities.by_impu(str(to_uri))
        if ident is None:
            return make_response(req, 403, f"Forbidden: unknown IMPI {impi!r}" if impi
                                 else "Forbidden: no IMPI and the To IMPU is unknown")
        # 10.3 step 4 / TS 24.229 5.4.1.2.1: the To IMPU must belong to the IMPI
        aor = next((u for u in ident["impus"] if _same_uri(u, to_uri)), None)
        if aor is None:
            return make_response(req, 403, "Forbidden: the To IMPU is not associated with the IMPI")
        # 10.3 steps 6-7: the bindings
        try:
            bindings = self._update_bindings(req, aor, ident["impi"])
        except _Reject as rej:
            return make_response(req, rej.status, rej.reason)
        except TooBrief as brief:  # RFC 3261 10.3 step 7: 423 with the minimum
            return make_response(req, 423, "Interval Too Brief", [("Min-Expires", str(brief.minimum))])
        except OutOfOrder as exc:
            return make_response(req, 500, f"Server Internal Error: {exc}")
        headers = [("Contact", f"{b.contact};expires={b.remaining()}") for b in bindings]
        headers += [("Path", p) for p in req.headers.get_all("Path")]  # RFC 3327 5.3: in order
        if not self.faults.on("scscf-no-service-route"):
            headers.append(("Service-Route", f"<sip:orig@{self.name};lr>"))
        if not self.faults.on("scscf-no-associated-uri"):
            headers.append(("P-Associated-URI", ", ".join(f"<{u}>" for u in ident["impus"])))
        headers.append(("Date", email.utils.formatdate(usegmt=True)))  # 10.3 step 8
        return make_response(req, 200, "OK", headers)

    def _update_bindings(self, req: Request, aor: str, impi: str):
        contacts = req.headers.get_all("Contact")
        expires_header = req.headers.get("Expires")
        default = DEFAULT_EXPIRES
        if expires_header is not None:
            if not _digits(expires_header.strip()):
                raise _Reject(400, f"Bad Request: Expires {expires_header!r} is not a number")
            default = int(expires_header.strip())
        call_id, cseq = req.call_id, req.cseq[0]
        paths = req.headers.get_all("Path")
        if not contacts:  # a query (10.3 step 6 does not apply)
            return self.registrations.bindings(aor)
        if contacts == ["*"]:
            if default != 0:
                raise _Reject(400, "Bad Request: Contact * requires Expires: 0")
            if self.faults.on("scscf-ignore-deregister"):
                return self.registrations.bindings(aor)
            self.registrations.remove_all(aor, call_id, cseq)
            return []
        if "*" in contacts:
            raise _Reject(400, "Bad Request: Contact * must be the only Contact")
        updates = []
        for value in contacts:
            try:
                na = parse_name_addr(value)
            except HeaderError as exc:
                raise _Reject(400, f"Bad Request: Contact {value!r}: {exc}") from None
            params = na.params.copy()  # ParamDict: names compare case-insensitively
            requested = params.pop("expires", None)
            if requested is not None and not _digits(requested):
                raise _Reject(400, f"Bad Request: Contact expires {requested!r} is not a number")
            asked = int(requested) if requested is not None else default
            expires = min(asked, MAX_EXPIRES)
            if not self.faults.on("scscf-no-min-expires"):
                check_min_expires(asked, self.cfg.options.min_expires_s)
            expires = self._lifecycle_faults(expires)
            instance, reg_id = params.get("+sip.instance"), params.get("reg-id")
            key = f"{instance}|{reg_id}" if instance and reg_id else str(na.uri)  # RFC 5626 6
            text = f"<{na.uri}>" + "".join(f";{k}" if v is None else f";{k}={v}" for k, v in params.items())
            updates.append(ContactUpdate(key, text, expires))
        if self.faults.on("scscf-single-binding") and any(u.expires > 0 for u in updates):
            self.registrations.remove_others(aor, {u.key for u in updates})
        return self.registrations.update(aor, impi, call_id, cseq, paths, updates)

    def _lifecycle_faults(self, expires: int) -> int:
        """The faults of the lifecycle procedures that change a granted expiry (docs/lifecycle.md)."""
        if expires == 0:
            return MAX_EXPIRES if self.faults.on("scscf-ignore-deregister") else 0
        if self.faults.on("scscf-expires-longer"):
            return expires + 600
        if self.faults.on("scscf-keep-expired"):
            return expires + 3600
        return expires


def _digits(text: str) -> bool:
    """delta-seconds = 1*DIGIT (ASCII digits only: str.isdigit() also accepts '²')."""
    return text.isascii() and text.isdigit()


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text.strip("[]"))
    except ValueError:
        return False
    return True


class _Reject(Exception):
    def __init__(self, status: int, reason: str):
        super().__init__(reason)
        self.status, self.reason = status, reason


def _same_uri(a: str, b) -> bool:
    try:
        return uri_equal(a, b if not isinstance(b, str) else parse_uri(b))
    except (UriError, ValueError):
        return False


# -- process entry points (refnet/node.py) -------------------------------------------------------

def serve_pcscf(cfg: NetworkConfig, faults: ActiveFaults) -> None:
    """P-CSCF process: binds UDP and TCP on cfg.endpoints["pcscf"], blocks until SIGTERM/SIGINT."""
    node = Pcscf(cfg, faults)
    run_until_signal(lambda stop: serve_transport("pcscf", node.transport, stop))


def serve_scscf(cfg: NetworkConfig, faults: ActiveFaults) -> None:
    """S-CSCF process: binds UDP and TCP on cfg.endpoints["scscf"], blocks until SIGTERM/SIGINT."""
    node = Scscf(cfg, faults)

    async def main(stop):
        from .operator_deregister import poll

        poller = asyncio.create_task(poll(cfg.db_path, node.regevent.network_deregister, stop))
        try:
            await serve_transport("scscf", node.transport, stop)
        finally:
            await poller

    try:
        run_until_signal(main)
    finally:
        node.close()
