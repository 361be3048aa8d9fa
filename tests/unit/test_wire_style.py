"""The reference network's conformant wire variations (refnet/wire_style.py) change the form of
a SIP message, never its meaning: the codec reads the same message back."""

from __future__ import annotations

import pytest

from conformance.codec import sip
from refnet import wire_style

REGISTER = (
    b"REGISTER sip:ims.example.net SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP 127.0.0.13:5070;branch=z9hG4bKabc;rport\r\n"
    b"Via: SIP/2.0/WSS df7jal23ls0d.invalid;branch=z9hG4bKue\r\n"
    b"Max-Forwards: 69\r\nTo: <sip:alice@ims.example.net>\r\nFrom: <sip:alice@ims.example.net>;tag=1\r\n"
    b"Call-ID: c1\r\nCSeq: 1 REGISTER\r\nContact: <sip:x@df7jal23ls0d.invalid;transport=ws>;expires=600\r\n"
    b"Supported: path, outbound\r\nContent-Length: 0\r\n\r\n")
OK = (b"SIP/2.0 200 OK\r\nVia: SIP/2.0/WSS df7jal23ls0d.invalid;branch=z9hG4bKue\r\nTo: <sip:a@b>;tag=9\r\n"
      b"From: <sip:a@b>;tag=1\r\nCall-ID: c1\r\nCSeq: 1 REGISTER\r\nContent-Length: 0\r\n\r\n")


@pytest.fixture
def style():
    def switch(*names):
        wire_style.configure(names)
    yield switch
    wire_style.configure(())


def test_without_variations_nothing_changes(style):
    style()
    assert wire_style.restyle(REGISTER) is REGISTER
    assert wire_style.new_branch().startswith("z9hG4bK")


def same_meaning(a: bytes, b: bytes) -> None:
    ma, mb = sip.parse(a), sip.parse(b)
    for name in ("Via", "To", "From", "Call-ID", "CSeq", "Contact", "Supported"):
        va = [v for v in ma.headers.get_all(name)]
        vb = [v.replace(";x-refnet=1", "") for v in mb.headers.get_all(name)]
        assert va == vb, name


def test_compact_forms(style):
    style("sip-compact-headers")
    out = wire_style.restyle(REGISTER)
    assert b"\r\nv: SIP/2.0/UDP" in out and b"\r\ni: c1" in out and b"\r\nl: 0" in out and b"\r\nk: path" in out
    assert b"Call-ID" not in out
    same_meaning(REGISTER, out)
    msg, violations = sip.validate(out)
    assert msg is not None and sip.errors(violations) == []


def test_header_order_keeps_the_order_within_one_name(style):
    style("sip-header-order")
    out = wire_style.restyle(REGISTER)
    names = [line.split(b":")[0] for line in out.split(b"\r\n")[1:] if b":" in line]
    assert names[0] != b"Via" and names.index(b"Via") > names.index(b"To")
    same_meaning(REGISTER, out)


def test_unknown_headers_and_via_parameter(style):
    style("sip-unknown-headers")
    out = wire_style.restyle(REGISTER)
    msg = sip.parse(out)
    assert msg.headers.get("X-Refnet-Trace") and msg.headers.get("X-Refnet-Feature")
    assert msg.headers.get_all("Via")[0].endswith(";x-refnet=1")
    assert ";x-refnet" not in msg.headers.get_all("Via")[1]  # only the sender's own Via
    assert wire_style.restyle(out).count(b"X-Refnet-Trace") == 1  # the next hop adds nothing twice
    ok = sip.parse(wire_style.restyle(OK))
    assert ";x-refnet" not in ok.headers.get("Via")  # a response's Via is the recipient's


def test_reason_phrases(style):
    style("sip-reason-phrases")
    resp = sip.parse(wire_style.restyle(OK))
    assert resp.status == 200 and resp.reason == "Registered"


def test_branch_and_tag_formats(style):
    style("sip-branch-tag-formats")
    branch, derived, tag = wire_style.new_branch(), wire_style.derived_branch("x"), wire_style.derived_tag("x")
    assert branch.startswith("z9hG4bK") and derived.startswith("z9hG4bK")
    assert "-" in branch and "." in branch  # not the default's hex
    assert wire_style.derived_tag("x") == tag and "." in tag  # stateless: same input, same tag
    wire_style.configure(())
    assert "." not in wire_style.derived_tag("x")


def test_size_limit(style):
    style("size-limits-larger")
    assert wire_style.max_message() == wire_style.MAX_MESSAGE_LARGER
    style()
    assert wire_style.max_message() == wire_style.MAX_MESSAGE
