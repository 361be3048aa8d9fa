"""PICS: the options a profile answers, and the selection expressions test cases use.

The known options are data, defined once here: the profile schema's `pics` section is generated
from KNOWN_PICS (a unit test keeps conformance/schema/profile.schema.json in step), the vendor
template documents them, and catalog validation rejects expressions naming anything else.

Selection grammar (docs/format.md), parsed with Python's `ast` and restricted to:

    expr       := expr "or" expr | expr "and" expr | "not" expr | comparison | "(" expr ")"
    comparison := operand [("==" | "!=") operand] | operand ["not"] "in" "[" literal {"," literal} "]"
    operand    := dotted-name | literal
    literal    := 'string' | "string" | number | true | false   (True/False accepted too)

Nothing is ever executed: the tree is walked by hand, so an expression cannot call or import.
"""

from __future__ import annotations

import ast
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class PicsOption:
    name: str
    values: tuple  # allowed answers; (True, False) for a yes/no option
    default: Any  # the answer of the reference network (BINDING.md)
    description: str

    @property
    def is_bool(self) -> bool:
        return self.values == (True, False)


KNOWN_PICS: dict[str, PicsOption] = {o.name: o for o in (
    PicsOption("signalling.path", ("relay", "direct"), "relay",
               "relay: the UE signals through the 3rdWWS, which keeps the access token and relays to the "
               "WSF (steps 12 and 22 exist); direct: the 3rdWWS hands token and WSF URL to the UE, which "
               "opens the WebSocket to the WSF itself (TS 24.371)"),
    PicsOption("token.format", ("jwt", "opaque"), "jwt",
               "jwt: RFC 9068 JWT access token (typ at+jwt, signed); opaque: a reference token that only "
               "introspection can resolve"),
    PicsOption("token.wsf_url_member", (True, False), True,
               "the token response (step 10) carries the wsf_url extension member"),
    PicsOption("sip.bearer_syntax", ("rfc8898", "ts24371"), "rfc8898",
               "rfc8898: 'Authorization: Bearer <token>' (RFC 8898 2.1); ts24371: "
               "'Authorization: Bearer access_token=\"<token>\"' (TS 24.371 A.3.2)"),
    PicsOption("sip.client_aor", ("web_id", "impu"), "web_id",
               "what the UE puts in To/From of the step-14 REGISTER: its operator Web ID, or an IMPU "
               "(then the WSF answers 403 if it is not one of the mapped IMPUs)"),
    PicsOption("wsf.verify", ("introspection", "local_jwt"), "introspection",
               "introspection: the WSF asks the AS (RFC 7662, steps 15-16); local_jwt: the WSF checks "
               "the JWT against the AS JWKS and asks no one"),
    PicsOption("core.transport", ("udp", "tcp"), "udp", "SIP transport between WSF, P-CSCF and S-CSCF"),
    PicsOption("core.separate_icscf", (True, False), False,
               "the I-CSCF is a node of its own rather than combined with the S-CSCF"),
    # -- registration lifecycle after step 22 (docs/lifecycle.md) --
    PicsOption("wsf.reregister_token", ("every", "first"), "every",
               "every: each REGISTER (refresh, de-registration) carries the access token and the WSF "
               "verifies it again (RFC 8898 2.1); first: the WSF binds the identity to the WebSocket "
               "flow at the first REGISTER and accepts later REGISTERs on that flow without a token"),
    PicsOption("wsf.on_ws_close", ("deregister", "expire"), "deregister",
               "deregister: when the WebSocket closes or is lost the WSF de-registers its bindings at "
               "once (no zombie binding); expire: the binding stays until its registration expires"),
    PicsOption("wsf.origin_missing", ("accept", "reject"), "accept",
               "a WebSocket handshake without Origin (a non-browser client, RFC 6455 4.1) is accepted, "
               "or refused with 403 like a foreign Origin"),
)}

VENDOR_PREFIX = "x-"  # profiles may add vendor options named x-...; test cases cannot select on them


class PicsError(ValueError):
    """A selection expression that cannot be parsed, checked or evaluated; column is 1-based."""

    def __init__(self, message: str, column: int = 1):
        super().__init__(message)
        self.message = message
        self.column = column


