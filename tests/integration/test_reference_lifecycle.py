"""`ims-conformance reference up` stops every node on SIGTERM, SIGHUP and Ctrl-C, without a
traceback and with no process left behind; `run` never reuses a network started otherwise."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conformance.model.profile import load_profile
from conformance.run import reference

REPO = Path(__file__).resolve().parents[2]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie is gone for our purpose (its parent has not reaped it yet)
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


@pytest.mark.parametrize("how", ["SIGTERM", "SIGHUP", "Ctrl-C"])
def test_reference_up_stops_every_node(how, tmp_path):
    state = tmp_path / "state"
    cli = subprocess.Popen([sys.executable, "-m", "conformance.cli", "reference", "up", "--free-ports",
                            "--state-dir", str(state), "--node", "scscf", "--node", "pcscf"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=REPO, start_new_session=True)
    ready = state / "ready.json"
    nodes: list[int] = []
    try:
        deadline = time.monotonic() + 60
        while not ready.exists():
            assert cli.poll() is None and time.monotonic() < deadline, cli.communicate(timeout=5)
            time.sleep(0.1)
        nodes = [n["pid"] for n in json.loads(ready.read_text())["nodes"].values()]
        assert nodes and all(_alive(p) for p in nodes)
        if how == "Ctrl-C":
            os.killpg(cli.pid, signal.SIGINT)  # the terminal signals the whole foreground group
        else:
            cli.send_signal(getattr(signal, how))
        out, err = cli.communicate(timeout=30)
    finally:  # a failed stop must not leave the CLI, refnet and its nodes behind for the next tests
        if cli.poll() is None:
            os.killpg(cli.pid, signal.SIGKILL)
            cli.wait(10)
        for pid in nodes:
            if _alive(pid):
                os.killpg(pid, signal.SIGKILL)  # each node leads its own group
    assert b"Traceback" not in err, err.decode()
    assert b"reference network stopped" in out, out.decode()
    stop_by = time.monotonic() + 10
    while any(_alive(p) for p in nodes) and time.monotonic() < stop_by:
        time.sleep(0.1)
    assert not [p for p in nodes if _alive(p)], "nodes left running"


def test_run_refuses_a_network_started_with_other_faults(tmp_path):
    profile = load_profile(REPO / "profiles" / "reference.yaml")
    cfg = reference.network_config(profile)
    cfg.state_dir = str(tmp_path)
    ready = {"faults": ["wsf-skip-verification"], "options": {}}
    from dataclasses import asdict

    ready["options"] = asdict(cfg.options)
    (tmp_path / "ready.json").write_text(json.dumps(ready))
    with pytest.raises(reference.NetworkMismatch, match="wsf-skip-verification"):
        reference.check_running(cfg, "127.0.0.12:9443")
    ready["faults"] = []
    ready["options"]["verify"] = "other"
    (tmp_path / "ready.json").write_text(json.dumps(ready))
    with pytest.raises(reference.NetworkMismatch, match="options"):
        reference.check_running(cfg, "127.0.0.12:9443")
    ready["options"] = asdict(cfg.options)
    (tmp_path / "ready.json").write_text(json.dumps(ready))
    reference.check_running(cfg, "127.0.0.12:9443")  # the same network: reused
    (tmp_path / "ready.json").unlink()
    with pytest.raises(reference.NetworkMismatch, match="does not describe it"):
        reference.check_running(cfg, "127.0.0.12:9443")
