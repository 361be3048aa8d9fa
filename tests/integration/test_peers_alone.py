"""A node tested alone (issue 12): only the reference WSF runs, the harness plays the AS and the
IMS core where the WSF is configured to reach them. The WSF's test cases give the same verdicts as
in the full network; the error-path cases that only emulated peers can reach pass alone and are
not applicable in the full network (the harness plays no peer there). That each of them fails
against a fault is test_fault_matrix.py's job (the matrix's "caught alone" column)."""

from __future__ import annotations

from fault_matrix import catalog, run_cases

# the WSF's cases up to step 22: the emulated peers do not play the lifecycle procedures after it
# (reg event, Min-Expires, network-initiated de-registration; docs/peers.md)
# and without the cases that need a second OAuth client of the AS (`needs:` a short-lived or a
# foreign-audience client), which the emulated AS does not register
WSF = [tc for tc in catalog() if tc.sut == "wsf" and "lifecycle" not in tc.source and not tc.needs]
PEER_CASES = {tc.id for tc in WSF if tc.scripted_peers()}


def test_the_wsf_has_error_path_cases_for_emulated_peers():
    assert len(PEER_CASES) >= 20


def test_wsf_alone_gives_the_verdicts_of_the_full_network():
    full = run_cases("relay", None, WSF)
    alone = run_cases("relay", None, WSF, alone="wsf")
    for case in sorted(PEER_CASES):
        assert full.verdicts[case] == "not applicable", (case, full.findings.get(case))
        assert alone.verdicts[case] == "pass", (case, alone.findings.get(case))
    differ = {k: (v, alone.verdicts.get(k), alone.findings.get(k)) for k, v in full.verdicts.items()
              if k not in PEER_CASES and alone.verdicts.get(k) != v}
    assert not differ, differ


def test_as_alone_gives_the_verdicts_of_the_full_network():
    """The AS's clients are the harness already; a case that needs the real 3rdWWS is not
    applicable alone (TP_AS_TOKEN_016 captures the 3rdWWS's own token request)."""
    as_cases = [tc for tc in catalog() if tc.sut == "as"]
    full = run_cases("relay", None, as_cases)
    alone = run_cases("relay", None, as_cases, alone="as")
    needs_3rdwws = {tc.id for tc in as_cases if "3rdwws" in tc.nodes_reached()}
    assert needs_3rdwws == {"TP_AS_TOKEN_016"}
    assert all(alone.verdicts[c] == "not applicable" for c in needs_3rdwws)
    differ = {k: (v, alone.verdicts.get(k), alone.findings.get(k)) for k, v in full.verdicts.items()
              if k not in needs_3rdwws and alone.verdicts.get(k) != v}
    assert not differ, differ


def test_pcscf_alone_gives_the_verdicts_of_the_full_network():
    """The P-CSCF alone: the harness plays the WSF's side (sip_send) and the S-CSCF. Its catalog
    cases give the full network's verdicts; its error-path cases (the S-CSCF scripted) pass alone
    and are not applicable in the full network."""
    cases = [tc for tc in catalog() if tc.sut == "pcscf"]
    peer = {tc.id for tc in cases if tc.scripted_peers()}
    assert len(peer) >= 5
    full = run_cases("relay", None, cases)
    alone = run_cases("relay", None, cases, alone="pcscf")
    for case in sorted(peer):
        assert full.verdicts[case] == "not applicable", (case, full.findings.get(case))
        assert alone.verdicts[case] == "pass", (case, alone.findings.get(case))
    differ = {k: (v, alone.verdicts.get(k), alone.findings.get(k)) for k, v in full.verdicts.items()
              if k not in peer and alone.verdicts.get(k) != v}
    assert not differ, differ


def test_3rdwws_error_path_cases_pass_alone():
    """The 3rdWWS alone against the emulated AS: the error paths only a scripted AS produces pass
    (the comparison of all its cases waits for an emulated WSF behind the relay, docs/peers.md)."""
    peer = [tc for tc in catalog() if tc.sut == "3rdwws" and tc.scripted_peers()]
    assert len(peer) >= 7
    full = run_cases("relay", None, peer)
    alone = run_cases("relay", None, peer, alone="3rdwws")
    for tc in peer:
        assert full.verdicts[tc.id] == "not applicable", (tc.id, full.findings.get(tc.id))
        assert alone.verdicts[tc.id] == "pass", (tc.id, alone.findings.get(tc.id))
