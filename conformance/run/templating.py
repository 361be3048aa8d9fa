"""`${...}` substitution in test-case values (docs/format.md, "Templating").

    template   := { text | "$${" | "${" expression "}" }
    expression := root { "." segment | "[" integer "]" }  |  "env:" NAME  |  "now"
    root       := pixit | pics | user | users | saved | random | params

`$${` is a literal `${`. A string that is exactly one `${...}` keeps the type of its value
(`${saved.expires_in}` stays an integer); inside a longer string a value is inserted as text
(strings as they are, anything else as JSON: true, null, [..]). Keys are never substituted.

One engine serves three moments: `${params.*}` when a fragment is expanded (load time, every
other template left untouched), `${env:*}` when a profile loads, everything else when a step runs.
"""

from __future__ import annotations

import difflib
import json
import re
import secrets
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from conformance.model.yaml_marks import MarkedDict, MarkedList

# `$${` (escape) or `${ ... }`; an opening without a closing brace is reported, never passed on.
_TOKEN = re.compile(r"\$\$\{|\$\{([^{}]*)\}|\$\{")
_SEGMENT = re.compile(r"[A-Za-z0-9_-]+|\[-?\d+\]")
_PATH = re.compile(r"^[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]+|\[-?\d+\])*$")

ROOTS = ("pixit", "pics", "user", "users", "saved", "random", "now", "params")
USER_FIELDS = ("web_id", "password", "impi", "impu", "impus", "tp_username", "tp_password")
RANDOM_KINDS = ("hex8", "hex16", "hex32", "uuid", "branch", "tag", "call_id")


class TemplateError(ValueError):
    """A template that cannot be rendered; `variable` is the expression inside `${...}`."""

    def __init__(self, message: str, variable: str = "", suggestions: tuple[str, ...] = ()):
        super().__init__(message)
        self.variable = variable
        self.suggestions = suggestions


KEEP = object()  # returned by a resolver for an expression it leaves for a later moment


@dataclass(frozen=True)
class Template:
    """One `${...}` occurrence: its expression and its offset in the string."""

    expr: str
    start: int
    end: int


def scan(text: str) -> Iterator[Template]:
    """Every `${...}` in `text` (escapes skipped); raises TemplateError on an unterminated one."""
    for m in _TOKEN.finditer(text):
        if m.group(0) == "$${":
            continue
        if m.group(1) is None:
            raise TemplateError(f"unterminated '${{' at offset {m.start()} in {text!r} (write $${{ for a literal)")
        yield Template(m.group(1).strip(), m.start(), m.end())


def to_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool) or value is None or isinstance(value, list | dict):
        return json.dumps(value)
    return str(value)


def substitute(text: str, resolve: Callable[[str], Any], final: bool = True) -> Any:
    """Render one string with `resolve(expr) -> value | KEEP`.

    final=True: this is the last pass, so `$${` becomes `${`. final=False (fragment params):
    escapes and KEEP-ed templates are written back unchanged for the run-time pass.
    """
    if "${" not in text:
        return text
    m = _TOKEN.fullmatch(text)
    if m and m.group(1) is not None:  # whole-string template: keep the value's type
        value = resolve(m.group(1).strip())
        return text if value is KEEP else value
    out, pos = [], 0
    for m in _TOKEN.finditer(text):
        out.append(text[pos:m.start()])
        pos = m.end()
        if m.group(0) == "$${":
            out.append("${" if final else "$${")
        elif m.group(1) is None:
            raise TemplateError(f"unterminated '${{' at offset {m.start()} in {text!r} (write $${{ for a literal)")
        else:
            value = resolve(m.group(1).strip())
            out.append(m.group(0) if value is KEEP else to_text(value))
    out.append(text[pos:])
    return "".join(out)


