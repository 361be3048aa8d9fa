"""SIP message codec: Headers, parse/serialize, validate, StreamParser, structured header values."""

from __future__ import annotations

import pytest

from conformance.codec import sip
from conformance.codec.sip_headers import (
    HeaderError,
    format_credentials,
    parse_credentials,
    parse_cseq,
    parse_generic_params,
    parse_name_addr,
    parse_name_addr_list,
    parse_via,
    parse_via_list,
    quotes_balanced,
    split_quoted,
    unquote_string,
)
from conformance.codec.sip_uri import AbsoluteUri, SipUri, TelUri

REGISTER = (
    b"REGISTER sip:ims.example.net SIP/2.0\r\n"
    b"Via: SIP/2.0/WSS df7jal23ls0d.invalid;branch=z9hG4bKnashds7\r\n"
    b"Max-Forwards: 70\r\n"
    b"To: <sip:alice@web.operator.example>\r\n"
    b"From: <sip:alice@web.operator.example>;tag=456248\r\n"
    b"Call-ID: 843817637684230@998sdasdh09\r\n"
    b"CSeq: 1826 REGISTER\r\n"
    b'Contact: <sip:k3l1@df7jal23ls0d.invalid;transport=ws>;+sip.instance="<urn:uuid:f81d4fae-7dec-11d0-a765>"'
    b";reg-id=1;expires=600\r\n"
    b"Supported: path, outbound\r\n"
    b"Authorization: Bearer eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJhIn0.c2ln\r\n"
    b"Content-Length: 0\r\n"
    b"\r\n"
)

OK = (
    b"SIP/2.0 200 OK\r\n"
    b"Via: SIP/2.0/UDP 127.0.0.14;branch=z9hG4bK1, SIP/2.0/WSS x.invalid;branch=z9hG4bK2\r\n"
    b"To: <sip:alice@ims.example.net>;tag=9fxced76sl\r\n"
    b"From: <sip:alice@ims.example.net>;tag=456248\r\n"
    b"Call-ID: 843817637684230@998sdasdh09\r\n"
    b"CSeq: 1826 REGISTER\r\n"
    b"Service-Route: <sip:orig@scscf.ims.example.net;lr>\r\n"
    b'P-Associated-URI: "Alice, A." <sip:alice@ims.example.net>, <tel:+15550100>\r\n'
    b"Content-Type: text/plain\r\n"
    b"Content-Length: 5\r\n"
    b"\r\n"
    b"hello"
)


# ------------------------------------------------------------------------------------------------ Headers


@pytest.mark.parametrize("compact,long", sorted(sip.COMPACT_FORMS.items()))
def test_compact_forms(compact, long):
    h = sip.Headers([(compact, "value-1")])
    assert h.get(long) == "value-1" and h.get(long.upper()) == "value-1" and long in h
    h2 = sip.Headers([(long.title(), "value-2")])
    assert h2.get(compact) == "value-2" and h2.get(compact.upper()) == "value-2"


def test_headers_case_insensitive_and_order_preserved():
    h = sip.Headers([("VIA", "a"), ("max-forwards", "70"), ("v", "b"), ("X-Custom", "1")])
    assert h.get_all("Via") == ["a", "b"] and h.get("MAX-FORWARDS") == "70"
    assert h.get("Missing") is None and h.get("Missing", "d") == "d" and "missing" not in h
    assert h.items() == [("VIA", "a"), ("max-forwards", "70"), ("v", "b"), ("X-Custom", "1")]
    assert len(h) == 4


def test_headers_set_add_insert_remove():
    h = sip.Headers([("Via", "a"), ("To", "t"), ("v", "b"), ("Route", "r")])
    h.set("via", "c")
    assert h.items() == [("via", "c"), ("To", "t"), ("Route", "r")]
    h.set("Path", "<sip:p>")
    assert h.items()[-1] == ("Path", "<sip:p>")
    h.insert(0, "Via", "top")
    assert h.get("Via") == "top" and h.get_all("v") == ["top", "c"]
    h.prepend("Route", "r0")
    assert h.get_all("Route") == ["r0", "r"] and h.items()[3] == ("Route", "r0")
    h.add("Route", "r2")
    assert h.get_all("Route") == ["r0", "r", "r2"]
    assert h.remove("ROUTE") == 3 and "Route" not in h and h.remove("Route") == 0
    copy = h.copy()
    copy.add("X", "y")
    assert "X" not in h and copy != h and h.copy() == h


