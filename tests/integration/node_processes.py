"""Which processes run the nodes of a reference network, from /proc: shared by the refnet test
factory (conftest.py) and the zygote test."""

from __future__ import annotations

from pathlib import Path


def node_processes(state_dir: str) -> list[int]:
    """PIDs of live processes running a node of the network in `state_dir`. A node forked from a
    zygote has the zygote's command line (`python -m refnet.node zygote --state-dir DIR`), which
    names both too, so the zygote itself counts as well."""
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"refnet.node" in argv and state_dir.encode() in argv:
            pids.append(int(proc.name))
    return pids
