"""Capture entries take only the messages of their own transaction (RFC 3261 17.1.3 / 17.2.3) and,
when the test case's identity is its own, only requests of its own flows: a late message of the
previous test case in the window (the 200 OK to the WSF's de-REGISTER of the previous case's
binding) is never judged as this case's."""

from __future__ import annotations

from pathlib import Path

import yaml

from conformance.capture import analyze_records
from conformance.capture.assertions import evaluate_capture
from conformance.capture.pairing import answers
from conformance.capture.stream import SessionAnalysis
from conformance.capture.synth import Capture, TcpFlow, http_request, http_response, sip_ok, sip_register
from conformance.match.engine import MatchContext
from conformance.verdicts import Verdict

ROOT = Path(__file__).resolve().parents[2]
PIXIT = yaml.safe_load((ROOT / "profiles" / "reference.yaml").read_text())["pixit"]
CTX = MatchContext()

MINE, OTHER = "tp-wsf-reg-007-1a2b3c4d", "tp-wsf-reg-006-9f8e7d6c"
UE, WSF, WSF_CORE, PCSCF = ("127.0.0.1", 40100), ("127.0.0.13", 7443), ("127.0.0.13", 5062), ("127.0.0.14", 5060)
UE_VIA = "SIP/2.0/WSS df7jal23ls0d.invalid;branch=z9hG4bK776asdhds"
WSF_VIA = "SIP/2.0/UDP 127.0.0.13:5062;branch=z9hG4bKwsf17;rport"
DEREG_VIA = "SIP/2.0/UDP 127.0.0.13:5062;branch=z9hG4bKdereg9;rport"  # the previous case's de-REGISTER


def aor(user: str) -> str:
    return f"sip:{user}@ims.example.net"


def forwarded(user: str = MINE) -> bytes:
    """Step 17: the WSF's forward of the UE's REGISTER, the UE's Via under its own."""
    return sip_register(aor=aor(user), auth="", via=f"{WSF_VIA}\r\nVia: {UE_VIA}")


def answer(user: str = MINE) -> bytes:
    """Step 20: the 200 OK for step 17, both Vias (the P-CSCF removed its own)."""
    return sip_ok(via=f"{WSF_VIA}\r\nVia: {UE_VIA}", aor=aor(user))


def deregister(user: str = OTHER) -> bytes:
    return sip_register(aor=aor(user), auth="", via=DEREG_VIA).replace(b"expires=600", b"expires=0")


def late_ok(user: str = OTHER) -> bytes:
    """The 200 OK to the WSF's de-REGISTER of the previous case: one Via, another transaction."""
    return sip_ok(via=DEREG_VIA, aor=aor(user))


def window(*messages: tuple[tuple[str, int], tuple[str, int], bytes]):
    cap = Capture()
    for src, dst, payload in messages:
        cap.udp(src, dst, payload)
    return analyze_records(cap.frames_records(), PIXIT, [])


def catalog_block(case: str) -> dict:
    return yaml.safe_load(next(ROOT.glob(f"testcases/*/{case}.yaml")).read_text())["capture"]


def verdicts(findings) -> set[Verdict]:
    return {f.verdict for f in findings}


STEP_20 = {"expect": catalog_block("TP_WSF_REG_007")["expect"][:1]}  # pcscf -> wsf 200, Via count 2


def test_a_late_response_to_a_request_before_the_window_is_not_the_cases():
    """TP_WSF_REG_007 run alone: the late 200 (one Via) came first; its request is not in the window."""
    result = window((PCSCF, WSF_CORE, late_ok()), (WSF_CORE, PCSCF, forwarded()), (PCSCF, WSF_CORE, answer()))
    findings = evaluate_capture(STEP_20, result, CTX)
    assert verdicts(findings) == {Verdict.PASS}, [f.message or f.actual for f in findings]
    taken = next(f for f in findings if f.expected == "present in order")
    assert f"#{result.timeline.items[2].index} " in taken.actual  # the answer to step 17, not #0


