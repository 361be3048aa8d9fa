"""Matchers: subjects, operators, identity mapping, verdict rules, save and diffs."""

from __future__ import annotations

import json

import pytest
from joserfc import jws
from joserfc.jwk import ECKey

from conformance.codec import jwt as jwt_codec
from conformance.codec import sip
from conformance.events import Garbage, HttpExchange, Nothing, SipReceived, WsClosed, WsHandshake
from conformance.match import MISSING, MalformedExpectation, MatchContext, SaveError, check, save
from conformance.match.diff import message_lines, unified_diff
from conformance.match.operators import apply, count_holds
from conformance.match.subjects import json_path, parse_set_cookie
from conformance.verdicts import Verdict

IDENTITIES = {
    "alice@web.operator.example": {"impi": "alice@ims.example.net",
                                   "impus": ["sip:alice@ims.example.net", "tel:+15550100"]},
    "bob@web.operator.example": {"impi": "bob@ims.example.net", "impus": ["sip:bob@ims.example.net"]},
}

FORWARDED_REGISTER = (
    b"REGISTER sip:ims.example.net SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP wsf.operator.example;branch=z9hG4bKwsf1\r\n"
    b"v: SIP/2.0/WSS df7jal23ls0d.invalid;branch=z9hG4bKue1;received=127.0.0.1\r\n"
    b"Max-Forwards: 69\r\n"
    b"To: <sip:alice@ims.example.net>\r\n"
    b"From: \"Alice\" <sip:alice@ims.example.net>;tag=f1\r\n"
    b"Call-ID: c1\r\nCSeq: 1 REGISTER\r\n"
    b"Contact: <sip:x7@df7jal23ls0d.invalid;transport=ws>;+sip.instance=\"<urn:uuid:1>\";reg-id=1;expires=600\r\n"
    b"Path: <sip:flow1@wsf.operator.example;lr;ob>\r\n"
    b"Authorization: Digest username=\"alice@ims.example.net\", realm=\"ims.example.net\", uri=\"sip:ims.example.net\", "
    b"nonce=\"\", response=\"\", integrity-protected=\"auth-done\"\r\n"
    b"P-Charging-Vector: icid-value=abc123;orig-ioi=visited\r\n"
    b"Content-Length: 0\r\n\r\n"
)

CHALLENGE = (
    b"SIP/2.0 401 Unauthorized\r\n"
    b"Via: SIP/2.0/WSS df7jal23ls0d.invalid;branch=z9hG4bKue1\r\n"
    b"To: <sip:alice@web.operator.example>;tag=t9\r\nFrom: <sip:alice@web.operator.example>;tag=f1\r\n"
    b"Call-ID: c1\r\nCSeq: 1 REGISTER\r\n"
    b"WWW-Authenticate: Bearer realm=\"ims.example.net\", authz_server=\"https://127.0.0.12:9443\"\r\n"
    b"Content-Length: 0\r\n\r\n"
)


def _sip(raw: bytes) -> SipReceived:
    return SipReceived(message=sip.parse(raw), raw=raw, transport="udp")


@pytest.fixture
def ctx() -> MatchContext:
    return MatchContext(identities=IDENTITIES)


def _one(item, received, ctx):
    (finding,) = check([item], received, ctx)
    return finding


def _verdicts(items, received, ctx):
    return [f.verdict for f in check(items, received, ctx)]


P, F, E, INC = Verdict.PASS, Verdict.FAIL, Verdict.ERROR, Verdict.INCONCLUSIVE


# -- SIP subjects ---------------------------------------------------------------------------------

