"""The emulated WSF's flows after registration (conformance/peers/wsf_flows.py): a request of the
UE goes to the core only on a registered flow, with the flow's identity asserted and, for a
SUBSCRIBE, a Record-Route naming the flow; a request of the core reaches the WebSocket its Route
names and the UE's answer comes back; a flow that is gone is 430 (RFC 5626 5.3)."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

from conformance.codec import sip
from conformance.peers.wsf_flows import FlowTable

SUBSCRIBE = (b"SUBSCRIBE sip:alice@ims.example.net SIP/2.0\r\n"
             b"Via: SIP/2.0/WSS ue.invalid;branch=z9hG4bKue1\r\nMax-Forwards: 70\r\n"
             b"To: <sip:alice@ims.example.net>\r\nFrom: <sip:alice@ims.example.net>;tag=f1\r\n"
             b"Call-ID: c1\r\nCSeq: 1 SUBSCRIBE\r\nContact: <sip:u1@ue.invalid;transport=ws;ob>\r\n"
             b"Authorization: Bearer abc\r\nP-Asserted-Identity: <sip:mallory@ims.example.net>\r\n"
             b"Event: reg\r\nExpires: 600\r\nContent-Length: 0\r\n\r\n")


def _table() -> FlowTable:
    return FlowTable(SimpleNamespace(name="wsf.operator.example", host="127.0.0.13"))


class _Ws:
    def __init__(self, table: FlowTable, answer: int | None):
        self.table, self.answer, self.sent = table, answer, []

    async def send(self, text: str) -> None:
        self.sent.append(text)
        if self.answer is not None:  # the UE answers what it got
            req = sip.parse(text.encode())
            self.table.answer_from_ue(sip.make_response(req, self.answer))


def test_a_request_of_the_ue_needs_a_registered_flow():
    table = _table()
    flow = table.open(object())
    req = sip.parse(SUBSCRIBE)
    refused = table.towards_core(flow, req)
    assert isinstance(refused, sip.Response) and refused.status == 403


def test_the_flow_asserts_its_identity_and_record_routes_a_subscribe():
    table = _table()
    flow = table.open(object())
    flow.impus = ["sip:alice@ims.example.net", "tel:+15550100"]
    out = table.towards_core(flow, sip.parse(SUBSCRIBE))
    assert isinstance(out, sip.Request)
    assert out.headers.get_all("P-Asserted-Identity") == ["<sip:alice@ims.example.net>"]
    assert out.headers.get("Authorization") is None
    assert out.headers.get("Max-Forwards") == "69"
    assert out.headers.get("Record-Route") == f"<sip:{flow.token}@wsf.operator.example;lr;ob>"


def test_a_notify_reaches_the_flow_its_route_names_and_the_answer_comes_back():
    async def scenario():
        table = _table()
        ws = _Ws(table, 200)
        flow = table.open(ws)
        notify = sip.parse(
            b"NOTIFY sip:u1@ue.invalid;transport=ws;ob SIP/2.0\r\n"
            b"Via: SIP/2.0/UDP 127.0.0.14:5060;branch=z9hG4bKp1\r\n"
            b"Route: <sip:" + flow.token.encode() + b"@wsf.operator.example;lr;ob>\r\n"
            b"Max-Forwards: 69\r\nTo: <sip:alice@ims.example.net>;tag=f1\r\n"
            b"From: <sip:alice@ims.example.net>;tag=n1\r\nCall-ID: c1\r\nCSeq: 1 NOTIFY\r\n"
            b"Event: reg\r\nSubscription-State: active\r\nContent-Length: 0\r\n\r\n")
        answer = await table.deliver(notify)
        delivered = sip.parse(ws.sent[0].encode())
        assert delivered.headers.get("Route") is None  # the WSF popped its own entry
        assert delivered.headers.get("Via").startswith("SIP/2.0/WSS wsf.operator.example;")
        assert answer.status == 200
        assert answer.headers.get_all("Via") == ["SIP/2.0/UDP 127.0.0.14:5060;branch=z9hG4bKp1"]
        table.close(flow)
        gone = await table.deliver(notify)
        assert gone.status == 430

    asyncio.run(scenario())
