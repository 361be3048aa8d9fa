"""The whole catalog against the reference network with capture on (issue 5): wall time of
`ims-conformance run --profile profiles/reference.yaml`, serially and with `-n 2`.

    .venv/bin/python benchmarks/bench_catalog.py [--runs 3]

Each run launches the reference network itself (the profile says `launch: true`), as
`make demo` does, so the time includes starting and stopping it. Prints the machine, the median
wall time of each mode, the speed-up, and the verdict counts of every run (a run whose verdicts
are not all pass / not applicable is reported as such: with -n 2 several test cases share the
capture windows of the same network, see docs/capture.md).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from machine import describe  # noqa: E402 - benchmarks/machine.py, run as a script

ROOT = Path(__file__).resolve().parents[1]


def machine() -> str:
    m = describe()
    return f"{m['platform']}, {m['cpu']}, {m['cores']} cores, Python {m['python']}"


def run_once(extra: list[str]) -> tuple[float, dict, int]:
    work = Path(tempfile.mkdtemp(prefix="bench-catalog-"))
    cmd = [sys.executable, "-m", "conformance.cli", "run", "--profile", "profiles/reference.yaml",
           "--alluredir", str(work / "results"), "--workdir", str(work / "w"), *extra]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=900)
    wall = time.perf_counter() - t0
    counts: dict[str, int] = {}
    for f in (work / "w").glob("verdicts-*.json"):
        for r in json.loads(f.read_text())["results"]:
            counts[r["verdict"]] = counts.get(r["verdict"], 0) + 1
    return wall, counts, proc.returncode


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--runs", type=int, default=3)
    a = p.parse_args()
    print(f"machine: {machine()}; load average {os.getloadavg()[0]:.1f}")
    results = {}
    for label, extra in (("serial", []), ("-n 2", ["-n", "2"])):
        walls = []
        for _ in range(a.runs):
            wall, counts, rc = run_once(extra)
            walls.append(wall)
            print(f"  {label:7} {wall:6.1f} s  exit {rc}  verdicts {counts}")
        results[label] = statistics.median(walls)
    print(f"median serial {results['serial']:.1f} s (goal <= 60 s); -n 2 {results['-n 2']:.1f} s; "
          f"speed-up {results['serial'] / results['-n 2']:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
