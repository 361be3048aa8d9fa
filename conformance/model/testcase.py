"""Test cases and fragments: load, validate, expand fragments, build typed steps.

Loading a test case never stops at the first mistake: YAML syntax, schema, PICS expression,
fragment references, fragment parameters and template variables are all checked and every
problem is returned with its file:line:column (inside a fragment: the fragment file's line).

Fragments (testcases/fragments/NAME.yaml) are expanded at load time: `uses:` first, then each
`- use:` step in place. Only `${params.NAME}` is substituted then; every other template is left
for the step engine (conformance.run.templating.render) at run time.
"""

from __future__ import annotations

import difflib
import json
import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from conformance.match.levels import level_of
from conformance.model.pics import KNOWN_PICS, PicsError, Selection
from conformance.model.yaml_marks import Mark, MarkedDict, MarkedList, ModelError, Problem, load_file, mark_of
from conformance.run.templating import (
    RANDOM_KINDS,
    ROOTS,
    USER_FIELDS,
    TemplateContext,
    TemplateError,
    expand_params,
    render,
    scan,
    split_path,
)
from conformance.vocabulary import actions as vocabulary_actions
from conformance.vocabulary import operators as vocabulary_operators
from conformance.vocabulary import subjects as vocabulary_subjects
from conformance.vocabulary.shorthand import normalise

# The words of the format are conformance/vocabulary's (one definition for the schema, this loader,
# the matcher and the engines); these tuples are the names in their registry order.
ACTIONS = vocabulary_actions.ACTIONS.names()
SUBJECTS = vocabulary_subjects.SUBJECTS.names()
QUALIFIERS = vocabulary_subjects.QUALIFIERS.names()
OPERATORS = vocabulary_operators.OPERATORS.names()
PLAYED_NODES = ("as", "pcscf", "scscf", "wsf", "3rdwws")  # nodes the harness can play (conformance/peers)
# the SUTs whose lifecycle cases (tag `lifecycle`) the emulated peers serve (docs/peers.md)
LIFECYCLE_PLAYED_FOR = ("scscf", "wsf", "3rdwws")
# Names an action saves without a `save:` block (visible to ${saved.*} afterwards).
OAUTH_SAVES = {"pkce": ("code_verifier", "code_challenge", "code_challenge_method"), "state": ("state",),
               "nonce": ("nonce",)}
FORGED_DEFAULT = "forged_token"  # forge_token saves here without save_as
MAX_FRAGMENT_DEPTH = 8

SIP_ACTIONS = vocabulary_actions.SIP_ACTIONS  # a case with one can see registrations


class TestCaseError(ModelError):
    """A test case (or a fragment it uses) that cannot be loaded; `.problems` lists them all."""

    __test__ = False  # not a pytest test class


@dataclass
class Expectation:
    """One checked item of `expect:`, normalised to exactly one operator (`op`, `operand`).

    An item without an operator means what conformance.vocabulary.shorthand.normalise says,
    the reading the matcher (conformance.match.engine) uses too (docs/format.md).
    `target` is the subject's argument (header name, JSON path, JWT, form selector, cookie name),
    None for the subjects that are compared themselves (status, body, ...).
    """

    subject: str
    target: Any
    qualifiers: dict[str, Any]
    op: str
    operand: Any
    ref: str | None
    note: str | None
    name: str | None
    file: str
    line: int
    column: int
    raw: MarkedDict
    level: str = "MUST"  # RFC 2119 level: explicit `level:`, else from the ref (conformance.match.levels)

    @property
    def operators(self) -> dict[str, Any]:
        return {self.op: self.operand}

    @classmethod
    def from_mapping(cls, m: MarkedDict, file: str) -> Expectation:
        subject = next(s for s in SUBJECTS if s in m)
        quals = {k: m[k] for k in QUALIFIERS if k in m}
        target: Any = m[subject] if vocabulary_subjects.SUBJECTS[subject].target else None
        op, operand = normalise(subject, m)
        line, col = mark_of(m)
        return cls(subject, target, quals, op, operand, m.get("ref"), m.get("note"), m.get("name"),
                   file, line, col, m, level_of(m).value)

    def rendered(self, ctx: TemplateContext) -> Expectation:
        """A copy with every template of the item rendered (at run time)."""
        return Expectation.from_mapping(render(self.raw, ctx), self.file)

    def describe(self) -> str:
        parts = [self.subject if self.target is None else f"{self.subject} {self.target}"]
        parts += [f"{k} {v}" for k, v in self.qualifiers.items()]
        return " ".join(str(p) for p in parts)