def test_sip_header_params_uri_params_and_compact_forms(ctx):
    reg = _sip(FORWARDED_REGISTER)
    items = [
        {"method": "REGISTER"},
        {"request_uri": "sip:IMS.EXAMPLE.NET"},  # shorthand uri_equals: host is case-insensitive
        {"header": "From", "param": "tag", "equals": "f1"},
        {"header": "f", "param": "tag", "equals": "f1"},  # compact form
        {"header": "Via", "index": 1, "param": "received", "equals": "127.0.0.1"},
        {"header": "Via", "index": -1, "param": "branch", "equals": "z9hG4bKue1"},
        {"header": "Via", "index": "all", "param": "branch", "starts_with": "z9hG4bK"},
        {"header": "Via", "count": 2},
        {"header": "Path", "uri_param": "ob", "present": True},
        {"header": "Path", "uri_param": "lr", "equals": ""},  # flag parameter
        {"header": "Contact", "param": "+sip.instance", "equals": "<urn:uuid:1>"},
        {"header": "Contact", "uri_param": "transport", "equals": "ws"},
        {"header": "Contact", "param": "expires", "less_than": 601},
        {"header": "Authorization", "param": "integrity-protected", "equals": "auth-done"},
        {"header": "Authorization", "param": "username", "is_impi_of": "alice@web.operator.example"},
        {"header": "Authorization", "not_contains": "Bearer"},
        {"header": "P-Charging-Vector", "param": "icid-value", "regex": "^[0-9a-z]+$"},
        {"header": "Max-Forwards", "equals": 69},  # text "69" equals the YAML integer
        {"header": "To", "is_default_impu_of": "alice@web.operator.example"},
        {"header": "From", "uri_equals": "<sip:alice@ims.example.net>"},
        {"header": "Supported", "absent": True},
        {"header": "Authorization", "param": "nonce", "equals": ""},
    ]
    findings = check(items, reg, ctx)
    assert [f.verdict for f in findings] == [P] * len(items), [f.describe() for f in findings if not f.ok]


def test_uri_params_of_a_request_uri_and_of_an_addr_spec_header(ctx):
    raw = FORWARDED_REGISTER.replace(b"REGISTER sip:ims.example.net SIP", b"REGISTER sip:ims.example.net;transport=tcp SIP")
    raw = raw.replace(b"To: <sip:alice@ims.example.net>", b"To: sip:alice@ims.example.net;tag=t7")
    assert _verdicts([
        {"request_uri": None, "uri_param": "transport", "equals": "tcp"},
        {"header": "To", "param": "tag", "equals": "t7"},  # without <>, ;tag belongs to the header
        {"header": "To", "uri_param": "tag", "absent": True},
    ], _sip(raw), ctx) == [P, P, P]


def test_sip_mismatches_fail_with_evidence(ctx):
    reg = _sip(FORWARDED_REGISTER)
    f = _one({"header": "To", "is_default_impu_of": "bob@web.operator.example"}, reg, ctx)
    assert f.verdict == F and "sip:bob@ims.example.net" in f.expected and "alice" in f.actual
    f = _one({"header": "Path", "uri_param": "ob", "absent": True, "ref": "RFC 5626 5.1"}, reg, ctx)
    assert (f.verdict, f.ref, f.actual) == (F, "RFC 5626 5.1", '""')
    f = _one({"header": "Via", "index": 5, "present": True}, reg, ctx)
    assert f.verdict == F and f.actual == "(absent)"
    assert _one({"header": "To", "uri_equals": "sip:ALICE@ims.example.net"}, reg, ctx).verdict == F  # user part


def test_index_all_needs_every_value(ctx):
    reg = _sip(FORWARDED_REGISTER)
    assert _one({"header": "Via", "index": "all", "param": "received", "present": True}, reg, ctx).verdict == F
    assert _one({"header": "Route", "index": "all", "contains": "x"}, reg, ctx).verdict == F  # none at all
    assert _one({"header": "Route", "index": "all", "absent": True}, reg, ctx).verdict == P


def test_response_subjects(ctx):
    resp = _sip(CHALLENGE)
    assert _verdicts([
        {"status": 401},
        {"status": [401, 407]},
        {"status": 200},
        {"header": "WWW-Authenticate", "param": "realm", "equals": "ims.example.net"},
        {"header": "WWW-Authenticate", "starts_with": "Bearer "},
        {"method": "REGISTER"},  # a response has no method of its own
    ], resp, ctx) == [P, P, F, P, P, F]


