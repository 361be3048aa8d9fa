"""The fork server of conformance/run/worker_zygote.py (why, how and its safety are said there).

Run as `python -m conformance.run.worker_zygote_server LISTEN_FD [RUN_LABEL]` by the CLI, which
has bound and listens on the socket LISTEN_FD; RUN_LABEL (the run's work directory) only names
the server in its command line. One thread, one loop (`_Server.run`): a connection from a shim
is a worker to fork, a child's pidfd tells it has ended (its exit code goes to the shim), a shim's
connection closing means execnet killed it (its worker is killed), the end of stdin means the CLI
has ended the run.
"""

from __future__ import annotations

import builtins
import gc
import importlib
import io
import json
import os
import selectors
import signal
import socket
import struct
import sys
import threading
import time
import traceback

# What a worker imports before its first test case (its sys.modules, measured), by the modules
# that pull in the rest. A module left out is imported by the worker itself: slower, not wrong.
PRELOAD = (
    "pytest", "_pytest.main", "_pytest.terminal", "_pytest.runner", "_pytest.python", "execnet",
    "xdist.plugin", "xdist.remote", "allure_pytest.plugin", "pygments.lexers.python",
    "conformance.plugin", "conformance.run.engine", "conformance.run.actions", "conformance.run.capture_hook",
    "conformance.model.profile", "conformance.model.testcase", "conformance.model.schema",
    "conformance.capture.sniff", "conformance.capture.dissect", "conformance.peers", "conformance.report.allure",
    "conformance.drivers.websocket", "conformance.drivers.http", "conformance.drivers.tls",
    "scapy.arch.linux", "scapy.layers.l2",
)
HEADER = struct.Struct("!I")  # length of the request that follows the descriptors (as the shim sends it)
MAX_REQUEST = 4 << 20  # arguments and environment of one worker; more is refused
ACCEPT_TIMEOUT_S = 10.0  # for one request to arrive whole once its connection is accepted
CHILD_GRACE_S = 5.0  # after the CLI has gone: children still running are killed then
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
    through the server's loop: non-daemon threads joined, atexit handlers run, streams flushed), so that a
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
        server_dir = os.getcwd()  # what `-m` put first on sys.path; `-c` puts '' there
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        # `python -u`: stdout and stderr unbuffered; stdin as a new interpreter has it
        sys.stdin = io.TextIOWrapper(io.BufferedReader(io.FileIO(0, "r", closefd=False)))
        sys.stdout = io.TextIOWrapper(io.FileIO(1, "w", closefd=False), write_through=True, line_buffering=True)
        sys.stderr = io.TextIOWrapper(io.FileIO(2, "w", closefd=False), write_through=True, line_buffering=True,
                                      errors="backslashreplace")
        sys.argv = ["-c"]
        if sys.path and sys.path[0] == server_dir:
            sys.path[0] = ""
        import random

        random.seed()
        code = compile(request["code"], "<string>", "exec")
    except BaseException:  # noqa: BLE001 - nothing of the worker ran: the shim reports exit 1
        traceback.print_exc()
        os._exit(1)
    exec(code, {"__name__": "__main__", "__builtins__": builtins})  # noqa: S102 - what `python -c` runs
    raise SystemExit(0)


class _Server:
    def __init__(self, listener: socket.socket):
        self.listener = listener
        self.me = os.getpid()
        self.sel = selectors.DefaultSelector()
        self.sel.register(listener, selectors.EVENT_READ, self._accept)
        self.sel.register(0, selectors.EVENT_READ, self._stdin)
        self.children: dict[int, tuple[int, socket.socket]] = {}  # pidfd -> (pid, the shim's connection)
        self.by_conn: dict[socket.socket, int] = {}  # a shim's connection -> its worker's pid
        self.closing_deadline: float | None = None  # set when the CLI has gone

    def run(self) -> int:
        while True:
            if self.closing_deadline is not None:
                if not self.children:
                    return 0
                if time.monotonic() > self.closing_deadline:
                    for pid, _ in self.children.values():
                        _kill(pid)
                    self.closing_deadline = time.monotonic() + CHILD_GRACE_S
            for key, _ in self.sel.select(timeout=0.5 if self.closing_deadline is not None else None):
                key.data(key)

    def _accept(self, key) -> None:
        """A shim: fork its worker, or close the connection (the shim then runs the interpreter)."""
        if self.closing_deadline is not None:  # closed earlier in this same round
            return
        try:
            conn, _ = self.listener.accept()
        except OSError:
            return
        uid = struct.unpack("3i", conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12))[1]
        if uid != os.getuid():
            conn.close()
            return
        try:
            request, fds = _recv_request(conn)
        except (OSError, ValueError, ConnectionError):
            conn.close()
            return
        threads = threading.active_count()
        if _gone(conn) or threads != 1:  # the shim gave up; never fork a threaded process
            if threads != 1:
                print(f"worker_zygote: {threads} threads after the imports: the workers start as new "
                      f"interpreters", file=sys.stderr, flush=True)
            for fd in fds:
                os.close(fd)
            conn.close()
            return
        pid = os.fork()
        if pid == 0:
            _child(request, fds, self.me, [self.listener, conn, self.sel, *self.by_conn, *self.children])
        for fd in fds:
            os.close(fd)
        conn.setblocking(False)
        pidfd = os.pidfd_open(pid)
        self.children[pidfd] = (pid, conn)
        self.by_conn[conn] = pid
        self.sel.register(pidfd, selectors.EVENT_READ, self._child_ended)
        self.sel.register(conn, selectors.EVENT_READ, self._shim_readable)
        try:
            conn.sendall(f"pid {pid}\n".encode())
        except OSError:
            _kill(pid)

    def _stdin(self, key) -> None:
        if not os.read(0, 4096):  # the CLI has ended the run
            self.sel.unregister(0)
            self.sel.unregister(self.listener)
            self.listener.close()
            self.closing_deadline = time.monotonic() + CHILD_GRACE_S

    def _child_ended(self, key) -> None:
        """Reap the worker and tell its shim the exit code."""
        pid, conn = self.children.pop(key.fd)
        self.sel.unregister(key.fd)
        os.close(key.fd)
        _, status = os.waitpid(pid, 0)
        if self.by_conn.pop(conn, None) is not None:  # else unregistered when the shim went
            self.sel.unregister(conn)
        try:
            conn.setblocking(True)
            conn.settimeout(1.0)
            conn.sendall(f"exit {os.waitstatus_to_exitcode(status)}\n".encode())
        except OSError:
            pass
        conn.close()

    def _shim_readable(self, key) -> None:
        """A shim sends nothing after its request: readable means it is gone, and so is its worker."""
        conn = key.fileobj
        if conn not in self.by_conn:  # its worker ended in this same round: answered and closed
            return
        try:
            alive = conn.recv(1) != b""
        except BlockingIOError:
            alive = True
        except OSError:
            alive = False
        if not alive:
            self.sel.unregister(conn)
            _kill(self.by_conn.pop(conn))


def serve(listen_fd: int) -> int:
    """Import, then fork one worker per request on the listening socket `listen_fd` until stdin
    closes and the last worker has ended."""
    gc.disable()
    listener = socket.socket(fileno=listen_fd)
    _preload()
    gc.freeze()  # the imports live as long as a worker: out of its collector's way
    gc.enable()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the workers; the CLI ends us
    return _Server(listener).run()


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


if __name__ == "__main__":
    code = serve(int(sys.argv[1]))
    # every worker has ended: skip the interpreter's teardown of a worker's worth of modules
    # (about 30 ms measured, which the CLI waits for at the end of the run)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
