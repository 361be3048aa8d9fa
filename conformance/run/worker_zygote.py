"""A fork server for the xdist workers of `ims-conformance run -n N` (issue 15).

Why: a worker spent about 0.85 s of CPU importing before its first test case (pytest and its
plugins, the harness, the drivers, Scapy), measured on the 2-core benchmark machine, and `-n 2`
has two of them, at the moment the CLI validates the catalog and both reference networks start:
every core is busy from the CLI's first second to the first case, so imports done twice are wall
time. Here one process imports them once, while the CLI works, and each worker is a fork of it.
The reference network's nodes are started the same way (refnet/zygote.py).

How a worker reaches it: xdist starts a worker with execnet's `popen` gateway, which runs
`PYTHON -u -c "import sys;exec(eval(sys.stdin.readline()))"` and talks over its stdin/stdout. The
plugin gives xdist `popen//python=<shim>` instead (the `python=` key of an execnet spec), so the
shim (conformance/run/worker_zygote_shim.py, standard library only, started with `-S -I`) is what
execnet runs: it hands its stdin, stdout and stderr, its arguments, working directory and
environment to this server over a Unix socket (SCM_RIGHTS), and the server forks a child that
takes them over and runs the same `-c` code a new interpreter would have run. The shim waits
for the child and exits with its exit code; if the shim dies (execnet kills it), the child is
killed; if the server dies, its children die with it (PR_SET_PDEATHSIG). Whatever goes wrong on
the way (no server, a refused socket, unexpected arguments) the shim runs the real interpreter
instead: a worker is never lost, only slower.

Safety:
- The socket lives in a fresh 0700 directory and the server serves only its own user (SO_PEERCRED):
  a forked worker runs the code its stdin sends, with the server's privileges.
- The server never starts a thread (forking a threaded process can leave a lock held in the child);
  it checks this before every fork.
- A child gets the shim's environment and working directory; `random` is reseeded after the fork
  (Python does this itself), and the collector's frozen generation holds only the imports.

Limits: modules are imported before the reference networks are up, so a module that read the
network at import (Scapy reads the interface list and routes) saw it as it was then; the workers'
sniffers open the interfaces the profile names by name, which existed before the run started.
"""

from __future__ import annotations

import builtins
import gc
import importlib
import io
import json
import os
import selectors
import shlex
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from pathlib import Path

# What a worker imports before its first test case (its sys.modules, measured), by the modules
# that pull in the rest. A module left out is imported by the worker itself: slower, not wrong.
PRELOAD = (
    "pytest", "_pytest.main", "_pytest.terminal", "_pytest.runner", "_pytest.python", "execnet",
    "xdist.plugin", "xdist.remote", "allure_pytest.plugin", "pygments.lexers.python",
    "conformance.plugin", "conformance.run.engine", "conformance.run.actions", "conformance.run.capture_hook",
    "conformance.capture.sniff", "conformance.capture.dissect", "conformance.peers", "conformance.report.allure",
    "conformance.drivers.websocket", "conformance.drivers.http", "conformance.drivers.tls",
    "scapy.arch.linux", "scapy.layers.l2",
)
SHIM = Path(__file__).with_name("worker_zygote_shim.py")
HEADER = struct.Struct("!I")  # length of the request that follows the descriptors
MAX_REQUEST = 4 << 20  # arguments and environment of one worker; more is refused
ACCEPT_TIMEOUT_S = 10.0  # for one request to arrive whole once its connection is accepted
CHILD_GRACE_S = 5.0  # after the CLI has gone: children still running are killed then
STOP_TIMEOUT_S = 10.0  # the CLI's wait for the server to end (it then kills it)
PR_SET_PDEATHSIG = 1


def _preload() -> None:
    for name in PRELOAD:
        try:
            importlib.import_module(name)
        except Exception:  # noqa: BLE001 - an optional plugin missing here is imported (or not) by the worker
            pass


