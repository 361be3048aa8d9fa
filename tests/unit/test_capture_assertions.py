"""The `capture:` block against timelines of real (synthetic) registrations: order, missing,
optional, forbidden, absence windows, per-message expectations, and inconclusive legs."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import jsonschema
import yaml

from conformance.capture import CaptureResult, analyze_records
from conformance.capture.assertions import evaluate_capture, match_block
from conformance.capture.synth import Capture, TcpFlow, registration, sip_register
from conformance.capture.timeline import Timeline
from conformance.match.engine import MatchContext
from conformance.report.ladder import render_ladder
from conformance.verdicts import Verdict

ROOT = Path(__file__).resolve().parents[2]
PIXIT = yaml.safe_load((ROOT / "profiles" / "reference.yaml").read_text())["pixit"]
SCHEMA = json.loads((ROOT / "conformance" / "schema" / "capture.schema.json").read_text())

BLOCK = yaml.safe_load("""
settle_ms: 300
expect:
  - {flow: 13, from: ue|3rdwws, to: wsf, ws_handshake: {}}
  - flow: 14
    from: [ue, 3rdwws]
    to: wsf
    sip: {method: REGISTER}
    expect: [{header: Authorization, starts_with: "Bearer "}]
  - flow: 15
    from: wsf
    to: as
    http: {method: POST, path: /introspect}
    expect: [{header: Authorization, starts_with: "Basic "}, {body: true, contains: "token_type_hint=access_token"}]
  - flow: 16
    from: as
    to: wsf
    http: {status: 200}
    expect: [{json: $.active, equals: true}, {json: "$.impu[0]", is_default_impu_of: alice@web.operator.example}]
  - flow: 17
    from: wsf
    to: pcscf
    sip: {method: REGISTER}
    ref: BINDING step 17
    expect:
      - {header: Authorization, param: integrity-protected, equals: auth-done}
      - {header: Authorization, param: username, is_impi_of: alice@web.operator.example}
      - {header: To, uri_equals: "sip:alice@ims.example.net"}
      - {header: Authorization, not_contains: Bearer}
  - {flow: 18, from: pcscf, to: scscf, sip: {method: REGISTER}}
  - {flow: 19, from: scscf, to: pcscf, sip: {status: 200, method: REGISTER}}
  - {flow: 20, from: pcscf, to: wsf, sip: {status: 2xx}}
  - {flow: 21, from: wsf, to: ue|3rdwws, sip: {status: 200}}
  - {flow: 12, from: ue, to: 3rdwws, sip: {method: REGISTER}, optional: true}
forbidden:
  - {from: wsf, to: pcscf, sip: {method: INVITE}, ref: "RFC 8898 2.2"}
  - {garbage: {}}
absent:
  - {to: scscf, after: 19, within_ms: 1}
