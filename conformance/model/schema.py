"""JSON Schema validation with compiler-style messages.

The schemas (conformance/schema/*.schema.json, draft 2020-12) are loaded and compiled once per
process. jsonschema's errors are turned into `Problem`s that point at the YAML line and column of
the offending key or value, with the schema location of the failed keyword, e.g.

    testcases/wsf/x.yaml:12:7: unknown key 'expcet'; did you mean 'expect'? (schema path: $defs/step/additionalProperties)

Schemas can refine a message with an `x-errors` member next to the keyword it explains (editors
ignore it): `{"oneOf": {"none": "...", "many": "..."}}`, `{"anyOf": "..."}`,
`{"additionalProperties": "..."}`; placeholders {instance} {key} {found}.
"""

from __future__ import annotations

import difflib
import functools
import json
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from conformance.model.yaml_marks import Mark, MarkedDict, MarkedList, Problem, mark_of

try:  # optional accelerator: a Rust validator answers "valid?" in microseconds
    import jsonschema_rs
except ImportError:  # pragma: no cover - depends on the environment
    jsonschema_rs = None

SCHEMA_DIR = Path(__file__).resolve().parent.parent / "schema"
SCHEMA_FILES = {"testcase": "testcase.schema.json", "fragment": "fragment.schema.json",
                "profile": "profile.schema.json", "capture": "capture.schema.json",
                "peers": "peers.schema.json"}


@functools.cache
def schema_document(file: str) -> dict:
    return json.loads((SCHEMA_DIR / file).read_text(encoding="utf-8"))


@functools.cache
def _registry() -> Registry:
    # Registered under their bare file names (an $id, where present, is that name too), so the
    # relative references between them ("testcase.schema.json#/$defs/step") resolve here exactly
    # as an editor resolves them next to each other on disk.
    resources = [(f, Resource.from_contents(schema_document(f), default_specification=DRAFT202012))
                 for f in SCHEMA_FILES.values() if (SCHEMA_DIR / f).exists()]
    return Registry().with_resources(resources)


@functools.cache
def validator(name: str) -> Draft202012Validator:
    """The compiled validator of one schema: "testcase", "fragment" or "profile"."""
    file = SCHEMA_FILES[name]
    return Draft202012Validator({"$ref": f"{file}#"}, registry=_registry())


@functools.cache
def _fast_check(file: str):
    """`is_valid` of jsonschema-rs for this schema, or None without it.

    Valid documents (nearly all of a catalog) never reach the slow pure-Python validator;
    an invalid one is validated again with jsonschema, whose errors carry what the messages
    need. Both implement draft 2020-12, so they agree on valid/invalid.
    """
    if jsonschema_rs is None:
        return None

    def retrieve(uri: str) -> dict:  # only our own files: nothing is ever fetched
        return schema_document(uri.rsplit("/", 1)[-1])

    try:
        v = jsonschema_rs.validator_for(schema_document(file), retriever=retrieve,
                                        base_uri=(SCHEMA_DIR / file).as_uri())
    except Exception:  # an accelerator that cannot start is simply not used
        return None
    return v.is_valid


def backend() -> str:
    """Which validator answers for valid documents (shown by the benchmark)."""
    return "jsonschema-rs + jsonschema" if _fast_check(SCHEMA_FILES["testcase"]) else "jsonschema"


@functools.cache
def sub_validator(name: str, pointer: str) -> Draft202012Validator:
    """A validator for a part of a schema, e.g. ("profile", "/$defs/deviations")."""
    return Draft202012Validator({"$ref": f"{SCHEMA_FILES[name]}#{pointer}"}, registry=_registry())


def validate(doc: Any, name: str, file: str | Path, pointer: str = "") -> list[Problem]:
    """Every problem of `doc` (loaded with yaml_marks) against schema `name` (or the part of it at
    JSON pointer `pointer`, e.g. "/$defs/deviations"), sorted by position."""
    if pointer:
        v = sub_validator(name, pointer)
    else:
        fast = _fast_check(SCHEMA_FILES[name])
        if fast is not None and fast(doc):
            return []
        v = validator(name)
    return problems_from_errors(v.iter_errors(doc), doc, str(file), SCHEMA_FILES[name], pointer)


# -- where in the YAML ------------------------------------------------------------------------------

def _node(doc: Any, path: Iterable) -> Any:
    node = doc
    for p in path:
        try:
            node = node[p]
        except (KeyError, IndexError, TypeError):
            return None
    return node


