"""The harness's UAC dialog (conformance/run/sip_dialog.py): RFC 3261 12.1.2 and 12.2.1.1."""

from __future__ import annotations

import pytest

from conformance.codec import sip
from conformance.run.sip_dialog import Dialog, NoDialog

SUBSCRIBE = (
    "SUBSCRIBE sip:alice@ims.example.net SIP/2.0\r\n"
    "Via: SIP/2.0/WSS a1.invalid;branch=z9hG4bK1\r\n"
    "Max-Forwards: 70\r\n"
    "To: <sip:alice@ims.example.net>\r\n"
    "From: <sip:alice@ims.example.net>;tag=ue1\r\n"
    "Call-ID: c1\r\nCSeq: 7 SUBSCRIBE\r\n"
    "Contact: <sip:x@a1.invalid;transport=ws;ob>\r\n"
    "Event: reg\r\nExpires: 600\r\nContent-Length: 0\r\n\r\n")

OK = (
    "SIP/2.0 200 OK\r\n"
    "Via: SIP/2.0/WSS a1.invalid;branch=z9hG4bK1\r\n"
    "Record-Route: <sip:pcscf.ims.example.net;lr>\r\n"
    "Record-Route: <sip:flow9@wsf.operator.example;lr;ob>\r\n"
    "To: <sip:alice@ims.example.net>;tag=scscf1\r\n"
    "From: <sip:alice@ims.example.net>;tag=ue1\r\n"
    "Call-ID: c1\r\nCSeq: 7 SUBSCRIBE\r\n"
    "Contact: <sip:scscf.ims.example.net:6060>\r\n"
    "Expires: 600\r\nContent-Length: 0\r\n\r\n")


def _msg(text: str):
    return sip.parse(text.encode())


def _unsubscribe():
    msg = _msg(SUBSCRIBE.replace("Call-ID: c1", "Call-ID: fresh").replace("tag=ue1", "tag=other")
               .replace("Expires: 600", "Expires: 0"))
    return msg


def test_a_request_within_the_dialog_goes_to_the_remote_target_along_the_route_set():
    dialog = Dialog.from_response(_msg(SUBSCRIBE), _msg(OK))
    msg = _unsubscribe()
    dialog.apply(msg)
    assert msg.uri == "sip:scscf.ims.example.net:6060"  # the Contact of the 2xx
    # the Record-Route of the 2xx in reverse order, the WSF (nearest the UE) first
    assert msg.headers.get_all("Route") == ["<sip:flow9@wsf.operator.example;lr;ob>", "<sip:pcscf.ims.example.net;lr>"]
    assert msg.call_id == "c1"
    assert "tag=ue1" in msg.headers.get("From") and "tag=scscf1" in msg.headers.get("To")
    assert msg.cseq == (8, "SUBSCRIBE")  # one more than the request that created the dialog
    assert msg.headers.get("Expires") == "0" and msg.headers.get("Event") == "reg"
    dialog.apply(msg2 := _unsubscribe())
    assert msg2.cseq == (9, "SUBSCRIBE")


def test_a_notify_refreshes_the_remote_target():
    dialog = Dialog.from_response(_msg(SUBSCRIBE), _msg(OK))
    notify = _msg("NOTIFY sip:x@a1.invalid SIP/2.0\r\nVia: SIP/2.0/WSS w;branch=z9hG4bK2\r\n"
                  "To: <sip:alice@ims.example.net>;tag=ue1\r\nFrom: <sip:alice@ims.example.net>;tag=scscf1\r\n"
                  "Call-ID: c1\r\nCSeq: 1 NOTIFY\r\nContact: <sip:scscf2.ims.example.net>\r\n"
                  "Event: reg\r\nContent-Length: 0\r\n\r\n")
    dialog.refresh_target(notify)
    assert dialog.remote_target == "sip:scscf2.ims.example.net"
    other = _msg(notify.serialize().decode().replace("Call-ID: c1", "Call-ID: c2")
                 .replace("scscf2", "elsewhere"))
    dialog.refresh_target(other)  # another dialog's NOTIFY changes nothing
    assert dialog.remote_target == "sip:scscf2.ims.example.net"


def test_a_strict_router_first_gets_the_request_uri_and_the_remote_target_goes_last():
    strict = OK.replace("<sip:flow9@wsf.operator.example;lr;ob>", "<sip:wsf.operator.example>")
    dialog = Dialog.from_response(_msg(SUBSCRIBE), _msg(strict))
    msg = _unsubscribe()
    dialog.apply(msg)
    assert msg.uri == "sip:wsf.operator.example"
    assert msg.headers.get_all("Route") == ["<sip:pcscf.ims.example.net;lr>", "<sip:scscf.ims.example.net:6060>"]


@pytest.mark.parametrize("answer", [
    OK.replace("200 OK", "403 Forbidden"),
    OK.replace(";tag=scscf1", ""),
    OK.replace("Contact: <sip:scscf.ims.example.net:6060>\r\n", ""),
])
def test_no_dialog_without_a_2xx_with_a_to_tag_and_a_contact(answer):
    with pytest.raises(NoDialog):
        Dialog.from_response(_msg(SUBSCRIBE), _msg(answer))
