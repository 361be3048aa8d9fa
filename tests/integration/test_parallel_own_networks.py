"""`-n 2` with the shipped reference profile (`launch: true`): the controller starts one reference
network per worker while the workers start (conformance.run.worker_network_start), each worker
runs against its own, the cases that wait a stated time go to one worker and the others to the
other (conformance.run.long_first), and every node is stopped at the end. Runs in a network namespace of its own (the profile's fixed addresses and the workers'
127.1.0.x / 127.2.0.x blocks). Needs root (ip netns)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from processes import processes_naming  # tests/integration/processes.py

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root for a network namespace (ip netns)")

# two that wait a stated time of at least long_first.LONG_WAIT_MS (a poll up to the profile's
# expiry_wait_ms, a token's expiry), four that do not (a poll up to 1 s is dealt with the work)
WAITING = ("TP_SCSCF_EXP_006", "TP_WSF_TOK_004")
CASES = (*WAITING, "TP_WSF_WSC_001", "TP_FLOW_REG_001", "TP_WSF_WS_001", "TP_AS_TOKEN_001")

# after the run, in the same namespace: does anything still listen at a worker's addresses?
LEFT_RUNNING = """
import socket, sys
left = []
for block in ("127.1.0", "127.2.0"):
    for host, port in ((f"{block}.11", 8443), (f"{block}.12", 9443), (f"{block}.13", 10443)):
        try:
            socket.create_connection((host, port), timeout=0.5).close()
            left.append(f"{host}:{port}")
        except OSError:
            pass
print("LEFT RUNNING:", left)
"""


def test_two_workers_each_run_against_the_network_the_controller_started_for_it(tmp_path):
    work = tmp_path / "w"
    run = [sys.executable, "-m", "conformance.cli", "run", "--profile", "profiles/reference.yaml",
           "--alluredir", str(tmp_path / "r"), "--workdir", str(work), "-n", "2", "-k", " or ".join(CASES)]
    script = f"{subprocess.list2cmdline(run)}; echo EXIT $?; {subprocess.list2cmdline([sys.executable, '-c', LEFT_RUNNING])}"
    proc = subprocess.run([str(REPO / "interop" / "netns.sh"), "sh", "-c", script], cwd=REPO,
                          capture_output=True, text=True, timeout=300)
    out = proc.stdout + proc.stderr
    assert "EXIT 0" in proc.stdout, out[-4000:]
    per_worker = {}
    for f in work.glob("verdicts-gw*.json"):
        per_worker[f.stem] = {r["id"]: r["verdict"] for r in json.loads(f.read_text())["results"]}
    verdicts = {k: v for results in per_worker.values() for k, v in results.items()}
    assert verdicts == dict.fromkeys(CASES, "pass"), out[-4000:]
    # the controller started both workers' networks and said so to each
    for index in (0, 1):
        assert json.loads((work / "worker-networks" / f"gw{index}.json").read_text()) == {"ok": True}
    # both networks' nodes were forked from one fork server (refnet.launcher.shared_zygote),
    # which said nothing went wrong
    assert (work / "worker-networks" / "zygote.log").read_text() == ""
    # each worker handed the controller the waits it sorted by, under this run's one token
    handed = [json.loads((work / "stated-waits" / f"gw{index}.json").read_text()) for index in (0, 1)]
    assert handed[0]["run"] == handed[1]["run"] and handed[0]["waits"] == handed[1]["waits"]
    assert {nodeid.rsplit("::", 1)[-1] for nodeid in handed[0]["waits"]} >= set(WAITING)
    # one worker started with the two waiting cases, the other with cases that do not wait
    orders = sorted((list(results) for results in per_worker.values()), key=lambda ids: ids[0] not in WAITING)
    assert sorted(orders[0][:2]) == sorted(WAITING), per_worker
    assert not any(case in WAITING for case in orders[1]), per_worker
    assert "LEFT RUNNING: []" in proc.stdout, out[-2000:]
    # the workers' fork server (conformance/run/worker_zygote.py) ended with the run, and its
    # workers with it; the log of its stderr says nothing went wrong
    assert processes_naming(str(work.resolve())) == []
    assert (work / "worker-zygote.log").read_text() == ""
