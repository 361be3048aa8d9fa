"""Start and stop a reference network: one process per node, each in its own process group
(a subprocess, or a fork of the network's zygote with fork_server=True: refnet/zygote.py).

    net = start(NetworkConfig(state_dir, endpoints=free_endpoints()), nodes=("as", "3rdwws"))
    ...                     # <state>/ready.json says where everything listens
    net.restart("as"); net.stop_all()          # or: with start(cfg) as net: ...

A node is ready when its log (`<state>/logs/NODE.log`, stdout and stderr) shows the line
`listening NODE host:port`. Every wait is bounded; stop sends SIGTERM, then SIGKILL.
"""

from __future__ import annotations

import argparse
import atexit
import json
import os
import random
import re
import select
import signal
import socket
import subprocess
import sys
import threading
import time
import weakref
from collections.abc import Callable, Iterable
from dataclasses import asdict
from pathlib import Path

from . import pki
from .config import NODES, Endpoint, NetworkConfig, Options, default_endpoints
from .faults import FAULTS, validate
from .store import Store
from .variations import BY_NAME as VARIATIONS_BY_NAME
from .variations import validate as validate_variations

READY_TIMEOUT_S = 20.0
STOP_TIMEOUT_S = 5.0
TLS_NODES = pki.TLS_NODES
SIP_NODES = ("pcscf", "scscf")  # listen on UDP and TCP
_PROJECT_ROOT = str(Path(__file__).resolve().parent.parent)
_live: weakref.WeakSet[Network] = weakref.WeakSet()


class NodeFailed(RuntimeError):
    """A node exited or did not report `listening` in time."""


def prepare(cfg: NetworkConfig) -> None:
    """Everything the nodes share, done once before they start: config, PKI, database."""
    cfg.options.check()
    validate(cfg.faults)
    validate_variations(cfg.variations)
    cfg.state.mkdir(parents=True, exist_ok=True)
    (cfg.state / "logs").mkdir(exist_ok=True)
    cfg.save()
    pki.ensure(cfg)
    Store(cfg.db_path).seed(cfg)


class ForkedNode:
    """A node the zygote forked (refnet/zygote.py), with the part of Popen's interface the
    launcher uses. It is not our child: it has exited when its PID is gone (the zygote reaps it
    at once), and its exit status is in its log, not here."""

    EXITED = "exited (forked node: see its log)"

    def __init__(self, pid: int):
        self.pid = pid
        self.returncode: str | None = None

    def poll(self) -> str | None:
        if self.returncode is None:
            try:
                os.kill(self.pid, 0)
            except ProcessLookupError:
                self.returncode = self.EXITED
            except PermissionError:
                pass  # alive, not ours to signal
        return self.returncode

    def wait(self, timeout: float) -> str:
        """Like Popen.wait, but always bounded: the launcher never waits for a node without end."""
        deadline = time.monotonic() + timeout
        while self.poll() is None:
            if time.monotonic() >= deadline:
                raise subprocess.TimeoutExpired(f"node {self.pid}", timeout)
            time.sleep(0.02)
        return self.returncode


class Zygote:
    """The launcher's end of a fork server (refnet/zygote.py) for the networks in `state_dirs`.

    A network started with fork_server=True and no zygote given makes one of its own and ends it
    with its nodes. Several networks started at once (one per worker of a parallel harness run)
    can share one, made by `shared_zygote` and closed by its maker once every network is stopped:
    the node modules are then imported once for all of them instead of once per network (0.45 s
    of CPU each, measured under `-n 2` where both networks start on two busy cores; issue 15).
    Its command line names every state directory it serves, so that a node it forked, which
    carries that command line, is still found by its network's state directory."""

    def __init__(self, state_dirs: Iterable[Path], log_path: Path, env: dict[str, str]):
        self.state_dirs = [str(d) for d in state_dirs]
        argv = [sys.executable, "-m", "refnet.node", "zygote"]
        for d in self.state_dirs:
            argv += ["--state-dir", d]
        log_path.parent.mkdir(parents=True, exist_ok=True)
        log = open(log_path, "ab")
        try:
            self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, env=env,
                                         start_new_session=True)
        finally:
            log.close()
        self.lock = threading.Lock()  # one request and its answer at a time

    def spawn(self, node: str, state_dir: Path, log_path: Path, timeout: float) -> ForkedNode:
        request = json.dumps({"node": node, "state_dir": str(state_dir), "log": str(log_path)})
        with self.lock:
            if self.proc.poll() is not None:
                raise NodeFailed(f"the zygote exited with {self.proc.returncode} (see its log)")
            self.proc.stdin.write(request.encode() + b"\n")
            self.proc.stdin.flush()
            deadline = time.monotonic() + timeout
            answer = b""
            fd = self.proc.stdout.fileno()
            while not answer.endswith(b"\n"):
                left = deadline - time.monotonic()
                if left <= 0 or not select.select([fd], [], [], left)[0]:
                    raise NodeFailed(f"the zygote did not fork {node} within {timeout:.0f} s")
                chunk = os.read(fd, 64)
                if not chunk:
                    raise NodeFailed(f"the zygote exited while forking {node} (see its log)")
                answer += chunk
        text = answer.decode().strip()
        if not text.isdigit():
            raise NodeFailed(f"the zygote could not fork {node}: {text}")
        return ForkedNode(int(text))

    def close(self) -> None:
        """Closing its input ends the zygote; the nodes it forked are stopped by the launcher."""
        try:
            self.proc.stdin.close()
        except OSError:
            pass
        try:
            self.proc.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(STOP_TIMEOUT_S)
        self.proc.stdout.close()


