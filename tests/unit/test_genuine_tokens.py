"""Negative token cases use genuine tokens from the AS (issue 9 item 4): a profile that cannot
supply one makes them inconclusive ("not exercised"), never pass; forging stays for what forging
tests."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from conformance.model.profile import load_profile
from conformance.model.testcase import load_testcase
from conformance.run.engine import Engine
from conformance.verdicts import Verdict

REPO = Path(__file__).resolve().parents[2]
REFERENCE = REPO / "profiles" / "reference.yaml"
GENUINE = {  # case -> the PIXIT client it needs
    "wsf/TP_WSF_TOK_004.yaml": "short_lived_client",
    "wsf/TP_WSF_TOK_019.yaml": "short_lived_client",
    "as/TP_AS_INTRO_008.yaml": "short_lived_client",
    "wsf/TP_WSF_TOK_008.yaml": "other_audience_client",
}


def case(rel: str):
    return load_testcase(REPO / "testcases" / rel)


def profile_without(tmp_path: Path, client: str):
    doc = yaml.safe_load(REFERENCE.read_text())
    del doc["pixit"]["oauth"][client]
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return load_profile(path)


@pytest.mark.parametrize("rel", sorted(GENUINE))
def test_genuine_token_cases_forge_nothing(rel):
    tc = case(rel)
    assert not any(step.action == "forge_token" for step in tc.steps), f"{tc.id} forges its token"
    assert [n["pixit"] for n in tc.needs] == [f"oauth.{GENUINE[rel]}"]


@pytest.mark.parametrize("rel", sorted(GENUINE))
def test_without_the_client_the_case_is_not_exercised(tmp_path, rel):
    tc = case(rel)
    profile = profile_without(tmp_path, GENUINE[rel])
    # nothing is sent: the verdict comes before any step (the reference network is not running)
    result = Engine(profile, workdir=tmp_path / "work").run(tc)
    assert result.verdict == Verdict.INCONCLUSIVE
    assert result.reason.startswith("not exercised: ")
    assert f"pixit.oauth.{GENUINE[rel]}" in result.reason
    assert not result.steps


def test_with_the_client_nothing_is_missing():
    profile = load_profile(REFERENCE)
    for rel in GENUINE:
        assert case(rel).missing_needs(profile.pixit) == []


def test_empty_values_count_as_missing():
    tc = case("wsf/TP_WSF_TOK_008.yaml")
    assert tc.missing_needs({"oauth": {"other_audience_client": {}}})
    assert tc.missing_needs({})
