"""The fault-detection matrix: which test cases of the catalog catch which fault of the
reference network.

    .venv/bin/python tests/integration/fault_matrix.py            # compute and print
    .venv/bin/python tests/integration/fault_matrix.py --write    # also rewrite docs/fault-matrix.md
    .venv/bin/python tests/integration/fault_matrix.py --recheck --runs runs.json --write
        # only the documented catchers again, audited (CHECKED_BY); --runs runs.json alone re-renders

A fault is run against the test cases of its node and the flow cases (the subset the fault's node
concerns), under the network options it needs; "caught" means verdict fail. The conformant
network, under each option set, must give no fail at all. test_fault_matrix.py checks both and
that docs/fault-matrix.md is current.

A case counts as a catcher only when its purpose checks what the fault breaks (`catches`: a failed
check, or a check the case declares, cites a clause of CHECKED_BY): a case that fails for another
reason met the fault by accident.
"""

from __future__ import annotations

import argparse
import json
import re
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
    failed_refs: dict[str, list[str]] = field(default_factory=dict)  # the refs of each case's fail findings


def run_cases(variant: str, fault: str | None, cases, settle_ms: int = 150, *, options: dict | None = None,
              variations: tuple[str, ...] = (), edit_profile=None, before_start=None,
              alone: str | None = None) -> Run:
    """The cases against a fresh network with `variant`'s options (or `options`), the fault and the
    conformant variations on. `before_start(cfg)` may seed the network's state; `edit_profile(doc,
    net)` changes the profile the way a vendor with those choices would write it. `alone`: only
    that node of the network runs; the harness plays the others (conformance/peers)."""
    opts = VARIANTS[variant] if options is None else options
    label = fault or "+".join(variations) or "clean"
    if len(label) > 100:  # a directory name has at most 255 bytes: the TOGETHER group is 11 names
        label = f"{len(variations)}-variations"
    tmp = Path(tempfile.mkdtemp(prefix=f"fm-{variant}-{label}-{alone or 'all'}-"))
    cfg = NetworkConfig(str(tmp / "state"), endpoints=free_endpoints(prefer_defaults=False),
                        options=Options(**opts), faults=[fault] if fault else [], variations=list(variations))
    if before_start is not None:
        prepare(cfg)
        before_start(cfg)
    # forked from a zygote: the matrix starts a network per fault (refnet/zygote.py)
    net = start(cfg, nodes=[alone], fork_server=True) if alone else start(cfg, fork_server=True)
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
            run.failed_refs[tc.id] = [_cited(f) for f in result.findings if f.verdict.value == "fail"]
    finally:
        if factory is not None:
            factory.close()
        if peers is not None:
            peers.close()
        net.stop_all()
    return run


def _cited(finding) -> str:
    """The clause a failed check cites; a capture entry without a ref cites its TR 23.701 step."""
    if finding.ref:
        return str(finding.ref)
    step = re.match(r"capture step (\d+) ", finding.subject or "")
    return f"TR 23.701 step {step.group(1)}" if step else ""


