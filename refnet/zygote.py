"""A fork server for the nodes of one network: the modules every node needs (aiohttp, joserfc,
cryptography, the SIP stack) are imported once, and each node is a fork of that process instead of
a new interpreter that imports them again.

Why: a node's start-up is almost all imports (0.25-0.35 s of CPU each). The harness starts a
network per run, and under `-n 2` one per worker, on a machine whose two cores also spawn the
workers; five imports per network were most of the time the workers spent waiting for their
network (issue 15). Forked from a process that has imported them, a node starts in a few
milliseconds of CPU.

The launcher runs it as `python -m refnet.node zygote --state-dir DIR` (so a forked node's
command line, which is the zygote's, still names refnet.node and its state directory) and talks
over its standard streams, one line each way:

    launcher -> zygote:  NODE LOGPATH\\n       (fork NODE, its stdout and stderr appended to LOGPATH)
    zygote -> launcher:  PID\\n | error TEXT\\n

The zygote ends when its standard input closes (the launcher stopped the network or died). A node
it forked leads its own session (signals to the launcher's group do not reach it), as a node
started with subprocess did, and stops when the zygote is gone (refnet.node's parent watch). The
zygote reaps an exited node at once (SIGCHLD): a node that has exited is one whose PID no longer
exists (the launcher cannot wait() for a process that is not its child).
"""

from __future__ import annotations

import importlib
import os
import signal
import sys
import traceback


def _preload() -> None:
    from .node import ENTRY_POINTS

    for module, _ in ENTRY_POINTS.values():
        importlib.import_module(module)  # imports only: no node module starts a loop or thread on import


def _lines(fd: int):
    """Lines of `fd`, read with os.read: no buffered reader whose read-ahead a fork would copy."""
    pending = b""
    while True:
        chunk = os.read(fd, 4096)
        if not chunk:
            return
        pending += chunk
        while b"\n" in pending:
            line, pending = pending.split(b"\n", 1)
            yield line.decode()


def _child(node: str, log_path: str, state_dir: str) -> None:
    """In the forked process: become the node, never return."""
    code = 1
    try:
        os.setsid()
        for sig in (signal.SIGCHLD, signal.SIGTERM):
            signal.signal(sig, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)  # as in a new interpreter
        log = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        os.dup2(log, 1)
        os.dup2(log, 2)
        os.close(log)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.close(null)
        from .node import main

        sys.argv = ["refnet.node", node, "--state-dir", state_dir]
        code = main([node, "--state-dir", state_dir])
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    except BaseException:  # noqa: BLE001 - the node's log says why it died
        traceback.print_exc()
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code or 0)


def _reap(signum, frame) -> None:
    """Collect every node that has exited, at once: its PID disappears (the launcher's sign that
    it exited), and its CPU time is added to the zygote's children, so that the launcher's
    accounting of what it started (benchmarks/bench_catalog.py) still sees it once the zygote ends."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def serve(state_dir: str) -> int:
    import gc

    _preload()
    # What the imports made stays for the node's life: out of the collector's way, so a node's
    # full collections do not walk every module of every other node (and no copy-on-write of them).
    gc.freeze()
    signal.signal(signal.SIGCHLD, _reap)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the launcher decides when the network stops
    for line in _lines(0):
        node, _, log_path = line.partition(" ")
        try:
            pid = os.fork()
        except OSError as exc:
            os.write(1, f"error {exc}\n".encode())
            continue
        if pid == 0:
            _child(node, log_path, state_dir)
        os.write(1, f"{pid}\n".encode())
    return 0
