"""pytest plugin: collects the YAML test cases of `testcases/` and runs them with the engine.

`pytest testcases/ --profile profiles/reference.yaml` works on its own; `ims-conformance run`
calls pytest with this plugin. Verdict -> pytest outcome: pass -> passed, pass with warnings ->
passed (shown as W / PASS WITH WARNINGS; failed with --ims-strict), fail -> failed (AssertionError), error -> error (broken in Allure), inconclusive and not applicable -> skipped
with an `INCONCLUSIVE:` / `NOT APPLICABLE:` reason. Known deviations of the profile -> xfail.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from conformance.verdicts import Verdict

_PROFILE_KEY = pytest.StashKey[object]()
_RESULTS_KEY = pytest.StashKey[list]()
_HANDED_WAITS_KEY = pytest.StashKey[object]()  # the controller's stated_waits.ControllerSide


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
    g.addoption("--ims-user", help="(offline) the identity the capture shows: a fixture name of the profile, "
                                   "a Web ID, an IMPU or an IMPI (default: found in the capture)")
    g.addoption("--ims-strict", action="store_true",
                help="a violated SHOULD fails the test case (default: pass with warnings)")
    g.addoption("--ims-catalog", action="append", default=[], metavar="PATH",
                help="a catalog directory or test case file, whatever its folder is called "
                     "(without it, YAML files under a folder named testcases/ are test cases)")
    g.addoption("--ims-parsed-catalog", metavar="FILE",
                help="(set by `ims-conformance run -n`) the test cases it validated, so workers do not parse them again")
    g.addoption("--ims-worker-zygote", metavar="PYTHON",
                help="(set by `ims-conformance run -n`) the interpreter command that forks an xdist worker from "
                     "the run's fork server (conformance/run/worker_zygote.py)")


def _is_testcase_file(path: Path, roots: list[Path] = ()) -> bool:
    if path.suffix not in (".yaml", ".yml"):
        return False
    for root in roots:  # given explicitly: every YAML file under it except fragments
        if path == root:
            return True
        if root in path.parents:
            return "fragments" not in path.relative_to(root).parts
    return "testcases" in path.parts and "fragments" not in path.parts


def pytest_configure(config):
    config.stash[_RESULTS_KEY] = []
    if config.getoption("--profile", None):  # a catalog run: collected and set up without the
        from conformance.run import start_up_gc  # cyclic collector, until the test loop begins

        start_up_gc.pause()
    if config.getoption("--ims-worker-zygote", None) and not hasattr(config, "workerinput"):
        from conformance.run.worker_zygote import xdist_specs

        # `-n N` made N plain popen specs (xdist's cmdline_main): the same workers, forked from the
        # server that has imported what they need instead of each starting a new interpreter
        specs = xdist_specs(getattr(config.option, "tx", None), config.getoption("--ims-worker-zygote"))
        if specs:
            config.option.tx = specs
    config.addinivalue_line("markers", "positive: a positive test case (the SUT must do X)")
    config.addinivalue_line("markers", "negative: a negative test case (the SUT must refuse X)")
    config.addinivalue_line("markers", "sut(node): the node under test")


def pytest_unconfigure(config):
    from conformance.run import start_up_gc

    start_up_gc.resume()  # a session that ended before its test loop (usage error, --collect-only)
    if hasattr(config, "workerinput"):
        # an xdist worker's process ends with its session: freeze its heap, so the interpreter's
        # final collection does not walk a whole catalog's objects only to free what the exit
        # frees anyway (0.3-0.4 s between the last case and the end of a `-n 2` run; issue 15)
        import gc

        gc.freeze()


def _profile(config):
    if _PROFILE_KEY not in config.stash:
        from conformance.model.profile import load_profile

        path = config.getoption("--profile")
        if not path:
            raise pytest.UsageError("YAML test cases need --profile PROFILE.yaml (e.g. profiles/reference.yaml)")
        profile = load_profile(path)
        from conformance.run import worker_network

        index = worker_network.worker_index(config)
        if index is not None and worker_network.applies(profile) and not config.getoption("--ims-analyze"):
            profile = worker_network.for_worker(profile, index)  # this worker's own reference network
            config._ims_own_network = True
        config.stash[_PROFILE_KEY] = profile
    return config.stash[_PROFILE_KEY]


def pytest_collect_file(file_path: Path, parent):
    roots = [Path(r).resolve() for r in parent.config.getoption("--ims-catalog")]
    if _is_testcase_file(file_path.resolve(), roots):
        return YamlTestFile.from_parent(parent, path=file_path)
    return None


class YamlTestFile(pytest.File):
    def collect(self):
        from conformance.run import parsed_catalog

        # the TestCase `ims-conformance run` built when it validated the catalog, if still current;
        # else parsed (raises with file:line:column on bad input)
        tc = parsed_catalog.testcase(self.path, self.config.getoption("--ims-parsed-catalog"))
        yield TestCaseItem.from_parent(self, name=tc.id, testcase=tc)


class TestCaseItem(pytest.Item):
    def __init__(self, *, testcase, **kw):
        super().__init__(**kw)
        self.tc = testcase
        from conformance.report.allure import item_markers

        item_markers(self, testcase)
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
            self._publish({"verdict": Verdict.NOT_APPLICABLE.value, "seconds": 0.0, "checks": []})
            pytest.skip(f"NOT APPLICABLE: PICS selection `{sel.expr}` is false ({answers})")
        unsupplied = self.tc.unsupplied(profile.pixit)
        if unsupplied:  # published like every other n/a, or the case's console line says "unknown"
            self._publish({"verdict": Verdict.NOT_APPLICABLE.value, "seconds": 0.0, "checks": []})
            pytest.skip(f"NOT APPLICABLE: {unsupplied}")
        missing = self.tc.missing_pixit(profile.pixit)
        if missing:  # a value the binding leaves open and the profile does not declare: never guessed
            self._publish({"verdict": Verdict.NOT_APPLICABLE.value, "seconds": 0.0, "checks": []})
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
            record = _record(self.tc, result, time.time() - started, None)
            self.config.stash[_RESULTS_KEY].append(record)
            self._publish(record)
            raise HarnessError(result.reason) from exc
        if result.verdict == Verdict.WARN and self.config.getoption("--ims-strict"):
            result.verdict = Verdict.FAIL
            result.reason = "--strict: a violated SHOULD counts as a failure"
        record = _record(self.tc, result, time.time() - started, deviation)
        self.config.stash[_RESULTS_KEY].append(record)
        self._publish(record)
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
        if result.verdict == Verdict.NOT_APPLICABLE:  # offline analysis: the trace cannot judge it
            pytest.skip(f"NOT APPLICABLE: {text}")
        if deviation:  # listed as a deviation but conformant now: keep the file current
            raise CaseFailed(f"{self.tc.id} passed but is listed as an expected deviation "
                             f"({deviation['reason']}); remove it from the deviations file")

    def _publish(self, record: dict) -> None:
        """The verdict rides on the pytest report (xdist sends user_properties to the controller;
        JUnit XML writes them as <properties>): one `ref` property per requirement reference."""
        self.user_properties.append(("ims_verdict", record["verdict"]))
        self.user_properties.append(("ims_seconds", record["seconds"]))
        if record.get("expected_deviation"):
            self.user_properties.append(("ims_expected_deviation", True))
        for ref in self.tc.refs:
            self.user_properties.append(("ref", ref))

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
    from conformance.run.offline import IdentityError, resolve_identity

    profile = _profile(config)
    try:
        return resolve_identity(config.getoption("--ims-user"), profile.fixtures,
                                _offline_capture(config, profile).timeline)
    except IdentityError as exc:
        raise pytest.UsageError(str(exc)) from exc


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
        # (not needed when the worker has a reference network of its own: conformance.run.worker_network)
        factory.correlate = hasattr(config, "workerinput") and not getattr(config, "_ims_own_network", False)
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
        "checks": checks_of(tc, result),
    }


def checks_of(tc, result) -> list[dict]:
    """Every check of the run with the requirements it cites: its own `ref`, or the test case's
    refs when it has none (a check without a ref enforces the test purpose). The conformance
    statement derives each requirement's verdict from these."""
    in_step = {}
    for step in getattr(result, "steps", []):
        for f in step.findings:
            in_step[id(f)] = step.title
    out = []
    for f in result.findings:
        refs = [f.ref.strip()] if f.ref else [r.strip() for r in tc.refs]
        out.append({"refs": refs, "level": str(f.level), "verdict": f.verdict.value, "subject": f.subject,
                    "step": in_step.get(id(f), "capture"), "description": f.describe()})
    return out


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
    if hasattr(config, "workerinput") and config.getoption("--profile") and not offline \
            and items and all(isinstance(item, TestCaseItem) for item in items):
        # an xdist worker of a catalog run: the cases that wait a stated time first (conformance.run.long_first)
        from conformance.run import stated_waits
        from conformance.run.long_first import longest_first

        profile = _profile(config)
        waits = {item.nodeid: _case_wait(item.tc, profile) for item in items}
        items[:] = longest_first(items, lambda item: waits[item.nodeid])
        stated_waits.hand_over(config.workerinput, waits)  # before this worker tells the controller its collection
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
    outcome = yield
    if not isinstance(item, TestCaseItem):
        return
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
    if (call.when == "setup" and call.excinfo is not None
            and "NOT APPLICABLE" in str(call.excinfo.value)):
        item.config.stash[_RESULTS_KEY].append({
            "id": item.tc.id, "title": item.tc.title, "sut": item.tc.sut, "kind": item.tc.kind,
            "refs": list(item.tc.refs), "flow": sorted(item.tc.flow_steps),
            "verdict": Verdict.NOT_APPLICABLE.value, "seconds": 0.0, "expected_deviation": False,
            "reason": str(call.excinfo.value), "findings": [], "checks": []})
    if report.skipped and isinstance(report.longrepr, tuple) and len(report.longrepr) == 3:
        # a skip points at the test case's YAML, not at the line of this plugin that skipped
        report.longrepr = (str(item.tc.source), item.tc.line or 1, report.longrepr[2])


