"""`ims-conformance analyze`: the capture assertions of the catalog against a capture that a
vendor recorded in its own lab. The same plugin and Allure output as `run`; no step is sent.
What a trace cannot judge is not applicable, said so (conformance.run.offline)."""

from __future__ import annotations

from pathlib import Path


def analyze(capture: Path, profile, *, keylogs: list[Path], case_ids: list[str], catalog: Path,
            alluredir: Path, workdir: Path = Path(".ims-conformance"), user: str | None = None) -> int:
    import sys

    import pytest

    from conformance.run import verdict_files
    from conformance.run.console import CaseLines, summary_table

    if not capture.is_file():
        print(f"ims-conformance: error: {capture}: no such capture file", file=sys.stderr)
        return verdict_files.EXIT_ERROR
    verdict_files.clear(workdir)
    argv = [str(catalog), "--ims-catalog", str(catalog), "--profile", str(profile.path), "--ims-analyze",
            str(capture), "--alluredir", str(alluredir), "--clean-alluredir", "--ims-workdir", str(workdir),
            "-p", "no:cacheprovider", "-q", "-rfE", "--no-header", "-o", "console_output_style=classic",
            "-W", "ignore::pytest.PytestAssertRewriteWarning"]
    for k in keylogs:
        argv += ["--ims-keylog", str(k)]
    if user:
        argv += ["--ims-user", user]
    if case_ids:
        argv += ["-k", " or ".join(case_ids)]
    rc = pytest.main(argv, plugins=[CaseLines()])
    results = verdict_files.read(workdir)
    if int(rc) == verdict_files.PYTEST_NO_TESTS or (int(rc) == 0 and not results):
        what = f" matching --case {' '.join(case_ids)}" if case_ids else ""
        print(f"ims-conformance: error: no test case with a capture block{what} in {catalog}", file=sys.stderr)
        return verdict_files.EXIT_ERROR
    print()
    print(summary_table(results))
    na = sum(1 for r in results if r["verdict"] == "not applicable")
    if na:
        print(f"{na} test case(s) not applicable offline: negative cases (no stimulus in a recorded trace), "
              "scenarios the trace does not show, or PICS; see the report for each reason")
    return verdict_files.exit_code(int(rc), results)
