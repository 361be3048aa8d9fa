"""SIP/SIPS/tel URI parsing, serialisation and RFC 3261 19.1.4 / RFC 3966 4 comparison."""

from __future__ import annotations

import pytest

from conformance.codec.sip_uri import (
    AbsoluteUri,
    ParamDict,
    SipUri,
    TelUri,
    UriError,
    escape_user,
    parse_uri,
    uri_equal,
)


def test_components():
    uri = SipUri.parse("sips:alice:secret@Atlanta.COM:5061;transport=tcp;lr;maddr=239.255.255.1?subject=x%20y&h=")
    assert (uri.scheme, uri.user, uri.password, uri.host, uri.port) == ("sips", "alice", "secret", "Atlanta.COM", 5061)
    assert list(uri.params.items()) == [("transport", "tcp"), ("lr", None), ("maddr", "239.255.255.1")]
    assert uri.params["TRANSPORT"] == "tcp" and "LR" in uri.params and uri.transport == "tcp"
    assert dict(uri.headers) == {"subject": "x%20y", "h": ""}
    assert uri.aor == "sips:alice@atlanta.com:5061"


def test_scheme_is_case_insensitive_and_text_round_trips():
    text = "SIP:ALICE@AtLanTa.CoM;Transport=udp"
    uri = SipUri.parse(text)
    assert uri.scheme == "sip" and str(uri) == text


def test_no_user_ipv4_ipv6():
    assert SipUri.parse("sip:127.0.0.1:5080").user is None
    v6 = SipUri.parse("sip:bob@[2001:db8::1]:5062;transport=tcp")
    assert (v6.host, v6.port, v6.transport) == ("[2001:db8::1]", 5062, "tcp")
    assert SipUri.parse("sip:[::1]").port is None


def test_user_with_reserved_characters_and_decoding():
    uri = SipUri.parse("sip:user;par=u%40example.net@example.com")
    assert uri.user == "user;par=u%40example.net" and uri.user_decoded == "user;par=u@example.net"
    assert not uri.params
    tel_user = SipUri.parse("sip:+1-212-555-1212;phone-context=example.com@gw.example.com;user=phone")
    assert tel_user.user.startswith("+1-212") and tel_user.params["user"] == "phone"
    assert SipUri.parse("sip:%00%00@h").user_decoded == "\x00\x00"
    assert escape_user("a b@c") == "a%20b%40c"


def test_modification_rebuilds_the_text():
    uri = SipUri.parse("sip:alice@atlanta.com;transport=udp")
    assert str(uri) == "sip:alice@atlanta.com;transport=udp"
    uri.params["transport"] = "ws"
    uri.params["ob"] = None
    uri.port = 5060
    assert str(uri) == "sip:alice@atlanta.com:5060;transport=ws;ob"
    built = SipUri(host="example.net", user="bob", params={"lr": None}, headers={"Route": "%3Csip:x%3E"})
    assert str(built) == "sip:bob@example.net;lr?Route=%3Csip:x%3E"
    copy = uri.copy()
    copy.host = "other.example"
    assert str(uri) == "sip:alice@atlanta.com:5060;transport=ws;ob"


@pytest.mark.parametrize("bad", [
    "sip:", "sip:@host", "sip:alice@", "sip:alice@host:", "sip:alice@host:99999", "sip:alice@host:5o60",
    "sip:alice@ho st", "sip:<alice@host>", "sip:alice@host;;lr", "sip:alice@host;=x", "http://x",
    "sip:alice@[::1", "sip:alice@host?&", "sip:a@b\x00", 'sip:"a"@b',
])
def test_sip_uri_errors(bad):
    with pytest.raises(UriError):
        SipUri.parse(bad)


def test_tel_and_absolute():
    tel = parse_uri("tel:+1-555-0100;ext=12")
    assert isinstance(tel, TelUri) and tel.is_global and tel.digits == "+15550100" and tel.params["ext"] == "12"
    assert str(tel) == "tel:+1-555-0100;ext=12"
    local = TelUri.parse("tel:7042;phone-context=example.com")
    assert not local.is_global
    other = parse_uri("urn:uuid:f81d4fae-7dec-11d0-a765-00a0c91e6bf6")
    assert isinstance(other, AbsoluteUri) and other.scheme == "urn" and str(other).startswith("urn:uuid:")
    for bad in ("tel:", "tel:+", "tel:abc xyz", "nocolon", ":x", "1http:x", "mailto:"):
        with pytest.raises(UriError):
            parse_uri(bad)


def test_param_dict():
    p = ParamDict([("Transport", "udp"), ("lr", None)])
    p["TRANSPORT"] = "tcp"
    assert list(p) == ["Transport", "lr"] and p["transport"] == "tcp"
    assert p == {"transport": "tcp", "LR": None} and p != {"transport": "udp", "lr": None}
    del p["LR"]
    assert len(p) == 1 and "lr" not in p
    q = p.copy()
    q["x"] = "1"
    assert "x" not in p


