"""Profiles for a running reference network, written the way a vendor would write theirs:
PIXIT from the network's addresses, PICS from its options. The harness then reaches the network
only through this file and the wire.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from refnet.config import SEED_USERS
from refnet.sip_transport import MAX_MESSAGE


def profile_dict(net, **pics_overrides) -> dict:
    cfg = net.cfg
    ep = cfg.endpoints
    o = cfg.options

    def https(node, path=""):
        return f"https://{ep[node].host}:{ep[node].port}{path}"

    fixtures = {u["tp_username"] and name: {k: u[k] for k in ("web_id", "password", "impi", "impus",
                                                               "tp_username", "tp_password")}
                for name, u in zip(("alice", "bob"), SEED_USERS)}
    pics = {
        "signalling.path": o.signalling, "token.format": "jwt", "token.wsf_url_member": o.wsf_url_member,
        "sip.bearer_syntax": o.bearer_syntax, "sip.client_aor": "web_id", "wsf.verify": o.verify,
        "core.transport": o.core_transport, "core.separate_icscf": False,
        "wsf.reregister_token": o.reregister_token, "wsf.on_ws_close": o.ws_close,
        "wsf.origin_missing": o.origin_missing,
    }
    pics.update(pics_overrides)
    return {
        "profile": f"refnet-{Path(cfg.state_dir).name}",
        "sut": {"name": "reference network (test)", "vendor": "ims-webrtc-conformance", "version": "test"},
        "pixit": {
            "home_domain": cfg.home_domain,
            "visited_network_id": cfg.visited_network_id,
            "ue": {"address": "127.0.0.1"},
            "nodes": {
                "3rdwws": {"supplied": True, "address": ep["3rdwws"].host, "port": ep["3rdwws"].port,
                           "base_url": https("3rdwws"), "ws_url": f"wss://{ep['3rdwws'].host}:{ep['3rdwws'].port}/sip",
                           "tls_name": ep["3rdwws"].tls_name},
                "as": {"supplied": True, "address": ep["as"].host, "port": ep["as"].port, "base_url": https("as"),
                       "issuer": cfg.issuer, "jwks_uri": https("as", "/jwks"), "tls_name": ep["as"].tls_name},
                "wsf": {"supplied": True, "address": ep["wsf"].host, "port": ep["wsf"].port, "url": cfg.wsf_url,
                        "tls_name": ep["wsf"].tls_name},
                "pcscf": {"supplied": True, "address": ep["pcscf"].host, "port": ep["pcscf"].port},
                "scscf": {"supplied": True, "address": ep["scscf"].host, "port": ep["scscf"].port},
            },
            "oauth": {"client_id": cfg.client_id, "client_secret": cfg.client_secret,
                      "redirect_uri": cfg.redirect_uri, "scope": cfg.scope, "audience": cfg.audience,
                      "introspection_client_id": cfg.wsf_client_id,
                      "introspection_client_secret": cfg.wsf_client_secret,
                      "short_lived_client": {"client_id": cfg.short_lived_client_id,
                                             "client_secret": cfg.short_lived_client_secret},
                      "other_audience_client": {"client_id": cfg.other_audience_client_id,
                                                "client_secret": cfg.other_audience_client_secret}},
            "tls": {"ca_bundle": str(cfg.ca_file)},
            "sut_keylogs": [str(cfg.keylog(n)) for n in ("3rdwws", "as", "wsf")],
            "capture": {"enabled": True, "interfaces": ["lo"], "settle_ms": 300},
            "users": {"provisioning": {"url": https("as", "/admin/users"), "token": cfg.admin_token},
                      "fixtures": fixtures},
            "lifecycle": {"min_expires": o.min_expires_s, "expiry_wait_ms": o.min_expires_s * 1000 + 1500,
                          "allowed_origin": https("3rdwws"), "deregister_url": https("as", "/admin/deregister"),
                          "deregister_token": cfg.admin_token},
            "timeouts": {"step_ms": 5000, "connect_ms": 3000},
            # the limits the reference WSF and P-CSCF enforce (no requirement fixes them)
            "limits": {"wsf_max_ws_message_bytes": MAX_MESSAGE, "pcscf_max_sip_message_bytes": MAX_MESSAGE},
        },
        "pics": pics,
    }


def write_profile(net, directory: Path, name: str = "profile.yaml", **pics_overrides) -> Path:
    path = Path(directory) / name
    path.write_text(yaml.safe_dump(profile_dict(net, **pics_overrides), sort_keys=False))
    return path


# The reference network provisions test identities at its AS, into the store every node reads.
# With the AS played by the harness, the reference S-CSCF and 3rdWWS never learn of a user created
# there: their profiles take the fixture users instead (what a vendor without a provisioning
# endpoint does; conformance/run/identities.py).
NODES_WITHOUT_PROVISIONING = ("scscf", "3rdwws")


def alone_profile(net, node: str, directory: Path, name: str = "alone.yaml", **pics_overrides) -> Path:
    """The profile of a vendor who supplies only `node` (the network runs only it): every other
    node `supplied: false`, played by the harness with certificates from the network's CA."""
    doc = profile_dict(net, **pics_overrides)
    for other, spec in doc["pixit"]["nodes"].items():
        spec["supplied"] = other == node
    cfg = net.cfg
    doc["peers"] = {"tls": {"ca_cert": str(cfg.ca_file), "ca_key": str(cfg.pki_dir / "ca.key")},
                    # the emulated AS's tokens live as long as the network's would (expiry cases)
                    "token_lifetime_s": cfg.options.token_lifetime_s}
    doc["pixit"]["sut_keylogs"] = [str(cfg.keylog(node))] if node in ("3rdwws", "as", "wsf") else []
    if node in NODES_WITHOUT_PROVISIONING:
        del doc["pixit"]["users"]["provisioning"]
    path = Path(directory) / name
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path
