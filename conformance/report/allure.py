"""Allure output: every YAML step is an Allure step; what went over the wire is attached
(redacted); labels say which requirement and node a test case is about.

Step status comes from the step's verdict: fail -> failed, error -> broken, inconclusive ->
skipped. allure-python derives a step's status from the exception that ends it, so a verdict is
handed to `stop_step` as a synthetic exception instead of being raised through the engine.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
from pathlib import Path
from typing import Any

import allure
from allure_commons._allure import StepContext

from conformance.run.reporter import StepHandle
from conformance.verdicts import Verdict

EPIC = "TR 23.701"
_REPO = Path(__file__).resolve().parents[2]


class CaseFailed(AssertionError):
    """The SUT violated a requirement (Allure: failed)."""


class HarnessError(Exception):
    """The harness or the test case is wrong (Allure: broken)."""


class Inconclusive(Exception):
    """Could not be observed. Raised only as a step status marker."""


_STATUS_EXC = {Verdict.FAIL: CaseFailed, Verdict.ERROR: HarnessError}


def _http_text(ex) -> str:
    req = [f"{ex.method} {ex.url}"] + [f"{k}: {v}" for k, v in ex.request_headers]
    body = ex.request_body.decode("utf-8", "replace") if ex.request_body else ""
    resp = [f"HTTP {ex.status} {ex.reason}"] + [f"{k}: {v}" for k, v in ex.headers]
    cut = (f"\n... [body of {ex.body_length} bytes, the first {len(ex.body)} kept]"
           if getattr(ex, "body_length", None) is not None else "")
    return "\n".join(req) + "\n\n" + body + "\n\n----\n" + "\n".join(resp) + "\n\n" + ex.text + cut


class AllureReporter:
    def __init__(self, redactor=None):
        self.redact = redactor.text if redactor is not None else (lambda s: s)

    # -- steps ---------------------------------------------------------------------------------
    @contextlib.contextmanager
    def step(self, title: str):
        handle = StepHandle()
        ctx = StepContext(self.redact(title), {})
        ctx.__enter__()
        exc: BaseException | None = None
        try:
            yield handle
        except BaseException as e:  # a crash inside a step still closes it, as broken
            exc = e
            raise
        finally:
            if exc is None:
                verdict = getattr(handle, "verdict", Verdict.PASS)
                findings = getattr(handle, "findings", [])
                bad = [f for f in findings if f.verdict != Verdict.PASS]
                if bad:
                    self.attach_text("findings", "\n".join(f.describe() for f in findings))
                cls = _STATUS_EXC.get(verdict, Inconclusive if verdict == Verdict.INCONCLUSIVE else None)
                if cls is None:
                    ctx.__exit__(None, None, None)
                else:
                    err = cls("\n".join(self.redact(f.describe()) for f in bad))
                    if cls is Inconclusive:
                        import pytest

                        err = pytest.skip.Exception(str(err))
                    ctx.__exit__(type(err), err, None)
            else:
                ctx.__exit__(type(exc), exc, exc.__traceback__)

    # -- attachments ---------------------------------------------------------------------------
    def attach_text(self, name: str, text: str) -> None:
        allure.attach(self.redact(text), name=name, attachment_type=allure.attachment_type.TEXT)

    def attach_bytes(self, name: str, data: bytes) -> None:
        self.attach_text(name, data.decode("utf-8", "backslashreplace"))

    def attach_http(self, ex) -> None:
        self.attach_text(f"HTTP {ex.method} {ex.url} -> {ex.status}", _http_text(ex))
        if "json" in ";".join(ex.header_values("Content-Type")) and not getattr(ex, "body_length", None):
            with contextlib.suppress(ValueError):
                allure.attach(self.redact(json.dumps(ex.json(), indent=2)), name="response JSON",
                              attachment_type=allure.attachment_type.JSON)

    def attach_handshake(self, hs) -> None:
        lines = [f"GET {hs.url}"] + [f"{k}: {v}" for k, v in hs.request_headers]
        lines += ["", f"HTTP {hs.status}"] + [f"{k}: {v}" for k, v in hs.headers]
        if hs.body:
            lines += ["", hs.body.decode("utf-8", "replace")]
        if getattr(hs, "error", ""):
            lines += ["", f"harness: {hs.error}"]
        if getattr(hs, "raw", b""):
            lines += ["", f"received ({len(hs.raw)} bytes, not HTTP):", hs.raw.decode("utf-8", "backslashreplace")]
        self.attach_text(f"WebSocket handshake -> {hs.status}", "\n".join(lines))

    def attach_sip(self, direction: str, raw: bytes) -> None:
        first = raw.split(b"\r\n", 1)[0].decode("utf-8", "replace")
        self.attach_bytes(f"SIP {direction}: {first}", raw)

    def attach_event(self, name: str, event: Any) -> None:
        raw = getattr(event, "raw", None)
        if raw is not None:
            self.attach_bytes(f"{name}: {type(event).__name__} ({getattr(event, 'reason', '')})", raw)
        else:
            self.attach_text(f"{name}: {type(event).__name__}", repr(event))

    def attach_jwt(self, name: str, header: dict, claims: dict) -> None:
        allure.attach(self.redact(json.dumps({"header": header, "claims": claims}, indent=2)), name=name,
                      attachment_type=allure.attachment_type.JSON)

    def attach_file(self, name: str, path, mime: str) -> None:
        ext = Path(path).suffix.lstrip(".")
        allure.attach.file(str(path), name=name, extension=ext)


def label_case(tc) -> None:
    """Labels of one test case: epic, feature = node under test, story = flow steps, links = refs.
    (Title and description are markers set at collection: allure-pytest overwrites dynamic ones
    after setup, see `item_markers`.)"""
    allure.dynamic.epic(EPIC)
    allure.dynamic.feature(tc.sut)
    for n in sorted(tc.flow_steps):
        allure.dynamic.story(f"step {n}")
    allure.dynamic.severity(tc.severity)
    allure.dynamic.label("as_id", tc.id)
    allure.dynamic.label("kind", tc.kind)
    allure.dynamic.tag(tc.kind, *list(tc.tags or []))
    for ref in tc.refs:
        allure.dynamic.link(ref_url(ref), name=ref)


def title_of(tc) -> str:
    return f"{tc.id}: {tc.title}"


def description_of(tc) -> str:
    """Markdown: what the test case checks, the requirement references with links, the PICS."""
    text = (tc.description or "").strip() or tc.title
    refs = "\n".join(f"- [{ref}]({ref_url(ref)})" for ref in tc.refs)
    lines = [f"**{tc.id}** ({tc.kind} test case, node under test: {tc.sut}, severity {tc.severity})", "",
             text, "", "**Requirements**", "", refs]
    if tc.pics is not None:
        lines += ["", f"**Applies when** (PICS): `{tc.pics.expr}`"]
    lines += ["", f"Source: `{tc.source}:{tc.line}`"]
    return "\n".join(lines)


class _Titled:
    """allure-pytest takes a test's name from `item.obj.__allure_display_name__` after setup."""

    def __init__(self, title: str):
        self.__allure_display_name__ = title.replace("{", "{{").replace("}", "}}")  # it is a format string


