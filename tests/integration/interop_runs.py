"""What the interop tests share: a shipped profile moved into the test's own directory, one run of
interop/<part>/run.sh in a network namespace with its verdicts read back, and the check that a run
left no process behind (run.sh stops everything by PID)."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from processes import processes_naming  # tests/integration/processes.py

REPO = Path(__file__).resolve().parents[2]
EXIT_GRACE_S = 10.0  # stop.sh signals the processes; they may take a moment to exit


def profile_in(tmp_path: Path, name: str, state_dir: str, deviations: str) -> Path:
    """profiles/NAME with its state directory `.interop/STATE_DIR/` moved to tmp_path/state, and
    its expected-deviations file copied beside it."""
    text = (REPO / "profiles" / name).read_text().replace(f".interop/{state_dir}/", f"{tmp_path}/state/")
    shutil.copy(REPO / "profiles" / deviations, tmp_path / deviations)
    path = tmp_path / name
    path.write_text(text)
    return path


def pids_under(state: Path) -> list[int]:
    """Processes whose command line names the state directory (every process of the run does)."""
    return processes_naming(str(state))


def left_running(state: Path, grace_s: float = EXIT_GRACE_S) -> list[int]:
    """The run's processes still alive once a bounded grace period for their exit has passed."""
    deadline = time.monotonic() + grace_s
    while (pids := pids_under(state)) and time.monotonic() < deadline:
        time.sleep(0.2)
    return pids


@dataclass
class PartRun:
    returncode: int
    output: str  # the tail of what the run printed, for assertion messages
    results: dict[str, dict]  # test case id -> its record in the run's verdict files
    allure_results: int  # Allure result files the run wrote into its own WORK/allure-results


def run_part(part: str, profile: Path, work: Path, *args: str, timeout_s: float) -> PartRun:
    """`interop/netns.sh interop/PART/run.sh PROFILE WORK ARGS...`, bounded by `timeout_s`."""
    proc = subprocess.run([str(REPO / "interop/netns.sh"), str(REPO / "interop" / part / "run.sh"), str(profile),
                           str(work), *args], cwd=REPO, capture_output=True, text=True, timeout=timeout_s)
    results = {r["id"]: r for f in work.glob("verdicts-*.json") for r in json.loads(f.read_text())["results"]}
    # run.sh keeps each run's Allure results in WORK: under -n 2 two interop runs at once once
    # shared ./allure-results, and the one that started later emptied it under the other.
    allure = len(list((work / "allure-results").glob("*-result.json")))
    return PartRun(proc.returncode, proc.stdout[-4000:] + proc.stderr[-2000:], results, allure)
