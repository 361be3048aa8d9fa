"""The catalog: every test case under testcases/ (fragments/ excluded), loaded and cross-checked.

`validate_catalog(root)` is what `ims-conformance validate` prints: per-file problems (YAML,
schema, PICS, fragments, templates), every fragment file (used or not), and the catalog-wide
rules: unique ids, a test case lives in the directory of its `sut`.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

from conformance.model.catalog_layout import FRAGMENTS, NODE_DIRS, catalog_dir  # noqa: F401 - re-exported
from conformance.model.testcase import FragmentLibrary, TestCase, check_testcase
from conformance.model.yaml_marks import Problem


def discover(root: str | Path) -> list[Path]:
    """Every test case file: <catalog>/**/*.yaml except <catalog>/fragments/, sorted."""
    base = catalog_dir(root)
    frag = base / FRAGMENTS
    return sorted(p for p in base.rglob("*.yaml") if p.is_file() and frag not in p.parents)


class Catalog(NamedTuple):
    """`cases, problems = load_catalog(root)` or `catalog.testcases` / `catalog.problems`."""

    testcases: list[TestCase]
    problems: list[Problem]

    def by_id(self) -> dict[str, TestCase]:
        return {tc.id: tc for tc in self.testcases}


def load_catalog(root: str | Path) -> Catalog:
    """Load every test case; the valid ones are in `.testcases`, everything wrong in `.problems`."""
    base = catalog_dir(root)
    library = FragmentLibrary(base / FRAGMENTS)
    problems: list[Problem] = []
    for frag in library.all():  # also the ones no test case uses
        problems.extend(frag.problems)
    testcases: list[TestCase] = []
    first_id: dict[str, tuple[str, int]] = {}
    for path in discover(base):
        tc, found = check_testcase(path, library=library)
        problems.extend(found)
        if tc is None:
            continue
        _check_location(tc, path, base, problems)
        if tc.id in first_id:
            where = first_id[tc.id]
            line, col = tc.raw.mark_of("id")
            problems.append(Problem(tc.file, line, col, f"duplicate id {tc.id} (first in {where[0]}:{where[1]})"))
            continue
        first_id[tc.id] = (tc.file, tc.raw.mark_of("id")[0])
        testcases.append(tc)
    unique = list(dict.fromkeys(problems))  # a fragment's problem once, however many cases use it
    return Catalog(testcases, unique)


def _check_location(tc: TestCase, path: Path, base: Path, problems: list[Problem]) -> None:
    try:
        top = path.relative_to(base).parts[0]  # discover() yields paths under base
    except (ValueError, IndexError):
        return
    if top in NODE_DIRS and top != tc.sut:
        line, col = tc.raw.mark_of("sut")
        problems.append(Problem(tc.file, line, col, f"sut is {tc.sut} but the file is in {top}/ "
                                                    f"(test cases live in testcases/<sut>/)"))


def validate_catalog(root: str | Path) -> list[Problem]:
    """Every problem of the catalog, in file order; empty when everything is valid."""
    return load_catalog(root).problems
