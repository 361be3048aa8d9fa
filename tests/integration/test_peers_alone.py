"""Each node of the reference network tested alone (issue 12): only that node runs, the harness
plays every other one where the node is configured to reach it (docs/peers.md). The node's test
cases give the same verdicts as in the full network, case by case, except:
- the error-path cases that script an emulated peer: not applicable in the full network (the
  harness plays no peer there), pass alone;
- the registration lifecycle cases (tag `lifecycle`: reg event, expiry, network-initiated
  de-registration after step 22) the emulated peers cannot serve: alone they are not applicable,
  with that reason (conformance/model/testcase.py `lifecycle_unplayed`). They serve the S-CSCF's
  (the emulated WSF and P-CSCF route the reg-event dialog both ways), except the two whose
  network-initiated de-registration is triggered at the operator's AS, the WSF's (the
  emulated core is a registrar with reg events, the emulated AS has the trigger) and the
  3rdWWS's (Origin at its relay WebSocket).
That each fault of the node is still caught alone is test_fault_matrix.py's job (the matrix's
"caught alone" column). Run inside interop/netns.sh like every test that starts a network."""

from __future__ import annotations

import pytest
from fault_matrix import catalog, run_cases

from conformance.model.testcase import PLAYED_NODES

CASES = catalog()


def _own(node: str):
    return [tc for tc in CASES if tc.sut == node]


def _compare(node: str, cases) -> dict:
    """Run the cases against the full network and against the node alone; return the
    differences left once the two documented exceptions are taken out (asserted here)."""
    full = run_cases("relay", None, cases)
    alone = run_cases("relay", None, cases, alone=node)
    peer_cases = {tc.id for tc in cases if tc.scripted_peers()}
    played = set(PLAYED_NODES) - {node}
    lifecycle = {tc.id for tc in cases if "lifecycle" in tc.tags and tc.lifecycle_unplayed(played)}
    for case in sorted(peer_cases):
        assert full.verdicts[case] == "not applicable", (case, full.findings.get(case))
        assert alone.verdicts[case] == "pass", (case, alone.findings.get(case))
    for case in sorted(lifecycle):
        assert alone.verdicts[case] == "not applicable", (case, alone.verdicts[case], alone.findings.get(case))
    compared = [k for k in full.verdicts if k not in peer_cases | lifecycle]
    # the comparison means something only if the node's cases ran alone, not merely stayed n/a
    assert any(alone.verdicts[k] == "pass" for k in compared), (node, alone.verdicts)
    return {k: (full.verdicts[k], alone.verdicts.get(k), alone.findings.get(k)) for k in compared
            if alone.verdicts.get(k) != full.verdicts[k]}


def test_the_wsf_has_error_path_cases_for_emulated_peers():
    assert len({tc.id for tc in _own("wsf") if tc.scripted_peers()}) >= 20


def test_at_least_thirty_error_path_cases_over_four_nodes():
    """Issue 12: error paths only emulated peers reach, for the WSF, the 3rdWWS, the P-CSCF and the AS."""
    peer = [tc for tc in CASES if tc.scripted_peers() or "PEER" in tc.id]
    assert len(peer) >= 30, len(peer)
    assert {tc.sut for tc in peer} >= {"wsf", "3rdwws", "pcscf", "as"}


@pytest.mark.parametrize("node", ["wsf", "as", "pcscf", "scscf", "3rdwws"])
def test_node_alone_gives_the_verdicts_of_the_full_network(node):
    """Every case of the node, full network against the node alone: the same verdicts, except the
    error-path cases (they need a scripted peer: n/a in full, pass alone) and the lifecycle cases
    the peers cannot serve yet (n/a alone, docs/peers.md)."""
    differ = _compare(node, _own(node))
    assert not differ, differ
