"""Pass with warnings through the CLI and pytest: a violated SHOULD passes (exit 0) and says so in
the terminal, in Allure (label, category message) and in the verdict file; --strict fails it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from profiles import write_profile

REPO = Path(__file__).resolve().parents[2]

CASE = """id: TP_AS_META_901
title: metadata with one SHOULD the reference AS does not meet
sut: as
kind: positive
severity: minor
refs: ["RFC 8414 3"]
user: alice
steps:
  - name: fetch the metadata
    http: {url: "${pixit.nodes.as.base_url}/.well-known/oauth-authorization-server"}
    expect:
      - {status: 200, ref: RFC 8414 3}
      - {json: $.x_not_a_member, present: true, ref: RFC 8414 2, level: SHOULD}
  - name: a warning does not stop the case; this step runs and warns too
    http: {url: "${pixit.nodes.as.base_url}/.well-known/oauth-authorization-server"}
    expect:
      - {header: X-Not-A-Header, present: true, ref: RFC 8414 3.2, level: MAY}
"""


def cli(*args):
    return subprocess.run([sys.executable, "-m", "conformance.cli", *args], cwd=REPO, capture_output=True,
                          text=True, timeout=300)


def test_should_violation_passes_with_warnings_and_strict_fails_it(refnet_factory, tmp_path):
    cat = tmp_path / "testcases"
    (cat / "fragments").mkdir(parents=True)
    (cat / "as").mkdir()
    (cat / "as" / "TP_AS_META_901.yaml").write_text(CASE)
    profile = write_profile(refnet_factory(fresh="warn"), tmp_path)
    results = tmp_path / "allure"
    proc = cli("run", "--profile", str(profile), "--alluredir", str(results), "--workdir", str(tmp_path / "w"),
               "--catalog", str(cat), "--no-capture", "--", "-v")
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert "PASS WITH WARNINGS" in out and "verdicts: pass with warnings: 1" in out
    [rec] = json.loads((tmp_path / "w" / "verdicts-main.json").read_text())["results"]
    assert rec["verdict"] == "pass with warnings" and rec["warned_refs"] == ["RFC 8414 2", "RFC 8414 3.2"]
    [res] = [json.loads(p.read_text()) for p in results.glob("*-result.json")]
    assert res["status"] == "passed"
    assert res["statusDetails"]["message"].startswith("PASS WITH WARNINGS")
    assert {"name": "verdict", "value": "pass with warnings"} in res["labels"]
    categories = json.loads((results / "categories.json").read_text())
    assert any(c["matchedStatuses"] == ["passed"] and "WARNINGS" in c["messageRegex"] for c in categories)

    proc = cli("run", "--profile", str(profile), "--alluredir", str(tmp_path / "a2"), "--workdir",
               str(tmp_path / "w2"), "--catalog", str(cat), "--no-capture", "--strict")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    [rec] = json.loads((tmp_path / "w2" / "verdicts-main.json").read_text())["results"]
    assert rec["verdict"] == "fail" and "--strict" in rec["reason"]
