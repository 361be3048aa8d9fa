"""The step engine: runs one test case against the SUT and turns what it saw into a verdict.

Data flows one way: render the step's templates, run its one action through a driver, check
every expectation (all of them, never stopping at the first), save values, report. A step that
does not pass stops the test case (later steps depend on it); the capture assertions are still
evaluated so the report shows what the other legs did.
"""

from __future__ import annotations

import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from conformance.drivers.browser import BrowserUnavailable
from conformance.events import Nothing
from conformance.match.engine import MatchContext, check, save
from conformance.model.testcase import TestCase
from conformance.peers import evidence as peer_evidence
from conformance.run import actions, browser_actions, identities
from conformance.run.clock import as_clock
from conformance.run.deadline import Deadline
from conformance.run.evidence import BoundedReporter
from conformance.run.reporter import NullReporter, Reporter
from conformance.run.state import CaseState
from conformance.run.templating import TemplateContext, TemplateError, render
from conformance.verdicts import Finding, Verdict, judge, worst

PREAMBLES = Path(__file__).resolve().parent / "preambles"
_DISCOVERED: dict[str, dict] = {}  # issuer -> its RFC 8414 metadata, once per process


class SutUnreachable(Exception):
    """The SUT could not be reached at all: nothing could be observed (inconclusive)."""


@dataclass
class StepOutcome:
    title: str
    flow: list[int]
    verdict: Verdict
    findings: list[Finding] = field(default_factory=list)
    duration_ms: float = 0.0
    diff: str = ""  # expected against received, for the failed header/status checks


def mismatch_diff(findings: list[Finding], received) -> str:
    """A readable diff of what the failed checks expected against the received message: the
    checked header fields (and the start line) only, so the eye lands on what differs."""
    import difflib

    from conformance.match.diff import message_lines

    failed = [f for f in findings if f.verdict == Verdict.FAIL]
    names = []
    for f in failed:
        words = f.subject.split()
        if len(words) >= 2 and words[0] == "header" and words[1] not in names:
            names.append(words[1])
    wants_status = any(f.subject.startswith("status") for f in failed)
    if not names and not wants_status:
        return ""
    try:
        got = message_lines(received, only=names, headers_only=not wants_status)
    except TypeError:  # not a message (nothing arrived, a close): the findings say it already
        return ""
    if not wants_status:
        got = [g for g in got if ":" in g]
    else:
        got = got[:1] + [g for g in got[1:] if ":" in g]
    expected = []
    for f in failed:
        if f.subject.startswith("status"):
            expected.insert(0, f"status {f.expected}")
        elif f.subject.split()[0] == "header":
            expected.append(f"{' '.join(f.subject.split()[1:])}: {f.expected}")
    return "\n".join(difflib.unified_diff(expected, got, "expected", "received", lineterm=""))


@dataclass
class CaseResult:
    case_id: str
    verdict: Verdict
    steps: list[StepOutcome] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)  # all findings, capture included
    reason: str = ""

    def failures(self) -> list[Finding]:
        return [f for f in self.findings if f.verdict != Verdict.PASS]

    def summary(self) -> str:
        lines = [f"{self.case_id}: {self.verdict.value}" + (f" ({self.reason})" if self.reason else "")]
        lines += [f"  {f.describe()}" for f in self.failures()]
        for step in self.steps:
            if step.diff:
                lines += [f"  diff of step '{step.title}':"] + [f"    {d}" for d in step.diff.splitlines()]
        return "\n".join(lines)


def _not_due(findings: list[Finding], stopped: StepOutcome | None) -> list[Finding]:
    """A message the capture misses after the case stopped early may never have been due (the
    steps that would have caused it did not run): not evaluated, never a failure. What the
    capture did see (a forbidden message, a wrong header) stays a finding."""
    if stopped is None:
        return findings
    out = []
    for f in findings:
        if f.verdict == Verdict.FAIL and f.expected in ("present", "present in order"):
            f = Finding(Verdict.INCONCLUSIVE, f.subject, f.expected, f.actual, f.ref,
                        f"not evaluated: the case stopped at step '{stopped.title}' ({stopped.verdict.value})",
                        f.line, f.level)
        out.append(f)
    return out