@dataclass(eq=False)
class Step(Mapping):
    """One step after fragment expansion, with where it was written.

    It is also a read-only mapping over the raw step (`step["http"]`, `step.get("expect")`),
    so code that walks steps as YAML dicts keeps working; the expectations there are the
    marked mappings as written (`.mark`, `.line`).
    """

    index: int  # 1-based position in the expanded list
    name: str
    action: str  # one of ACTIONS except "use" (conformance.vocabulary.actions.RUNNABLE)
    args: Any  # the action's mapping, templates not rendered yet
    expect: list[Expectation]
    save: dict[str, MarkedDict]
    flow: tuple[int, ...]
    timeout_ms: int | str | None
    file: str  # the test case, or the fragment the step comes from
    line: int
    from_fragment: str | None = None
    used_at: tuple[str, int] | None = None  # file and line of the outermost `use` that brought it
    raw: MarkedDict = field(default_factory=MarkedDict, repr=False)

    @property
    def where(self) -> str:
        return f"{self.file}:{self.line}"

    def rendered_args(self, ctx: TemplateContext) -> Any:
        return render(self.args, ctx)

    def __getitem__(self, key: str) -> Any:
        return self.raw[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.raw)

    def __len__(self) -> int:
        return len(self.raw)


@dataclass
class TestCase:
    __test__ = False  # not a pytest test class

    id: str
    title: str
    sut: str
    kind: str
    severity: str
    refs: list[str]
    pics: Selection | None
    tags: list[str]
    user: str
    steps: list[Step]
    capture: MarkedDict | None
    file: str
    line: int
    description: str = ""
    raw: MarkedDict = field(default_factory=MarkedDict, repr=False)
    requires_pixit: list[str] = field(default_factory=list)
    # PIXIT without which the case cannot exercise its requirement (a genuine expired token...):
    # missing -> inconclusive "not exercised", whereas a missing `requires_pixit` is not applicable
    needs: list[dict] = field(default_factory=list)  # [{pixit: dotted path, why: text}]

    def touches_registrations(self) -> bool:
        """It sends, serves or captures SIP: only such a case can see the registrations an earlier
        case left behind (a leased fixture user is reset for it, conformance.run.identities)."""
        if any(step.action in SIP_ACTIONS for step in self.steps):
            return True
        return '"sip"' in json.dumps(self.capture or {}, default=str)

    def missing_needs(self, pixit: dict) -> list[str]:
        """The `needs` the profile's PIXIT does not supply, as 'why (pixit.path)' lines."""
        missing = []
        for need in self.needs:
            node: Any = pixit
            for part in str(need["pixit"]).split("."):
                node = node.get(part) if isinstance(node, dict) else None
            if node in (None, "", {}, []):
                missing.append(f"{need['why']} (the profile has no pixit.{need['pixit']})")
        return missing

    @property
    def source(self) -> str:
        return self.file

    @property
    def flow_steps(self) -> tuple[int, ...]:
        """TR 23.701 flow steps this test case exercises (its steps and capture expectations)."""
        nums = {n for s in self.steps for n in s.flow}
        for item in (self.capture or {}).get("expect", []) or []:
            nums.update(_flow_tuple(item.get("flow")))
        return tuple(sorted(nums))

    def applicable(self, pics: dict[str, Any], pixit: Mapping[str, Any] | None = None) -> bool:
        return ((self.pics is None or self.pics.evaluate(pics)) and not self.missing_pixit(pixit)
                and not self.unsupplied(pixit))

    def unsupplied(self, pixit: Mapping[str, Any] | None) -> str:
        """Why the nodes the profile supplies make this case not applicable ('' when they do not):
        a node the vendor does not supply has no test cases of its own, the flow cases need every
        node, and a case that scripts an emulated peer needs the harness to play that node."""
        if pixit is None:
            return ""
        nodes = pixit.get("nodes") or {}
        absent = sorted(n for n, spec in nodes.items() if isinstance(spec, Mapping) and spec.get("supplied") is False)
        if self.sut in absent:
            return f"the profile marks {self.sut} supplied: false"
        if self.sut == "flow" and absent:
            return f"the end-to-end flow needs every node; the profile does not supply {', '.join(absent)}"
        played = {n for n in absent if n in PLAYED_NODES}
        if "lifecycle" in self.tags and played:
            why = self.lifecycle_unplayed(played)
            if why:
                return why
        needed = sorted(self.scripted_peers() - played)
        if needed:
            return (f"the case scripts the emulated {', '.join(needed)}; the profile supplies it, "
                    "so the harness does not play it")
        missing = sorted((self.nodes_reached() & set(absent)) - played)
        if missing:
            return (f"the case needs {', '.join(missing)}, which the profile does not supply and the "
                    "harness does not play")
        return ""

    def lifecycle_unplayed(self, played: set[str]) -> str:
        """Why the emulated peers cannot serve this lifecycle case ('' when they can): they play the
        lifecycle procedures an S-CSCF's cases need (re-registration, expiry, de-registration, the
        reg-event dialog routed both ways: conformance/peers/wsf_flows.py, pcscf_routing.py), a
        WSF's (a registrar with bindings and reg events: registrar.py) and a 3rdWWS's (Origin at
        its relay WebSocket); no other node has lifecycle cases yet. The emulated AS's
        de-registration trigger (pixit.lifecycle.deregister_url) reaches only the emulated core."""
        if self.sut not in LIFECYCLE_PLAYED_FOR:
            return (f"the registration lifecycle after step 22 (reg event, expiry, re-registration, "
                    f"network-initiated de-registration) needs the real {', '.join(sorted(played))}: "
                    f"the emulated peers play it only for the {', '.join(LIFECYCLE_PLAYED_FOR)}'s cases "
                    "(docs/peers.md)")
        if {"as"} <= played and "scscf" not in played and "pixit.lifecycle.deregister_url" in self.requires_pixit:
            return ("the network-initiated de-registration is triggered at the operator's AS "
                    "(pixit.lifecycle.deregister_url); the emulated AS reaches only an emulated "
                    "S-CSCF, not a supplied one (docs/peers.md)")
        return ""

    def nodes_reached(self) -> set[str]:
        """Nodes the steps send to (a `url` or `to` naming `${pixit.nodes.X...}`; a node named as
        a mere value, e.g. a wrong issuer, does not count) or the capture names (from/to)."""
        found: set[str] = set()
        for step in self.steps:
            args = step.args if isinstance(step.args, Mapping) else {}
            for key in ("url", "to"):
                if isinstance(args.get(key), str):
                    found |= set(re.findall(r"pixit\.nodes\.([A-Za-z0-9_]+)", args[key]))
        for item in ((self.capture or {}).get("expect") or []) + ((self.capture or {}).get("forbidden") or []):
            if isinstance(item, Mapping):
                found |= {str(item[k]) for k in ("from", "to") if k in item}
        return found - {"ue"}

    def scripted_peers(self) -> set[str]:
        """Nodes this case scripts or inspects as emulated peers (`peers:`, docs/peers.md)."""
        block = (self.raw or {}).get("peers") or {}
        return {s["peer"] for s in (block.get("script") or [])} | {e["peer"] for e in (block.get("expect") or [])}

    def missing_pixit(self, pixit: Mapping[str, Any] | None) -> list[str]:
        """The PIXIT values this case needs that the profile does not declare (e.g. a size limit
        the binding leaves open): without them the case is not applicable, never guessed."""
        if pixit is None:
            return []
        out = []
        for dotted in self.requires_pixit:
            node: Any = pixit
            for part in dotted.split(".")[1:]:  # "pixit.limits.x" -> limits, x
                node = node.get(part) if isinstance(node, Mapping) else None
            if node is None:
                out.append(dotted)
        return out


