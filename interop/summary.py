"""Verdict counts of the interop runs: `python interop/summary.py .interop/results` prints one
line per run directory (the work directory `ims-conformance run` left), and each non-pass."""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path


def summarize(results_dir: Path) -> str:
    lines = []
    for run in sorted(p for p in results_dir.iterdir() if p.is_dir()):
        results = [r for f in sorted(run.glob("verdicts-*.json")) for r in json.loads(f.read_text())["results"]]
        if not results:
            lines.append(f"{run.name}: no verdicts (the run did not start; see its output)")
            continue
        counts = Counter(r["verdict"] + (" (expected deviation)" if r.get("expected_deviation") else "")
                         for r in results)
        lines.append(f"{run.name}: " + ", ".join(f"{v}: {n}" for v, n in sorted(counts.items())))
        lines += [f"  {r['id']}: {r['verdict']}{' (expected deviation)' if r.get('expected_deviation') else ''}"
                  for r in results if r["verdict"] not in ("pass", "not applicable")]
    return "\n".join(lines)


if __name__ == "__main__":
    print(summarize(Path(sys.argv[1] if len(sys.argv) > 1 else ".interop/results")))
