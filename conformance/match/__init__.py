"""Matchers: expectations of a step (format.md "Expectations") checked against a received event."""

from conformance.match.engine import MatchContext, check, save
from conformance.match.operators import MISSING, MalformedExpectation
from conformance.match.subjects import SaveError

__all__ = ["MatchContext", "check", "save", "MISSING", "MalformedExpectation", "SaveError"]
