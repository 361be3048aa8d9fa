"""The parts of conformance/schema/testcase.schema.json that the vocabulary defines, derived from it.

`$defs/any_operator`, `$defs/expectation` and the action part of `$defs/step` (its action
properties, the one-action rule and which keys each action allows) are generated from ACTIONS,
SUBJECTS, QUALIFIERS, META and OPERATORS; everything else in the file (each action's own
`$defs/<action>` fragment, the selector, the top level) is written by hand. The file stays a plain
JSON Schema on disk because editors read it (yaml-language-server).

    python -m conformance.vocabulary.schema_gen          # exit 1 and name the stale parts
    python -m conformance.vocabulary.schema_gen --write  # rewrite them in place

tests/unit/test_vocabulary.py fails while the file differs from what this derives.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from conformance.vocabulary.actions import ACTIONS
from conformance.vocabulary.operators import OPERATORS
from conformance.vocabulary.subjects import (
    FREE,
    META,
    OPTIONAL_WHEN_TRUE,
    QUALIFIERS,
    REQUIRED,
    SUBJECTS,
    WHEN_TRUE,
)

SCHEMA_FILE = Path(__file__).resolve().parent.parent / "schema" / "testcase.schema.json"
DERIVED = ("any_operator", "expectation", "condition", "step")
_ANY_OPERATOR = {"$ref": "#/$defs/any_operator"}
_STEP_COMMON_FIRST = ("name", "flow", "timeout_ms")  # hand-written keys before the actions
_STEP_COMMON_LAST = ("expect", "save", "poll")  # and after them


def any_operator() -> dict[str, Any]:
    names = OPERATORS.names()
    return {"description": "an operator", "anyOf": [{"required": [n]} for n in names],
            "x-errors": {"anyOf": f"this check needs an operator: one of {', '.join(names)}"}}


def _subject_rules(subject) -> list[dict[str, Any]]:
    if subject.rules is not None:
        return list(subject.rules)
    if subject.operator == REQUIRED:
        return [_ANY_OPERATOR]
    if subject.operator in (WHEN_TRUE, OPTIONAL_WHEN_TRUE):
        s = subject.name
        return [{"if": {"properties": {s: {"const": True}}},
                 "then": _ANY_OPERATOR if subject.operator == WHEN_TRUE else {},
                 "else": {"not": _ANY_OPERATOR, "x-errors": {
                     "not": f"{s}: <value> already compares; to use an operator write '{s}: true'"}}}]
    assert subject.operator == FREE, subject.operator
    return []


def expectation() -> dict[str, Any]:
    subjects, operators = SUBJECTS.names(), OPERATORS.names()
    properties = {d.name: d.schema_fragment() for registry in (SUBJECTS, QUALIFIERS, OPERATORS, META)
                  for d in registry}
    dependent: dict[str, Any] = {}
    for s in SUBJECTS:
        takes_operator = s.operator != FREE  # `nothing: true` is the whole check
        allowed = [s.name, *s.accepts, *(operators if takes_operator else ()), *META.names()]
        dependent[s.name] = {"propertyNames": {"enum": allowed, "x-errors": {
            "enum": f"{{key}} cannot be used with subject {s.name}"}}}
        rules = _subject_rules(s)
        if rules:
            dependent[s.name]["allOf"] = rules
    for op in operators:
        dependent[op] = {"propertyNames": {"not": {"enum": [o for o in operators if o != op]}, "x-errors": {
            "not": f"{{key}}: one operator per expectation (this one has {op})"}}}
    for q in QUALIFIERS:
        if q.excludes:
            dependent[q.name] = {"propertyNames": {"not": {"enum": list(q.excludes)}, "x-errors": {
                "not": f"{{key}} cannot be combined with {q.name}"}}}
    return {"description": "one check: a subject, one operator, optionally ref, level, note, name and when",
            "type": "object", "properties": properties, "additionalProperties": False,
            "anyOf": [{"required": [s]} for s in subjects],
            "x-errors": {"anyOf": f"an expectation needs a subject: one of {', '.join(subjects)}"},
            "dependentSchemas": dependent}


def condition() -> dict[str, Any]:
    """`$defs/condition`, what a `when:` names: an expectation without ref, level, note, name or a
    nested when (a condition enforces nothing by itself; it only says whether the check applies)."""
    meta = META.names()
    return {"description": "a condition (when:): a subject and one operator, as in an expectation, nothing else",
            "$ref": "#/$defs/expectation",
            "propertyNames": {"not": {"enum": list(meta)},
                              "x-errors": {"not": f"a when: condition takes no {', '.join(meta)}"}}}


def step(hand_written: dict[str, Any]) -> dict[str, Any]:
    """`$defs/step` with its action parts derived; its common keys are taken from the file."""
    own = hand_written.get("properties", {})
    missing = [k for k in (*_STEP_COMMON_FIRST, *_STEP_COMMON_LAST) if k not in own]
    if missing:
        raise ValueError(f"$defs/step lost its hand-written properties {missing}")
    properties = {k: own[k] for k in _STEP_COMMON_FIRST}
    properties.update({a.name: a.schema_fragment() for a in ACTIONS})
    properties.update({k: own[k] for k in _STEP_COMMON_LAST})
    names = ACTIONS.names()
    dependent: dict[str, Any] = {}
    for a in ACTIONS:
        if a.step_keys == ("name",):
            message = f"{{key}} cannot be used in a step with a {a.name} action (it only takes name)"
        else:
            message = f"{{key}} cannot be used in a step whose action is {a.name} (one action per step)"
        dependent[a.name] = {"propertyNames": {"enum": [*a.step_keys, a.name], "x-errors": {"enum": message}}}
    return {"description": hand_written.get("description", "one step: exactly one action plus the common keys"),
            "type": "object", "properties": properties, "additionalProperties": False,
            "anyOf": [{"required": [n]} for n in names],
            "x-errors": {"anyOf": f"a step needs one action: one of {', '.join(names)}"},
            "dependentSchemas": dependent}


def derived_defs(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    defs = document["$defs"]
    return {"any_operator": any_operator(), "expectation": expectation(), "condition": condition(),
            "step": step(defs["step"])}


def stale(document: dict[str, Any]) -> list[str]:
    """The derived $defs the document has differently from the vocabulary (empty: in step)."""
    return [k for k, v in derived_defs(document).items() if document["$defs"].get(k) != v]


# -- writing: replace only the derived $defs in the text, so hand-written parts keep their layout --

WIDTH = 120


def dumps(value: Any, indent: int, key_width: int = 0) -> str:
    """JSON the way the schema files are laid out: a value on one line when it fits, else nested."""
    flat = json.dumps(value, ensure_ascii=False)
    if not isinstance(value, dict | list) or not value or indent + key_width + len(flat) <= WIDTH:
        return flat
    pad = " " * (indent + 2)
    if isinstance(value, list):
        items = [pad + dumps(v, indent + 2) for v in value]
        return "[\n" + ",\n".join(items) + "\n" + " " * indent + "]"
    items = []
    for k, v in value.items():
        key = json.dumps(k, ensure_ascii=False) + ": "
        items.append(pad + key + dumps(v, indent + 2, len(key)))
    return "{\n" + ",\n".join(items) + "\n" + " " * indent + "}"


def _span(text: str, name: str) -> tuple[int, int]:
    """Where `$defs/<name>`'s value is in the file: a key at four spaces, up to its closing brace."""
    opening = f'\n    "{name}": {{'
    start = text.index(opening) + len(opening) - 1
    end = text.index("\n    }", start) + len("\n    }")
    return start, end


def rewrite(text: str) -> str:
    document = json.loads(text)
    for name, value in derived_defs(document).items():
        start, end = _span(text, name)
        text = text[:start] + dumps(value, 4) + text[end:]
    if json.loads(text)["$defs"] != {**document["$defs"], **derived_defs(document)}:
        raise AssertionError("rewriting changed more than the derived $defs")
    return text


def main(argv: list[str]) -> int:
    text = SCHEMA_FILE.read_text(encoding="utf-8")
    if "--write" in argv:
        SCHEMA_FILE.write_text(rewrite(text), encoding="utf-8")
        print(f"wrote {', '.join(DERIVED)} of {SCHEMA_FILE}")
        return 0
    out_of_date = stale(json.loads(text))
    for name in out_of_date:
        print(f"{SCHEMA_FILE}: $defs/{name} differs from conformance/vocabulary (run with --write)")
    return 1 if out_of_date else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
