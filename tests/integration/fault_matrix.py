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

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))

from conformance.model.catalog import load_catalog  # noqa: E402
from conformance.model.profile import load_profile  # noqa: E402
from conformance.peers import start_for_profile  # noqa: E402
from conformance.run.capture_hook import CaptureFactory  # noqa: E402
from conformance.run.engine import Engine  # noqa: E402
from profiles import alone_profile, write_profile  # noqa: E402
from refnet.config import NetworkConfig, Options  # noqa: E402
from refnet.faults import FAULTS  # noqa: E402
from refnet.launcher import free_endpoints, prepare, start  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
DOC = REPO / "docs" / "fault-matrix.md"

# Network options (PICS) under which the catalog is run; the first is the default.
VARIANTS: dict[str, dict] = {
    # short-lived tokens: the lifecycle cases wait for one to expire (docs/lifecycle.md)
    "relay": {"token_lifetime_s": 8},
    "direct": {"signalling": "direct"},
    # short-lived tokens, so a case can wait for one to expire (wsf-accept-expired)
    "local_jwt": {"verify": "local_jwt", "token_lifetime_s": 5},
    "tcp": {"core_transport": "tcp"},
    "ts24371": {"signalling": "direct", "bearer_syntax": "ts24371"},
    # the other answers of the lifecycle PICS (wsf.reregister_token, on_ws_close, origin_missing)
    "lifecycle_alt": {"token_lifetime_s": 8, "reregister_token": "first", "ws_close": "expire",
                      "origin_missing": "reject"},
}
# A fault that only exists under some options runs there.
FAULT_VARIANT = {"wsf-accept-expired": "local_jwt", "wsf-flow-identity-lost": "lifecycle_alt",
                 "scscf-keep-expired": "lifecycle_alt", "wsf-accept-foreign-origin": "lifecycle_alt"}


@dataclass
class Run:
    variant: str
    fault: str | None
    verdicts: dict[str, str] = field(default_factory=dict)
    findings: dict[str, list[str]] = field(default_factory=dict)


def run_cases(variant: str, fault: str | None, cases, settle_ms: int = 150, *, options: dict | None = None,
              variations: tuple[str, ...] = (), edit_profile=None, before_start=None,
              alone: str | None = None) -> Run:
    """The cases against a fresh network with `variant`'s options (or `options`), the fault and the
    conformant variations on. `before_start(cfg)` may seed the network's state; `edit_profile(doc,
    net)` changes the profile the way a vendor with those choices would write it. `alone`: only
    that node of the network runs; the harness plays the others (conformance/peers)."""
    opts = VARIANTS[variant] if options is None else options
    label = fault or "+".join(variations) or "clean"
    tmp = Path(tempfile.mkdtemp(prefix=f"fm-{variant}-{label}-{alone or 'all'}-"))
    cfg = NetworkConfig(str(tmp / "state"), endpoints=free_endpoints(prefer_defaults=False),
                        options=Options(**opts), faults=[fault] if fault else [], variations=list(variations))
    if before_start is not None:
        prepare(cfg)
        before_start(cfg)
    net = start(cfg, nodes=[alone]) if alone else start(cfg)
    run = Run(variant, fault)
    factory = peers = None
    try:
        path = alone_profile(net, alone, tmp) if alone else write_profile(net, tmp)
        doc = yaml.safe_load(path.read_text())
        doc["pixit"]["capture"]["settle_ms"] = settle_ms
        if edit_profile is not None:
            edit_profile(doc, net)
        path.write_text(yaml.safe_dump(doc, sort_keys=False))
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
            run.findings[tc.id] = [f.describe() for f in result.failures()] + ([result.reason] if result.reason else [])
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


# A fault whose effect shows at another node too: its cases run as well. An AS that reports an
# expired token active is what lets an introspecting WSF accept it (the WSF's expired-token case).
FAULT_EXTRA_NODES = {"as-introspect-expired-active": ("wsf",)}


def subset(cases, node: str, fault: str | None = None):
    nodes = (node, "flow", *FAULT_EXTRA_NODES.get(fault or "", ()))
    return [tc for tc in cases if tc.sut in nodes]


