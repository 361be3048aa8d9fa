"""Free ports for a network on free ports (refnet.launcher.free_endpoints): below the kernel's
ephemeral range, so no outgoing connection can take one between the look and the node's bind."""

from __future__ import annotations

import socket

from refnet import launcher
from refnet.config import default_endpoints


def test_free_ports_are_below_the_ephemeral_range_and_distinct():
    low, _high = launcher._ephemeral_range()
    for _ in range(5):
        eps = launcher.free_endpoints(prefer_defaults=False)
        assert set(eps) == set(default_endpoints())
        ports = [(ep.host, ep.port) for ep in eps.values()]
        assert len(set(ports)) == len(ports)
        assert all(launcher.PORT_FLOOR <= port < low for _host, port in ports), ports


def test_a_port_in_use_is_not_chosen(monkeypatch):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as busy:
        busy.bind(("127.0.0.13", 0))
        busy.listen()
        taken_port = busy.getsockname()[1]
        picks = iter([taken_port, taken_port, 23456])
        monkeypatch.setattr(launcher.random, "randrange", lambda a, b: next(picks))
        monkeypatch.setattr(launcher, "_ephemeral_range", lambda: (max(taken_port, 23457) + 1, 60999))
        assert launcher._listening_port("127.0.0.13", False, set()) == 23456


def test_an_unusual_ephemeral_range_falls_back_to_an_ephemeral_port(monkeypatch):
    monkeypatch.setattr(launcher, "_ephemeral_range", lambda: (1024, 65535))
    port = launcher._listening_port("127.0.0.13", True, set())
    assert 0 < port < 65536
