"""The verdicts a run leaves in its work directory (one `verdicts-<worker>.json` per pytest
process), and the exit code they mean: 0 every test case passed or was not applicable; 1 one
failed or was inconclusive; 2 an error (harness, test case, profile) or bad usage."""

from __future__ import annotations

import json
from pathlib import Path

EXIT_OK, EXIT_FAIL, EXIT_ERROR = 0, 1, 2
PYTEST_NO_TESTS = 5  # pytest.ExitCode.NO_TESTS_COLLECTED
RESULTS_SUBDIR = "ims-conformance"  # inside an Allure results directory: the verdicts of that run


def clear(workdir: Path) -> None:
    workdir.mkdir(parents=True, exist_ok=True)
    for old in workdir.glob("verdicts-*.json"):
        old.unlink()


def dumps(doc: dict) -> str:
    """A verdict file's text: `doc` (profile, pics, results) with one result per line.

    Why not json.dumps(doc, indent=2): with an indent the json module encodes in Python, not in
    its C encoder, and a worker's results are about a megabyte of nested findings and evidence
    (200 cases): measured under -n 2, writing them took 0.1-0.2 s of the end of a run, twice
    (the work directory and the Allure results). Each result on a line of its own still reads
    (and diffs) case by case."""
    if not isinstance(doc.get("results"), list):
        return json.dumps(doc, indent=2) + "\n"
    head = json.dumps({k: v for k, v in doc.items() if k != "results"}, indent=2)[:-1].rstrip()  # no closing brace
    results = doc.get("results", [])
    lines = ",\n".join("    " + json.dumps(r) for r in results)
    return (head + (",\n" if head != "{" else "\n") + '  "results": ['
            + (f"\n{lines}\n  ]" if results else "]") + "\n}\n")


def read(workdir: Path) -> list[dict]:
    out = []
    for f in sorted(workdir.glob("verdicts-*.json")):
        out += json.loads(f.read_text())["results"]
    return out


def read_with_pics(folder: Path) -> tuple[list[dict], dict]:
    """The results and the profile's PICS answers of the verdict files in `folder`."""
    results, pics = [], {}
    for f in sorted(folder.glob("verdicts-*.json")):
        doc = json.loads(f.read_text())
        results += doc["results"]
        pics = pics or doc.get("pics", {})
    return results, pics


def exit_code(pytest_rc: int, results: list[dict]) -> int:
    if pytest_rc in (2, 3, 4, PYTEST_NO_TESTS):  # interrupted, internal error, usage error, nothing selected
        return EXIT_ERROR
    verdicts = {r["verdict"] for r in results if not r.get("expected_deviation")}
    if "error" in verdicts:
        return EXIT_ERROR
    if verdicts & {"fail", "inconclusive"} or pytest_rc == 1:
        return EXIT_FAIL
    return EXIT_OK