# RFC 3261 19.1.4, the examples as listed there.
EQUIVALENT = [
    ("sip:%61lice@atlanta.com;transport=TCP", "sip:alice@AtLanTa.CoM;Transport=tcp"),
    ("sip:carol@chicago.com", "sip:carol@chicago.com;newparam=5"),
    ("sip:carol@chicago.com", "sip:carol@chicago.com;security=on"),
    ("sip:carol@chicago.com;newparam=5", "sip:carol@chicago.com;security=on"),
    ("sip:biloxi.com;transport=tcp;method=REGISTER?to=sip:bob%40biloxi.com",
     "sip:biloxi.com;method=REGISTER;transport=tcp?to=sip:bob%40biloxi.com"),
    ("sip:alice@atlanta.com?subject=project%20x&priority=urgent",
     "sip:alice@atlanta.com?priority=urgent&subject=project%20x"),
    ("sip:carol@chicago.com", "sip:carol@chicago.com;security=off"),
]
NOT_EQUIVALENT = [
    ("SIP:ALICE@AtLanTa.CoM;Transport=udp", "sip:alice@AtLanTa.CoM;Transport=UDP"),  # different usernames
    ("sip:bob@biloxi.com", "sip:bob@biloxi.com:5060"),  # can resolve to different ports
    ("sip:bob@biloxi.com", "sip:bob@biloxi.com;transport=udp"),  # can resolve to different transports
    ("sip:bob@biloxi.com", "sip:bob@biloxi.com:6000;transport=tcp"),  # different port and transports
    ("sip:carol@chicago.com", "sip:carol@chicago.com?Subject=next%20meeting"),  # different header component
    ("sip:bob@phone21.boxesbybob.com", "sip:bob@192.0.2.4"),  # even though that's what it resolves to
    ("sip:carol@chicago.com;security=on", "sip:carol@chicago.com;security=off"),  # equality is not transitive
]
MORE_NOT_EQUIVALENT = [
    ("sip:alice@atlanta.com", "sips:alice@atlanta.com"),  # sip and sips never match
    ("sip:alice@atlanta.com", "sip:alice@atlanta.com;maddr=10.0.0.1"),  # maddr in one only
    ("sip:alice@atlanta.com", "sip:alice@atlanta.com;user=phone"),
    ("sip:alice@atlanta.com", "sip:alice@atlanta.com;ttl=1"),
    ("sip:alice@atlanta.com", "sip:alice@atlanta.com;method=INVITE"),
    ("sip:alice:pw@atlanta.com", "sip:alice:PW@atlanta.com"),  # password is case-sensitive
    ("sip:alice@atlanta.com", "sip:alice:pw@atlanta.com"),
    ("sip:atlanta.com", "sip:alice@atlanta.com"),
    ("sip:a@h?subject=Next", "sip:a@h?subject=next"),
    ("sip:a@h?x=1", "sip:a@h?x=1&y=2"),
]


@pytest.mark.parametrize("a,b", EQUIVALENT)
def test_equivalent(a, b):
    assert uri_equal(a, b) and uri_equal(b, a)
    assert uri_equal(SipUri.parse(a), b)


@pytest.mark.parametrize("a,b", NOT_EQUIVALENT + MORE_NOT_EQUIVALENT)
def test_not_equivalent(a, b):
    assert not uri_equal(a, b) and not uri_equal(b, a)


def test_escaped_everywhere_and_case_rules():
    assert uri_equal("sip:alice@atlanta.com;transport=%74cp", "sip:alice@atlanta.com;TRANSPORT=TCP")
    assert uri_equal("sip:alice@atlanta.com", "sip:alice@ATLANTA.com.") is False  # no FQDN folding
    assert uri_equal("sip:a@h?Subject=x", "sip:a@h?subject=x")
    assert uri_equal("sip:alice@atlanta.com;lr", "sip:alice@atlanta.com;LR")
    assert not uri_equal("sip:alice@atlanta.com;lr", "sip:alice@atlanta.com;lr=on")


def test_tel_comparison_rfc3966():
    assert uri_equal("tel:+1-201-555-0123", "tel:+1.201.555.0123")
    assert uri_equal("tel:+1(201)5550123", "TEL:+12015550123")
    assert uri_equal("tel:7042;phone-context=Example.COM", "tel:7042;PHONE-CONTEXT=example.com")
    assert uri_equal("tel:863-1234;phone-context=+1-914-555", "tel:8631234;phone-context=+1914555")
    assert not uri_equal("tel:+12015550123", "tel:12015550123;phone-context=+1")  # global vs local
    assert not uri_equal("tel:+12015550123", "tel:+12015550124")
    assert not uri_equal("tel:+12015550123", "tel:+12015550123;ext=1")  # a parameter in one only
    assert not uri_equal("tel:+15550100", "sip:+15550100@ims.example.net;user=phone")


def test_other_schemes_and_mixed_types():
    assert uri_equal("URN:uuid:abc", "urn:uuid:abc")
    assert not uri_equal("urn:uuid:abc", "urn:uuid:abd")
    assert not uri_equal(parse_uri("urn:x:y"), parse_uri("sip:x@y"))
    with pytest.raises(UriError):
        uri_equal("not a uri", "sip:a@b")
