"""The catalog's layout on disk: its folder, the node folders in it, the fragments folder.

A module of its own, importing nothing of the harness: the CLI names the nodes in its usage
(`--sut`) and finds the catalog's folder before it has loaded anything else, so that the reference
network starts as early as the profile is read and a catalog validated before is recognised
without importing the parser (issue 15: importing the catalog's loader cost 0.3 s first).
"""

from __future__ import annotations

from pathlib import Path

NODE_DIRS = ("3rdwws", "as", "wsf", "pcscf", "scscf", "flow")  # a test case's `sut` and its folder
FRAGMENTS = "fragments"


def catalog_dir(root: str | Path) -> Path:
    """`root` is the catalog directory itself, or a checkout that contains testcases/."""
    root = Path(root)
    return root / "testcases" if (root / "testcases").is_dir() else root
