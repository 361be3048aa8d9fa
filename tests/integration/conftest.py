"""Reference networks for integration tests: real node processes on loopback, ephemeral ports,
a temporary state directory each, always stopped at the end of the session.

    def test_x(refnet): ...                                   # default options, all available nodes
    def test_y(refnet_factory):
        net = refnet_factory(faults=["as-code-reusable"], nodes=("as", "3rdwws"))

One network is started per distinct option set and reused. It runs until the end of the test
module that first asked for it (so module-scoped fixtures may hold it), or until the end of the
session with `pin=True` (the default `refnet` network is pinned).
"""

from __future__ import annotations

import base64
import hashlib
import importlib.util
import re
import secrets
from types import SimpleNamespace

import pytest
import requests
from processes import node_processes  # tests/integration/processes.py

from refnet.config import NODES, NetworkConfig, Options
from refnet.launcher import Network, free_endpoints, start
from refnet.node import ENTRY_POINTS


def available_nodes() -> tuple[str, ...]:
    """Nodes whose module exists in this checkout (the network is built by several people)."""
    return tuple(n for n in NODES if importlib.util.find_spec(ENTRY_POINTS[n][0]) is not None)


class RefnetFactory:
    def __init__(self, tmp_path_factory: pytest.TempPathFactory):
        self.tmp = tmp_path_factory
        self.live: dict[tuple, Network] = {}
        self.pinned: set[tuple] = set()
        self.state_dirs: list[str] = []

    def __call__(self, faults=(), signalling="relay", verify="introspection", bearer_syntax="rfc8898",
                 core_transport="udp", nodes=None, pin=False, fresh: str = "", **options) -> Network:
        """`fresh`: a name that gives the caller its own network (nothing else has talked to it,
        e.g. for a capture that must see every TLS handshake)."""
        nodes = tuple(nodes or available_nodes())
        key = (tuple(sorted(faults)), signalling, verify, bearer_syntax, core_transport, nodes,
               tuple(sorted(options.items())), fresh)
        if key not in self.live:
            opts = Options(signalling=signalling, verify=verify, bearer_syntax=bearer_syntax,
                           core_transport=core_transport, **options)
            state = self.tmp.mktemp("refnet")
            self.state_dirs.append(str(state))
            cfg = NetworkConfig(str(state), endpoints=free_endpoints(prefer_defaults=False), options=opts,
                                faults=list(faults))
            self.live[key] = start(cfg, nodes, fork_server=True)  # one import of the node modules per network
        if pin:
            self.pinned.add(key)
        return self.live[key]

    def release_unpinned(self) -> None:
        for key in [k for k in self.live if k not in self.pinned]:
            self.live.pop(key).stop_all()

    def close(self) -> list[int]:
        """Stop everything; return the PIDs of node processes still alive (should be none)."""
        for net in self.live.values():
            net.stop_all()
        self.live.clear()
        return [pid for d in self.state_dirs for pid in node_processes(d)]


@pytest.fixture(scope="session")
def refnet_factory(tmp_path_factory):
    factory = RefnetFactory(tmp_path_factory)
    yield factory
    leftovers = factory.close()
    assert not leftovers, f"node processes left behind: {leftovers}"


@pytest.fixture(scope="module", autouse=True)
def _refnet_module_lifetime(refnet_factory):
    yield
    refnet_factory.release_unpinned()  # bounded memory: ~50 MB per HTTP node, ~25 MB per SIP node


@pytest.fixture(scope="session")
def refnet(refnet_factory) -> Network:
    return refnet_factory(pin=True)


# -- helpers for the UE side (plain requests, no harness code) -------------------------------------
def ue_session(net: Network) -> requests.Session:
    s = requests.Session()
    s.trust_env = False  # REQUESTS_CA_BUNDLE would override verify
    s.verify = str(net.cfg.ca_file)
    return s


def pkce_pair() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


def hidden_transaction(html: str) -> str:
    m = re.search(r'name="transaction" value="([^"]+)"', html)
    assert m, "no hidden transaction field in the authorization page"
    return m.group(1)


_counter = iter(range(1, 1_000_000))


def provision_user(net: Network, **overrides) -> dict:
    """A fresh identity (operator Web ID + third-party account) through POST /admin/users."""
    n = f"{next(_counter)}{secrets.token_hex(3)}"
    user = {"web_id": f"user{n}@web.operator.example", "password": f"pw-{n}", "impi": f"user{n}@ims.example.net",
            "impus": [f"sip:user{n}@ims.example.net", f"tel:+1555{n[-6:]}"],
            "tp_username": f"tp{n}", "tp_password": f"tp-pw-{n}", **overrides}
    r = ue_session(net).post(net.url("as", "/admin/users"), json=user,
                             headers={"Authorization": f"Bearer {net.cfg.admin_token}"}, timeout=10)
    assert r.status_code == 201, r.text
    return user


@pytest.fixture(scope="session")
def refnet_helpers():
    """UE-side helpers: session(net), user(net, **overrides), pkce() -> (verifier, challenge),
    transaction(html) -> the hidden field of the AS login form."""
    return SimpleNamespace(session=ue_session, user=provision_user, pkce=pkce_pair, transaction=hidden_transaction)