def _value_mark(doc: Any, path: list) -> Mark:
    """Position of the value at `path` (the deepest marked ancestor if it has none)."""
    node, mark = doc, mark_of(doc)
    for p in path:
        if isinstance(node, MarkedDict) and p in node:
            mark = node.mark_of(p)
        elif isinstance(node, MarkedList) and isinstance(p, int) and p < len(node):
            mark = node.mark_of(p)
        else:
            break
        node = node[p]
    return mark


def _key_mark(doc: Any, path: list, key: Any) -> Mark:
    obj = _node(doc, path)
    if isinstance(obj, MarkedDict) and key in obj.key_marks:
        return obj.key_marks[key]
    return _value_mark(doc, path)


def _object_mark(doc: Any, path: list) -> Mark:
    """Where an object is named: the key that holds it (`pics:`), or its own start in a list."""
    if path:
        parent = _node(doc, path[:-1])
        if isinstance(parent, MarkedDict) and path[-1] in parent.key_marks:
            return parent.key_marks[path[-1]]
    return mark_of(_node(doc, path), _value_mark(doc, path))


# -- where in the schema ----------------------------------------------------------------------------

def _resolve_ref(ref: str, file: str) -> tuple[str, str, Any]:
    target, _, pointer = ref.partition("#")
    file = target or file
    node: Any = schema_document(file)
    for token in [t for t in pointer.split("/") if t]:
        node = node[int(token)] if isinstance(node, list) else node[token.replace("~1", "/").replace("~0", "~")]
    return file, pointer.rstrip("/"), node


def _schema_location(error: ValidationError, root: str) -> tuple[str, str, Any, Any]:
    """(file, JSON pointer, parent, node) of the failed keyword, following $ref like jsonschema.
    `root` is the schema file validated against, with a #pointer when only a part of it was."""
    root_file, _, start = root.partition("#")
    file, pointer, node = _resolve_ref(f"{root_file}#{start}", root_file)
    parent = node
    for token in error.absolute_schema_path:
        while isinstance(node, dict) and token not in node and "$ref" in node:
            file, pointer, node = _resolve_ref(node["$ref"], file)
        parent = node
        try:
            node = node[token]
        except (KeyError, IndexError, TypeError):
            break
        pointer += f"/{token}"
    return file, pointer, parent, node


def _schema_path(error: ValidationError, root: str) -> tuple[str, Any]:
    file, pointer, _, node = _schema_location(error, root)
    shown = pointer.lstrip("/") if file == root.partition("#")[0] else f"{file}#{pointer}"
    return shown, node


# -- messages ---------------------------------------------------------------------------------------

_JSON_TYPES = {dict: "object", list: "array", str: "string", bool: "boolean", int: "integer",
               float: "number", type(None): "null"}