def implicit_findings(received, has_expectations: bool, line: int | None) -> list[Finding]:
    """Checks every step makes whatever its `expect` says: an opening handshake answered 101 that
    the harness could not accept (wrong Sec-WebSocket-Accept, RFC 6455 4.1) fails here, so the case
    stops at the SUT's fault instead of erring later on a connection that never opened; bytes
    that are no message fail a step that checks nothing else."""
    from conformance.events import Garbage, WsHandshake
    from conformance.match.operators import show

    if isinstance(received, WsHandshake) and received.status == 101 and received.error:
        return [Finding(Verdict.FAIL, "WebSocket opening handshake", "a valid 101 answer (RFC 6455 4.1)",
                        received.error, ref="RFC 6455 4.1", line=line)]
    if isinstance(received, Garbage) and not has_expectations:
        return [Finding(Verdict.FAIL, "answer", "a well-formed message",
                        f"{received.reason}: {len(received.raw)} bytes {show(received.raw, 120)}", line=line)]
    return []


def _step_title(step: dict, index: int) -> str:
    name = step.get("name") or f"step {index + 1}: {actions.action_of(step)}"
    flow = step.get("flow")
    return f"[{', '.join(map(str, flow))}] {name}" if flow else name


def _error(subject: str, message: str, line: int | None = None) -> Finding:
    return Finding(Verdict.ERROR, subject, "a runnable step", "error", message=message, line=line)


def _cookie_values(state: CaseState) -> list[str]:
    values = [c.value for c in state.http.session.cookies] if state.http is not None else []
    if state.browser is not None:
        values += state.browser.cookie_values()
    return values