def test_remove_first_value_of_a_combined_line():
    h = sip.Headers([("Via", "SIP/2.0/UDP a;branch=z9hG4bK1, SIP/2.0/UDP b;branch=z9hG4bK2"), ("Via", "c")])
    assert h.remove_first("Via") == "SIP/2.0/UDP a;branch=z9hG4bK1"
    assert h.get_all("Via") == ["SIP/2.0/UDP b;branch=z9hG4bK2", "c"]
    assert h.remove_first("Via") == "SIP/2.0/UDP b;branch=z9hG4bK2" and h.get_all("Via") == ["c"]
    assert h.remove_first("Route") is None


def test_multi_value_splitting_respects_quotes_and_angle_brackets():
    h = sip.Headers([
        ("Contact", '"Doe, John" <sip:j@a;x="1,2">;q=0.5, <sip:k@b?h=1,2>, sip:l@c'),
        ("Contact", "<sip:m@d>"),
        ("Authorization", 'Digest username="a", realm="b, c", nonce="n"'),
        ("WWW-Authenticate", 'Bearer realm="r", authz_server="https://as"'),
        ("Date", "Sat, 13 Nov 2010 23:29:00 GMT"),
        ("Retry-After", "18000;duration=3600, x"),
        ("X-Unknown", "a, b"),
        ("Warning", '399 host "a, b", 301 other "c"'),
        ("Supported", "path, outbound,,gruu"),
    ])
    assert h.get_all("m") == ['"Doe, John" <sip:j@a;x="1,2">;q=0.5', "<sip:k@b?h=1,2>", "sip:l@c", "<sip:m@d>"]
    assert h.get("Contact") == '"Doe, John" <sip:j@a;x="1,2">;q=0.5'
    assert h.get_lines("Contact")[1] == "<sip:m@d>"
    assert h.get_all("Authorization") == ['Digest username="a", realm="b, c", nonce="n"']
    assert len(h.get_all("WWW-Authenticate")) == 1 and len(h.get_all("Date")) == 1
    assert len(h.get_all("Retry-After")) == 1 and h.get_all("X-Unknown") == ["a, b"]
    assert h.get_all("Warning") == ['399 host "a, b"', '301 other "c"']
    assert h.get_all("k") == ["path", "outbound", "gruu"]


def test_split_quoted_and_quotes():
    assert split_quoted('a,"b,\\"c",d', ",") == ["a", '"b,\\"c"', "d"]
    assert split_quoted("<a,b>,c", ",") == ["<a,b>", "c"]
    assert split_quoted('a,"unterminated, b', ",") == ["a", '"unterminated, b']
    assert quotes_balanced('"a\\"b" c') and not quotes_balanced('"a\\"')
    assert unquote_string('"a\\"b\\\\"') == 'a"b\\' and unquote_string("tok") == "tok"


# ------------------------------------------------------------------------------------------------ parse


def test_parse_register():
    msg = sip.parse(REGISTER)
    assert isinstance(msg, sip.Request) and msg.is_request
    assert (msg.method, msg.uri, msg.version) == ("REGISTER", "sip:ims.example.net", "SIP/2.0")
    assert msg.cseq == (1826, "REGISTER") and msg.call_id == "843817637684230@998sdasdh09"
    assert msg.branch == "z9hG4bKnashds7" and msg.body == b""
    assert sip.message_summary(msg) == "REGISTER sip:ims.example.net"
    assert sip.validate(REGISTER)[1] == []
    assert sip.serialize(msg) == REGISTER and bytes(msg) == REGISTER