@dataclass
class Fragment:
    name: str
    description: str
    params: dict[str, Any]
    steps: MarkedList
    file: str
    problems: list[Problem]


def _flow_tuple(value: Any) -> tuple[int, ...]:
    if isinstance(value, int) and not isinstance(value, bool):
        return (value,)
    if isinstance(value, list):
        return tuple(v for v in value if isinstance(v, int) and not isinstance(v, bool))
    return ()


# -- fragments --------------------------------------------------------------------------------------

class FragmentLibrary:
    """The fragments of one directory, loaded on first use and reloaded when the file changes."""

    def __init__(self, directory: str | Path | None):
        self.directory = Path(directory) if directory else None
        self._cache: dict[str, tuple[tuple[int, int], Fragment]] = {}

    def names(self) -> list[str]:
        if not self.directory or not self.directory.is_dir():
            return []
        return sorted(p.stem for p in self.directory.glob("*.yaml"))

    def get(self, name: str) -> Fragment | None:
        if not self.directory:
            return None
        path = self.directory / f"{name}.yaml"
        try:
            st = os.stat(path)
        except OSError:
            return None
        stamp = (st.st_mtime_ns, st.st_size)
        cached = self._cache.get(name)
        if cached and cached[0] == stamp:
            return cached[1]
        frag = _load_fragment(path)
        self._cache[name] = (stamp, frag)
        return frag

    def all(self) -> list[Fragment]:
        return [f for f in (self.get(n) for n in self.names()) if f is not None]


