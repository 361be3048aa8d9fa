"""Capture blind spots: a message the dissector cannot dissect on an asserted leg is a finding that
names the violation (with bounded bytes); a message missing because it could not be dissected is
reported as such; optional entries never take a required message; an all-optional unmatched block
is inconclusive; levels apply to capture entries."""

from __future__ import annotations

from pathlib import Path

import yaml

from conformance.capture import analyze_records
from conformance.capture.assertions import evaluate_capture, match_block
from conformance.capture.blind_spots import EXCERPT_BYTES, excerpt
from conformance.capture.synth import (
    Capture,
    TcpFlow,
    sip_ok,
    sip_register,
    ws_upgrade_request,
    ws_upgrade_response,
)
from conformance.codec.websocket import build_frame
from conformance.match.engine import MatchContext
from conformance.verdicts import Verdict

ROOT = Path(__file__).resolve().parents[2]
PIXIT = yaml.safe_load((ROOT / "profiles" / "reference.yaml").read_text())["pixit"]
CTX = MatchContext()
WSF_TO_PCSCF = (("127.0.0.13", 40000), ("127.0.0.14", 5060))


def sip_without_content_length() -> bytes:
    return sip_register().replace(b"Content-Length: 0\r\n", b"")


def analyze(cap: Capture):
    return analyze_records(cap.frames_records(), PIXIT, [])


def tcp_sip(*messages: bytes):
    cap = Capture()
    flow = TcpFlow(cap, *WSF_TO_PCSCF).open()
    for m in messages:
        flow.send(True, m)
    return analyze(cap)


def ws_leg(server_frame: bytes):
    """3rdWWS -> WSF over plain TCP: handshake, a client REGISTER, then the server's frame."""
    cap = Capture()
    flow = TcpFlow(cap, ("127.0.0.11", 41000), ("127.0.0.13", 7443)).open()
    flow.send(True, ws_upgrade_request())
    flow.send(False, ws_upgrade_response())
    flow.send(True, build_frame(sip_register(), "text", mask=True))
    flow.send(False, server_frame)
    return analyze(cap)


EXPECT_17 = {"expect": [{"flow": 17, "from": "wsf", "to": "pcscf", "sip": {"method": "REGISTER"}}]}
EXPECT_21 = {"expect": [{"flow": 14, "from": "3rdwws", "to": "wsf", "sip": {"method": "REGISTER"}},
                        {"flow": 21, "from": "wsf", "to": "3rdwws", "sip": {"status": 200}}]}


def test_sip_without_content_length_is_named_not_missing():
    findings = evaluate_capture(EXPECT_17, tcp_sip(sip_without_content_length()), CTX)
    [f] = findings
    assert f.verdict == Verdict.FAIL
    assert "step 17 could not be dissected" in f.message and "no Content-Length" in f.message
    assert "RFC 3261 18.3" in f.message and "REGISTER sip:ims.example.net" in f.message  # the bytes
    assert "missing" not in f.message


def test_well_formed_stream_passes_and_has_no_blind_spot_finding():
    findings = evaluate_capture(EXPECT_17, tcp_sip(sip_register()), CTX)
    assert [f.verdict for f in findings] == [Verdict.PASS]


def test_masked_server_frame_is_named_not_step_missing():
    findings = evaluate_capture(EXPECT_21, ws_leg(build_frame(sip_ok(), "text", mask=True)), CTX)
    failed = [f for f in findings if f.verdict == Verdict.FAIL]
    assert len(failed) == 1, [f.describe() for f in findings]
    assert "step 21 could not be dissected" in failed[0].message
    assert "server-to-client frame masked" in failed[0].message and "RFC 6455 5.1" in failed[0].message
    # unmasked, the same answer is dissected and the case passes
    ok = evaluate_capture(EXPECT_21, ws_leg(build_frame(sip_ok(), "text", mask=False)), CTX)
    assert {f.verdict for f in ok} == {Verdict.PASS}


def test_undissectable_message_on_an_asserted_leg_is_a_finding_even_when_the_step_matched():
    findings = evaluate_capture(EXPECT_17, tcp_sip(sip_register(), sip_without_content_length()), CTX)
    assert [f.verdict for f in findings] == [Verdict.PASS, Verdict.FAIL]
    assert findings[1].subject.startswith("capture undissectable message")
    assert findings[1].ref == "RFC 3261 18.3"


def test_a_case_can_assert_on_the_undissectable_message_itself():
    block = {"forbidden": [{"from": "wsf", "to": "pcscf", "garbage": {"reason": "Content-Length"},
                            "ref": "RFC 3261 18.3"}]}
    findings = evaluate_capture(block, tcp_sip(sip_without_content_length()), CTX)
    assert [f.verdict for f in findings] == [Verdict.FAIL]  # one finding: the case's own, not a duplicate
    assert findings[0].message.endswith("forbidden message seen")


