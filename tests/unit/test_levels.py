"""Requirement levels end to end: `level:` and ref-derived levels on expectations, the verdict
"pass with warnings", the conformance statement's "warn", exit codes, and `requires_pixit`."""

from __future__ import annotations

from pathlib import Path

import pytest

from conformance.events import HttpExchange
from conformance.match import MatchContext, check
from conformance.match.levels import REF_LEVELS, level_of
from conformance.model.testcase import load_testcase
from conformance.report import ics
from conformance.run.verdict_files import EXIT_FAIL, EXIT_OK, exit_code
from conformance.verdicts import Finding, Level, Verdict, worst

CHALLENGE = HttpExchange(method="GET", url="https://wsf/", status=401, reason="Unauthorized",
                         headers=[("WWW-Authenticate", 'Bearer realm="ims.example.net"')])


def test_level_comes_from_the_item_then_the_ref_then_must():
    assert level_of({"ref": "RFC 6750 3.1"}) == Level.SHOULD
    assert level_of({"ref": "RFC  6750   3.1"}) == Level.SHOULD  # spacing does not matter
    assert level_of({"ref": "RFC 6750 3.1", "level": "MUST"}) == Level.MUST  # the item wins
    assert level_of({"ref": "RFC 8898 2.2"}) == Level.MUST
    assert level_of({}) == Level.MUST
    with pytest.raises(ValueError):
        level_of({"level": "OUGHT"})
    assert all(lvl != Level.MUST for lvl, _ in REF_LEVELS.values())  # the table records only non-MUSTs


def test_missing_error_param_warns_while_a_missing_challenge_fails():
    items = [{"status": 401, "ref": "RFC 8898 2.2"},
             {"header": "WWW-Authenticate", "param": "error", "equals": "invalid_token", "ref": "RFC 6750 3.1"},
             {"header": "WWW-Authenticate", "param": "authz_server", "present": True, "ref": "RFC 8898 2.2"}]
    findings = check(items, CHALLENGE, MatchContext())
    assert [f.verdict for f in findings] == [Verdict.PASS, Verdict.WARN, Verdict.FAIL]
    assert findings[1].level == Level.SHOULD and "SHOULD" in findings[1].describe()
    assert worst(f.verdict for f in findings[:2]) == Verdict.WARN
    assert worst(f.verdict for f in findings) == Verdict.FAIL


def test_explicit_level_may_and_malformed_level():
    [may] = check([{"status": 200, "level": "MAY"}], CHALLENGE, MatchContext())
    assert may.verdict == Verdict.WARN and may.level == Level.MAY
    [bad] = check([{"status": 401, "level": "sometimes"}], CHALLENGE, MatchContext())
    assert bad.verdict == Verdict.ERROR


def test_a_warning_never_hides_an_inconclusive_or_a_pass():
    [ok] = check([{"status": 401, "level": "SHOULD"}], CHALLENGE, MatchContext())
    assert ok.verdict == Verdict.PASS
    [unseen] = check([{"status": 401, "level": "SHOULD"}], CHALLENGE, MatchContext(capture_available=False))
    assert unseen.verdict == Verdict.INCONCLUSIVE


def test_exit_code_is_zero_for_warnings():
    assert exit_code(0, [{"verdict": "pass with warnings"}, {"verdict": "pass"}]) == EXIT_OK
    assert exit_code(1, [{"verdict": "fail"}]) == EXIT_FAIL


class _Case:
    def __init__(self, id, refs, expect=()):
        self.id, self.sut, self.kind, self.refs, self.title = id, "wsf", "negative", refs, id
        self.steps = [{"expect": list(expect)}]
        self.capture = None


