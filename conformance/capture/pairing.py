"""Which captured SIP messages a capture entry may take: its own transaction, its own flows.

A capture window is a slice of time, and a slice can hold the late messages of the test case
before it: the WSF de-registers the previous case's binding when that case's WebSocket closes,
and the 200 OK to that de-REGISTER reaches the WSF while the next case runs. Taking the first
message of the right kind on the right leg would then judge another transaction. So:

- a response belongs to the transaction of the request it answers (RFC 3261 17.1.3 at the
  client, 17.2.3 at the server): same top Via branch and sent-by, same CSeq method, travelling
  back on the hop the request went out on (each hop is a transaction of its own, RFC 3261 16.6);
  an HTTP response answers the request before it on its connection (RFC 9112 9.3), which the
  capture knows even when that request was sent before the window opened;
- a request belongs to the test case when the harness sent it, when it is the forward of one
  that belongs (a proxy keeps the previous hop's Via under its own, RFC 3261 16.6 step 8; a relay
  that adds none keeps it on top; and
  the Call-ID, 16.6 step 1; a registrar's requests for a dialog keep its Call-ID), or when it
  names the test case's own identity (the WSF's de-REGISTER on a WebSocket close is a new
  request with a new Call-ID, but it is for the case's own IMPU).

The identity counts only when nobody else uses it (a fresh identity per test case): fixture
users are shared by consecutive test cases, so their names mark nothing (correlate.identity_of).
"""

from __future__ import annotations

from collections.abc import Iterable

from conformance.capture.timeline import UE, HttpRequestSeen, TimelineItem
from conformance.codec.sip_headers import HeaderError, parse_via_list
from conformance.codec.value_cache import cached_for_short_values
from conformance.events import HttpExchange, SipReceived

Via = tuple[str, str]  # (branch, sent-by), compared case-insensitively (RFC 3261 20.42, 17.2.3)


def sip_message(item: TimelineItem):
    ev = item.event
    return ev.message if isinstance(ev, SipReceived) else None


def is_request(msg) -> bool:
    return bool(getattr(msg, "is_request", False))


def vias(msg) -> list[Via]:
    """Every Via of the message, top first; a Via that does not parse ends the list (what is
    below it cannot be read reliably)."""
    out: list[Via] = []
    for value in msg.headers.get_all("Via") if msg is not None else []:
        parsed = _via_keys(value)
        if parsed is None:
            return out
        out += parsed
    return out


@cached_for_short_values(max_len=1024, maxsize=512)  # asked for again at every settle round
def _via_keys(value: str) -> tuple[Via, ...] | None:
    """(branch, sent-by) of each Via in one value; None when it does not parse."""
    try:
        parsed = parse_via_list(value)
    except HeaderError:
        return None
    return tuple(((v.branch or "").lower(), v.sent_by.lower()) for v in parsed)


def _method(msg) -> str | None:
    if is_request(msg):
        return msg.method
    cseq = msg.cseq
    return cseq[1] if cseq else None


def answers(response: TimelineItem, request: TimelineItem) -> bool:
    """RFC 3261 17.1.3 / 17.2.3: the response matches the request's transaction on the same hop,
    in the other direction."""
    resp, req = sip_message(response), sip_message(request)
    if resp is None or req is None or is_request(resp) or not is_request(req):
        return False
    if (response.src_node, response.dst_node) != (request.dst_node, request.src_node):
        return False
    top_resp, top_req = vias(resp)[:1], vias(req)[:1]
    if not top_resp or top_resp != top_req or not top_req[0][0]:
        return False
    return (_method(resp) or "").upper() == req.method.upper()


def http_answers(exchange: TimelineItem, request: TimelineItem) -> bool:
    """An HTTP response (the capture's HttpExchange, which carries the request it answers on its
    connection) answers this captured request: same connection, after it, the same request."""
    ex, req = exchange.event, request.event
    if not isinstance(ex, HttpExchange) or not isinstance(req, HttpRequestSeen):
        return False
    return (exchange.stream == request.stream and exchange.index > request.index
            and ex.method.upper() == req.method.upper() and ex.url == req.url and ex.request_body == req.body)


class CaseRequests:
    """The SIP requests of a window that belong to the test case (module docstring).

    `identity`: the case's own identity strings when they are unique (empty: not known).
    `anchored` is False when nothing ties any request to the case (no request from the harness,
    no identity): then nothing can be told apart and every request counts."""

    def __init__(self, items: Iterable[TimelineItem], identity: Iterable[str] = ()):
        needles = [s.lower().encode("utf-8", "replace") for s in identity if s]
        self.identity_known = bool(needles)
        self.own: set[int] = set()
        chain_vias: set[Via] = set()
        call_ids: set[str] = set()
        seeds = False
        for item in items:  # in wire order: a forward comes after what it forwards
            msg = sip_message(item)
            if msg is None or not is_request(msg):
                continue
            from_harness = item.src_node == UE
            seeds = seeds or from_harness
            stack = vias(msg)
            call_id = (msg.call_id or "").strip()
            raw = bytes(getattr(item.event, "raw", b"") or b"").lower()
            if (from_harness or any(v in chain_vias for v in stack) or (call_id and call_id in call_ids)
                    or any(n in raw for n in needles)):
                self.own.add(item.index)
                chain_vias.update(stack[:1])
                if call_id:
                    call_ids.add(call_id)
        self.anchored = seeds or self.identity_known

    def request_of_case(self, item: TimelineItem) -> bool:
        """For request entries: only with a known identity is a request of another flow told apart
        (without it, the case's own WSF-originated de-REGISTER would look foreign too)."""
        return not self.identity_known or item.index in self.own

    def answers_case(self, response: TimelineItem, requests: list[TimelineItem]) -> bool:
        """For response entries whose request the block does not name: the response answers a
        request of the window that is the case's."""
        return any(answers(response, r) and (not self.anchored or r.index in self.own) for r in requests)


# TR 23.701 (BINDING.md): the step of each response -> the step of its request; HTTP (steps 2-16)
# and the SIP registration (17-22).
ANSWERS_STEP = {3: 2, 5: 4, 7: 6, 10: 9, 16: 15, 19: 18, 20: 17, 21: 14, 22: 12}