def test_parse_response():
    msg = sip.parse(OK)
    assert isinstance(msg, sip.Response) and not msg.is_request
    assert (msg.status, msg.reason, msg.method) == (200, "OK", "REGISTER")
    assert msg.branch == "z9hG4bK1" and msg.body == b"hello"
    assert sip.message_summary(msg) == "200 OK (REGISTER)"
    assert [str(n.uri) for n in parse_name_addr_list(msg.headers.get_lines("P-Associated-URI")[0])] == [
        "sip:alice@ims.example.net", "tel:+15550100"]
    assert sip.validate(OK)[1] == []
    assert msg.serialize() == OK


def test_lenient_line_ends_folding_and_leading_crlf():
    data = (b"\r\n\r\nOPTIONS sip:a@b SIP/2.0\nVia: SIP/2.0/UDP h;branch=z9hG4bKx\nTo: <sip:a@b>\n"
            b"From: <sip:c@d>\n ;tag=1\nCall-ID: x\nCSeq: 1\n\tOPTIONS\nMax-Forwards: 70\n"
            b"Subject: one\n  two\t\n\t three\nContent-Length: 0\n\ntrailing")
    msg = sip.parse(data)
    assert msg.headers.get("From") == "<sip:c@d> ;tag=1" and parse_name_addr(msg.headers.get("f")).tag == "1"
    assert msg.cseq == (1, "OPTIONS") and msg.headers.get("Subject") == "one two three"
    assert msg.body == b""
    _, violations = sip.validate(data)
    assert {v.rule for v in sip.errors(violations)} == {"RFC3261-7 crlf"}
    assert "RFC3261-7.5 leading-crlf" in {v.rule for v in violations}


def test_body_without_content_length_is_the_rest_and_short_body_is_truncated():
    data = REGISTER.replace(b"Content-Length: 0\r\n", b"") + b"abc"
    assert sip.parse(data).body == b"abc"
    short = REGISTER.replace(b"Content-Length: 0", b"Content-Length: 10") + b"abc"
    assert sip.parse(short).body == b"abc"
    assert "RFC3261-18.3 content-length-mismatch" in {v.rule for v in sip.validate(short)[1]}


@pytest.mark.parametrize("data", [
    b"", b"\r\n\r\n", b"garbage", b"INVITE sip:a@b\r\n\r\n", b"HTTP/1.1 200 OK\r\n\r\n",
    b"SIP/2.0 abc OK\r\n\r\n", b"SIP/2.0\r\n\r\n",
])
def test_unparseable(data):
    with pytest.raises(sip.SipParseError) as exc:
        sip.parse(data)
    assert exc.value.violations and isinstance(exc.value, ValueError)
    msg, violations = sip.validate(data)
    assert msg is None and sip.errors(violations)


def test_parse_rejects_str():
    with pytest.raises(TypeError):
        sip.parse("REGISTER sip:a SIP/2.0\r\n\r\n")


def test_serialize_sets_content_length():
    msg = sip.parse(REGISTER)
    msg.body = b"v=0\r\n"
    msg.headers.add("l", "99")  # a second (compact) Content-Length is dropped
    wire = msg.serialize()
    again = sip.parse(wire)
    assert again.headers.get_all("Content-Length") == ["5"] and again.body == b"v=0\r\n"
    assert wire.endswith(b"Content-Length: 5\r\n\r\nv=0\r\n")
    raw = sip.serialize(msg, content_length=False)
    assert b"Content-Length: 0\r\n" in raw and b"l: 99\r\n" in raw
    built = sip.Request("OPTIONS", "sip:b@c", headers=sip.Headers({"Via": "SIP/2.0/UDP h;branch=" + sip.new_branch()}))
    assert built.serialize().endswith(b"Content-Length: 0\r\n\r\n")
    assert sip.Response(180, "Ringing").serialize() == b"SIP/2.0 180 Ringing\r\nContent-Length: 0\r\n\r\n"


def test_utf8_and_invalid_octets_survive_a_round_trip():
    data = REGISTER.replace(b"Supported: path, outbound", b"Subject: caf\xc3\xa9 \xff\xfe")
    msg = sip.parse(data)
    assert msg.headers.get("Subject").startswith("café ")
    assert sip.serialize(msg) == data
    assert "RFC3261-25.1 utf8" in {v.rule for v in sip.validate(data)[1]}


