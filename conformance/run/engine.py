"""The step engine: runs one test case against the SUT and turns what it saw into a verdict.

Data flows one way: render the step's templates, run its one action through a driver, check
every expectation (all of them, never stopping at the first), save values, report. A step that
does not pass stops the test case (later steps depend on it); the capture assertions are still
evaluated so the report shows what the other legs did.
"""

from __future__ import annotations

import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from conformance.match.engine import MatchContext, check, save
from conformance.model.testcase import TestCase
from conformance.peers import evidence as peer_evidence
from conformance.run import actions, identities
from conformance.run.reporter import NullReporter, Reporter
from conformance.run.state import CaseState
from conformance.run.templating import TemplateContext, TemplateError, render
from conformance.verdicts import Finding, Verdict, worst


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


def _step_title(step: dict, index: int) -> str:
    name = step.get("name") or f"step {index + 1}: {actions.action_of(step)}"
    flow = step.get("flow")
    return f"[{', '.join(map(str, flow))}] {name}" if flow else name


def _error(subject: str, message: str, line: int | None = None) -> Finding:
    return Finding(Verdict.ERROR, subject, "a runnable step", "error", message=message, line=line)


def _cookie_values(state: CaseState) -> list[str]:
    return [c.value for c in state.http.session.cookies] if state.http is not None else []


class Engine:
    def __init__(self, profile: Any, *, reporter: Reporter | None = None, workdir: Path | None = None,
                 capture_factory=None, no_capture_reason: str = "", clock=time.monotonic):
        self.profile = profile
        self.reporter = reporter or NullReporter()
        self.workdir = Path(workdir or ".ims-conformance")
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.capture_factory = capture_factory
        self.no_capture_reason = no_capture_reason or "capture is disabled in the profile or not available"
        self.clock = clock
        self.identities = identities.IdentityProvider(profile)

    # -- one test case ---------------------------------------------------------------------------
    def run(self, tc: TestCase) -> CaseResult:
        keylog = self.workdir / "harness.keylog"
        try:
            user = self.identities.for_case(tc)
        except identities.ProvisioningError as exc:
            return CaseResult(tc.id, Verdict.INCONCLUSIVE, reason=f"could not provision a test identity: {exc}")
        state = CaseState(profile=self.profile, user=user, users=self.identities.fixtures, keylog=keylog)
        mctx = MatchContext(identities=self.identities.table(user), jwks_provider=self._jwks_provider(state),
                            capture_available=True)
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
            state.close()
            findings += self._finish_peers(tc, mctx, state)
            findings += self._finish_capture(tc, capture, mctx, state)
        verdict = worst(f.verdict for f in findings) if findings else Verdict.PASS
        if not steps and verdict == Verdict.PASS:
            verdict = Verdict.ERROR
            findings.append(_error("test case", "no steps ran"))
        return CaseResult(tc.id, verdict, steps, findings)

    # -- offline: the capture assertions of a test case against a recorded capture ---------------
    def analyze(self, tc: TestCase, capture_result, user: dict) -> CaseResult:
        """`ims-conformance analyze`: no step runs; values saved at run time are unknown, so an
        expectation that needs one is an error of that expectation, not of the SUT."""
        from conformance.capture import evaluate_capture
        from conformance.report.ladder import render_ladder

        state = CaseState(profile=self.profile, user=user, users=self.identities.fixtures,
                          keylog=self.workdir / "harness.keylog")
        mctx = MatchContext(identities=self.identities.table(user), jwks_provider=self._jwks_provider(state),
                            capture_available=True)
        with self.reporter.step("capture assertions on the recorded trace") as rstep:
            try:
                block = render(tc.capture, self._template_context(state))
            except TemplateError as exc:
                findings = [_error("capture template", f"{exc} (offline analysis has no saved values)")]
            else:
                findings = evaluate_capture(block, capture_result, mctx, self.profile.pixit)
                out = self.workdir / "ladders" / f"{tc.id}.svg"
                out.parent.mkdir(parents=True, exist_ok=True)
                out.write_text(render_ladder(capture_result.timeline, findings, block, self.profile.pixit))
                self.reporter.attach_file("sequence diagram", out, "image/svg+xml")
            verdict = worst(f.verdict for f in findings) if findings else Verdict.INCONCLUSIVE
            rstep.finish(verdict, findings)
        return CaseResult(tc.id, verdict, findings=findings)

    # -- one step --------------------------------------------------------------------------------
    def _run_step(self, index: int, step: dict, state: CaseState, mctx: MatchContext) -> StepOutcome:
        title = _step_title(step, index)
        started = self.clock()
        line = getattr(step, "line", None)
        with self.reporter.step(title) as rstep:
            state.last_received = None
            findings = self._step_findings(step, state, mctx, line)
            verdict = worst(f.verdict for f in findings) if findings else Verdict.PASS
            diff = mismatch_diff(findings, state.last_received) if verdict == Verdict.FAIL else ""
            if diff:
                self.reporter.attach_text("diff: expected vs received", diff)
            rstep.finish(verdict, findings)
        return StepOutcome(title, list(step.get("flow") or []), verdict, findings,
                           (self.clock() - started) * 1000.0, diff)

    def _template_context(self, state: CaseState, extra: dict | None = None) -> TemplateContext:
        return TemplateContext(pixit=self.profile.pixit, pics=self.profile.pics, user=state.user,
                               users=state.users, saved=state.saved, extra=extra or {})

    def _step_findings(self, step: dict, state: CaseState, mctx: MatchContext, line) -> list[Finding]:
        name = actions.action_of(step)
        tctx = self._template_context(state)
        try:
            spec = render(step[name], tctx)
        except TemplateError as exc:
            return [_error(f"{name} template", str(exc), line)]
        timeout_s = self._timeout_s(step)
        try:
            received = actions.run(name, spec, state, actions.ActionEnv(
                profile=self.profile, reporter=self.reporter, timeout_s=timeout_s,
                template_context=lambda extra=None: self._template_context(state, extra)))
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
        findings: list[Finding] = []
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
                findings.append(Finding(Verdict.FAIL, f"save {var}", "a value to save", "nothing",
                                        message=str(exc), line=getattr(selector, "line", None)))
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
            rstep.finish(worst(f.verdict for f in findings) if findings else Verdict.PASS, findings)
        return findings

    # -- capture ---------------------------------------------------------------------------------
    def _start_capture(self, tc: TestCase, keylog: Path):
        if not tc.capture or self.capture_factory is None:
            return None
        return self.capture_factory.start(tc, keylog)

    def _finish_capture(self, tc: TestCase, capture, mctx: MatchContext, state: CaseState) -> list[Finding]:
        if not tc.capture:
            return []
        if capture is None:
            return [Finding(Verdict.INCONCLUSIVE, "capture", "the legs captured", "capture disabled",
                            message=self.no_capture_reason)]
        try:
            from conformance.capture.correlate import markers_of

            return self.capture_factory.finish(tc, capture, mctx, self.reporter,
                                               lambda obj: render(obj, self._template_context(state)),
                                               markers_of(state.user, state.saved, _cookie_values(state)))
        except TemplateError as exc:
            return [_error("capture template", str(exc))]
        except Exception as exc:  # noqa: BLE001 - a capture bug is an error verdict with its traceback
            self.reporter.attach_text("capture traceback", traceback.format_exc())
            return [_error("capture", f"{type(exc).__name__}: {exc}")]
