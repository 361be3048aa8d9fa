"""The machine a benchmark ran on, printed with every result (numbers mean nothing without it)."""

from __future__ import annotations

import contextlib
import os
import platform
from pathlib import Path


def describe(**extra) -> dict:
    model = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {"platform": platform.platform(), "cpu": model, "cores": os.cpu_count(),
            "usable_cores": len(os.sched_getaffinity(0)), "python": platform.python_version(),
            "loadavg_at_start": round(os.getloadavg()[0], 2), **extra}