def test_a_response_entry_pairs_with_the_request_its_block_names():
    """Step 20 answers step 17: a 200 of another transaction between them is not step 20."""
    block = {"expect": [{"flow": 17, "from": "wsf", "to": "pcscf", "sip": {"method": "REGISTER"}},
                        {"flow": 20, "from": "pcscf", "to": "wsf", "sip": {"status": 200},
                         "expect": [{"header": "Via", "count": 2}]}]}
    result = window((WSF_CORE, PCSCF, forwarded()), (PCSCF, WSF_CORE, late_ok()), (PCSCF, WSF_CORE, answer()))
    assert verdicts(evaluate_capture(block, result, CTX)) == {Verdict.PASS}


def test_without_an_answer_of_its_own_the_response_is_missing_not_taken_from_another_transaction():
    block = {"expect": [{"flow": 17, "from": "wsf", "to": "pcscf", "sip": {"method": "REGISTER"}},
                        {"flow": 20, "from": "pcscf", "to": "wsf", "sip": {"status": 200}}]}
    result = window((WSF_CORE, PCSCF, forwarded()), (PCSCF, WSF_CORE, late_ok()))
    findings = evaluate_capture(block, result, CTX)
    assert [f.message for f in findings if f.verdict == Verdict.FAIL] == ["step 20 missing"]


def test_with_the_cases_own_identity_a_request_of_another_users_flow_answers_nothing_of_the_case():
    """The previous case's de-REGISTER itself fell inside the window: only the identity tells it apart."""
    result = window((WSF_CORE, PCSCF, deregister()), (PCSCF, WSF_CORE, late_ok()),
                    (WSF_CORE, PCSCF, forwarded()), (PCSCF, WSF_CORE, answer()))
    assert verdicts(evaluate_capture(STEP_20, result, CTX, identity={MINE})) == {Verdict.PASS}


def test_requests_the_harness_sent_anchor_the_case_without_an_identity():
    """The UE's REGISTER (sent by the harness) -> its forward (the UE's Via under the WSF's) -> the
    answer: the previous case's de-REGISTER is tied to none of them."""
    ue_register = sip_register(aor="sip:alice@web.operator.example", via=UE_VIA)
    result = window((WSF_CORE, PCSCF, deregister("alice")), (UE, WSF, ue_register),
                    (PCSCF, WSF_CORE, late_ok("alice")), (WSF_CORE, PCSCF, forwarded("alice")),
                    (PCSCF, WSF_CORE, answer("alice")))
    assert result.timeline.items[1].src_node == "ue"
    assert verdicts(evaluate_capture(STEP_20, result, CTX)) == {Verdict.PASS}


def test_a_forbidden_request_of_another_users_flow_is_not_the_cases_but_its_own_is():
    block = {"forbidden": [{"from": "wsf", "to": "pcscf", "sip": {"method": "REGISTER"}, "ref": "RFC 8898 2.2"}]}
    previous = window((WSF_CORE, PCSCF, deregister()))
    assert verdicts(evaluate_capture(block, previous, CTX, identity={MINE})) == {Verdict.PASS}
    # without an identity of its own (a shared fixture user) nothing tells it apart: judged as seen
    assert verdicts(evaluate_capture(block, previous, CTX)) == {Verdict.FAIL}
    own = window((WSF_CORE, PCSCF, deregister()), (WSF_CORE, PCSCF, forwarded()))
    assert verdicts(evaluate_capture(block, own, CTX, identity={MINE})) == {Verdict.FAIL}


def test_the_cases_own_wsf_originated_request_is_its_own_by_identity():
    """The WSF's de-REGISTER when the case's own WebSocket closes has a new Call-ID and a new Via:
    it is the case's by the IMPU it names."""
    block = {"expect": [{"from": "wsf", "to": "pcscf", "sip": {"method": "REGISTER"},
                         "expect": [{"header": "To", "contains": MINE}]}]}
    result = window((WSF_CORE, PCSCF, deregister(OTHER)), (WSF_CORE, PCSCF, deregister(MINE)))
    assert verdicts(evaluate_capture(block, result, CTX, identity={MINE})) == {Verdict.PASS}


