"""What a test engineer hands on: the conformance statement of a run with a fault, and every file
a run writes, grepped for the profile's secrets in every encoding they travel in."""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from urllib.parse import quote, quote_plus

import yaml

from profiles import profile_dict

REPO = Path(__file__).resolve().parents[2]


def cli(*args, env=None, timeout=300, bootstrap=""):
    code = bootstrap + "\nimport sys\nfrom conformance.cli import main\nsys.exit(main(sys.argv[1:]))"
    return subprocess.run([sys.executable, "-c", code, *args], cwd=REPO, capture_output=True, text=True,
                          timeout=timeout, env=env)


def test_statement_fails_exactly_the_requirements_cited_by_failing_checks(refnet_factory, tmp_path):
    """wsf-forward-bearer breaks step 17 only: the requirements that fail are those the failing
    checks cite, not every requirement of the four failing test cases (cookie flags, PKCE, ...)."""
    net = refnet_factory(faults=["wsf-forward-bearer"], fresh="statement")
    profile = tmp_path / "profile.yaml"
    profile.write_text(yaml.safe_dump(profile_dict(net), sort_keys=False))
    results = tmp_path / "allure-results"
    proc = cli("run", "--profile", str(profile), "--alluredir", str(results), "--workdir", str(tmp_path / "w"),
               "--sut", "wsf", "--sut", "flow")
    assert proc.returncode == 1, proc.stdout[-3000:] + proc.stderr[-3000:]
    records = json.loads((results / "ims-conformance" / "verdicts-main.json").read_text())["results"]
    failed_cases = {r["id"] for r in records if r["verdict"] == "fail"}
    assert failed_cases == {"TP_FLOW_REG_001", "TP_WSF_REG_003", "TP_WSF_REG_004", "TP_WSF_SIP_004"}
    # a report rendered later, with another workdir, still states this run
    proc = cli("report", "--alluredir", str(results), "--output", str(tmp_path / "report"),
               "--workdir", str(tmp_path / "other"))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    doc = json.loads((tmp_path / "report" / "ics.json").read_text())
    failed = {r["requirement"] for r in doc["requirements"] if r["verdict"] == "fail"}
    assert failed == {"BINDING step 17", "RFC 6750 5.3", "TS 24.229 5.2.2.1", "TS 24.229 5.4.1.2.2"}
    by_ref = {r["requirement"]: r for r in doc["requirements"]}
    # requirements of the failing cases that their checks did not break still pass
    assert by_ref["RFC 8898 2.2"]["verdict"] == "pass"
    bad = [c for c in by_ref["RFC 6750 5.3"]["checks"] if c["verdict"] == "fail"]
    assert [c["test_case"] for c in bad] == ["TP_WSF_REG_004"] and bad[0]["link"].startswith("index.html#/")
    # the statement is not an Allure test result
    names = [json.loads(p.read_text())["name"] for p in results.glob("*-result.json")]
    assert not any("statement" in n.lower() for n in names)
    assert "TP_WSF_REG_004: WSF never forwards the Bearer credential into the IMS core" in names


# -- secrets ---------------------------------------------------------------------------------------
PROVISIONED = "Pw7provisioned"  # every password the harness provisions starts so (see BOOTSTRAP)
BOOTSTRAP = f"""
import itertools, secrets, types
import conformance.run.identities as ids
_n = itertools.count()
ids.secrets = types.SimpleNamespace(token_hex=secrets.token_hex, randbelow=secrets.randbelow,
                                    token_urlsafe=lambda n=12: "{PROVISIONED}%04dX" % next(_n))
"""


