"""I/O drivers: HTTP, WebSocket, SIP over UDP/TCP. They move bytes and return typed events."""

from __future__ import annotations


class TransportError(ConnectionError):
    """No answer could be obtained: connection refused, TLS failure, or a timeout before any response.

    kind: connect | tls | timeout | closed
    """

    def __init__(self, kind: str, detail: str):
        super().__init__(f"{kind}: {detail}")
        self.kind = kind
        self.detail = detail