_LIBRARIES: dict[Path, FragmentLibrary] = {}


def fragment_library(directory: str | Path | None) -> FragmentLibrary:
    """A process-wide cached library per directory."""
    if directory is None:
        return FragmentLibrary(None)
    key = Path(directory).resolve()
    if key not in _LIBRARIES:
        _LIBRARIES[key] = FragmentLibrary(directory)
    return _LIBRARIES[key]


def _load_fragment(path: Path) -> Fragment:
    file = str(path)
    doc, problems = load_file(path)
    if doc is None and not problems:
        problems = [Problem(file, 1, 1, "empty fragment file")]
    if doc is None:
        return Fragment(path.stem, "", {}, MarkedList(), file, problems)
    from conformance.model import schema  # when parsing, not with the model (see load_testcase)

    problems += schema.validate(doc, "fragment", file)
    if not isinstance(doc, dict):
        return Fragment(path.stem, "", {}, MarkedList(), file, problems)
    name = doc.get("fragment")
    if isinstance(name, str) and name != path.stem:
        line, col = doc.mark_of("fragment")
        problems.append(Problem(file, line, col, f"fragment '{name}' must be in a file named {name}.yaml"))
    params = doc.get("params") if isinstance(doc.get("params"), dict) else {}
    steps = doc.get("steps") if isinstance(doc.get("steps"), list) else MarkedList()
    # Every ${params.X} must be declared: checked once here, whatever `with:` a user passes.
    for text, (line, col) in _templated(steps, mark_of(steps), []):
        try:
            for t in scan(text):
                if t.expr.startswith("params.") and t.expr[len("params."):] not in params:
                    name_ = t.expr[len("params."):]
                    hint = _did_you_mean(name_, params) or f" (declared: {', '.join(params) or 'none'})"
                    problems.append(Problem(file, line, col, f"unknown fragment parameter ${{{t.expr}}}{hint}"))
        except TemplateError as exc:
            problems.append(Problem(file, line, col, str(exc)))
    unique = sorted(dict.fromkeys(problems), key=lambda p: (p.line, p.column))
    return Fragment(path.stem, doc.get("description", ""), dict(params), steps, file, unique)


def _did_you_mean(word: str, choices) -> str:
    close = difflib.get_close_matches(word, [str(c) for c in choices], n=1, cutoff=0.6)
    return f"; did you mean {close[0]}?" if close else ""


# -- walking marked data ----------------------------------------------------------------------------

