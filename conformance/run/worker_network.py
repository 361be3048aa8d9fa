"""Parallel runs (`-n N`) against the embedded reference network: one network per worker.

Workers that share one network share its legs: every capture window then holds the messages of
the test cases running at once, and some of them (a refused handshake that carries no cookie,
say) cannot be tied to one test case, so a serial pass turns inconclusive. A shared network is
also a shared bottleneck. When the profile launches the reference network on loopback
addresses, each worker therefore gets its own: the same nodes, options and faults on the next
loopback block (worker gwK: 127.0.0.x -> 127.K+1.0.x; lo answers the whole 127/8) with its own
state directory (PKI issued for those addresses, database, key logs). Its sniffer's BPF filter
names only its own addresses, so a worker's capture holds its own test cases and nothing else:
the verdicts are those of a serial run by construction. The controller starts these networks
while xdist spawns the workers (conformance.run.worker_network_start).

A vendor's network cannot be duplicated: with one, workers share it and each test case keeps
the messages tied to it (conformance.capture.correlate).
"""

from __future__ import annotations

import copy
import dataclasses
import ipaddress
import re
from pathlib import PurePosixPath
from typing import Any


def worker_index(config) -> int | None:
    """0 for xdist worker gw0, ...; None in a serial run or in the xdist controller."""
    worker = getattr(config, "workerinput", {}).get("workerid")
    if not worker:
        return None
    m = re.fullmatch(r"gw(\d+)", str(worker))
    return int(m.group(1)) if m else None


def runs_in_parallel(config) -> bool:
    """The controller of an xdist run (workers start their own networks)."""
    n = getattr(config.option, "numprocesses", None)
    return bool(n) and not hasattr(config, "workerinput")


def _node_addresses(profile) -> list[str]:
    return [str(n["address"]) for n in (profile.pixit.get("nodes") or {}).values()
            if isinstance(n, dict) and n.get("address")]


def applies(profile) -> bool:
    """A launched reference network on loopback IPv4 addresses can be given to each worker,
    unless one already runs at the profile's addresses (`ims-conformance reference up`, perhaps
    with faults switched on by hand): then the workers share that one, as the profile says."""
    ref = profile.reference_network or {}
    if not ref.get("launch") or _already_up(profile):
        return False
    addrs = _node_addresses(profile)
    try:
        return bool(addrs) and all(ipaddress.ip_address(a).version == 4 and ipaddress.ip_address(a).is_loopback
                                   and ipaddress.ip_address(a) < ipaddress.ip_address("127.1.0.0")
                                   for a in addrs)
    except ValueError:
        return False


def _already_up(profile) -> bool:
    from conformance.run.reference import _listening

    node = (profile.pixit.get("nodes") or {}).get("as") or {}
    return bool(node.get("address") and node.get("port")) and _listening(node["address"], int(node["port"]))


def _moved(addr: str, index: int) -> str:
    return str(ipaddress.ip_address(addr) + (index + 1) * 65536)


def _rewrite(value: Any, fn) -> Any:
    if isinstance(value, dict):
        for k in list(value):
            value[k] = _rewrite(value[k], fn)
        return value
    if isinstance(value, list):
        for i, v in enumerate(value):
            value[i] = _rewrite(v, fn)
        return value
    if isinstance(value, str):
        return fn(value)
    return value


def for_worker(profile, index: int):
    """The profile of worker `index`: node addresses (in every URL too) and the state directory
    moved; everything else, the PICS and the secrets unchanged."""
    moves = {a: _moved(a, index) for a in _node_addresses(profile)}
    # longest first, never inside a longer address: 127.0.0.1 must not rewrite 127.0.0.11
    pattern = re.compile(r"(?<![\d.])(" + "|".join(re.escape(a) for a in sorted(moves, key=len, reverse=True))
                         + r")(?![\d])")
    ref = copy.deepcopy(profile.reference_network or {})
    state = str(ref.get("state_dir", ".refnet")).rstrip("/")
    worker_state = f"{state}-gw{index}"
    ref["state_dir"] = worker_state

    def fn(text: str) -> str:
        text = pattern.sub(lambda m: moves[m.group(1)], text)
        if text == state or text.startswith(state + "/"):  # a path into the state directory
            text = str(PurePosixPath(worker_state) / PurePosixPath(text).relative_to(state))
        return text

    pixit = _rewrite(copy.deepcopy(profile.pixit), fn)
    # the emulated peers' CA (peers.tls) is the worker's network's CA when it names one
    raw = copy.deepcopy(profile.raw)
    if isinstance(raw.get("peers"), dict):
        raw["peers"] = _rewrite(raw["peers"], fn)
    return dataclasses.replace(profile, pixit=pixit, reference_network=ref, raw=raw)
