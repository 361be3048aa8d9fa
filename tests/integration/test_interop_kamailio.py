"""Kamailio 5.6 (Debian) as the P-CSCF and the S-CSCF of BINDING.md (interop/kamailio): the P-CSCF
and S-CSCF test cases of the catalog, over UDP and TCP core transport, against software nobody
here wrote. Each run lives in its own network namespace (the binding's fixed addresses cannot
clash with another run) and must leave no process behind.

Needs root (ip netns) and the Debian packages `make system-deps` installs."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from interop_runs import left_running, profile_in, run_part

REPO = Path(__file__).resolve().parents[2]
RUN_TIMEOUT_S = 240

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root for a network namespace (ip netns)")

# Kamailio's core drops, before any routing script, what it cannot parse, and closes a TCP
# connection whose message exceeds its fixed buffer (profiles/interop-kamailio.deviations.yaml).
DEVIATIONS = {"TP_PCSCF_SIP_002", "TP_PCSCF_SIP_003", "TP_PCSCF_SIP_004", "TP_PCSCF_SIP_006"}
SILENT = {"TP_PCSCF_SIP_002", "TP_PCSCF_SIP_003", "TP_PCSCF_SIP_004"}  # dropped without an answer


@pytest.mark.parametrize("profile_name, transport", [("interop-kamailio.yaml", "udp"),
                                                     ("interop-kamailio-tcp.yaml", "tcp")])
def test_kamailio_core_cases(tmp_path, profile_name, transport):
    assert shutil.which("kamailio"), "kamailio is not installed: run `make system-deps` as root"
    profile = profile_in(tmp_path, profile_name, "kamailio", "interop-kamailio.deviations.yaml")
    work = tmp_path / "work"
    run = run_part("kamailio", profile, work,
                   # the core registration cases; the lifecycle ones run in test_kamailio_reg_event_and_to_tags
                   "--sut", "pcscf", "--sut", "scscf", "-k", "not lifecycle",
                   timeout_s=RUN_TIMEOUT_S)
    output, results = run.output, run.results
    assert not left_running(tmp_path / "state"), "processes left running\n" + output
    assert run.returncode == 0, output
    assert run.allure_results == len(run.results), output
    ran = {i for i, r in results.items() if r["verdict"] != "not applicable"}
    assert ran >= {f"TP_SCSCF_REG_{n:03d}" for n in range(1, 11)}, sorted(ran)
    assert f"TP_PCSCF_REG_00{1 if transport == 'udp' else 2}" in ran
    unexpected = {i: r["verdict"] for i, r in results.items()
                  if r["verdict"] not in ("pass", "not applicable") and i not in DEVIATIONS}
    assert not unexpected, output
    # the deviations really are Kamailio's: each got the verdict its entry names (a 400 never sent is
    # silence, so inconclusive by the verdict rules; the closed TCP connection is a fail), never an error
    expected = {i: ("inconclusive" if i in SILENT else "fail") for i in DEVIATIONS}
    assert all(results[i]["verdict"] == expected[i] for i in DEVIATIONS & ran), output


# The reg event package (presence + pua_reginfo) and the To tags, configured in interop/kamailio:
# what Kamailio does right passes; the reginfo document pua_reginfo builds fails the schema and
# instance checks (the deviations file has why) and nothing else.
REGEVENT_PASS = {"TP_SCSCF_REGEV_004", "TP_SCSCF_REGEV_005", "TP_WSF_REGEV_001", "TP_SCSCF_TAG_001",
                 "TP_SCSCF_TAG_002"}
REGINFO_DEVIATIONS = {"TP_SCSCF_REGEV_001", "TP_SCSCF_REGEV_002", "TP_SCSCF_REGEV_003", "TP_SCSCF_REGEV_006",
                      "TP_WSF_REGEV_002"}


def test_kamailio_reg_event_and_to_tags(tmp_path):
    assert shutil.which("kamailio"), "kamailio is not installed: run `make system-deps` as root"
    profile = profile_in(tmp_path, "interop-kamailio.yaml", "kamailio", "interop-kamailio.deviations.yaml")
    work = tmp_path / "work"
    run = run_part("kamailio", profile, work,
                   "-k", "REGEV or TAG",
                   timeout_s=RUN_TIMEOUT_S)
    output, results = run.output, run.results
    assert not left_running(tmp_path / "state"), "processes left running\n" + output
    assert run.returncode == 0, output
    assert run.allure_results == len(run.results), output
    assert {i: results[i]["verdict"] for i in REGEVENT_PASS} == dict.fromkeys(REGEVENT_PASS, "pass"), output
    failed = {i for i, r in results.items() if r["verdict"] not in ("pass", "not applicable")}
    assert failed == REGINFO_DEVIATIONS, output
    assert all(results[i]["verdict"] == "fail" for i in REGINFO_DEVIATIONS), output