class Engine:
    def __init__(self, profile: Any, *, reporter: Reporter | None = None, workdir: Path | None = None,
                 capture_factory=None, no_capture_reason: str = "", clock=None):
        self.profile = profile
        # every attachment and the whole case's evidence bounded, whatever the SUT sends
        self.reporter = BoundedReporter(reporter or NullReporter())
        self.workdir = Path(workdir or ".ims-conformance")
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.capture_factory = capture_factory
        self.no_capture_reason = no_capture_reason or "capture is disabled in the profile or not available"
        self.clock = as_clock(clock)  # a Clock (or a function of seconds): every deadline reads it
        self.identities = identities.IdentityProvider(profile, self.workdir, clock=self.clock)

    # -- one test case ---------------------------------------------------------------------------
    def run(self, tc: TestCase) -> CaseResult:
        self.reporter.new_case()
        keylog = self.workdir / "harness.keylog"
        missing = tc.missing_needs(self.profile.pixit)
        if missing:  # what the case checks cannot be provoked with this profile: never a pass
            return CaseResult(tc.id, Verdict.INCONCLUSIVE, reason="not exercised: " + "; ".join(missing))
        try:
            lease = self.identities.lease(tc)
        except identities.ProvisioningError as exc:
            return CaseResult(tc.id, Verdict.INCONCLUSIVE, reason=f"could not provision a test identity: {exc}")
        peers = peer_evidence.active()
        if peers is not None:  # the emulated peers know the case's identity, as the operator's and
            peers.users.add(lease.user)  # the third party's databases do for one they provisioned
        reset = lease.needs_reset and tc.touches_registrations()
        try:
            if reset:  # a shared fixture user: a known state first (preamble)
                problem = self._reset_identity(lease, "preamble")
                if problem:
                    return CaseResult(tc.id, Verdict.INCONCLUSIVE, reason=problem)
            result = self._run_with(tc, lease.user, keylog)
            if reset:  # and no registration left behind for the next case (postamble)
                problem = self._reset_identity(lease, "postamble")
                if problem:
                    result.reason = "; ".join(filter(None, [result.reason, problem]))
            return result
        finally:
            lease.release()

    def _reset_identity(self, lease: identities.Lease, phase: str) -> str:
        """Remove every registration of a leased fixture user along the binding's path; a
        problem here is not the case's verdict, but the case cannot start from a known state."""
        from conformance.model.testcase import load_testcase

        mode = self.profile.pics.get("signalling.path", "relay")
        script = load_testcase(PREAMBLES / f"reset_{'direct' if mode == 'direct' else 'relay'}.yaml")
        state = CaseState(profile=self.profile, user=lease.user, users=self.identities.fixtures,
                          keylog=self.workdir / "harness.keylog")
        mctx = MatchContext(identities=self.identities.table(lease.user), jwks_provider=self._jwks_provider(state),
                            capture_available=True)
        try:
            with self.reporter.step(f"{phase}: remove the registrations of fixture user {lease.fixture}") as rstep:
                for i, step in enumerate(script.steps):
                    findings = self._step_findings(step, state, mctx, getattr(step, "line", None))
                    bad = [f for f in findings if not f.ok]
                    if bad:
                        rstep.finish(Verdict.INCONCLUSIVE, bad)
                        return (f"{phase} could not bring fixture user {lease.fixture!r} to a known state "
                                f"(step {i + 1}, {step.get('name')}): " + "; ".join(f.describe() for f in bad))
                rstep.finish(Verdict.PASS, [])
        finally:
            state.close()
        return ""

    def _run_with(self, tc: TestCase, user: dict, keylog: Path) -> CaseResult:
        state = CaseState(profile=self.profile, user=user, users=self.identities.fixtures, keylog=keylog)
        self._discover(state)
        mctx = MatchContext(identities=self.identities.table(user), jwks_provider=self._jwks_provider(state),
                            capture_available=True)
        if browser_actions.browser_mode(self.profile) and browser_actions.plays(tc):
            try:
                state.browser = self._start_browser(keylog)
            except BrowserUnavailable as exc:
                return CaseResult(tc.id, Verdict.ERROR, reason=f"ue.mode browser: {exc}")
        capture = self._start_capture(tc, keylog)
        peer_evidence.begin(tc)  # scripts for the emulated peers (docs/peers.md)
        steps: list[StepOutcome] = []
        findings: list[Finding] = []
        try:
            for i, step in enumerate(tc.steps):
                outcome = self._run_step(i, step, state, mctx)
                steps.append(outcome)
                findings += outcome.findings
                if outcome.verdict not in (Verdict.PASS, Verdict.WARN):  # a warning never stops a case
                    break
        finally:
            # closing handshakes get a short deadline too: a peer flooding pings or never sending
            # its close frame cannot hold the case after its last step
            with Deadline(min(1.0, self._timeout_s({}) / 4), self.clock).active():
                state.close()
            findings += self._finish_peers(tc, mctx, state)
            stopped = next((s for s in steps if s.verdict not in (Verdict.PASS, Verdict.WARN)), None)
            findings += _not_due(self._finish_capture(tc, capture, mctx, state, stopped), stopped)
        verdict = judge(findings)
        if not steps and verdict == Verdict.PASS:
            verdict = Verdict.ERROR
            findings.append(_error("test case", "no steps ran"))
        return CaseResult(tc.id, verdict, steps, findings)

    def _start_browser(self, keylog: Path):
        from conformance.drivers.browser import CHROMIUM, BrowserUe

        ue = self.profile.pixit.get("ue") or {}
        return BrowserUe(ca_file=actions._ca_bundle(self.profile), keylog=keylog,
                         executable=ue.get("browser_executable", CHROMIUM), clock=self.clock)

    # -- offline: the capture assertions of a test case against a recorded capture ---------------
    def analyze(self, tc: TestCase, capture_result, user: dict) -> CaseResult:
        """`ims-conformance analyze`: no step runs. What a recorded trace cannot judge is not
        applicable, said so (conformance.run.offline): negative test cases, expectations that
        need a value saved at run time, test cases whose scenario is not in the trace."""
        from conformance.capture import evaluate_capture
        from conformance.report.capture_steps import report_capture_entries
        from conformance.report.ladder import render_ladder
        from conformance.run import offline

        if tc.kind == "negative":
            return CaseResult(tc.id, Verdict.NOT_APPLICABLE, reason=offline.NEGATIVE_REASON)
        state = CaseState(profile=self.profile, user=user, users=self.identities.fixtures,
                          keylog=self.workdir / "harness.keylog")
        mctx = MatchContext(identities=self.identities.table(user), jwks_provider=self._jwks_provider(state),
                            capture_available=True)
        with self.reporter.step("capture assertions on the recorded trace") as rstep:
            stimulus = repr([step.get(actions.action_of(step)) for step in tc.steps])
            block, skipped = offline.render_offline(tc.capture, lambda obj: render(obj, self._template_context(state)),
                                                    TemplateError, stimulus)
            findings = evaluate_capture(block, capture_result, mctx, self.profile.pixit)
            out = self.workdir / "ladders" / f"{tc.id}.svg"
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(render_ladder(capture_result.timeline, findings, block, self.profile.pixit))
            self.reporter.attach_file("sequence diagram", out, "image/svg+xml")
            report_capture_entries(self.reporter, findings, capture_result.timeline, block, self.profile.pixit)
            judged = [f for f in findings if f.verdict != Verdict.NOT_APPLICABLE]
            verdict = worst(f.verdict for f in judged) if judged else Verdict.NOT_APPLICABLE
            reason = ""
            if offline.scenario_absent(findings, capture_result.timeline):
                verdict, reason = Verdict.NOT_APPLICABLE, ("the trace does not show this test case's scenario "
                                                           "(none of its messages, or none the harness would send)")
            elif skipped:
                reason = f"{len(skipped)} check(s) need values of a live run and were not evaluated"
            rstep.finish(verdict, findings + skipped)
        return CaseResult(tc.id, verdict, findings=findings + skipped, reason=reason)

    # -- one step --------------------------------------------------------------------------------
    def _run_step(self, index: int, step: dict, state: CaseState, mctx: MatchContext) -> StepOutcome:
        title = _step_title(step, index)
        started = self.clock.now()
        line = getattr(step, "line", None)
        with self.reporter.step(title) as rstep:
            state.last_received = None
            findings = self._step_findings(step, state, mctx, line)
            verdict = judge(findings)
            diff = mismatch_diff(findings, state.last_received) if verdict == Verdict.FAIL else ""
            if diff:
                self.reporter.attach_text("diff: expected vs received", diff)
            rstep.finish(verdict, findings)
        return StepOutcome(title, list(step.get("flow") or []), verdict, findings,
                           (self.clock.now() - started) * 1000.0, diff)

    def _template_context(self, state: CaseState, extra: dict | None = None) -> TemplateContext:
        return TemplateContext(pixit=self.profile.pixit, pics=self.profile.pics, user=state.user,
                               users=state.users, saved=state.saved, extra=extra or {})

    def _step_findings(self, step: dict, state: CaseState, mctx: MatchContext, line) -> list[Finding]:
        if "poll" not in step:
            return self._attempt(step, state, mctx, line)
        return self._poll(step, state, mctx, line)

    def _poll(self, step: dict, state: CaseState, mctx: MatchContext, line) -> list[Finding]:
        """`poll: {within_ms, every_ms}`: the step is repeated while the SUT's answer fails its
        expectations, until `within_ms` after the first attempt; the last attempt is the step's
        verdict. A state the SUT reaches "at once" or "after expiry" is then judged as soon as it
        is reached instead of after a fixed pause sized for the slowest conformant SUT. Silence
        (inconclusive) and harness errors end the poll: asking again would prove nothing."""
        try:
            spec = render(step["poll"], self._template_context(state))
            within_s, every_s = float(spec["within_ms"]) / 1000.0, float(spec.get("every_ms", 100)) / 1000.0
        except (TemplateError, KeyError, TypeError, ValueError) as exc:
            return [_error("poll", f"poll needs within_ms (and optionally every_ms) in milliseconds: {exc}", line)]
        started = self.clock.now()
        attempts: list[str] = []
        while True:
            findings = self._attempt(step, state, mctx, line)
            verdict = judge(findings)
            attempts.append(f"attempt {len(attempts) + 1} at {(self.clock.now() - started) * 1000.0:.0f} ms: "
                            f"{verdict.value}" + "".join(f"\n  {f.verdict.value} {f.subject}: expected "
                                                        f"{f.expected}, got {f.actual}" for f in findings
                                                        if f.verdict == Verdict.FAIL))
            left = started + within_s - self.clock.now()
            if verdict != Verdict.FAIL or left <= 0:
                break
            self.clock.sleep(min(every_s, left))
        if len(attempts) > 1:
            self.reporter.attach_text("poll attempts", "\n".join(attempts))
        if verdict == Verdict.FAIL:
            for f in findings:
                if f.verdict == Verdict.FAIL:
                    f.message = (f"{f.message} " if f.message else "") + (
                        f"(still so after {len(attempts)} attempt(s) within {within_s * 1000.0:.0f} ms)")
        return findings

    def _attempt(self, step: dict, state: CaseState, mctx: MatchContext, line) -> list[Finding]:
        name = actions.action_of(step)
        tctx = self._template_context(state)
        try:
            spec = render(step[name], tctx)
        except TemplateError as exc:
            return [_error(f"{name} template", str(exc), line)]
        timeout_s = self._timeout_s(step)
        # One deadline over the whole step: connect, TLS, request, every read, and the checks.
        step_deadline = Deadline(timeout_s, self.clock, connect_s=self.profile.connect_timeout_ms / 1000.0)
        with step_deadline.active():
            return self._step_within(name, spec, step, state, mctx, line, tctx, timeout_s, step_deadline)

    def _step_within(self, name, spec, step, state, mctx, line, tctx, timeout_s, step_deadline) -> list[Finding]:
        try:
            received = actions.run(name, spec, state, actions.ActionEnv(
                profile=self.profile, reporter=self.reporter, timeout_s=timeout_s,
                template_context=lambda extra=None: self._template_context(state, extra),
                clock=self.clock, deadline=step_deadline))
        except actions.TooLong as exc:
            return [Finding(Verdict.INCONCLUSIVE, name, "a bounded wait", "too long", message=str(exc), line=line)]
        except actions.NotExercised as exc:
            return [Finding(Verdict.INCONCLUSIVE, name, "a step the SUT and profile allow", "not exercised",
                            message=str(exc), line=line)]
        except actions.SutUnreachable as exc:
            return [Finding(Verdict.INCONCLUSIVE, name, "a reachable SUT", "unreachable", message=str(exc), line=line)]
        except actions.StepError as exc:
            return [_error(name, str(exc), line)]
        except Exception as exc:  # noqa: BLE001 - a harness bug is an error verdict, never a crash
            self.reporter.attach_text("traceback", traceback.format_exc())
            return [_error(name, f"{type(exc).__name__}: {exc}", line)]
        state.last_received = received
        findings: list[Finding] = implicit_findings(received, bool(step.get("expect")), line)
        for item in step.get("expect") or []:
            item_line = getattr(item, "line", None)
            try:
                rendered = render(item, tctx)
            except TemplateError as exc:
                findings.append(_error("expect template", str(exc), item_line))
                continue
            for f in check([rendered], received, mctx):
                f.line = f.line or item_line
                findings.append(f)
        for var, selector in (step.get("save") or {}).items():
            try:
                state.saved[var] = save(render(selector, tctx), received, mctx)
            except (TemplateError, ValueError) as exc:  # a bad selector is the test case's fault
                findings.append(_error(f"save {var}", str(exc), getattr(selector, "line", None)))
            except LookupError as exc:
                # silence saves nothing and proves nothing (inconclusive); an answer without it fails
                silent = isinstance(received, Nothing)
                findings.append(Finding(Verdict.INCONCLUSIVE if silent else Verdict.FAIL, f"save {var}",
                                        "a value to save", "nothing", message=str(exc),
                                        line=getattr(selector, "line", None)))
            else:
                self._attach_if_jwt(var, state.saved[var])
        if name == "forge_token" and isinstance(received, dict):
            self._attach_if_jwt("forged token", received.get("token"))
        return findings

    def _attach_if_jwt(self, name: str, value) -> None:
        """Decoded JWTs (access tokens, forged tokens) go into the report next to their step."""
        from conformance.codec import jwt as jwt_codec

        if not isinstance(value, str) or value.count(".") != 2:
            return
        try:
            header, claims = jwt_codec.decode_unverified(value)
        except jwt_codec.JwtError:
            return
        attach = getattr(self.reporter, "attach_jwt", None)
        if attach is not None:
            attach(f"JWT {name} (decoded)", header, claims)

    def _timeout_s(self, step: dict) -> float:
        ms = step.get("timeout_ms") or self.profile.pixit.get("timeouts", {}).get("step_ms", 5000)
        return max(0.001, float(ms) / 1000.0)

    def _discover(self, state: CaseState) -> None:
        """PIXIT the binding lets the SUT publish instead of the profile declaring it: the JWKS
        location comes from the AS metadata (RFC 8414 3, `jwks_uri`) when the profile names none.
        Looked up once per process and issuer; a failed lookup leaves it unset, so a case that
        needs it says which variable is missing."""
        as_node = (self.profile.pixit.get("nodes") or {}).get("as") or {}
        issuer = as_node.get("issuer")
        if as_node.get("jwks_uri") or not issuer:
            return
        if issuer not in _DISCOVERED:
            try:
                meta = actions.http_driver(state, self.profile).get_json(
                    issuer.rstrip("/") + "/.well-known/oauth-authorization-server")
            except Exception as exc:  # noqa: BLE001 - discovery is best effort; the case reports the gap
                self.reporter.attach_text("AS metadata discovery failed", f"{type(exc).__name__}: {exc}")
                return
            _DISCOVERED[issuer] = meta if isinstance(meta, dict) else {}
        uri = _DISCOVERED[issuer].get("jwks_uri")
        if isinstance(uri, str) and uri:
            as_node["jwks_uri"] = uri

    def _jwks_provider(self, state: CaseState):
        cache: dict = {}

        def provider() -> dict:
            if "jwks" not in cache:
                uri = self.profile.pixit["nodes"]["as"].get("jwks_uri")
                if not uri:
                    raise LookupError("pixit.nodes.as.jwks_uri is not set")
                cache["jwks"] = actions.http_driver(state, self.profile).get_json(uri)
            return cache["jwks"]

        return provider

    # -- emulated peers --------------------------------------------------------------------------
    def _finish_peers(self, tc: TestCase, mctx: MatchContext, state: CaseState) -> list[Finding]:
        if not (getattr(tc, "raw", None) or {}).get("peers") and peer_evidence.active() is None:
            return []
        with self.reporter.step("what the emulated peers received") as rstep:
            try:
                findings = peer_evidence.finish(tc, mctx, lambda obj: render(obj, self._template_context(state)),
                                                self.reporter, self.profile.redactor.text)
            except TemplateError as exc:
                findings = [_error("peers template", str(exc))]
            rstep.finish(judge(findings), findings)
        return findings

    # -- capture ---------------------------------------------------------------------------------
    def _start_capture(self, tc: TestCase, keylog: Path):
        if not tc.capture or self.capture_factory is None:
            return None
        return self.capture_factory.start(tc, keylog)

    def _finish_capture(self, tc: TestCase, capture, mctx: MatchContext, state: CaseState,
                        stopped: StepOutcome | None = None) -> list[Finding]:
        if not tc.capture:
            return []
        if capture is None:
            return [Finding(Verdict.INCONCLUSIVE, "capture", "the legs captured", "capture disabled",
                            message=self.no_capture_reason)]
        from conformance.report.capture_steps import report_capture_entries

        with self.reporter.step("capture: checks on the legs the harness does not see") as rstep:
            self.capture_factory.last_window = None
            try:
                from conformance.capture.correlate import identity_of, markers_of

                findings = self.capture_factory.finish(tc, capture, mctx, self.reporter,
                                                       lambda obj: render(obj, self._template_context(state)),
                                                       markers_of(state.user, state.saved, _cookie_values(state)),
                                                       identity_of(state.user))
            except TemplateError as exc:
                if stopped is not None:  # a value the capture needs was never saved: the SUT's step failed
                    findings = [Finding(Verdict.INCONCLUSIVE, "capture", "the capture assertions evaluated",
                                        "not evaluated", message=f"{exc}; step '{stopped.title}' ended "
                                        f"{stopped.verdict.value}, so the value was never saved")]
                else:
                    findings = [_error("capture template", str(exc))]
            except Exception as exc:  # noqa: BLE001 - a capture bug is an error verdict with its traceback
                self.reporter.attach_text("capture traceback", traceback.format_exc())
                findings = [_error("capture", f"{type(exc).__name__}: {exc}")]
            window = getattr(self.capture_factory, "last_window", None)
            if window is not None:  # one step per capture entry, failed where its check failed
                timeline, block, matched = window
                report_capture_entries(self.reporter, findings, timeline, block, self.profile.pixit, bm=matched)
            rstep.finish(judge(findings), findings)
        return findings