def test_legs_the_block_does_not_assert_are_left_alone():
    block = {"expect": [{"from": "scscf", "to": "pcscf", "sip": {"status": 200}, "optional": True}],
             "forbidden": [{"from": "pcscf", "to": "scscf", "sip": {"method": "INVITE"}}]}
    findings = evaluate_capture(block, tcp_sip(sip_without_content_length()), CTX)
    assert all("undissectable" not in f.subject for f in findings)


def test_excerpt_is_bounded():
    text = excerpt(b"A" * 10_000)
    assert len(text) < EXCERPT_BYTES + 40 and text.endswith(f"(+{10_000 - EXCERPT_BYTES} bytes)")
    assert excerpt(b"") == "(no bytes kept)"


def test_optional_entry_never_takes_the_message_a_required_entry_needs():
    result = tcp_sip(sip_register())
    block = {"expect": [{"from": "wsf", "to": "pcscf", "sip": {"method": "REGISTER"}, "optional": True},
                        {"flow": 17, "from": "wsf", "to": "pcscf", "sip": {"method": "REGISTER"}}]}
    bm = match_block(block, result.timeline, PIXIT)
    assert [r.status for r in bm.results] == ["optional_missing", "matched"]


def test_optional_entries_never_make_a_failing_block_pass():
    block = {"expect": [{"flow": 17, "from": "wsf", "to": "pcscf", "sip": {"method": "REGISTER"}},
                        {"from": "wsf", "to": "pcscf", "sip": {"method": "OPTIONS"}, "optional": True}]}
    findings = evaluate_capture(block, tcp_sip(sip_ok()), CTX)  # a 200, no REGISTER
    assert Verdict.FAIL in {f.verdict for f in findings}


def test_block_of_only_unmatched_optional_entries_is_inconclusive():
    block = {"expect": [{"from": "wsf", "to": "pcscf", "sip": {"method": "OPTIONS"}, "optional": True}]}
    findings = evaluate_capture(block, tcp_sip(sip_register()), CTX)
    assert Verdict.INCONCLUSIVE in {f.verdict for f in findings}
    assert any("every capture entry is optional" in f.message for f in findings)
    # one of them seen: something was checked
    seen = {"expect": [{"from": "wsf", "to": "pcscf", "sip": {"method": "REGISTER"}, "optional": True}]}
    assert {f.verdict for f in evaluate_capture(seen, tcp_sip(sip_register()), CTX)} == {Verdict.PASS}


def test_order_any_matches_anywhere_but_must_appear():
    # two requests on one leg (a response there would answer no request: capture/pairing.py)
    result = tcp_sip(sip_register(), sip_register().replace(b"REGISTER", b"OPTIONS"))
    seq = {"expect": [{"from": "wsf", "to": "pcscf", "sip": {"method": "OPTIONS"}},
                      {"from": "wsf", "to": "pcscf", "sip": {"method": "REGISTER"}}]}
    assert Verdict.FAIL in {f.verdict for f in evaluate_capture(seq, result, CTX)}
    free = {"expect": [{"from": "wsf", "to": "pcscf", "sip": {"method": "OPTIONS"}},
                       {"from": "wsf", "to": "pcscf", "sip": {"method": "REGISTER"}, "order": "any"}]}
    assert {f.verdict for f in evaluate_capture(free, result, CTX)} == {Verdict.PASS}
    absent = {"expect": [{"from": "wsf", "to": "pcscf", "sip": {"method": "INVITE"}, "order": "any"}]}
    assert [f.verdict for f in evaluate_capture(absent, result, CTX)] == [Verdict.FAIL]


def test_capture_entry_level_should_warns_instead_of_failing():
    block = {"expect": [{"flow": 17, "from": "wsf", "to": "pcscf", "sip": {"method": "REGISTER"},
                         "expect": [{"header": "Supported", "contains": "gruu", "level": "SHOULD"}]}],
             "forbidden": [{"from": "wsf", "to": "pcscf", "sip": {"method": "REGISTER"}, "level": "SHOULD"}]}
    findings = evaluate_capture(block, tcp_sip(sip_register()), CTX)
    assert [f.verdict for f in findings] == [Verdict.PASS, Verdict.WARN, Verdict.WARN]
    bad = {"expect": [{"from": "wsf", "to": "pcscf", "sip": {"method": "REGISTER"}, "level": "OUGHT"}]}
    assert evaluate_capture(bad, tcp_sip(sip_register()), CTX)[0].verdict == Verdict.ERROR
