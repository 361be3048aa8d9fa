"""What a word of the test-case vocabulary (an action, a subject, a qualifier, an operator) provides.

Every definition gives its name (the YAML key), a one-line doc (the schema's `description`, and
what docs/format.md explains), the JSON Schema fragment of its value, and where its
implementation lives. The implementation is named as "module:attribute" and imported on first
use, so this package stays a leaf that the loader, the schema generator and the engines can all
import without importing each other.
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar


class Definition(Protocol):
    """What the registry needs of any word: the rest of the harness reads only this."""

    name: str
    doc: str

    def schema_fragment(self) -> dict[str, Any]:
        """The JSON Schema of the key's value, with `doc` as its description."""

    def implementation(self) -> Callable[..., Any] | None:
        """The function that does it (None for words the loader handles, e.g. `use`)."""


def load(dotted: str | None) -> Callable[..., Any] | None:
    """"package.module:attribute" -> the attribute (imported now, cached by Python's import system)."""
    if dotted is None:
        return None
    module, _, attribute = dotted.partition(":")
    return getattr(importlib.import_module(module), attribute)


@dataclass(frozen=True)
class Word:
    """The common part of every definition; the kinds add what only they need."""

    name: str
    doc: str
    schema: dict[str, Any]  # the value's schema without `description` (added from `doc`)
    implemented_by: str | None = None  # "module:attribute"

    def schema_fragment(self) -> dict[str, Any]:
        # the layout of the hand-written schema: a `$ref` before its description, constraints after it
        if "$ref" in self.schema:
            return {**self.schema, "description": self.doc}
        return {"description": self.doc, **self.schema}

    def implementation(self) -> Callable[..., Any] | None:
        return load(self.implemented_by)


D = TypeVar("D", bound=Word)


class Registry(Generic[D]):
    """Definitions of one kind, in the order they are declared (the order messages list them)."""

    def __init__(self, kind: str, definitions: list[D]):
        self.kind = kind
        self._by_name: dict[str, D] = {}
        for d in definitions:
            if d.name in self._by_name:
                raise ValueError(f"{kind} {d.name!r} is defined twice")
            self._by_name[d.name] = d

    def names(self) -> tuple[str, ...]:
        return tuple(self._by_name)

    def __getitem__(self, name: str) -> D:
        try:
            return self._by_name[name]
        except KeyError:
            close = difflib.get_close_matches(str(name), self._by_name, n=1, cutoff=0.6)
            hint = f"; did you mean {close[0]}?" if close else ""
            raise KeyError(f"unknown {self.kind} {name!r}{hint}") from None

    def __contains__(self, name: object) -> bool:
        return name in self._by_name

    def __iter__(self) -> Iterator[D]:
        return iter(self._by_name.values())

    def __len__(self) -> int:
        return len(self._by_name)

    def where(self, **flags: Any) -> tuple[str, ...]:
        """Names of the definitions whose attributes have these values, e.g. where(sip=True)."""
        return tuple(d.name for d in self if all(getattr(d, k) == v for k, v in flags.items()))
