"""The sans-IO parts of the registration lifecycle (docs/lifecycle.md): Origin decisions, the
registrar's Min-Expires rule, reginfo documents (built by the reference S-CSCF, checked by the
harness against the RFC 3680 schema), the flow phase shown by `ims-conformance list`."""

from __future__ import annotations

import pytest

from conformance.model.phase import phase_of
from conformance.run.lifecycle_actions import reginfo as check_reginfo
from conformance.run.reporter import NullReporter
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