def encodings(value: str, client_ids=("",)) -> set[str]:
    """The forms a secret can be found in: raw, URL-encoded, JSON-escaped, base64 (alone and as
    the password of an HTTP Basic credential)."""
    forms = {value, quote(value, safe=""), quote_plus(value, safe=""), json.dumps(value)[1:-1]}
    forms |= {re.sub(r"%[0-9A-F]{2}", lambda m: m.group(0).lower(), f) for f in list(forms)}
    for raw in [value.encode()] + [f"{c}:{value}".encode() for c in client_ids] + \
               [f"{quote(c, safe='')}:{quote(value, safe='')}".encode() for c in client_ids]:
        for enc in (base64.b64encode(raw), base64.urlsafe_b64encode(raw)):
            forms |= {enc.decode(), enc.decode().rstrip("=")}
    return forms


def every_output(*roots: Path) -> list[Path]:
    return [p for root in roots if root.exists() for p in sorted(root.rglob("*")) if p.is_file()]


def test_no_secret_in_any_output_of_a_run(refnet_factory, tmp_path):
    net = refnet_factory(fresh="secrets")
    doc = profile_dict(net)
    env = dict(os.environ)
    secret_values = {}

    def from_env(holder: dict, key: str, var: str):
        secret_values[var] = holder[key]
        env[var] = holder[key]
        holder[key] = f"${{env:{var}}}"

    oauth, users = doc["pixit"]["oauth"], doc["pixit"]["users"]
    from_env(oauth, "client_secret", "T_CLIENT_SECRET")
    from_env(oauth, "introspection_client_secret", "T_INTROSPECTION_SECRET")
    from_env(users["provisioning"], "token", "T_PROVISIONING_TOKEN")
    for name, user in users["fixtures"].items():
        from_env(user, "password", f"T_{name.upper()}_PASSWORD")
        from_env(user, "tp_password", f"T_{name.upper()}_TP_PASSWORD")
    profile = tmp_path / "profile.yaml"
    profile.write_text(yaml.safe_dump(doc, sort_keys=False))
    out = {k: tmp_path / k for k in ("results", "work", "report")}
    junit = tmp_path / "junit.xml"
    cases = "TP_FLOW_REG_001 or TP_AS_TOKEN_001 or TP_AS_INTRO_001 or TP_3RDWWS_LOGIN_001 or TP_AS_AUTHZ_001"
    run = cli("run", "--profile", str(profile), "--alluredir", str(out["results"]), "--workdir", str(out["work"]),
              "-k", cases, "--junitxml", str(junit), env=env, bootstrap=BOOTSTRAP)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    report = cli("report", "--alluredir", str(out["results"]), "--output", str(out["report"]),
                 "--workdir", str(out["work"]), env=env)
    assert report.returncode == 0, report.stdout + report.stderr
    files = every_output(*out.values(), junit)
    assert any(p.suffix == ".pcapng" for p in files) and any(p.name == "index.html" for p in files)
    # the provisioned users really went over the wire (their passwords are secrets too)
    assert (out["work"] / "verdicts-main.json").exists()
    client_ids = (doc["pixit"]["oauth"]["client_id"], doc["pixit"]["oauth"]["introspection_client_id"])
    needles = {var: encodings(v, client_ids) for var, v in secret_values.items()}
    needles.update({f"provisioned {n}": encodings(f"{PROVISIONED}{n:04d}X") for n in range(40)})
    blobs = [(str(p), p.read_bytes()) for p in files] + [("stdout", run.stdout.encode()),
                                                          ("stderr", run.stderr.encode())]
    leaks = [(name, where) for name, forms in needles.items() for where, data in blobs
             for form in forms if form.encode() in data]
    assert not leaks, leaks[:20]
    # the provisioned passwords were redacted where they appeared, not merely absent
    assert any(b"<redacted:user.password>" in data for _, data in blobs)
    # the secrets did cross the captured legs, and the test cases' pcapngs show where, redacted
    # (the provisioning token crosses before a case's capture window opens: it was only in the
    # session-wide capture, which is no longer written; that it leaks nowhere is checked above)
    pcaps = b"".join(data for where, data in blobs if where.endswith(".pcapng"))
    for name in ("pixit.oauth.client_secret", "pixit.oauth.introspection_client_secret",
                 "user.password", "user.tp_password"):
        assert f"<redacted:{name}>".encode() in pcaps, name
    # the reference network's state file with the secrets is its owner's only
    assert (Path(net.cfg.state_dir) / "network.json").stat().st_mode & 0o077 == 0
    assert not any(p.name.endswith(".tls-secrets.pcapng") for p in files)


