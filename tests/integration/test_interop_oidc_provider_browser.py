"""The browser UE (headless Chromium, the 3rdWWS's JsSIP client) through oidc-provider's own login
and consent pages (interop/oidc-provider, profiles/interop-oidc-provider-browser.yaml): only the
1-22 flow case TP_FLOW_REG_001, in its own network namespace, leaving no process behind. The whole
catalog in this mode is `make interop` (docs/interop.md).

Needs root (ip netns), `make node-deps` (oidc-provider, the JsSIP bundle) and Debian's chromium."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from interop_runs import left_running, profile_in, run_part

REPO = Path(__file__).resolve().parents[2]
PROFILE = REPO / "profiles" / "interop-oidc-provider-browser.yaml"
DEVIATIONS_FILE = REPO / "profiles" / "interop-oidc-provider.deviations.yaml"
RUN_TIMEOUT_S = 60  # start, one case, stop: about 12 s on an idle machine

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root for a network namespace (ip netns)"),
    pytest.mark.skipif(not (REPO / "node_modules" / "oidc-provider").is_dir(), reason="make node-deps"),
    pytest.mark.skipif(not (REPO / "build" / "jssip.js").is_file(), reason="make node-deps (JsSIP bundle)"),
    pytest.mark.skipif(not Path("/usr/bin/chromium").exists(), reason="Debian package chromium"),
]


def test_browser_walks_oidc_providers_pages_and_registers(tmp_path):
    profile = profile_in(tmp_path, PROFILE.name, "oidc-provider-browser", DEVIATIONS_FILE.name)
    work = tmp_path / "work"
    run = run_part("oidc-provider", profile, work,
                   "-k", "TP_FLOW_REG_001",
                   timeout_s=RUN_TIMEOUT_S)
    output, results = run.output, run.results
    assert not left_running(tmp_path / "state"), "processes left running\n" + output
    assert run.returncode == 0, output
    assert run.allure_results == len(run.results), output
    assert results["TP_FLOW_REG_001"]["verdict"] == "pass", output
    # the browser went through oidc-provider's interaction pages (on the wire, in the capture's ladder)
    assert "/interaction/" in (work / "ladders" / "TP_FLOW_REG_001.svg").read_text(), output