def pytest_report_header(config):
    """Session-start warnings about the profile (printed once, by the controller)."""
    if not config.getoption("--profile") or config.getoption("--ims-analyze"):
        return None
    from conformance.run.identities import no_provisioning_warning

    warning = no_provisioning_warning(_profile(config))
    return [f"WARNING: {warning}"] if warning else None


_SETUP_KEY = pytest.StashKey[object]()


def pytest_sessionstart(session):
    config = session.config
    if not config.getoption("--profile") or config.getoption("--ims-analyze") or config.option.collectonly:
        return  # offline analysis and listing the catalog need no network
    profile = _profile(config)
    from conformance.run import worker_network, worker_network_start

    if not hasattr(config, "workerinput") and worker_network.runs_in_parallel(config) \
            and worker_network.applies(profile):
        # one network per worker, started now, while xdist spawns the workers (it returns at once;
        # set here, not in the background, because xdist hands each worker its part as it sets it up)
        from conformance.run import session_setup

        count, workdir = len(config.option.tx or []), Path(config.getoption("--ims-workdir")).resolve()
        networks = session_setup.take_early_worker_networks(count, workdir)  # started by `ims-conformance run`
        if networks is None:
            networks = worker_network_start.ControllerNetworks(profile, count, workdir)
            networks.start()
        config._ims_worker_networks = networks
        _check_files(config, profile)
        return  # a controller whose workers have networks of their own runs no test case
    from conformance.run.session_setup import BackgroundSetup

    # the network, peers and sniffer come up while pytest collects; the test loop waits for them
    config.stash[_SETUP_KEY] = BackgroundSetup(lambda: _set_up(config, profile))


