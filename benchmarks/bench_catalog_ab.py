"""Before/after for `-n 2` of the whole catalog: `-n 2` of another checkout (before), `-n 2` and
serial of this one (after), round by round, the order reversed every other round.

    git worktree add --detach /tmp/before main
    ln -s "$PWD/.venv" /tmp/before/.venv
    interop/netns.sh .venv/bin/python benchmarks/bench_catalog_ab.py --before /tmp/before [--runs 3]

On a shared machine the spread between two runs of the same configuration is as large as most
changes; interleaving the two trees lets the load hit both alike. Each run is bench_catalog's
`run_once` (python -m conformance.cli in that checkout: its own code, the same interpreter and
packages). Printed per run: wall, CPU, load, verdicts, where the time went; then the medians and
the speed-up over this checkout's serial run, before and after. Exit 1 if a verdict differs.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from pathlib import Path

import bench_catalog as bench  # benchmarks/bench_catalog.py, run as a script

HERE = Path(__file__).resolve().parents[1]


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--before", required=True, help="the other checkout (a worktree of the base commit)")
    p.add_argument("--runs", type=int, default=3)
    a = p.parse_args()
    before = Path(a.before).resolve()
    runs = [("before -n 2", before, ["-n", "2"]), ("after -n 2", HERE, ["-n", "2"]), ("after serial", HERE, [])]
    walls: dict[str, list[float]] = {name: [] for name, _, _ in runs}
    first: dict[str, str] | None = None
    identical = True
    print(f"machine: {bench.machine()}; before = {before}")
    for r in range(a.runs):
        for name, root, extra in runs if r % 2 == 0 else reversed(runs):
            bench.ROOT = root
            load = os.getloadavg()[0]
            wall, cpu, verdicts, rc, seconds = bench.run_once(extra)
            first = first or verdicts
            same = verdicts == first
            identical = identical and same
            walls[name].append(wall)
            print(f"round {r + 1} {name:13} {wall:6.1f} s wall {cpu:5.1f} s CPU  load {load:4.1f}  exit {rc}  "
                  f"verdicts {bench.counts(verdicts)}{'' if same else '  DIFFERENT from the first run'}\n"
                  f"      {bench.breakdown(seconds, wall)}", flush=True)
    med = {k: statistics.median(v) for k, v in walls.items()}
    rounds = zip(walls["after serial"], walls["before -n 2"], walls["after -n 2"])
    print("medians: " + ", ".join(f"{k} {v:.1f} s" for k, v in med.items()))
    print(f"speed-up over serial: before {med['after serial'] / med['before -n 2']:.2f}x, after "
          f"{med['after serial'] / med['after -n 2']:.2f}x (goal >= {bench.SPEEDUP_GOAL}x); per round "
          + ", ".join(f"{s / b:.2f} / {s / n:.2f}" for s, b, n in rounds)
          + f"; verdicts identical in every run: {'yes' if identical else 'NO'}")
    return 0 if identical else 1


if __name__ == "__main__":
    sys.exit(main())
