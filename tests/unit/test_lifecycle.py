"""The sans-IO parts of the registration lifecycle (docs/lifecycle.md): Origin decisions, the
registrar's Min-Expires rule, reginfo documents (built by the reference S-CSCF, checked by the
harness against the RFC 3680 schema), the flow phase shown by `ims-conformance list`."""

from __future__ import annotations

import pytest

from conformance.codec import sip
from conformance.events import Nothing, SipReceived
from conformance.model.phase import phase_of
from conformance.run import actions
from conformance.run.actions import ActionEnv
from conformance.run.lifecycle_actions import reginfo as check_reginfo
from conformance.run.reporter import NullReporter
from conformance.run.state import CaseState
from refnet.lifecycle import origin_refusal
from refnet.regevent import ContactState, reginfo
from refnet.registrar_rules import TooBrief, check_min_expires

ALLOWED = {"https://app.example:8443"}


@pytest.mark.parametrize(("origin", "missing", "refused"), [
    ("https://app.example:8443", "accept", False),
    ("https://APP.example:8443/", "accept", False),  # case and a trailing slash do not matter
    ("https://attacker.example", "accept", True),
    ("https://app.example:8443.attacker.example", "accept", True),  # no prefix matching
    ("http://app.example:8443", "accept", True),  # another scheme is another origin (RFC 6454 5)
    ("null", "accept", True),
    (None, "accept", False),
    (None, "reject", True),
    ("", "reject", True),
])
def test_origin_refusal(origin, missing, refused):
    assert (origin_refusal(origin, ALLOWED, missing, accept_foreign=False) is not None) is refused


def test_origin_fault_accepts_everything():
    assert origin_refusal("https://attacker.example", ALLOWED, "reject", accept_foreign=True) is None
    assert origin_refusal(None, ALLOWED, "reject", accept_foreign=True) is None


def test_min_expires():
    check_min_expires(0, 60)  # a removal is never too brief
    check_min_expires(60, 60)
    with pytest.raises(TooBrief) as exc:
        check_min_expires(59, 60)
    assert exc.value.minimum == 60


class _Env:
    reporter = NullReporter()


def _check(body: bytes | str) -> dict:
    return check_reginfo({"body": body.decode() if isinstance(body, bytes) else body}, None, _Env())


def test_reference_reginfo_is_valid_and_readable():
    contacts = [
        ContactState("sip:a@x.invalid;transport=ws", "<urn:uuid:1>", "active", "registered", 600, "c1"),
        ContactState("sip:b@y.invalid;transport=ws", "<urn:uuid:2>", "terminated", "unregistered", None, "c2"),
    ]
    out = _check(reginfo("sip:alice@ims.example.net", "r1", 3, contacts, terminated=False))
    assert out["valid"], out["errors"]
    assert (out["version"], out["state"]) == (3, "full")
    assert out["registration"][0]["state"] == "active"
    assert out["contacts_by_instance"]["<urn:uuid:1>"]["expires"] == 600
    assert out["contacts_by_instance"]["<urn:uuid:2>"]["event"] == "unregistered"


def test_terminated_registration():
    contacts = [ContactState("sip:a@x.invalid", None, "terminated", "deactivated", None, "c1")]
    out = _check(reginfo("sip:alice@ims.example.net", "r1", 1, contacts, terminated=True))
    assert out["valid"] and out["registration"][0]["state"] == "terminated"


def test_a_contact_without_its_instance_is_found_by_the_uri_the_harness_registered():
    # RFC 3680 5.1: <uri> is the contact; <unknown-param name="+sip.instance"> is optional
    from types import SimpleNamespace

    contacts = [ContactState("sip:a@x.invalid;transport=ws", None, "active", "registered", 600, "c1"),
                ContactState("sip:b@y.invalid;transport=ws", None, "active", "registered", 600, "c2")]
    body = reginfo("sip:alice@ims.example.net", "r1", 0, contacts, terminated=False).decode()
    state = SimpleNamespace(registered_contacts={"<urn:uuid:1>": ["sip:z@z.invalid", "sip:a@X.invalid;transport=WS"]})
    out = check_reginfo({"body": body}, state, _Env())
    assert out["contacts_by_instance"]["<urn:uuid:1>"]["uri"] == "sip:a@x.invalid;transport=ws"  # 19.1.4
    assert list(out["contacts_by_instance"]) == ["<urn:uuid:1>"]  # b was never registered by the harness
    assert _check(body)["contacts_by_instance"] == {}  # no state: nothing to match by


def test_the_harness_remembers_the_contacts_it_registers():
    state = CaseState(profile=None, user={}, users={}, keylog=None)
    register = (b"REGISTER sip:ims.example.net SIP/2.0\r\nVia: SIP/2.0/WSS h.invalid;branch=z9hG4bK1\r\n"
                b"To: <sip:a@ims.example.net>\r\nFrom: <sip:a@ims.example.net>;tag=1\r\nCall-ID: c\r\n"
                b"CSeq: 1 REGISTER\r\nContact: <sip:k@h.invalid;transport=ws>;+sip.instance=\"<urn:uuid:9>\";"
                b"reg-id=1\r\nContent-Length: 0\r\n\r\n")
    actions._remember_contacts(register, state)
    actions._remember_contacts(register.replace(b"sip:k@", b"sip:m@"), state)  # e.g. a removal, another URI
    actions._remember_contacts(register, state)
    assert state.registered_contacts == {"<urn:uuid:9>": ["sip:k@h.invalid;transport=ws", "sip:m@h.invalid;transport=ws"]}


