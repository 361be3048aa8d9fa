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
    NOT_APPLICABLE = "not applicable"
    INCONCLUSIVE = "inconclusive"
    FAIL = "fail"
    ERROR = "error"

    @property
    def rank(self) -> int:
        return _RANK[self]


_RANK = {Verdict.PASS: 0, Verdict.NOT_APPLICABLE: 1, Verdict.INCONCLUSIVE: 2, Verdict.FAIL: 3,
         Verdict.ERROR: 4}


def worst(verdicts) -> Verdict:
    verdicts = list(verdicts)
    return max(verdicts, key=lambda v: v.rank) if verdicts else Verdict.PASS


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

    @property
    def ok(self) -> bool:
        return self.verdict == Verdict.PASS

    def describe(self) -> str:
        where = f" [{self.ref}]" if self.ref else ""
        at = f" (line {self.line})" if self.line else ""
        msg = f": {self.message}" if self.message else ""
        return f"{self.verdict.value.upper()} {self.subject}{where}{at}: expected {self.expected}, got {self.actual}{msg}"