def _recv_request(conn: socket.socket) -> tuple[dict, list[int]]:
    """The shim's descriptors and its JSON request (argv, cwd, env)."""
    conn.settimeout(ACCEPT_TIMEOUT_S)
    data, fds, _, _ = socket.recv_fds(conn, HEADER.size, 3)
    try:
        while len(data) < HEADER.size:
            more = conn.recv(HEADER.size - len(data))
            if not more:
                raise ConnectionError("the shim closed its connection before its request")
            data += more
        (length,) = HEADER.unpack(data)
        if length > MAX_REQUEST or len(fds) != 3:
            raise ConnectionError(f"a request of {length} bytes with {len(fds)} descriptors")
        body = bytearray()
        while len(body) < length:
            more = conn.recv(min(65536, length - len(body)))
            if not more:
                raise ConnectionError("the shim closed its connection in the middle of its request")
            body += more
        return json.loads(body), fds
    except BaseException:
        for fd in fds:
            os.close(fd)
        raise


def _set_pdeathsig() -> None:
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def _child(request: dict, fds: list[int], server_pid: int, keep_closed: list) -> None:
    """In the forked process: become the interpreter the shim stands for. The `-c` code runs as
    `python -c` runs it, and the process then ends the way an interpreter ends (SystemExit up
    through serve(): non-daemon threads joined, atexit handlers run, streams flushed), so that a
    worker's clean-up (refnet/launcher.py, provisioning_pool) runs as it would have."""
    try:
        for thing in keep_closed:  # the server's sockets, selector and pidfds are not the worker's
            try:
                os.close(thing) if isinstance(thing, int) else thing.close()
            except OSError:
                pass
        _set_pdeathsig()
        if os.getppid() != server_pid:  # the server died before the line above took effect
            os._exit(1)
        for sig in (signal.SIGCHLD, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)  # as in a new interpreter
        for target, fd in enumerate(fds):
            os.dup2(fd, target)
        for fd in fds:
            if fd > 2:
                os.close(fd)
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        # `python -u`: stdout and stderr unbuffered; stdin as a new interpreter has it
        sys.stdin = io.TextIOWrapper(io.BufferedReader(io.FileIO(0, "r", closefd=False)))
        sys.stdout = io.TextIOWrapper(io.FileIO(1, "w", closefd=False), write_through=True, line_buffering=True)
        sys.stderr = io.TextIOWrapper(io.FileIO(2, "w", closefd=False), write_through=True, line_buffering=True,
                                      errors="backslashreplace")
        sys.argv = ["-c"]
        if sys.path and sys.path[0] == os.getcwd():  # `-m` put the server's directory first; `-c` puts ''
            sys.path[0] = ""
        import random

        random.seed()
        code = compile(request["code"], "<string>", "exec")
    except BaseException:  # noqa: BLE001 - nothing of the worker ran: the shim reports exit 1
        traceback.print_exc()
        os._exit(1)
    exec(code, {"__name__": "__main__", "__builtins__": builtins})  # noqa: S102 - what `python -c` runs
    raise SystemExit(0)


