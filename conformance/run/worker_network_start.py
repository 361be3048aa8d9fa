"""The xdist controller starts every worker's reference network while the workers start.

Each worker of a parallel run gets a reference network of its own (conformance.run.worker_network).
Started by the worker itself, that network comes up only after xdist has spawned the worker, the
worker has imported pytest and the plugins, and then the worker waits for its five nodes before
it collects: measured on the 2-core benchmark machine, the fixed cost of `-n 2` was about 13 s
wall against 4.4 s serially (`-k` selecting nothing), most of it one thing after the other. Here
the controller, idle while xdist spawns the workers, starts each worker's network in a thread
(launcher.start: prepare the state directory, spawn the nodes, wait until each listens), and each
worker only waits for its own to be up.

The hand-over is a small file per worker in the run's work directory, written by the controller
when the start ended: `{"ok": true}` or `{"error": "..."}` (a worker then fails its session as it
would have failed starting the network itself). The controller stops the networks at the end of
the session, after every worker has finished. A worker without a file (one xdist restarted under
a new id, say) starts its own network as before.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

from conformance.run import worker_network

HANDOVER_DIR = "worker-networks"
WORKERINPUT_KEY = "ims_network_started_by_controller"
# launcher.READY_TIMEOUT_S for the nodes, plus preparing the state directory (a new PKI for the
# worker's addresses on the first run) with both networks and both workers starting at once
WAIT_S = 60.0
POLL_S = 0.05


class NetworkNotStarted(Exception):
    """The controller could not start this worker's network: the reason, as the launcher said it."""


def handover_file(workdir: Path, index: int) -> Path:
    return Path(workdir) / HANDOVER_DIR / f"gw{index}.json"


class ControllerNetworks:
    """The networks the controller starts for workers gw0 .. gw{count-1}."""

    def __init__(self, profile, count: int, workdir: Path):
        self.profile = profile
        self.count = count
        self.workdir = Path(workdir)
        self.networks: dict[int, object] = {}
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self.zygote = None  # the networks' shared fork server (refnet.launcher.shared_zygote)

    def start(self) -> None:
        """Clear old hand-over files (a worker must never take an earlier run's word for it), then
        start each network in a thread of its own and return at once."""
        folder = self.workdir / HANDOVER_DIR
        folder.mkdir(parents=True, exist_ok=True)
        for old in folder.glob("gw*.json"):
            old.unlink(missing_ok=True)
        profiles = [worker_network.for_worker(self.profile, i) for i in range(self.count)]
        self.zygote = self._shared_zygote(profiles, folder)
        for index, profile in enumerate(profiles):
            t = threading.Thread(target=self._start_one, args=(index, profile), name=f"refnet-gw{index}", daemon=True)
            t.start()
            self._threads.append(t)

    def _shared_zygote(self, profiles: list, folder: Path):
        """One fork server for every worker's network, started before any of them: the node
        modules are imported once instead of once per network, while the state directories are
        prepared (0.45 s of CPU a network, on the cores that start the workers). None if it cannot
        be started: each network then makes its own."""
        from conformance.run import reference

        if self.count < 2:
            return None
        try:
            return reference.shared_zygote(profiles, folder / "zygote.log")
        except (OSError, ValueError, KeyError):
            return None

    def _start_one(self, index: int, profile) -> None:
        """Start worker gw`index`'s network (`profile`: the run's profile at its addresses)."""
        from conformance.run import reference

        try:
            network = reference.ensure_up(profile, zygote=self.zygote)
            with self._lock:
                if network is not None:
                    self.networks[index] = network
            outcome = {"ok": True}
        except Exception as exc:  # reported to the worker, which fails its session with it
            outcome = {"error": f"{type(exc).__name__}: {exc}"}
        target = handover_file(self.workdir, index)
        tmp = target.with_suffix(".tmp")
        tmp.write_text(json.dumps(outcome))
        tmp.replace(target)  # whole or not at all: a worker never reads half a file

    def stop_soon(self, index: int) -> None:
        """Worker gw`index` has finished: stop its network in the background while the others
        still run (the controller's loop must not wait for it)."""
        with self._lock:
            network = self.networks.pop(index, None)
        if network is not None:
            t = threading.Thread(target=network.stop_all, name=f"refnet-gw{index}-stop", daemon=True)
            t.start()
            self._threads.append(t)

    def stop(self, timeout: float = WAIT_S) -> None:
        """Stop every network still running, all at once (after a start or a stop still under way
        has ended, bounded)."""
        deadline = time.monotonic() + timeout
        for t in list(self._threads):
            t.join(max(0.0, deadline - time.monotonic()))
        for index in list(self.networks):
            self.stop_soon(index)
        for t in self._threads:
            t.join(max(0.0, deadline - time.monotonic()))
        if self.zygote is not None:  # every network is stopped: its nodes are gone
            self.zygote.close()
            self.zygote = None


def wait_for_mine(workdir: Path, index: int, timeout: float = WAIT_S) -> None:
    """In worker gw`index`: return once the controller has started this worker's network; raise
    NetworkNotStarted with the launcher's reason if it could not, or when `timeout` passes."""
    target = handover_file(workdir, index)
    deadline = time.monotonic() + timeout
    while True:
        try:
            outcome = json.loads(target.read_text())
        except FileNotFoundError:
            outcome = None
        if outcome is not None:
            if outcome.get("ok"):
                return
            raise NetworkNotStarted(f"the reference network of worker gw{index}: {outcome.get('error')}")
        if time.monotonic() > deadline:
            raise NetworkNotStarted(f"the reference network of worker gw{index} was not up within {timeout:.0f} s "
                                    f"(no {target})")
        time.sleep(POLL_S)
