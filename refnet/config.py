"""Configuration shared by the node processes of one reference network.

The launcher writes it once as `<state_dir>/network.json`; each node process reads it. Defaults
follow ../shared/BINDING.md (addresses, names, identities, client secrets).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

NODES = ("as", "3rdwws", "wsf", "pcscf", "scscf")


@dataclass
class Endpoint:
    host: str
    port: int
    tls_name: str = ""  # DNS name in the node's certificate (TLS nodes only)


def default_endpoints() -> dict[str, Endpoint]:
    return {
        "3rdwws": Endpoint("127.0.0.11", 8443, "app.thirdparty.example"),
        "as": Endpoint("127.0.0.12", 9443, "wws.operator.example"),
        "wsf": Endpoint("127.0.0.13", 7443, "wsf.operator.example"),
        "pcscf": Endpoint("127.0.0.14", 5060, "pcscf.ims.example.net"),
        "scscf": Endpoint("127.0.0.15", 5060, "scscf.ims.example.net"),
    }


@dataclass
class Options:
    """PICS choices the reference network implements (BINDING.md)."""

    signalling: str = "relay"  # relay | direct
    bearer_syntax: str = "rfc8898"  # rfc8898 | ts24371
    verify: str = "introspection"  # introspection | local_jwt
    core_transport: str = "udp"  # udp | tcp
    wsf_url_member: bool = True
    token_lifetime_s: int = 300
    code_lifetime_s: int = 60
    # registration lifecycle after step 22 (docs/lifecycle.md)
    reregister_token: str = "every"  # every | first (PICS wsf.reregister_token)
    ws_close: str = "deregister"  # deregister | expire (PICS wsf.on_ws_close)
    origin_missing: str = "accept"  # accept | reject (PICS wsf.origin_missing)
    min_expires_s: int = 2  # the S-CSCF's Min-Expires; short so expiry cases stay fast
    # origins whose pages may open the WSF's and the 3rdWWS's WebSocket (RFC 6455 10.2); empty =
    # the 3rdWWS's own origins (by address and by certificate name)
    allowed_origins: list[str] = field(default_factory=list)
    token_format: str = "jwt"  # jwt | opaque (PICS token.format)

    CHOICES = {
        "signalling": ("relay", "direct"),
        "bearer_syntax": ("rfc8898", "ts24371"),
        "verify": ("introspection", "local_jwt"),
        "core_transport": ("udp", "tcp"),
        "reregister_token": ("every", "first"),
        "ws_close": ("deregister", "expire"),
        "origin_missing": ("accept", "reject"),
    }
    FORMATS = ("jwt", "opaque")

    def check(self) -> None:
        for name, allowed in self.CHOICES.items():
            if getattr(self, name) not in allowed:
                raise ValueError(f"--{name.replace('_', '-')} must be one of {', '.join(allowed)}")
        if self.token_format not in self.FORMATS:
            raise ValueError(f"token_format must be one of {', '.join(self.FORMATS)}")
        if self.token_format == "opaque" and self.verify == "local_jwt":
            raise ValueError("opaque tokens can only be verified by introspection")


@dataclass
class NetworkConfig:
    state_dir: str
    endpoints: dict[str, Endpoint] = field(default_factory=default_endpoints)
    options: Options = field(default_factory=Options)
    faults: list[str] = field(default_factory=list)
    variations: list[str] = field(default_factory=list)  # refnet/variations.py
    home_domain: str = "ims.example.net"
    visited_network_id: str = "visited.example.net"
    client_id: str = "thirdparty-webrtc-app"
    client_secret: str = "thirdparty-webrtc-app-secret"
    wsf_client_id: str = "wsf"
    wsf_client_secret: str = "wsf-secret"
    admin_token: str = "refnet-admin-token"  # provisioning of test users (AS and 3rdWWS /admin/users)
    scope: str = "ims-webrtc"
    audience: str = "wsf.operator.example"
    # Clients that let a test obtain genuine negative tokens from the AS itself (issue 9 item 4):
    # one whose tokens expire after a few seconds, one whose tokens name another audience.
    short_lived_client_id: str = "thirdparty-short-lived"
    short_lived_client_secret: str = "thirdparty-short-lived-secret"
    short_lived_token_s: int = 1  # its tokens exist only to expire (TP_WSF_TOK_004, TP_AS_INTRO_008, TP_WSF_TOK_019)
    other_audience_client_id: str = "thirdparty-voicemail"
    other_audience_client_secret: str = "thirdparty-voicemail-secret"
    other_audience: str = "voicemail.operator.example"

    def varies(self, name: str) -> bool:
        """Whether the conformant variation `name` is switched on (an unknown name is a bug)."""
        from .variations import BY_NAME

        if name not in BY_NAME:
            raise KeyError(f"unknown variation {name!r}")
        return name in self.variations

    def token_lifetime(self, client_id: str) -> int:
        if client_id == self.short_lived_client_id:
            return self.short_lived_token_s
        return self.options.token_lifetime_s

    def audience_of(self, client_id: str) -> str:
        return self.other_audience if client_id == self.other_audience_client_id else self.audience

    # -- derived paths -------------------------------------------------------------------------
    @property
    def state(self) -> Path:
        return Path(self.state_dir)

    @property
    def db_path(self) -> Path:
        return self.state / "refnet.sqlite3"

    @property
    def pki_dir(self) -> Path:
        return self.state / "pki"

    @property
    def ca_file(self) -> Path:
        return self.pki_dir / "ca.pem"

    def keylog(self, node: str) -> Path:
        return self.state / "keylogs" / f"{node}.keylog"

    def cert_files(self, node: str) -> tuple[Path, Path]:
        return self.pki_dir / f"{node}.pem", self.pki_dir / f"{node}.key"

    def url(self, node: str, path: str = "", scheme: str = "https") -> str:
        ep = self.endpoints[node]
        return f"{scheme}://{ep.host}:{ep.port}{path}"

    @property
    def issuer(self) -> str:
        return self.url("as")

    @property
    def redirect_uri(self) -> str:
        return self.url("3rdwws", "/oauth/callback")

    @property
    def web_origins(self) -> set[str]:
        """Origins allowed to open the SIP WebSockets: the WebRTC application's page (the 3rdWWS)."""
        if self.options.allowed_origins:
            return {o.rstrip("/").lower() for o in self.options.allowed_origins}
        ep = self.endpoints["3rdwws"]
        return {f"https://{ep.host}:{ep.port}", f"https://{ep.tls_name}:{ep.port}"}

    @property
    def wsf_url(self) -> str:
        return self.url("wsf", "/sip", scheme="wss")

    # -- persistence ---------------------------------------------------------------------------
    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)

    @classmethod
    def from_dict(cls, d: dict) -> NetworkConfig:
        d = dict(d)
        d["endpoints"] = {k: Endpoint(**v) for k, v in d["endpoints"].items()}
        d["options"] = Options(**d["options"])
        return cls(**d)

    @classmethod
    def load(cls, state_dir: str | Path) -> NetworkConfig:
        return cls.from_dict(json.loads((Path(state_dir) / "network.json").read_text()))

    def save(self) -> Path:
        self.state.mkdir(parents=True, exist_ok=True)
        p = self.state / "network.json"
        # it holds the client secrets and the provisioning token: readable by its owner only
        fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.fchmod(fd, 0o600)  # an older, world-readable file keeps its mode through O_CREAT
        with os.fdopen(fd, "w") as f:
            f.write(self.to_json())
        return p


# Identities of BINDING.md. Test users beyond these are provisioned at run time (/admin/users).
SEED_USERS = (
    {"web_id": "alice@web.operator.example", "password": "alice-pw", "impi": "alice@ims.example.net",
     "impus": ["sip:alice@ims.example.net", "tel:+15550100"], "tp_username": "jane", "tp_password": "jane-pw"},
    {"web_id": "bob@web.operator.example", "password": "bob-pw", "impi": "bob@ims.example.net",
     "impus": ["sip:bob@ims.example.net"], "tp_username": "joe", "tp_password": "joe-pw"},
)