def pics_schema() -> dict:
    """The JSON Schema of a profile's `pics` block, generated from KNOWN_PICS."""
    props = {}
    for o in KNOWN_PICS.values():
        if o.is_bool:
            props[o.name] = {"type": "boolean", "description": o.description}
        else:
            props[o.name] = {"enum": list(o.values), "description": o.description}
    known = ", ".join(KNOWN_PICS)
    return {
        "type": "object",
        "description": "Answers to the PICS options (BINDING.md); vendor-specific options start with x-",
        "properties": props,
        "patternProperties": {"^x-": {"description": "vendor-specific option"}},
        "additionalProperties": False,
        "required": list(KNOWN_PICS),
        "x-errors": {"additionalProperties": f"unknown PICS option {{key}}; known options: {known} "
                                              "(vendor options start with x-)"},
    }


# -- expressions -------------------------------------------------------------------------------

_BOOL_NAMES = {"true": True, "True": True, "false": False, "False": False}


@dataclass(frozen=True)
class _Name:
    name: str
    col: int


@dataclass(frozen=True)
class _Lit:
    value: Any
    col: int


@dataclass(frozen=True)
class _List:
    values: tuple
    col: int


@dataclass(frozen=True)
class _Not:
    operand: Any
    col: int


@dataclass(frozen=True)
class _Bool:
    op: str  # and | or
    operands: tuple
    col: int


@dataclass(frozen=True)
class _Cmp:
    op: str  # == != in not in
    left: Any
    right: Any
    col: int


_CMP_OPS = {ast.Eq: "==", ast.NotEq: "!=", ast.In: "in", ast.NotIn: "not in"}


def _dotted(node: ast.AST) -> str | None:
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
        return ".".join(reversed(parts))
    return None


def _convert(node: ast.AST):
    col = max(getattr(node, "col_offset", 1), 1)
    if isinstance(node, ast.BoolOp):
        op = "and" if isinstance(node.op, ast.And) else "or"
        return _Bool(op, tuple(_convert(v) for v in node.values), col)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
        return _Not(_convert(node.operand), col)
    if isinstance(node, ast.Compare):
        if len(node.ops) != 1:
            raise PicsError("chained comparisons are not allowed; join them with 'and'", col)
        op = _CMP_OPS.get(type(node.ops[0]))
        if op is None:
            raise PicsError("only ==, !=, in and not in compare", col)
        left, right = _convert(node.left), _convert(node.comparators[0])
        if op in ("in", "not in") and not isinstance(right, _List):
            raise PicsError(f"'{op}' needs a list on its right, e.g. ['relay', 'direct']", right.col)
        if isinstance(left, _List) or (op in ("==", "!=") and isinstance(right, _List)):
            raise PicsError("a list can only follow 'in' or 'not in'", col)
        return _Cmp(op, left, right, col)
    if isinstance(node, ast.Name) and node.id in _BOOL_NAMES:
        return _Lit(_BOOL_NAMES[node.id], col)
    if isinstance(node, ast.Name | ast.Attribute):
        name = _dotted(node)
        if name is None:
            raise PicsError("a PICS name is dotted words, e.g. signalling.path", col)
        return _Name(name, col)
    if isinstance(node, ast.Constant) and isinstance(node.value, str | int | float | bool):
        return _Lit(node.value, col)
    if isinstance(node, ast.List | ast.Tuple):
        items = [_convert(e) for e in node.elts]
        for item in items:
            if not isinstance(item, _Lit):
                raise PicsError("list items must be literals (strings, numbers, true/false)", item.col)
        return _List(tuple(i.value for i in items), col)
    raise PicsError(f"not allowed in a PICS expression: {ast.unparse(node)!r}", col)