def walk_strings(obj: Any, fn: Callable[[str], Any]) -> Any:
    """Copy of a nested dict/list (marks kept) with `fn` applied to every string value, never keys."""
    if isinstance(obj, dict):
        out = MarkedDict(mark=getattr(obj, "mark", (0, 0)))
        for k, v in obj.items():
            out[k] = walk_strings(v, fn)
        if isinstance(obj, MarkedDict):
            out.key_marks, out.value_marks = obj.key_marks, obj.value_marks
        return out
    if isinstance(obj, list):
        out = MarkedList((walk_strings(v, fn) for v in obj), mark=getattr(obj, "mark", (0, 0)))
        if isinstance(obj, MarkedList):
            out.item_marks = obj.item_marks
        return out
    if isinstance(obj, str):
        return fn(obj)
    return obj


def split_path(expr: str) -> list[str | int]:
    """`user.impus[1]` -> ['user', 'impus', 1]."""
    if not _PATH.match(expr):
        raise TemplateError(f"malformed variable '{expr}' (expected e.g. saved.name or user.impus[0])", expr)
    parts: list[str | int] = []
    for seg in _SEGMENT.findall(expr):
        parts.append(int(seg[1:-1]) if seg.startswith("[") else seg)
    return parts


def _flatten(obj: Any, prefix: str, depth: int = 6) -> Iterator[str]:
    yield prefix
    if depth == 0:
        return
    if isinstance(obj, Mapping):
        for k, v in obj.items():
            yield from _flatten(v, f"{prefix}.{k}", depth - 1)
    elif isinstance(obj, list):
        for i, v in enumerate(obj[:4]):
            yield from _flatten(v, f"{prefix}[{i}]", depth - 1)


