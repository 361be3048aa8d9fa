"""pytest plugin: collects the YAML test cases of `testcases/` and runs them with the engine.

`pytest testcases/ --profile profiles/reference.yaml` works on its own; `ims-conformance run`
calls pytest with this plugin. Verdict -> pytest outcome: pass -> passed, pass with warnings ->
passed (shown as W / PASS WITH WARNINGS; failed with --ims-strict), fail -> failed (AssertionError), error -> error (broken in Allure), inconclusive and not applicable -> skipped
with an `INCONCLUSIVE:` / `NOT APPLICABLE:` reason. Known deviations of the profile -> xfail.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from conformance.verdicts import Verdict

_PROFILE_KEY = pytest.StashKey[object]()
_RESULTS_KEY = pytest.StashKey[list]()


def pytest_addoption(parser):
    g = parser.getgroup("ims-conformance", "TR 23.701 conformance (YAML test cases)")
    g.addoption("--profile", help="profile (PIXIT + PICS) of the system under test")
    g.addoption("--sut", action="append", default=[], metavar="NODE",
                help="run only test cases whose node under test is NODE (3rdwws, as, wsf, pcscf, scscf, flow)")
    g.addoption("--ims-workdir", default=".ims-conformance",
                help="where verdicts.json, key logs and captures are written")
    g.addoption("--no-capture-legs", action="store_true", help="do not sniff the SUT's legs")
    g.addoption("--ims-analyze", metavar="CAPTURE",
                help="offline: evaluate the capture assertions against this pcap/pcapng; run no step")
    g.addoption("--ims-keylog", action="append", default=[], help="(offline) NSS key log for the capture")
    g.addoption("--ims-user", help="(offline) fixture identity the capture shows (default: the first)")
    g.addoption("--ims-strict", action="store_true",
                help="a violated SHOULD fails the test case (default: pass with warnings)")


def _is_testcase_file(path: Path) -> bool:
    return (path.suffix in (".yaml", ".yml") and "testcases" in path.parts
            and "fragments" not in path.parts)


def pytest_configure(config):
    config.stash[_RESULTS_KEY] = []
    config.addinivalue_line("markers", "positive: a positive test case (the SUT must do X)")
    config.addinivalue_line("markers", "negative: a negative test case (the SUT must refuse X)")
    config.addinivalue_line("markers", "sut(node): the node under test")


def _profile(config):
    if _PROFILE_KEY not in config.stash:
        from conformance.model.profile import load_profile

        path = config.getoption("--profile")
        if not path:
            raise pytest.UsageError("YAML test cases need --profile PROFILE.yaml (e.g. profiles/reference.yaml)")
        config.stash[_PROFILE_KEY] = load_profile(path)
    return config.stash[_PROFILE_KEY]


def pytest_collect_file(file_path: Path, parent):
    if _is_testcase_file(file_path):
        return YamlTestFile.from_parent(parent, path=file_path)
    return None


class YamlTestFile(pytest.File):
    def collect(self):
        from conformance.model.testcase import load_testcase

        tc = load_testcase(self.path)  # raises with file:line:column on bad input
        yield TestCaseItem.from_parent(self, name=tc.id, testcase=tc)


class TestCaseItem(pytest.Item):
    def __init__(self, *, testcase, **kw):
        super().__init__(**kw)
        self.tc = testcase
        self.add_marker(testcase.kind)
        self.add_marker(pytest.mark.sut(testcase.sut))
        self.extra_keyword_matches.update([testcase.kind, testcase.sut, *(testcase.tags or [])])
        if testcase.capture:  # `-k "not capture"` selects what can run in parallel (-n)
            self.extra_keyword_matches.add("capture")

    def setup(self):
        from conformance.report.allure import label_case

        profile = _profile(self.config)
        label_case(self.tc)  # before a not-applicable skip, so the report still files it by node and step
        sel = self.tc.pics
        if sel is not None and not sel.evaluate(profile.pics):
            answers = ", ".join(f"{n}={profile.pics.get(n)!r}" for n in sorted(sel.names))
            pytest.skip(f"NOT APPLICABLE: PICS selection `{sel.expr}` is false ({answers})")
        unsupplied = self.tc.unsupplied(profile.pixit)
        if unsupplied:
            pytest.skip(f"NOT APPLICABLE: {unsupplied}")
        missing = self.tc.missing_pixit(profile.pixit)
        if missing:  # a value the binding leaves open and the profile does not declare: never guessed
            pytest.skip(f"NOT APPLICABLE: the profile does not declare {', '.join(missing)}")

    def runtest(self):
        from conformance.report.allure import AllureReporter, CaseFailed, HarnessError
        from conformance.run.engine import CaseResult, Engine

        profile = _profile(self.config)
        deviation = profile.deviation(self.tc.id)
        started = time.time()
        try:
            engine = Engine(profile, reporter=AllureReporter(profile.redactor),
                            workdir=Path(self.config.getoption("--ims-workdir")),
                            capture_factory=_capture_factory(self.config, profile),
                            no_capture_reason=_no_capture_reason(self.config, profile))
            if self.config.getoption("--ims-analyze"):
                result = engine.analyze(self.tc, _offline_capture(self.config, profile), _offline_user(self.config))
            else:
                result = engine.run(self.tc)
        except Exception as exc:  # a harness bug: verdict error, recorded like any other verdict
            result = CaseResult(self.tc.id, Verdict.ERROR, reason=f"harness error: {type(exc).__name__}: {exc}")
            self.config.stash[_RESULTS_KEY].append(_record(self.tc, result, time.time() - started, None))
            raise HarnessError(result.reason) from exc
        if result.verdict == Verdict.WARN and self.config.getoption("--ims-strict"):
            result.verdict = Verdict.FAIL
            result.reason = "--strict: a violated SHOULD counts as a failure"
        self.config.stash[_RESULTS_KEY].append(_record(self.tc, result, time.time() - started, deviation))
        text = profile.redactor.text(result.summary())
        if result.verdict == Verdict.WARN:
            _mark_warned(self, text)
        if result.verdict == Verdict.FAIL:
            if deviation:
                pytest.xfail(f"XFAIL expected deviation: {deviation['reason']}\n{text}")
            raise CaseFailed(text)
        if result.verdict == Verdict.ERROR:
            raise HarnessError(text)
        if result.verdict == Verdict.INCONCLUSIVE:
            pytest.skip(f"INCONCLUSIVE: {text}")
        if deviation:  # listed as a deviation but conformant now: keep the file current
            raise CaseFailed(f"{self.tc.id} passed but is listed as an expected deviation "
                             f"({deviation['reason']}); remove it from the deviations file")

    def repr_failure(self, excinfo, style=None):
        from conformance.report.allure import CaseFailed, HarnessError

        if isinstance(excinfo.value, CaseFailed | HarnessError):
            return f"{self.tc.source}:{self.tc.line}: {excinfo.value}"
        return super().repr_failure(excinfo, style=style)

    def reportinfo(self):
        return self.path, (self.tc.line or 1) - 1, f"{self.tc.id}: {self.tc.title}"


_OFFLINE_KEY = pytest.StashKey[object]()


def _offline_capture(config, profile):
    """The recorded capture, dissected once per session."""
    if _OFFLINE_KEY not in config.stash:
        from conformance.capture import analyze_file

        keylogs = [profile.resolve_path(k) for k in profile.pixit.get("sut_keylogs") or []]
        keylogs += [Path(k) for k in config.getoption("--ims-keylog")]
        config.stash[_OFFLINE_KEY] = analyze_file(config.getoption("--ims-analyze"), profile.pixit,
                                                  [k for k in keylogs if k.exists()])
    return config.stash[_OFFLINE_KEY]


def _offline_user(config) -> dict:
    fixtures = _profile(config).fixtures
    name = config.getoption("--ims-user") or next(iter(fixtures), None)
    if name not in fixtures:
        raise pytest.UsageError(f"--ims-user {name!r}: the profile's users.fixtures are {', '.join(fixtures)}")
    return dict(fixtures[name])


_CAPTURE_KEY = pytest.StashKey[object]()


def _no_capture_reason(config, profile) -> str:
    if config.getoption("--no-capture-legs"):
        return "capture switched off (--no-capture)"
    if not (profile.pixit.get("capture") or {}).get("enabled", False):
        return "capture is disabled in the profile (pixit.capture.enabled)"
    return ""


def _capture_factory(config, profile):
    """One per session: the sniffer runs from the first capturing test case to the end."""
    if config.getoption("--no-capture-legs"):
        return None
    if not (profile.pixit.get("capture") or {}).get("enabled", False):
        return None
    if _CAPTURE_KEY not in config.stash:
        from conformance.run.capture_hook import CaptureFactory

        factory = CaptureFactory.for_config(config, profile)
        # Parallel workers share the network's legs: a time window would mix the messages of
        # test cases running at once, so each keeps only its own (conformance.capture.correlate).
        factory.correlate = hasattr(config, "workerinput")
        config.stash[_CAPTURE_KEY] = factory
    return config.stash[_CAPTURE_KEY]


def _record(tc, result, seconds: float, deviation) -> dict:
    return {
        "id": tc.id, "title": tc.title, "sut": tc.sut, "kind": tc.kind, "refs": list(tc.refs),
        "flow": sorted(tc.flow_steps), "verdict": result.verdict.value, "seconds": round(seconds, 3),
        "expected_deviation": bool(deviation), "reason": result.reason,
        "findings": [f.describe() for f in result.failures()],
        # the requirements only a SHOULD of was violated (the conformance statement says "warn")
        "warned_refs": sorted({f.ref for f in result.findings if f.verdict == Verdict.WARN and f.ref}),
    }


_WARNED = ("ims_verdict", Verdict.WARN.value)


def _mark_warned(item, text: str) -> None:
    """Pass with warnings: pytest outcome passed, but the terminal and Allure must say so."""
    import allure

    item.user_properties.append(_WARNED)
    item._ims_warning_text = text
    allure.dynamic.label("verdict", Verdict.WARN.value)
    allure.dynamic.tag("pass-with-warnings")


def pytest_report_teststatus(report, config):
    if report.when == "call" and report.passed and _WARNED in report.user_properties:
        return "warned", "W", ("PASS WITH WARNINGS", {"yellow": True})
    return None


def pytest_collection_modifyitems(config, items):
    nodes = set(config.getoption("--sut") or [])
    offline = bool(config.getoption("--ims-analyze"))
    if not nodes and not offline:
        return

    def wanted(item) -> bool:
        if not isinstance(item, TestCaseItem):
            return True
        return (not nodes or item.tc.sut in nodes) and (not offline or bool(item.tc.capture))

    keep, drop = [], []
    for item in items:
        (keep if wanted(item) else drop).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    _record_not_applicable(item, call)
    outcome = yield
    report = outcome.get_result()
    text = getattr(item, "_ims_warning_text", None)
    if report.when == "call" and report.passed and text:
        # Allure files a passed test in a category only by its message: give it one (this wrapper
        # runs after allure-pytest's, which leaves a passed test without status details).
        listener = item.config.pluginmanager.get_plugin("allure_listener")
        if listener is not None:
            from allure_commons.model2 import StatusDetails

            result = listener.allure_logger.get_test(listener._cache.get(item.nodeid))
            if result is not None:
                result.statusDetails = StatusDetails(message=f"PASS WITH WARNINGS: {text}")


def _record_not_applicable(item, call) -> None:
    if (isinstance(item, TestCaseItem) and call.when == "setup" and call.excinfo is not None
            and "NOT APPLICABLE" in str(call.excinfo.value)):
        item.config.stash[_RESULTS_KEY].append({
            "id": item.tc.id, "title": item.tc.title, "sut": item.tc.sut, "kind": item.tc.kind,
            "refs": list(item.tc.refs), "flow": sorted(item.tc.flow_steps),
            "verdict": Verdict.NOT_APPLICABLE.value, "seconds": 0.0, "expected_deviation": False,
            "reason": str(call.excinfo.value), "findings": []})


def pytest_sessionstart(session):
    config = session.config
    if not config.getoption("--profile") or config.getoption("--ims-analyze"):
        return  # offline analysis needs no network
    from conformance.run import reference

    profile = _profile(config)
    if not hasattr(config, "workerinput"):  # xdist workers use the network their controller started
        config._ims_refnet = reference.ensure_up(profile)
        from conformance.peers import start_for_profile

        # the nodes the vendor does not supply, played by the harness (docs/peers.md)
        config._ims_peers = start_for_profile(profile, Path(config.getoption("--ims-workdir")))
    factory = _capture_factory(config, profile)
    if factory is not None:  # sniff from the start: later cases may reuse connections opened now
        factory.ensure_started(Path(config.getoption("--ims-workdir")) / "harness.keylog")


def pytest_sessionfinish(session, exitstatus):
    config = session.config
    if _CAPTURE_KEY in config.stash:
        config.stash[_CAPTURE_KEY].close()
    peers = getattr(config, "_ims_peers", None)
    if peers is not None:
        peers.close()
    network = getattr(config, "_ims_refnet", None)
    if network is not None:
        network.stop_all()
    results = config.stash.get(_RESULTS_KEY, [])
    if _PROFILE_KEY not in config.stash:
        return
    profile = config.stash[_PROFILE_KEY]
    workdir = Path(config.getoption("--ims-workdir"))
    workdir.mkdir(parents=True, exist_ok=True)
    worker = getattr(config, "workerinput", {}).get("workerid", "main")
    out = workdir / f"verdicts-{worker}.json"
    out.write_text(json.dumps({"profile": str(profile.path), "pics": profile.pics, "results": results},
                              indent=2))
    alluredir = getattr(config.option, "allure_report_dir", None)
    if alluredir:
        from conformance.report.allure import write_environment

        write_environment(Path(alluredir), profile, profile.redactor)
