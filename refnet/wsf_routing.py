"""The WSF's routing of requests other than REGISTER over the WebSocket flows (docs/lifecycle.md).

Kept apart from refnet/wsf.py. Two directions:
- from the UE (a SUBSCRIBE to the reg event): only on a flow that registered; forwarded to the
  P-CSCF without any credential, with the identity the flow registered asserted
  (P-Asserted-Identity, the WSF being the trusted edge, TS 24.229 5.2.6.3.x / RFC 3325 9.1) and a
  Record-Route naming the flow (RFC 5626 5.3), so that the dialog's NOTIFYs come back to it;
- from the core (a NOTIFY): its top Route is the flow URI `<sip:<flow token>@<wsf>;lr;ob>` the
  WSF put in Path or Record-Route; the WSF pops it and sends the request over that WebSocket
  (RFC 7118 5). A flow that is gone gets 430 Flow Failed (RFC 5626 5.3). The UE's answer goes
  back along the Via the WSF added.
"""

from __future__ import annotations

import logging
import secrets

from .sip import HeaderError, Request, Response, parse_name_addr, parse_via
from .sip_transport import make_response

log = logging.getLogger("refnet.wsf")


class FlowRouter:
    def __init__(self, wsf):
        self.wsf = wsf
        self.flows: dict = {}  # flow token -> Flow
        self.inbound: dict[str, object] = {}  # our Via branch -> the core Source to answer

    # -- UE -> core ------------------------------------------------------------------------------
    async def request_from_ue(self, flow, req: Request) -> None:
        wsf = self.wsf
        reg = flow.reg
        if not reg.registered:
            await wsf.answer(flow, req, 403, "Forbidden (register on this WebSocket first)")
            return
        fwd = req.copy()
        h = fwd.headers
        mf = h.get("Max-Forwards")
        h.set("Max-Forwards", str(int(mf) - 1 if mf and mf.strip().isdigit() else 69))
        h.remove("Authorization")  # no credential of the UE enters the IMS core
        h.remove("P-Asserted-Identity")  # only the edge asserts (RFC 3325 9.1)
        h.set("P-Asserted-Identity", f"<{reg.impus[0]}>")
        if self._routes_to_us(h.get("Route")):
            # RFC 3261 16.4: a request within a dialog names this proxy first in its route set
            # (the Record-Route it put in the dialog's 2xx): that entry is removed, the rest routes
            h.remove_first("Route")
        in_dialog = "tag=" in (h.get("To") or "")
        if req.method == "SUBSCRIBE" and not in_dialog:
            h.prepend("Record-Route", f"<sip:{flow.token}@{wsf.name};lr;ob>")
        transport = wsf.cfg.options.core_transport.upper()
        branch = f"z9hG4bK{secrets.token_hex(10)}"
        h.prepend("Via", f"SIP/2.0/{transport} {wsf.core.host}:{wsf.core.port};branch={branch};rport")
        await wsf.send_to_pcscf(flow, req, fwd, branch, transport)

    def _routes_to_us(self, route: str | None) -> bool:
        if not route:
            return False
        try:
            uri = parse_name_addr(route.split(",")[0]).uri
        except HeaderError:
            return False
        return (getattr(uri, "host", "") or "").lower() == self.wsf.name.lower()

    # -- core -> UE ------------------------------------------------------------------------------
    async def request_from_core(self, req: Request, source) -> None:
        wsf = self.wsf
        if wsf.faults.on("wsf-notify-not-routed"):
            wsf.core.reply(source, make_response(req, 501, "Not Implemented").serialize())
            return
        routes = req.headers.get_all("Route")
        token = None
        if routes:
            try:
                uri = parse_name_addr(routes[0]).uri
                if (getattr(uri, "host", "") or "").lower() == wsf.name.lower():
                    token = uri.user
            except HeaderError:
                pass
        flow = self.flows.get(token or "")
        if flow is None:
            wsf.core.reply(source, make_response(req, 430, "Flow Failed").serialize())
            return
        out = req.copy()
        out.headers.remove_first("Route")
        branch = f"z9hG4bK{secrets.token_hex(10)}"
        out.headers.prepend("Via", f"SIP/2.0/WSS {wsf.name};branch={branch}")
        self.inbound[branch] = source
        if len(self.inbound) > 10_000:  # answers that never came: forget the oldest
            self.inbound.pop(next(iter(self.inbound)))
        await flow.send(out.serialize())

    def response_from_ue(self, resp: Response) -> None:
        source = self.inbound.pop(resp.branch or "", None)
        if source is None:
            return  # not an answer to a request of ours
        try:
            top = parse_via(resp.headers.get("Via"))
        except (HeaderError, ValueError):
            return
        if top.host.lower() != self.wsf.name.lower():
            return
        resp.headers.remove_first("Via")
        self.wsf.core.reply(source, resp.serialize())