class Network:
    def __init__(self, cfg: NetworkConfig, fork_server: bool = False, shared: Zygote | None = None):
        self.cfg = cfg
        self.procs: dict[str, subprocess.Popen | ForkedNode] = {}
        self.listening: dict[str, tuple[str, int]] = {}
        # fork_server: nodes are forked from a zygote that imported their modules once, instead
        # of each importing them in a new interpreter (refnet/zygote.py)
        self.fork_server = fork_server
        self._zygote: Zygote | None = shared  # made on the first fork unless shared
        self._own_zygote = shared is None
        _live.add(self)

    # -- helpers for callers -------------------------------------------------------------------
    @property
    def state_dir(self) -> Path:
        return self.cfg.state

    @property
    def ready_file(self) -> Path:
        return self.cfg.state / "ready.json"

    def log_file(self, node: str) -> Path:
        return self.cfg.state / "logs" / f"{node}.log"

    def url(self, node: str, path: str = "", scheme: str = "https") -> str:
        return self.cfg.url(node, path, scheme)

    def running(self) -> list[str]:
        return [n for n, p in self.procs.items() if p.poll() is None]

    def pids(self) -> dict[str, int]:
        return {n: p.pid for n, p in self.procs.items()}

    # -- lifecycle -----------------------------------------------------------------------------
    def _spawn(self, node: str) -> int:
        log_path = self.log_file(node)
        offset = log_path.stat().st_size if log_path.exists() else 0
        env = _node_env()
        if self.fork_server:
            if self._zygote is None:
                self._zygote = Zygote([self.cfg.state], self.cfg.state / "logs" / "zygote.log", env)
            log_path.touch()  # the fork opens it itself, maybe after the first look at it
            self.procs[node] = self._zygote.spawn(node, self.cfg.state, log_path, READY_TIMEOUT_S)
            return offset
        with open(log_path, "ab") as log:
            self.procs[node] = subprocess.Popen(
                [sys.executable, "-m", "refnet.node", node, "--state-dir", str(self.cfg.state)],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env,
                start_new_session=True)  # own process group: signals reach the node and only it
        return offset

    def _wait_listening(self, pending: dict[str, int], timeout: float,
                        on_ready: Callable[[str, str, int, int], None] | None) -> None:
        deadline = time.monotonic() + timeout
        while pending:
            for node, offset in list(pending.items()):
                with open(self.log_file(node), "rb") as f:
                    f.seek(offset)
                    text = f.read().decode(errors="replace")
                m = re.search(rf"^listening {re.escape(node)} (\S+):(\d+)\s*$", text, re.M)
                if m:
                    self.listening[node] = (m.group(1), int(m.group(2)))
                    del pending[node]
                    if on_ready:
                        on_ready(node, m.group(1), int(m.group(2)), self.procs[node].pid)
                elif self.procs[node].poll() is not None:
                    raise NodeFailed(f"node {node} exited with {self.procs[node].returncode}:\n{text[-3000:]}")
            if pending and time.monotonic() > deadline:
                raise NodeFailed(f"no 'listening' line from {', '.join(pending)} within {timeout:.0f} s "
                                 f"(see {self.cfg.state / 'logs'})")
            if pending:
                time.sleep(0.05)

    def start_nodes(self, nodes: Iterable[str], timeout: float = READY_TIMEOUT_S,
                    on_ready: Callable[[str, str, int, int], None] | None = None) -> None:
        nodes = list(nodes)
        unknown = [n for n in nodes if n not in NODES]
        if unknown:
            raise ValueError(f"unknown node(s): {', '.join(unknown)}")
        pending = {}
        for node in nodes:  # all at once: start-up time is the slowest node, not the sum
            if node in self.running():
                continue
            pending[node] = self._spawn(node)
        try:
            self._wait_listening(pending, timeout, on_ready)
        finally:
            self.write_ready()

    def stop(self, node: str | None = None) -> None:
        """Stop one node, or all of them when `node` is None."""
        targets = [node] if node else list(self.procs)
        for name in targets:  # SIGTERM to everyone first, then wait: stops in parallel
            proc = self.procs.get(name)
            if proc is not None and proc.poll() is None:
                _signal_group(proc, signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT_S
        for name in targets:
            proc = self.procs.pop(name, None)
            self.listening.pop(name, None)
            if proc is None:
                continue
            try:
                proc.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                _signal_group(proc, signal.SIGKILL)
                proc.wait(STOP_TIMEOUT_S)
        self.write_ready()

    def restart(self, node: str, timeout: float = READY_TIMEOUT_S) -> None:
        self.stop(node)
        self.start_nodes([node], timeout)

    def stop_all(self) -> None:
        self.stop()
        if self._zygote is not None and self._own_zygote:
            self._zygote.close()
            self._zygote = None
        self.ready_file.unlink(missing_ok=True)

    def __enter__(self) -> Network:
        return self

    def __exit__(self, *exc) -> None:
        self.stop_all()

    def write_ready(self) -> None:
        cfg = self.cfg
        nodes = {n: {"host": h, "port": p, "pid": self.procs[n].pid, "tls_name": cfg.endpoints[n].tls_name}
                 for n, (h, p) in self.listening.items() if n in self.procs}
        ready = {
            "state_dir": str(cfg.state), "nodes": nodes, "ca_file": str(cfg.ca_file),
            "keylogs": {n: str(cfg.keylog(n)) for n in nodes if n in TLS_NODES},
            "options": asdict(cfg.options), "faults": list(cfg.faults), "variations": list(cfg.variations),
            "issuer": cfg.issuer, "wsf_url": cfg.wsf_url,
        }
        tmp = self.ready_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(ready, indent=2))
        tmp.replace(self.ready_file)


