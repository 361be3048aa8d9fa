"""The README's examples are valid as written, and every shipped YAML file has its JSON Schema
mapped for editors."""

from __future__ import annotations

import fnmatch
import json
import re
import shutil
from pathlib import Path

import yaml

from conformance.model.deviations import parse_deviations
from conformance.model.profile import load_profile
from conformance.model.testcase import check_testcase
from conformance.model.yaml_marks import load_file

REPO = Path(__file__).resolve().parents[2]
README = (REPO / "README.md").read_text()


def test_readme_negative_test_case_example_validates(tmp_path):
    m = re.search(r"```yaml\n(id: TP_WSF_TOK_901\n.*?)```", README, re.S)
    assert m, "the worked example is gone from the README"
    shutil.copytree(REPO / "testcases" / "fragments", tmp_path / "testcases" / "fragments")
    (tmp_path / "testcases" / "wsf").mkdir()
    case = tmp_path / "testcases" / "wsf" / "TP_WSF_TOK_901.yaml"
    case.write_text(m.group(1))
    tc, problems = check_testcase(case)
    assert not problems and tc is not None, problems
    # it runs as written on a shipped profile: its PICS selection holds for reference-direct
    profile = load_profile(REPO / "profiles" / "reference-direct.yaml")
    assert tc.pics.evaluate(profile.pics)
    assert "--profile profiles/reference-direct.yaml -k TP_WSF_TOK_901" in README


def test_readme_deviations_example_validates(tmp_path):
    m = re.search(r"```yaml\n\s*# acme-deviations.yaml\n(.*?)```", README, re.S)
    assert m, "the deviations example is gone from the README"
    path = tmp_path / "acme-deviations.yaml"
    path.write_text("\n".join(line[3:] if line.startswith("   ") else line for line in m.group(1).splitlines()))
    items, problems = load_file(path)
    assert not problems, problems
    deviations, problems = parse_deviations(items, str(path))
    assert not problems, problems
    assert [(d.id, d.verdict) for d in deviations] == [("TP_WSF_REG_007", "fail")]


def test_every_shipped_yaml_has_its_schema_mapped_for_editors():
    mapping = json.loads((REPO / ".vscode" / "settings.json").read_text())["yaml.schemas"]
    for schema in mapping:
        assert (REPO / schema).is_file(), schema
    # an expected-deviations file is a list with no schema of its own: the profile naming it is
    # validated together with it (conformance/model/deviations.py)
    shipped = [p.relative_to(REPO).as_posix() for d in ("testcases", "profiles") for p in (REPO / d).rglob("*.yaml")
               if not p.name.endswith(".deviations.yaml")]
    assert shipped
    for rel in shipped:
        owners = [schema for schema, globs in mapping.items()
                  if any(fnmatch.fnmatch(rel, g) for g in globs if not g.startswith("!"))
                  and not any(fnmatch.fnmatch(rel, g[1:]) for g in globs if g.startswith("!"))]
        assert len(owners) == 1, (rel, owners)
        kind = Path(owners[0]).name.split(".")[0]
        doc = yaml.safe_load((REPO / rel).read_text())
        assert kind != "fragment" or "fragment" in doc, rel
        assert kind != "testcase" or "id" in doc, rel
        assert kind != "profile" or "pixit" in doc, rel