def alone_cases(cases, node: str):
    """The node's own cases, run with the node alone: those that apply there (the lifecycle cases
    do not, docs/peers.md) and the error paths only emulated peers can reach."""
    return [tc for tc in cases if tc.sut == node]


_CLEAN_ALONE: dict[tuple[str, str], set[str]] = {}


def caught_alone(cases, fault, variant: str) -> list[str]:
    """The node's cases that fail with the fault, the node alone, among those that pass alone on
    the conformant network under the same options: a case the node alone cannot pass anyway (the
    reference WSF in local_jwt mode maps only the identities of its own store, which a user
    provisioned at the emulated AS never reaches) proves nothing about the fault."""
    own = alone_cases(cases, fault.node)
    key = (variant, fault.node)
    if key not in _CLEAN_ALONE:
        clean = run_cases(variant, None, own, alone=fault.node)
        _CLEAN_ALONE[key] = {k for k, v in clean.verdicts.items() if v in ("pass", "pass with warnings")}
    run = run_cases(variant, fault.name, [tc for tc in own if tc.id in _CLEAN_ALONE[key]], alone=fault.node)
    return sorted(k for k, v in run.verdicts.items() if v == "fail")


def compute(cases=None, only: list[str] | None = None, alone_nodes: list[str] | None = None) -> dict[str, dict]:
    """Every fault's row; with `only`, those faults are run again and the other rows are kept as
    docs/fault-matrix.md has them. With `alone_nodes`, only the "caught alone" column of those
    nodes' faults is run again (the full-network column is kept; with `only` as well, just those
    faults)."""
    cases = cases if cases is not None else catalog()
    kept = documented("full") if only or alone_nodes else {}
    kept_alone = documented("alone") if only or alone_nodes else {}
    matrix = {}
    for fault in FAULTS:
        variant = FAULT_VARIANT.get(fault.name, "relay")
        row = {"node": fault.node, "breaks": fault.breaks, "variant": variant}
        if alone_nodes is not None:  # with `only` too: just those faults of those nodes
            redo = fault.node in alone_nodes and (not only or fault.name in only)
            row["caught_by"] = kept.get(fault.name, [])
            row["caught_alone"] = caught_alone(cases, fault, variant) if redo else kept_alone.get(fault.name, [])
        elif only and fault.name not in only and fault.name in kept:
            row.update(caught_by=kept[fault.name], caught_alone=kept_alone.get(fault.name, []))
        else:
            run = run_cases(variant, fault.name, subset(cases, fault.node, fault.name))
            row.update(caught_by=sorted(k for k, v in run.verdicts.items() if v == "fail"),
                       caught_alone=caught_alone(cases, fault, variant))
        matrix[fault.name] = row
    return matrix


def render(matrix: dict[str, dict]) -> str:
    lines = ["# Fault-detection matrix", "",
             "Which test cases catch each fault of the reference network (`refnet/faults.py`): the fault is",
             "switched on, the test cases of its node and the flow cases run (plus the nodes where its effect",
             "shows, `FAULT_EXTRA_NODES`), and a case that gives the verdict",
             "*fail* caught it. Generated by `tests/integration/fault_matrix.py --write`; checked by",
             "`tests/integration/test_fault_matrix.py`, which fails when this file is out of date.", "",
             "The last column: the node alone, every other node played by the harness (docs/peers.md), running",
             "the node's own test cases (those that apply alone, and the error-path cases that only emulated",
             "peers can reach). A fault is caught when either column names a case.", "",
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
    p.add_argument("--only", action="append", metavar="FAULT", help="run only these faults again (repeatable)")
    p.add_argument("--alone", action="append", metavar="NODE",
                   help="run only the 'caught alone' column of this node's faults again (repeatable)")
    a = p.parse_args()
    matrix = compute(only=a.only, alone_nodes=a.alone)
    print(json.dumps({k: v["caught_by"] for k, v in matrix.items()}, indent=1))
    if a.write:
        DOC.write_text(render(matrix))
        print(f"wrote {DOC}")
    return 0 if all(v["caught_by"] for v in matrix.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
