"""ims-conformance: run the catalog against a profile, validate it, list it, render the report,
run the embedded reference network, analyze a capture.

Exit codes: 0 every test case passed or was not applicable; 1 a test case failed or was
inconclusive; 2 an error (harness, test case, profile) or bad usage.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import subprocess
import sys
from pathlib import Path

from conformance.run import start_up_gc, verdict_files
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


def _profile_ok(profile) -> bool:
    """The profile loaded and every file it names is there (file:line of each missing one)."""
    if profile is None:
        return False
    from conformance.model.profile_files import check_files

    missing = check_files(profile)
    for p in missing:
        print(p, file=sys.stderr)
    return not missing


# -- validate ----------------------------------------------------------------------------------------
def _existing(path: str, what: str) -> Path | None:
    p = Path(path)
    if not p.exists():
        _die(f"{what} {path}: no such file or directory")
        return None
    return p


def cmd_validate(args) -> int:
    from conformance.model.catalog import discover, validate_catalog
    from conformance.model.testcase import check_testcase

    target = _existing(args.catalog, "catalog")
    if target is None:
        return EXIT_ERROR
    if target.is_file():  # one test case, wherever it lives (fragments: the nearest fragments/ above it)
        _, problems = check_testcase(target)
        count = 1
    else:
        problems = validate_catalog(target)
        count = len(discover(target))
    for p in problems:
        print(p)
    if args.profile and not _profile_ok(_load_profile(args.profile)):
        return EXIT_ERROR
    if problems:
        print(f"{len(problems)} problem(s) in {args.catalog}", file=sys.stderr)
        return EXIT_ERROR
    if count == 0:
        return _die(f"no test case (*.yaml outside fragments/) in {args.catalog}")
    print(f"{count} test case{'s' if count != 1 else ''} valid in {args.catalog}")
    return EXIT_OK


# -- list --------------------------------------------------------------------------------------------
def cmd_list(args) -> int:
    from conformance.model.catalog import load_catalog
    from conformance.model.phase import phase_of

    if _existing(args.catalog, "catalog") is None:
        return EXIT_ERROR
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
            applicable = "yes" if tc.applicable(profile.pics, profile.pixit) else "n/a"
        covered |= set(tc.flow_steps)
        rows.append((tc.id, tc.sut, tc.kind, ",".join(map(str, sorted(tc.flow_steps))) or "-",
                     applicable, phase_of(tc.refs, tc.flow_steps), "; ".join(tc.refs)))
    if not rows:
        return _die("no test case matches the selection"
                    + (f" (--sut {', '.join(args.sut)})" if args.sut else "")
                    + (f" (--kind {args.kind})" if args.kind else ""))
    keys = ("id", "sut", "kind", "flow", "applicable", "phase", "refs")
    if args.json:
        print(json.dumps([dict(zip(keys, r)) for r in rows], indent=2))
    else:
        head = ("id", "node", "kind", "steps", "applicable", "phase", "refs")
        widths = [max(len(str(r[i])) for r in [*rows, head]) for i in range(6)]
        for r in [head, *rows]:
            print("  ".join(str(c).ljust(w) for c, w in zip(r[:6], widths)) + "  " + r[6])
        negatives = sum(1 for r in rows if r[2] == "negative")
        missing = sorted(set(range(1, 23)) - covered)
        print(f"\n{len(rows)} test cases ({negatives} negative); flow steps covered: "
              f"{len(covered & set(range(1, 23)))}/22" + (f", missing {missing}" if missing else ""))
    return EXIT_ERROR if problems else EXIT_OK


# -- run ---------------------------------------------------------------------------------------------
def _writable_dir(path: str, option: str) -> Path | None:
    """A directory the run may write into (created if missing); None after a message if not."""
    p = Path(path)
    if p.exists() and not p.is_dir():
        _die(f"{option} {path}: exists and is not a directory")
        return None
    try:
        p.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        _die(f"{option} {path}: cannot create it ({exc.strerror})")
        return None
    return p


def cmd_run(args) -> int:
    # a run starts up without the cyclic collector (conformance.run.start_up_gc): the plugin turns
    # it back on where the test loop begins, and this at the latest when the run ends
    start_up_gc.pause()
    try:
        return _run(args)
    finally:
        start_up_gc.resume()


def _run(args) -> int:
    catalog = _existing(args.catalog, "--catalog")
    if catalog is None:
        return EXIT_ERROR
    workdir = _writable_dir(args.workdir, "--workdir")
    alluredir = _writable_dir(args.alluredir, "--alluredir")
    if workdir is None or alluredir is None:
        return EXIT_ERROR
    zygote = None
    if args.n:
        # the workers' fork server imports what they need while the profile is loaded and the
        # catalog validated: started first, as its imports are what the workers wait for
        from conformance.run.worker_zygote import WorkerZygote

        try:
            zygote = WorkerZygote(workdir / "worker-zygote.log", str(workdir.resolve()))
        except OSError:  # no socket or no process for it: the workers start as new interpreters
            zygote = None
    try:
        return _run_with_profile(args, catalog, workdir, alluredir, zygote)
    finally:
        if zygote is not None:
            zygote.stop()


def _run_with_profile(args, catalog: Path, workdir: Path, alluredir: Path, zygote) -> int:
    profile = _load_profile(args.profile)
    if not _profile_ok(profile):
        return EXIT_ERROR
    from conformance.run import session_setup

    # the reference network(s) the profile launches come up while the catalog is validated; the
    # plugin takes them over, and whatever it does not take is stopped when the run ends
    session_setup.start_early(profile, args.n, workdir)
    try:
        return _run_validated(args, catalog, workdir, alluredir, zygote.python_spec() if zygote else None)
    finally:
        session_setup.stop_untaken()


def _run_validated(args, catalog: Path, workdir: Path, alluredir: Path, worker_python: str | None = None) -> int:
    import pytest

    from conformance.model.catalog_layout import catalog_dir
    from conformance.run import catalog_cache, parsed_catalog
    from conformance.run.console import CaseLines, summary_table

    # every rule `validate` applies (unique ids, folders, regexes, ...) holds before anything is sent
    handover = None  # the validated TestCases in a file, for whichever process collects
    parsed_catalog.remove_old(workdir)  # a run's own hand-over left by one that was killed
    if catalog.is_file():
        from conformance.model.testcase import check_testcase

        problems = check_testcase(catalog)[1]
    else:
        # loaded under the absolute paths pytest collects, so collection takes these TestCases
        # instead of parsing every file again (conformance.run.parsed_catalog), and kept for the
        # next run of the same catalog and harness (conformance.run.catalog_cache); problems are
        # reported with the paths as the user gave them
        root = catalog_dir(Path(os.path.abspath(catalog)))
        digest = catalog_cache.key(root)
        handover = catalog_cache.lookup(workdir, digest) if digest else None
        problems = []
        if handover is None:
            from conformance.model.catalog import FRAGMENTS, load_catalog, validate_catalog

            loaded = load_catalog(root)
            problems = validate_catalog(catalog) if loaded.problems else []
            if not problems:
                parsed_catalog.keep(loaded.testcases, root / FRAGMENTS)
                if digest:
                    handover = catalog_cache.store(workdir, digest, parsed_catalog.document())
                elif args.n:  # too big to key: the workers get this run's catalog all the same
                    handover = parsed_catalog.save(workdir)
    if problems:
        for p in problems:
            print(p, file=sys.stderr)
        return _die(f"{len(problems)} problem(s) in {args.catalog}; nothing was sent (see `validate`)")
    verdict_files.clear(workdir)
    argv = [str(catalog), "--ims-catalog", str(catalog), "--profile", args.profile, "--alluredir", str(alluredir),
            "--clean-alluredir", "--ims-workdir", str(workdir), "-p", "no:cacheprovider", "-q", "-rfEx",
            "--no-header", "-o", "console_output_style=classic",
            # the CLI imported conformance before pytest loads it as a plugin: nothing to rewrite
            "-W", "ignore::pytest.PytestAssertRewriteWarning"]
    # YAML test cases have no assert statements to rewrite, and the project's own dev plugins
    # (hypothesis) have nothing to do in a catalog run: both only cost start-up time per worker.
    # pytest's unraisableexception plugin runs a full garbage collection when each process ends
    # (0.6 s per xdist worker measured at load 5, a worker holding a whole catalog's objects) to
    # turn exceptions raised in __del__ into warnings: a warning about a harness object's
    # finalizer judges nothing in a catalog run (a harness error is an `error` verdict already)
    argv += ["--assert=plain", "-p", "no:hypothesispytest", "-p", "no:unraisableexception"]
    if args.k:
        argv += ["-k", args.k]
    for node in args.sut or []:
        argv += ["--sut", node]
    if handover is not None:  # collection (each -n worker's) takes the validated catalog instead of parsing it
        argv += [parsed_catalog.OPTION, str(handover.resolve())]
    if args.n:
        # xdist makes the workers' temporary directories under pytest's numbered base directory,
        # and the controller's session end then prunes the old numbered ones under the system's
        # temp dir (other pytest runs' too; about 1 s at the end of a run on a busy machine): a
        # base directory of the run's own is only emptied at the start
        argv += ["-n", str(args.n), "--basetemp", str(workdir.resolve() / "pytest-tmp")]
        if worker_python:
            argv += ["--ims-worker-zygote", worker_python]
    if args.no_capture:
        argv += ["--no-capture-legs"]
    if args.strict:
        argv += ["--ims-strict"]
    if args.junitxml:
        argv += [f"--junitxml={args.junitxml}", "-o", "junit_family=xunit2"]
    argv += args.pytest_args
    rc = pytest.main(argv, plugins=[CaseLines()])
    parsed_catalog.remove_old(workdir)
    results = _verdicts(workdir)
    if int(rc) == verdict_files.PYTEST_NO_TESTS or (int(rc) == 0 and not results):
        what = [f"-k {args.k!r}"] if args.k else []
        what += [f"--sut {n}" for n in args.sut or []]
        return _die(f"no test case selected in {catalog}" + (f" by {' '.join(what)}" if what else ""))
    counts: dict[str, int] = {}
    for r in results:
        key = f"{r['verdict']} (expected deviation)" if r.get("expected_deviation") else r["verdict"]
        counts[key] = counts.get(key, 0) + 1
    for r in results:  # a warning passes, so pytest's summary would not name it
        if r["verdict"] == "pass with warnings":
            print(f"PASS WITH WARNINGS {r['id']}: " + "; ".join(r.get("findings") or []))
    print()
    print(summary_table(results))
    print("verdicts: " + (", ".join(f"{k}: {v}" for k, v in sorted(counts.items())) or "none"))
    return exit_code(int(rc), results)


# -- report ------------------------------------------------------------------------------------------
def build_statement(alluredir: Path, catalog: Path, workdir: Path | None = None) -> dict | None:
    """The conformance statement of the run whose Allure results are in `alluredir` (its verdicts
    travel inside it); None when that run left no verdicts."""
    from conformance.model.catalog import load_catalog
    from conformance.model.pics import KNOWN_PICS
    from conformance.report import ics

    results, pics = verdict_files.read_with_pics(alluredir / verdict_files.RESULTS_SUBDIR)
    if not results:
        return None
    cases, _ = load_catalog(catalog)
    return ics.build(cases, results, pics, KNOWN_PICS, allure_results=alluredir)


def cmd_report(args) -> int:
    from conformance.report import ics, render

    alluredir = Path(args.alluredir)
    if not alluredir.is_dir():
        return _die(f"--alluredir {args.alluredir}: no such directory (run `ims-conformance run` first)")
    if not any(alluredir.glob("*-result.json")):
        return _die(f"--alluredir {args.alluredir}: no Allure results in it (run `ims-conformance run` first)")
    output = _writable_dir(args.output, "--output")
    if output is None or _existing(args.catalog, "--catalog") is None:
        return EXIT_ERROR
    statement = build_statement(alluredir, Path(args.catalog))
    try:
        out = render.render_html(alluredir, output, workdir=Path(args.workdir))
    except render.RenderError as exc:
        return _die(str(exc))
    print(f"report: {out}")
    if statement is not None:  # after rendering: allure generate empties its output directory
        _, page = ics.write(statement, output)
        print(f"conformance statement: {page} (and {page.with_suffix('.json')})")
    return EXIT_OK


def cmd_demo(args) -> int:
    rc = cmd_run(args)
    rrc = cmd_report(args)
    return rc if rrc == EXIT_OK else rrc


# -- reference network -------------------------------------------------------------------------------
def cmd_reference(args) -> int:
    import os
    import signal

    cmd = [sys.executable, "-m", "refnet", *args.refnet_args]
    child = subprocess.Popen(cmd, env={**os.environ, "REFNET_PROG": "ims-conformance reference"})

    # SIGTERM, SIGHUP and Ctrl-C stop the network as Ctrl-C does: passed to refnet, which stops
    # every node it started, then waited for; no traceback, no process left behind.
    def forward(signum, _frame):
        if child.poll() is None:
            child.send_signal(signal.SIGINT if signum == signal.SIGINT else signal.SIGTERM)

    previous = {s: signal.signal(s, forward) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    try:
        while True:
            try:
                return child.wait()
            except KeyboardInterrupt:  # a second Ctrl-C while refnet stops: keep waiting for it
                continue
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


# -- analyze -----------------------------------------------------------------------------------------
def cmd_analyze(args) -> int:
    from conformance.run.analyze import analyze

    catalog = _existing(args.catalog, "--catalog")
    if catalog is None:
        return EXIT_ERROR
    profile = _load_profile(args.profile)
    if profile is None:
        return EXIT_ERROR
    workdir = _writable_dir(args.workdir, "--workdir")
    alluredir = _writable_dir(args.alluredir, "--alluredir")
    if workdir is None or alluredir is None:
        return EXIT_ERROR
    return analyze(Path(args.capture), profile, keylogs=[Path(k) for k in args.keylog], case_ids=args.case,
                   catalog=catalog, alluredir=alluredir, workdir=workdir, user=args.user)


def _nodes() -> tuple[str, ...]:
    from conformance.model.catalog_layout import NODE_DIRS  # not the catalog's loader: see that module

    return NODE_DIRS


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="ims-conformance", description=__doc__.split("\n\n")[0],
                                epilog="Exit codes: 0 every test case passed or was not applicable; 1 a test case "
                                       "failed or was inconclusive; 2 an error or bad usage (also: nothing selected).")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    nodes = _nodes()

    def run_args(sp):
        sp.add_argument("--profile", required=True, help="profile YAML of the system under test (PIXIT + PICS)")
        sp.add_argument("-k", metavar="EXPR",
                        help="pytest -k expression over ids, node names, positive/negative, tags, 'capture'")
        sp.add_argument("--sut", action="append", choices=nodes, metavar="NODE",
                        help=f"only test cases of this node under test (repeatable; one of {', '.join(nodes)})")
        sp.add_argument("--alluredir", default="allure-results",
                        help="where the Allure results (and this run's verdicts) go (default: %(default)s)")
        sp.add_argument("--catalog", default=str(default_catalog()),
                        help="catalog directory or one test case file, whatever its folder is called "
                             "(default: ./testcases or the shipped catalog)")
        sp.add_argument("--workdir", default=".ims-conformance",
                        help="work directory: verdict files, key logs, captures, diagrams, the validated catalog "
                             "kept for the next run (default: %(default)s)")
        sp.add_argument("-n", metavar="N", help="parallel workers (pytest-xdist)")
        sp.add_argument("--no-capture", action="store_true", help="do not capture the SUT's legs")
        sp.add_argument("--strict", action="store_true",
                        help="a violated SHOULD fails the test case (default: pass with warnings, exit 0)")
        sp.add_argument("--junitxml", metavar="FILE",
                        help="also write JUnit XML for CI; each test case carries its requirement references "
                             "as <property name=\"ref\"> and its verdict as ims_verdict")
        sp.add_argument("--output", default="allure-report", help="(demo) where the HTML report goes")
        sp.add_argument("pytest_args", nargs="*", help="extra pytest arguments (after --)")

    sp = sub.add_parser("run", help="run the catalog against a profile")
    run_args(sp)
    sp.set_defaults(func=cmd_run)
    sp = sub.add_parser("demo", help="run the catalog and render the HTML report")
    run_args(sp)
    sp.set_defaults(func=cmd_demo)

    sp = sub.add_parser("validate", help="check every test case (and optionally a profile)")
    sp.add_argument("catalog", nargs="?", default=str(default_catalog()),
                    help="catalog directory or one test case file (default: ./testcases or the shipped catalog)")
    sp.add_argument("--profile", help="also check this profile")
    sp.set_defaults(func=cmd_validate)

    sp = sub.add_parser("list", help="list test cases with node, steps, refs and applicability")
    sp.add_argument("--catalog", default=str(default_catalog()), help="catalog directory (default: %(default)s)")
    sp.add_argument("--profile", help="say for each test case whether it applies to this profile (PICS)")
    sp.add_argument("--sut", action="append", choices=nodes, metavar="NODE",
                    help=f"only this node under test (repeatable; one of {', '.join(nodes)})")
    sp.add_argument("--kind", choices=("positive", "negative"), help="only positive or only negative test cases")
    sp.add_argument("--json", action="store_true", help="print JSON instead of a table")
    sp.set_defaults(func=cmd_list)

    sp = sub.add_parser("report", help="render allure-results as a single-file HTML report (Allure 3) "
                                       "and the conformance statement of the same run")
    sp.add_argument("--alluredir", default="allure-results", help="Allure results of a run (default: %(default)s)")
    sp.add_argument("--output", default="allure-report", help="where index.html and ics.html/.json go "
                                                              "(default: %(default)s)")
    sp.add_argument("--workdir", default=".ims-conformance", help="where the Allure configuration is written "
                                                                  "(default: %(default)s)")
    sp.add_argument("--catalog", default=str(default_catalog()),
                    help="catalog the run used, for requirement texts (default: %(default)s)")
    sp.set_defaults(func=cmd_report)

    sp = sub.add_parser("reference", help="the embedded reference network (up, faults, variations)")
    sp.add_argument("refnet_args", nargs=argparse.REMAINDER, help="up [options] | faults | variations")
    sp.set_defaults(func=cmd_reference)

    sp = sub.add_parser("analyze", help="run the catalog's capture assertions on a recorded capture")
    sp.add_argument("capture", help="pcap or pcapng file (TLS secrets: --keylog, the profile's sut_keylogs, "
                                    "or a Decryption Secrets Block inside the pcapng)")
    sp.add_argument("--profile", required=True, help="profile YAML: where the nodes are (PIXIT) and PICS")
    sp.add_argument("--keylog", action="append", default=[], metavar="FILE",
                    help="NSS key log to decrypt the capture (repeatable)")
    sp.add_argument("--case", action="append", default=[], metavar="ID",
                    help="only this test case (repeatable; default: every applicable positive one with a capture block)")
    sp.add_argument("--catalog", default=str(default_catalog()),
                    help="catalog directory or test case file (default: %(default)s)")
    sp.add_argument("--alluredir", default="allure-results", help="where Allure results go (default: %(default)s)")
    sp.add_argument("--workdir", default=".ims-conformance", help="work directory (default: %(default)s)")
    sp.add_argument("--user", metavar="IDENTITY",
                    help="the identity the capture shows: a Web ID, IMPU or IMPI, or a fixture name of the profile "
                         "(default: found in the capture)")
    sp.set_defaults(func=cmd_analyze)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse exits 2 on bad usage, 0 on --help
        return int(exc.code or 0)
    return int(args.func(args))


def console_main() -> int:
    """The `ims-conformance` command: main(), and then the process ends. What main() leaves on the
    heap is frozen first (gc.freeze): the interpreter's final collection would otherwise walk
    every object of a catalog run only to free memory the exit frees anyway (0.2-0.5 s at the
    end of a run on the 2-core benchmark machine; issue 15)."""
    rc = main()
    gc.freeze()
    return rc


if __name__ == "__main__":
    sys.exit(console_main())

