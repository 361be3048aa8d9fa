"""The emulated core's registrar (conformance/peers/registrar.py): bindings per instance with
their expiry, Min-Expires, queries and de-registration (RFC 3261 10.3, RFC 5626 6), and the reg
event (RFC 3680): a NOTIFY valid against conformance/schema/reginfo.xsd, the change notified, a
network-initiated de-registration ends the subscription (TS 24.229 5.4.1.5)."""

from __future__ import annotations

from types import SimpleNamespace

from lxml import etree

from conformance.codec import sip
from conformance.peers.base import Users
from conformance.peers.registrar import Registrar
from conformance.run.lifecycle_actions import XSD

ALICE = {"web_id": "alice@web.operator.example", "password": "pw", "impi": "alice@ims.example.net",
         "impus": ["sip:alice@ims.example.net", "tel:+15550100"]}
INSTANCE = '"<urn:uuid:00000000-0000-4000-8000-0000000000a1>"'


class _Clock:
    now = 1000.0

    def __call__(self) -> float:
        return self.now


def _registrar(clock=None) -> Registrar:
    cscf = SimpleNamespace(domain_name="pcscf.ims.example.net", host="127.0.0.14",
                           peers=SimpleNamespace(profile=SimpleNamespace(pixit={"lifecycle": {"min_expires": 2}})))
    return Registrar(cscf, clock or _Clock())


def _register(contact: str | None, expires: str | None = None) -> sip.Request:
    lines = ["REGISTER sip:ims.example.net SIP/2.0", "Via: SIP/2.0/UDP 127.0.0.14:5060;branch=z9hG4bK1",
             "To: <sip:alice@ims.example.net>", "From: <sip:alice@ims.example.net>;tag=1",
             "Call-ID: c1", "CSeq: 1 REGISTER"]
    if contact is not None:
        lines.append(f"Contact: {contact}")
    if expires is not None:
        lines.append(f"Expires: {expires}")
    return sip.parse(("\r\n".join(lines) + "\r\nContent-Length: 0\r\n\r\n").encode())


def _subscribe(asserted: str) -> sip.Request:
    return sip.parse((
        "SUBSCRIBE sip:alice@ims.example.net SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.13:5060;branch=z9hG4bK2\r\n"
        "To: <sip:alice@ims.example.net>\r\nFrom: <sip:alice@ims.example.net>;tag=s1\r\nCall-ID: s1\r\n"
        "CSeq: 1 SUBSCRIBE\r\nContact: <sip:u1@ue.invalid;transport=ws;ob>\r\nEvent: reg\r\nExpires: 600\r\n"
        "Record-Route: <sip:flow1@wsf.operator.example;lr;ob>\r\n"
        f"P-Asserted-Identity: <{asserted}>\r\nContent-Length: 0\r\n\r\n").encode())


def test_bindings_per_instance_with_min_expires_query_and_removal():
    clock = _Clock()
    reg = _registrar(clock)
    refused, _ = reg.register(_register(f"<sip:a@h.invalid;transport=ws>;+sip.instance={INSTANCE};reg-id=1;expires=1"))
    assert refused.status == 423 and refused.headers.get("Min-Expires") == "2"
    assert reg.contacts("sip:alice@ims.example.net") == []  # nothing registered by the 423
    reg.register(_register(f"<sip:a@h.invalid;transport=ws>;+sip.instance={INSTANCE};reg-id=1;expires=600"))
    reg.register(_register("<sip:b@h.invalid;transport=ws>;reg-id=1", "60"))
    listed = reg.contacts("sip:alice@ims.example.net")
    assert len(listed) == 2 and any("expires=600" in c and "+sip.instance" in c for c in listed)
    clock.now += 61  # the second binding expired
    assert [c for c in reg.contacts("sip:alice@ims.example.net") if "sip:b@" in c] == []
    assert reg.register(_register(None)) == (None, None)  # a query changes nothing
    _, change = reg.register(_register("*", "0"))
    assert reg.contacts("sip:alice@ims.example.net") == [] and len(change.gone) == 1


def test_reg_event_notify_is_valid_reginfo_and_ends_at_network_deregistration():
    reg = _registrar()
    users = Users({"alice": ALICE})
    reg.register(_register(f"<sip:a@h.invalid;transport=ws>;+sip.instance={INSTANCE};reg-id=1;expires=600"))
    refused, _ = reg.subscribe(_subscribe("sip:bob@ims.example.net"), print, users.by_impu)
    assert refused.status == 403  # TS 24.229 5.4.2.1.1: only the owner
    ok, sub = reg.subscribe(_subscribe("sip:alice@ims.example.net"), print, users.by_impu)
    assert ok.status == 200 and ok.headers.get("Record-Route") == "<sip:flow1@wsf.operator.example;lr;ob>"
    notify = reg.notify(sub)
    assert notify.uri == "sip:u1@ue.invalid;transport=ws;ob"
    assert notify.headers.get("Route") == "<sip:flow1@wsf.operator.example;lr;ob>"
    schema = etree.XMLSchema(etree.parse(str(XSD)))
    schema.assertValid(etree.fromstring(notify.body))
    assert 'state="active"' in notify.body.decode() and 'version="0"' in notify.body.decode()
    [(same, ended)] = reg.network_deregister("sip:alice@ims.example.net", "deactivated")
    assert same is sub and ended.headers.get("Subscription-State").startswith("terminated")
    body = ended.body.decode()
    schema.assertValid(etree.fromstring(ended.body))
    assert 'version="1"' in body and 'event="deactivated"' in body and '<registration aor="sip:alice@ims.example.net"' in body
    assert reg.subscribers("sip:alice@ims.example.net") == []