def test_a_close_or_garbage_fails_and_silence_is_inconclusive(ctx):
    # reachable but misbehaving (a close, bytes that are no message): fail, with what arrived
    for received in (WsClosed(1002, "protocol error"), Garbage(b"hello", "not SIP")):
        findings = check([{"status": 401}, {"header": "To", "absent": True}], received, ctx)
        assert [f.verdict for f in findings] == [F, F]
    # silent where an answer was required: nothing observed (format.md "Verdicts")
    findings = check([{"status": 401}, {"header": "To", "absent": True}], Nothing(waited_ms=500), ctx)
    assert [f.verdict for f in findings] == [Verdict.INCONCLUSIVE] * 2
    assert "500 ms" in _one({"status": 401}, Nothing(waited_ms=500), ctx).actual
    assert "1002" in _one({"status": 401}, WsClosed(1002), ctx).actual
    assert "hello" in _one({"status": 401}, Garbage(b"hello", "not SIP"), ctx).actual


def test_a_request_a_live_node_must_send_and_does_not_fails(ctx):
    # a NOTIFY the node must send on its own: silence of a node alive on the connection is a fail,
    # silence of a node never heard stays inconclusive, and silence where an answer was due too
    alive = Nothing(waited_ms=500, peer_alive=True, awaited_request=True)
    assert _one({"method": "NOTIFY"}, alive, ctx).verdict == F
    assert "did not send" in _one({"method": "NOTIFY"}, alive, ctx).actual
    unknown = Nothing(waited_ms=500, peer_alive=None, awaited_request=True)
    assert _one({"method": "NOTIFY"}, unknown, ctx).verdict == Verdict.INCONCLUSIVE
    assert _one({"status": 200}, Nothing(waited_ms=500, peer_alive=True), ctx).verdict == Verdict.INCONCLUSIVE


def test_nothing_and_ws_closed(ctx):
    reg = _sip(FORWARDED_REGISTER)
    assert _one({"nothing": True}, Nothing(waited_ms=100), ctx).verdict == P
    # silence of a node never heard on the connection proves nothing (it may be down)
    assert _one({"nothing": True}, Nothing(waited_ms=100, peer_alive=False), ctx).verdict == Verdict.INCONCLUSIVE
    assert _one({"nothing": True}, Nothing(waited_ms=100, peer_alive=True), ctx).verdict == P
    f = _one({"nothing": True, "ref": "BINDING step 17"}, reg, ctx)
    assert f.verdict == F and f.actual.startswith("REGISTER sip:ims.example.net")
    assert _one({"nothing": False}, reg, ctx).verdict == P
    assert _verdicts([{"ws_closed": True}, {"ws_closed": 1002}, {"ws_closed": [1002, 1007]},
                      {"ws_closed": True, "one_of": [1000]}], WsClosed(1002), ctx) == [P, P, P, F]
    assert _one({"ws_closed": True}, Nothing(waited_ms=10), ctx).verdict == F
    assert _one({"ws_closed": False}, Nothing(waited_ms=10), ctx).verdict == P
    assert _one({"ws_closed": True}, WsClosed(None), ctx).verdict == P  # TCP closed, no close frame
    assert _one({"ws_closed": 1000}, WsClosed(None), ctx).verdict == F


# -- HTTP subjects --------------------------------------------------------------------------------

def _redirect() -> HttpExchange:
    return HttpExchange(
        method="POST", url="https://127.0.0.12:9443/authorize", status=302, reason="Found",
        headers=[("Location", "https://127.0.0.11:8443/oauth/callback?code=abc&state=s1&iss=https%3A%2F%2Fas#access_token=leak"),
                 ("Set-Cookie", "sid=1; Path=/; Secure; HttpOnly; SameSite=Lax"),
                 ("Set-Cookie", "pref=x; Max-Age=60"),
                 ("Cache-Control", "no-store"),
                 ("Content-Type", "text/html; charset=utf-8")],
        body=b"",
    )