# What each fault breaks, as the clauses the catalog's checks cite for that behaviour. A case
# catches a fault only when one of its failed checks, or a check it declares, cites one of them
# (`catches`): its purpose checks the broken behaviour. A case that fails otherwise met the fault
# by accident, through a side effect (a registration the core refuses, a login page the AS does
# not show) or through timing (a leased fixture's leftover bindings), and is not listed: the
# matrix would otherwise depend on the run, and test_fault_matrix.py would demand a failure the
# case is not about. A clause covers its sub-clauses ("RFC 6749 4.1.2" covers "RFC 6749 4.1.2.1").
CHECKED_BY: dict[str, tuple[str, ...]] = {
    "as-code-reusable": ("RFC 6749 4.1.2", "RFC 9700 2.1.1"),
    "as-code-any-client": ("RFC 6749 4.1.3",),
    "as-redirect-uri-loose": ("RFC 9700 2.1",),
    # TP_AS_TOKEN_009: a verifier for a code issued with a challenge is PKCE (RFC 9700 2.1.1)
    "as-pkce-ignored": ("RFC 7636 4.6", "RFC 9700 2.1.1"),
    # state echoed in error responses too (4.1.2.1, 4.2.2.1)
    "as-state-dropped": ("RFC 6749 4.1.2", "RFC 6749 4.2.2.1"),
    "as-token-alg-none": ("RFC 9068 2.1",),
    # TP_AS_INTRO_001 compares the introspected aud with the binding's (BINDING step 16)
    "as-token-wrong-aud": ("RFC 9068 2.2", "BINDING step 16"),
    "as-token-no-exp": ("RFC 9068 2.2",),
    "as-introspect-unauthenticated": ("RFC 7662 2.1",),
    "as-introspect-wrong-impi": ("BINDING step 16",),
    # FAULT_EXTRA_NODES: the introspecting WSF then accepts the expired token (refused with 401)
    "as-introspect-expired-active": ("RFC 7662 2.2", "RFC 8898 2.2"),
    "as-token-in-redirect": ("RFC 9700 2.1.2",),
    "as-introspect-any-client": ("RFC 7662 2.1", "RFC 7662 4"),
    "as-revoke-any-client": ("RFC 7009 2.1",),
    "3rdwws-no-pkce": ("RFC 9700 2.1.1", "RFC 7636 4.2", "RFC 7636 4.3"),
    "3rdwws-state-unchecked": ("RFC 6749 10.12",),
    "3rdwws-iss-unchecked": ("RFC 9207 2.4",),
    "3rdwws-ignore-authz-error": ("RFC 6749 4.1.2.1",),
    "3rdwws-token-error-ignored": ("RFC 6749 5.1", "RFC 6749 5.2"),
    # verification is steps 15-16 (the introspection, RFC 7662 2.1); a token it would refuse gets 401
    "wsf-skip-verification": ("TR 23.701 step 15", "TR 23.701 step 16", "RFC 7662 2.1", "RFC 8898 2.2"),
    "wsf-accept-expired": ("RFC 9068 4", "RFC 8898 2.2"),
    "wsf-ignore-audience": ("RFC 9068 4", "RFC 7662", "RFC 8898 2.2"),
    # TS 24.229 5.2.2.1: the forwarded Authorization is the WSF's Digest one, a single one
    "wsf-forward-bearer": ("BINDING step 17", "TS 24.229 5.2.2.1", "RFC 6750 5.3"),
    "wsf-keep-web-id": ("BINDING step 17",),
    "wsf-no-auth-done": ("TS 24.229 5.2.2", "BINDING step 17"),
    "wsf-no-challenge": ("RFC 8898 2.2",),
    "wsf-accept-no-subprotocol": ("RFC 7118 4", "RFC 6455 4.2.2"),
    "wsf-no-path": ("RFC 7118 5", "RFC 5626", "RFC 3327"),
    "wsf-accept-inactive": ("RFC 7662 2.2", "RFC 8898 2.2"),
    "wsf-register-without-impu": ("BINDING step 17",),
    # BINDING step 14: the UE's REGISTER is refused, never forwarded, when verification failed
    "wsf-fail-open": ("TR 23.701 step 15", "TR 23.701 step 16", "TR 23.701 step 17", "BINDING step 14",
                      "BINDING step 17"),
    "wsf-introspect-no-auth": ("RFC 7662 2.1",),
    "wsf-core-error-as-480": ("RFC 3261 16.7",),
    "pcscf-no-path": ("RFC 3327", "TS 24.229 5.2.2"),
    "pcscf-no-visited-network-id": ("TS 24.229 5.2.2",),
    "pcscf-core-error-as-480": ("RFC 3261 16.7", "RFC 3261 16.11"),
    "scscf-no-service-route": ("RFC 3608", "TS 24.229 5.4.1.2"),
    # the registration cases' P-Associated-URI checks cite TS 24.229 5.4.1.2.2
    "scscf-no-associated-uri": ("RFC 7315 4.1", "TS 24.229 5.4.1.2.2"),
    # the challenge an untrusted request gets is TS 24.229 5.4.1.2.1, with RFC 3261 22.4
    "scscf-register-untrusted": ("TS 24.229 5.4.1.2", "RFC 3261 22.4"),
    # a re-REGISTER's token refused again (RFC 8898 2.2), or another user's identity refused (step 14)
    "wsf-reregister-unverified": ("RFC 8898 2", "RFC 6750 3.1", "BINDING step 14"),
    "wsf-reregister-tokenless": ("RFC 8898 2.2",),
    # no clause of its own (a PICS answer): the tokenless refresh's 200 OK and its binding
    "wsf-flow-identity-lost": ("RFC 3261 10.3", "RFC 5626 6"),
    "wsf-keep-binding-on-close": ("RFC 5626 5.2", "TS 24.229 5.2.2"),
    "wsf-accept-foreign-origin": ("RFC 6455 10.2",),
    "3rdwws-accept-foreign-origin": ("RFC 6455 10.2",),
    "scscf-no-min-expires": ("RFC 3261 10.3", "RFC 3261 20.23"),
    "scscf-expires-longer": ("RFC 3261 10.3", "RFC 3261 10.2.1.1"),
    # de-registration itself, not RFC 3261 10.3 that every registrar check cites: a case that only
    # met a leased fixture's leftover bindings (TP_SCSCF_REG_009 once under -n 2) is no catcher
    "scscf-ignore-deregister": ("RFC 3261 10.2.2", "LIFECYCLE de-registration", "TS 24.229 5.4.1.4"),
    "scscf-single-binding": ("RFC 5626 6",),
    "scscf-keep-expired": ("RFC 3261 10.3", "RFC 3261 10.2.1.1"),
    # the NOTIFY for the flow reaching the UE over its WebSocket (RFC 6665 4.2.1)
    "wsf-notify-not-routed": ("RFC 5626 5.3", "RFC 7118 5", "RFC 6665 4.2.1"),
    "scscf-regevent-any-subscriber": ("TS 24.229 5.4.2.1.1", "RFC 6665 4.2.1.3"),
    "scscf-regevent-no-change-notify": ("RFC 3680 4.7", "TS 24.229 5.4.2.1.2"),
    "scscf-netdereg-not-notified": ("TS 24.229 5.4.1.5",),
    "scscf-netdereg-keeps-binding": ("TS 24.229 5.4.1.5",),
    # a subscription's dialog is told apart by its To tag (RFC 6665 4.1.2.3)
    "scscf-fixed-to-tag": ("RFC 3261 8.2.6.2", "RFC 3261 19.3", "RFC 6665 4.1.2.3"),
}