def test_strict_parse():
    assert sip.parse(REGISTER, strict=True).method == "REGISTER"
    with pytest.raises(sip.SipParseError) as exc:
        sip.parse(REGISTER.replace(b"CSeq: 1826 REGISTER", b"CSeq: 1826 INVITE"), strict=True)
    assert [v.rule for v in exc.value.violations] == ["RFC3261-8.1.1.5 cseq-method"]


# ------------------------------------------------------------------------------------------------ validate


def _error_rules(data: bytes, **kw) -> set[str]:
    return {v.rule for v in sip.errors(sip.validate(data, **kw)[1])}


@pytest.mark.parametrize("old,new,rule", [
    (b"REGISTER sip:ims.example.net SIP/2.0", b"REG@STER sip:ims.example.net SIP/2.0",
     {"RFC3261-7.1 method", "RFC3261-8.1.1.5 cseq-method"}),
    (b"Max-Forwards: 70", b"Max-Forwards: 256", "RFC3261-8.1.1.6 max-forwards"),
    (b"Max-Forwards: 70", b"Max-Forwards: seventy", "RFC3261-8.1.1.6 max-forwards"),
    (b"CSeq: 1826 REGISTER", b"CSeq: 4294967296 REGISTER", "RFC3261-8.1.1.5 cseq-range"),
    (b"CSeq: 1826 REGISTER", b"CSeq: REGISTER", "RFC3261-8.1.1.5 cseq-grammar"),
    (b"Content-Length: 0", b"Content-Length: x", "RFC3261-20.14 content-length"),
    (b"Call-ID: 843817637684230@998sdasdh09", b"Call-ID: a b", "RFC3261-20.8 call-id"),
    (b"Max-Forwards: 70\r\n", b"Max-Forwards: 70\r\nBad Name: x\r\n", "RFC3261-7.3 header-name"),
    (b"Max-Forwards: 70\r\n", b"Max-Forwards: 70\r\nno colon here\r\n", "RFC3261-7.3 header-line"),
    (b"Max-Forwards: 70\r\n", b"Max-Forwards: 70\r\nExpires: 4294967296\r\n", "RFC3261-20.19 expires"),
    (b"Max-Forwards: 70\r\n", b"Max-Forwards: 70\r\nDate: Sat, 13 Nov 2010 23:29 GMT\r\n", "RFC3261-20.17 date"),
    (b"Max-Forwards: 70\r\n", b"Max-Forwards: 70\r\nRetry-After: soon\r\n", "RFC3261-20.33 retry-after"),
    (b"Max-Forwards: 70\r\n", b"Max-Forwards: 70\r\nWarning: 399 h unquoted\r\n", "RFC3261-20.43 warning"),
    (b"Max-Forwards: 70\r\n", b"Max-Forwards: 70\r\nContent-Type: sdp\r\n", "RFC3261-20.15 content-type"),
    (b"Max-Forwards: 70\r\n", b"Max-Forwards: 70\r\nRequire: a,,b\r\n", "RFC3261-7.3.1 empty-list-element"),
    (b"Max-Forwards: 70\r\n", b"Max-Forwards: 70\r\nRoute: <sip:p;lr>,,<sip:q>\r\n",
     "RFC3261-7.3.1 empty-list-element"),
    (b"Max-Forwards: 70\r\n", b"Max-Forwards: 70\r\nRecord-Route: <sip:p\r\n", "RFC3261-25.1 name-addr"),
    (b"Max-Forwards: 70\r\n", b"Max-Forwards: 70\r\nRoute: *\r\n", "RFC3261-25.1 name-addr"),
    (b"Max-Forwards: 70\r\n", b'Max-Forwards: 70\r\nAuthorization: Digest realm="x\r\n', "RFC3261-25.1 quote-balance"),
    (b"To: <sip:alice@web.operator.example>", b"To: <sip:alice@web operator>", "RFC3261-25.1 name-addr"),
    (b"To: <sip:alice@web.operator.example>", b"To: sip:alice@web.operator.example?x=1",
     "RFC3261-20.10 addr-spec-reserved"),
    (b";tag=456248", b";tag=", "RFC3261-25.1 generic-param"),
    (b";branch=z9hG4bKnashds7", b";branch=z9hG4bKnashds7;=x", "RFC3261-20.42 via-grammar"),
    (b"SIP/2.0/WSS df7jal23ls0d.invalid", b"SIP/2.0/WSS", "RFC3261-20.42 via-grammar"),
    (b"SIP/2.0/WSS df7jal23ls0d.invalid", b"SIP/2.0/WSS host:99999", "RFC3261-20.42 via-grammar"),
    (b"sip:ims.example.net SIP/2.0", b"sip:ims.example.net:x SIP/2.0", "RFC3261-19.1.1 request-uri"),
    (b"sip:ims.example.net SIP/2.0", b"sip:ims.example.net sip/2.0", None),  # case: a warning only
    (b"Content-Length: 0\r\n", b"Content-Length: 2\r\n", "RFC3261-18.3 content-length-mismatch"),
])
def test_validate_rules(old, new, rule):
    assert old in REGISTER
    data = REGISTER.replace(old, new)
    expected = rule if isinstance(rule, set) else {rule} if rule else set()
    assert _error_rules(data) == expected