def test_http_headers_query_fragment_cookies(ctx):
    r = _redirect()
    items = [
        {"status": [302, 303]},
        {"header": "location", "query": "code", "equals": "abc"},
        {"header": "Location", "query": "iss", "equals": "https://as"},
        {"header": "Location", "query": "access_token", "absent": True},
        {"header": "Location", "fragment": "access_token", "absent": True},  # the leak is in the fragment
        {"header": "Set-Cookie", "count": 2},
        {"cookie": "sid", "attribute": "HttpOnly"},
        {"cookie": "sid", "attribute": "samesite", "equals": "Lax"},
        {"cookie": "pref", "attribute": "Secure", "absent": True},
        {"cookie": "sid", "equals": "1"},
        {"cookie": "nope", "absent": True},
        {"header": "Content-Type", "param": "charset", "equals": "utf-8"},
        {"body": None, "absent": True},
    ]
    assert _verdicts(items, r, ctx) == [P, P, P, P, F, P, P, P, P, P, P, P, P]


def test_json_subject(ctx):
    body = {"access_token": "t", "token_type": "Bearer", "expires_in": 300, "impu": ["sip:a@x", "tel:+1"],
            "nested": {"list": [{"k": "v"}]}, "active": True}
    r = HttpExchange("POST", "https://as/token", status=200, body=json.dumps(body).encode())
    assert _verdicts([
        {"json": "$.token_type", "equals": "Bearer"},
        {"json": "$.expires_in", "greater_than": 0},
        {"json": "$.nested.list[0].k", "equals": "v"},
        {"json": "$['token_type']", "one_of": ["Bearer", "bearer"]},
        {"json": "$.impu", "count": 2},
        {"json": "$.impu", "contains": "tel:+1"},
        {"json": "$.impu", "index": 0, "uri_equals": "sip:a@x"},
        {"json": "$.active", "equals": True},
        {"json": "$.active", "equals": "true"},  # a JSON boolean is not the string "true"
        {"json": "$.refresh_token", "absent": True},
        {"json": "access_token"},  # bare name and no operator: present
    ], r, ctx) == [P, P, P, P, P, P, P, P, F, P, P]
    not_json = HttpExchange("GET", "https://as/x", status=500, body=b"<html>oops</html>")
    f = _one({"json": "$.error", "equals": "invalid_request"}, not_json, ctx)
    assert f.verdict == F and "not JSON" in f.message


def test_json_path_subset():
    doc = {"a": {"b": [1, {"c": None}]}}
    assert json_path(doc, "$.a.b[1].c") is None
    assert json_path(doc, "$.a.b[-1]") == {"c": None}
    assert json_path(doc, "$.a.x") is MISSING
    assert json_path(doc, "$.a.b[5]") is MISSING
    with pytest.raises(MalformedExpectation):
        json_path(doc, "$.a[")


def test_html_form_subject(ctx):
    page = (b'<form id="consent" action="/authorize" method="post"><input type="hidden" name="tx" value="t1">'
            b'<input name="web_id"></form>')
    r = HttpExchange("GET", "https://as/authorize", status=200, body=page)
    assert _verdicts([
        {"html_form": "#consent", "field": "tx", "equals": "t1"},
        {"html_form": "#consent", "field": "web_id", "equals": ""},
        {"html_form": "#consent", "field": "password", "absent": True},
        {"html_form": "#consent", "equals": "/authorize"},  # no field: the action
        {"html_form": "#other", "present": True},
    ], r, ctx) == [P, P, P, P, F]


def test_websocket_handshake_subjects(ctx):
    hs = WsHandshake("wss://127.0.0.13:7443/sip", 101, headers=[("Sec-WebSocket-Protocol", "sip")], subprotocol="sip")
    assert _verdicts([{"status": 101}, {"subprotocol": "sip"}, {"header": "Sec-WebSocket-Protocol", "equals": "sip"},
                      {"subprotocol": None}], hs, ctx) == [P, P, P, F]
    refused = WsHandshake("wss://x/sip", 403, body=b"forbidden")
    assert _verdicts([{"status": 403}, {"subprotocol": None}, {"body": True, "contains": "forbidden"}], refused, ctx) == [P, P, P]