def _steps(ref: str) -> list[str]:
    """"TR 23.701 steps 15-16" is "TR 23.701 step 15" and "... step 16"."""
    m = re.fullmatch(r"(.*\bstep)s (\d+)-(\d+)", ref)
    return [f"{m.group(1)} {n}" for n in range(int(m.group(2)), int(m.group(3)) + 1)] if m else [ref]


def _covers(clause: str, ref: str) -> bool:
    return ref == clause or ref.startswith(clause + ".") or ref.startswith(clause + " ")


def declared(tc) -> set[str]:
    """Every clause the case says it checks: its refs, the ref of each expectation and capture or
    peer entry (fragments expanded), and the TR 23.701 step of each capture entry."""
    out = {str(r) for r in tc.refs}

    def walk(obj):
        if hasattr(obj, "items"):
            for k, v in obj.items():
                if k == "ref" and isinstance(v, str):
                    out.add(v)
                elif k == "flow" and isinstance(v, int):
                    out.add(f"TR 23.701 step {v}")
                else:
                    walk(v)
        elif isinstance(obj, list | tuple):
            for v in obj:
                walk(v)

    walk(tc.raw)
    walk([dict(step) for step in tc.steps])
    walk(tc.capture or {})
    return out


def purposive(fault: str, refs) -> bool:
    """Whether one of these clauses (what a case checks) is what the fault breaks (CHECKED_BY)."""
    clauses = CHECKED_BY[fault]
    return any(_covers(c, r) for ref in refs for r in _steps(ref) for c in clauses)


def catches(fault: str, tc, verdict: str, failed_refs) -> bool:
    """The case failed, and its purpose checks what the fault breaks: a failed check cites it, or
    the case declares a check of it (a check it did not reach because the fault stopped it
    earlier, e.g. the forwarded REGISTER's To after the core refused the registration)."""
    return verdict == "fail" and purposive(fault, set(failed_refs) | declared(tc))