def _templated(obj: Any, mark: Mark, out: list[tuple[str, Mark]]) -> list[tuple[str, Mark]]:
    """Every string value (never a key) that contains `${`, with its position. A plain recursive
    collector: this walk visits every value of the catalog, so it avoids generator chains."""
    if isinstance(obj, dict):
        marks = obj.value_marks if isinstance(obj, MarkedDict) else {}
        for k, v in obj.items():
            if type(v) is str:
                if "${" in v:
                    out.append((v, marks.get(k, mark)))
            elif isinstance(v, dict | list):
                _templated(v, marks.get(k, mark), out)
    elif isinstance(obj, list):
        marks = obj.item_marks if isinstance(obj, MarkedList) else []
        for i, v in enumerate(obj):
            at = marks[i] if i < len(marks) else mark
            if type(v) is str:
                if "${" in v:
                    out.append((v, at))
            elif isinstance(v, dict | list):
                _templated(v, at, out)
    elif isinstance(obj, str) and "${" in obj:
        out.append((obj, mark))
    return out


# -- test cases -------------------------------------------------------------------------------------

def default_fragments_dir(path: Path) -> Path | None:
    """testcases/<node>/x.yaml -> testcases/fragments (the nearest ancestor with a fragments/)."""
    for parent in path.resolve().parents:
        if (parent / "fragments").is_dir():
            return parent / "fragments"
    return None


def load_testcase(path: str | Path, fragments_dir: str | Path | None = None) -> TestCase:
    """Load, validate and expand one test case; raises TestCaseError listing every problem."""
    tc, problems = check_testcase(path, fragments_dir)
    if problems or tc is None:
        raise TestCaseError(problems or [Problem(str(path), 1, 1, "not a test case")])
    return tc


def check_testcase(path: str | Path, fragments_dir: str | Path | None = None,
                   library: FragmentLibrary | None = None) -> tuple[TestCase | None, list[Problem]]:
    """(TestCase or None, every problem). The TestCase is only built when there is no problem."""
    path = Path(path)
    file = str(path)
    if library is None:
        library = fragment_library(fragments_dir if fragments_dir is not None else default_fragments_dir(path))
    doc, problems = load_file(path)
    if doc is None:
        return None, problems or [Problem(file, 1, 1, "empty file: a test case is a YAML mapping")]
    # imported when a file is parsed, not with the model: a process that only unpickles the
    # catalog the CLI validated (the controller of an -n run) needs no JSON Schema validator
    from conformance.model import schema

    problems += schema.validate(doc, "testcase", file)
    if not isinstance(doc, dict):
        return None, problems
    selection = _check_pics(doc, file, problems)
    expanded = _expand_all(doc, file, library, problems)
    _check_templates(expanded, problems)
    for step, step_file, _fragment, _used_at in expanded:
        _check_regexes(step, step_file, problems)
    _check_regexes(doc.get("capture"), file, problems)
    if problems:
        unique = list(dict.fromkeys(problems))  # same order as found for problems at one position
        return None, sorted(unique, key=lambda p: (p.file != file, p.file, p.line, p.column))
    steps = [_build_step(i, *entry) for i, entry in enumerate(expanded, 1)]
    tc = TestCase(
        id=doc["id"], title=doc["title"], sut=doc["sut"], kind=doc["kind"], severity=doc["severity"],
        refs=list(doc["refs"]), pics=selection, tags=list(doc.get("tags", [])),
        user=doc.get("user", "fresh"), steps=steps, capture=doc.get("capture"), file=file,
        line=doc.mark[0], description=doc.get("description", ""), raw=doc,
        requires_pixit=list(doc.get("requires_pixit", [])),
        needs=[dict(n) for n in doc.get("needs") or []],
    )
    return tc, []


def _check_pics(doc: MarkedDict, file: str, problems: list[Problem]) -> Selection | None:
    expr = doc.get("pics")
    if not isinstance(expr, str) or not expr.strip():
        return None
    line, col = doc.mark_of("pics")
    try:
        selection = Selection(expr)
    except PicsError as exc:
        problems.append(Problem(file, line, col, f"pics: {exc.message} (column {exc.column} of the expression)"))
        return None
    for exc in selection.check(KNOWN_PICS):
        problems.append(Problem(file, line, col, f"pics: {exc.message} (column {exc.column} of the expression)"))
    return selection


