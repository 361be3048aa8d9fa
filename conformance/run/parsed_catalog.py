"""The catalog `ims-conformance run` has just validated, handed to pytest's collection so that no
process parses the YAML again.

`run` validates every test case before anything is sent, which builds every TestCase; pytest then
collected the same files again, and under `-n` every xdist worker did too: 0.3-0.6 s of CPU per
process on the 2-core benchmark machine, while the reference networks start on the same cores
(issue 15). The serial run is one process, so the TestCases are kept in memory; `-n` workers get
them in a pickle in the run's work directory, written by the CLI under a name of its own and
read once per worker.

A handed-over TestCase is used only when it is exactly what parsing would give now: the file's
path is the one pytest collects, its modification time and size are unchanged, and so is every
fragment file. Anything else (a file edited meanwhile, a path given differently, no hand-over, an
unreadable pickle) falls back to parsing the file, which reports its problems at file:line as
before.
"""

from __future__ import annotations

import os
import pickle
import secrets
from pathlib import Path

OPTION = "--ims-parsed-catalog"
_memo: dict[str, tuple] = {}  # in-process: file -> (stat key, TestCase)
_fragments_key: dict[str, tuple] = {}  # fragments directory -> stat key when the catalog was parsed
_fragments_now: dict[str, tuple] = {}  # fragments directory -> stat key at this process's first look
_loaded: set[str] = set()  # pickles already read by this process


def _stat(path: str | Path) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size)


def _fragments_stat(fragments_dir: Path) -> tuple:
    if not fragments_dir.is_dir():
        return ()
    return tuple(sorted((str(p), _stat(p)) for p in fragments_dir.rglob("*") if p.is_file()))


def keep(testcases, fragments_dir: Path) -> None:
    """Remember the parsed test cases in this process (a serial run collects them here)."""
    _fragments_key[str(fragments_dir)] = _fragments_stat(fragments_dir)
    for tc in testcases:
        _memo[tc.file] = (_stat(tc.file), tc)


def document() -> dict:
    """What `keep` remembered, as a hand-over file holds it (conformance.run.catalog_cache keeps it)."""
    return {"fragments": dict(_fragments_key), "cases": dict(_memo)}


def write_private(target: Path, doc: dict) -> Path:
    """`doc` pickled into the new file `target`, readable by this user alone: a pickle is code."""
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        pickle.dump(doc, f, protocol=pickle.HIGHEST_PROTOCOL)
    return target


def save(workdir: Path) -> Path:
    """Write what `keep` remembered for the `-n` workers; returns the file to pass with OPTION."""
    workdir.mkdir(parents=True, exist_ok=True)
    return write_private(workdir / f"parsed-catalog-{secrets.token_hex(4)}.pickle", document())


def remove_old(workdir: Path) -> None:
    for old in Path(workdir).glob("parsed-catalog-*.pickle"):
        old.unlink(missing_ok=True)


def _load(handover: str) -> None:
    if handover in _loaded:
        return
    _loaded.add(handover)
    try:
        with open(handover, "rb") as f:
            doc = pickle.load(f)
        fragments, cases = doc["fragments"], doc["cases"]
    except Exception:  # noqa: BLE001 - no usable hand-over: every file is parsed, as without one
        return
    for folder, key in fragments.items():
        _fragments_key.setdefault(folder, key)
    for file, entry in cases.items():
        _memo.setdefault(file, entry)


def take(path: Path, fragments_dir: Path | None, handover: str | None = None):
    """The TestCase of `path` parsed before, if it is still what parsing would give; else None."""
    entry = _memo.get(str(path))
    if entry is None and handover:  # not kept by this process (the CLI's own): read the hand-over
        _load(handover)
        entry = _memo.get(str(path))
    if entry is None or fragments_dir is None or entry[0] != _stat(path):
        return None
    folder = str(fragments_dir)
    if folder not in _fragments_key:
        return None
    if folder not in _fragments_now:  # once per process: collection takes well under a second
        _fragments_now[folder] = _fragments_stat(fragments_dir)
    if _fragments_now[folder] != _fragments_key[folder]:
        return None
    return entry[1]


def testcase(path: Path, handover: str | None = None):
    """The TestCase of `path`: the one handed over while still current, else parsed now (raises
    with file:line:column on bad input, as load_testcase does)."""
    from conformance.model.testcase import default_fragments_dir, load_testcase

    tc = take(path, default_fragments_dir(path), handover)
    return tc if tc is not None else load_testcase(path)