# -- offline analysis -------------------------------------------------------------------------------
def test_analyze_passes_on_the_harness_own_captures_of_passing_positive_cases(refnet_factory, tmp_path):
    net = refnet_factory(fresh="analyze")
    profile = tmp_path / "profile.yaml"
    profile.write_text(yaml.safe_dump(profile_dict(net), sort_keys=False))
    run = cli("run", "--profile", str(profile), "--alluredir", str(tmp_path / "r"), "--workdir", str(tmp_path / "w"),
              "-k", "positive and capture")
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    records = json.loads((tmp_path / "w" / "verdicts-main.json").read_text())["results"]
    passed = sorted(r["id"] for r in records if r["verdict"] == "pass")
    assert len(passed) >= 10, passed
    for case in passed:
        pcap = tmp_path / "w" / "captures" / f"{case}.pcapng"
        proc = cli("analyze", str(pcap), "--profile", str(profile), "--case", case,
                   "--alluredir", str(tmp_path / "ra"), "--workdir", str(tmp_path / f"wa-{case}"))
        verdicts = {r["id"]: r["verdict"] for r in
                    json.loads((tmp_path / f"wa-{case}" / "verdicts-main.json").read_text())["results"]}
        assert proc.returncode == 0 and verdicts[case] == "pass", (case, proc.stdout[-2000:])
    # the whole catalog on one registration: nothing fails; what the trace cannot judge says why
    flow = tmp_path / "w" / "captures" / "TP_FLOW_REG_001.pcapng"
    proc = cli("analyze", str(flow), "--profile", str(profile), "--alluredir", str(tmp_path / "rb"),
               "--workdir", str(tmp_path / "wb"))
    records = json.loads((tmp_path / "wb" / "verdicts-main.json").read_text())["results"]
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert {r["verdict"] for r in records} <= {"pass", "not applicable"}
    negative = [r for r in records if r["kind"] == "negative"]
    assert negative and all("negative test case" in r["reason"] or "PICS" in r["reason"] for r in negative)
    assert any("negative test case" in r["reason"] for r in negative)
    # the identity the trace shows, given by its IMPI; an identity it does not show is bad usage
    impi = next(r for r in records if r["id"] == "TP_FLOW_REG_001")
    assert impi["verdict"] == "pass"
    proc = cli("analyze", str(flow), "--profile", str(profile), "--case", "TP_FLOW_REG_001",
               "--user", "nobody@ims.example.net", "--alluredir", str(tmp_path / "rc"), "--workdir", str(tmp_path / "wc"))
    assert proc.returncode == 2 and "nobody@ims.example.net" in proc.stdout + proc.stderr


def test_analyze_still_fails_a_faulty_trace(refnet_factory, tmp_path):
    net = refnet_factory(faults=["wsf-keep-web-id"], fresh="analyze-fault")
    profile = tmp_path / "profile.yaml"
    profile.write_text(yaml.safe_dump(profile_dict(net), sort_keys=False))
    run = cli("run", "--profile", str(profile), "--alluredir", str(tmp_path / "r"), "--workdir", str(tmp_path / "w"),
              "-k", "TP_FLOW_REG_001")
    assert run.returncode == 1, run.stdout[-3000:]
    proc = cli("analyze", str(tmp_path / "w" / "captures" / "TP_FLOW_REG_001.pcapng"), "--profile", str(profile),
               "--case", "TP_FLOW_REG_001", "--alluredir", str(tmp_path / "ra"), "--workdir", str(tmp_path / "wa"))
    assert proc.returncode == 1, proc.stdout[-3000:]
    assert "TP_FLOW_REG_001" in proc.stdout and "fail" in proc.stdout
