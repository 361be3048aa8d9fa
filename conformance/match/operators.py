"""Operators of an expectation (format.md "Expectations"): is the observed value what was expected?

Each operator is a predicate `(actual, expected) -> bool`. `actual` is MISSING when the subject
is not there at all (no such header, parameter, member). Positive operators fail on MISSING;
`absent`, `not_equals` and `not_contains` hold on it (nothing there contains the value).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

from conformance.codec.sip_headers import HeaderError, parse_name_addr
from conformance.codec.sip_uri import UriError, uri_equal
from conformance.vocabulary import operators as vocabulary
from conformance.vocabulary.errors import MalformedExpectation

__all__ = ["MISSING", "MalformedExpectation", "apply", "count_holds", "show", "uri_of"]


class _Missing:
    """The subject is not present (distinct from a present but empty or null value)."""

    _instance = None

    def __new__(cls):
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "MISSING"

    def __bool__(self) -> bool:
        return False


MISSING = _Missing()




def show(value: Any, limit: int = 300) -> str:
    """A value as a report shows it: strings quoted, MISSING as (absent), long text cut."""
    if value is MISSING:
        return "(absent)"
    if isinstance(value, bytes | bytearray):
        value = bytes(value[: limit * 4 + 4]).decode("utf-8", "replace") + ("" if len(value) <= limit * 4 + 4
                                                                            else "\u2026")
    elif isinstance(value, str) and len(value) > limit * 4 + 4:  # never dump megabytes to show 300 chars
        value = value[: limit * 4 + 4] + "\u2026"
    try:
        text = json.dumps(value, ensure_ascii=False, default=str)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= limit else text[:limit] + f"... ({len(text)} chars)"


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value.strip())
        except ValueError:
            return None
    return None


def _same(actual: Any, expected: Any) -> bool:
    """Equality that lets a header's text "600" equal a YAML 600 (but never True equal "true")."""
    if isinstance(actual, bool) or isinstance(expected, bool):
        return actual is expected
    if actual == expected:
        return True
    if isinstance(actual, str) != isinstance(expected, str):
        a, e = _number(actual), _number(expected)
        return a is not None and e is not None and a == e
    return False


def equals_holds(actual, expected) -> bool:
    return actual is not MISSING and _same(actual, expected)


def not_equals_holds(actual, expected) -> bool:
    return actual is MISSING or not _same(actual, expected)


def contains_holds(actual, expected) -> bool:
    if actual is MISSING or actual is None:
        return False
    if isinstance(actual, list | tuple):
        return any(_same(a, expected) for a in actual)
    if isinstance(actual, dict):
        return expected in actual
    return str(expected) in str(actual)


def not_contains_holds(actual, expected) -> bool:
    return not contains_holds(actual, expected)


def regex_holds(actual, expected) -> bool:
    try:
        pattern = re.compile(str(expected))
    except re.error as exc:
        raise MalformedExpectation(f"bad regex {expected!r}: {exc}") from None
    if actual is MISSING or actual is None:
        return False
    return pattern.search(actual if isinstance(actual, str) else json.dumps(actual)) is not None


def _flag(expected, op: str) -> bool:
    if not isinstance(expected, bool):
        raise MalformedExpectation(f"{op} takes true or false, not {expected!r}")
    return expected


def absent_holds(actual, expected) -> bool:
    return (actual is MISSING) == _flag(expected, "absent")


def present_holds(actual, expected) -> bool:
    return (actual is not MISSING) == _flag(expected, "present")


def one_of_holds(actual, expected) -> bool:
    if not isinstance(expected, list | tuple):
        raise MalformedExpectation(f"one_of takes a list, not {expected!r}")
    return actual is not MISSING and any(_same(actual, e) for e in expected)


def uri_of(value: Any) -> str:
    """The URI in a header value: `"Bob" <sip:b@x>;tag=1` -> `sip:b@x`; a bare URI as is."""
    text = str(value).strip()
    if "<" in text or ";" in text or text.startswith('"'):
        try:
            na = parse_name_addr(text)
        except HeaderError:
            return text
        if na.uri is not None:
            return str(na.uri)
    return text


def uri_equals_holds(actual, expected) -> bool:
    if actual is MISSING or actual is None:
        return False
    try:
        expected_uri = uri_of(expected)
        uri_equal(expected_uri, expected_uri)
    except UriError as exc:
        raise MalformedExpectation(f"uri_equals operand is not a URI: {exc}") from None
    try:
        return uri_equal(uri_of(actual), expected_uri)
    except UriError:
        return False


def _compare(op: str, better: Callable[[float, float], bool]) -> Callable[[Any, Any], bool]:
    def check(actual, expected) -> bool:
        e = _number(expected)
        if e is None:
            raise MalformedExpectation(f"{op} takes a number, not {expected!r}")
        a = _number(actual) if actual is not MISSING else None
        return a is not None and better(a, e)

    return check


def starts_with_holds(actual, expected) -> bool:
    return actual is not MISSING and actual is not None and str(actual).startswith(str(expected))


less_than_holds = _compare("less_than", lambda a, e: a < e)
greater_than_holds = _compare("greater_than", lambda a, e: a > e)

# The names, kinds and properties of the operators are conformance/vocabulary/operators.py's;
# this module holds the predicates it names.
COUNT = vocabulary.COUNT
IDENTITY_OPERATORS = vocabulary.IDENTITY_OPERATORS
HOLDS_ON_NOTHING = vocabulary.HOLDS_ON_NOTHING
ALL_OPERATORS = frozenset(vocabulary.OPERATORS.names())


# The predicates by operator name, as the registry names them ("conformance.match.operators:
# equals_holds"); looked up in this module's namespace because the module is still loading here.
OPERATORS: dict[str, Callable[[Any, Any], bool]] = {
    name: globals()[vocabulary.OPERATORS[name].implemented_by.rpartition(":")[2]] for name in vocabulary.PREDICATES}


def apply(op: str, actual: Any, expected: Any) -> bool:
    try:
        fn = OPERATORS[op]
    except KeyError:
        raise MalformedExpectation(f"unknown operator {op!r}; known: {', '.join(sorted(ALL_OPERATORS))}") from None
    return fn(actual, expected)


def count_holds(n: int, operand: Any) -> tuple[bool, str]:
    """(holds, description) for `count: N` or `count: {greater_than: 0}`."""
    if isinstance(operand, dict):
        if len(operand) != 1:
            raise MalformedExpectation(f"count takes a number or one {{operator: value}}, not {operand!r}")
        (op, value), = operand.items()
        if op in (COUNT, *IDENTITY_OPERATORS):
            raise MalformedExpectation(f"count cannot nest {op}")
        return apply(op, n, value), f"count {op} {show(value)}"
    if isinstance(operand, bool) or not isinstance(operand, int):
        raise MalformedExpectation(f"count takes an integer or {{operator: value}}, not {operand!r}")
    return n == operand, f"count equals {operand}"
