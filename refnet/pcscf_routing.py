"""The P-CSCF's stateless proxying of requests other than REGISTER (docs/lifecycle.md).

Kept apart from refnet/cscf.py. Two directions:
- from the edge (the WSF) towards the core: a SUBSCRIBE goes to the S-CSCF (the Service-Route
  of the registration), with the P-CSCF's Record-Route so that the dialog's later requests pass
  it again (RFC 3261 16.6 item 4, TS 24.229 5.2.6.3);
- from the S-CSCF towards the UE: a NOTIFY carries Route = the P-CSCF, then the WSF's flow URI
  (RFC 5626 5.3); the P-CSCF pops its own entry and sends the request to the WSF (RFC 3261 16.4,
  16.12 loose routing).
The WSF's flow URI names the WSF by its certificate name; the P-CSCF learns which address that
name sends REGISTERs from (the top Path of a REGISTER it forwarded), as an edge proxy's peer
would from its own configuration.
"""

from __future__ import annotations

import hashlib
import logging

from .regevent_notifier import resolve
from .sip import HeaderError, Request, parse_name_addr
from .sip_transport import make_response, replace_first, stamp_via

log = logging.getLogger("refnet.pcscf")


def learn_edge(edges: dict[str, tuple[str, int]], req: Request, source) -> None:
    """Remember where the edge that put the top Path of a REGISTER is (name -> source address)."""
    paths = req.headers.get_all("Path")
    if not paths:
        return
    try:
        uri = parse_name_addr(paths[0]).uri
    except HeaderError:
        return
    host = getattr(uri, "host", None)
    if host:
        edges[host.lower()] = (source.host, source.port)


def _is_me(value: str, names: set[str]) -> bool:
    try:
        uri = parse_name_addr(value).uri
    except HeaderError:
        return False
    return (getattr(uri, "host", "") or "").lower() in names


async def proxy_request(pcscf, req: Request, source) -> None:
    cfg = pcscf.cfg
    me = cfg.endpoints["pcscf"]
    h = req.headers
    mf = h.get("Max-Forwards")
    if mf is not None and mf.strip().isdigit() and int(mf) <= 0:
        pcscf.transport.reply(source, make_response(req, 483, "Too Many Hops").serialize())
        return
    h.set("Max-Forwards", str(int(mf) - 1 if mf and mf.strip().isdigit() else 70))
    replace_first(h, "Via", stamp_via(h.get("Via"), source.host, source.port))
    names = {pcscf.name.lower(), me.host}
    routes = h.get_all("Route")
    if routes and _is_me(routes[0], names):
        h.remove_first("Route")
        routes = routes[1:]
    from_core = source.host == cfg.endpoints["scscf"].host
    if routes:
        uri = parse_name_addr(routes[0]).uri
        host, port = uri.host, uri.port or 5060
        target = pcscf.edges.get(host.lower()) or resolve(cfg, host, port)
    elif from_core:
        target = None  # the core asks for a UE the P-CSCF has no route to
    else:  # from the edge: to the S-CSCF of the registration (its Service-Route)
        scscf = cfg.endpoints["scscf"]
        target = (scscf.host, scscf.port)
        if req.method == "SUBSCRIBE":
            h.prepend("Record-Route", f"<sip:{pcscf.name};lr>")
    if target is None:
        pcscf.transport.reply(source, make_response(req, 404, "Not Found (no route)").serialize())
        return
    seed = "|".join([h.get("Via") or "", req.call_id or "", str(req.cseq), str(req.uri)])
    branch = "z9hG4bK" + hashlib.sha1(seed.encode(errors="replace")).hexdigest()[:20]
    transport = cfg.options.core_transport.upper()
    h.prepend("Via", f"SIP/2.0/{transport} {me.host}:{me.port};branch={branch};rport")
    try:
        await pcscf.transport.send(req.serialize(), transport, *target)
    except OSError as exc:
        pcscf.transport.reply(source, make_response(req, 503, f"Service Unavailable ({exc})").serialize())
