"""Browser UE mode (`pixit.ue.mode: browser`): headless Chromium plays the user of the flow test
cases against the reference network. It logs in at the 3rdWWS, authorizes at the AS's own page,
and the JsSIP client the 3rdWWS serves (step 11) registers by itself over WSS; the capture
asserts every leg as in scripted mode.

Needs the Debian packages chromium and libnss3-tools, Playwright for Python and the JsSIP bundle
(`make install`)."""

from __future__ import annotations

from pathlib import Path

import yaml

from conformance.model.profile import load_profile
from conformance.model.testcase import load_testcase
from conformance.run.capture_hook import CaptureFactory
from conformance.run.engine import Engine
from conformance.run.reporter import NullReporter
from conformance.verdicts import Verdict
from profiles import profile_dict

REPO = Path(__file__).resolve().parents[2]


class Recorder(NullReporter):
    def __init__(self):
        super().__init__()
        self.sip: list[tuple[str, bytes]] = []

    def attach_sip(self, direction, raw):
        self.sip.append((direction, raw))


def run_in_browser(net, tmp_path, case: str, capture=True, **pics):
    doc = profile_dict(net, **pics)
    doc["pixit"]["ue"]["mode"] = "browser"
    # a browser on a busy 2-core machine: a wider bound per step (a deadline, not a measurement)
    doc["pixit"]["timeouts"]["step_ms"] = 15000
    path = tmp_path / "profile.yaml"
    path.write_text(yaml.safe_dump(doc))
    profile = load_profile(path)
    reporter = Recorder()
    factory = CaptureFactory(profile, tmp_path / "work") if capture else None
    try:
        result = Engine(profile, reporter=reporter, workdir=tmp_path / "work", capture_factory=factory).run(
            load_testcase(REPO / "testcases/flow" / case))
    finally:
        if factory is not None:
            factory.close()
    return result, reporter


def test_relay_flow_passes_with_the_jssip_client_in_chromium(refnet_factory, tmp_path):
    result, reporter = run_in_browser(refnet_factory(), tmp_path, "TP_FLOW_REG_001.yaml")
    assert result.verdict == Verdict.PASS, result.summary()
    captured = {f.subject for f in result.findings if f.subject.startswith("capture")}
    for step in (12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22):
        assert any(f"step {step} " in s for s in captured), (step, captured)
    # the REGISTER came from JsSIP in the page, not from the harness's template
    sent = [raw for direction, raw in reporter.sip if direction.startswith("sent by the page")]
    assert sent and b"JsSIP" in sent[0] and sent[0].startswith(b"REGISTER "), sent


def test_direct_flow_passes_with_the_client_holding_the_token(refnet_factory, tmp_path):
    net = refnet_factory(signalling="direct")
    result, reporter = run_in_browser(net, tmp_path, "TP_FLOW_REG_002.yaml", **{"signalling.path": "direct"})
    assert result.verdict == Verdict.PASS, result.summary()
    sent = [raw for direction, raw in reporter.sip if direction.startswith("sent by the page")]
    assert sent and b"\r\nAuthorization: Bearer " in sent[0], sent
