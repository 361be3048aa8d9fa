"""Every fault of the reference network is caught by the catalog, and the conformant network
gives no fail (issue 5). The documented matrix (docs/fault-matrix.md) is what is checked: each
fault's documented catchers must fail with the fault on; regenerate the file with
`tests/integration/fault_matrix.py --write` when the catalog changes."""

from __future__ import annotations

import pytest
from fault_matrix import CHECKED_BY, FAULT_VARIANT, VARIANTS, catalog, catches, documented, run_cases

from conformance.model.testcase import PLAYED_NODES
from refnet.faults import FAULTS

CASES = catalog()
BY_ID = {tc.id: tc for tc in CASES}
DOCUMENTED = documented()


def test_every_fault_names_the_clauses_its_catchers_check():
    assert set(CHECKED_BY) == {f.name for f in FAULTS}, "fault_matrix.CHECKED_BY: one entry per fault"
    assert all(CHECKED_BY.values())


def test_matrix_documents_every_fault_with_existing_cases():
    assert set(DOCUMENTED) == {f.name for f in FAULTS}, "docs/fault-matrix.md is out of date"
    for fault, caught_by in DOCUMENTED.items():
        assert caught_by, f"{fault}: no test case catches it"
        missing = [c for c in caught_by if c not in BY_ID]
        assert not missing, f"{fault}: documented catchers not in the catalog: {missing}"


FULL, ALONE = documented("full"), documented("alone")
NODE_OF = {f.name: f.node for f in FAULTS}
# the lifecycle cases the emulated peers cannot serve with their node alone (n/a there, docs/peers.md)
UNPLAYED_ALONE = {tc.id for tc in CASES if "lifecycle" in tc.tags
                  and tc.lifecycle_unplayed(set(PLAYED_NODES) - {tc.sut})}


def test_every_fault_is_caught_with_its_node_alone():
    """Issue 12 item 5: each node alone, the harness playing the rest, still catches every fault
    of that node, except a fault that only lifecycle cases the emulated peers cannot serve show
    (every catcher of its own node is one of those, docs/peers.md)."""
    missed = []
    for fault, node in NODE_OF.items():
        own = [c for c in FULL.get(fault, []) if c in BY_ID and BY_ID[c].sut == node]
        only_lifecycle = bool(own) and set(own) <= UNPLAYED_ALONE
        if not ALONE.get(fault) and not only_lifecycle:
            missed.append(fault)
    assert not missed, f"faults not caught with their node alone: {missed}"


@pytest.mark.parametrize("fault", [f.name for f in FAULTS])
def test_fault_is_caught(fault):
    catchers = [BY_ID[c] for c in FULL.get(fault, []) if c in BY_ID]
    alone = [BY_ID[c] for c in ALONE.get(fault, []) if c in BY_ID]
    if not catchers and not alone:
        pytest.fail(f"{fault}: no documented catcher (run tests/integration/fault_matrix.py --write)")
    missed = {}  # a documented catcher that did not fail, or failed on something else than the fault
    for column, cases, node in (("", catchers, None), (" (alone)", alone, NODE_OF[fault])):
        if cases:  # alone: the node alone, the harness playing its peers (docs/peers.md)
            run = run_cases(FAULT_VARIANT.get(fault, "relay"), fault, cases, alone=node)
            missed.update({f"{tc.id}{column}": (run.verdicts[tc.id], run.findings.get(tc.id, [])[:3]) for tc in cases
                           if not catches(fault, tc, run.verdicts[tc.id], run.failed_refs.get(tc.id, ()))})
    assert not missed, f"{fault}: documented catchers did not catch it: {missed}"


MODE_PICS = {"signalling.path", "wsf.verify", "core.transport", "sip.bearer_syntax",
             "wsf.reregister_token", "wsf.on_ws_close", "wsf.origin_missing"}


def _variant_cases(variant: str):
    """Under the default options every case; under another, the cases whose applicability
    depends on the network's mode (the others behave the same and already ran)."""
    if variant == "relay":
        return CASES
    return [tc for tc in CASES if tc.pics is not None and set(tc.pics.names) & MODE_PICS]


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_conformant_network_gives_only_pass_and_not_applicable(variant):
    run = run_cases(variant, None, _variant_cases(variant))
    bad = {k: (v, run.findings.get(k)) for k, v in run.verdicts.items() if v not in ("pass", "pass with warnings", "not applicable")}
    assert not bad, f"{variant}: " + "\n".join(f"{k}: {v} {f}" for k, (v, f) in bad.items())
