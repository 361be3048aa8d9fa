"""The reference network's own SIP layer (refnet/sip): round trips on the binding's REGISTER, 401
and 200 OK, compact forms, folded lines, Via stacks, stream framing, the request checks behind its
400s, and the RFC 3261 19.1.4 URI comparison examples."""

from __future__ import annotations

import pytest

from refnet.sip import (
    HeaderError,
    Request,
    Response,
    SipError,
    StreamFramer,
    UriError,
    make_response,
    parse,
    parse_credentials,
    parse_name_addr,
    parse_uri,
    parse_via,
    serialize,
    uri_equal,
    validate,
)

# BINDING.md step 14, with its placeholders filled in
REGISTER = (
    b"REGISTER sip:ims.example.net SIP/2.0\r\n"
    b"Via: SIP/2.0/WSS df7jal23ls0d.invalid;branch=z9hG4bK56sdasks\r\n"
    b"Max-Forwards: 70\r\n"
    b"To: <sip:alice@web.operator.example>\r\n"
    b"From: <sip:alice@web.operator.example>;tag=65fa8b\r\n"
    b"Call-ID: 3c26700857bd@df7jal23ls0d.invalid\r\n"
    b"CSeq: 1 REGISTER\r\n"
    b'Contact: <sip:k3l8@df7jal23ls0d.invalid;transport=ws>;+sip.instance="<urn:uuid:0c4a>";reg-id=1;expires=600\r\n'
    b"Supported: path, outbound\r\n"
    b"Authorization: Bearer eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2ln\r\n"
    b"Content-Length: 0\r\n\r\n")

UNAUTHORIZED = (
    b"SIP/2.0 401 Unauthorized\r\n"
    b"Via: SIP/2.0/WSS df7jal23ls0d.invalid;branch=z9hG4bK56sdasks\r\n"
    b"To: <sip:alice@web.operator.example>;tag=9a1b\r\n"
    b"From: <sip:alice@web.operator.example>;tag=65fa8b\r\n"
    b"Call-ID: 3c26700857bd@df7jal23ls0d.invalid\r\n"
    b"CSeq: 1 REGISTER\r\n"
    b'WWW-Authenticate: Bearer realm="ims.example.net", authz_server="https://127.0.0.12:9443"\r\n'
    b"Content-Length: 0\r\n\r\n")

OK = (
    b"SIP/2.0 200 OK\r\n"
    b"Via: SIP/2.0/UDP 127.0.0.13:5060;branch=z9hG4bKp1;received=127.0.0.13\r\n"
    b"Via: SIP/2.0/UDP 127.0.0.12:5062;branch=z9hG4bKw1;rport=5062\r\n"
    b"Via: SIP/2.0/WSS df7jal23ls0d.invalid;branch=z9hG4bK56sdasks\r\n"
    b"To: <sip:alice@ims.example.net>;tag=s1\r\n"
    b"From: <sip:alice@ims.example.net>;tag=65fa8b\r\n"
    b"Call-ID: 3c26700857bd@df7jal23ls0d.invalid\r\n"
    b"CSeq: 1 REGISTER\r\n"
    b"Contact: <sip:k3l8@df7jal23ls0d.invalid;transport=ws>;expires=600\r\n"
    b"Path: <sip:term@pcscf.ims.example.net;lr>, <sip:f1@wsf.operator.example;lr;ob>\r\n"
    b"Service-Route: <sip:orig@scscf.ims.example.net;lr>\r\n"
    b"P-Associated-URI: <sip:alice@ims.example.net>, <tel:+1-212-555-0101>\r\n"
    b"Content-Length: 0\r\n\r\n")


@pytest.mark.parametrize("raw", [REGISTER, UNAUTHORIZED, OK], ids=["REGISTER", "401", "200"])
def test_round_trip_is_byte_exact(raw):
    assert serialize(parse(raw)) == raw


def test_register_fields():
    req = parse(REGISTER)
    assert isinstance(req, Request) and (req.method, req.uri) == ("REGISTER", "sip:ims.example.net")
    assert req.cseq == (1, "REGISTER") and req.branch == "z9hG4bK56sdasks"
    assert req.headers.get_all("Supported") == ["path", "outbound"]
    contact = parse_name_addr(req.headers.get("Contact"))
    assert contact.params["+sip.instance"] == '"<urn:uuid:0c4a>"' and contact.params["EXPIRES"] == "600"
    assert contact.uri.params["transport"] == "ws"
    cred = parse_credentials(req.headers.get("Authorization"))
    assert cred.scheme == "Bearer" and cred.token68.startswith("eyJ") and not cred.params
    assert validate(REGISTER) == (req, [])


