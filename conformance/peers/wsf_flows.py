"""The emulated WSF's WebSocket flows after registration (docs/lifecycle.md, RFC 5626, RFC 7118 5).

Kept apart from wsf.py (which handles the REGISTER of steps 14-21). Two directions:
- from the UE: a request other than REGISTER (a reg-event SUBSCRIBE) only on a flow that
  registered (403 otherwise); forwarded to the P-CSCF without any credential of the UE, with the
  identity the flow registered asserted (P-Asserted-Identity: the WSF is the trusted edge,
  RFC 3325 9.1) and, for a SUBSCRIBE, a Record-Route naming the flow, so that the dialog's
  NOTIFYs come back to this WebSocket (RFC 5626 5.3);
- from the core: a request whose top Route is the flow URI `<sip:<flow>@<wsf>;lr;ob>` the WSF put
  in Path or Record-Route; the WSF pops it and sends it over that WebSocket. A flow that is gone
  gets 430 Flow Failed (RFC 5626 5.3); the UE's answer goes back with the WSF's Via removed.
"""

from __future__ import annotations

import asyncio
import secrets
from contextlib import suppress
from dataclasses import dataclass, field

from conformance.codec import sip
from conformance.codec.sip_headers import HeaderError, parse_name_addr
from conformance.peers.sip_stream import TIMER_F_S

# The S-CSCF answers a SUBSCRIBE and then sends its NOTIFY; one hop-by-hop path keeps that order
# on the wire (a real WSF's one socket), but here the answer takes a longer way (a socket per
# exchange) than the NOTIFY (handed over in process). The NOTIFY waits for the UE's requests on
# its flow to be answered first, at most this long (a core that never answers must not stall it).
ORDER_WAIT_S = 5.0


@dataclass
class Flow:
    token: str  # RFC 5626 flow token: names the WebSocket in Path and Record-Route
    ws: object
    impus: list[str] = field(default_factory=list)  # set once a REGISTER on it got 200 OK
    impi: str = ""
    registers: list = field(default_factory=list)  # the REGISTERs forwarded (for de-registration on close)
    busy: int = 0  # the UE's requests on this flow not yet answered to it
    idle: asyncio.Event = field(default_factory=asyncio.Event)

    def __post_init__(self) -> None:
        self.idle.set()

    def started(self) -> None:
        self.busy += 1
        self.idle.clear()

    def answered(self) -> None:
        self.busy = max(0, self.busy - 1)
        if not self.busy:
            self.idle.set()


class FlowTable:
    def __init__(self, wsf):
        self.wsf = wsf
        self.flows: dict[str, Flow] = {}
        self._answers: dict[str, asyncio.Future] = {}  # our WSS Via branch -> the UE's answer

    def open(self, ws) -> Flow:
        flow = Flow(secrets.token_hex(8), ws)
        self.flows[flow.token] = flow
        return flow

    def close(self, flow: Flow) -> None:
        self.flows.pop(flow.token, None)

    # -- UE -> core ------------------------------------------------------------------------------
    def towards_core(self, flow: Flow, req: sip.Request) -> sip.Request | sip.Response:
        """The request to forward to the P-CSCF, or the answer to give the UE at once."""
        if not flow.impus:
            return sip.make_response(req, 403, "Forbidden (register on this WebSocket first)", to_tag=sip.new_tag())
        out = req.copy()
        h = out.headers
        try:
            hops = int(h.get("Max-Forwards") or "70")
        except ValueError:
            hops = 70
        h.set("Max-Forwards", str(hops - 1))
        h.remove("Authorization")  # no credential of the UE enters the IMS core
        h.remove("P-Asserted-Identity")  # only the trusted edge asserts (RFC 3325 9.1)
        h.set("P-Asserted-Identity", f"<{flow.impus[0]}>")
        if req.method == "SUBSCRIBE":  # RFC 3261 16.6 item 4: the dialog's requests pass this flow
            h.prepend("Record-Route", f"<sip:{flow.token}@{self.wsf.name};lr;ob>")
        return out

    # -- core -> UE ------------------------------------------------------------------------------
    def names_me(self, route: str | None) -> bool:
        return self._flow_token(route) is not None

    def _flow_token(self, route: str | None) -> str | None:
        if not route:
            return None
        try:
            uri = parse_name_addr(route).uri
        except HeaderError:
            return None
        host = (getattr(uri, "host", "") or "").lower()
        if host not in {self.wsf.name.lower(), self.wsf.host}:
            return None
        return getattr(uri, "user", None) or ""

    async def deliver(self, req: sip.Request) -> sip.Response:
        """Send a request of the core over the flow its top Route names; the UE's final answer."""
        flow = self.flows.get(self._flow_token(req.headers.get("Route")) or "")
        if flow is None:
            return sip.make_response(req, 430, "Flow Failed", to_tag=sip.new_tag())
        with suppress(TimeoutError):
            await asyncio.wait_for(flow.idle.wait(), ORDER_WAIT_S)
        out = req.copy()
        out.headers.remove_first("Route")
        branch = sip.new_branch()
        out.headers.prepend("Via", f"SIP/2.0/WSS {self.wsf.name};branch={branch}")
        answered = asyncio.get_running_loop().create_future()
        self._answers[branch] = answered
        try:
            await flow.ws.send(out.serialize().decode("utf-8", "replace"))
            resp = await asyncio.wait_for(answered, TIMER_F_S)
        except (TimeoutError, ConnectionError, OSError):
            return sip.make_response(req, 408, to_tag=sip.new_tag())
        except Exception:  # noqa: BLE001 - the WebSocket closed while sending: the flow failed
            return sip.make_response(req, 430, "Flow Failed", to_tag=sip.new_tag())
        finally:
            self._answers.pop(branch, None)
        resp.headers.remove_first("Via")
        return resp

    def answer_from_ue(self, resp: sip.Response) -> None:
        future = self._answers.get(resp.branch or "")
        if future is not None and resp.status >= 200 and not future.done():
            with suppress(asyncio.InvalidStateError):
                future.set_result(resp)
