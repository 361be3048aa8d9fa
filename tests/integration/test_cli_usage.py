"""The command line on mistakes and in CI: exit 2 with a message for an empty selection or a bad
path, explicit catalog paths used whatever their folder is called, one line per test case and a
summary by node, JUnit XML with the requirement references as properties, help for every option."""

from __future__ import annotations

import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml
from processes import processes_naming  # tests/integration/processes.py

from profiles import profile_dict

REPO = Path(__file__).resolve().parents[2]
RELAY = REPO / "testcases" / "flow" / "TP_FLOW_REG_001.yaml"


def cli(*args, timeout=300):
    return subprocess.run([sys.executable, "-m", "conformance.cli", *args], cwd=REPO, capture_output=True,
                          text=True, timeout=timeout)


@pytest.fixture
def odd_catalog(tmp_path) -> Path:
    """The relay flow case and the fragments in a folder that is not called testcases/."""
    cat = tmp_path / "my-lab-cases"
    shutil.copytree(REPO / "testcases" / "fragments", cat / "fragments")
    (cat / "flow").mkdir()
    shutil.copy(RELAY, cat / "flow" / RELAY.name)
    return cat


def test_validate_uses_explicit_paths_and_rejects_missing_ones(odd_catalog):
    proc = cli("validate", str(odd_catalog))
    assert proc.returncode == 0 and "1 test case valid" in proc.stdout, proc.stdout + proc.stderr
    proc = cli("validate", str(odd_catalog / "flow" / RELAY.name))
    assert proc.returncode == 0 and "1 test case valid" in proc.stdout, proc.stdout + proc.stderr
    proc = cli("validate", "/nonexistent/catalog")
    assert proc.returncode == 2 and "no such file or directory" in proc.stderr
    (odd_catalog / "empty").mkdir()
    proc = cli("validate", str(odd_catalog / "empty"))
    assert proc.returncode == 2 and "no test case" in proc.stderr


def test_bad_usage_exits_2_with_a_message(tmp_path):
    for args in (["list", "--sut", "bogus"], ["run", "--profile", "profiles/reference.yaml", "--sut", "bogus"]):
        proc = cli(*args)
        assert proc.returncode == 2 and "invalid choice: 'bogus'" in proc.stderr, args
    proc = cli("report", "--alluredir", str(tmp_path / "nonexistent"))
    assert proc.returncode == 2 and "no such directory" in proc.stderr
    (tmp_path / "empty").mkdir()
    proc = cli("report", "--alluredir", str(tmp_path / "empty"))
    assert proc.returncode == 2 and "no Allure results" in proc.stderr
    (tmp_path / "a-file").write_text("")
    proc = cli("run", "--profile", "profiles/reference.yaml", "--workdir", str(tmp_path / "a-file"))
    assert proc.returncode == 2 and "not a directory" in proc.stderr and "Traceback" not in proc.stderr


def test_every_option_has_help():
    from conformance.cli import build_parser

    parser = build_parser()
    subparsers = next(a for a in parser._actions if a.choices and isinstance(a.choices, dict)).choices
    missing = [f"{name} {'/'.join(a.option_strings) or a.dest}" for name, sp in subparsers.items()
               for a in sp._actions if not a.help and a.dest != "help"]
    assert not missing, missing


def test_run_lines_summary_junit_and_empty_selection(refnet_factory, tmp_path, odd_catalog):
    profile = tmp_path / "profile.yaml"
    profile.write_text(yaml.safe_dump(profile_dict(refnet_factory(fresh="cli-usage")), sort_keys=False))
    junit = tmp_path / "junit.xml"
    proc = cli("run", "--profile", str(profile), "--catalog", str(odd_catalog), "--alluredir", str(tmp_path / "r"),
               "--workdir", str(tmp_path / "w"), "--junitxml", str(junit))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    line = next(li for li in proc.stdout.splitlines() if li.startswith("TP_FLOW_REG_001 "))
    assert "Full registration through the third-party application" in line and " pass " in line
    assert line.rstrip().endswith(" s")
    table = proc.stdout[proc.stdout.index("node "):]
    assert "flow" in table and "all" in table and "pass" in table.splitlines()[0]
    case = ET.parse(junit).getroot().find(".//testcase")
    props = {(p.get("name"), p.get("value")) for p in case.iter("property")}
    assert ("ims_verdict", "pass") in props and ("ref", "RFC 8898 2.1") in props, props
    # an empty selection is an error, not a green run
    proc = cli("run", "--profile", str(profile), "--catalog", str(odd_catalog), "--alluredir", str(tmp_path / "r2"),
               "--workdir", str(tmp_path / "w2"), "-k", "NOMATCH")
    assert proc.returncode == 2 and "no test case selected" in proc.stderr, proc.stdout[-2000:] + proc.stderr
    proc = cli("run", "--profile", str(profile), "--catalog", str(odd_catalog), "--alluredir", str(tmp_path / "r3"),
               "--workdir", str(tmp_path / "w3"), "--sut", "as")
    assert proc.returncode == 2 and "--sut as" in proc.stderr


def test_a_bad_profile_under_n_stops_the_workers_fork_server(tmp_path):
    """`run -n N` starts the workers' fork server before it loads the profile (its imports are what
    the workers wait for): a profile that does not load still ends the run cleanly, server included."""
    bad = tmp_path / "bad.yaml"
    bad.write_text("pics: [unclosed\n")
    work = tmp_path / "work-of-this-test"
    proc = cli("run", "--profile", str(bad), "-n", "2", "--workdir", str(work), "--alluredir", str(tmp_path / "r"))
    assert proc.returncode == 2 and str(bad) in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
    assert processes_naming(str(work.resolve())) == []  # the server names the work directory it serves
    assert not (work / "worker-zygote.log").exists() or (work / "worker-zygote.log").read_text() == ""
