"""Harness overhead on the whole 1-22 flow (issue 2): testcases/flow/TP_FLOW_REG_001.yaml run by
the harness against the reference network, compared in the same run with a minimal hand-written
script doing the same exchanges (benchmarks/handwritten_flow.py: requests + websocket-client,
status codes only). Goals: median(harness, capture off) / median(hand-written) <= 1.25 (issue 2);
median(harness, capture on) / median(hand-written) <= 1.3 (issue 15: live capture, decryption,
the capture assertions, pcapng and diagram cost little more than the exchanges themselves).

One run, on both sides: provisioning of a fresh user (POST /admin/users on the AS; the harness
does it for every test case, so the script does too), then steps 1-22 as a new browser. The
harness run is `Engine(profile, NullReporter(), capture_factory=...).run(tc)`, an Engine per run
as the pytest plugin makes, the test case and profile loaded once (bench_validate.py measures
loading). The ratio without provisioning is printed too.

One reference network (free ports, temporary state), two phases, each: warm-up runs, then N
rounds of one hand-written and one harness run, the order alternating, so drift and noise from
other processes hit both alike.
- Phase B (needs root), first, on the fresh network: capture on, one session-wide capture as the
  pytest plugin runs it (sniffer on lo, per-case window, TLS decryption, capture assertions,
  pcapng and SVG ladder, and the adaptive settle: the window ends when the capture has caught up
  and every expected message is in, `settle_ms` only bounds it). The sniffer thread lives in
  this process, so the script's runs of this phase pay for it too; the ratio against the
  script of phase A (no sniffer at all) is printed as well.
- Phase A (the goal), sniffer stopped: capture off. The script captures nothing, so this is the
  comparable configuration.
Per run: wall time (perf_counter), this process's CPU time (the client side: the network runs in
its own processes), provisioning time, capture-analysis time. Reported: medians, p90, ratio of
medians with a 95 % bootstrap interval, median of per-round ratios.

    .venv/bin/python benchmarks/bench_harness_flow.py [--quick] [--runs 30] [--warmup 3]
        [--no-capture] [--profile {auto,always,never}] [--json FILE] [--strict]

--quick: 5 rounds, 1 warm-up. --profile auto (default) runs extra capture-off harness runs under
cProfile when the goal is missed and prints the hot spots, next to a profile of the script.
Exit status 1 when a run failed its sanity checks, or with --strict when the goal is missed.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import pstats
import random
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "integration"))  # profiles.py: the profile of a running network
sys.path.insert(0, str(ROOT / "benchmarks"))

import handwritten_flow  # noqa: E402
from machine import describe  # noqa: E402 - benchmarks/machine.py, run as a script

from conformance.model.profile import load_profile  # noqa: E402
from conformance.model.testcase import load_testcase  # noqa: E402
from conformance.run import identities  # noqa: E402
from conformance.run.capture_hook import CaptureFactory  # noqa: E402
from conformance.run.engine import Engine  # noqa: E402
from conformance.run.reporter import NullReporter  # noqa: E402
from conformance.verdicts import Verdict  # noqa: E402
from profiles import write_profile  # noqa: E402
from refnet.config import NetworkConfig, Options  # noqa: E402
from refnet.launcher import free_endpoints, start  # noqa: E402

CASE = ROOT / "testcases" / "flow" / "TP_FLOW_REG_001.yaml"
GOAL_RATIO = 1.25
GOAL_CAPTURE_ON = 1.3
EXPECTED_STEPS = 8  # 6 of the login_and_authorize fragment, ws_connect, REGISTER
PROFILE_RUNS = 10  # extra capture-off harness runs under cProfile when the goal is missed
TOP = 25  # functions shown per profile listing

HW, H_OFF, H_ON = "hand-written", "harness, capture off", "harness, capture on"
H_NOFEED = "harness, capture on, no feeder"


class SanityError(AssertionError):
    pass


def machine() -> dict:
    return describe()


# -- what one run is -------------------------------------------------------------------------------

@dataclass
class Sample:
    wall_s: float
    cpu_s: float  # this process (the client side; with capture on, the sniffer thread too)
    provisioning_s: float
    capture_window_s: float
    settle_ms: float | None = None  # adaptive settle after the last step (capture on)


@dataclass
class Config:
    name: str
    run: Callable[[], None]  # one run; raises SanityError
    samples: list[Sample] = field(default_factory=list)
    before: Callable[[], None] | None = None  # untimed, around every run (warm-up runs too)
    after: Callable[[], None] | None = None

    def once(self) -> None:
        if self.before:
            self.before()
        try:
            self.run()
        finally:
            if self.after:
                self.after()

    def measure(self) -> Sample:
        TIMERS.reset()
        if self.before:
            self.before()
        c0, t0 = time.process_time(), time.perf_counter()
        try:
            self.run()
        finally:
            c1, t1 = time.process_time(), time.perf_counter()
            if self.after:
                self.after()
        s = Sample(t1 - t0, c1 - c0, TIMERS.provisioning_s, TIMERS.window_s,
                   TIMERS.settle_ms)
        self.samples.append(s)
        return s


class Timers:
    """Times two parts of a run by wrapping them here (conformance/ is untouched): provisioning
    (the harness's IdentityProvider._provision; the script reports its own) and the per-case
    capture analysis (CaptureFactory.window: settle time, window selection, dissection, pcapng)."""

    def __init__(self):
        self.provisioning_s = self.window_s = 0.0
        self.settle_ms: float | None = None
        self._originals = []
        self._wrap(identities.IdentityProvider, "_provision", "provisioning_s")
        self._wrap(CaptureFactory, "window", "window_s")

    def _wrap(self, cls, name: str, attr: str) -> None:
        orig = getattr(cls, name)
        self._originals.append((cls, name, orig))
        timers = self

        def timed(*args, **kwargs):
            t0 = time.perf_counter()
            try:
                result = orig(*args, **kwargs)
                settle = getattr(result, "stats", {}).get("settle") if hasattr(result, "stats") else None
                if settle:
                    timers.settle_ms = settle.get("ms")
                return result
            finally:
                setattr(timers, attr, getattr(timers, attr) + time.perf_counter() - t0)

        setattr(cls, name, timed)

    def reset(self) -> None:
        self.provisioning_s = self.window_s = 0.0
        self.settle_ms = None

    def restore(self) -> None:
        for cls, name, orig in self._originals:
            setattr(cls, name, orig)


TIMERS: Timers  # set in main()


def harness_runner(profile, tc, workdir: Path, factory: CaptureFactory | None) -> Callable[[], None]:
    def run() -> None:
        result = Engine(profile, reporter=NullReporter(), workdir=workdir, capture_factory=factory).run(tc)
        _check_harness(result, factory is not None)

    return run


def _check_harness(result, capture: bool) -> None:
    """The same sanity as the script's asserts: every step ran and passed, nothing failed.

    Capture off: the capture assertions are inconclusive by design, nothing else may be.
    Capture on: the verdict must be pass; an inconclusive capture leg is counted
    (INCONCLUSIVE_RUNS) and reported, not rejected, so a capture problem shows in the output.
    """
    steps_ok = len(result.steps) == EXPECTED_STEPS and all(s.verdict == Verdict.PASS for s in result.steps)
    bad = [f for f in result.failures() if f.verdict != Verdict.INCONCLUSIVE or not f.subject.startswith("capture")]
    if not steps_ok or bad:
        raise SanityError(f"harness run ({'capture on' if capture else 'capture off'}):\n{result.summary()}")
    if capture and result.verdict != Verdict.PASS:
        INCONCLUSIVE_RUNS.append(sorted({f.subject.split(" (line")[0] for f in result.failures()}))


INCONCLUSIVE_RUNS: list[list[str]] = []  # capture-on runs with legs not observed: their subjects


def handwritten_runner(target) -> Callable[[], None]:
    def run() -> None:
        try:
            prov_s, _ = handwritten_flow.run_once(target)
        except AssertionError as exc:
            raise SanityError(f"hand-written run: {exc}") from exc
        TIMERS.provisioning_s = prov_s

    return run


def capture_check(run: Callable[[], None]) -> str | None:
    """None when a capture-on run passes; else why capture-on is not measured."""
    if os.geteuid() != 0:
        return "not root (live capture needs CAP_NET_RAW)"
    try:
        run()
    except SanityError as exc:
        return f"a capture-on run did not pass: {exc}"
    if INCONCLUSIVE_RUNS:
        return f"a capture-on run was inconclusive on: {'; '.join(INCONCLUSIVE_RUNS.pop())}"
    return None


def interleave(configs: list[Config], rounds: int, warmup: int, label: str) -> None:
    """Warm-up runs, then `rounds` rounds of one run per configuration, order rotating."""
    for c in configs:
        for _ in range(warmup):
            c.once()
    for c in configs:
        c.samples.clear()
    INCONCLUSIVE_RUNS.clear()
    for r in range(rounds):
        k = r % len(configs)
        for c in configs[k:] + configs[:k]:
            c.measure()
        print(f"{label} round {r + 1}/{rounds}: " + ", ".join(
            f"{c.name} {c.samples[-1].wall_s * 1000:.0f} ms" for c in configs), flush=True)


# -- statistics ------------------------------------------------------------------------------------

def p90(xs: list[float]) -> float:
    return statistics.quantiles(xs, n=10, method="inclusive")[8] if len(xs) > 1 else xs[0]


def summary(cfg: Config) -> dict:
    wall = [s.wall_s * 1000 for s in cfg.samples]
    flow = [(s.wall_s - s.provisioning_s) * 1000 for s in cfg.samples]
    cpu = [s.cpu_s * 1000 for s in cfg.samples]
    prov = [s.provisioning_s * 1000 for s in cfg.samples]
    window = [s.capture_window_s * 1000 for s in cfg.samples]
    half = max(1, len(window) // 3)
    return {"n": len(wall), "median_ms": statistics.median(wall), "p90_ms": p90(wall), "min_ms": min(wall),
            "flow_only_median_ms": statistics.median(flow), "provisioning_median_ms": statistics.median(prov),
            "client_cpu_median_ms": statistics.median(cpu), "client_cpu_p90_ms": p90(cpu),
            "capture_window_median_ms": statistics.median(window),
            "capture_window_first_third_median_ms": statistics.median(window[:half]),
            "capture_window_last_third_median_ms": statistics.median(window[-half:]),
            "wall_first_third_median_ms": statistics.median(wall[:half]),
            "wall_last_third_median_ms": statistics.median(wall[-half:])}


def bootstrap_ci(a: list[float], b: list[float], n: int = 2000, seed: int = 1) -> tuple[float, float]:
    """95 % percentile-bootstrap interval of median(a) / median(b): how much the noise of this
    machine leaves the ratio uncertain (a ratio under the goal with an interval across it is luck)."""
    rng = random.Random(seed)
    rs = sorted(statistics.median(rng.choices(a, k=len(a))) / statistics.median(rng.choices(b, k=len(b)))
                for _ in range(n))
    return rs[int(0.025 * n)], rs[int(0.975 * n) - 1]


def paired_ratio(a: Config, b: Config) -> float:
    """Median of the per-round ratios: robust to drift over the whole benchmark."""
    return statistics.median(x.wall_s / y.wall_s for x, y in zip(a.samples, b.samples, strict=True))


# -- profiling -------------------------------------------------------------------------------------

def profile_runs(run: Callable[[], None], n: int) -> str:
    """cProfile with a CPU clock: waiting for the network (the same on both sides) drops out and
    what is left is where the client spends its own time."""
    prof = cProfile.Profile(time.process_time)
    for _ in range(n):
        prof.enable()
        try:
            run()
        finally:
            prof.disable()
    out = io.StringIO()
    st = pstats.Stats(prof, stream=out).strip_dirs()
    out.write(f"--- CPU seconds, sorted by own time (tottime), {n} runs ---\n")
    st.sort_stats("tottime").print_stats(TOP)
    out.write(f"--- CPU seconds, sorted by cumulative time, {n} runs ---\n")
    st.sort_stats("cumulative").print_stats(TOP)
    return out.getvalue()


# -- main ------------------------------------------------------------------------------------------

def print_table(title: str, stats: dict, rounds: int) -> None:
    print(f"\n{title} (ms, N={rounds})")
    print(f"  {'configuration':22} {'median':>8} {'p90':>8} {'min':>8} {'w/o prov':>9} {'prov':>7} "
          f"{'client CPU':>10} {'capture analysis':>17}")
    for name, s in stats.items():
        print(f"  {name:22} {s['median_ms']:8.1f} {s['p90_ms']:8.1f} {s['min_ms']:8.1f} "
              f"{s['flow_only_median_ms']:9.1f} {s['provisioning_median_ms']:7.1f} "
              f"{s['client_cpu_median_ms']:10.1f} {s['capture_window_median_ms']:17.1f}")


def ratios(c: Config, base: Config) -> dict:
    s, b = summary(c), summary(base)
    lo, hi = bootstrap_ci([x.wall_s for x in c.samples], [x.wall_s for x in base.samples])
    return {"ratio_of_medians": s["median_ms"] / b["median_ms"], "ratio_of_medians_ci95": [lo, hi],
            "ratio_of_medians_without_provisioning": s["flow_only_median_ms"] / b["flow_only_median_ms"],
            "median_paired_ratio": paired_ratio(c, base),
            "client_cpu_ratio": s["client_cpu_median_ms"] / b["client_cpu_median_ms"]}


def print_ratio(name: str, r: dict, goal: float) -> None:
    tail = f"  goal <= {goal}: {'met' if r['ratio_of_medians'] <= goal else 'MISSED'}"
    lo, hi = r["ratio_of_medians_ci95"]
    print(f"  {name} / {HW}: ratio of medians {r['ratio_of_medians']:.3f} (95 % CI {lo:.2f}-{hi:.2f}){tail}\n"
          f"      without provisioning {r['ratio_of_medians_without_provisioning']:.3f}, median of per-round "
          f"ratios {r['median_paired_ratio']:.3f}, client CPU {r['client_cpu_ratio']:.2f}x")


def main() -> int:
    global TIMERS
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="5 rounds, 1 warm-up run per configuration")
    p.add_argument("--runs", type=int, default=None, help="rounds (one run per configuration each); default 30")
    p.add_argument("--warmup", type=int, default=None, help="warm-up runs per configuration; default 3")
    p.add_argument("--no-capture", action="store_true", help="skip phase B (capture on)")
    p.add_argument("--ab-feeder", action="store_true",
                   help="phase B also runs the harness with the feeder paused (all dissection at the window's end)")
    p.add_argument("--profile", choices=("auto", "always", "never"), default="auto",
                   help="cProfile the harness (capture off) when the goal is missed (auto), always or never")
    p.add_argument("--json", type=Path, help="also write the results as JSON")
    p.add_argument("--strict", action="store_true", help="exit 1 when the goal is missed")
    a = p.parse_args()
    rounds = a.runs or (5 if a.quick else 30)
    warmup = a.warmup if a.warmup is not None else (1 if a.quick else 3)

    info = machine()
    print("machine: " + ", ".join(f"{k} {v}" for k, v in info.items()))
    tmp = Path(tempfile.mkdtemp(prefix="bench-harness-flow-"))
    TIMERS = Timers()
    net = factory = None
    missed = False
    out: dict = {"machine": info, "case": str(CASE.relative_to(ROOT)), "rounds": rounds, "warmup": warmup}
    try:
        cfg = NetworkConfig(str(tmp / "state"), endpoints=free_endpoints(prefer_defaults=False),
                            options=Options(signalling="relay", verify="introspection"))
        net = start(cfg)
        profile = load_profile(write_profile(net, tmp))
        tc = load_testcase(CASE)
        hand = handwritten_flow.target_from_pixit(profile.pixit, Path(profile.base_dir))

        # Phase B, information, first: on a fresh network the session-wide sniffer starts before
        # the WSF opens its keep-alive connection to the AS (steps 15-16), as in a pytest session
        # whose first case captures. One capture session for the phase, as the pytest plugin runs
        # it; the sniffer thread is in this process, so the script's runs pay for it too.
        why_not = "--no-capture" if a.no_capture else None
        if why_not is None:
            factory = CaptureFactory(profile, tmp / "work-on")
            b_on = Config(H_ON, harness_runner(profile, tc, tmp / "work-on", factory))
            why_not = capture_check(b_on.run)
        out["capture_on_skipped"] = why_not
        if why_not is None:
            # The sniffer captures the script's traffic too. The harness's feeder, which dissects
            # while a case runs, is paused during the script's runs and catches up after them,
            # untimed: each side pays for dissecting its own traffic only, as in a pytest session.
            b_hw = Config(HW, handwritten_runner(hand), before=factory.pause_feeding, after=factory.resume_feeding)
            b_configs = [b_hw, b_on]
            if a.ab_feeder:  # the same session with its feeder paused: dissection only at the window's end
                b_configs.append(Config(H_NOFEED, harness_runner(profile, tc, tmp / "work-on", factory),
                                        before=factory.pause_feeding, after=factory.resume_feeding))
            interleave(b_configs, rounds, warmup, "B")
            out["phase_b"] = {c.name: summary(c) for c in b_configs}
            out["ratio_capture_on"] = r_on = ratios(b_on, b_hw)
            if a.ab_feeder:
                out["ratio_capture_on_no_feeder"] = ratios(b_configs[2], b_hw)
            out["capture_on_inconclusive_runs"] = len(INCONCLUSIVE_RUNS)
            inconclusive = list(INCONCLUSIVE_RUNS)
        if factory is not None:
            factory.close()  # stops the sniffer: phase A runs with none in the process
            factory = None

        # Phase A, the goal: no sniffer in this process.
        a_hw = Config(HW, handwritten_runner(hand))
        a_off = Config(H_OFF, harness_runner(profile, tc, tmp / "work-off", None))
        interleave([a_hw, a_off], rounds, warmup, "A")
        out["phase_a"] = {c.name: summary(c) for c in (a_hw, a_off)}
        out["ratio_capture_off"] = r_off = ratios(a_off, a_hw)
        missed = r_off["ratio_of_medians"] > GOAL_RATIO
        out["goal_met"] = not missed
        if why_not is None:
            out["goal_capture_on_met"] = r_on["ratio_of_medians"] <= GOAL_CAPTURE_ON
            missed = missed or not out["goal_capture_on_met"]

        info["loadavg_at_end"] = os.getloadavg()[0]
        print(f"\nload average (1 min): {info['loadavg_at_start']:.2f} at start, {info['loadavg_at_end']:.2f} at end")

        print_table("Phase A: capture off", out["phase_a"], rounds)
        print_ratio(H_OFF, r_off, goal=GOAL_RATIO)
        if why_not is None:
            settle = (tc.capture or {}).get("settle_ms")
            print_table(f"Phase B: capture on (session-wide sniffer; settle_ms {settle} per case included)",
                        out["phase_b"], rounds)
            print_ratio(H_ON, r_on, goal=GOAL_CAPTURE_ON)
            if a.ab_feeder:
                print_ratio(H_NOFEED, out["ratio_capture_on_no_feeder"], goal=GOAL_CAPTURE_ON)
            on = out["phase_b"][H_ON]
            cross = on["median_ms"] / out["phase_a"][HW]["median_ms"]
            out["ratio_capture_on_vs_script_without_sniffer"] = cross
            print(f"      against the script of phase A (no sniffer in the process; not interleaved): {cross:.3f}")
            settles = [x.settle_ms for x in b_on.samples if x.settle_ms is not None]
            if settles:
                print(f"      adaptive settle after the last step: median {statistics.median(settles):.1f} ms, "
                      f"max {max(settles):.1f} ms (settle_ms {settle} is the upper bound)")
            print(f"      capture analysis per run (CaptureFactory.window, settle included): first third "
                  f"{on['capture_window_first_third_median_ms']:.1f} ms, last third "
                  f"{on['capture_window_last_third_median_ms']:.1f} ms; the script with the sniffer running: "
                  f"{out['phase_b'][HW]['median_ms']:.1f} ms vs {out['phase_a'][HW]['median_ms']:.1f} ms in phase A")
            if inconclusive:
                legs = sorted({s for run in inconclusive for s in run})
                print(f"      {len(inconclusive)}/{rounds} capture-on runs inconclusive on: {'; '.join(legs)}")
        else:
            print(f"\nPhase B (capture on): not measured ({why_not})")

        if a.profile == "always" or a.profile == "auto" and missed:
            print(f"\n=== cProfile: harness, capture off ({PROFILE_RUNS} runs, CPU time of this process) ===")
            print(profile_runs(a_off.run, PROFILE_RUNS))
            print(f"=== cProfile: hand-written ({PROFILE_RUNS} runs) ===")
            print(profile_runs(a_hw.run, PROFILE_RUNS))
    except SanityError as exc:
        print(f"\nSANITY CHECK FAILED: {exc}", file=sys.stderr)
        return 1
    finally:
        try:
            if factory is not None:
                factory.close()  # stops the sniffer (bounded join in conformance.capture.sniff)
        finally:
            TIMERS.restore()
            if net is not None:
                net.stop_all()
            shutil.rmtree(tmp, ignore_errors=True)
    if a.json:
        a.json.write_text(json.dumps(out, indent=2))
    return 1 if a.strict and missed else 0


if __name__ == "__main__":
    sys.exit(main())
