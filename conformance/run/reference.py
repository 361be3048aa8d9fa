"""Start the embedded reference network for a profile that asks for it (`reference_network.launch`).

This is the only place the harness touches `refnet`, and only through its launcher: it starts the
nodes as subprocesses and afterwards reaches them over the wire like any vendor's network. The
network's options follow the profile's PICS so the two cannot disagree.
"""

from __future__ import annotations

import socket
from pathlib import Path


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
        endpoints={name: Endpoint(n["address"], int(n["port"]), n.get("tls_name", "")) for name, n in nodes.items()},
        options=Options(signalling=pics.get("signalling.path", "relay"),
                        bearer_syntax=pics.get("sip.bearer_syntax", "rfc8898"),
                        verify=pics.get("wsf.verify", "introspection"),
                        core_transport=pics.get("core.transport", "udp"),
                        wsf_url_member=bool(pics.get("token.wsf_url_member", True)),
                        token_lifetime_s=int(ref.get("token_lifetime_s", 300))),
        faults=list(ref.get("faults") or []),
    )
    users = profile.pixit.get("users", {}).get("provisioning") or {}
    if users.get("token"):
        cfg.admin_token = users["token"]
    return cfg


def ensure_up(profile):
    """Start the reference network unless the profile does not ask for it or it already listens.
    Returns the started network (to stop at the end) or None."""
    ref = profile.reference_network or {}
    if not ref.get("launch"):
        return None
    nodes = profile.pixit["nodes"]
    # only the nodes the profile supplies: the harness plays the others (conformance/peers)
    supplied = [n for n, spec in nodes.items() if spec.get("supplied", True) is not False]
    probe = nodes[supplied[0]] if supplied else None
    if probe is None or _listening(probe["address"], int(probe["port"])):
        return None  # someone (`ims-conformance reference up`) already runs it
    from refnet import launcher

    return launcher.start(network_config(profile), nodes=supplied)