class Selection:
    """A parsed PICS selection expression: `Selection("signalling.path == 'direct'")`."""

    __slots__ = ("expr", "_tree", "names")

    def __init__(self, expr: str):
        if not isinstance(expr, str) or not expr.strip():
            raise PicsError("a PICS selection must be a non-empty string")
        self.expr = expr
        try:
            # Parenthesised so that leading spaces and line breaks (YAML block scalars) parse;
            # the "(" also makes ast's 0-based col_offset equal the 1-based column in `expr`.
            tree = ast.parse(f"({expr}\n)", mode="eval")
        except SyntaxError as exc:
            col = max((exc.offset or 2) - 1, 1) if (exc.lineno or 1) == 1 else 1
            raise PicsError(f"syntax error: {exc.msg}", col) from None
        self._tree = _convert(tree.body)
        self.names: frozenset[str] = frozenset(n.name for n in _walk(self._tree) if isinstance(n, _Name))

    def __repr__(self) -> str:
        return f"Selection({self.expr!r})"

    def __str__(self) -> str:
        return self.expr

    def __eq__(self, other) -> bool:
        return isinstance(other, Selection) and other.expr == self.expr

    def __hash__(self) -> int:
        return hash(self.expr)

    def check(self, known: Mapping[str, PicsOption] = KNOWN_PICS) -> list[PicsError]:
        """Static checks: every name is a known option, compared only with values it can take."""
        errors: list[PicsError] = []
        for node in _walk(self._tree):
            if isinstance(node, _Name) and node.name not in known:
                errors.append(PicsError(_unknown(node.name, known), node.col))
            elif isinstance(node, _Cmp):
                name, other = (node.left, node.right) if isinstance(node.left, _Name) else (node.right, node.left)
                if not isinstance(name, _Name) or name.name not in known:
                    continue
                opt = known[name.name]
                values = other.values if isinstance(other, _List) else (
                    (other.value,) if isinstance(other, _Lit) else ())
                for v in values:
                    if not any(v == a and type(v) is type(a) for a in opt.values):
                        allowed = ", ".join(_show(a) for a in opt.values)
                        errors.append(PicsError(
                            f"{_show(v)} is not a value of {opt.name} (allowed: {allowed})", other.col))
        for node in _bare_names(self._tree):
            if node.name in known and not known[node.name].is_bool:
                opt = known[node.name]
                errors.append(PicsError(
                    f"{opt.name} is not a yes/no option; compare it, e.g. {opt.name} == '{opt.values[0]}'",
                    node.col))
        return errors

    def evaluate(self, pics: Mapping[str, Any]) -> bool:
        """True when the profile's PICS answers select the test case."""
        return bool(_eval(self._tree, pics))


def _show(v: Any) -> str:
    return ("true" if v else "false") if isinstance(v, bool) else repr(v)


def _unknown(name: str, known: Mapping[str, Any]) -> str:
    import difflib

    close = difflib.get_close_matches(name, list(known), n=3, cutoff=0.6)
    hint = f"; did you mean {', '.join(close)}?" if close else f"; known: {', '.join(known)}"
    return f"unknown PICS name {name}{hint}"


def _walk(node):
    yield node
    if isinstance(node, _Bool):
        for o in node.operands:
            yield from _walk(o)
    elif isinstance(node, _Not):
        yield from _walk(node.operand)
    elif isinstance(node, _Cmp):
        yield from _walk(node.left)
        yield from _walk(node.right)


def _bare_names(node):
    """Names used as truth values (not inside a comparison)."""
    if isinstance(node, _Name):
        yield node
    elif isinstance(node, _Bool):
        for o in node.operands:
            yield from _bare_names(o)
    elif isinstance(node, _Not):
        yield from _bare_names(node.operand)


def _value(node, pics: Mapping[str, Any]):
    if isinstance(node, _Name):
        if node.name not in pics:
            raise PicsError(_unknown(node.name, pics), node.col)
        return pics[node.name]
    if isinstance(node, _Lit):
        return node.value
    if isinstance(node, _List):
        return node.values
    return _eval(node, pics)


def _eval(node, pics: Mapping[str, Any]) -> bool:
    if isinstance(node, _Bool):
        if node.op == "and":
            return all(_eval(o, pics) for o in node.operands)
        return any(_eval(o, pics) for o in node.operands)
    if isinstance(node, _Not):
        return not _eval(node.operand, pics)
    if isinstance(node, _Cmp):
        left, right = _value(node.left, pics), _value(node.right, pics)
        if node.op == "==":
            return left == right
        if node.op == "!=":
            return left != right
        found = left in right
        return found if node.op == "in" else not found
    value = _value(node, pics)
    if isinstance(node, _Name) and not isinstance(value, bool):
        raise PicsError(f"{node.name} is {value!r}, not true/false; compare it with == instead", node.col)
    return bool(value)
