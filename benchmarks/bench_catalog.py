"""The whole catalog against the reference network with capture on (issues 5 and 15): wall time of
`ims-conformance run --profile profiles/reference.yaml`, serially and with `-n 2`.

    interop/netns.sh .venv/bin/python benchmarks/bench_catalog.py [--runs 3] [--workers 2] [--cold-catalog]

(in a network namespace of its own: the networks bind the profile's fixed addresses, and the
workers' networks the next loopback blocks)

Each run launches the reference network itself (the profile says `launch: true`), as
`make demo` does, so the time includes starting and stopping it (with `-n`, one network per
worker: conformance/run/worker_network.py). Runs alternate serial / parallel round by round, so
other load on the machine hits both alike. Printed per run: wall time, CPU time of the run and
everything it started (harness, workers, reference networks), verdict counts; then the medians,
the speed-up (goal: >= 1.7x with -n 2, issue 15), the serial time per test case and that time
scaled to a 200-case catalog (goal: <= 30 s), and whether every test case got the same verdict
in every run (the speed-up counts only if it did). Under each run, where its wall time went: the
sum of the test cases' own times per process (serially "main", under -n each worker: how even
the split was), of which the ten longest (the cases that wait a stated time), and the rest of the
wall time outside the busiest process's test cases (start-up, collection, pytest between cases,
stop).

The catalog is validated once, untimed, and every run takes it from the run before it, as a
user's repeated runs in the same work directory do (conformance/run/catalog_cache.py; about 0.6 s
of CPU each run does not spend); `--cold-catalog` makes every run validate it from scratch.

The environment's PYTHONDONTWRITEBYTECODE is passed on: with it set, every process (each
worker, each node of each network) compiles its imports from source, which a normal install
does not; the benchmark says which it was.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from machine import describe  # noqa: E402 - benchmarks/machine.py, run as a script

ROOT = Path(__file__).resolve().parents[1]
SPEEDUP_GOAL = 1.7
GOAL_200_S = 30.0


def machine() -> str:
    m = describe()
    return f"{m['platform']}, {m['cpu']}, {m['cores']} cores, Python {m['python']}"


def foreign_network() -> bool:
    """Someone else's reference network at the profile's fixed addresses: the run would use it
    (launch: true starts one only when none listens), with another CA: not comparable."""
    import socket

    try:
        with socket.create_connection(("127.0.0.12", 9443), timeout=0.5):
            return True
    except OSError:
        return False


def run_once(extra: list[str], catalog_cache: Path | None = None
             ) -> tuple[float, float, dict[str, str], int, dict[str, dict[str, float]]]:
    """(wall s, CPU s of the run and its children, verdict per test case, exit status, seconds of
    each test case per process that ran it: "main" serially, "gw0", "gw1", ... under -n).
    `catalog_cache`: the validated catalog an earlier run kept (conformance/run/catalog_cache.py)
    is put into this run's work directory, and what this run kept is put back there."""
    work = Path(tempfile.mkdtemp(prefix="bench-catalog-"))
    kept = work / "w" / "catalog-cache"
    if catalog_cache is not None and catalog_cache.is_dir():
        shutil.copytree(catalog_cache, kept)
    try:  # a run leaves ~100 MB of Allure results and captures: gone once its verdicts are read
        cmd = [sys.executable, "-m", "conformance.cli", "run", "--profile", "profiles/reference.yaml",
               "--alluredir", str(work / "results"), "--workdir", str(work / "w"), *extra]
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=900)
        wall = time.perf_counter() - t0
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        verdicts: dict[str, str] = {}
        seconds: dict[str, dict[str, float]] = {}
        for f in (work / "w").glob("verdicts-*.json"):
            for r in json.loads(f.read_text())["results"]:
                verdicts[r["id"]] = r["verdict"]
                seconds.setdefault(f.stem.removeprefix("verdicts-"), {})[r["id"]] = float(r["seconds"])
        if catalog_cache is not None and kept.is_dir():
            shutil.rmtree(catalog_cache, ignore_errors=True)
            shutil.copytree(kept, catalog_cache)
        return wall, cpu, verdicts, proc.returncode, seconds
    finally:
        shutil.rmtree(work, ignore_errors=True)


