"""`ims-conformance analyze`: the capture assertions of the catalog against a capture that a
vendor recorded in its own lab. The same plugin and Allure output as `run`; no step is sent."""

from __future__ import annotations

from pathlib import Path


def analyze(capture: Path, profile, *, keylogs: list[Path], case_ids: list[str], catalog: Path,
            alluredir: Path, workdir: Path = Path(".ims-conformance"), user: str | None = None) -> int:
    import pytest

    from conformance.run import verdict_files

    if not capture.is_file():
        print(f"ims-conformance: error: {capture}: no such capture file")
        return verdict_files.EXIT_ERROR
    verdict_files.clear(workdir)
    argv = [str(catalog), "--profile", str(profile.path), "--ims-analyze", str(capture), "--alluredir",
            str(alluredir), "--clean-alluredir", "--ims-workdir", str(workdir), "-p", "no:cacheprovider", "-q",
            "-rfEsx", "-W", "ignore::pytest.PytestAssertRewriteWarning"]
    for k in keylogs:
        argv += ["--ims-keylog", str(k)]
    if user:
        argv += ["--ims-user", user]
    if case_ids:
        argv += ["-k", " or ".join(case_ids)]
    rc = pytest.main(argv)
    return verdict_files.exit_code(int(rc), verdict_files.read(workdir))