def _signal_group(proc: subprocess.Popen | ForkedNode, sig: int) -> None:
    try:
        os.killpg(proc.pid, sig)  # the node leads its own group (start_new_session)
    except ProcessLookupError:
        pass


def start(cfg: NetworkConfig, nodes: Iterable[str] = NODES, timeout: float = READY_TIMEOUT_S,
          on_ready: Callable[[str, str, int, int], None] | None = None, fork_server: bool = False,
          zygote: Zygote | None = None) -> Network:
    """Prepare the state directory, start `nodes` and wait until each one listens (forked from a
    zygote with `fork_server`, see refnet/zygote.py: the network's own, or `zygote` made by
    `shared_zygote` for it and others).

    On failure every node already started is stopped before the error propagates."""
    prepare(cfg)
    net = Network(cfg, fork_server=fork_server or zygote is not None, shared=zygote)
    try:
        net.start_nodes(nodes, timeout, on_ready)
    except BaseException:
        net.stop_all()
        raise
    return net


def _node_env() -> dict[str, str]:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (_PROJECT_ROOT, env.get("PYTHONPATH")) if p)
    return env


def shared_zygote(state_dirs: Iterable[str | Path], log_path: Path) -> Zygote:
    """One fork server for the networks in `state_dirs`, started now (its imports run while the
    state directories are prepared); pass it to `start` for each of them, and `close` it once all
    of them are stopped. Its own errors go to `log_path`."""
    return Zygote([Path(d) for d in state_dirs], Path(log_path), _node_env())


@atexit.register
def _stop_leftovers() -> None:
    for net in list(_live):
        net.stop_all()


# -- ports ---------------------------------------------------------------------------------------
def _bindable(host: str, port: int, kind: int) -> bool:
    with socket.socket(socket.AF_INET, kind) as s:
        if kind == socket.SOCK_STREAM:  # like the servers do: TIME_WAIT leftovers don't count
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def _ephemeral_port(host: str, udp_too: bool) -> int:
    for _ in range(100):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind((host, 0))
            port = s.getsockname()[1]
        if not udp_too or _bindable(host, port, socket.SOCK_DGRAM):
            return port
    raise OSError(f"no free port on {host}")


PORT_FLOOR = 20000  # listening ports are picked in [PORT_FLOOR, start of the ephemeral range)


