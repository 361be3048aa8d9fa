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
environment to the server (conformance/run/worker_zygote_server.py) over a Unix socket
(SCM_RIGHTS), and the server forks a child that
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

import shlex
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

SHIM = Path(__file__).with_name("worker_zygote_shim.py")
STOP_TIMEOUT_S = 10.0  # the CLI's wait for the server to end (it then kills it)


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
                [sys.executable, "-m", "conformance.run.worker_zygote_server", str(listener.fileno()), *filter(None, [run_label])],
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




def xdist_specs(tx: list[str], python: str | None) -> list[str] | None:
    """The execnet specs that make `-n N`'s plain popen workers forks of the server (`python` is
    python_spec()); None when there is no server or the specs are the user's own."""
    if not python or not tx or any(spec != "popen" for spec in tx):
        return None
    return [f"popen//python={python}" for _ in tx]
