"""ims-conformance: run the catalog against a profile, validate it, list it, render the report,
run the embedded reference network, analyze a capture.

Exit codes: 0 every test case passed or was not applicable; 1 a test case failed or was
inconclusive; 2 an error (harness, test case, profile) or bad usage.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from conformance.run import verdict_files
from conformance.run.verdict_files import EXIT_ERROR, EXIT_OK, exit_code
from conformance.run.verdict_files import read as _verdicts

REPO = Path(__file__).resolve().parents[1]


def default_catalog() -> Path:
    here = Path.cwd() / "testcases"
    return here if here.is_dir() else REPO / "testcases"


def _die(message: str) -> int:
    print(f"ims-conformance: error: {message}", file=sys.stderr)
    return EXIT_ERROR


def _load_profile(path: str):
    from conformance.model.profile import ProfileError, load_profile

    try:
        return load_profile(path)
    except ProfileError as exc:
        print(str(exc), file=sys.stderr)
        return None


# -- validate ----------------------------------------------------------------------------------------
def cmd_validate(args) -> int:
    from conformance.model.catalog import validate_catalog

    problems = validate_catalog(Path(args.catalog))
    for p in problems:
        print(p)
    if args.profile and _load_profile(args.profile) is None:
        return EXIT_ERROR
    if problems:
        print(f"{len(problems)} problem(s) in {args.catalog}", file=sys.stderr)
        return EXIT_ERROR
    from conformance.model.catalog import discover

    print(f"{len(discover(Path(args.catalog)))} test cases valid in {args.catalog}")
    return EXIT_OK


# -- list --------------------------------------------------------------------------------------------
def cmd_list(args) -> int:
    from conformance.model.catalog import load_catalog

    cases, problems = load_catalog(Path(args.catalog))
    for p in problems:
        print(p, file=sys.stderr)
    profile = _load_profile(args.profile) if args.profile else None
    if args.profile and profile is None:
        return EXIT_ERROR
    rows = []
    covered: set[int] = set()
    for tc in sorted(cases, key=lambda c: c.id):
        if args.sut and tc.sut not in args.sut:
            continue
        if args.kind and tc.kind != args.kind:
            continue
        applicable = "-"
        if profile is not None:
            applicable = "yes" if tc.pics is None or tc.pics.evaluate(profile.pics) else "n/a"
        covered |= set(tc.flow_steps)
        rows.append((tc.id, tc.sut, tc.kind, ",".join(map(str, sorted(tc.flow_steps))) or "-",
                     applicable, "; ".join(tc.refs)))
    if args.json:
        print(json.dumps([dict(zip(("id", "sut", "kind", "flow", "applicable", "refs"), r)) for r in rows], indent=2))
    else:
        widths = [max(len(str(r[i])) for r in rows + [("id", "node", "kind", "steps", "applicable", "")])
                  for i in range(5)]
        head = ("id", "node", "kind", "steps", "applicable", "refs")
        for r in [head, *rows]:
            print("  ".join(str(c).ljust(w) for c, w in zip(r[:5], widths)) + "  " + r[5])
        negatives = sum(1 for r in rows if r[2] == "negative")
        missing = sorted(set(range(1, 23)) - covered)
        print(f"\n{len(rows)} test cases ({negatives} negative); flow steps covered: "
              f"{len(covered & set(range(1, 23)))}/22" + (f", missing {missing}" if missing else ""))
    return EXIT_ERROR if problems else EXIT_OK


# -- run ---------------------------------------------------------------------------------------------
def cmd_run(args) -> int:
    import pytest

    profile = _load_profile(args.profile)
    if profile is None:
        return EXIT_ERROR
    workdir = Path(args.workdir)
    verdict_files.clear(workdir)
    argv = [str(args.catalog), "--profile", args.profile, "--alluredir", args.alluredir, "--clean-alluredir",
            "--ims-workdir", str(workdir), "-p", "no:cacheprovider", "-q", "-rfEsx",
            # the CLI imported conformance before pytest loads it as a plugin: nothing to rewrite
            "-W", "ignore::pytest.PytestAssertRewriteWarning"]
    if args.k:
        argv += ["-k", args.k]
    for node in args.sut or []:
        argv += ["--sut", node]
    if args.n:
        argv += ["-n", str(args.n)]
    if args.no_capture:
        argv += ["--no-capture-legs"]
    argv += args.pytest_args
    rc = pytest.main(argv)
    results = _verdicts(workdir)
    counts: dict[str, int] = {}
    for r in results:
        key = f"{r['verdict']} (expected deviation)" if r.get("expected_deviation") else r["verdict"]
        counts[key] = counts.get(key, 0) + 1
    print("verdicts: " + (", ".join(f"{k}: {v}" for k, v in sorted(counts.items())) or "none"))
    return exit_code(int(rc), results)


# -- report ------------------------------------------------------------------------------------------
def build_statement(workdir: Path, catalog: Path, alluredir: Path) -> dict | None:
    """The ICS-style requirements matrix of the last run, attached to its Allure results
    (None when nothing ran)."""
    from conformance.model.catalog import load_catalog
    from conformance.model.pics import KNOWN_PICS
    from conformance.report import ics

    files = sorted(workdir.glob("verdicts-*.json"))
    if not files:
        return None
    pics = json.loads(files[0].read_text()).get("pics", {})
    cases, _ = load_catalog(catalog)
    doc = ics.build(cases, _verdicts(workdir), pics, KNOWN_PICS)
    ics.attach_to_allure(doc, alluredir)
    return doc


def cmd_report(args) -> int:
    from conformance.report import ics, render

    statement = build_statement(Path(args.workdir), Path(args.catalog), Path(args.alluredir))
    try:
        out = render.render_html(Path(args.alluredir), Path(args.output), workdir=Path(args.workdir))
    except render.RenderError as exc:
        return _die(str(exc))
    print(f"report: {out}")
    if statement is not None:  # after rendering: allure generate empties its output directory
        _, page = ics.write(statement, Path(args.output))
        print(f"conformance statement: {page} (and {page.with_suffix('.json')})")
    return EXIT_OK


def cmd_demo(args) -> int:
    rc = cmd_run(args)
    rrc = cmd_report(args)
    return rc if rrc == EXIT_OK else rrc


# -- reference network -------------------------------------------------------------------------------
def cmd_reference(args) -> int:
    import os

    cmd = [sys.executable, "-m", "refnet", *args.refnet_args]
    return subprocess.call(cmd, env={**os.environ, "REFNET_PROG": "ims-conformance reference"})


# -- analyze -----------------------------------------------------------------------------------------
def cmd_analyze(args) -> int:
    from conformance.run.analyze import analyze

    profile = _load_profile(args.profile)
    if profile is None:
        return EXIT_ERROR
    return analyze(Path(args.capture), profile, keylogs=[Path(k) for k in args.keylog], case_ids=args.case,
                   catalog=Path(args.catalog), alluredir=Path(args.alluredir), workdir=Path(args.workdir),
                   user=args.user)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="ims-conformance", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True)

    def run_args(sp):
        sp.add_argument("--profile", required=True, help="profile YAML (PIXIT + PICS)")
        sp.add_argument("-k", help="pytest -k expression (ids, node names, positive/negative, tags)")
        sp.add_argument("--sut", action="append", help="only test cases of this node (repeatable)")
        sp.add_argument("--alluredir", default="allure-results")
        sp.add_argument("--catalog", default=str(default_catalog()))
        sp.add_argument("--workdir", default=".ims-conformance")
        sp.add_argument("-n", help="parallel workers (pytest-xdist)")
        sp.add_argument("--no-capture", action="store_true", help="do not capture the SUT's legs")
        sp.add_argument("--output", default="allure-report", help="(demo) where the HTML report goes")
        sp.add_argument("pytest_args", nargs="*", help="extra pytest arguments (after --)")

    sp = sub.add_parser("run", help="run the catalog against a profile")
    run_args(sp)
    sp.set_defaults(func=cmd_run)
    sp = sub.add_parser("demo", help="run the catalog and render the HTML report")
    run_args(sp)
    sp.set_defaults(func=cmd_demo)

    sp = sub.add_parser("validate", help="check every test case (and optionally a profile)")
    sp.add_argument("catalog", nargs="?", default=str(default_catalog()))
    sp.add_argument("--profile")
    sp.set_defaults(func=cmd_validate)

    sp = sub.add_parser("list", help="list test cases with node, steps, refs and applicability")
    sp.add_argument("--catalog", default=str(default_catalog()))
    sp.add_argument("--profile")
    sp.add_argument("--sut", action="append")
    sp.add_argument("--kind", choices=("positive", "negative"))
    sp.add_argument("--json", action="store_true")
    sp.set_defaults(func=cmd_list)

    sp = sub.add_parser("report", help="render allure-results as a single-file HTML report (Allure 3)")
    sp.add_argument("--alluredir", default="allure-results")
    sp.add_argument("--output", default="allure-report")
    sp.add_argument("--workdir", default=".ims-conformance")
    sp.add_argument("--catalog", default=str(default_catalog()))
    sp.set_defaults(func=cmd_report)

    sp = sub.add_parser("reference", help="the embedded reference network (up, faults, variations)")
    sp.add_argument("refnet_args", nargs=argparse.REMAINDER, help="up [options] | faults | variations")
    sp.set_defaults(func=cmd_reference)

    sp = sub.add_parser("analyze", help="run the catalog's capture assertions on a recorded capture")
    sp.add_argument("capture")
    sp.add_argument("--profile", required=True)
    sp.add_argument("--keylog", action="append", default=[])
    sp.add_argument("--case", action="append", default=[])
    sp.add_argument("--catalog", default=str(default_catalog()))
    sp.add_argument("--alluredir", default="allure-results")
    sp.add_argument("--workdir", default=".ims-conformance")
    sp.add_argument("--user", help="fixture identity (profile users.fixtures) the capture shows")
    sp.set_defaults(func=cmd_analyze)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse exits 2 on bad usage, 0 on --help
        return int(exc.code or 0)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())