def test_401_and_200_fields():
    resp = parse(UNAUTHORIZED)
    assert isinstance(resp, Response) and (resp.status, resp.reason, resp.method) == (401, "Unauthorized", "REGISTER")
    challenge = resp.headers.get("WWW-Authenticate")  # not a list header: its commas stay
    assert parse_credentials(challenge).params == {"realm": "ims.example.net", "authz_server": "https://127.0.0.12:9443"}
    ok = parse(OK)
    assert [parse_name_addr(p).uri.user for p in ok.headers.get_all("Path")] == ["term", "f1"]
    assert [str(parse_name_addr(u).uri) for u in ok.headers.get_all("P-Associated-URI")] == [
        "sip:alice@ims.example.net", "tel:+1-212-555-0101"]


def test_digest_credentials_unquoted():
    cred = parse_credentials('Digest username="alice@ims.example.net", realm="ims.example.net", '
                             'uri="sip:ims.example.net", nonce="", response="", integrity-protected="auth-done"')
    assert cred.params["username"] == "alice@ims.example.net" and cred.params["nonce"] == ""
    assert cred.params["integrity-protected"] == "auth-done"
    assert parse_credentials('Bearer access_token="abc.def"').params == {"access_token": "abc.def"}
    with pytest.raises(HeaderError):
        parse_credentials('Digest username="unterminated')


def test_compact_forms_find_long_names():
    raw = (b"REGISTER sip:ims.example.net SIP/2.0\r\nv: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKc\r\n"
           b"Max-Forwards: 70\r\nt: <sip:alice@ims.example.net>\r\nf: <sip:alice@ims.example.net>;tag=1\r\n"
           b"i: c1\r\nCSeq: 1 REGISTER\r\nm: <sip:a@127.0.0.1:5070>\r\nk: path\r\nl: 0\r\n\r\n")
    req = parse(raw)
    assert req.headers.get("Via").endswith("branch=z9hG4bKc") and req.call_id == "c1"
    assert req.headers.get("Contact") == "<sip:a@127.0.0.1:5070>" and "supported" in req.headers
    assert validate(raw)[1] == []
    assert serialize(req) == raw  # the compact name is written back, with the body's length


def test_folded_lines_are_unfolded():
    raw = (b"REGISTER sip:ims.example.net SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5070\r\n ;branch=z9hG4bKf\r\n"
           b"Max-Forwards: 70\r\nTo: <sip:alice@ims.example.net>\r\nFrom: <sip:alice@ims.example.net>\r\n"
           b"\t;tag=1\r\nCall-ID: c2\r\nCSeq:\r\n   7\r\n   REGISTER\r\nContent-Length: 0\r\n\r\n")
    req, problems = validate(raw)
    assert problems == [] and req.branch == "z9hG4bKf" and req.cseq == (7, "REGISTER")
    assert parse_name_addr(req.headers.get("From")).tag == "1"


def test_via_stack_split_and_combined():
    ok = parse(OK)
    vias = ok.headers.get_all("Via")
    assert [parse_via(v).host for v in vias] == ["127.0.0.13", "127.0.0.12", "df7jal23ls0d.invalid"]
    combined = parse(OK.replace(b"received=127.0.0.13\r\nVia: ", b"received=127.0.0.13, ")
                     .replace(b"rport=5062\r\nVia: ", b"rport=5062 ,"))  # one line, odd spacing
    assert combined.headers.get_all("Via") == vias
    assert combined.headers.remove_first("Via") == vias[0]
    assert combined.headers.get_all("Via") == vias[1:]
    top = parse_via(vias[1])
    assert (top.transport, top.port, top.params["rport"], top.branch) == ("UDP", 5062, "5062", "z9hG4bKw1")
    top.params["received"] = "127.0.0.12"
    assert str(top) == "SIP/2.0/UDP 127.0.0.12:5062;branch=z9hG4bKw1;rport=5062;received=127.0.0.12"
    assert parse_via("SIP / 2.0 / TCP [::1] : 5060 ;branch=z9hG4bKv6").sent_by == "[::1]:5060"
    for bad in ("SIP/2.0/UDP", "SIP/2.0/UDP host:99999", "SIP/2.0 host", "SIP/2.0/UDP host;=x"):
        with pytest.raises(HeaderError):
            parse_via(bad)