# An expanded step: (raw step, file it is written in, fragment name, outermost use site)
_Entry = tuple[MarkedDict, str, "str | None", "tuple[str, int] | None"]


def _expand_all(doc: MarkedDict, file: str, library: FragmentLibrary, problems: list[Problem]) -> list[_Entry]:
    out: list[_Entry] = []
    uses = doc.get("uses") if isinstance(doc.get("uses"), list) else []
    for i, use in enumerate(uses):
        if isinstance(use, dict):
            _use(use, uses.mark_of(i), file, library, (), None, out, problems)
    steps = doc.get("steps") if isinstance(doc.get("steps"), list) else []
    _expand(steps, file, library, (), None, None, out, problems)
    return out


def _expand(steps: list, file: str, library: FragmentLibrary, chain: tuple[str, ...], fragment: str | None,
            used_at: tuple[str, int] | None, out: list[_Entry], problems: list[Problem]) -> None:
    for step in steps:
        if not isinstance(step, dict):
            continue
        if isinstance(step.get("use"), dict):
            site = used_at or (file, mark_of(step)[0])
            _use(step["use"], mark_of(step), file, library, chain, site, out, problems)
        else:
            out.append((step, file, fragment, used_at))


def _use(use: MarkedDict, mark: Mark, file: str, library: FragmentLibrary, chain: tuple[str, ...],
         used_at: tuple[str, int] | None, out: list[_Entry], problems: list[Problem]) -> None:
    name = use.get("fragment")
    if not isinstance(name, str):
        return  # the schema reported it
    line, col = use.mark_of("fragment") if isinstance(use, MarkedDict) else mark
    if name in chain:
        cycle = " -> ".join((*chain, name))
        problems.append(Problem(file, line, col, f"fragment cycle: {cycle}"))
        return
    if len(chain) >= MAX_FRAGMENT_DEPTH:
        problems.append(Problem(file, line, col, f"fragments nested deeper than {MAX_FRAGMENT_DEPTH}"))
        return
    frag = library.get(name)
    if frag is None:
        known = library.names()
        hint = _did_you_mean(name, known) or f" (known: {', '.join(known) or 'none'})"
        where = f" in {library.directory}" if library.directory else " (no fragments directory)"
        problems.append(Problem(file, line, col, f"unknown fragment '{name}'{where}{hint}"))
        return
    if frag.problems:
        problems.extend(frag.problems)
        return
    given = use.get("with") if isinstance(use.get("with"), dict) else {}
    for key in given:
        if key not in frag.params:
            kl, kc = given.key_marks.get(key, (line, col)) if isinstance(given, MarkedDict) else (line, col)
            hint = _did_you_mean(key, frag.params) or f" (params: {', '.join(frag.params) or 'none'})"
            problems.append(Problem(file, kl, kc, f"fragment '{name}' has no parameter '{key}'{hint}"))
    params = {**frag.params, **given}
    try:
        steps = expand_params(frag.steps, params)
    except TemplateError as exc:  # already reported by the fragment's own check; keep it visible
        problems.append(Problem(frag.file, 1, 1, str(exc)))
        return
    _expand(steps, frag.file, library, (*chain, name), name, used_at or (file, mark[0]), out, problems)


def _saves_of(step: MarkedDict) -> set[str]:
    names = set(step["save"]) if isinstance(step.get("save"), dict) else set()
    oauth = step.get("oauth")
    if isinstance(oauth, dict):
        for key, saved in OAUTH_SAVES.items():
            if oauth.get(key):
                names.update(saved)
    forge = step.get("forge_token")
    if isinstance(forge, dict):
        names.add(forge.get("save_as") if isinstance(forge.get("save_as"), str) else FORGED_DEFAULT)
    return names


def _check_regexes(node, file: str, problems: list[Problem]) -> None:
    """Every `regex` operand compiles (Python re), found at validation rather than after traffic
    was sent; one with a template is checked when it runs, with its value."""
    if isinstance(node, dict):
        pattern = node.get("regex")
        if isinstance(pattern, str) and "${" not in pattern:
            try:
                re.compile(pattern)
            except re.error as exc:
                line, col = node.mark_of("regex") if isinstance(node, MarkedDict) else (1, 1)
                problems.append(Problem(file, line, col, f"regex {pattern!r} does not compile: {exc}"))
        for value in node.values():
            _check_regexes(value, file, problems)
    elif isinstance(node, list):
        for value in node:
            _check_regexes(value, file, problems)