def _set_up(config, profile) -> None:
    """The reference network (this worker's own under -n), the emulated peers, the sniffer."""
    from conformance.run import reference, worker_network, worker_network_start

    try:
        if getattr(config, "_ims_own_network", False):  # an xdist worker with a network of its own
            handover = config.workerinput.get(worker_network_start.WORKERINPUT_KEY)
            if handover:  # the controller started it while this worker was starting
                worker_network_start.wait_for_mine(Path(handover), worker_network.worker_index(config))
            else:
                config._ims_refnet = reference.ensure_up(profile)
        elif not hasattr(config, "workerinput"):
            from conformance.run import session_setup

            early = session_setup.take_early_network()  # started by `ims-conformance run`
            config._ims_refnet = early.result() if early is not None else reference.ensure_up(profile)
    except (reference.NetworkMismatch, worker_network_start.NetworkNotStarted) as exc:
        raise pytest.UsageError(str(exc)) from None
    # the nodes the vendor does not supply, played by the harness (docs/peers.md), in the process
    # that runs the test cases (a case scripts them and reads what they received): each xdist
    # worker with a network of its own plays them at its own addresses; otherwise the controller
    if getattr(config, "_ims_own_network", False) or not hasattr(config, "workerinput") and not (
            worker_network.runs_in_parallel(config) and worker_network.applies(profile)):
        from conformance.peers import start_for_profile

        config._ims_peers = start_for_profile(profile, Path(config.getoption("--ims-workdir")))
    _check_files(config, profile)
    factory = _capture_factory(config, profile)
    if factory is not None:  # sniff from the start: later cases may reuse connections opened now
        factory.ensure_started(Path(config.getoption("--ims-workdir")) / "harness.keylog")