""")

CTX = MatchContext(identities={
    "alice@web.operator.example": {"impi": "alice@ims.example.net",
                                   "impus": ["sip:alice@ims.example.net", "tel:+15550100"]},
    "bob@web.operator.example": {"impi": "bob@ims.example.net", "impus": ["sip:bob@ims.example.net"]}})


def run(tmp_path, block=BLOCK, keep_keys=True, **kw) -> tuple[CaptureResult, list]:
    cap, keylog = Capture(), tmp_path / "k.log"
    registration(cap, keylog, **kw)
    result = analyze_records(cap.frames_records(), PIXIT, [keylog] if keep_keys else [])
    return result, evaluate_capture(block, result, CTX)


def by_verdict(findings, verdict) -> list:
    return [f for f in findings if f.verdict == verdict]


def test_schema_accepts_the_documented_block_and_rejects_mistakes():
    from conformance.model.schema import _registry

    # capture.schema.json refers to the test-case schema for per-message expectations
    v = jsonschema.Draft202012Validator(SCHEMA, registry=_registry())
    assert not list(v.iter_errors(BLOCK))
    for bad in ({"expect": [{"flow": 17, "from": "wsf", "to": "pcscf"}]},  # no message kind
                {"expect": [{"flow": 17, "sip": {}, "http": {}}]},  # two kinds
                {"expect": [{"flow": 23, "sip": {}}]},
                {"expect": [{"sip": {"methd": "REGISTER"}}]},
                {"absent": [{"within_ms": 5}]},  # absent from/to nobody
                {"forbidden": [{"sip": {}, "optional": True}]},
                {"expectt": []}):
        assert list(v.iter_errors(bad)), bad


def test_full_registration_passes_everything(tmp_path):
    result, findings = run(tmp_path)
    assert findings and by_verdict(findings, Verdict.PASS) == findings, "\n".join(f.describe() for f in findings)
    # every per-message expectation produced its own finding, prefixed with the flow step
    assert any(f.subject.startswith("capture step 17 header Authorization param integrity-protected") for f in findings)
    assert any("optional" in f.message for f in findings)


def test_skipped_verification_fails_naming_the_missing_steps(tmp_path):
    _, findings = run(tmp_path, verify=False)
    failed = by_verdict(findings, Verdict.FAIL)
    assert [f.message for f in failed] == ["step 15 missing", "step 16 missing"]
    assert not by_verdict(findings, Verdict.INCONCLUSIVE)


def test_verification_after_forwarding_is_out_of_order(tmp_path):
    _, findings = run(tmp_path, forward_first=True)
    failed = by_verdict(findings, Verdict.FAIL)
    assert [f.message for f in failed] == [f"step {n} came before step 15" for n in (17, 18, 19, 20)]
    assert not by_verdict(findings, Verdict.INCONCLUSIVE)


def test_out_of_order_message_names_the_step_it_preceded(tmp_path):
    block = {"expect": [
        {"flow": 15, "from": "wsf", "to": "as", "http": {"method": "POST"}},
        {"flow": 17, "from": "wsf", "to": "pcscf", "sip": {"method": "REGISTER"}},
    ]}
    _, findings = run(tmp_path, block=block, forward_first=True)
    assert [(f.verdict, f.message) for f in findings] == [
        (Verdict.PASS, ""), (Verdict.FAIL, "step 17 came before step 15")]


def test_undecryptable_leg_is_inconclusive_never_pass(tmp_path):
    result, findings = run(tmp_path, keep_keys=False)
    tls_steps = [f for f in findings if f.subject.split()[2] in ("13", "14", "15", "16", "21")]
    assert tls_steps and {f.verdict for f in tls_steps} == {Verdict.INCONCLUSIVE}
    assert "could not be decrypted" in tls_steps[0].message
    udp_steps = [f for f in findings if f.subject.split()[2] in ("17", "18", "19", "20")
                 and f.subject.split()[3].startswith(("wsf", "pcscf", "scscf"))]
    assert {f.verdict for f in udp_steps} == {Verdict.PASS}
    # a forbidden check on a leg we cannot read is inconclusive too
    block = {"forbidden": [{"from": "3rdwws", "to": "wsf", "sip": {"method": "INVITE"}}]}
    [f] = evaluate_capture(block, result, CTX)
    assert f.verdict == Verdict.INCONCLUSIVE


def test_leg_of_a_node_never_captured_is_inconclusive(tmp_path):
    result, _ = run(tmp_path)
    pixit = {**PIXIT, "nodes": {**PIXIT["nodes"], "icscf": {"address": "127.0.0.16", "port": 5060}}}
    block = {"expect": [{"flow": 18, "from": "pcscf", "to": "icscf", "sip": {"method": "REGISTER"}}]}
    [f] = evaluate_capture(block, result, CTX, pixit)
    assert f.verdict == Verdict.INCONCLUSIVE and "was not captured" in f.message


def test_capture_error_makes_everything_inconclusive(tmp_path):
    result, _ = run(tmp_path)
    result.error = "no privilege to capture on lo"
    findings = evaluate_capture(BLOCK, result, CTX)
    assert {f.verdict for f in findings} == {Verdict.INCONCLUSIVE}
    assert all(f.message == "no privilege to capture on lo" for f in findings)


def test_forbidden_and_absent_seen(tmp_path):
    block = {"forbidden": [{"from": "wsf", "to": "pcscf", "sip": {"method": "REGISTER"}, "ref": "RFC 8898 2.2"}],
             "absent": [{"to": "pcscf", "after": 14, "within_ms": 2}, {"to": "scscf", "after": 14}]}
    block["expect"] = [{"flow": 14, "from": "3rdwws", "to": "wsf", "sip": {"method": "REGISTER"}}]
    _, findings = run(tmp_path, block=block, verify=False)
    forb, absent1, absent2 = [f for f in findings if not f.subject.startswith("capture step 14")]
    assert forb.verdict == Verdict.FAIL and forb.ref == "RFC 8898 2.2" and "forbidden message seen" in forb.message
    assert "wsf->pcscf REGISTER" in forb.actual
    assert absent1.verdict == Verdict.FAIL and "a packet reached" in absent1.message
    assert absent2.verdict == Verdict.FAIL


def test_absence_windows(tmp_path):
    result, _ = run(tmp_path)
    tl = result.timeline
    # the window ends after the capture: cannot tell
    [f] = evaluate_capture({"absent": [{"to": "pcscf", "within_ms": 10_000}]}, result, CTX)
    assert f.verdict == Verdict.INCONCLUSIVE and "settle_ms" in f.message
    # a window before anything reached the P-CSCF: pass
    [f] = evaluate_capture({"absent": [{"to": "pcscf", "within_ms": 1}]}, result, CTX)
    assert f.verdict == Verdict.PASS
    # the reference message is missing: no window
    block = {"expect": [{"flow": 12, "from": "ue", "to": "3rdwws", "sip": {}, "optional": True}],
             "absent": [{"to": "pcscf", "after": 12, "within_ms": 1}]}
    assert evaluate_capture(block, result, CTX)[1].verdict == Verdict.INCONCLUSIVE
    assert tl.t_end > tl.t_start


def test_malformed_blocks_are_errors_of_the_test_case(tmp_path):
    result, _ = run(tmp_path)
    for block, text in (({"expect": [{"from": "wsff", "to": "as", "http": {}}]}, "unknown node wsff"),
                        ({"expect": [{"from": "wsf", "to": "as"}]}, "exactly one message kind"),
                        ({"expect": [{"from": "wsf", "sip": {}, "colour": 1}]}, "unknown key")):
        [f] = evaluate_capture(block, result, CTX)
        assert f.verdict == Verdict.ERROR and text in f.message


def test_per_message_expectations_can_fail(tmp_path):
    block = {"expect": [{"flow": 17, "from": "wsf", "to": "pcscf", "sip": {"method": "REGISTER"},
                         "expect": [{"header": "Authorization", "contains": "Bearer"},
                                    {"header": "To", "is_default_impu_of": "bob@web.operator.example"}]}]}
    _, findings = run(tmp_path, block=block)
    assert [f.verdict for f in findings] == [Verdict.PASS, Verdict.FAIL, Verdict.FAIL]


def test_ws_frame_selectors(tmp_path):
    block = {"expect": [{"from": "3rdwws", "to": "wsf", "ws": {"opcode": "text", "masked": True}},
                        {"from": "wsf", "to": "3rdwws", "ws": {"opcode": "text", "masked": False}}],
             "forbidden": [{"ws": {"error": True}}, {"from": "wsf", "ws": {"masked": True}}]}
    _, findings = run(tmp_path, block=block)
    assert {f.verdict for f in findings} == {Verdict.PASS}


def test_ladder_marks_steps_missing_and_out_of_order(tmp_path):
    result, findings = run(tmp_path, forward_first=True)
    svg = render_ladder(result.timeline, findings, BLOCK, PIXIT, title="TP_FLOW_REG_001")
    for column in ("UE", "3rdWWS", "Operator WWS", "WSF", "P-CSCF", "I/S-CSCF"):
        assert f">{column}</text>" in svg
    assert "[17] REGISTER (came before step 15)" in svg and "#d97706" in svg  # orange
    assert svg.index("[17] REGISTER") < svg.index("[15] POST /introspect")  # drawn in wire order
    result, findings = run(tmp_path, verify=False)
    svg = render_ladder(result.timeline, findings, BLOCK, PIXIT)
    assert "[15] missing: http method=POST path=/introspect" in svg and 'stroke-dasharray="6,4"' in svg
    # the missing rows are drawn where they belong: after step 14, before step 17
    assert svg.index("[14] REGISTER") < svg.index("[15] missing") < svg.index("[17] REGISTER")
    assert "step 15 missing" in svg  # the findings are listed under the diagram
    ET.fromstring(svg)  # well-formed XML


def test_the_ladder_and_the_report_draw_the_match_the_verdict_was_judged_on(tmp_path, monkeypatch):
    from conformance.capture import assertions
    from conformance.report import ladder
    from conformance.report.capture_steps import report_capture_entries
    from conformance.run.reporter import NullReporter

    result, findings = run(tmp_path, forward_first=True)
    assert result.block_match is not None  # evaluate_capture keeps its match
    expected = render_ladder(result.timeline, findings, BLOCK, PIXIT)

    def no_second_match(*args, **kwargs):
        raise AssertionError("the block was matched again")

    monkeypatch.setattr(assertions, "match_block", no_second_match)  # report_capture_entries imports it late
    monkeypatch.setattr(ladder, "match_block", no_second_match)
    assert render_ladder(result.timeline, findings, BLOCK, PIXIT, bm=result.block_match) == expected
    report_capture_entries(NullReporter(), findings, result.timeline, BLOCK, PIXIT, bm=result.block_match)


def test_match_block_on_an_empty_timeline():
    bm = match_block(BLOCK, Timeline(t_start=0.0, t_end=1.0), PIXIT)
    expect = [r for r in bm.results if r.entry.kind == "expect"]
    assert {r.status for r in expect} == {"unobservable", "optional_missing"}


def test_tcp_sip_leg_selector_by_transport(tmp_path):
    cap = Capture()
    TcpFlow(cap, ("127.0.0.13", 40000), ("127.0.0.14", 5060)).open().send(True, sip_register())
    result = analyze_records(cap.frames_records(), PIXIT, [])
    ok = {"expect": [{"from": "wsf", "to": "pcscf", "sip": {"method": "REGISTER", "transport": "tcp"}}]}
    udp = {"expect": [{"from": "wsf", "to": "pcscf", "sip": {"method": "REGISTER", "transport": "udp"}}]}
    assert evaluate_capture(ok, result, CTX)[0].verdict == Verdict.PASS
    assert evaluate_capture(udp, result, CTX)[0].verdict == Verdict.FAIL


def test_evaluate_takes_the_settles_last_match_only_while_nothing_it_depends_on_changed(tmp_path, monkeypatch):
    from conformance.capture import assertions
    from conformance.capture.assertions import SettleMatch

    cap, keylog = Capture(), tmp_path / "k.log"
    registration(cap, keylog)
    fresh = evaluate_capture(BLOCK, analyze_records(cap.frames_records(), PIXIT, [keylog]), CTX, PIXIT)
    result = analyze_records(cap.frames_records(), PIXIT, [keylog])
    result.settle_match = SettleMatch.of(BLOCK, result, PIXIT)  # what the adaptive settle leaves
    calls = []
    real = assertions.match_block
    monkeypatch.setattr(assertions, "match_block", lambda *a, **k: calls.append(1) or real(*a, **k))
    findings = evaluate_capture(BLOCK, result, CTX, PIXIT)
    assert calls == [] and result.block_match is result.settle_match.bm
    assert [f.describe() for f in findings] == [f.describe() for f in fresh]  # the same verdict
    # anything the match depends on changed since: matched again
    evaluate_capture(BLOCK, result, CTX, PIXIT, identity=["sip:bob@ims.example.net"])
    evaluate_capture(dict(BLOCK), result, CTX, PIXIT)
    result.timeline.problems.append("the kernel dropped 3 packets on lo")
    evaluate_capture(BLOCK, result, CTX, PIXIT)
    assert calls == [1, 1, 1]