@pytest.mark.parametrize(("body", "why"), [
    ('<reginfo xmlns="urn:ietf:params:xml:ns:reginfo" version="0"/>', "state missing"),
    ('<reginfo xmlns="urn:ietf:params:xml:ns:reginfo" version="0" state="full">'
     '<registration aor="sip:a@b" id="1" state="active"><contact id="c" state="active" event="born">'
     '<uri>sip:a@b</uri></contact></registration></reginfo>', "unknown contact event"),
    ('<reginfo xmlns="urn:ietf:params:xml:ns:reginfo" version="0" state="full">'
     '<registration aor="sip:a@b" state="active"/></reginfo>', "registration without id"),
    ('<reginfo xmlns="urn:example:other" version="0" state="full"/>', "wrong namespace"),
    ("<reginfo", "not well-formed"),
])
def test_invalid_reginfo_is_reported(body, why):
    out = _check(body)
    assert out["valid"] is False, why
    assert out["errors"], why


def test_phase():
    assert phase_of(["RFC 3261 10.3", "LIFECYCLE expiry"], [14]) == "after 22: expiry"
    assert phase_of(["RFC 8898 2.2"], [14]) == "steps 1-22"
    assert phase_of(["RFC 8898 2.2"], []) == "-"


NOTIFY = (b"NOTIFY sip:ue@ue.invalid;transport=ws SIP/2.0\r\nVia: SIP/2.0/WSS wsf.example;branch=z9hG4bKn1\r\n"
          b"Max-Forwards: 69\r\nTo: <sip:a@ims.example.net>;tag=ue1\r\nFrom: <sip:a@ims.example.net>;tag=s1\r\n"
          b"Call-ID: sub1\r\nCSeq: 1 NOTIFY\r\nEvent: reg\r\nSubscription-State: terminated\r\n"
          b"Content-Length: 0\r\n\r\n")
UNSUBSCRIBE = ("SUBSCRIBE sip:a@ims.example.net SIP/2.0\r\nVia: SIP/2.0/WSS ue.invalid;branch=z9hG4bKs2\r\n"
               "Max-Forwards: 70\r\nTo: <sip:a@ims.example.net>;tag=s1\r\nFrom: <sip:a@ims.example.net>;tag=ue1\r\n"
               "Call-ID: sub1\r\nCSeq: 2 SUBSCRIBE\r\nEvent: reg\r\nExpires: 0\r\nContent-Length: 0\r\n\r\n")
OK_UNSUBSCRIBE = (b"SIP/2.0 200 OK\r\nVia: SIP/2.0/WSS ue.invalid;branch=z9hG4bKs2\r\n"
                  b"To: <sip:a@ims.example.net>;tag=s1\r\nFrom: <sip:a@ims.example.net>;tag=ue1\r\n"
                  b"Call-ID: sub1\r\nCSeq: 2 SUBSCRIBE\r\nExpires: 0\r\nContent-Length: 0\r\n\r\n")


class _Ws:
    """A WebSocket whose node sends the given messages in order, then nothing."""

    def __init__(self, *raw: bytes):
        self.events = [SipReceived(sip.parse(r), r, "ws") for r in raw]
        self.sent: list[str] = []
        self.alive = True

    def recv(self, timeout_s: float):
        return self.events.pop(0) if self.events else Nothing(timeout_s * 1000.0, peer_alive=True)

    def send_text(self, text: str) -> None:
        self.sent.append(text)


def test_notify_before_the_final_response_is_kept_for_sip_serve(tmp_path):
    # RFC 6665 4.1.2.4: the NOTIFY that ends the subscription overtakes the 200 to the unsubscribe
    ws = _Ws(NOTIFY, OK_UNSUBSCRIBE)
    state = CaseState(profile=None, user={}, users={}, keylog=tmp_path / "keylog")
    state.ws["wsf"] = ws

    def env():
        return ActionEnv(profile=None, reporter=NullReporter(), timeout_s=0.2, template_context=dict)

    answer = actions.run("sip_send", {"over": "ws", "name": "wsf", "raw": UNSUBSCRIBE}, state, env())
    assert isinstance(answer, SipReceived) and answer.message.status == 200
    served = actions.run("sip_serve", {"name": "wsf"}, state, env())
    assert isinstance(served, SipReceived) and served.message.method == "NOTIFY"
    assert len(ws.sent) == 2 and ws.sent[1].startswith("SIP/2.0 200 ")  # the NOTIFY answered
    # nothing held twice: the next sip_serve waits for a new request and reports its absence
    assert isinstance(actions.run("sip_serve", {"name": "wsf"}, state, env()), Nothing)