def _check_files(config, profile) -> None:
    from conformance.model.profile_files import check_files

    # a controller whose workers each start their own network has no state directory to check yet
    started = hasattr(config, "workerinput") or getattr(config, "_ims_refnet", None) is not None
    missing = check_files(profile, network_started=started)
    if missing:  # before anything is sent: every TLS connection would fail as the SUT's fault
        raise pytest.UsageError("\n".join(map(str, missing)))


@pytest.hookimpl(tryfirst=True)
def pytest_runtestloop(session):
    """Before the first test case: the session's set-up has ended, or its error ends the session."""
    if session.config.option.collectonly:
        return None
    try:
        _await_set_up(session.config)
    finally:
        from conformance.run import start_up_gc

        start_up_gc.resume()  # start-up ends here: the cases run with the cyclic collector on
    return None  # pytest's own loop runs the cases


def _await_set_up(config) -> None:
    setup = config.stash.get(_SETUP_KEY, None)
    if setup is None:
        return
    from conformance.run.session_setup import SetupTimeout

    try:
        setup.result()
    except SetupTimeout as exc:
        raise pytest.UsageError(str(exc)) from None


@pytest.hookimpl(optionalhook=True)  # an xdist hook: called in the controller for each worker it sets up
def pytest_configure_node(node):
    from conformance.run import worker_network, worker_network_start

    networks = getattr(node.config, "_ims_worker_networks", None)
    index = worker_network.worker_index(node)
    if networks is not None and index is not None and index < networks.count:
        node.workerinput[worker_network_start.WORKERINPUT_KEY] = str(networks.workdir)
    if _long_first(node.config):
        from conformance.run.stated_waits import WORKERINPUT_KEY

        node.workerinput[WORKERINPUT_KEY] = _handed_waits(node.config).workerinput()


@pytest.hookimpl(optionalhook=True, tryfirst=True)  # an xdist hook: the controller's scheduler (before xdist's own)
def pytest_xdist_make_scheduler(config, log):
    """A catalog run with the default --dist load: the cases that wait go first, spread over the
    workers (conformance.run.long_first); any other run, or another --dist, is xdist's."""
    if _long_first(config):
        from conformance.run.long_first import make_scheduler

        handed = _handed_waits(config)  # the waits the workers sorted by (conformance.run.stated_waits)

        def wait_of(nodeid: str) -> float:
            waits = handed.waits()
            return waits.get(nodeid, 0.0) if waits is not None else _stated_wait_of(config, nodeid)

        return make_scheduler(config, log, wait_of)
    return None