def test_validate_body_needs_content_type_and_stream_needs_content_length():
    with_body = REGISTER.replace(b"Content-Length: 0", b"Content-Length: 3") + b"abc"
    assert _error_rules(with_body) == {"RFC3261-20.15 content-type-missing"}
    no_cl = REGISTER.replace(b"Content-Length: 0\r\n", b"")
    assert _error_rules(no_cl) == set() and _error_rules(no_cl, stream=True) == {"RFC3261-18.3 content-length-stream"}


def test_validate_response_rules():
    assert _error_rules(OK.replace(b"200 OK", b"099 Early")) == {"RFC3261-7.2 status-code"}
    assert _error_rules(OK.replace(b"200 OK", b"2000 OK")) == {"RFC3261-7.2 status-code"}
    assert _error_rules(OK.replace(b"200 OK", b"200")) == {"RFC3261-7.2 status-line"}
    no_via = OK.replace(b"Via: SIP/2.0/UDP 127.0.0.14;branch=z9hG4bK1, SIP/2.0/WSS x.invalid;branch=z9hG4bK2\r\n", b"")
    assert _error_rules(no_via) == {"RFC3261-8.1.1 mandatory-header"}
    # Responses need no Max-Forwards, and their top Via branch is the requester's business.
    assert sip.validate(OK)[1] == []


def test_violation_fields():
    _, violations = sip.validate(REGISTER.replace(b"Max-Forwards: 70", b"Max-Forwards: 300"))
    (v,) = violations
    assert (v.rule, v.line, v.severity) == ("RFC3261-8.1.1.6 max-forwards", 3, "error")
    assert "300" in v.message and str(v).startswith("error: RFC3261-8.1.1.6 max-forwards")


def test_validate_never_raises_on_hostile_values():
    huge = b"9" * 6000  # beyond Python's int() digit limit
    data = REGISTER.replace(b"CSeq: 1826", b"CSeq: " + huge).replace(b"Content-Length: 0", b"Content-Length: " + huge)
    msg, violations = sip.validate(data)
    assert msg is not None and "internal" not in {v.rule for v in violations}
    assert {"RFC3261-8.1.1.5 cseq-range", "RFC3261-18.3 content-length-mismatch"} <= {v.rule for v in violations}
    assert sip.parse(b"SIP/2.0 " + huge + b" x\r\n\r\n").status > 699


# ------------------------------------------------------------------------------------------------ StreamParser


def test_stream_split_at_every_byte_boundary():
    stream = REGISTER + b"\r\n\r\n" + OK  # with a RFC 5626 CRLFCRLF keep-alive in between
    for cut in range(1, len(stream)):
        parser = sip.StreamParser()
        got = parser.feed(stream[:cut]) + parser.feed(stream[cut:])
        assert [sip.message_summary(m) for m in got] == ["REGISTER sip:ims.example.net", "200 OK (REGISTER)"], cut
        assert got[1].body == b"hello" and parser.buffered == 0