def _random_value(kind: str) -> str:
    if kind == "uuid":
        return str(uuid.uuid4())
    if kind == "branch":  # RFC 3261 8.1.1.7: the branch starts with the magic cookie z9hG4bK
        return "z9hG4bK" + secrets.token_hex(8)
    if kind == "tag":
        return secrets.token_hex(5)
    if kind == "call_id":
        return secrets.token_hex(12)
    m = re.fullmatch(r"hex(\d+)", kind)
    if m and 1 <= int(m.group(1)) <= 64:
        n = int(m.group(1))
        return secrets.token_hex((n + 1) // 2)[:n]
    raise TemplateError(f"unknown random kind '{kind}'", f"random.{kind}",
                        tuple(f"random.{k}" for k in difflib.get_close_matches(kind, RANDOM_KINDS)))


@dataclass
class TemplateContext:
    """What run-time templates can see. `new_step()` draws fresh `${random.*}` values."""

    pixit: Mapping[str, Any] = field(default_factory=dict)
    pics: Mapping[str, Any] = field(default_factory=dict)  # flat, dotted keys
    user: Mapping[str, Any] | None = None
    users: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    saved: dict[str, Any] = field(default_factory=dict)
    params: Mapping[str, Any] | None = None  # only while expanding a fragment
    extra: Mapping[str, Any] = field(default_factory=dict)  # more roots, e.g. {"vars": {...}} for SIP templates
    clock: Callable[[], float] = time.time
    _random: dict[str, str] = field(default_factory=dict, repr=False)

    def new_step(self) -> None:
        """Same `${random.NAME}` within one step, a new value in the next one."""
        self._random.clear()

    def _user_view(self, user: Mapping[str, Any]) -> dict[str, Any]:
        view = dict(user)
        if "impu" not in view and view.get("impus"):
            view["impu"] = view["impus"][0]  # the first IMPU is the default one (BINDING.md)
        return view

    def known_names(self) -> list[str]:
        """Every variable this context can resolve (for 'did you mean' hints)."""
        names = ["now"] + [f"random.{k}" for k in RANDOM_KINDS]
        names += list(_flatten(self.pixit, "pixit"))
        names += [f"pics.{k}" for k in self.pics]
        if self.user is not None:
            names += list(_flatten(self._user_view(self.user), "user", 2))
        for name, u in self.users.items():
            names += list(_flatten(self._user_view(u), f"users.{name}", 2))
        names += list(_flatten(self.saved, "saved", 3))
        if self.params is not None:
            names += [f"params.{k}" for k in self.params]
        for root, value in self.extra.items():
            names += list(_flatten(value, root, 3))
        return names

    def _unknown(self, expr: str, why: str) -> TemplateError:
        close = tuple(difflib.get_close_matches(expr, self.known_names(), n=3, cutoff=0.75))
        hint = f"; did you mean {', '.join('${' + c + '}' for c in close)}?" if close else ""
        return TemplateError(f"unknown variable ${{{expr}}}: {why}{hint}", expr, close)

    def lookup(self, expr: str) -> Any:
        """The value of one expression (the text between `${` and `}`)."""
        if expr.startswith("env:"):
            raise TemplateError(f"${{{expr}}}: environment variables are only allowed in profiles", expr)
        if expr == "now":
            return int(self.clock())
        parts = split_path(expr)
        root, rest = parts[0], parts[1:]
        if root in self.extra:
            return self._walk(self.extra[root], rest, expr, str(root))
        if root == "random":
            if len(rest) != 1 or not isinstance(rest[0], str):
                raise self._unknown(expr, f"use one of {', '.join('random.' + k for k in RANDOM_KINDS)}")
            if rest[0] not in self._random:
                self._random[rest[0]] = _random_value(rest[0])
            return self._random[rest[0]]
        if root == "pics":  # PICS keys are flat and contain dots: pics.signalling.path
            key = expr[len("pics."):]
            if key not in self.pics:
                raise self._unknown(expr, "no such PICS option in the profile")
            return self.pics[key]
        if root == "user":
            if self.user is None:
                raise self._unknown(expr, "this test case has no user")
            base: Any = self._user_view(self.user)
        elif root == "users":
            if not rest or rest[0] not in self.users:
                raise self._unknown(expr, f"known users: {', '.join(self.users) or 'none'}")
            base, rest = self._user_view(self.users[rest[0]]), rest[1:]
        elif root == "params":
            if self.params is None:
                raise self._unknown(expr, "${params.*} is only available inside a fragment")
            base = self.params
        elif root in ("pixit", "saved"):
            base = getattr(self, root)
        else:
            roots = ", ".join((*ROOTS, *self.extra))
            raise self._unknown(expr, f"a variable starts with one of {roots} or env:")
        if not rest and root not in ("pixit", "saved"):
            return base
        return self._walk(base, rest, expr, root)

    def _walk(self, value: Any, path: list[str | int], expr: str, root: str) -> Any:
        done = root
        for part in path:
            if isinstance(part, int):
                if not isinstance(value, list) or not -len(value) <= part < len(value):
                    raise self._unknown(expr, f"{done} has no item [{part}]")
                value = value[part]
                done += f"[{part}]"
            else:
                if not isinstance(value, Mapping) or part not in value:
                    what = "nothing saved under this name yet" if root == "saved" and done == "saved" \
                        else f"{done} has no member '{part}'"
                    raise self._unknown(expr, what)
                value = value[part]
                done += f".{part}"
        return value


def render_string(text: str, ctx: TemplateContext) -> Any:
    return substitute(text, ctx.lookup)


def render(obj: Any, ctx: TemplateContext) -> Any:
    """Render every string of a nested step (dicts, lists, scalars); marks are kept on the copy."""
    return walk_strings(obj, lambda s: substitute(s, ctx.lookup))


def expand_params(obj: Any, params: Mapping[str, Any]) -> Any:
    """Substitute only `${params.NAME}` (fragment expansion at load time); leave the rest as is."""

    def resolve(expr: str) -> Any:
        if not expr.startswith("params."):
            return KEEP
        name = expr[len("params."):]
        if name not in params:
            close = difflib.get_close_matches(name, list(params), n=3)
            hint = f"; did you mean {', '.join(close)}?" if close else \
                f" (declared: {', '.join(params) or 'none'})"
            raise TemplateError(f"unknown fragment parameter ${{{expr}}}{hint}", expr,
                                tuple(f"params.{c}" for c in close))
        return params[name]

    return walk_strings(obj, lambda s: substitute(s, resolve, final=False))
