"""Start the embedded reference network for a profile that asks for it (`reference_network.launch`).

This is the only place the harness touches `refnet`, and only through its launcher: it starts the
nodes as subprocesses and afterwards reaches them over the wire like any vendor's network. The
network's options follow the profile's PICS so the two cannot disagree.
"""

from __future__ import annotations

import json
import socket
from dataclasses import asdict
from pathlib import Path


class NetworkMismatch(Exception):
    """A network already listens where the profile wants one, but not the one it asks for."""


def _listening(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def network_config(profile):
    from refnet.config import Endpoint, NetworkConfig, Options

    ref = profile.reference_network or {}
    nodes = profile.pixit["nodes"]
    pics = profile.pics
    state_dir = Path(ref.get("state_dir", ".refnet"))
    if not state_dir.is_absolute():
        state_dir = Path(profile.base_dir) / state_dir
    cfg = NetworkConfig(
        state_dir=str(state_dir),
        endpoints={name: Endpoint(n["address"], int(n["port"]), _name_of(n)) for name, n in nodes.items()},
        options=Options(signalling=pics.get("signalling.path", "relay"),
                        bearer_syntax=pics.get("sip.bearer_syntax", "rfc8898"),
                        verify=pics.get("wsf.verify", "introspection"),
                        core_transport=pics.get("core.transport", "udp"),
                        wsf_url_member=bool(pics.get("token.wsf_url_member", True)),
                        token_lifetime_s=int(ref.get("token_lifetime_s", 300)),
                        reregister_token=pics.get("wsf.reregister_token", "every"),
                        ws_close=pics.get("wsf.on_ws_close", "deregister"),
                        origin_missing=pics.get("wsf.origin_missing", "accept"),
                        min_expires_s=int(ref.get("min_expires_s", 2))),
        faults=list(ref.get("faults") or []),
    )
    users = profile.pixit.get("users", {}).get("provisioning") or {}
    if users.get("token"):
        cfg.admin_token = users["token"]
    return cfg


def ensure_up(profile, zygote=None):
    """Start the reference network unless the profile does not ask for it or it already listens.
    Returns the started network (to stop at the end) or None. `zygote`: a fork server shared with
    other networks (refnet.launcher.shared_zygote), else the network makes its own."""
    ref = profile.reference_network or {}
    if not ref.get("launch"):
        return None
    nodes = profile.pixit["nodes"]
    # only the nodes the profile supplies: the harness plays the others (conformance/peers)
    supplied = [n for n, spec in nodes.items() if spec.get("supplied", True) is not False]
    if not supplied:
        return None
    probe = nodes[supplied[0]]
    cfg = network_config(profile)
    if _listening(probe["address"], int(probe["port"])):
        check_running(cfg, f"{probe['address']}:{probe['port']}")
        return None  # `ims-conformance reference up` already runs it, as the profile asks
    from refnet import launcher

    # forked from a zygote: the nodes import their libraries once, not five times (issue 15)
    return launcher.start(cfg, nodes=supplied, fork_server=True, zygote=zygote)


def shared_zygote(profiles, log_path: Path):
    """One fork server for the reference networks of `profiles` (a parallel run's workers'),
    started now: the node modules are imported once for all of them instead of once per network
    (refnet.launcher.shared_zygote). Pass it to `ensure_up` for each; `close` it once every
    network is stopped."""
    from refnet import launcher

    return launcher.shared_zygote([network_config(p).state_dir for p in profiles], log_path)


def check_running(cfg, where: str) -> None:
    """Reuse a running network only if its ready file says it runs the faults and options the
    profile asks for: a verdict against another network's faults would be meaningless."""
    ready_file = Path(cfg.state_dir) / "ready.json"
    try:
        ready = json.loads(ready_file.read_text())
    except (OSError, ValueError):
        raise NetworkMismatch(f"something already listens on {where} but {ready_file} does not describe it; "
                              "stop it or point the profile elsewhere (nothing was sent)") from None
    wanted = {"faults": sorted(cfg.faults), "options": asdict(cfg.options)}
    running = {"faults": sorted(ready.get("faults") or []), "options": ready.get("options") or {}}
    diffs = [f"{key}: running {running[key]!r}, the profile asks for {wanted[key]!r}"
             for key in ("faults", "options") if running[key] != wanted[key]]
    if diffs:
        raise NetworkMismatch(f"the reference network already running on {where} was started with other "
                              f"settings ({'; '.join(diffs)}); stop it (Ctrl-C in its terminal) so the run "
                              "can start the one the profile asks for (nothing was sent)")


def _name_of(node: dict) -> str:
    """The node's host name: its certificate name, or for a SIP node the host of its SIP URI (the
    reference network resolves no names, so it maps Route and Path hosts to addresses with these;
    without them a NOTIFY routed by the P-CSCF's name finds no address)."""
    if node.get("tls_name"):
        return node["tls_name"]
    uri = str(node.get("sip_uri", ""))
    host = uri.split(":", 1)[1] if ":" in uri else ""
    return host.split(";")[0].split(">")[0].split(":")[0].rsplit("@", 1)[-1]

