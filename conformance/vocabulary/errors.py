"""The one exception for an expectation that is itself wrong (verdict error, never fail)."""


class MalformedExpectation(ValueError):
    """The expectation itself is wrong (unknown operator, bad regex, wrong operand type): verdict error."""