def test_stream_byte_by_byte_and_two_in_one_chunk():
    parser = sip.StreamParser()
    got = []
    for i in range(len(OK)):
        got += parser.feed(OK[i:i + 1])
    assert len(got) == 1 and got[0].body == b"hello"
    both = parser.feed(OK + REGISTER + b"\r\n")
    assert [type(m) for m in both] == [sip.Response, sip.Request] and parser.keepalives == 1


def test_stream_oversize_is_skipped_and_framing_kept():
    parser = sip.StreamParser(max_size=600)
    big = OK.replace(b"Content-Length: 5\r\n\r\nhello", b"Content-Length: 900\r\n\r\n" + b"x" * 900)
    got = parser.feed(big[:200]) + parser.feed(big[200:] + REGISTER)
    assert isinstance(got[0], sip.ParseFailure) and "exceeds" in got[0].reason
    assert isinstance(got[1], sip.Request) and len(got) == 2


def test_stream_endless_header_section_is_bounded():
    parser = sip.StreamParser(max_size=1000)
    got = parser.feed(b"INVITE sip:a@b SIP/2.0\r\n" + b"X: y\r\n" * 300)
    assert len(got) == 1 and isinstance(got[0], sip.ParseFailure) and parser.buffered == 0


def test_stream_missing_or_conflicting_content_length():
    parser = sip.StreamParser()
    got = parser.feed(REGISTER.replace(b"Content-Length: 0\r\n", b"") + OK)
    assert isinstance(got[0], sip.ParseFailure) and "Content-Length" in got[0].reason
    assert got[0].raw.startswith(b"REGISTER ") and isinstance(got[1], sip.Response)  # framing resumes
    folded = parser.feed(OK.replace(b"Content-Length: 5", b"Content-Length:\r\n 5"))
    assert folded[0].body == b"hello"
    got = parser.feed(REGISTER.replace(b"Content-Length: 0\r\n", b"Content-Length: 0\r\nl: 4\r\n"))
    assert isinstance(got[0], sip.ParseFailure)
    assert parser.feed(REGISTER)[0].method == "REGISTER"  # recovers on the next clean message


def test_stream_unparseable_start_line():
    got = sip.StreamParser().feed(b"HELLO\r\nContent-Length: 0\r\n\r\n" + REGISTER)
    assert isinstance(got[0], sip.ParseFailure) and got[1].method == "REGISTER"


# ------------------------------------------------------------------------------------------------ helpers


def test_identifiers():
    branches = {sip.new_branch() for _ in range(100)}
    assert len(branches) == 100 and all(b.startswith("z9hG4bK") and len(b) > 16 for b in branches)
    assert len({sip.new_tag() for _ in range(100)}) == 100
    assert sip.new_call_id("h.example").endswith("@h.example") and "@" not in sip.new_call_id()


def test_make_response():
    req = sip.parse(REGISTER)
    resp = sip.make_response(req, 401, to_tag="abc")
    assert (resp.status, resp.reason) == (401, "Unauthorized")
    assert [n for n, _ in resp.headers.items()] == ["Via", "To", "From", "Call-ID", "CSeq"]
    assert parse_name_addr(resp.headers.get("To")).tag == "abc"
    assert resp.cseq == req.cseq and resp.branch == req.branch
    assert sip.validate(resp.serialize())[1] == []


def test_canonical_name():
    assert sip.canonical_name("v") == "Via" and sip.canonical_name("call-id") == "Call-ID"
    assert sip.canonical_name("p-associated-uri") == "P-Associated-Uri" and sip.canonical_name("CSEQ") == "CSeq"


# ------------------------------------------------------------------------------------------------ sip_headers


