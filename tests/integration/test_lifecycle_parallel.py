"""The lifecycle cases that keep several WebSockets and wait for requests from the network (reg
event, network-initiated de-registration, WebSocket loss) run under `-n 2` against one reference
network: every verdict is pass (docs/lifecycle.md; the whole catalog's verdicts on the conformant
network are checked by test_fault_matrix.py)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

from profiles import write_profile

REPO = Path(__file__).resolve().parents[2]
SELECT = ("TP_SCSCF_REGEV_", "TP_WSF_REGEV_", "TP_SCSCF_NETDEREG_", "TP_WSF_WSC_", "TP_SCSCF_DEV_")


def test_lifecycle_cases_pass_under_two_workers(refnet_factory, tmp_path):
    cat = tmp_path / "catalog" / "testcases"
    shutil.copytree(REPO / "testcases" / "fragments", cat / "fragments")
    (cat / "lifecycle").mkdir(parents=True)
    chosen = [p for p in sorted((REPO / "testcases" / "lifecycle").glob("*.yaml")) if p.name.startswith(SELECT)]
    for p in chosen:
        shutil.copy(p, cat / "lifecycle" / p.name)
    profile = write_profile(refnet_factory(token_lifetime_s=8, fresh="lifecycle"), tmp_path)
    proc = subprocess.run([sys.executable, "-m", "conformance.cli", "run", "--profile", str(profile),
                           "--alluredir", str(tmp_path / "r"), "--workdir", str(tmp_path / "w"),
                           "--catalog", str(cat), "-n", "2"],
                          capture_output=True, text=True, timeout=600, cwd=REPO)
    verdicts = {}
    for f in (tmp_path / "w").glob("verdicts-*.json"):
        verdicts.update({r["id"]: r["verdict"] for r in json.loads(f.read_text())["results"]})
    assert len(verdicts) == len(chosen) >= 15, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert set(verdicts.values()) == {"pass"}, (verdicts, proc.stdout[-3000:])
