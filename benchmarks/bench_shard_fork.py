"""Where an offline analysis split over processes forks (issue 15, capture.shards.Split): after
the capture is read and before its packets are scanned, as built, or after the scan, the simpler
way, where the other process takes its packets from this one's memory. Measured in one run,
interleaved round by round, on the capture of bench_capture.py: the whole analysis in one
process, split with the fork after the scan, split with the fork before it (what `analyze_file`
does). Medians of wall time; the minor page faults of this process while it dissects its own
shard show the copy-on-write cost of forking after the scan.

Run: .venv/bin/python benchmarks/bench_shard_fork.py [--packets 200000] [--rounds 10]
"""

from __future__ import annotations

import argparse
import gc
import json
import platform
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_capture import PIXIT, build_capture  # noqa: E402

from conformance.capture import _prepare, _read_file, analyze_file, shards  # noqa: E402


def _faults() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def fork_after_scan(pcap: Path, keylog: Path) -> tuple[float, int]:
    """Read and scan here, then fork: the other process dissects packets it inherited."""
    gc.disable()
    try:
        start = time.perf_counter()
        source = _read_file(pcap, PIXIT, True)
        log, _, scanner = _prepare(source, PIXIT, [keylog])
        packets = list(scanner.scan(source.records))
        split = shards.Split(2, lambda: (packets, log), PIXIT, 0)
        faults = _faults()
        split.finish(packets, log)
        return time.perf_counter() - start, _faults() - faults
    finally:
        gc.enable()


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--packets", type=int, default=200_000)
    ap.add_argument("--rounds", type=int, default=10)
    args = ap.parse_args()
    walls: dict[str, list[float]] = {"one_process": [], "fork_after_scan": [], "fork_before_scan": []}
    faults: list[int] = []
    with tempfile.TemporaryDirectory() as tmp:
        pcap, keylog = Path(tmp) / "bench.pcap", Path(tmp) / "keys.log"
        build_capture(pcap, keylog, args.packets, 0.045)
        for r in range(args.rounds):
            order = list(walls) if r % 2 == 0 else list(reversed(walls))
            for name in order:
                if name == "one_process":
                    walls[name].append(timed(lambda: analyze_file(pcap, PIXIT, [keylog], workers=1)))
                elif name == "fork_before_scan":
                    walls[name].append(timed(lambda: analyze_file(pcap, PIXIT, [keylog], workers=2)))
                else:
                    wall, n = fork_after_scan(pcap, keylog)
                    walls[name].append(wall)
                    faults.append(n)
                gc.collect()
    med = {name: statistics.median(v) for name, v in walls.items()}
    print(json.dumps({
        "machine": f"{platform.machine()} python={platform.python_version()}",
        "packets": args.packets, "rounds": args.rounds,
        "median_ms": {name: round(v * 1e3, 1) for name, v in med.items()},
        "speedup_vs_one_process": {name: round(med["one_process"] / v, 2) for name, v in med.items()},
        "fork_after_scan_minor_faults_during_own_shard": statistics.median(faults),
    }, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