def test_name_addr_forms():
    na = parse_name_addr('"Alice \\"A\\"" <sip:alice@atlanta.com;transport=tcp>;tag=1;q=0.7')
    assert na.display == 'Alice "A"' and isinstance(na.uri, SipUri) and na.uri.params["transport"] == "tcp"
    assert na.tag == "1" and na.params["q"] == "0.7"
    spec = parse_name_addr("sip:alice@atlanta.com;transport=tcp;tag=1")  # RFC 3261 20.10: params go to header
    assert not spec.uri.params and dict(spec.params) == {"transport": "tcp", "tag": "1"}
    assert parse_name_addr("Alice Liddell<tel:+1-555>").display == "Alice Liddell"
    assert isinstance(parse_name_addr("<tel:+1-555>").uri, TelUri)
    assert isinstance(parse_name_addr("<urn:service:sos>").uri, AbsoluteUri)
    inst = parse_name_addr('sip:a@b;+sip.instance="<urn:uuid:1>";expires=600')
    assert inst.params["+sip.instance"] == '"<urn:uuid:1>"' and inst.expires == 600
    assert parse_name_addr("*").is_wildcard and str(parse_name_addr("*")) == "*"


@pytest.mark.parametrize("text", [
    '"Alice" <sip:alice@atlanta.com>;tag=1',
    "sip:vivekg@chair-dnrc.example.com ;   tag    = 1918181833n",
    '<sip:k@h;transport=ws>;+sip.instance="<urn:uuid:x>";reg-id=1;expires=600',
    "  caller<sip:caller@example.com>;tag=323",
])
def test_name_addr_round_trip(text):
    assert str(parse_name_addr(text)) == text.strip()


def test_name_addr_rebuild_after_change():
    na = parse_name_addr("sip:alice@atlanta.com;tag=1")
    na.params["tag"] = "2"
    assert str(na) == "<sip:alice@atlanta.com>;tag=2"
    na.display = 'Al "the" Ice'
    na.uri.user = "bob"
    assert str(na) == '"Al \\"the\\" Ice" <sip:bob@atlanta.com>;tag=2'


@pytest.mark.parametrize("bad", [
    "", '"unterminated <sip:a@b>', "<sip:a@b", "<sip:a@b> junk", '"x" sip:a@b', "<notauri>",
    "<sip:a@b>;=v", '<sip:a@b>;x="open',
])
def test_name_addr_errors(bad):
    with pytest.raises(HeaderError):
        parse_name_addr(bad)


def test_name_addr_list():
    items = parse_name_addr_list('<sip:a@x>;expires=0, "B, b" <sip:b@y>,sip:c@z;q=1')
    assert [str(i.uri) for i in items] == ["sip:a@x", "sip:b@y", "sip:c@z"] and items[1].display == "B, b"
    assert parse_name_addr_list("*")[0].is_wildcard


def test_via():
    via = parse_via("SIP/2.0/udp 192.0.2.1:5060;branch=z9hG4bK776;received=10.0.0.1;rport")
    assert (via.protocol, via.transport, via.host, via.port, via.branch) == ("SIP/2.0", "UDP", "192.0.2.1", 5060,
                                                                           "z9hG4bK776")
    assert via.received == "10.0.0.1" and via.rport is None and "rport" in via.params
    assert via.sent_by == "192.0.2.1:5060"
    assert str(via) == "SIP/2.0/udp 192.0.2.1:5060;branch=z9hG4bK776;received=10.0.0.1;rport"
    via.params["rport"] = "5060"
    assert str(via) == "SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK776;received=10.0.0.1;rport=5060"
    v6 = parse_via("SIP / 2.0 / TCP [2001:db8::9] : 5070 ; branch = z9hG4bK1")
    assert (v6.host, v6.port, v6.branch) == ("[2001:db8::9]", 5070, "z9hG4bK1")
    assert [v.host for v in parse_via_list("SIP/2.0/UDP a, SIP/2.0/TCP b;branch=z9hG4bKx")] == ["a", "b"]
    for bad in ("SIP/2.0 host", "SIP/2.0/UDP", "SIP/2.0/UDP host:x", "SIP/2.0/UDP a b c:1", "SIP/2.0/UDP [::1"):
        with pytest.raises(HeaderError):
            parse_via(bad)