def show(value: Any, limit: int = 60) -> str:
    """A short YAML-like rendering of a value for messages."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    text = repr(value) if isinstance(value, str) else json.dumps(value, default=str)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _type_name(value: Any) -> str:
    for t in type(value).__mro__:
        if t in _JSON_TYPES:
            return _JSON_TYPES[t]
    return type(value).__name__


def _fill(template: str, **values: str) -> str:
    for k, v in values.items():
        template = template.replace("{" + k + "}", v)
    return template


def _x_error(schema: Any, keyword: str | None, which: str | None = None) -> str | None:
    if not isinstance(schema, dict) or keyword is None:
        return None
    x = schema.get("x-errors", {}).get(keyword)
    if isinstance(x, dict):
        x = x.get(which or "")
    return x if isinstance(x, str) else None


def _did_you_mean(word: str, choices: Iterable[str]) -> str:
    close = difflib.get_close_matches(str(word), [str(c) for c in choices], n=1, cutoff=0.6)
    return f"; did you mean '{close[0]}'?" if close else ""


def _evaluated_names(schema: Any, file: str, depth: int = 0) -> list[str]:
    """Property names a schema (with its allOf / $ref parts) declares, for 'did you mean'."""
    if not isinstance(schema, dict) or depth > 4:
        return []
    names = list(schema.get("properties", {}))
    for part in schema.get("allOf", []):
        part_file = file
        if isinstance(part, dict) and "$ref" in part:
            part_file, _, part = _resolve_ref(part["$ref"], file)
        names += _evaluated_names(part, part_file, depth + 1)
    return names


def _is_presence(branch: Any) -> bool:
    return isinstance(branch, dict) and set(branch) == {"required"} and len(branch["required"]) == 1


def _fits(branch: Any, instance: Any, file: str) -> bool:
    """Could `instance` be meant for this oneOf/anyOf branch? (a cheap discriminator)"""
    if isinstance(branch, dict) and "$ref" in branch and len(branch) == 1:
        file, _, branch = _resolve_ref(branch["$ref"], file)
    if not isinstance(branch, dict):
        return bool(branch)
    if "const" in branch:
        return instance == branch["const"] and type(instance) is type(branch["const"])
    if "enum" in branch:
        return instance in branch["enum"]
    if "type" in branch:
        types = branch["type"] if isinstance(branch["type"], list) else [branch["type"]]
        t = _type_name(instance)
        return t in types or (t == "integer" and "number" in types)
    if "required" in branch and isinstance(instance, dict):
        return all(k in instance for k in branch["required"])
    return True


def _explain(error: ValidationError, doc: Any, root: str) -> list[tuple[Mark, str, str, tuple]]:
    """(mark, message, schema path, instance path) for one jsonschema error (may expand to several)."""
    path = list(error.absolute_path)
    kw = error.validator
    schema_path, node = _schema_path(error, root)
    inst = error.instance
    x = _x_error(error.schema, kw)
    here = tuple(path)

    if kw == "unevaluatedProperties" and isinstance(inst, dict):
        # jsonschema names the offending keys only in its message: "(... 'a', 'b' were unexpected)"
        listed = error.message.rpartition("(")[2]
        allowed = _evaluated_names(error.schema, _schema_location(error, root)[0])
        # Keys the schema declares count as unevaluated when a sibling subschema failed: that
        # failure is reported by itself, so only truly unknown keys are reported here.
        keys = [k for k in re.findall(r"'([^']*)'", listed) if k in inst and k not in allowed]
        return [(_key_mark(doc, path, k), f"unknown key '{k}'" + _did_you_mean(k, allowed), schema_path, here)
                for k in keys]

    if kw == "additionalProperties" and isinstance(inst, dict):
        allowed = list(error.schema.get("properties", {}))
        patterns = [re.compile(p) for p in error.schema.get("patternProperties", {})]
        out = []
        for key in inst:
            if key in allowed or any(p.search(key) for p in patterns):
                continue
            if x:
                msg = _fill(x, key=f"'{key}'")
            else:
                hint = _did_you_mean(key, allowed)
                msg = f"unknown key '{key}'" + (hint or (f" (allowed: {', '.join(allowed)})" if allowed else ""))
            out.append((_key_mark(doc, path, key), msg, schema_path, here))
        return out

    if len(error.relative_schema_path) >= 2 and error.relative_schema_path[-2] == "propertyNames":
        # jsonschema checks each key as an instance of its own, at the object's path
        msg = _fill(x, key=f"'{inst}'") if x else f"key '{inst}' is not allowed here: {error.message}"
        if not x and isinstance(error.schema, dict) and "enum" in error.schema:
            msg = f"key '{inst}' is not allowed here (allowed: {', '.join(error.schema['enum'])})"
        return [(_key_mark(doc, path, inst), msg, schema_path, here + ("#key", inst))]

    if kw is None:  # `properties: {key: false}`: jsonschema reports neither the key nor its path
        sp = list(error.absolute_schema_path)
        obj = _node(doc, path)
        keys = [k for k, sub in node.items() if sub is False and k in obj] \
            if isinstance(node, dict) and isinstance(obj, dict) else []
        out = []
        for key in keys or ["?"]:
            if len(sp) >= 3 and sp[-3] == "dependentSchemas":
                msg = f"'{key}' cannot be combined with '{sp[-2]}'"
            else:
                msg = f"'{key}' is not allowed here"
            out.append((_key_mark(doc, path, key), msg, f"{schema_path}/{key}", here + ("#key", key)))
        return out

    if kw == "required":
        missing = [k for k in error.validator_value if isinstance(inst, dict) and k not in inst]
        msg = x or (f"missing required key '{missing[0]}'" if len(missing) == 1 else
                    f"missing required keys: {', '.join(missing)}")
        return [(_object_mark(doc, path), msg, schema_path, here)]

    if kw in ("oneOf", "anyOf"):
        branches = error.validator_value
        if all(_is_presence(b) for b in branches) and isinstance(inst, dict):
            choices = [b["required"][0] for b in branches]
            found = [c for c in choices if c in inst]
            if len(found) > 1:
                msg = _fill(_x_error(error.schema, kw, "many") or "only one of {choices} is allowed; found {found}",
                            found=", ".join(found), choices=", ".join(choices))
                return [(_key_mark(doc, path, found[1]), msg, schema_path, here)]
            msg = _fill(_x_error(error.schema, kw, "none") or x or "needs one of {choices}",
                        choices=", ".join(choices), found="")
            return [(_object_mark(doc, path), msg, schema_path, here)]
        branch_file = _schema_location(error, root)[0]
        fitting = [i for i, b in enumerate(branches) if _fits(b, inst, branch_file)]
        if len(fitting) == 1:
            sub = [e for e in error.context if e.relative_schema_path and e.relative_schema_path[0] == fitting[0]]
            deeper = [e for e in sub if len(e.absolute_path) > len(path)]
            if sub and (deeper or not x):
                return [item for e in sub for item in _explain(e, doc, root)]
        if x or _x_error(error.schema, kw, "none"):
            msg = _fill(x or _x_error(error.schema, kw, "none"), instance=show(inst), choices="", found="")
        else:
            msg = f"{show(inst)} matches none of the allowed forms" if kw == "anyOf" else error.message
        return [(_value_mark(doc, path), msg, schema_path, here)]

    if kw == "not":
        msg = _fill(x, instance=show(inst)) if x else f"{show(inst)} is not allowed here"
        return [(_value_mark(doc, path), msg, schema_path, here)]

    at = _value_mark(doc, path)
    where = f"{path[-1]}: " if path and isinstance(path[-1], str) else ""
    if x:
        msg = _fill(x, instance=show(inst))
    elif kw == "type":
        want = error.validator_value if isinstance(error.validator_value, list) else [error.validator_value]
        msg = f"{where}expected {' or '.join(want)}, got {_type_name(inst)} {show(inst)}"
    elif kw == "enum":
        allowed = error.validator_value
        msg = (f"{where}{show(inst)} is not one of {', '.join(show(a) for a in allowed)}"
               + (_did_you_mean(inst, allowed) if isinstance(inst, str) else ""))
    elif kw == "const":
        msg = f"{where}expected {show(error.validator_value)}, got {show(inst)}"
    elif kw == "pattern":
        desc = error.schema.get("description") if isinstance(error.schema, dict) else None
        msg = f"{where}{show(inst)} does not match {error.validator_value}" + (f" ({desc})" if desc else "")
    else:
        msg = where + error.message
    return [(at, msg, schema_path, here)]


_DEPENDENT = re.compile(r"dependentSchemas/([^/]+)/propertyNames")


def _mirrored(explained: list) -> tuple[set, set]:
    """Two keys that exclude each other (two actions, two subjects, two operators) fail each
    other's dependentSchemas: report it once, at the key that comes second. Returns what to drop
    and the objects concerned (their other complaints follow from the clash)."""
    found = {}
    for mark, _, sp, here in explained:
        m = _DEPENDENT.search(sp)
        if m and len(here) >= 2 and here[-2] == "#key":
            found[(here[:-2], here[-1], m.group(1))] = (mark, here, sp)
    drop, clashing = set(), set()
    for (obj, key, other), (mark, here, sp) in found.items():
        twin = found.get((obj, other, key))
        if twin is not None:
            clashing.add(obj)
            if mark < twin[0]:
                drop.add((here, sp))
    return drop, clashing


_EXPLAINED_BY_UNKNOWN_KEY = {"required", "oneOf", "anyOf", "dependentSchemas"}


def problems_from_errors(errors: Iterable[ValidationError], doc: Any, file: str, root_file: str,
                         pointer: str = "") -> list[Problem]:
    root = f"{root_file}#{pointer}" if pointer else root_file
    explained = []
    for error in errors:
        explained.extend(_explain(error, doc, root))
    # An unknown key (often a typo of a required one) explains the object's other complaints.
    unknown_at = {here for _, msg, sp, here in explained
                  if sp.endswith(("additionalProperties", "unevaluatedProperties"))}
    mirrored, clashing = _mirrored(explained)
    seen: set[Mark] = set()
    problems = []
    for mark, msg, sp, here in sorted(explained, key=lambda e: e[0]):
        keyword = sp.rsplit("/", 1)[-1]
        if here in unknown_at and keyword in _EXPLAINED_BY_UNKNOWN_KEY:
            continue
        if (here, sp) in mirrored or (here in clashing and keyword in ("anyOf", "oneOf", "not")):
            continue
        if mark in seen:  # one message per position: the first is the most specific
            continue
        seen.add(mark)
        problems.append(Problem(file, mark[0], mark[1], msg, sp))
    return problems
