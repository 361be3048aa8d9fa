"""Collection takes the TestCases `ims-conformance run` validated, only while they are exactly what
parsing would give (conformance.run.parsed_catalog)."""

from __future__ import annotations

import os
import pickle
import shutil
from pathlib import Path

import pytest

from conformance.model.catalog import FRAGMENTS, load_catalog
from conformance.model.testcase import default_fragments_dir, load_testcase
from conformance.run import parsed_catalog

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def catalog(tmp_path, monkeypatch):
    """A copy of two test cases and the fragments, and a fresh hand-over state."""
    for name in ("_memo", "_fragments_key", "_fragments_now"):
        monkeypatch.setattr(parsed_catalog, name, {})
    monkeypatch.setattr(parsed_catalog, "_loaded", set())
    base = tmp_path / "testcases"
    shutil.copytree(ROOT / "testcases" / FRAGMENTS, base / FRAGMENTS)
    (base / "flow").mkdir()
    for name in ("TP_FLOW_REG_001", "TP_FLOW_REG_002"):
        shutil.copy(ROOT / "testcases" / "flow" / f"{name}.yaml", base / "flow")
    return base


def _keep(base: Path):
    loaded = load_catalog(base)
    assert not loaded.problems
    parsed_catalog.keep(loaded.testcases, base / FRAGMENTS)
    return loaded.testcases


def test_the_validated_case_is_taken_and_equals_a_fresh_parse(catalog):
    kept = _keep(catalog)
    path = catalog / "flow" / "TP_FLOW_REG_001.yaml"
    taken = parsed_catalog.take(path, default_fragments_dir(path))
    assert taken is next(tc for tc in kept if tc.file == str(path))
    assert pickle.dumps(taken) == pickle.dumps(load_testcase(path))


def test_an_edited_case_is_parsed_again(catalog):
    _keep(catalog)
    path = catalog / "flow" / "TP_FLOW_REG_001.yaml"
    path.write_text(path.read_text() + "\n# edited after validation\n")
    assert parsed_catalog.take(path, default_fragments_dir(path)) is None


def test_an_edited_fragment_makes_every_case_parse_again(catalog):
    _keep(catalog)
    fragment = next((catalog / FRAGMENTS).glob("*.yaml"))
    fragment.write_text(fragment.read_text() + "\n# edited\n")
    path = catalog / "flow" / "TP_FLOW_REG_002.yaml"
    assert parsed_catalog.take(path, default_fragments_dir(path)) is None


def test_a_case_given_under_another_path_or_never_validated_is_parsed(catalog):
    _keep(catalog)
    path = catalog / "flow" / "TP_FLOW_REG_001.yaml"
    assert parsed_catalog.take(Path(os.path.relpath(path)), default_fragments_dir(path)) is None
    assert parsed_catalog.take(path, None) is None
    assert parsed_catalog.take(catalog / "flow" / "TP_OTHER.yaml", default_fragments_dir(path)) is None


def test_workers_read_the_hand_over_file(catalog, tmp_path, monkeypatch):
    _keep(catalog)
    handover = parsed_catalog.save(tmp_path / "work")
    assert oct(handover.stat().st_mode & 0o777) == "0o600"  # a pickle is code: the run's own
    for name in ("_memo", "_fragments_key", "_fragments_now"):  # a worker: another process
        monkeypatch.setattr(parsed_catalog, name, {})
    path = catalog / "flow" / "TP_FLOW_REG_002.yaml"
    taken = parsed_catalog.take(path, default_fragments_dir(path), str(handover))
    assert taken is not None and taken.id == "TP_FLOW_REG_002"
    parsed_catalog.remove_old(tmp_path / "work")
    assert not handover.exists()


def test_an_unreadable_hand_over_means_parsing(catalog, tmp_path):
    bad = tmp_path / "parsed-catalog-x.pickle"
    bad.write_bytes(b"not a pickle")
    path = catalog / "flow" / "TP_FLOW_REG_001.yaml"
    assert parsed_catalog.take(path, default_fragments_dir(path), str(bad)) is None


def test_reading_the_hand_over_imports_no_engine_and_no_validator(catalog, tmp_path):
    """The controller of an `-n` run reads the hand-over as soon as the first worker's collection
    is in, while both workers wait for their first test cases: reading it must not import the
    match engine (and through it the HTTP driver, requests, JOSE) or the JSON Schema validator,
    which no TestCase needs once parsed (about 0.3 s of imports)."""
    import subprocess
    import sys

    _keep(catalog)
    handover = parsed_catalog.save(tmp_path / "work")
    path = catalog / "flow" / "TP_FLOW_REG_001.yaml"
    code = ("import sys\n"
            "from pathlib import Path\n"
            "from conformance.run import parsed_catalog\n"
            f"tc = parsed_catalog.take(Path({str(path)!r}), Path({str(catalog / FRAGMENTS)!r}), {str(handover)!r})\n"
            "assert tc is not None and tc.id == 'TP_FLOW_REG_001'\n"
            "print(sorted(m for m in ('conformance.match.engine', 'conformance.match.subjects', 'requests',"
            " 'jsonschema', 'conformance.model.schema') if m in sys.modules))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_the_match_package_still_gives_its_names():
    from conformance import match
    from conformance.match import (
        MISSING,
        MalformedExpectation,
        MatchContext,
        SaveError,
        check,
        engine,
        operators,
        save,
        subjects,
    )

    assert (MatchContext, check, save) == (engine.MatchContext, engine.check, engine.save)
    assert (MISSING, MalformedExpectation, SaveError) == (operators.MISSING, operators.MalformedExpectation,
                                                           subjects.SaveError)
    assert sorted(match.__all__) == sorted(match._WHERE)
    with pytest.raises(AttributeError):
        match.no_such_name  # noqa: B018