def breakdown(seconds: dict[str, dict[str, float]], wall: float) -> str:
    """Where the wall time went: the test cases of each process (the ten that wait longest
    apart), and what is outside every test case (start-up, collection, pytest per case, stop)."""
    parts = []
    for proc, cases in sorted(seconds.items()):
        if not cases:
            continue
        longest = sorted(cases.values(), reverse=True)[:10]
        parts.append(f"{proc}: {len(cases)} cases {sum(cases.values()):.1f} s (10 longest {sum(longest):.1f} s)")
    busiest = max((sum(c.values()) for c in seconds.values()), default=0.0)
    return "; ".join(parts) + f"; outside the busiest process's cases {wall - busiest:.1f} s"


def counts(verdicts: dict[str, str]) -> dict[str, int]:
    out: dict[str, int] = {}
    for v in verdicts.values():
        out[v] = out.get(v, 0) + 1
    return dict(sorted(out.items()))


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--cold-catalog", action="store_true",
                   help="every run validates the catalog from scratch (default: as a user's repeated runs do, "
                        "each run takes the catalog the run before it validated; an untimed run validates first)")
    a = p.parse_args()
    parallel = f"-n {a.workers}"
    print(f"machine: {machine()}; load average {os.getloadavg()[0]:.1f}; "
          f"PYTHONDONTWRITEBYTECODE={'set' if os.environ.get('PYTHONDONTWRITEBYTECODE') else 'unset'}")
    modes = {"serial": [], parallel: ["-n", str(a.workers)]}
    walls: dict[str, list[float]] = {m: [] for m in modes}
    cpus: dict[str, list[float]] = {m: [] for m in modes}
    reference: dict[str, str] | None = None
    identical = True
    cache = None
    if not a.cold_catalog:
        cache = Path(tempfile.mkdtemp(prefix="bench-catalog-cache-")) / "catalog-cache"
        run_once(["-k", "no test case has this name"], cache)  # untimed: validates and keeps the catalog
        print(f"  catalog: validated by an untimed run first and kept between runs "
              f"({'yes' if cache.is_dir() else 'NOT kept: every run validates it'})", flush=True)
    for r in range(a.runs):
        order = list(modes) if r % 2 == 0 else list(reversed(modes))
        for mode in order:
            if foreign_network():
                print("  WARNING: a reference network already listens at the profile's addresses (another "
                      "user's?): this run uses it, its verdicts and times are not comparable", flush=True)
            wall, cpu, verdicts, rc, seconds = run_once(modes[mode], cache)
            walls[mode].append(wall)
            cpus[mode].append(cpu)
            if reference is None:
                reference = verdicts
            diff = sorted(k for k in reference.keys() | verdicts.keys() if reference.get(k) != verdicts.get(k))
            identical = identical and not diff
            print(f"  {mode:7} {wall:6.1f} s wall {cpu:6.1f} s CPU  load {os.getloadavg()[0]:4.1f}  exit {rc}  "
                  f"verdicts {counts(verdicts)}"
                  + (f"  DIFFERENT from the first run: {', '.join(f'{k} {verdicts.get(k)}' for k in diff)}"
                     if diff else ""), flush=True)
            print(f"          {breakdown(seconds, wall)}", flush=True)
    serial, par = statistics.median(walls["serial"]), statistics.median(walls[parallel])
    n_cases = len(reference or {})
    per_case = serial / max(1, n_cases)
    speedup = serial / par
    print(f"median serial {serial:.1f} s ({statistics.median(cpus['serial']):.1f} s CPU), {parallel} {par:.1f} s "
          f"({statistics.median(cpus[parallel]):.1f} s CPU); speed-up {speedup:.2f}x (goal >= {SPEEDUP_GOAL}x); "
          f"verdicts identical in every run: {'yes' if identical else 'NO'}")
    print(f"serial: {n_cases} test cases, {per_case * 1000:.0f} ms each including start-up; "
          f"scaled to 200 test cases {per_case * 200:.1f} s (goal <= {GOAL_200_S:.0f} s); "
          f"load average at the end {os.getloadavg()[0]:.1f}")
    if cache is not None:
        shutil.rmtree(cache.parent, ignore_errors=True)
    return 0 if identical else 1


if __name__ == "__main__":
    sys.exit(main())
