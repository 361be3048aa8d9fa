"""The emulated P-CSCF's routing of requests other than REGISTER, as a proxy in front of a
supplied S-CSCF (docs/lifecycle.md). Kept apart from cscf.py. Two directions:
- from the edge (the WSF) towards the core: a request (a reg-event SUBSCRIBE) goes to the
  S-CSCF (the registration's Service-Route), a SUBSCRIBE with the P-CSCF's Record-Route so that
  the dialog's later requests pass it again (RFC 3261 16.6 item 4, TS 24.229 5.2.6.3);
- from the S-CSCF towards the UE: a request (a NOTIFY, network-initiated de-registration
  included) whose Route is the P-CSCF, then the WSF's flow URI (RFC 5626 5.3); the P-CSCF pops its
  own entry (RFC 3261 16.4) and hands it to the WSF. Only a WSF the harness plays too is reached:
  the emulated WSF is in the same process; a supplied WSF behind an emulated P-CSCF with a
  supplied S-CSCF is no configuration of docs/peers.md, so that gets 404 (no route).
The answer comes back with the P-CSCF's Via removed; none within Timer F is 408 (RFC 3261 16.7).
"""

from __future__ import annotations

from conformance.codec import sip
from conformance.codec.sip_headers import HeaderError, parse_name_addr


class DialogRouting:
    def __init__(self, cscf):
        self.cscf = cscf

    def _is_me(self, route: str) -> bool:
        try:
            uri = parse_name_addr(route).uri
        except HeaderError:
            return False
        return (getattr(uri, "host", "") or "").lower() in {self.cscf.domain_name.lower(), self.cscf.host}

    async def route(self, req: sip.Request, event, peer) -> sip.Response | None:
        """The answer to send back, or None when the request is not one to route (answered as before)."""
        cscf = self.cscf
        out = req.copy()
        h = out.headers
        try:
            hops = int(h.get("Max-Forwards") or "70")
        except ValueError:
            hops = 70
        if hops <= 0:
            return sip.make_response(req, 483, "Too Many Hops", to_tag=sip.new_tag())
        h.set("Max-Forwards", str(hops - 1))
        routes = h.get_all("Route")
        if routes and self._is_me(routes[0]):
            h.remove_first("Route")
        from_core = cscf.scscf is not None and peer[0] == cscf.scscf["address"]
        board = cscf.peers.board
        if not from_core:
            if req.method not in ("SUBSCRIBE", "NOTIFY", "PUBLISH", "OPTIONS", "MESSAGE", "INFO", "UPDATE"):
                return None
            if req.method == "SUBSCRIBE":
                h.prepend("Record-Route", f"<sip:{cscf.domain_name};lr>")
            board.record(cscf.role, req.method, event, "forwarded to the S-CSCF")
            branch = sip.new_branch()
            h.prepend("Via", f"SIP/2.0/{cscf.transport.upper()} {cscf.host}:{cscf.port};branch={branch};rport")
            return await cscf.forward_to_scscf(req, out, branch)
        wsf = cscf.peers.server_of("wsf")
        if wsf is None or not wsf.flows.names_me(h.get("Route")):
            board.record(cscf.role, req.method, event, "404 (no route to the UE)")
            return sip.make_response(req, 404, "Not Found (no route)", to_tag=sip.new_tag())
        board.record(cscf.role, req.method, event, "forwarded to the WSF")
        h.prepend("Via", f"SIP/2.0/{cscf.transport.upper()} {cscf.host}:{cscf.port};branch={sip.new_branch()};rport")
        answer = await wsf.flows.deliver(out)
        answer.headers.remove_first("Via")
        return answer