def test_statement_warns_only_the_requirements_whose_should_was_violated():
    cases = [_Case("TP_A", ["RFC 8898 2.2"], [{"ref": "RFC 6750 3.1"}]), _Case("TP_B", ["RFC 8898 2.2"])]
    warned = {"refs": ["RFC 6750 3.1"], "level": "SHOULD", "verdict": "pass with warnings", "step": "s",
              "description": "WARN header WWW-Authenticate param error"}
    results = [{"id": "TP_A", "verdict": "pass with warnings", "checks": [warned]},
               {"id": "TP_B", "verdict": "pass", "checks": []}]
    doc = ics.build(cases, results, {})
    rows = {r["requirement"]: r["verdict"] for r in doc["requirements"]}
    assert rows == {"RFC 6750 3.1": "pass with warnings", "RFC 8898 2.2": "pass"}
    assert "class='warn'" in ics.to_html(doc)
    results[1]["verdict"] = "fail"
    results[1]["checks"] = [{"refs": ["RFC 8898 2.2"], "level": "MUST", "verdict": "fail", "step": "s",
                             "description": "FAIL status"}]
    rows = {r["requirement"]: r["verdict"] for r in ics.build(cases, results, {})["requirements"]}
    assert rows["RFC 8898 2.2"] == "fail"


def test_finding_level_must_keeps_fail():
    assert Finding(Verdict.FAIL, "s", "e", "a", level="MUST").verdict == Verdict.FAIL
    assert Finding(Verdict.FAIL, "s", "e", "a", level="SHOULD").verdict == Verdict.WARN


CASE = """id: TP_WSF_WS_901
title: t
sut: wsf
kind: negative
severity: minor
refs: ["RFC 6455 10.4"]
requires_pixit: [pixit.limits.wsf_max_ws_message_bytes]
steps:
  - name: s
    http: {url: "https://x/"}
    expect: [{status: 200, level: SHOULD}]
"""


def test_requires_pixit_makes_a_case_not_applicable_without_the_value(tmp_path: Path):
    p = tmp_path / "testcases" / "wsf" / "TP_WSF_WS_901.yaml"
    p.parent.mkdir(parents=True)
    (tmp_path / "testcases" / "fragments").mkdir()
    p.write_text(CASE)
    tc = load_testcase(p)
    assert tc.steps[0].expect[0].level == "SHOULD"
    assert tc.missing_pixit({"limits": {}}) == ["pixit.limits.wsf_max_ws_message_bytes"]
    assert not tc.applicable({}, {"limits": {}})
    assert tc.applicable({}, {"limits": {"wsf_max_ws_message_bytes": 65536}})


def test_requires_pixit_and_level_are_validated(tmp_path: Path):
    from conformance.model.testcase import TestCaseError

    p = tmp_path / "testcases" / "wsf" / "TP_WSF_WS_902.yaml"
    p.parent.mkdir(parents=True)
    (tmp_path / "testcases" / "fragments").mkdir()
    p.write_text(CASE.replace("TP_WSF_WS_901", "TP_WSF_WS_902").replace("level: SHOULD", "level: OUGHT"))
    with pytest.raises(TestCaseError) as exc:
        load_testcase(p)
    assert ":11:" in str(exc.value) and "MUST, SHOULD or MAY" in str(exc.value)


def test_index_any_holds_when_one_value_does():
    login = HttpExchange(method="POST", url="https://tp/login", status=303, reason="See Other",
                         headers=[("Set-Cookie", "csrf=1; Path=/; Secure"),
                                  ("Set-Cookie", "sid=2; Path=/; Secure; HttpOnly")])
    first, some, none = check([{"header": "Set-Cookie", "regex": "(?i);\\s*httponly"},
                               {"header": "Set-Cookie", "index": "any", "regex": "(?i);\\s*httponly"},
                               {"header": "Set-Cookie", "index": "any", "regex": "(?i);\\s*samesite"}],
                              login, MatchContext())
    assert (first.verdict, some.verdict, none.verdict) == (Verdict.FAIL, Verdict.PASS, Verdict.FAIL)
    assert "(some value)" in some.expected
