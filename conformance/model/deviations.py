"""Expected deviations: known, documented failures of the implementation under test.

A profile names a YAML file (relative to the profile) or lists them inline:

    - id: TP_WSF_REG_007
      reason: token revocation is not propagated to the WSF before 2.4
      verdict: fail            # fail | inconclusive: the verdict it is expected to get
      ticket: ACME-1234        # optional

A listed test case that gets that verdict is reported xfail with the reason; one that passes is
XPASS(strict), so the list cannot silently go stale.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from conformance.model import schema
from conformance.model.yaml_marks import MarkedList, ModelError, Problem, load_file, mark_of


class DeviationsError(ModelError):
    pass


@dataclass(frozen=True)
class Deviation:
    id: str
    reason: str
    verdict: str  # fail | inconclusive
    ticket: str | None
    file: str
    line: int

    def __getitem__(self, key: str):
        """deviation["reason"] as well as deviation.reason (callers that treat it as a mapping)."""
        if key not in ("id", "reason", "verdict", "ticket", "file", "line"):
            raise KeyError(key)
        return getattr(self, key)

    def get(self, key: str, default=None):
        try:
            return self[key]
        except KeyError:
            return default


def parse_deviations(items: Any, file: str) -> tuple[list[Deviation], list[Problem]]:
    """Deviations from a loaded (marked) list; problems name file:line."""
    if items is None:  # an empty file: no deviations
        return [], []
    problems = schema.validate(items, "profile", file, pointer="/$defs/deviations")
    if problems or not isinstance(items, list):
        return [], problems
    out: list[Deviation] = []
    first: dict[str, int] = {}
    for i, item in enumerate(items):
        line, col = items.mark_of(i) if isinstance(items, MarkedList) else mark_of(item)
        if item["id"] in first:
            problems.append(Problem(file, line, col, f"{item['id']} is listed twice (first at line {first[item['id']]})"))
            continue
        first[item["id"]] = line
        out.append(Deviation(item["id"], item["reason"], item["verdict"], item.get("ticket"), file, line))
    return out, problems


def load_deviations(path: str | Path) -> list[Deviation]:
    """Read a deviations file; raises DeviationsError with every problem."""
    doc, problems = load_file(path)
    if not problems:
        found, problems = parse_deviations(doc, str(path))
        if not problems:
            return found
    raise DeviationsError(problems)


def unknown_ids(deviations: Iterable[Deviation], known_ids: Iterable[str]) -> list[Problem]:
    """Deviations naming no test case of the catalog (a typo, or a removed test case)."""
    known = set(known_ids)
    return [Problem(d.file, d.line, 1, f"expected deviation for unknown test case {d.id}")
            for d in deviations if d.id not in known]


def by_id(deviations: Iterable[Deviation]) -> dict[str, Deviation]:
    return {d.id: d for d in deviations}