def _check_templates(entries: list[_Entry], problems: list[Problem]) -> None:
    """Static checks of every ${...}: known root, known member where it is knowable, and
    ${saved.NAME} saved by an earlier step (or by this step, for its expect)."""
    saved: set[str] = set()
    for step, file, _fragment, _used_at in entries:
        own = _saves_of(step)
        for key, value in step.items():
            visible = saved | own if key in ("expect", "save") else saved
            base = step.mark_of(key)
            for text, (line, col) in _templated(value, base, []):
                try:
                    templates = list(scan(text))
                except TemplateError as exc:
                    problems.append(Problem(file, line, col, str(exc)))
                    continue
                for t in templates:
                    msg = _check_expr(t.expr, visible)
                    if msg:
                        problems.append(Problem(file, line, col, msg))
        saved |= own


def _check_expr(expr: str, saved: set[str]) -> str | None:
    if expr == "now":
        return None
    if expr.startswith("env:"):
        return f"${{{expr}}}: environment variables are only allowed in profiles"
    try:
        parts = split_path(expr)
    except TemplateError as exc:
        return str(exc)
    root, rest = parts[0], parts[1:]
    if root not in ROOTS or root == "now":
        hint = _did_you_mean(str(root), ROOTS)
        return f"unknown variable ${{{expr}}}: a variable starts with {', '.join(ROOTS)} or env:{hint}"
    if root == "params":
        return f"${{{expr}}}: params are only available inside a fragment"
    if not rest or not isinstance(rest[0], str):
        return None if root in ("pixit", "saved", "user", "users") else f"incomplete variable ${{{expr}}}"
    first = rest[0]
    if root == "random" and (len(rest) != 1 or first not in RANDOM_KINDS and not _is_hex_kind(first)):
        return f"unknown variable ${{{expr}}}: random kinds are {', '.join(RANDOM_KINDS)}{_did_you_mean(first, RANDOM_KINDS)}"
    if root == "pics":
        key = expr[len("pics."):]
        if key not in KNOWN_PICS and not key.startswith("x-"):
            return f"unknown variable ${{{expr}}}: no PICS option {key}{_did_you_mean(key, KNOWN_PICS)}"
    if root == "user" and first not in USER_FIELDS:
        return f"unknown variable ${{{expr}}}: user fields are {', '.join(USER_FIELDS)}{_did_you_mean(first, USER_FIELDS)}"
    if root == "users" and len(rest) > 1 and isinstance(rest[1], str) and rest[1] not in USER_FIELDS:
        return f"unknown variable ${{{expr}}}: user fields are {', '.join(USER_FIELDS)}{_did_you_mean(rest[1], USER_FIELDS)}"
    if root == "saved" and first not in saved:
        hint = _did_you_mean(first, saved)
        known = f" (saved so far: {', '.join(sorted(saved))})" if saved and not hint else ""
        return f"unknown variable ${{{expr}}}: no earlier step saves '{first}'{hint}{known}"
    return None


def _is_hex_kind(kind: str) -> bool:
    return kind.startswith("hex") and kind[3:].isdigit() and 1 <= int(kind[3:]) <= 64


def _build_step(index: int, raw: MarkedDict, file: str, fragment: str | None,
                used_at: tuple[str, int] | None) -> Step:
    action = next(a for a in ACTIONS if a in raw)
    expect = [Expectation.from_mapping(e, file) for e in raw.get("expect", [])]
    return Step(
        index=index, name=raw.get("name") or action, action=action, args=raw[action], expect=expect,
        save=dict(raw.get("save", {})), flow=_flow_tuple(raw.get("flow")), timeout_ms=raw.get("timeout_ms"),
        file=file, line=mark_of(raw)[0], from_fragment=fragment, used_at=used_at, raw=raw,
    )