def _ephemeral_range() -> tuple[int, int]:
    try:
        low, high = (int(x) for x in Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
        return low, high
    except (OSError, ValueError):
        return 32768, 60999  # Linux's default


def _listening_port(host: str, udp_too: bool, taken: set[tuple[str, int]]) -> int:
    """A port that is free now, below the kernel's ephemeral range. A port inside that range can
    be handed to an outgoing connection from the same address (any process's: the nodes of another
    network connect out from 127.0.0.13 too) between this look and the node's bind, which then
    fails with "address already in use" (seen once in `make test`, the fault matrix's emulated
    WSF). Outside the range only another deliberate bind can take it."""
    low, _high = _ephemeral_range()
    if low - PORT_FLOOR < 1000:  # an unusual range leaves no room below it
        return _ephemeral_port(host, udp_too)
    for _ in range(200):
        port = random.randrange(PORT_FLOOR, low)
        if (host, port) in taken:
            continue
        if _bindable(host, port, socket.SOCK_STREAM) and (not udp_too or _bindable(host, port, socket.SOCK_DGRAM)):
            return port
    return _ephemeral_port(host, udp_too)


def free_endpoints(base: dict[str, Endpoint] | None = None, prefer_defaults: bool = True) -> dict[str, Endpoint]:
    """The same addresses and names, on ports that are free now: the default port when it is
    free (and `prefer_defaults`), else one below the ephemeral range. Taken ports stay distinct."""
    result: dict[str, Endpoint] = {}
    taken: set[tuple[str, int]] = set()
    for node, ep in (base or default_endpoints()).items():
        udp = node in SIP_NODES
        free = (ep.host, ep.port) not in taken and _bindable(ep.host, ep.port, socket.SOCK_STREAM) and (
            not udp or _bindable(ep.host, ep.port, socket.SOCK_DGRAM))
        port = ep.port if prefer_defaults and free else _listening_port(ep.host, udp, taken)
        taken.add((ep.host, port))
        result[node] = Endpoint(ep.host, port, ep.tls_name)
    return result


# -- command line (python -m refnet up | faults; reused by `ims-conformance reference`) -----------
def add_up_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--state-dir", default=".refnet", help="where config, PKI, database, logs go")
    parser.add_argument("--fault", action="append", default=[], metavar="NAME",
                        help="switch a named fault on (repeatable; see `faults`)")
    parser.add_argument("--variation", action="append", default=[], metavar="NAME",
                        help="switch a named conformant variation on (repeatable; see `variations`)")
    for name, choices in Options.CHOICES.items():
        parser.add_argument(f"--{name.replace('_', '-')}", choices=choices, default=getattr(Options(), name))
    parser.add_argument("--no-wsf-url-member", action="store_true", help="token response without wsf_url")
    parser.add_argument("--token-lifetime-s", type=int, default=Options().token_lifetime_s,
                        help="access token lifetime of the AS (short ones keep the expiry cases fast)")
    parser.add_argument("--node", action="append", choices=NODES, metavar="NODE",
                        help="start only these nodes (repeatable; default all)")
    parser.add_argument("--free-ports", action="store_true",
                        help="use ephemeral ports where the default ones are taken")


def config_from_args(args: argparse.Namespace) -> NetworkConfig:
    variations = validate_variations(getattr(args, "variation", []))
    overrides = {k: v for name in variations for k, v in VARIATIONS_BY_NAME[name].options.items()}
    lifetime = {"token_lifetime_s": getattr(args, "token_lifetime_s", Options().token_lifetime_s)}
    options = Options(**{name: getattr(args, name) for name in Options.CHOICES},
                      wsf_url_member=not args.no_wsf_url_member, **(lifetime | overrides))  # a variation wins
    endpoints = free_endpoints() if args.free_ports else default_endpoints()
    return NetworkConfig(state_dir=str(Path(args.state_dir).resolve()), endpoints=endpoints, options=options,
                         faults=validate(args.fault), variations=variations)


def run_foreground(cfg: NetworkConfig, nodes: Iterable[str] = NODES, out=sys.stdout) -> int:
    """Start, print one line per node as it listens, and stop everything on SIGINT/SIGTERM/SIGHUP
    or when a node dies. Returns the exit status."""
    # The handler only appends to a list: a handler that took a lock (threading.Event.set) could
    # run while the main thread held that very lock inside Event.wait, and wait for itself forever
    # (a Ctrl-C that left `reference up` and its nodes running, seen once under load).
    stop: list[int] = []
    previous = {s: signal.signal(s, lambda signum, _frame: stop.append(signum))
                for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    try:
        def ready(node, host, port, pid):
            print(f"{node:<7} listening on {host}:{port} (pid {pid})", file=out, flush=True)

        net = start(cfg, nodes, on_ready=ready)
        with net:
            print(f"reference network up: {net.ready_file}  (Ctrl-C stops it)", file=out, flush=True)
            while not stop:
                time.sleep(0.2)  # a signal runs its handler at once; the sleep then ends as planned
                dead = [] if stop else [n for n, p in net.procs.items() if p.poll() is not None]
                if dead:
                    print(f"node(s) exited: {', '.join(dead)}; stopping (logs: {cfg.state / 'logs'})",
                          file=out, flush=True)
                    return 1
        print("reference network stopped", file=out, flush=True)
        return 0
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def format_faults() -> str:
    width = max(len(f.name) for f in FAULTS)
    return "\n".join(f"{f.name:<{width}}  {f.node:<6}  {f.breaks}" for f in FAULTS)
