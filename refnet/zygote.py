"""A fork server for the nodes of one network, or of several started together: the modules every
node needs (aiohttp, joserfc, cryptography, the SIP stack) are imported once, and each node is a
fork of that process instead of a new interpreter that imports them again.

Why: a node's start-up is almost all imports (0.25-0.35 s of CPU each). The harness starts a
network per run, and under `-n 2` one per worker, on a machine whose two cores also spawn the
workers; five imports per network were most of the time the workers spent waiting for their
network (issue 15). Forked from a process that has imported them, a node starts in a few
milliseconds of CPU. The networks of a parallel run share one zygote: the imports, 0.45 s of CPU,
are then made once for all of them (refnet.launcher.shared_zygote).

The launcher runs it as `python -m refnet.node zygote --state-dir DIR [--state-dir DIR2 ...]`, one
per network it serves (so a forked node's command line, which is the zygote's, still names
refnet.node and its state directory; a request for another directory is refused), and talks over
its standard streams, one line each way:

    launcher -> zygote:  {"node": NODE, "state_dir": DIR, "log": LOGPATH}\n
                         (fork NODE of the network in DIR, its stdout and stderr appended to LOGPATH)
    zygote -> launcher:  PID\n | error TEXT\n

The zygote ends when its standard input closes (the launcher stopped the network or died). A node
it forked leads its own session (signals to the launcher's group do not reach it), as a node
started with subprocess did, and stops when the zygote is gone (refnet.node's parent watch). The
zygote reaps an exited node at once (SIGCHLD): a node that has exited is one whose PID no longer
exists (the launcher cannot wait() for a process that is not its child).
"""

from __future__ import annotations

import importlib
import json
import os
import signal
import sys
import traceback
from typing import NoReturn


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


def serve(state_dirs: list[str]) -> NoReturn:
    """Fork nodes for the networks in `state_dirs` until standard input closes, then end the
    process without the interpreter's teardown of every node module (16-32 ms measured, which the
    launcher waits for when a network stops): nothing of the zygote outlives it."""
    import gc

    _preload()
    # What the imports made stays for the node's life: out of the collector's way, so a node's
    # full collections do not walk every module of every other node (and no copy-on-write of them).
    gc.freeze()
    signal.signal(signal.SIGCHLD, _reap)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the launcher decides when the network stops
    served = set(state_dirs)
    for line in _lines(0):
        try:
            request = json.loads(line)
            node, log_path, state_dir = request["node"], request["log"], request["state_dir"]
        except (ValueError, KeyError, TypeError):
            os.write(1, b"error not a request\n")
            continue
        if state_dir not in served:  # its forks must carry their state directory in their command line
            os.write(1, f"error {state_dir} is not served by this zygote\n".encode())
            continue
        try:
            pid = os.fork()
        except OSError as exc:
            os.write(1, f"error {exc}\n".encode())
            continue
        if pid == 0:
            _child(node, log_path, state_dir)
        os.write(1, f"{pid}\n".encode())
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