def catchers(fault: str, run: Run, cases) -> list[str]:
    """The cases of the run that catch the fault (`catches`)."""
    by_id = {tc.id: tc for tc in cases}
    return sorted(k for k, v in run.verdicts.items() if catches(fault, by_id[k], v, run.failed_refs.get(k, ())))


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
    return catchers(fault.name, run, own)


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
            row.update(caught_by=catchers(fault.name, run, cases),
                       caught_alone=caught_alone(cases, fault, variant))
        matrix[fault.name] = row
    return matrix


def recheck(cases=None, only: list[str] | None = None) -> dict[str, dict]:
    """The documented catchers of every fault (or of `only`) run again with the fault on, in both
    columns as test_fault_matrix.py runs them, with the clauses their failed checks cite: the
    evidence `audited` applies CHECKED_BY to. {fault: {"full"|"alone": {case: {verdict, refs}}}}"""
    cases = {tc.id: tc for tc in (cases if cases is not None else catalog())}
    full, alone = documented("full"), documented("alone")
    runs: dict[str, dict] = {}
    for fault in FAULTS:
        if only and fault.name not in only:
            continue
        variant, row = FAULT_VARIANT.get(fault.name, "relay"), {}
        for column, listed, node in (("full", full, None), ("alone", alone, fault.node)):
            if listed.get(fault.name):
                run = run_cases(variant, fault.name, [cases[c] for c in listed[fault.name] if c in cases], alone=node)
                row[column] = {c: {"verdict": v, "refs": run.failed_refs.get(c, [])} for c, v in run.verdicts.items()}
        runs[fault.name] = row
    return runs


def audited(runs: dict[str, dict], cases=None) -> dict[str, dict]:
    """The documented matrix with only the catchers that catch their fault (`catches`); the faults
    `runs` does not have keep their documented rows."""
    cases = {tc.id: tc for tc in (cases if cases is not None else catalog())}
    full, alone = documented("full"), documented("alone")
    matrix = {}
    for fault in FAULTS:
        row = {"node": fault.node, "breaks": fault.breaks, "variant": FAULT_VARIANT.get(fault.name, "relay"),
               "caught_by": full.get(fault.name, []), "caught_alone": alone.get(fault.name, [])}
        if fault.name in runs:
            for column, key in (("full", "caught_by"), ("alone", "caught_alone")):
                seen = runs[fault.name].get(column, {})
                row[key] = sorted(c for c, r in seen.items() if catches(fault.name, cases[c], r["verdict"], r["refs"]))
        matrix[fault.name] = row
    return matrix


def render(matrix: dict[str, dict]) -> str:
    lines = ["# Fault-detection matrix", "",
             "Which test cases catch each fault of the reference network (`refnet/faults.py`): the fault is",
             "switched on, the test cases of its node and the flow cases run (plus the nodes where its effect",
             "shows, `FAULT_EXTRA_NODES`), and a case that gives the verdict",
             "*fail* caught it, when its purpose checks what the fault breaks: one of its failed checks, or a",
             "check it declares, cites a clause of the fault (`CHECKED_BY` in the tool). A case that fails on",
             "something else met the fault by accident (a registration the core refuses, a leased fixture's",
             "leftover bindings) and is not listed. Generated by `tests/integration/fault_matrix.py --write`",
             "(`--recheck --write` runs only the listed catchers again); checked by",
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
    p.add_argument("--recheck", action="store_true",
                   help="run only the documented catchers again and keep those whose failed checks cite what "
                        "the fault breaks (CHECKED_BY); with --only, just those faults")
    p.add_argument("--runs", metavar="FILE", help="with --recheck: save its runs here; without: audit the runs "
                   "saved in FILE (nothing runs)")
    a = p.parse_args()
    if a.recheck or a.runs:
        if a.recheck:
            runs = recheck(only=a.only)
            if a.runs:
                Path(a.runs).write_text(json.dumps(runs, indent=1))
        else:
            runs = json.loads(Path(a.runs).read_text())
        matrix = audited(runs)
    else:
        matrix = compute(only=a.only, alone_nodes=a.alone)
    print(json.dumps({k: v["caught_by"] for k, v in matrix.items()}, indent=1))
    if a.write:
        DOC.write_text(render(matrix))
        print(f"wrote {DOC}")
    return 0 if all(v["caught_by"] or v.get("caught_alone") for v in matrix.values()) else 1  # either column


if __name__ == "__main__":
    sys.exit(main())