def test_credentials_bearer_both_syntaxes():
    rfc8898 = parse_credentials("Bearer eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJhIn0.c2ln-_~+/==")
    assert rfc8898.scheme == "Bearer" and rfc8898.token68 == "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJhIn0.c2ln-_~+/=="
    assert not rfc8898.params and str(rfc8898) == "Bearer eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJhIn0.c2ln-_~+/=="
    ts24371 = parse_credentials('Bearer access_token="abc.def"')
    assert ts24371.token68 is None and ts24371.params["access_token"] == "abc.def"
    assert ts24371.raw_params["access_token"] == '"abc.def"'
    challenge = parse_credentials('Bearer realm="ims.example.net", authz_server="https://127.0.0.12:9443"')
    assert challenge.params["authz_server"] == "https://127.0.0.12:9443" and challenge.get("REALM") == "ims.example.net"


def test_credentials_digest():
    value = ('Digest username="alice@ims.example.net", realm="ims.example.net", uri="sip:ims.example.net", '
             'nonce="", response="", algorithm=MD5, nc=00000001, qop=auth, integrity-protected="auth-done", '
             'opaque="a\\"b,c"')
    cred = parse_credentials(value)
    assert cred.scheme == "Digest" and cred.params["username"] == "alice@ims.example.net"
    assert cred.params["nonce"] == "" and cred.params["algorithm"] == "MD5" and cred.params["nc"] == "00000001"
    assert cred.params["integrity-protected"] == "auth-done" and cred.params["opaque"] == 'a"b,c'
    assert cred.raw_params["algorithm"] == "MD5" and cred.raw_params["nonce"] == '""'
    assert str(cred) == value
    assert parse_credentials("Digest").params == {}
    assert parse_credentials("Digest realm").token68 == "realm"  # RFC 7235 token68, not garbage
    for bad in ("", "Dig\x01est x", 'Digest realm="x" y', "Digest realm=x y", 'Digest realm="x'):
        with pytest.raises(HeaderError):
            parse_credentials(bad)


def test_format_credentials():
    params = {"username": "alice", "realm": "r", "nonce": "", "uri": "sip:r", "response": "", "algorithm": "MD5"}
    text = format_credentials("Digest", params)
    assert text == 'Digest username="alice", realm="r", nonce="", uri="sip:r", response="", algorithm=MD5'
    assert parse_credentials(text).params == params
    assert format_credentials("Digest", {"qop": "auth", "nc": "00000001", "cnonce": 'x"y'}, quote={"CNONCE"}) == (
        'Digest qop=auth, nc=00000001, cnonce="x\\"y"')
    assert format_credentials("Bearer", token68="abc") == "Bearer abc"
    assert format_credentials("Bearer", {"access_token": "abc"}) == 'Bearer access_token="abc"'


def test_cseq_and_generic_params():
    assert parse_cseq("0009 INVITE") == (9, "INVITE") and parse_cseq(" 1\tACK ") == (1, "ACK")
    for bad in ("", "INVITE", "1", "-1 INVITE", "1 INVITE x"):
        with pytest.raises(HeaderError):
            parse_cseq(bad)
    params = parse_generic_params(';lr;Transport=TCP; q = 0.5 ;x="a;b"')
    assert list(params.items()) == [("lr", None), ("Transport", "TCP"), ("q", "0.5"), ("x", '"a;b"')]
    assert params["transport"] == "TCP"


def test_header_end_fast_path_finds_what_the_regex_finds():
    """The bytes.find fast path for the end of the header section returns the regex's first match
    for every string of up to 8 octets over the alphabet that matters (CR, LF, other)."""
    import itertools

    from conformance.codec.sip import _HEADER_END, _header_end

    for n in range(9):
        for octets in itertools.product((b"a", b"\r", b"\n"), repeat=n):
            data = b"".join(octets)
            for start in (0, 1):
                m = _HEADER_END.search(data, start)
                assert _header_end(data, start) == ((m.start(), m.end()) if m else None), (data, start)
