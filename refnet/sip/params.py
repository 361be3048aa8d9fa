"""`;name[=value]` parameter lists of URIs and header fields (RFC 3261 19.1.1 uri-parameters,
25.1 generic-param). Names compare case-insensitively and keep the case they were written in;
values are kept exactly as written (a quoted-string keeps its quotes), None for a bare name."""

from __future__ import annotations

import re
from collections.abc import Iterator, MutableMapping

TOKEN = re.compile(r"[A-Za-z0-9\-.!%*_+`'~]+")
# uri-parameter names: paramchar = param-unreserved / unreserved / escaped (RFC 3261 25.1)
URI_PARAM_NAME = re.compile(r"[A-Za-z0-9\-_.!~*'()%\[\]/:&+$]+")


class Params(MutableMapping):
    def __init__(self, items=()):
        self._items: list[tuple[str, str | None]] = []
        for name, value in (items.items() if hasattr(items, "items") else items):
            self[name] = value

    def _index(self, name: str) -> int | None:
        low = name.lower()
        return next((i for i, (n, _) in enumerate(self._items) if n.lower() == low), None)

    def __getitem__(self, name: str) -> str | None:
        i = self._index(name)
        if i is None:
            raise KeyError(name)
        return self._items[i][1]

    def __setitem__(self, name: str, value: str | None) -> None:
        i = self._index(name)
        if i is None:
            self._items.append((name, value))
        else:  # replaced in place: the order a peer wrote stays
            self._items[i] = (self._items[i][0], value)

    def __delitem__(self, name: str) -> None:
        i = self._index(name)
        if i is None:
            raise KeyError(name)
        del self._items[i]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self._index(name) is not None

    def __iter__(self) -> Iterator[str]:
        return iter([n for n, _ in self._items])

    def __len__(self) -> int:
        return len(self._items)

    def copy(self) -> Params:
        return Params(self._items)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Params):
            return NotImplemented
        return sorted((n.lower(), v) for n, v in self._items) == sorted((n.lower(), v) for n, v in other._items)

    def __str__(self) -> str:
        return "".join(f";{n}" if v is None else f";{n}={v}" for n, v in self._items)

    def __repr__(self) -> str:
        return f"Params({self._items!r})"


def split_outside_quotes(text: str, sep: str) -> list[str]:
    """Split at `sep` where it is not inside a quoted-string (backslash escapes honoured) or <...>."""
    parts, start, quoted, angle, i = [], 0, False, False, 0
    while i < len(text):
        c = text[i]
        if quoted:
            if c == "\\":
                i += 1
            elif c == '"':
                quoted = False
        elif c == '"':
            quoted = True
        elif c == "<":
            angle = True
        elif c == ">":
            angle = False
        elif c == sep and not angle:
            parts.append(text[start:i])
            start = i + 1
        i += 1
    if quoted:
        raise ValueError(f"unterminated quoted-string in {text[:80]!r}")
    parts.append(text[start:])
    return parts


def parse_params(text: str, *, value_required: bool = False, names: re.Pattern = TOKEN) -> Params:
    """`text` is empty or starts with ';'. Whitespace around ';' and '=' is linear white space."""
    params = Params()
    text = text.strip(" \t")
    if not text:
        return params
    if not text.startswith(";"):
        raise ValueError(f"parameters must start with ';': {text[:80]!r}")
    for part in split_outside_quotes(text[1:], ";"):
        name, eq, value = part.partition("=")
        name, value = name.strip(" \t"), value.strip(" \t")
        if not names.fullmatch(name):
            raise ValueError(f"parameter name {name!r} is not a token")
        if eq and not value:
            raise ValueError(f"parameter {name} has '=' but no value")
        if value_required and not eq:
            raise ValueError(f"parameter {name} has no value")
        params[name] = value if eq else None
    return params