def test_transaction_matching_needs_branch_sent_by_method_and_the_hop_back():
    result = window((WSF_CORE, PCSCF, forwarded()), (PCSCF, WSF_CORE, answer()),
                    (PCSCF, WSF_CORE, answer().replace(b"CSeq: 1 REGISTER", b"CSeq: 1 CANCEL")),
                    (PCSCF, WSF_CORE, answer().replace(b"127.0.0.13:5062;branch", b"127.0.0.99:5062;branch", 1)),
                    (WSF_CORE, PCSCF, answer()))
    req, ok, other_method, other_sent_by, wrong_way = result.timeline.items
    assert answers(ok, req)
    assert not answers(other_method, req)
    assert not answers(other_sent_by, req)
    assert not answers(wrong_way, req)
    assert not answers(req, ok)


def introspection(flow: TcpFlow, user: str) -> None:
    body = f'{{"active": true, "sub": "{user}@web.operator.example"}}'.encode()
    flow.send(False, http_response(200, body, headers={"Content-Type": "application/json"}))


def test_an_http_response_entry_takes_the_answer_to_its_own_request_not_a_late_one():
    """Step 16 answers step 15: the AS's late answer to the previous case's introspection, on the
    WSF's other connection, arrives first and is not step 16."""
    cap = Capture()
    previous = TcpFlow(cap, ("127.0.0.13", 41001), ("127.0.0.12", 9443)).open()
    previous.send(True, http_request("POST", "/introspect", b"token=previous-token"))
    cap.wait(0.01)
    window_start = cap.t  # this case's window opens here: the previous request is before it
    mine = TcpFlow(cap, ("127.0.0.13", 41002), ("127.0.0.12", 9443)).open()
    mine.send(True, http_request("POST", "/introspect", b"token=my-token"))
    introspection(previous, OTHER)
    introspection(mine, MINE)
    session = SessionAnalysis(PIXIT, [])  # as a run does: one analysis, a window per test case
    session.feed(cap.frames_records())
    result = session.window(window_start, cap.t + 1)
    assert [i.kind for i in result.timeline.items] == ["HttpRequestSeen", "HttpExchange", "HttpExchange"]
    block = {"expect": [{"flow": 15, "from": "wsf", "to": "as", "http": {"method": "POST", "path": "/introspect"}},
                        {"flow": 16, "from": "as", "to": "wsf", "http": {"status": 200},
                         "expect": [{"json": "$.sub", "contains": MINE}]}]}
    assert verdicts(evaluate_capture(block, result, CTX)) == {Verdict.PASS}
    # without the request's entry: the answer to a request of the window, never one sent before it
    late_only = {"expect": block["expect"][1:]}
    assert verdicts(evaluate_capture(late_only, result, CTX)) == {Verdict.PASS}


def test_vias_are_parsed_once_per_value_and_huge_values_are_not_kept():
    from conformance.capture import pairing
    from conformance.codec.sip import parse

    msg = parse(forwarded())
    pairing._via_keys.cache_clear()
    first = pairing.vias(msg)
    assert first == [("z9hg4bkwsf17", "127.0.0.13:5062"), ("z9hg4bk776asdhds", "df7jal23ls0d.invalid")]
    assert pairing.vias(msg) == first
    info = pairing._via_keys.cache_info()
    assert (info.hits, info.misses) == (2, 2)  # the second look parsed nothing
    # a value longer than the bound is parsed every time, never kept: a SUT's huge header cannot grow the cache
    long_via = f"SIP/2.0/UDP 127.0.0.13:5062;branch=z9hG4bKlong;x={'a' * pairing._via_keys.max_len}"
    big = parse(sip_register(aor=aor(MINE), auth="", via=long_via))
    assert pairing.vias(big) == [("z9hg4bklong", "127.0.0.13:5062")]
    assert pairing._via_keys.cache_info().currsize == 2
    # a Via that does not parse ends the list, whether its parse was kept or not
    bad = parse(sip_register(aor=aor(MINE), auth="", via=f"{WSF_VIA}\r\nVia: garbage"))
    assert pairing.vias(bad) == pairing.vias(bad) == [("z9hg4bkwsf17", "127.0.0.13:5062")]
