"""The harness driving the reference network over the wire: the full 1-22 flow passes on a
conformant network, and fails, naming what broke, when a fault is switched on."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from conformance.model.profile import load_profile
from conformance.model.testcase import load_testcase
from conformance.run.capture_hook import CaptureFactory
from conformance.run.engine import Engine
from conformance.run.reporter import NullReporter
from conformance.verdicts import Verdict
from profiles import write_profile

REPO = Path(__file__).resolve().parents[2]
RELAY = REPO / "testcases/flow/TP_FLOW_REG_001.yaml"
DIRECT = REPO / "testcases/flow/TP_FLOW_REG_002.yaml"


def run_case(net, tmp_path, case: Path, capture=True):
    profile = load_profile(write_profile(net, tmp_path))
    reporter = NullReporter()
    factory = CaptureFactory(profile, tmp_path / "work") if capture else None
    try:
        result = Engine(profile, reporter=reporter, workdir=tmp_path / "work", capture_factory=factory).run(
            load_testcase(case))
    finally:
        if factory is not None:
            factory.close()
    return result, reporter


def failing(result) -> str:
    return "\n".join(f.describe() for f in result.failures())


def test_relay_flow_passes_with_every_step_asserted(refnet_factory, tmp_path):
    result, reporter = run_case(refnet_factory(), tmp_path, RELAY)
    assert result.verdict == Verdict.PASS, result.summary()
    flow = set().union(*(set(s.flow) for s in result.steps))
    assert flow >= {1, 2, 3, 4, 5, 6, 7, 8, 11, 12, 22}
    captured = {f.subject for f in result.findings if f.subject.startswith("capture")}
    for step in (12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22):
        assert any(f"step {step} " in s for s in captured), (step, captured)
    assert any(name.startswith("sip sent") for name, _ in reporter.attachments)


def test_direct_flow_passes(refnet_factory, tmp_path):
    result, _ = run_case(refnet_factory(signalling="direct"), tmp_path, DIRECT)
    assert result.verdict == Verdict.PASS, result.summary()


@pytest.mark.parametrize("fault, evidence", [
    ("scscf-no-associated-uri", "P-Associated-URI"),
    ("wsf-skip-verification", "step 15 missing"),
    ("wsf-no-auth-done", "integrity-protected"),
    ("pcscf-no-visited-network-id", "P-Visited-Network-ID"),
    ("as-state-dropped", "query state"),
])
def test_flow_fails_and_names_the_broken_requirement(refnet_factory, tmp_path, fault, evidence):
    result, _ = run_case(refnet_factory(faults=[fault]), tmp_path, RELAY)
    assert result.verdict == Verdict.FAIL, result.summary()
    assert evidence in failing(result), failing(result)


def test_unreachable_sut_is_inconclusive_not_a_crash(tmp_path, refnet_factory):
    net = refnet_factory()
    profile_path = write_profile(net, tmp_path)
    data = profile_path.read_text().replace(f":{net.cfg.endpoints['3rdwws'].port}", ":9")
    profile_path.write_text(data)
    profile = load_profile(profile_path)
    result = Engine(profile, workdir=tmp_path / "w").run(load_testcase(RELAY))
    assert result.verdict == Verdict.INCONCLUSIVE, result.summary()


@pytest.fixture
def flow_catalog(tmp_path) -> str:
    """The two flow cases and the fragments, copied: the CLI tests do not depend on the rest of the
    catalog."""
    import shutil

    cat = tmp_path / "catalog" / "testcases"
    shutil.copytree(REPO / "testcases" / "fragments", cat / "fragments")
    (cat / "flow").mkdir(parents=True)
    for case in (RELAY, DIRECT):
        shutil.copy(case, cat / "flow" / case.name)
    return str(cat)


def cli(*args, cwd=REPO, timeout=300):
    return subprocess.run([sys.executable, "-m", "conformance.cli", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=timeout)


def test_cli_run_exit_codes_verdicts_and_redaction(refnet_factory, tmp_path, flow_catalog):
    good = write_profile(refnet_factory(fresh="cli"), tmp_path, "good.yaml")
    results = tmp_path / "allure-results"
    proc = cli("run", "--profile", str(good), "--alluredir", str(results), "--workdir", str(tmp_path / "w"),
               "--catalog", flow_catalog)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    verdicts = json.loads((tmp_path / "w" / "verdicts-main.json").read_text())["results"]
    assert {r["id"]: r["verdict"] for r in verdicts} == {"TP_FLOW_REG_001": "pass",
                                                          "TP_FLOW_REG_002": "not applicable"}
    written = "".join(p.read_text(errors="replace") for p in results.iterdir() if p.suffix in (".json", ".txt"))
    assert "thirdparty-webrtc-app-secret" not in written and "refnet-admin-token" not in written
    assert (results / "environment.properties").read_text().count("PICS.signalling.path=relay") == 1

    bad = write_profile(refnet_factory(faults=["scscf-no-service-route"], fresh="cli"), tmp_path, "bad.yaml")
    proc = cli("run", "--profile", str(bad), "--alluredir", str(tmp_path / "r2"), "--workdir", str(tmp_path / "w2"),
               "--catalog", flow_catalog, "-k", "TP_FLOW_REG_001")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "Service-Route" in proc.stdout


def test_cli_validate_rejects_a_broken_case_with_its_line(tmp_path):
    catalog = tmp_path / "testcases" / "wsf"
    catalog.mkdir(parents=True)
    (catalog / "TP_X.yaml").write_text("id: TP_WSF_X_001\ntitle: t\nsut: wsf\nkind: negative\nseverity: minor\n"
                                       "refs: [x]\nsteps:\n  - wait: {ms: 1}\n    expcet: []\n")
    proc = cli("validate", str(tmp_path / "testcases"))
    assert proc.returncode == 2
    assert "TP_X.yaml:9:5" in proc.stdout, proc.stdout


def test_expected_deviation_turns_a_known_failure_into_xfail_and_goes_stale_loudly(refnet_factory, tmp_path,
                                                                                   flow_catalog):
    faulty = write_profile(refnet_factory(faults=["scscf-no-service-route"], fresh="deviation"), tmp_path,
                           "faulty.yaml")
    (tmp_path / "deviations.yaml").write_text(
        "- id: TP_FLOW_REG_001\n  reason: Service-Route not sent before release 2.0\n  verdict: fail\n")
    faulty.write_text(faulty.read_text() + "expected_deviations: deviations.yaml\n")
    proc = cli("run", "--profile", str(faulty), "--alluredir", str(tmp_path / "r"), "--workdir", str(tmp_path / "w"),
               "--catalog", flow_catalog, "-k", "TP_FLOW_REG_001")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "xfail" in proc.stdout.lower() and "Service-Route not sent" in proc.stdout

    fixed = write_profile(refnet_factory(fresh="deviation"), tmp_path, "fixed.yaml")
    fixed.write_text(fixed.read_text() + "expected_deviations: deviations.yaml\n")
    proc = cli("run", "--profile", str(fixed), "--alluredir", str(tmp_path / "r2"), "--workdir", str(tmp_path / "w2"),
               "--catalog", flow_catalog, "-k", "TP_FLOW_REG_001")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "remove it from the deviations file" in proc.stdout


def test_parallel_workers_judge_only_their_own_captured_messages(refnet_factory, tmp_path, flow_catalog):
    """-n 2 against one network: four registrations at once; each test case's capture checks see
    its own legs only (no false fail from the others' REGISTERs), and a fault is still caught."""
    flow = Path(flow_catalog) / "flow"
    relay = (flow / RELAY.name).read_text()
    for n in range(101, 105):
        (flow / f"TP_FLOW_REG_{n}.yaml").write_text(relay.replace("TP_FLOW_REG_001", f"TP_FLOW_REG_{n}"))
    for faults, expected, name in (([], "pass", "ok"), (["wsf-skip-verification"], "fail", "bad")):
        profile = write_profile(refnet_factory(faults=faults, fresh="parallel"), tmp_path, f"{name}.yaml")
        proc = cli("run", "--profile", str(profile), "--alluredir", str(tmp_path / f"r-{name}"),
                   "--workdir", str(tmp_path / f"w-{name}"), "--catalog", flow_catalog, "-n", "2",
                   "-k", "TP_FLOW_REG_1")
        verdicts = {}
        for f in (tmp_path / f"w-{name}").glob("verdicts-*.json"):
            verdicts.update({r["id"]: r["verdict"] for r in json.loads(f.read_text())["results"]})
        assert verdicts == {f"TP_FLOW_REG_{n}": expected for n in range(101, 105)}, proc.stdout[-3000:]