def _long_first(config) -> bool:
    """The controller of a catalog run with the default --dist load deals the cases itself."""
    return bool(config.getoption("--profile")) and not config.getoption("--ims-analyze") \
        and config.getvalue("dist") == "load"


def _handed_waits(config):
    """The controller's end of the workers' stated waits, made the first time it is asked for:
    when the first worker is configured, before any worker has received its input."""
    if _HANDED_WAITS_KEY not in config.stash:
        from conformance.run.stated_waits import ControllerSide

        config.stash[_HANDED_WAITS_KEY] = ControllerSide(Path(config.getoption("--ims-workdir")))
    return config.stash[_HANDED_WAITS_KEY]


def _stated_wait_of(config, nodeid: str) -> float:
    """The stated wait (ms) of the case `nodeid` names, as the workers sort by it: 0 when the
    profile makes it not applicable. In the controller, which collects nothing itself."""
    from conformance.run import parsed_catalog

    path = Path(nodeid.split("::", 1)[0])
    path = path if path.is_absolute() else config.rootpath / path
    return _case_wait(parsed_catalog.testcase(path, config.getoption("--ims-parsed-catalog")), _profile(config))


def _case_wait(tc, profile) -> float:
    """A case's stated wait (conformance.run.long_first); a case the profile makes not applicable
    waits for nothing, whatever it states."""
    from conformance.run.long_first import stated_wait_ms

    return stated_wait_ms(tc, profile.pixit) if tc.applicable(profile.pics, profile.pixit) else 0.0


@pytest.hookimpl(optionalhook=True)  # an xdist hook: in the controller, when a worker has finished
def pytest_testnodedown(node, error):
    from conformance.run import worker_network

    networks = getattr(node.config, "_ims_worker_networks", None)
    index = worker_network.worker_index(node)
    if networks is not None and index is not None:
        networks.stop_soon(index)


def pytest_sessionfinish(session, exitstatus):
    config = session.config
    setup = config.stash.get(_SETUP_KEY, None)
    if setup is not None and not setup.done():  # ended before the loop waited (collect-only, Ctrl-C)
        try:
            _await_set_up(config)  # bounded; what it started is stopped below
        except Exception:  # noqa: BLE001 - its error was the session's already, or it had none to report
            pass
    if _CAPTURE_KEY in config.stash:
        config.stash[_CAPTURE_KEY].close()
    from conformance.run import provisioning_pool

    provisioning_pool.close_all()  # the kept-alive provisioning connections, while their servers run
    peers = getattr(config, "_ims_peers", None)
    if peers is not None:
        peers.close()
    network = getattr(config, "_ims_refnet", None)
    if network is not None:
        network.stop_all()
    worker_networks = getattr(config, "_ims_worker_networks", None)
    if worker_networks is not None:  # every worker has finished its session by now
        worker_networks.stop()
    results = config.stash.get(_RESULTS_KEY, [])
    if _PROFILE_KEY not in config.stash:
        return
    profile = config.stash[_PROFILE_KEY]
    workdir = Path(config.getoption("--ims-workdir"))
    workdir.mkdir(parents=True, exist_ok=True)
    worker = getattr(config, "workerinput", {}).get("workerid", "main")
    out = workdir / f"verdicts-{worker}.json"
    from conformance.run.verdict_files import dumps

    text = dumps(profile.redactor.obj({"profile": str(profile.path), "pics": profile.pics, "results": results}))
    out.write_text(text)
    alluredir = getattr(config.option, "allure_report_dir", None)
    if alluredir:
        from conformance.report.allure import write_environment
        from conformance.run.verdict_files import RESULTS_SUBDIR

        # the verdicts travel with the Allure results they belong to: `report` builds the
        # conformance statement of this run from them, whatever workdir is used later
        beside = Path(alluredir) / RESULTS_SUBDIR
        beside.mkdir(parents=True, exist_ok=True)
        (beside / out.name).write_text(text)
        write_environment(Path(alluredir), profile, profile.redactor)
