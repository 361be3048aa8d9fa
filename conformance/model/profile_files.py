"""Files a profile names must exist before anything is sent: the CA bundle that signs the SUT's
certificates (without it every TLS connection would fail as if the SUT were wrong), and the
directory of the key logs the capture reads when capture is on (the SUT writes the file itself
once TLS traffic starts). The deviations file is checked by `load_profile`.

A file under the state directory of a reference network the profile launches is created when that
network starts, so before the start it is not required (`network_started=False`).
"""

from __future__ import annotations

from pathlib import Path

from conformance.model.yaml_marks import MarkedDict, MarkedList, Problem


def _mark(node, key) -> tuple[int, int]:
    return node.mark_of(key) if isinstance(node, MarkedDict | MarkedList) else (1, 1)


PEERS_KEYLOG = "peers.keylog"  # conformance/peers/base.py writes the emulated peers' TLS keys there


def _launched_state_dir(profile) -> Path | None:
    ref = profile.reference_network or {}
    if not ref.get("launch"):
        return None
    return profile.resolve_path(ref.get("state_dir", ".refnet")).resolve()


def check_files(profile, *, network_started: bool = False) -> list[Problem]:
    file = str(profile.path)
    state = None if network_started else _launched_state_dir(profile)
    problems: list[Problem] = []

    def check(container, key, value, what: str, directory_only: bool = False) -> None:
        path = profile.resolve_path(value).resolve()
        if state is not None and (path == state or state in path.parents):
            return  # the reference network writes it when it starts
        line, col = _mark(container, key)
        if directory_only:
            if not path.parent.is_dir():
                problems.append(Problem(file, line, col, f"{what}: no directory {path.parent}"))
        elif not path.is_file():
            problems.append(Problem(file, line, col, f"{what}: no file {path}"))

    pixit = profile.pixit
    tls = pixit.get("tls") or {}
    if tls.get("ca_bundle"):
        check(tls, "ca_bundle", tls["ca_bundle"], "tls.ca_bundle")
    capture_on = bool((pixit.get("capture") or {}).get("enabled", False))
    keylogs = pixit.get("sut_keylogs") or []
    played = any(isinstance(n, dict) and n.get("supplied") is False for n in (pixit.get("nodes") or {}).values())
    if capture_on and isinstance(keylogs, list):
        for i, path in enumerate(keylogs):
            if played and isinstance(path, str) and Path(path).name == PEERS_KEYLOG:
                continue  # the emulated peers create it in the harness's work directory when they start
            if isinstance(path, str):
                # the SUT may write it only once TLS traffic starts: its directory must be there
                check(keylogs, i, path, f"sut_keylogs[{i}] (capture is enabled and decrypts with it)",
                      directory_only=True)
    return problems