def test_headers_prepend_set_remove():
    req = parse(REGISTER)
    req.headers.prepend("Via", "SIP/2.0/UDP 127.0.0.12:5062;branch=z9hG4bKnew")
    assert req.branch == "z9hG4bKnew" and len(req.headers.get_all("Via")) == 2
    req.headers.set("Max-Forwards", "69")
    req.headers.remove("Authorization")
    req.body = b"x"
    out = serialize(req)
    assert b"Max-Forwards: 69\r\n" in out and b"Authorization" not in out and out.endswith(b"Content-Length: 1\r\n\r\nx")
    copy = req.copy()
    copy.headers.remove("Via")
    assert "Via" in req.headers


def test_make_response_copies_8_2_6_2():
    resp = make_response(parse(REGISTER), 401, "Unauthorized", to_tag="t1")
    names = [n for n, _ in resp.headers]
    assert names == ["Via", "To", "From", "Call-ID", "CSeq"]
    assert resp.headers.get("To") == "<sip:alice@web.operator.example>;tag=t1"
    tagged = parse(REGISTER.replace(b"To: <sip:alice@web.operator.example>", b"To: <sip:a@b>;tag=x"))
    assert make_response(tagged, 200, "OK", to_tag="t1").headers.get("To") == "<sip:a@b>;tag=x"
    assert make_response(parse(REGISTER), 100, "Trying", to_tag="t1").headers.get("To").endswith(">")


@pytest.mark.parametrize("edit, named", [
    ((b"Max-Forwards: 70", b"Max-Forwards: lots"), "Max-Forwards"),
    ((b"Max-Forwards: 70", b"Max-Forwards 70"), "no colon"),
    ((b"CSeq: 1 REGISTER", b"CSeq: 1 INVITE"), "CSeq method"),
    ((b"CSeq: 1 REGISTER", b"CSeq: 99999999999 REGISTER"), "CSeq"),
    ((b"CSeq: 1 REGISTER\r\n", b""), "CSeq"),
    ((b"Call-ID: 3c26700857bd@df7jal23ls0d.invalid", b"Call-ID: a b c"), "Call-ID"),
    ((b"Content-Length: 0", b"Content-Length: 10"), "Content-Length"),
    ((b"To: <sip:alice@web.operator.example>", b"To: <sip:alice@web.operator.example"), "To"),
    ((b"SIP/2.0\r\n", b"SIP/3.0\r\n"), "SIP-Version"),
    ((b"REGISTER sip", b"REGISTER  sip"), "request line"),
    ((b";expires=600", b";expires=soon"), "Contact expires"),
])
def test_validate_names_the_problem(edit, named):
    msg, problems = validate(REGISTER.replace(*edit, 1))
    assert msg is not None and problems and named in problems[0], problems


def test_validate_stream_needs_content_length():
    raw = REGISTER.replace(b"Content-Length: 0\r\n", b"")
    assert validate(raw)[1] == []
    assert "Content-Length" in validate(raw, stream=True)[1][0]


