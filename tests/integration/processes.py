"""Which processes a test started, from /proc: the refnet test factory (conftest.py), the zygote
test and the interop tests all ask it of the command lines."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path


def pids_whose_argv(test: Callable[[list[bytes]], bool]) -> list[int]:
    """PIDs of live processes whose command line (its arguments) passes `test`."""
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if test(argv):
            pids.append(int(proc.name))
    return pids


def node_processes(state_dir: str) -> list[int]:
    """Processes running a node of the network in `state_dir`. A node forked from a zygote has the
    zygote's command line (`python -m refnet.node zygote --state-dir DIR`), which names both too,
    so the zygote itself counts as well."""
    return pids_whose_argv(lambda argv: b"refnet.node" in argv and state_dir.encode() in argv)


def processes_naming(text: str) -> list[int]:
    """Processes with `text` anywhere in their command line (an interop run's state directory,
    which every process of the run names)."""
    return pids_whose_argv(lambda argv: text.encode() in b"\0".join(argv))
