"""What live capture costs per test case over a long session (issue 15): testcases/flow/
TP_FLOW_REG_001.yaml run N times by the harness with one session-wide capture, as the pytest
plugin runs it, against the reference network (free ports, temporary state).

Reported, from CPU clocks (wall times on a shared machine are noise):
- the main thread's CPU in `CaptureFactory.finish` per case (settle, dissection of the case's
  packets, window, plaintext pcapng, capture assertions, SVG ladder), as medians of the first,
  middle and last 20 cases: a per-case cost that grows with the session shows here;
- with --parts, the same split by function (dissection, outputs, assertions, ladder, ...), each
  counted in the thread that called it: the dissection runs mostly in the feeder thread, which
  dissects while the case runs, and its CPU per run is printed too;
- the sniffer thread's CPU per captured packet (`/proc/self/task/TID/stat`, 10 ms ticks), for
  harness runs (--mode harness) or hand-written script runs with the sniffer in the process
  (--mode script: what the sniffer alone costs a client that does nothing else with capture).

Needs root (packet socket) and the binding's addresses: run it in a network namespace.

    interop/netns.sh .venv/bin/python benchmarks/bench_capture_case.py [--cases 150] [--mode harness|script] [--parts]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "integration"))
sys.path.insert(0, str(ROOT / "benchmarks"))

import handwritten_flow  # noqa: E402
from bench_harness_flow import CASE, _check_harness  # noqa: E402
from machine import describe  # noqa: E402

from conformance.model.profile import load_profile  # noqa: E402
from conformance.model.testcase import load_testcase  # noqa: E402
from conformance.run.capture_hook import CaptureFactory  # noqa: E402
from conformance.run.engine import Engine  # noqa: E402
from conformance.run.reporter import NullReporter  # noqa: E402
from profiles import write_profile  # noqa: E402
from refnet.config import NetworkConfig, Options  # noqa: E402
from refnet.launcher import free_endpoints, start  # noqa: E402

PARTS = [  # (module, class or None, function): the pieces of a case's capture analysis
    ("conformance.capture.stream", "SessionAnalysis", "feed"),
    ("conformance.capture.stream", "SessionAnalysis", "window"),
    ("conformance.capture.stream", "SessionAnalysis", "write"),
    ("conformance.capture.assertions", None, "evaluate_capture"),
    ("conformance.capture.assertions", None, "match_block"),
    ("conformance.report.ladder", None, "render_ladder"),
    ("conformance.report.capture_steps", None, "report_capture_entries"),
    ("conformance.capture.sniff", "CaptureSession", "flush"),
]


class CpuTimer:
    """Accumulates the calling thread's CPU time spent in wrapped functions."""

    def __init__(self):
        self.totals: dict[str, float] = {}

    def wrap(self, owner, name: str, key: str) -> None:
        orig = getattr(owner, name)
        self.totals[key] = 0.0

        def timed(*args, **kwargs):
            c0 = time.thread_time()
            try:
                return orig(*args, **kwargs)
            finally:
                self.totals[key] += time.thread_time() - c0

        setattr(owner, name, timed)


# the sniffer's reader threads (capture.sniff), and Scapy's AsyncSniffer of earlier commits
SNIFFER_THREADS = ("sniffer-", "AsyncSniffer")
FEEDER_THREADS = ("capture-feeder",)  # dissects while the case runs (conformance.run.capture_hook.Feeder)


def thread_cpu_ms(name_prefixes: tuple[str, ...]) -> float:
    """CPU time (user + system) of this process's threads whose name starts with one of the prefixes."""
    total = 0
    for t in threading.enumerate():
        if t.name.startswith(name_prefixes) and t.native_id:
            with open(f"/proc/self/task/{t.native_id}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime in clock ticks
    return total * 1000 / os.sysconf("SC_CLK_TCK")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--cases", type=int, default=150, help="harness (or script) runs in the session")
    p.add_argument("--mode", choices=("harness", "script"), default="harness")
    p.add_argument("--parts", action="store_true", help="also split finish() by function")
    a = p.parse_args()
    if os.geteuid() != 0:
        print("needs root (live capture)", file=sys.stderr)
        return 2
    print("machine: " + ", ".join(f"{k} {v}" for k, v in describe().items()))
    import importlib

    timer = CpuTimer()
    timer.wrap(CaptureFactory, "finish", "finish")
    if a.parts:
        for mod, cls, fn in PARTS:
            m = importlib.import_module(mod)
            timer.wrap(getattr(m, cls) if cls else m, fn, f"{cls or mod.rsplit('.', 1)[1]}.{fn}")
    tmp = Path(tempfile.mkdtemp(prefix="bench-capture-case-"))
    net = factory = None
    try:
        net = start(NetworkConfig(str(tmp / "state"), endpoints=free_endpoints(prefer_defaults=False),
                                  options=Options(signalling="relay", verify="introspection")))
        profile = load_profile(write_profile(net, tmp))
        tc = load_testcase(CASE)
        factory = CaptureFactory(profile, tmp / "work")
        hand = handwritten_flow.target_from_pixit(profile.pixit, Path(profile.base_dir))

        def harness() -> None:
            _check_harness(Engine(profile, reporter=NullReporter(), workdir=tmp / "work",
                                  capture_factory=factory).run(tc), True)

        harness()  # starts the session's sniffer; warms up both sides
        handwritten_flow.run_once(hand)
        run = harness if a.mode == "harness" else (lambda: handwritten_flow.run_once(hand))
        for k in timer.totals:
            timer.totals[k] = 0.0
        sniffer0, packets0 = thread_cpu_ms(SNIFFER_THREADS), len(factory.session.records)
        feeder0 = thread_cpu_ms(FEEDER_THREADS)
        per_case, c0 = [], time.process_time()
        for _ in range(a.cases):
            before = timer.totals["finish"]
            run()
            per_case.append((timer.totals["finish"] - before) * 1000)
        cpu = (time.process_time() - c0) * 1000 / a.cases
        sniffer_ms, packets = thread_cpu_ms(SNIFFER_THREADS) - sniffer0, len(factory.session.records) - packets0
        print(f"load average (1 min) at end: {os.getloadavg()[0]:.2f}")
        print(f"{a.cases} {a.mode} runs, one capture session: process CPU {cpu:.1f} ms per run")
        print(f"sniffer thread: {sniffer_ms:.0f} ms CPU for {packets} packets = "
              f"{1000 * sniffer_ms / max(1, packets):.1f} us per packet ({packets / a.cases:.0f} packets per run)")
        feeder_ms = thread_cpu_ms(FEEDER_THREADS) - feeder0
        print(f"feeder thread (dissection while the case runs): {feeder_ms / a.cases:.1f} ms CPU per run")
        if a.mode == "harness":
            n, mid = min(20, a.cases), a.cases // 2
            thirds = (per_case[:n], per_case[max(0, mid - n // 2):mid + n // 2], per_case[-n:])
            print("CaptureFactory.finish, main-thread CPU per case, median of first / middle / last "
                  f"{n}: " + " / ".join(f"{statistics.median(x):.2f}" for x in thirds) + " ms")
            if a.parts:
                print("split, mean CPU per case of the calling thread, main or feeder (ms): " + ", ".join(
                    f"{k} {v * 1000 / a.cases:.2f}" for k, v in timer.totals.items() if k != "finish"))
    finally:
        if factory is not None:
            factory.close()
        if net is not None:
            net.stop_all()
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
