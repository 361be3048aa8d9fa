"""The one reading of an expectation written without an operator (docs/format.md "Expectations").

The loader (conformance.model.testcase.Expectation) and the matcher (conformance.match.engine)
both call `normalise`, so an item means the same whether it is loaded, rendered at run time or
checked on what an emulated peer received (`peers.expect`, which the schema does not check item
by item).

Value subjects compare by themselves: `status: 401` equals, `status: [302, 303]` one_of;
`method` / `subprotocol` equal their value (null: absent); `request_uri: X` is uri_equals;
`ws_closed: code` equals, a list one_of, `true` present, `false` absent; `nothing: true|false`
equals; `jwt` + `signature: valid|invalid` equals that word. `body` and `reason` are written
`true` with an operator: any other value is malformed (`{body: invalid_token}` is an error, not
a guess between present and contains). Any other subject alone means present.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from conformance.vocabulary.errors import MalformedExpectation
from conformance.vocabulary.operators import OPERATORS
from conformance.vocabulary.subjects import SUBJECTS

_AS_TRUE_ONLY = ("body", "reason")  # their value says nothing but "this subject": `true`


def operator_keys(item: Mapping[str, Any]) -> list[str]:
    """The operators an item names, in the registry's order."""
    return [name for name in OPERATORS.names() if name in item]


def normalise(subject: str, item: Mapping[str, Any]) -> tuple[str, Any]:
    """(operator, operand) of an item: its own operator, else what its shorthand means."""
    if subject not in SUBJECTS:
        raise MalformedExpectation(f"unknown subject {subject!r}")
    ops = operator_keys(item)
    if len(ops) > 1:
        raise MalformedExpectation(f"one operator per expectation; found {', '.join(ops)}")
    if ops:
        return ops[0], item[ops[0]]
    return _shorthand(subject, item[subject], item)


def _shorthand(subject: str, value: Any, item: Mapping[str, Any]) -> tuple[str, Any]:
    if subject == "status":
        return ("one_of", list(value)) if isinstance(value, list) else ("equals", value)
    if subject in ("method", "subprotocol"):
        return ("absent", True) if value is None else ("equals", value)
    if subject == "request_uri":
        return ("present", True) if value in (None, True) else ("uri_equals", value)
    if subject == "ws_closed":
        if value is None or value is True:
            return "present", True
        if value is False:
            return "absent", True
        return ("one_of", list(value)) if isinstance(value, list) else ("equals", value)
    if subject == "nothing":
        return "equals", value is not False
    if subject in _AS_TRUE_ONLY and value is not True:
        raise MalformedExpectation(f"{subject}: {value!r} is not a check: write {subject}: true with an operator, "
                                   f"e.g. {{{subject}: true, contains: {value!r}}}")
    if subject == "jwt" and "signature" in item:
        wanted = item["signature"]
        if wanted not in ("valid", "invalid"):
            raise MalformedExpectation(f"signature takes valid or invalid, not {wanted!r}")
        return "equals", wanted
    return "present", True
