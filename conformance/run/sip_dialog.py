"""The harness's side of a SIP dialog it created as the UAC (RFC 3261 12.1.2, 12.2.1.1).

A test case that sends a request within a dialog (an unsubscribe, RFC 6665 4.1.2.3) must send it
where the dialog says, not where the initial request went: the Request-URI is the remote target
(the Contact of the 2xx, refreshed by the Contact of a NOTIFY, RFC 6665 4.1.2.2) and the route
set (the 2xx's Record-Route in reverse order) becomes the Route header. A proxy that recorded a
route may refuse or misroute a request that ignores it, and the verdict would blame the SUT for
the harness's mistake.

RFC 3261 12.1.2: "The route set MUST be set to the list of URIs in the Record-Route header field
from the response, taken in reverse order [...] The remote target MUST be set to the URI from the
Contact header field of the response."
12.2.1.1: "If the route set is not empty, and the first URI in the route set contains the lr
parameter [...], the UAC MUST place the remote target URI into the Request-URI and MUST include
a Route header field containing the route set values in order."
"""

from __future__ import annotations

from dataclasses import dataclass, field

from conformance.codec import sip
from conformance.codec.sip_headers import HeaderError, parse_name_addr, parse_name_addr_list


class NoDialog(ValueError):
    """The response does not establish a dialog (not 2xx, no To tag, no usable Contact)."""


def _name_addrs(msg, name: str) -> list:
    out = []
    for value in msg.headers.get_all(name):
        out += parse_name_addr_list(value)
    return out


@dataclass
class Dialog:
    call_id: str
    local_tag: str
    remote_tag: str
    remote_target: str
    route_set: list[str] = field(default_factory=list)  # name-addrs as received, in sending order
    local_cseq: int = 1

    @classmethod
    def from_response(cls, request: sip.Request, response: sip.Response) -> Dialog:
        """The UAC's dialog state from the request it sent and the 2xx that answered it."""
        if response.is_request or not 200 <= response.status < 300:
            raise NoDialog(f"a {getattr(response, 'status', 'request')} does not establish a dialog")
        try:
            remote_tag = parse_name_addr(response.headers.get("To") or "").tag
            local_tag = parse_name_addr(request.headers.get("From") or "").tag
            contacts = _name_addrs(response, "Contact")
            routes = [str(na) for na in _name_addrs(response, "Record-Route")]
        except HeaderError as exc:
            raise NoDialog(f"the 2xx cannot be read as a dialog: {exc}") from exc
        if not remote_tag or not local_tag:
            raise NoDialog("no To tag in the 2xx or no From tag in the request")
        if not contacts or contacts[0].uri is None:
            raise NoDialog("the 2xx has no Contact: no remote target (RFC 3261 12.1.2)")
        cseq = request.cseq
        return cls(call_id=request.call_id or "", local_tag=local_tag, remote_tag=remote_tag,
                   remote_target=str(contacts[0].uri), route_set=list(reversed(routes)),
                   local_cseq=cseq[0] if cseq else 1)

    def refresh_target(self, request: sip.Request) -> None:
        """A NOTIFY of this dialog is a target refresh request (RFC 6665 4.1.2.2 / 4.2.2)."""
        if not request.is_request or request.call_id != self.call_id:
            return
        try:
            contacts = _name_addrs(request, "Contact")
        except HeaderError:
            return
        if contacts and contacts[0].uri is not None:
            self.remote_target = str(contacts[0].uri)

    def apply(self, msg: sip.Request) -> None:
        """Make `msg` a request within this dialog (RFC 3261 12.2.1.1), keeping its method,
        Via, Contact, Event, Expires and body as the template wrote them."""
        self.local_cseq += 1
        first_loose = not self.route_set or "lr" in getattr(parse_name_addr(self.route_set[0]).uri, "params", {})
        msg.headers.remove("Route")
        if first_loose:
            msg.uri = self.remote_target
            routes = self.route_set
        else:  # strict router: it gets the Request-URI, the remote target goes last
            msg.uri = str(parse_name_addr(self.route_set[0]).uri)
            routes = [*self.route_set[1:], f"<{self.remote_target}>"]
        for route in routes:
            msg.headers.add("Route", route)
        from_ = parse_name_addr(msg.headers.get("From") or "")
        from_.params["tag"] = self.local_tag
        to = parse_name_addr(msg.headers.get("To") or "")
        to.params["tag"] = self.remote_tag
        msg.headers.set("From", str(from_))
        msg.headers.set("To", str(to))
        msg.headers.set("Call-ID", self.call_id)
        msg.headers.set("CSeq", f"{self.local_cseq} {msg.method}")