# -- JWT subjects ---------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def signed():
    key = ECKey.generate_key("P-256", auto_kid=True)
    claims = {"iss": "https://as", "aud": ["wsf.operator.example"], "exp": 2_000_000_000, "sub": "alice"}
    token = jws.serialize_compact({"alg": "ES256", "typ": "at+jwt", "kid": key.kid}, json.dumps(claims), key)
    return token, {"keys": [key.as_dict(private=False)]}


def test_jwt_claims_header_and_signature(signed):
    token, jwks = signed
    ctx = MatchContext(jwks_provider=lambda: jwks)
    body = HttpExchange("POST", "https://as/token", status=200, body=json.dumps({"access_token": token}).encode())
    assert _verdicts([
        {"jwt": token, "claim": "aud", "contains": "wsf.operator.example"},
        {"jwt": token, "claim": "exp", "greater_than": 1_900_000_000},
        {"jwt": token, "jwt_header": "typ", "equals": "at+jwt"},
        {"jwt": token, "jwt_header": "alg", "not_equals": "none"},
        {"jwt": token, "signature": "valid"},
        {"jwt": jwt_codec.forge(token, alg="none"), "signature": "valid"},
        {"jwt": jwt_codec.forge(token, alg="none"), "signature": "invalid"},
        {"jwt": {"json": "$.access_token"}, "claim": "sub", "equals": "alice"},  # token read from the body
        {"jwt": "opaque-token", "claim": "sub", "absent": True},  # not a JWT: fail, whatever the operator
    ], body, ctx) == [P, P, P, P, P, F, P, P, F]


def test_unreachable_jwks_is_inconclusive(signed):
    token, _ = signed

    def broken():
        raise ConnectionError("AS down")

    f = _one({"jwt": token, "signature": "valid"}, Nothing(0), MatchContext(jwks_provider=broken))
    assert f.verdict == INC and "AS down" in f.actual


def test_jwks_is_fetched_once(signed):
    token, jwks = signed
    calls = []
    ctx = MatchContext(jwks_provider=lambda: calls.append(1) or jwks)
    check([{"jwt": token, "signature": "valid"}] * 3, Nothing(0), ctx)
    assert calls == [1]


# -- verdict rules, marks, malformed items --------------------------------------------------------------

class _Marked(dict):
    mark = (42, 7)


def test_all_items_are_checked_and_lines_come_from_marks(ctx):
    items = [_Marked(status=200), _Marked(header="To", absent=True), _Marked(method="REGISTER")]
    findings = check(items, _sip(CHALLENGE), ctx)
    assert [f.verdict for f in findings] == [F, F, F]
    assert {f.line for f in findings} == {42}


@pytest.mark.parametrize("item", [
    {"header": "To", "frobnicates": 1},  # unknown key
    {"header": "To", "equals": "a", "contains": "b"},  # two operators
    {"header": "To", "regex": "("},  # bad regex
    {"status": 200, "header": "To"},  # two subjects
    {"equals": 1},  # no subject
    {"header": "To", "is_impu_of": "nobody@web.example"},  # unknown Web ID
    {"header": "To", "index": "first"},
    {"header": "Expires", "less_than": "soon"},
    {"header": "To", "count": "two"},
    {"subprotocol": "sip"},  # only for a WebSocket handshake
    {"status": 200, "param": "x"},  # status has no parameters
    {"header": "To", "param": "tag", "uri_param": "lr", "present": True},
    {"cookie": "sid", "claim": "aud"},
    "status: 200",
])
def test_malformed_expectations_are_errors(item, ctx):
    f = _one(item, _sip(FORWARDED_REGISTER), ctx)
    assert f.verdict == E, f.describe()


def test_malformed_is_an_error_even_when_nothing_arrived(ctx):
    assert _one({"header": "To", "regex": "("}, Nothing(10), ctx).verdict == E
    assert _one({"header": "To", "is_impu_of": "nobody"}, Nothing(10), ctx).verdict == E


def test_capture_unavailable_and_unobserved_are_inconclusive():
    ctx = MatchContext(identities=IDENTITIES, capture_available=False)
    assert _one({"status": 200}, _sip(CHALLENGE), ctx).verdict == INC
    assert _one({"status": 200}, None, MatchContext()).verdict == INC


