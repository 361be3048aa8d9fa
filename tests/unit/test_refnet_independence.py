"""The dependency rule of the architecture: refnet/ is the reference network, it never imports the
harness (`conformance`) and meets it only on the wire. Were it to share the harness's SIP codec,
both sides would agree on every codec bug and no such bug could fail a verdict against it.

The harness, for its part, touches refnet only through the launcher (conformance/run/reference.py
starts a network from a profile); any other import of refnet from conformance/ is flagged."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# conformance -> refnet imports that exist by design: starting the embedded network (launcher, config)
HARNESS_MAY_IMPORT_REFNET = {"conformance/run/reference.py"}


def imported_modules(path: Path) -> list[tuple[int, str]]:
    """(line, absolute module name) of every import in a file, including importlib/__import__ calls
    with a literal name; relative imports stay inside their own package and are left out."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module))
        elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant) \
                and isinstance(node.args[0].value, str):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if name in ("import_module", "__import__"):
                found.append((node.lineno, node.args[0].value))
    return found


def imports_of(package: str, top: str) -> list[str]:
    hits = []
    for path in sorted((ROOT / package).rglob("*.py")):
        for line, module in imported_modules(path):
            if module == top or module.startswith(top + "."):
                hits.append(f"{path.relative_to(ROOT).as_posix()}:{line}: {module}")
    return hits


def test_the_walker_sees_every_import_form(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text("import conformance.codec.sip\nfrom conformance import cli\nfrom .sip import parse\n"
                      "import importlib\nimportlib.import_module('conformance.codec')\n__import__('conformance')\n")
    assert [m for _, m in imported_modules(sample)] == [
        "conformance.codec.sip", "conformance", "importlib", "conformance.codec", "conformance"]


def test_refnet_never_imports_the_harness():
    assert (ROOT / "refnet" / "sip").is_dir()  # the walk covers subpackages
    assert imports_of("refnet", "conformance") == []


def test_the_harness_imports_refnet_only_to_launch_it():
    files = {hit.split(":", 1)[0] for hit in imports_of("conformance", "refnet")}
    assert files <= HARNESS_MAY_IMPORT_REFNET, sorted(files - HARNESS_MAY_IMPORT_REFNET)
