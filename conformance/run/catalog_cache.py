"""The validated catalog, kept between runs: a run whose catalog and harness are byte for byte
those of an earlier run takes that run's TestCases instead of parsing and checking every file.

Why: `ims-conformance run` validates the whole catalog before it sends anything, about 0.6 s of
CPU (its imports and the parse), and under `-n` that sits on the path to the first test case while
both reference networks and the workers' fork server start on the same two cores (issue 15;
benchmarks/README.md).

The key is a SHA-256 over everything the result depends on, so that a hit gives exactly what
validating again would give:
- every file under the catalog directory (fragments too): path, content, modification time and
  size (the TestCases carry the times and sizes that parsed_catalog compares before using one);
- every file of the harness package (the parser, the schema, the vocabulary, the matchers);
- the Python version and the versions of PyYAML and jsonschema, which parse and check the YAML.
Only a catalog without problems is kept: a catalog with problems is validated, and its problems
reported, on every run.

The cache is a pickle (code, when loaded) in the run's work directory, written 0600 under a name
of its own: one written by another user, or writable by anyone else, is ignored.
"""

from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path

from conformance.run import parsed_catalog

FOLDER = "catalog-cache"
MAX_BYTES = 64 << 20  # read to compute the key; a catalog folder holding more is validated every run
FORMAT = b"ims-conformance catalog cache 1"
PACKAGE = Path(__file__).resolve().parents[1]  # conformance/
LIBRARIES = ("PyYAML", "jsonschema")


def _files(root: Path) -> list[str]:
    out = []
    for folder, dirs, names in os.walk(root):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__")
        out.extend(os.path.join(folder, n) for n in sorted(names))
    return out


def key(catalog_root: Path, package: Path = PACKAGE) -> str | None:
    """The digest of everything the validated catalog depends on; None when the folders hold more
    than MAX_BYTES (a capture left among the test cases, say): nothing is kept then."""
    from importlib.metadata import PackageNotFoundError, version

    h = hashlib.sha256(FORMAT)
    h.update(sys.version.encode())
    for lib in LIBRARIES:
        try:
            h.update(f"\0{lib} {version(lib)}".encode())
        except PackageNotFoundError:
            h.update(f"\0{lib} -".encode())
    budget = MAX_BYTES
    for label, root, with_times in ((b"harness", package, False), (b"catalog", Path(catalog_root), True)):
        h.update(b"\0" + label + str(root).encode())
        for name in _files(root):
            with open(name, "rb") as f:
                content = f.read(budget + 1)
                st = os.fstat(f.fileno())
            budget -= len(content)
            if budget < 0:
                return None
            stamp = f"{st.st_mtime_ns} {st.st_size}" if with_times else ""
            h.update(f"\0{name}\0{len(content)}\0{stamp}\0".encode())
            h.update(content)
    return h.hexdigest()


def _path(workdir: Path, digest: str) -> Path:
    return Path(workdir) / FOLDER / f"{digest}.pickle"


def lookup(workdir: Path, digest: str) -> Path | None:
    """The kept catalog for `digest`, if there is one this user wrote and no one else can change."""
    path = _path(workdir, digest)
    try:
        st = path.stat()
    except OSError:
        return None
    if st.st_uid != os.geteuid() or st.st_mode & 0o022:
        return None
    return path


def store(workdir: Path, digest: str, document: dict) -> Path:
    """Keep `document` (parsed_catalog's hand-over) for `digest`, replacing what was kept before."""
    folder = Path(workdir) / FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("*.pickle"):
        old.unlink(missing_ok=True)
    target = _path(workdir, digest)
    tmp = folder / f".{digest}.{os.getpid()}.tmp"
    tmp.unlink(missing_ok=True)
    parsed_catalog.write_private(tmp, document).replace(target)  # whole or not at all
    return target
