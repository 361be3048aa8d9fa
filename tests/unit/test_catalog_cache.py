"""A run takes the catalog an earlier run validated only when the catalog and the harness are what
they were (conformance/run/catalog_cache.py, and `ims-conformance run`'s use of it)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from conformance import cli
from conformance.run import catalog_cache

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture()
def catalog(tmp_path):
    base = tmp_path / "testcases"
    shutil.copytree(ROOT / "testcases" / "fragments", base / "fragments")
    (base / "wsf").mkdir()
    for name in ("TP_WSF_REG_001", "TP_WSF_TOK_001"):
        shutil.copy(ROOT / "testcases" / "wsf" / f"{name}.yaml", base / "wsf")
    return base


def test_the_key_follows_every_catalog_file_its_times_and_the_harness(catalog, tmp_path):
    harness = tmp_path / "harness"
    harness.mkdir()
    (harness / "parser.py").write_text("x = 1\n")
    first = catalog_cache.key(catalog, harness)
    assert catalog_cache.key(catalog, harness) == first
    case = catalog / "wsf" / "TP_WSF_REG_001.yaml"
    st = case.stat()
    text = case.read_bytes()
    case.write_bytes(text.replace(b"REGISTER", b"REGISTEr", 1))  # same size, time put back: content counts
    os.utime(case, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert catalog_cache.key(catalog, harness) != first
    case.write_bytes(text)
    os.utime(case, ns=(st.st_atime_ns, st.st_mtime_ns + 1))  # same content, touched: the time counts
    assert catalog_cache.key(catalog, harness) != first
    os.utime(case, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert catalog_cache.key(catalog, harness) == first
    (catalog / "fragments" / "new.yaml").write_text("fragment: new\nsteps: []\n")  # a fragment counts
    assert catalog_cache.key(catalog, harness) != first
    (catalog / "fragments" / "new.yaml").unlink()
    (harness / "parser.py").write_text("x = 2\n")  # another harness: another parse
    assert catalog_cache.key(catalog, harness) != first


def test_only_a_cache_this_user_wrote_and_no_one_else_can_change_is_taken(tmp_path):
    path = catalog_cache.store(tmp_path, "abc", {"fragments": {}, "cases": {}})
    assert catalog_cache.lookup(tmp_path, "abc") == path
    assert path.stat().st_mode & 0o777 == 0o600
    assert catalog_cache.lookup(tmp_path, "other") is None
    path.chmod(0o620)
    assert catalog_cache.lookup(tmp_path, "abc") is None
    path.chmod(0o600)
    catalog_cache.store(tmp_path, "def", {})  # replaces what was kept before
    assert catalog_cache.lookup(tmp_path, "abc") is None


def _run_validated(catalog, workdir, monkeypatch, *extra):
    """cli._run_validated up to pytest (stubbed): the argv it would run and whether it parsed."""
    parsed = []
    from conformance.model import catalog as catalog_module

    real = catalog_module.load_catalog
    monkeypatch.setattr(catalog_module, "load_catalog", lambda root: parsed.append(root) or real(root))
    seen = {}

    def fake_main(argv, plugins=()):
        seen["argv"] = argv
        return 5  # no tests: the CLI reports nothing selected

    import pytest as pytest_module

    monkeypatch.setattr(pytest_module, "main", fake_main)
    args = cli.build_parser().parse_args(["run", "--profile", str(ROOT / "profiles" / "reference.yaml"),
                                          "--catalog", str(catalog), *extra])
    cli._run_validated(args, catalog, workdir, workdir / "allure")
    return parsed, seen.get("argv")  # None: stopped before pytest (problems)


def test_a_second_run_of_the_same_catalog_takes_what_the_first_validated(catalog, tmp_path, monkeypatch):
    work = tmp_path / "work"
    work.mkdir()
    parsed, argv = _run_validated(catalog, work, monkeypatch)
    assert len(parsed) == 1
    handover = Path(argv[argv.index("--ims-parsed-catalog") + 1])
    assert handover.parent == work / catalog_cache.FOLDER
    parsed, argv = _run_validated(catalog, work, monkeypatch)
    assert parsed == []  # not parsed again
    assert Path(argv[argv.index("--ims-parsed-catalog") + 1]) == handover
    case = catalog / "wsf" / "TP_WSF_TOK_001.yaml"
    case.write_text(case.read_text().replace("title:", "title: (edited)", 1))  # edited: validated again
    parsed, argv = _run_validated(catalog, work, monkeypatch)
    assert len(parsed) == 1
    assert [p.name for p in (work / catalog_cache.FOLDER).glob("*.pickle")] != [handover.name]


def test_a_catalog_with_problems_is_never_kept(catalog, tmp_path, monkeypatch, capsys):
    (catalog / "wsf" / "TP_WSF_TOK_001.yaml").write_text("id: TP_WSF_TOK_001\n")
    work = tmp_path / "work"
    work.mkdir()
    for _ in range(2):
        assert _run_validated_rc(catalog, work, monkeypatch) == cli.EXIT_ERROR
        assert "nothing was sent" in capsys.readouterr().err
    assert not (work / catalog_cache.FOLDER).exists()


def _run_validated_rc(catalog, workdir, monkeypatch):
    import pytest as pytest_module

    monkeypatch.setattr(pytest_module, "main", lambda argv, plugins=(): pytest.fail("sent despite problems"))
    args = cli.build_parser().parse_args(["run", "--profile", str(ROOT / "profiles" / "reference.yaml"),
                                          "--catalog", str(catalog)])
    return cli._run_validated(args, catalog, workdir, workdir / "allure")


def test_a_catalog_folder_too_big_to_key_is_validated_every_run_and_still_handed_to_workers(
        catalog, tmp_path, monkeypatch):
    monkeypatch.setattr(catalog_cache, "MAX_BYTES", 1000)
    assert catalog_cache.key(catalog) is None
    work = tmp_path / "work"
    work.mkdir()
    for _ in range(2):
        parsed, argv = _run_validated(catalog, work, monkeypatch, "-n", "2")
        assert len(parsed) == 1  # validated again
        assert "--ims-parsed-catalog" in argv  # the workers take this run's catalog
    assert not (work / catalog_cache.FOLDER).exists()