def test_parse_rejects_what_is_not_sip():
    for raw in (b"", b"hello", b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", b"SIP/2.0 99 Low\r\n\r\n"):
        with pytest.raises(SipError):
            parse(raw)


def test_stream_framer_by_content_length():
    body_msg = REGISTER.replace(b"Content-Length: 0", b"Content-Length: 5") + b"hello"
    framer = StreamFramer(max_size=4096)
    assert framer.feed(b"\r\n\r\n" + body_msg[:40]) == []
    assert framer.feed(body_msg[40:] + REGISTER[:10]) == [body_msg]
    assert framer.feed(REGISTER[10:]) == [REGISTER] and framer.buffered == 0


def test_stream_framer_failures():
    framer = StreamFramer(max_size=len(REGISTER) + 10)
    big = REGISTER.replace(b"Content-Length: 0", b"Content-Length: 100") + b"x" * 100
    out = framer.feed(big + REGISTER)
    assert "exceeds" in out[0].reason and out[1] == REGISTER  # skipped by its length: still in step
    (failure,) = StreamFramer().feed(REGISTER.replace(b"Content-Length: 0\r\n", b""))
    assert "Content-Length" in failure.reason and failure.head.startswith(b"REGISTER")
    (failure,) = StreamFramer(max_size=100).feed(b"REGISTER sip:x SIP/2.0\r\n" + b"X: y\r\n" * 30)
    assert "end of header" in failure.reason


# -- RFC 3261 19.1.4 -----------------------------------------------------------------------------

@pytest.mark.parametrize("a, b", [
    ("sip:%61lice@atlanta.com;transport=TCP", "sip:alice@AtLanTa.CoM;Transport=tcp"),
    ("sip:carol@chicago.com", "sip:carol@chicago.com;newparam=5"),
    ("sip:carol@chicago.com", "sip:carol@chicago.com;security=on"),
    ("sip:carol@chicago.com;newparam=5", "sip:carol@chicago.com;security=on"),
    ("sip:biloxi.com;transport=tcp;method=REGISTER?to=sip:bob%40biloxi.com",
     "sip:biloxi.com;method=REGISTER;transport=tcp?to=sip:bob%40biloxi.com"),
    ("sip:alice@atlanta.com?subject=project%20x&priority=urgent",
     "sip:alice@atlanta.com?priority=urgent&subject=project%20x"),
])
def test_equivalent_uris(a, b):
    assert uri_equal(a, b) and uri_equal(b, a)


@pytest.mark.parametrize("a, b", [
    ("SIP:ALICE@AtLanTa.CoM;Transport=udp", "sip:alice@AtLanTa.CoM;Transport=UDP"),
    ("sip:bob@biloxi.com", "sip:bob@biloxi.com:5060"),
    ("sip:bob@biloxi.com", "sip:bob@biloxi.com;transport=udp"),
    ("sip:bob@biloxi.com", "sip:bob@biloxi.com:6000;transport=tcp"),
    ("sip:carol@chicago.com", "sip:carol@chicago.com?Subject=next%20meeting"),
    ("sip:bob@phone21.boxesbybob.com", "sip:bob@192.0.2.4"),
    ("sip:alice@atlanta.com", "sips:alice@atlanta.com"),
    ("sip:carol@chicago.com;security=on", "sip:carol@chicago.com;security=off"),
])
def test_non_equivalent_uris(a, b):
    assert not uri_equal(a, b) and not uri_equal(b, a)


def test_tel_and_other_uris():
    assert uri_equal("tel:+1-212-555-0101", "tel:+12125550101")
    assert not uri_equal("tel:+12125550101", "sip:+12125550101@ims.example.net")
    assert str(parse_uri("urn:uuid:0c4a")) == "urn:uuid:0c4a"


def test_uri_parts_and_errors():
    uri = parse_uri("sips:al%69ce:pw@[2001:db8::1]:5061;lr;maddr=239.1.1.1?h=v")
    assert (uri.user, uri.user_decoded, uri.password, uri.host, uri.port) == ("al%69ce", "alice", "pw", "[2001:db8::1]", 5061)
    assert uri.params["lr"] is None and uri.headers == {"h": "v"}
    assert str(uri) == "sips:al%69ce:pw@[2001:db8::1]:5061;lr;maddr=239.1.1.1?h=v"
    for bad in ("alice@example.com", "sip:", "sip:a@b:0", "sip:a@b:x", "sip:a b@c", "sip:@host", "sip:a@<b>"):
        with pytest.raises(UriError):
            parse_uri(bad)


def test_name_addr_forms():
    na = parse_name_addr('"Alice \\"A\\"" <sip:alice@ims.example.net;lr>;tag=88')
    assert na.display == '"Alice \\"A\\""' and na.tag == "88" and na.uri.params["lr"] is None
    spec = parse_name_addr("sip:alice@ims.example.net;tag=1")  # addr-spec: ';tag' is the header's
    assert spec.tag == "1" and "tag" not in spec.uri.params
    assert str(parse_name_addr("Alice <sip:a@b>")) == "Alice <sip:a@b>"
    for bad in ("<sip:a@b", '"unterminated <sip:a@b>', "sip:a@b, sip:c@d", "<sip:a@b>;=x", "<nothing>"):
        with pytest.raises(HeaderError):
            parse_name_addr(bad)