def serve(listen_fd: int) -> int:
    """Import, then fork one worker per request on the listening socket `listen_fd` (bound by the
    CLI: a shim that connects while the imports run waits in its backlog) until stdin closes."""
    gc.disable()
    listener = socket.socket(fileno=listen_fd)
    _preload()
    gc.freeze()  # the imports live as long as a worker: out of its collector's way
    gc.enable()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the workers; the CLI ends us
    sel = selectors.DefaultSelector()
    sel.register(listener, selectors.EVENT_READ, "listener")
    sel.register(0, selectors.EVENT_READ, "stdin")
    children: dict[int, tuple[int, socket.socket]] = {}  # pidfd -> (pid, the shim's connection)
    by_conn: dict[socket.socket, int] = {}  # the shim's connection -> pid
    me = os.getpid()
    closing_deadline = None
    while True:
        if closing_deadline is not None:
            if not children:
                return 0
            if time.monotonic() > closing_deadline:
                for pid, _ in children.values():
                    _kill(pid)
                closing_deadline = time.monotonic() + CHILD_GRACE_S
        for key, _ in sel.select(timeout=0.5 if closing_deadline is not None else None):
            what = key.data
            if what == "listener":
                if closing_deadline is not None:  # closed earlier in this same round
                    continue
                try:
                    conn, _ = listener.accept()
                except OSError:
                    continue
                uid = struct.unpack("3i", conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12))[1]
                if uid != os.getuid():
                    conn.close()
                    continue
                try:
                    request, fds = _recv_request(conn)
                except (OSError, ValueError, ConnectionError):
                    conn.close()
                    continue
                threads = threading.active_count()
                if _gone(conn) or threads != 1:  # the shim gave up; never fork a threaded process
                    if threads != 1:
                        print(f"worker_zygote: {threads} threads after the imports: the workers start as new "
                              f"interpreters", file=sys.stderr, flush=True)
                    for fd in fds:
                        os.close(fd)
                    conn.close()  # the shim runs the real interpreter
                    continue
                pid = os.fork()
                if pid == 0:
                    _child(request, fds, me, [listener, conn, sel, *by_conn, *children])
                for fd in fds:
                    os.close(fd)
                conn.setblocking(False)
                pidfd = os.pidfd_open(pid)
                children[pidfd] = (pid, conn)
                by_conn[conn] = pid
                sel.register(pidfd, selectors.EVENT_READ, "child")
                sel.register(conn, selectors.EVENT_READ, "conn")
                try:
                    conn.sendall(f"pid {pid}\n".encode())
                except OSError:
                    _kill(pid)
            elif what == "stdin":
                if not os.read(0, 4096):  # the CLI has ended the run
                    sel.unregister(0)
                    sel.unregister(listener)
                    listener.close()
                    closing_deadline = time.monotonic() + CHILD_GRACE_S
            elif what == "child":
                pidfd = key.fd
                pid, conn = children.pop(pidfd)
                sel.unregister(pidfd)
                os.close(pidfd)
                _, status = os.waitpid(pid, 0)
                if by_conn.pop(conn, None) is not None:  # else unregistered when the shim went
                    sel.unregister(conn)
                try:
                    conn.setblocking(True)
                    conn.settimeout(1.0)
                    conn.sendall(f"exit {os.waitstatus_to_exitcode(status)}\n".encode())
                except OSError:
                    pass
                conn.close()
            elif what == "conn":
                conn = key.fileobj
                if conn not in by_conn:  # its worker ended in this same round: answered and closed
                    continue
                try:
                    alive = conn.recv(1) != b""
                except BlockingIOError:
                    alive = True
                except OSError:
                    alive = False
                if not alive:  # the shim is gone (execnet killed it): so is its worker
                    sel.unregister(conn)
                    pid = by_conn.pop(conn, None)
                    if pid is not None:
                        _kill(pid)


def _gone(conn: socket.socket) -> bool:
    """The shim closed its end (it gave up waiting and runs the real interpreter on the same
    descriptors): forking now would give them two readers."""
    conn.setblocking(False)  # a socket with a timeout would wait for data before the peek
    try:
        return conn.recv(1, socket.MSG_PEEK) == b""
    except BlockingIOError:
        return False
    except OSError:
        return True


def _kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


class WorkerZygote:
    """The CLI's end: start the server (it imports while the CLI validates), hand xdist the
    `python=` of the shim, stop the server when the run has ended."""

    def __init__(self, log_path: Path | None = None, run_label: str = ""):
        self.dir = Path(tempfile.mkdtemp(prefix="ims-wz-"))  # 0700: only we may connect
        self.socket = self.dir / "s"
        # bound and listening before the server has even started, so that no shim finds no socket
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        log = open(log_path, "ab") if log_path else subprocess.DEVNULL
        try:
            listener.bind(str(self.socket))
            listener.listen(16)
            self.proc = subprocess.Popen(
                # the run's label (its work directory) only names the server in its command line, so
                # that a server left over is found by the run it belongs to (as refnet's zygote is)
                [sys.executable, "-m", "conformance.run.worker_zygote", str(listener.fileno()), *filter(None, [run_label])],
                stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=log, pass_fds=[listener.fileno()])
        finally:
            listener.close()
            if log_path:
                log.close()

    def python_spec(self) -> str | None:
        """The `python=` value of an execnet popen spec that runs the shim; None when the paths
        cannot be written in a spec (execnet splits specs at `//`)."""
        value = " ".join(shlex.quote(str(p)) for p in (sys.executable, "-S", "-I", SHIM, self.socket))
        return None if "//" in value else value

    def stop(self) -> None:
        """End the server (closing its stdin; it kills workers still running after a grace),
        bounded, and remove its socket."""
        try:
            self.proc.stdin.close()
        except OSError:
            pass
        try:
            self.proc.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(STOP_TIMEOUT_S)
        for p in (self.socket, self.dir):
            try:
                p.unlink() if p == self.socket else p.rmdir()
            except OSError:
                pass


if __name__ == "__main__":
    sys.exit(serve(int(sys.argv[1])))
