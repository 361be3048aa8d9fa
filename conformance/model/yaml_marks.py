"""YAML loading that remembers where every value came from.

Mappings and sequences load as `MarkedDict` / `MarkedList`: plain dict and list subclasses (so
jsonschema and json.dumps take them as they are) that carry the 1-based (line, column) of the
node, of each key and of each value. Every later error (schema, template, PICS expression,
matcher) can then name `file:line:column`.

Two deliberate departures from PyYAML's defaults, both to catch mistakes early:
- booleans are YAML 1.2 ones (`true`/`false` only): `NO`, `on`, `yes` stay strings;
- a duplicate key is a problem, not a silent overwrite.
Timestamps stay strings (JSON has no date type).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

try:  # libyaml parser and composer: the bulk of the work happens in C
    from yaml import CSafeLoader as _BaseLoader
except ImportError:  # pragma: no cover - pure Python fallback, same behaviour, slower
    from yaml import SafeLoader as _BaseLoader

Mark = tuple[int, int]  # (line, column), both 1-based


@dataclass(frozen=True, order=True)
class Problem:
    """One thing wrong with an input file, printed like a compiler diagnostic."""

    file: str
    line: int
    column: int
    message: str
    schema_path: str = ""

    def __str__(self) -> str:
        where = f" (schema path: {self.schema_path})" if self.schema_path else ""
        return f"{self.file}:{self.line}:{self.column}: {self.message}{where}"


class ModelError(Exception):
    """Raised with every problem found in one input (never only the first)."""

    def __init__(self, problems: list[Problem]):
        self.problems = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


class MarkedDict(dict):
    """A mapping with `.mark` (its own position) and per-key `.key_marks` / `.value_marks`."""

    __slots__ = ("mark", "key_marks", "value_marks")

    def __init__(self, *args, mark: Mark = (0, 0), **kwargs):
        super().__init__(*args, **kwargs)
        self.mark = mark
        self.key_marks: dict[Any, Mark] = {}
        self.value_marks: dict[Any, Mark] = {}

    @property
    def line(self) -> int:
        return self.mark[0]

    @property
    def column(self) -> int:
        return self.mark[1]

    def mark_of(self, key: Any) -> Mark:
        """Position of the value of `key` (of the key itself when the value has no mark)."""
        return self.value_marks.get(key) or self.key_marks.get(key) or self.mark


class MarkedList(list):
    """A sequence with `.mark` and `.item_marks[i]`."""

    __slots__ = ("mark", "item_marks")

    def __init__(self, *args, mark: Mark = (0, 0)):
        super().__init__(*args)
        self.mark = mark
        self.item_marks: list[Mark] = []

    @property
    def line(self) -> int:
        return self.mark[0]

    @property
    def column(self) -> int:
        return self.mark[1]

    def mark_of(self, index: int) -> Mark:
        try:
            return self.item_marks[index]
        except IndexError:
            return self.mark


def mark_of(node: Any, default: Mark = (1, 1)) -> Mark:
    return getattr(node, "mark", None) or default


def _m(node) -> Mark:
    return (node.start_mark.line + 1, node.start_mark.column + 1)


_STR, _MAP, _SEQ = "tag:yaml.org,2002:str", "tag:yaml.org,2002:map", "tag:yaml.org,2002:seq"
_NULL, _BOOL, _MERGE = "tag:yaml.org,2002:null", "tag:yaml.org,2002:bool", "tag:yaml.org,2002:merge"
_TIMESTAMP = "tag:yaml.org,2002:timestamp"


class _MarkLoader(_BaseLoader):
    """libyaml parser and composer; the nodes are turned into data by `_Builder` below."""

    # YAML 1.2 core schema booleans: only true/false (PyYAML's 1.1 resolver also turns
    # yes/no/on/off into booleans, which silently breaks values such as a country code NO).
    yaml_implicit_resolvers = {
        first: [(tag, rx) for tag, rx in resolvers if tag != _BOOL]
        for first, resolvers in _BaseLoader.yaml_implicit_resolvers.items()
    }

    _plain_tags: dict[str, str] = {}  # plain scalar -> tag; keys and values repeat a lot

    def resolve(self, kind, value, implicit):
        # Resolver.resolve without path resolvers (unused here): it runs for every scalar.
        if kind is yaml.ScalarNode:
            if implicit[0]:
                tag = self._plain_tags.get(value)
                if tag is None:
                    tag = _STR
                    for t, regexp in self.yaml_implicit_resolvers.get(value[:1], ()):
                        if regexp.match(value):
                            tag = t
                            break
                    if len(self._plain_tags) < 100_000:
                        self._plain_tags[value] = tag
                return tag
            return _STR
        return _SEQ if kind is yaml.SequenceNode else _MAP


_MarkLoader.add_implicit_resolver(_BOOL, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF"))


class _Builder:
    """Nodes -> MarkedDict / MarkedList / scalars, recording marks and problems.

    A direct walk rather than PyYAML's constructor machinery (generators, per-node bookkeeping):
    loading is most of the time `validate` takes on a large catalog.
    """

    def __init__(self, loader: _MarkLoader):
        self.loader = loader
        self.problems: list[tuple[Mark, str]] = []
        self.seen: dict[int, Any] = {}  # anchors: an alias is the same node object

    def build(self, node) -> Any:
        cls = node.__class__
        if cls is yaml.ScalarNode:
            return node.value if node.tag == _STR else self._scalar(node)
        done = self.seen.get(id(node))
        if done is not None:
            return done
        if cls is yaml.SequenceNode:
            seq = MarkedList(mark=_m(node))
            self.seen[id(node)] = seq
            seq.extend(self.build(child) for child in node.value)
            seq.item_marks = [_m(child) for child in node.value]
            return seq
        data = MarkedDict(mark=_m(node))
        self.seen[id(node)] = data
        if any(k.tag == _MERGE for k, _ in node.value):
            self.loader.flatten_mapping(node)  # YAML merge keys (<<)
        key_marks, value_marks = data.key_marks, data.value_marks
        for key_node, value_node in node.value:
            key = self.build(key_node)
            if not isinstance(key, str):
                self.problems.append((_m(key_node), f"keys must be strings, got {type(key).__name__} {key!r}"))
                key = str(key)
            if key in data:
                self.problems.append((_m(key_node), f"duplicate key '{key}' (first at line {key_marks[key][0]})"))
            data[key] = self.build(value_node)
            key_marks[key] = _m(key_node)
            value_marks[key] = _m(value_node)
        return data

    def _scalar(self, node) -> Any:
        tag = node.tag
        if tag == _NULL:
            return None
        if tag == _BOOL:
            return node.value.lower() == "true"
        if tag == _TIMESTAMP:
            return node.value  # JSON has no date type
        return self.loader.construct_object(node, deep=True)  # int, float, and the other safe tags


# Input limits: a test case or a profile is a few kB. The bounds stop a hostile or broken file
# (an alias bomb: nine anchors of nine aliases each expand to 9**9 nodes) in well under a second,
# before anything walks the expanded data (the schema validator would take hours).
MAX_DOCUMENT_BYTES = 1024 * 1024
MAX_EXPANDED_NODES = 100_000


def _too_big(node) -> tuple[Mark, int] | None:
    """Where the document's expansion first passes MAX_EXPANDED_NODES (counting every alias as
    the copy it stands for), and by how much; None when it stays below. Linear in the nodes."""
    sizes: dict[int, int] = {}
    stack = [(node, False)]
    while stack:
        current, done = stack.pop()
        key = id(current)
        if key in sizes:
            continue
        if isinstance(current, yaml.ScalarNode):
            sizes[key] = 1
            continue
        children = [c for pair in current.value for c in pair] if isinstance(current, yaml.MappingNode) \
            else list(current.value)
        if not done:
            stack.append((current, True))
            stack.extend((c, False) for c in children if id(c) not in sizes)
            continue
        total = 1 + sum(sizes[id(c)] for c in children)
        sizes[key] = total
        if total > MAX_EXPANDED_NODES:
            return _m(current), total
    return None


def loads(text: str | bytes, file: str | Path = "<string>") -> tuple[Any, list[Problem]]:
    """Parse one YAML document. Returns (data, problems); data is None after a syntax error or
    when the document passes the input limits (size, alias expansion)."""
    file = str(file)
    if len(text) > MAX_DOCUMENT_BYTES:
        return None, [Problem(file, 1, 1, f"document of {len(text)} bytes is larger than the "
                                          f"{MAX_DOCUMENT_BYTES} bytes a test case or profile may take")]
    loader = _MarkLoader(text)
    builder = _Builder(loader)
    try:
        node = loader.get_single_node()
        big = None if node is None else _too_big(node)
        if big is not None:
            (line, col), total = big
            return None, [Problem(file, line, col, f"YAML aliases expand this node to {total} nodes or more "
                                                   f"(limit {MAX_EXPANDED_NODES}): an alias bomb?")]
        data = None if node is None else builder.build(node)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        msg = exc.problem or "invalid YAML"
        if exc.context and exc.context_mark and exc.context_mark is not mark:
            msg = f"{msg} ({exc.context} at line {exc.context_mark.line + 1})"
        return None, [Problem(file, line, col, f"YAML syntax: {msg}")]
    except yaml.reader.ReaderError as exc:  # invalid UTF-8 or a control character
        line, col = _position(text, exc.position)
        ch = exc.character if isinstance(exc.character, int) else ord(exc.character)
        what = f"character U+{ch:04X}" if isinstance(text, str) else f"byte 0x{ch:02x}"
        return None, [Problem(file, line, col, f"YAML: {what}: {exc.reason}")]
    except yaml.YAMLError as exc:
        return None, [Problem(file, 1, 1, f"YAML: {exc}")]
    finally:
        loader.dispose()
    problems = [Problem(file, line, col, msg) for (line, col), msg in builder.problems]
    return data, problems


def _position(text: str | bytes, offset: int) -> Mark:
    """1-based line and column of a character (str) or byte (bytes) offset."""
    before = text[:offset]
    nl = "\n" if isinstance(text, str) else b"\n"
    return before.count(nl) + 1, offset - (before.rfind(nl) + 1) + 1


def load_file(path: str | Path) -> tuple[Any, list[Problem]]:
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        return None, [Problem(str(path), 1, 1, f"cannot read: {exc.strerror or exc}")]
    return loads(raw, path)
