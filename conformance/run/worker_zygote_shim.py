"""What execnet starts as an xdist worker's interpreter: hands the worker to the fork server.

Run as `PYTHON -S -I worker_zygote_shim.py SOCKET <the interpreter's arguments>`; standard library
only (it starts in a few milliseconds). It sends its stdin, stdout and stderr with its arguments,
working directory and environment to the server at SOCKET (conformance/run/worker_zygote.py),
which forks the worker; it then waits for the worker and exits with its exit code. With no server,
or with arguments other than execnet's `[-u] [-B] -c CODE`, it becomes the real interpreter with
the same arguments (exec): a worker is never lost, only slower to start.
"""

import json
import os
import signal
import socket
import struct
import sys

CONNECT_TIMEOUT_S = 5.0
PICKUP_TIMEOUT_S = 30.0  # the server imports before it forks (about 1 s); then it answers at once
HEADER = struct.Struct("!I")


def _real_interpreter(args):
    os.execv(sys.executable, [sys.executable] + args)


def _request(args):
    flags, code = args[:-2], args[-1]
    if len(args) < 2 or args[-2] != "-c" or any(f not in ("-u", "-B") for f in flags):
        return None
    return json.dumps({"code": code, "cwd": os.getcwd(), "env": dict(os.environ)}).encode()


def main(argv):
    path, args = argv[1], argv[2:]
    body = _request(args)
    if body is None:
        return _real_interpreter(args)
    try:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(CONNECT_TIMEOUT_S)
        sock.connect(path)
        socket.send_fds(sock, [HEADER.pack(len(body))], [0, 1, 2])
        sock.sendall(body)
        sock.settimeout(PICKUP_TIMEOUT_S)
        answers = sock.makefile("rb")
        first = answers.readline().decode()
    except OSError:
        first = ""
    if not first.startswith("pid "):  # no server, or it refused: nothing has read our stdin yet
        return _real_interpreter(args)
    # the worker runs: Ctrl-C is its to handle (it is in our process group), we wait for it
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    sock.settimeout(None)  # as long as the worker lives; execnet kills us to stop it
    for line in answers:
        if line.startswith(b"exit "):
            code = int(line[5:])
            return code if code >= 0 else 128 - code
    return 1  # the server went away: so did the worker (PR_SET_PDEATHSIG)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
