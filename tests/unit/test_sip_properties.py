"""Property tests of the SIP codec: generated well-formed REGISTERs round-trip and validate clean;
arbitrary or mutated bytes never raise anything but SipParseError from parse() and nothing from
validate() or StreamParser.feed()."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conformance.codec import sip
from conformance.codec.sip_headers import parse_name_addr, parse_via, quote_string
from conformance.codec.sip_uri import SipUri, escape_user, uri_equal

SETTINGS = settings(max_examples=200, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.too_slow])

TOKEN_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-.!%*_+`'~"
tokens = st.text(TOKEN_CHARS, min_size=1, max_size=16)
label = st.from_regex(r"[a-z]([a-z0-9-]{0,8}[a-z0-9])?", fullmatch=True)
hosts = st.one_of(
    st.lists(label, min_size=1, max_size=4).map(".".join),
    st.tuples(*[st.integers(0, 255)] * 4).map(lambda t: ".".join(map(str, t))),
)
ports = st.one_of(st.none(), st.integers(1, 65535))
# Users as an application would give them, escaped for the URI (RFC 3261 25.1 user).
users = st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=12)
# qdtext is any UTF-8 but CR/LF; quote_string escapes '"' and '\'.
displays = st.one_of(st.none(), st.text(st.characters(blacklist_categories=("Cs", "Cc")), max_size=20))


@st.composite
def registers(draw):
    user, host, port = draw(users), draw(hosts), draw(ports)
    aor = SipUri(user=escape_user(user), host=host, port=port)
    display = draw(displays)
    to = (f"{quote_string(display)} " if display is not None else "") + f"<{aor}>"
    transport = draw(st.sampled_from(["UDP", "TCP", "TLS", "WS", "WSS"]))
    contact_host = draw(hosts)
    branch = "z9hG4bK" + draw(tokens)
    cseq, expires = draw(st.integers(0, 2**32 - 1)), draw(st.integers(0, 2**32 - 1))
    body = draw(st.binary(max_size=64))
    headers = sip.Headers([
        ("Via", f"SIP/2.0/{transport} {contact_host};branch={branch}"),
        ("Max-Forwards", str(draw(st.integers(0, 255)))),
        ("To", to),
        ("From", f"{to};tag={draw(tokens)}"),
        ("Call-ID", draw(tokens) + draw(st.sampled_from(["", "@" + contact_host]))),
        ("CSeq", f"{cseq} REGISTER"),
        ("Contact", f"<sip:{draw(tokens)}@{contact_host};transport={transport.lower()}>;expires={expires}"),
    ])
    if draw(st.booleans()):
        headers.add("Supported", ", ".join(draw(st.lists(tokens, min_size=1, max_size=3))))
    if body:
        headers.add("Content-Type", "application/octet-stream")
    msg = sip.Request("REGISTER", str(SipUri(host=host)), headers=headers, body=body)
    return msg, aor, display, branch, cseq


@SETTINGS
@given(registers())
def test_generated_registers_round_trip(case):
    msg, aor, display, branch, cseq = case
    wire = msg.serialize()
    back = sip.parse(wire)
    assert (back.method, back.uri, back.body) == (msg.method, msg.uri, msg.body)
    assert back.headers.items() == msg.headers.items() + [("Content-Length", str(len(msg.body)))]
    assert back.cseq == (cseq, "REGISTER") and back.branch == branch
    to = parse_name_addr(back.headers.get("t"))
    assert uri_equal(to.uri, aor) and to.display == display
    assert parse_via(back.headers.get("Via")).branch == branch
    msg2, violations = sip.validate(wire)
    assert sip.errors(violations) == [], [str(v) for v in violations]
    framed = sip.StreamParser().feed(wire + wire)
    assert framed == [back, back]


def _check_never_crashes(data: bytes) -> None:
    try:
        msg = sip.parse(data)
    except sip.SipParseError:
        msg = None
    validated, violations = sip.validate(data)
    assert all(isinstance(v, sip.Violation) for v in violations)
    assert "internal" not in {v.rule for v in violations}
    assert (validated is None) == (msg is None)
    if msg is not None:
        # Whatever the lenient parser accepted serialises to something it reads back the same.
        assert sip.parse(sip.serialize(msg, content_length=False)) == msg
        sip.message_summary(msg)
        _ = msg.cseq, msg.call_id, msg.branch
    parser = sip.StreamParser(max_size=512)
    for i in range(0, len(data), 97):
        for item in parser.feed(data[i:i + 97]):
            assert isinstance(item, sip.Request | sip.Response | sip.ParseFailure)


@SETTINGS
@given(st.binary(max_size=1500))
def test_arbitrary_bytes(data):
    _check_never_crashes(data)


SEED = (
    b"REGISTER sip:ims.example.net SIP/2.0\r\nVia: SIP/2.0/WSS h.invalid;branch=z9hG4bK1\r\n"
    b"Max-Forwards: 70\r\nTo: \"A\" <sip:a@b>\r\nFrom: <sip:a@b>;tag=1\r\nCall-ID: c\r\nCSeq: 1 REGISTER\r\n"
    b"Contact: <sip:x@h;transport=ws>;+sip.instance=\"<urn:uuid:1>\";expires=600\r\n"
    b"Authorization: Digest username=\"u\", nonce=\"\"\r\nContent-Length: 4\r\n\r\nbody"
)
SPECIAL = st.sampled_from([b"\r\n", b"\n", b" ", b"\t", b":", b";", b",", b'"', b"<", b">", b"\\", b"=",
                           b"%", b"@", b"\x00", b"\xff", b"9" * 30, b"\r\n ", b"SIP/2.0"])


@st.composite
def mutated(draw):
    data = bytearray(SEED)
    for _ in range(draw(st.integers(1, 6))):
        pos = draw(st.integers(0, len(data)))
        op = draw(st.sampled_from(["insert", "replace", "delete"]))
        chunk = draw(st.one_of(SPECIAL, st.binary(min_size=1, max_size=3)))
        if op == "insert":
            data[pos:pos] = chunk
        elif op == "replace":
            data[pos:pos + len(chunk)] = chunk
        else:
            del data[pos:pos + draw(st.integers(1, 8))]
    return bytes(data)


@SETTINGS
@given(mutated())
def test_mutated_messages(data):
    _check_never_crashes(data)