def test_ref_and_note_are_carried(ctx):
    f = _one({"status": 200, "ref": "RFC 8898 2.2", "note": "must challenge"}, _sip(CHALLENGE), ctx)
    assert f.ref == "RFC 8898 2.2" and "must challenge" in f.message
    assert "RFC 8898 2.2" in f.describe()


# -- operators ------------------------------------------------------------------------------------

def test_operator_semantics_on_missing_values():
    assert apply("absent", MISSING, True) and not apply("present", MISSING, True)
    assert apply("not_contains", MISSING, "x") and apply("not_equals", MISSING, "x")
    assert not apply("equals", MISSING, None) and not apply("regex", MISSING, ".*")
    assert apply("present", MISSING, False) and apply("absent", "v", False)
    assert apply("equals", None, None)  # a JSON null is present


def test_operator_coercions():
    assert apply("equals", "600", 600) and apply("less_than", "5", 6) and not apply("less_than", "x", 6)
    assert not apply("equals", 1, True) and not apply("equals", "1", True)
    assert apply("contains", ["a", "b"], "b") and apply("contains", {"k": 1}, "k")
    assert apply("regex", {"a": 1}, '"a"')
    assert count_holds(3, {"greater_than": 2}) == (True, "count greater_than 2")
    with pytest.raises(MalformedExpectation):
        apply("between", 1, 2)


def test_set_cookie_parsing_follows_rfc6265():
    c = parse_set_cookie('sid="a b"; Path=/; HttpOnly;Secure; max-age=1; Max-Age=2')
    assert (c.name, c.value) == ("sid", '"a b"')
    assert c.attribute("httponly") == "" and c.attribute("MAX-AGE") == "2"
    assert c.attribute("Domain") is MISSING
    assert parse_set_cookie("no-equals-sign") is None and parse_set_cookie("=v") is None


# -- save -----------------------------------------------------------------------------------------

def test_save_selectors(ctx):
    r = HttpExchange("POST", "https://as/token", status=200,
                     headers=[("Location", "https://x/cb?code=c1&state=s")],
                     body=json.dumps({"access_token": "t", "expires_in": 300}).encode())
    assert save({"header": "Location", "query": "code"}, r, ctx) == "c1"
    assert save({"json": "$.expires_in"}, r, ctx) == 300  # keeps its type
    reg = _sip(FORWARDED_REGISTER)
    assert save({"header": "From", "param": "tag"}, reg, ctx) == "f1"
    assert save({"header": "Via", "index": "all", "param": "branch"}, reg, ctx) == ["z9hG4bKwsf1", "z9hG4bKue1"]
    with pytest.raises(SaveError):
        save({"json": "$.refresh_token"}, r, ctx)
    with pytest.raises(LookupError):
        save({"status": None}, Nothing(10), ctx)
    with pytest.raises(MalformedExpectation):
        save({"header": "To", "equals": "x"}, reg, ctx)


# -- diff -----------------------------------------------------------------------------------------

def test_diff_shows_header_differences_and_normalises_compact_names():
    expected = FORWARDED_REGISTER.replace(b"Path: <sip:flow1@wsf.operator.example;lr;ob>\r\n", b"")
    received = _sip(FORWARDED_REGISTER)
    out = unified_diff(expected, received)
    assert "+Path: <sip:flow1@wsf.operator.example;lr;ob>" in out
    assert "Via: SIP/2.0/WSS" in " ".join(message_lines(received))  # 'v:' rendered as Via
    assert unified_diff(FORWARDED_REGISTER, received) == ""


def test_diff_of_expected_header_fields_against_an_http_response():
    out = unified_diff({"Cache-Control": "no-store", "Pragma": "no-cache"}, _redirect())
    assert "-Pragma: no-cache" in out and "Location" not in out
    assert "(no message within 20 ms)" in unified_diff(CHALLENGE, Nothing(20))


