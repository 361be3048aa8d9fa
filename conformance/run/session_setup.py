"""The session's set-up (reference network, emulated peers, sniffer) while pytest collects.

Bringing the reference network up is mostly waiting for other processes: the zygote imports
the node libraries, forks five nodes, and each must say it listens (0.6-0.7 s serially on the
2-core benchmark machine; about 1.8 s for a worker of `-n 2`, with both networks and both
workers starting at once). Collecting the catalog is 0.6-0.7 s of the harness's own CPU. Done
one after the other they added up before the first test case; here the set-up runs in a thread
from session start and the test loop waits for it before the first case (issue 15).

Whatever the set-up raises is raised again where the loop waits, so a network that cannot start
still ends the session before anything is sent, with the launcher's reason. Every wait is
bounded: the set-up's own (the launcher's readiness timeout, the hand-over wait of a worker)
and, around them, `WAIT_S` here.

`ims-conformance run` starts the reference network(s) even earlier (`start_early`): once the
profile is known to be valid, while it validates the catalog (0.3-0.6 s of one core, the other
idle). The plugin takes them over (`take_early_network`, `take_early_worker_networks`) instead of
starting its own; whatever it did not take (the catalog was invalid, pytest listed the cases
only) the CLI stops (`stop_untaken`). Starting the harness's own network sends nothing to a
system under test, so an invalid catalog still ends the run before anything is sent.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

# the longest set-up bound inside (worker_network_start.WAIT_S, 60 s) plus the peers and sniffer
WAIT_S = 90.0


class SetupTimeout(Exception):
    """The set-up did not end within its bound."""


class BackgroundSetup:
    """`fn` running in a daemon thread; `result()` waits for it (bounded) and re-raises its error."""

    def __init__(self, fn: Callable[[], object], name: str = "session-setup"):
        self._error: BaseException | None = None
        self.value: object = None  # what `fn` returned
        self._thread = threading.Thread(target=self._run, args=(fn,), name=name, daemon=True)
        self._thread.start()

    def _run(self, fn: Callable[[], None]) -> None:
        try:
            self.value = fn()
        except BaseException as exc:  # noqa: BLE001 - handed to the thread that waits, never lost
            self._error = exc

    def done(self) -> bool:
        return not self._thread.is_alive()

    def result(self, timeout: float = WAIT_S) -> object:
        """What the set-up returned, once it has ended well; raise its error, or SetupTimeout past
        `timeout`."""
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise SetupTimeout(f"the session set-up (reference network, peers, sniffer) did not end within "
                               f"{timeout:.0f} s")
        if self._error is not None:
            error, self._error = self._error, None  # raised once; a second wait finds it ended well
            raise error
        return self.value


_early: dict[str, object] = {}  # "network": BackgroundSetup of reference.ensure_up; "workers": ControllerNetworks


def start_early(profile, workers: str | None, workdir: Path) -> None:
    """Start what the plugin would start at session start for this profile: the reference
    network (serial), or one per worker for `-n N` (conformance.run.worker_network_start)."""
    from conformance.run import reference, worker_network, worker_network_start

    if not (profile.reference_network or {}).get("launch"):
        return
    if not workers:
        _early["network"] = BackgroundSetup(lambda: reference.ensure_up(profile), name="refnet-early")
        return
    try:
        count = int(workers)
    except ValueError:  # -n auto / logical: how many workers xdist makes is known only there
        return
    if count > 0 and worker_network.applies(profile):
        networks = worker_network_start.ControllerNetworks(profile, count, Path(workdir).resolve())
        networks.start()
        _early["workers"] = networks


def take_early_network() -> BackgroundSetup | None:
    """The serial network `start_early` is starting, now the plugin's to wait for and stop."""
    return _early.pop("network", None)


def take_early_worker_networks(count: int, workdir: Path):
    """The workers' networks `start_early` is starting, if they are the ones the controller needs."""
    networks = _early.get("workers")
    if networks is None or networks.count != count or networks.workdir != Path(workdir).resolve():
        return None
    return _early.pop("workers")


def stop_untaken() -> None:
    """Stop what `start_early` started and the plugin did not take over (bounded)."""
    setup = _early.pop("network", None)
    if setup is not None:
        try:
            network = setup.result()
        except Exception:  # noqa: BLE001 - it did not start: nothing of it runs (the launcher stopped it)
            network = None
        if network is not None:
            network.stop_all()
    networks = _early.pop("workers", None)
    if networks is not None:
        networks.stop()
