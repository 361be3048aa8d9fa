"""Checking expectations: every item of a step's `expect` list becomes one Finding.

All items are evaluated, never stopping at the first mismatch, so a step reports everything the
SUT got wrong at once. Verdicts per item:
- pass / fail: the operator held or not on the observed value;
- fail also when the SUT gave nothing to look at (no SIP answer, connection closed, not a JWT);
- inconclusive when the harness could not observe (capture unavailable, JWKS unreachable);
- error when the expectation itself is malformed (unknown key or operator, bad regex).

An item without an operator means what conformance.vocabulary.shorthand.normalise says (the
loader reads it the same way): `status: 401` equals, `request_uri: X` uri_equals, ... and
`{body: "text"}` is malformed (write `{body: true, contains: "text"}`).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from conformance.match import identity
from conformance.match.levels import level_of
from conformance.match.operators import (
    ALL_OPERATORS,
    COUNT,
    HOLDS_ON_NOTHING,
    IDENTITY_OPERATORS,
    MISSING,
    MalformedExpectation,
    apply,
    count_holds,
    show,
)
from conformance.match.subjects import (
    ANY,
    META,
    MODIFIERS,
    SUBJECTS,
    Resolution,
    resolve,
    save_value,
    subject_of,
)
from conformance.verdicts import Finding, Verdict
from conformance.vocabulary.shorthand import normalise


@dataclass
class MatchContext:
    """What the matchers need besides the received event."""

    identities: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)  # web_id -> {impi, impus}
    jwks_provider: Callable[[], dict] | None = None  # the AS JWKS; may raise (-> inconclusive)
    capture_available: bool = True  # False: the leg was not captured or not decrypted
    now: Callable[[], float] = time.time
    _jwks: dict | None = field(default=None, init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    def jwks(self) -> dict:
        """The AS JWKS, fetched once per context."""
        with self._lock:
            if self._jwks is None:
                if self.jwks_provider is None:
                    raise LookupError("no JWKS provider (pixit.nodes.as.jwks_uri)")
                jwks = self.jwks_provider()
                if not isinstance(jwks, Mapping) or "keys" not in jwks:
                    raise LookupError(f"not a JWKS: {show(jwks, 120)}")
                self._jwks = dict(jwks)
            return self._jwks


def line_of(item: Any) -> int | None:
    """The YAML line of an expectation: `.mark` = (line, column) from the model layer, or `.line`."""
    mark = getattr(item, "mark", None)
    if isinstance(mark, tuple | list) and mark and isinstance(mark[0], int) and mark[0] > 0:
        return mark[0]
    if mark is not None and isinstance(getattr(mark, "line", None), int):
        return mark.line + 1  # a PyYAML Mark counts from 0
    line = getattr(item, "line", None)
    return line if isinstance(line, int) else None


def _check_keys(item: Mapping[str, Any]) -> None:
    known = set(SUBJECTS) | set(MODIFIERS) | set(META) | ALL_OPERATORS
    unknown = [k for k in item if k not in known]
    if unknown:
        raise MalformedExpectation(f"unknown key(s) {', '.join(map(str, unknown))} in expectation; operators: "
                                   f"{', '.join(sorted(ALL_OPERATORS))}")


def check_one(item: Mapping[str, Any], received: Any, ctx: MatchContext) -> Finding:
    line = line_of(item)
    ref = item.get("ref") if isinstance(item, Mapping) else None
    note = str(item.get("note", "")) if isinstance(item, Mapping) else ""
    label = "expectation"
    try:
        if not isinstance(item, Mapping):
            raise MalformedExpectation(f"an expectation is a mapping, not {item!r}")
        try:
            level = level_of(item)
        except ValueError as exc:
            raise MalformedExpectation(str(exc)) from None
        subject = subject_of(item)
        label = subject
        _check_keys(item)
        op, operand = normalise(subject, item)  # the loader's reading too (conformance/vocabulary)
        _validate_operand(op, operand, ctx)  # a malformed item is an error even when nothing arrived
        gate = _gate(item.get("when"), received, ctx)
        res = resolve(item, received, ctx)
        label = res.label
        expected = _describe_expected(op, operand, subject)
        if gate is not None:  # the condition of `when:` did not hold, or could not be judged
            verdict, why = gate
            return Finding(verdict, label, expected, why, ref, note, line, level)
        message = "; ".join(x for x in (note, res.note) if x)
        if not ctx.capture_available:
            return Finding(Verdict.INCONCLUSIVE, label, expected, "not observed", ref,
                           "; ".join(x for x in (note, "the leg was not captured or could not be decrypted") if x),
                           line, level)
        if res.unobservable:
            return Finding(Verdict.INCONCLUSIVE, label, expected, res.actual_text(), ref, message, line, level)
        if res.failure:
            return Finding(Verdict.FAIL, label, expected, res.actual_text(), ref, message, line, level)
        held, expected = _evaluate(op, operand, res, ctx, expected)
        actual = f"count {res.counted()}: {res.counted_text()}" if op == COUNT else res.actual_text()
        return Finding(Verdict.PASS if held else Verdict.FAIL, label, expected, actual, ref, message, line, level)
    except MalformedExpectation as exc:
        return Finding(Verdict.ERROR, label, "a well-formed expectation", "malformed", ref,
                       "; ".join(x for x in (str(exc), note) if x), line)


_CONDITION_KEYS = frozenset(META)  # what a condition may not carry: it enforces nothing itself


def _gate(condition: Any, received: Any, ctx: MatchContext) -> tuple[Verdict, str] | None:
    """None when the item applies (no `when:`, or its condition holds on this message); else the
    item's verdict and why: not applicable when the condition does not hold, inconclusive or
    error when the condition itself could not be judged (nothing observed, malformed)."""
    if condition is None:
        return None
    if not isinstance(condition, Mapping) or _CONDITION_KEYS & set(condition):
        raise MalformedExpectation("when: is one condition, a subject and an operator such as {status: 401}, "
                                   "without ref, level, note, name or when")
    held = check_one(condition, received, ctx)
    if held.verdict == Verdict.PASS:
        return None
    described = f"when {held.subject} {held.expected}"
    if held.verdict == Verdict.FAIL:
        return Verdict.NOT_APPLICABLE, f"not applicable: {described} does not hold ({held.actual})"
    return held.verdict, f"{described}: {held.actual}; {held.message}".rstrip("; ")


def _validate_operand(op: str, operand: Any, ctx: MatchContext) -> None:
    if op == COUNT:
        count_holds(0, operand)
    elif op in IDENTITY_OPERATORS:
        identity.IDENTITY_CHECKS[op](MISSING, operand, ctx.identities)
    else:
        apply(op, MISSING, operand)


def _describe_expected(op: str, operand: Any, subject: str = "") -> str:
    if subject == "nothing" and op == "equals":
        return "no message" if operand else "a message"
    if op in ("absent", "present") and operand is True:
        return op
    return f"{op} {show(operand)}"


def _evaluate(op: str, operand: Any, res: Resolution, ctx: MatchContext, expected: str) -> tuple[bool, str]:
    if op == COUNT:
        return count_holds(res.counted(), operand)
    if op in IDENTITY_OPERATORS:
        check = identity.IDENTITY_CHECKS[op]
        outcomes = [check(v, operand, ctx.identities) for v in res.values]
        if res.every == ANY and outcomes:
            return (any(ok for ok, _ in outcomes), outcomes[0][1] + " (some value)")
        if not outcomes:  # `index: all` over no value: still report what was wanted
            _, described = check(MISSING, operand, ctx.identities)
            return False, described
        return (all(ok for ok, _ in outcomes), outcomes[0][1])
    results = [apply(op, v, operand) for v in res.values]
    if res.every == ANY:
        return any(results), f"{expected} (some value)"
    if res.every and not results:
        return op in HOLDS_ON_NOTHING, f"{expected} (every value)"
    held = all(results) if results else apply(op, MISSING, operand)
    return held, f"{expected} (every value)" if res.every else expected


def check(expectations: list[Mapping[str, Any]] | None, received: Any, ctx: MatchContext) -> list[Finding]:
    """One Finding per expectation item, in order; never raises for a bad item (verdict error)."""
    return [check_one(item, received, ctx) for item in (expectations or [])]


def save(spec: Mapping[str, Any], received: Any, ctx: MatchContext) -> Any:
    """The value a save selector picks. Raises SaveError (a LookupError) when it is not there and
    MalformedExpectation (a ValueError) when the selector is wrong."""
    if isinstance(spec, Mapping):
        unknown = [k for k in spec if k not in set(SUBJECTS) | set(MODIFIERS) | set(META)]
        if unknown:
            raise MalformedExpectation(f"unknown key(s) {', '.join(map(str, unknown))} in save selector")
    return save_value(spec, received, ctx)