def test_reason_phrase_subject():
    bad = _sip(b"SIP/2.0 400 Bad Request: missing mandatory header CSeq\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\n"
               b"Content-Length: 0\r\n\r\n")
    ok, vague = check([{"reason": True, "contains": "CSeq"}, {"reason": True, "regex": "Max-Forwards"}], bad,
                      MatchContext())
    assert ok.verdict == Verdict.PASS and vague.verdict == Verdict.FAIL
    http = HttpExchange("GET", "https://x/", status=404, reason="Not Found")
    assert check([{"reason": True, "equals": "Not Found"}], http, MatchContext())[0].verdict == Verdict.PASS
    assert check([{"reason": True, "present": True}], Nothing(10.0), MatchContext())[0].verdict == \
        Verdict.INCONCLUSIVE


# -- when: a check that binds one of the answers the standard allows ---------------------------------

CHALLENGE_ON_401 = {"header": "WWW-Authenticate", "present": True, "when": {"status": 401},
                    "ref": "RFC 9110 15.5.2"}


def _http(status, headers=()):
    return HttpExchange("POST", "https://as.example/introspect", status=status, headers=list(headers),
                        body=b'{"error":"invalid_client"}')


def test_when_the_condition_holds_the_check_judges(ctx):
    assert _one(CHALLENGE_ON_401, _http(401, [("WWW-Authenticate", 'Basic realm="as"')]), ctx).verdict == P
    missing = _one(CHALLENGE_ON_401, _http(401), ctx)
    assert missing.verdict == F and missing.ref == "RFC 9110 15.5.2"


def test_when_the_condition_does_not_hold_the_check_is_not_applicable_and_says_why(ctx):
    finding = _one(CHALLENGE_ON_401, _http(400), ctx)
    assert finding.verdict == Verdict.NOT_APPLICABLE
    assert "status" in finding.actual and "400" in finding.actual and "does not hold" in finding.actual


def test_when_nothing_arrived_the_check_is_inconclusive_not_skipped(ctx):
    assert _one(CHALLENGE_ON_401, Nothing(waited_ms=300), ctx).verdict == INC


def test_when_takes_one_bare_condition(ctx):
    for bad in ({"status": 401, "ref": "RFC 1"}, "401", {"status": 401, "when": {"status": 400}}):
        finding = _one({**CHALLENGE_ON_401, "when": bad}, _http(401), ctx)
        assert finding.verdict == E, bad
    assert _one({**CHALLENGE_ON_401, "when": {"status": 401, "bogus": 1}}, _http(401), ctx).verdict == E


def test_a_step_judges_only_the_checks_that_apply():
    from conformance.verdicts import Finding, judge
    na = Finding(Verdict.NOT_APPLICABLE, "header WWW-Authenticate", "present", "not applicable")
    assert judge([Finding(P, "status", "one_of", "400"), na]) == P
    assert judge([Finding(F, "json $.error", "equals", "x"), na]) == F
    assert judge([na]) == P and judge([]) == P


def test_header_params_are_parsed_once_per_value_read_only_and_bounded():
    import pytest as _pytest

    from conformance.codec.sip_headers import HeaderError
    from conformance.match import subjects

    subjects._header_params.cache_clear()
    value = 'Digest username="alice@web.operator.example", integrity-protected=auth-done, nonce=""'
    first = subjects.header_params("Authorization", value)
    assert subjects.header_params("authorization", value) is first  # same key and value: one parse
    assert first["USERNAME"] == "alice@web.operator.example"  # auth-params: case-insensitive, unquoted
    with _pytest.raises(TypeError):
        first["username"] = "mallory"  # shared between checks: nobody may change it
    # a value longer than the bound is parsed every time and never kept
    long = "<sip:a@b>;tag=" + "x" * subjects._header_params.max_len
    assert subjects.header_params("From", long)["tag"] == "x" * subjects._header_params.max_len
    assert subjects._header_params.cache_info().currsize == 1
    # a value that does not parse raises at every look (a failure is never kept as a result)
    for _ in range(2):
        with _pytest.raises(HeaderError):
            subjects.header_params("Authorization", 'Digest a="unterminated')