def item_markers(item, tc) -> None:
    """Title and description where allure-pytest reads them (markers and `item.obj`), so the
    result keeps `ID: title` and the requirement text instead of the bare id."""
    import pytest

    item.obj = _Titled(title_of(tc))
    item.funcargs = {}
    item.add_marker(pytest.mark.allure_description(description_of(tc)))


BINDING_URL = os.environ.get("IMS_BINDING_URL") or (
    (_REPO.parent / "shared" / "BINDING.md").resolve().as_uri() if (_REPO.parent / "shared" / "BINDING.md").exists()
    else "https://www.3gpp.org/DynaReport/23701.htm")


def ref_url(ref: str) -> str:
    """A link for a requirement reference: RFCs to the RFC editor (section anchor), 3GPP specs to
    the 3GPP archive, BINDING refs to BINDING.md (IMS_BINDING_URL overrides where it is)."""
    m = re.match(r"RFC\s*(\d+)(?:\s+([\d.]+\d))?", ref)
    if m:
        return f"https://www.rfc-editor.org/rfc/rfc{m.group(1)}" + (f"#section-{m.group(2)}" if m.group(2) else "")
    if ref.startswith("BINDING"):
        m = re.search(r"steps? (\d+)", ref)
        if m:  # the binding's two step sections
            anchor = "steps-1-11-login-and-oauth-20-authorization-code-flow-rfc-6749-rfc-7636-rfc-9700" \
                if int(m.group(1)) <= 11 else "steps-12-22-registration"
            return f"{BINDING_URL}#{anchor}"
        return BINDING_URL
    m = re.match(r"(TS|TR)\s*(\d\d)\.(\d+)", ref)
    if m:
        return f"https://www.3gpp.org/DynaReport/{m.group(2)}{m.group(3)}.htm"
    return "https://www.3gpp.org/DynaReport/23701.htm"


CATEGORIES = [
    {"name": "SUT violated a requirement", "matchedStatuses": ["failed"]},
    {"name": "Harness or test-case error", "matchedStatuses": ["broken"]},
    {"name": "Inconclusive", "matchedStatuses": ["skipped"], "messageRegex": ".*INCONCLUSIVE.*"},
    {"name": "Not applicable (PICS)", "matchedStatuses": ["skipped"], "messageRegex": ".*NOT APPLICABLE.*"},
    {"name": "Passed with warnings (a SHOULD not met)", "matchedStatuses": ["passed"],
     "messageRegex": ".*PASS WITH WARNINGS.*"},
    {"name": "Expected deviation", "matchedStatuses": ["skipped"], "messageRegex": ".*XFAIL.*"},
]


def write_environment(alluredir: Path, profile, redactor=None) -> None:
    alluredir.mkdir(parents=True, exist_ok=True)
    sut = getattr(profile, "sut", {}) or {}
    props = {
        "SUT": sut.get("name", "?"), "SUT.vendor": sut.get("vendor", "?"), "SUT.version": sut.get("version", "?"),
        "profile": str(profile.path),
    }
    props.update({f"PICS.{k}": v for k, v in sorted(profile.pics.items())})
    red = redactor.text if redactor is not None else (lambda s: s)
    text = "\n".join(f"{k}={red(str(v))}" for k, v in props.items()) + "\n"
    (alluredir / "environment.properties").write_text(text)
    (alluredir / "categories.json").write_text(json.dumps(CATEGORIES, indent=2))
