"""Ports for servers a unit test starts on 127.0.0.1 (not a test module)."""

from __future__ import annotations

import random
import socket


def free_tcp_and_udp_port() -> int:
    """A port free for both TCP and UDP (the emulated SIP nodes listen on both), below the
    kernel's ephemeral range: a port bind(0) hands out there can be taken by any outgoing
    connection of a test running beside this one before the server binds it (seen once in
    `make test`: EADDRINUSE on the emulated P-CSCF's TCP listener)."""
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            low = int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        low = 32768
    for _ in range(200):
        port = random.randrange(20000, max(20001, low))
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as t, \
                    socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
                t.bind(("127.0.0.1", port))
                u.bind(("127.0.0.1", port))
            return port
        except OSError:
            continue
    raise RuntimeError("no port free for both TCP and UDP")
