"""The operators of an expectation (docs/format.md "Expectations"), defined once.

A predicate operator is `(actual, expected) -> bool` in conformance/match/operators.py; `count`
compares the number of values; the identity operators look the value up in the identity
fixtures (conformance/match/identity.py). The schema's operator rules (one operator per item,
what `count` may nest) are generated from this list.
"""

from __future__ import annotations

from dataclasses import dataclass

from conformance.vocabulary.definition import Registry, Word

_OPS = "conformance.match.operators"
_IDENTITY = "conformance.match.identity"

PREDICATE = "predicate"  # (actual, expected) -> bool on each value
COUNT = "count"  # on the number of values
IDENTITY = "identity"  # (actual, web id, identities) -> (bool, description)


@dataclass(frozen=True)
class OperatorDef(Word):
    kind: str = PREDICATE
    holds_on_nothing: bool = False  # true over no value at all (`index: all` of nothing is vacuously true)
    countable: bool = False  # may compare a count: `count: {greater_than: 0}`

    def schema_fragment(self) -> dict:
        if self.kind == COUNT:  # its operand names the other operators
            return {"description": self.doc, **count_schema()}
        return super().schema_fragment()


def _predicate(name: str, doc: str, schema: dict | None = None, **extra) -> OperatorDef:
    return OperatorDef(name, doc, schema or {}, f"{_OPS}:{name}_holds", **extra)


def _identity(name: str, doc: str) -> OperatorDef:
    return OperatorDef(name, doc, {"type": "string"}, f"{_IDENTITY}:{name}", kind=IDENTITY)


OPERATORS: Registry[OperatorDef] = Registry("operator", [
    _predicate("equals", "equal to (numbers and strings compare as written)", countable=True),
    _predicate("not_equals", "different from", holds_on_nothing=True, countable=True),
    _predicate("regex", "Python regular expression that must match (re.search)", {"type": "string"}),
    _predicate("contains", "substring (text) or item (list) present"),
    _predicate("not_contains", "substring or item absent", holds_on_nothing=True),
    _predicate("absent", "the subject does not exist", {"const": True}, holds_on_nothing=True),
    _predicate("present", "the subject exists", {"const": True}),
    _predicate("one_of", "equal to one of these", {"type": "array", "minItems": 1}, countable=True),
    _predicate("uri_equals", "URI equal per RFC 3261 19.1.4", {"type": "string"}),
    _predicate("less_than", "numerically less than", {"$ref": "#/$defs/number_or_template"}, countable=True),
    _predicate("greater_than", "numerically greater than", {"$ref": "#/$defs/number_or_template"}, countable=True),
    OperatorDef(COUNT, "number of values (e.g. header fields): an integer, or one {operator: value} such as "
                "{greater_than: 0}", {}, f"{_OPS}:count_holds", kind=COUNT),
    _predicate("starts_with", "text prefix", {"type": "string"}),
    _identity("is_default_impu_of", "the default (first) IMPU of this Web ID in the identity fixtures"),
    _identity("is_impu_of", "one of the IMPUs of this Web ID"),
    _identity("is_impi_of", "the IMPI of this Web ID"),
])


def count_schema() -> dict:
    """`count`'s operand: a number, or one countable operator (its schema depends on the others)."""
    countable = [o.name for o in OPERATORS if o.countable]
    return {"oneOf": [{"allOf": [{"$ref": "#/$defs/int_or_template"}], "minimum": 0},
                      {"type": "object", "minProperties": 1, "maxProperties": 1,
                       "propertyNames": {"enum": countable}}]}


PREDICATES = OPERATORS.where(kind=PREDICATE)
IDENTITY_OPERATORS = OPERATORS.where(kind=IDENTITY)
HOLDS_ON_NOTHING = frozenset(OPERATORS.where(holds_on_nothing=True))
