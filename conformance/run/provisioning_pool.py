"""One HTTP client per provisioning endpoint for the whole process, so that provisioning a fresh
identity for each test case reuses a kept-alive TLS connection (RFC 9112 9.3) instead of opening
one, handshaking and closing it every time (issue 15: 95 ms per provisioning against 67 ms for
the same POST in the hand-written client, which keeps its connection).

The pytest plugin makes an Engine (and an IdentityProvider) per test case, so the client lives
here, keyed by endpoint and CA bundle (with its modification time: a regenerated CA, a new
reference network, must not meet a client trusting the old one). `close_all()` at the end of the
session sends each connection's close_notify (conformance.drivers.http.close_session).

Provisioning is test support, not a step under test: its connection is opened before the test
case's capture window, as the connection per provisioning was.
"""

from __future__ import annotations

import atexit
import threading
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit


@dataclass
class PooledClient:
    driver: object  # conformance.drivers.http.HttpDriver
    lock: threading.Lock = field(default_factory=threading.Lock)  # one request at a time on it
    requests: int = 0  # answered requests: after the first, its connection may be a kept-alive one


_lock = threading.Lock()
_clients: dict[tuple, PooledClient] = {}


def _key(url: str, ca: str | None) -> tuple:
    parts = urlsplit(url)
    try:
        mtime = Path(ca).stat().st_mtime_ns if ca else None
    except OSError:
        mtime = None
    return (parts.scheme, parts.hostname, parts.port, ca, mtime)


def client(url: str, ca: str | None) -> PooledClient:
    """The client of `url`'s origin: hold its lock while sending, whatever thread provisions."""
    from conformance.drivers.http import HttpDriver

    key = _key(url, ca)
    with _lock:
        entry = _clients.get(key)
        if entry is None:
            entry = _clients[key] = PooledClient(HttpDriver(ca_bundle=ca))
        return entry


def discard(url: str, ca: str | None) -> None:
    """Drop the client of `url` after a failure: the next provisioning starts a new connection."""
    with _lock:
        entry = _clients.pop(_key(url, ca), None)
    if entry is not None:
        entry.driver.close()


def close_all() -> None:
    with _lock:
        entries = list(_clients.values())
        _clients.clear()
    for entry in entries:
        entry.driver.close()


# Engines outside a pytest session (benchmarks, the API) close theirs when the process ends.
atexit.register(close_all)
