"""Verdicts and findings.

A finding is one checked expectation. The verdict of a step or test case is the worst of its
findings, in the order below: an error in the harness hides nothing the SUT did, so it ranks
above fail only when nothing failed.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Verdict(StrEnum):
    PASS = "pass"
    WARN = "pass with warnings"  # only SHOULD-level checks were violated
    NOT_APPLICABLE = "not applicable"
    INCONCLUSIVE = "inconclusive"
    FAIL = "fail"
    ERROR = "error"

    @property
    def rank(self) -> int:
        return _RANK[self]


_RANK = {Verdict.PASS: 0, Verdict.WARN: 1, Verdict.NOT_APPLICABLE: 2, Verdict.INCONCLUSIVE: 3,
         Verdict.FAIL: 4, Verdict.ERROR: 5}


class Level(StrEnum):
    """RFC 2119 level of the requirement a check enforces: a violated MUST fails, a violated
    SHOULD (or a MAY the profile declared it implements) only warns."""

    MUST = "MUST"
    SHOULD = "SHOULD"
    MAY = "MAY"


def worst(verdicts) -> Verdict:
    verdicts = list(verdicts)
    return max(verdicts, key=lambda v: v.rank) if verdicts else Verdict.PASS


def judge(findings) -> Verdict:
    """The verdict of a step or a test case from its findings. A finding that is not applicable
    (a check whose `when:` condition did not hold on the message) judges nothing; nothing left
    to judge is a pass of what was checked."""
    return worst(f.verdict for f in findings if f.verdict != Verdict.NOT_APPLICABLE)


EXCERPT_CHARS = 1000


def _excerpt(text):
    if not isinstance(text, str) or len(text) <= EXCERPT_CHARS:
        return text
    return text[:EXCERPT_CHARS] + f"... ({len(text)} chars)"


@dataclass
class Finding:
    """The outcome of one expectation: what was expected, what was seen, which clause it enforces."""

    verdict: Verdict
    subject: str  # e.g. "header Location query code", "json $.token_type"
    expected: str
    actual: str
    ref: str | None = None
    message: str = ""
    line: int | None = None  # YAML line of the expectation, when known
    level: Level = Level.MUST

    def __post_init__(self) -> None:
        # A finding quotes at most an excerpt of what arrived: the message itself is attached
        # once, bounded (conformance.run.evidence), never copied into every finding.
        self.expected, self.actual = _excerpt(self.expected), _excerpt(self.actual)
        self.message = _excerpt(self.message)
        # A violated requirement below MUST is a warning, never a failure: the level decides,
        # not the matcher that found the violation.
        self.level = Level(self.level)
        if self.verdict == Verdict.FAIL and self.level != Level.MUST:
            self.verdict = Verdict.WARN

    @property
    def ok(self) -> bool:
        return self.verdict in (Verdict.PASS, Verdict.WARN)

    def describe(self) -> str:
        where = f" [{self.ref}{'' if self.level == Level.MUST else ', ' + self.level.value}]" if self.ref else ""
        at = f" (line {self.line})" if self.line else ""
        msg = f": {self.message}" if self.message else ""
        return f"{self.verdict.value.upper()} {self.subject}{where}{at}: expected {self.expected}, got {self.actual}{msg}"
