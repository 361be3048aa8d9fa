"""The fault-detection matrix: which test cases of the catalog catch which fault of the
reference network.

    .venv/bin/python tests/integration/fault_matrix.py            # compute and print
    .venv/bin/python tests/integration/fault_matrix.py --write    # also rewrite docs/fault-matrix.md

A fault is run against the test cases of its node and the flow cases (the subset the fault's node
concerns), under the network options it needs; "caught" means verdict fail. The conformant
network, under each option set, must give no fail at all. test_fault_matrix.py checks both and
that docs/fault-matrix.md is current.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from conformance.model.catalog import load_catalog  # noqa: E402
from conformance.model.profile import load_profile  # noqa: E402
from conformance.peers import start_for_profile  # noqa: E402
from conformance.run.capture_hook import CaptureFactory  # noqa: E402
from conformance.run.engine import Engine  # noqa: E402
from profiles import alone_profile, write_profile  # noqa: E402
from refnet.config import NetworkConfig, Options  # noqa: E402
from refnet.faults import FAULTS  # noqa: E402
from refnet.launcher import free_endpoints, start  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
DOC = REPO / "docs" / "fault-matrix.md"

# Network options (PICS) under which the catalog is run; the first is the default.
VARIANTS: dict[str, dict] = {
    "relay": {},
    "direct": {"signalling": "direct"},
    # short-lived tokens, so a case can wait for one to expire (wsf-accept-expired)
    "local_jwt": {"verify": "local_jwt", "token_lifetime_s": 5},
    "tcp": {"core_transport": "tcp"},
    "ts24371": {"signalling": "direct", "bearer_syntax": "ts24371"},
}
# A fault that only exists under some options runs there.
FAULT_VARIANT = {"wsf-accept-expired": "local_jwt"}


@dataclass
class Run:
    variant: str
    fault: str | None
    verdicts: dict[str, str] = field(default_factory=dict)
    findings: dict[str, list[str]] = field(default_factory=dict)


def run_cases(variant: str, fault: str | None, cases, settle_ms: int = 150, alone: str | None = None) -> Run:
    """`alone`: only that node of the network runs; the harness plays the others (conformance/peers)."""
    opts = VARIANTS[variant]
    tmp = Path(tempfile.mkdtemp(prefix=f"fm-{variant}-{fault or 'clean'}-{alone or 'all'}-"))
    cfg = NetworkConfig(str(tmp / "state"), endpoints=free_endpoints(prefer_defaults=False),
                        options=Options(**opts), faults=[fault] if fault else [])
    net = start(cfg, nodes=[alone]) if alone else start(cfg)
    run = Run(variant, fault)
    factory = peers = None
    try:
        path = alone_profile(net, alone, tmp) if alone else write_profile(net, tmp)
        data = path.read_text().replace("settle_ms: 300", f"settle_ms: {settle_ms}")
        path.write_text(data)
        profile = load_profile(path)
        peers = start_for_profile(profile, tmp / "work")
        factory = CaptureFactory(profile, tmp / "work")
        factory.ensure_started(tmp / "work" / "harness.keylog")  # before any node opens a connection
        engine = Engine(profile, workdir=tmp / "work", capture_factory=factory)
        for tc in cases:
            if not tc.applicable(profile.pics, profile.pixit):
                run.verdicts[tc.id] = "not applicable"
                continue
            result = engine.run(tc)
            run.verdicts[tc.id] = result.verdict.value
            run.findings[tc.id] = [f.describe() for f in result.failures()]
    finally:
        if factory is not None:
            factory.close()
        if peers is not None:
            peers.close()
        net.stop_all()
    return run


def catalog():
    cases, problems = load_catalog(REPO / "testcases")
    if problems:
        raise SystemExit("catalog has problems:\n" + "\n".join(map(str, problems)))
    return cases


def subset(cases, node: str):
    return [tc for tc in cases if tc.sut in (node, "flow")]


def peer_cases(cases, node: str):
    """The node's cases that need the harness to play its peers (scripted error paths)."""
    return [tc for tc in cases if tc.sut == node and tc.scripted_peers()]


def compute(cases=None) -> dict[str, dict]:
    cases = cases if cases is not None else catalog()
    matrix = {}
    for fault in FAULTS:
        variant = FAULT_VARIANT.get(fault.name, "relay")
        run = run_cases(variant, fault.name, subset(cases, fault.node))
        alone = peer_cases(cases, fault.node)
        alone_run = run_cases(variant, fault.name, alone, alone=fault.node) if alone else None
        matrix[fault.name] = {"node": fault.node, "breaks": fault.breaks, "variant": variant,
                              "caught_by": sorted(k for k, v in run.verdicts.items() if v == "fail"),
                              "caught_alone": sorted(k for k, v in (alone_run.verdicts if alone_run else {}).items()
                                                     if v == "fail")}
    return matrix


def render(matrix: dict[str, dict]) -> str:
    lines = ["# Fault-detection matrix", "",
             "Which test cases catch each fault of the reference network (`refnet/faults.py`): the fault is",
             "switched on, the test cases of its node and the flow cases run, and a case that gives the verdict",
             "*fail* caught it. Generated by `tests/integration/fault_matrix.py --write`; checked by",
             "`tests/integration/test_fault_matrix.py`, which fails when this file is out of date.", "",
             "The last column: the node alone, every other node played by the harness (docs/peers.md), running",
             "the node's error-path cases that only emulated peers can reach. A fault is caught when either",
             "column names a case.", "",
             "| fault | node | breaks | options | caught by | caught alone (harness plays the rest) |",
             "|---|---|---|---|---|---|"]
    for name, row in matrix.items():
        caught = ", ".join(f"`{c}`" for c in row["caught_by"])
        alone = ", ".join(f"`{c}`" for c in row.get("caught_alone", []))
        if not caught and not alone:
            caught = "**nothing**"
        lines.append(f"| `{name}` | {row['node']} | {row['breaks']} | {row['variant']} | {caught} | {alone} |")
    return "\n".join(lines) + "\n"


def documented(column: str = "both") -> dict[str, list[str]]:
    """fault -> the catchers written in docs/fault-matrix.md: `full` network, `alone` (the node
    alone, the harness playing the rest), or `both`."""
    out = {}
    if not DOC.exists():
        return out
    for line in DOC.read_text().splitlines():
        if line.startswith("| `"):
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            picked = {"full": cells[4:5], "alone": cells[5:6], "both": cells[4:6]}[column]
            out[cells[0].strip("`")] = sorted(c.strip().strip("`") for cell in picked for c in cell.split(",")
                                              if c.strip().startswith("`"))
    return out


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--write", action="store_true")
    a = p.parse_args()
    matrix = compute()
    print(json.dumps({k: v["caught_by"] for k, v in matrix.items()}, indent=1))
    if a.write:
        DOC.write_text(render(matrix))
        print(f"wrote {DOC}")
    return 0 if all(v["caught_by"] for v in matrix.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
