"""The harness's TLS client context: trusts the profile's CA and writes the harness's own key log.

Every TLS connection the harness opens (HTTPS and WSS) goes through one context per (CA bundle,
key log) pair, so the capture can decrypt the UE legs with the NSS key log written here
(`SSLKEYLOGFILE` format). One context per file also keeps one writer per file.

Host names: the reference network's certificates carry both the DNS name and the IP address in
subjectAltName, so connecting by IP verifies against the IP entry (and sends no SNI, RFC 6066 3
forbids literal addresses there); pass `server_hostname` to a driver to send the DNS name instead.
"""

from __future__ import annotations

import socket
import ssl
import threading
from pathlib import Path

from conformance.run import deadline

MESSAGE_LIMIT = 1024 * 1024  # bytes one received message may take (a harness limit, not PIXIT)
TRANSCRIPT_LIMIT = 64 * 1024  # bytes of a handshake transcript kept as evidence


class ReceiveLimit(Exception):
    """The peer sent more than the connection's receive budget (an endless or giant message)."""


class _Transcript:
    """Plaintext a socket sent and received while recording: evidence of the WebSocket handshake.

    websocket-client writes the opening handshake with `send` and reads it with `recv` on the
    socket it is given, and reports the response as a dict (duplicates merged); keeping the
    bytes lets the driver report both directions exactly as they crossed the wire.

    Every read and write also obeys the step deadline active in the thread (conformance.run.
    deadline): the socket timeout is what is left of the step, never a fresh per-read timeout,
    so a peer dripping bytes cannot hold a step past its end. What arrives is recorded (bounded)
    on that deadline as evidence, and `recv_budget` bounds how much one message may take.
    """

    _sent: bytearray | None = None
    _received: bytearray | None = None
    recv_budget: int | None = None  # bytes this socket may still receive; None = no bound

    def start_transcript(self) -> None:
        self._sent, self._received = bytearray(), bytearray()

    def stop_transcript(self) -> tuple[bytes, bytes]:
        sent, received = bytes(self._sent or b""), bytes(self._received or b"")
        self._sent = self._received = None
        return sent, received

    def _bound(self) -> None:
        active = deadline.current()
        if active is not None:
            self.settimeout(active.socket_timeout())

    def _got(self, data) -> None:
        if not data:
            return
        active = deadline.current()
        if active is not None:
            active.record(bytes(data))
        if self._received is not None and len(self._received) < TRANSCRIPT_LIMIT:
            self._received += bytes(data)[:TRANSCRIPT_LIMIT - len(self._received)]
        if self.recv_budget is not None:
            self.recv_budget -= len(data)
            if self.recv_budget < 0:
                raise ReceiveLimit(f"the peer sent more than the {MESSAGE_LIMIT} bytes a message may take")

    def send(self, data, *args):  # noqa: D401 - same contract as socket.send
        self._bound()
        n = super().send(data, *args)
        if self._sent is not None:
            self._sent += bytes(data)[:n]
        return n

    def sendall(self, data, *args):
        self._bound()
        super().sendall(data, *args)
        if self._sent is not None:
            self._sent += bytes(data)

    def recv(self, *args):
        self._bound()
        data = super().recv(*args)
        self._got(data)
        return data

    def recv_into(self, buffer, *args):
        self._bound()
        n = super().recv_into(buffer, *args)
        if n:
            self._got(memoryview(buffer)[:n])
        return n


class TranscriptSocket(_Transcript, socket.socket):
    """A plain TCP socket that can record its plaintext (ws://)."""


class TranscriptSSLSocket(_Transcript, ssl.SSLSocket):
    """A TLS socket that can record its plaintext (wss://); recording is off unless started."""


_opened: list[str] = []  # "address:port" of the local end of every TLS connection, in order


def opened_count() -> int:
    return len(_opened)


def opened_since(count: int) -> list[str]:
    """The local ends of the TLS connections opened since `opened_count()` returned `count`: the
    capture ties a connection to the test case that opened it (parallel runs, -n)."""
    return _opened[count:]


class HarnessSSLContext(ssl.SSLContext):
    sslsocket_class = TranscriptSSLSocket

    def wrap_socket(self, sock, *args, **kwargs):
        try:
            host, port = sock.getsockname()[:2]
            _opened.append(f"{host}:{port}")  # list.append is atomic under the GIL
        except OSError:
            pass  # not connected yet: the capture then ties it by its content only
        return super().wrap_socket(sock, *args, **kwargs)


_contexts: dict[tuple, HarnessSSLContext] = {}
_lock = threading.Lock()


def client_context(ca_bundle: str | Path | None, keylog_path: str | Path | None) -> ssl.SSLContext:
    """The shared client context for this CA bundle and key log (created on first use).

    ca_bundle None trusts the system store; keylog_path None writes no key log.
    """
    ca = str(ca_bundle) if ca_bundle else None
    keylog = str(keylog_path) if keylog_path else None
    # a regenerated CA (new reference network state) must not meet a context trusting the old one
    key = (ca, _mtime(ca), keylog)
    with _lock:
        ctx = _contexts.get(key)
        if ctx is None:
            ctx = _contexts[key] = _new_context(ca, keylog)
        return ctx


def _mtime(path: str | None) -> int | None:
    try:
        return Path(path).stat().st_mtime_ns if path else None
    except OSError:
        return None


def private_file(path: Path) -> None:
    """Create `path` (if missing) with mode 0600, or take the group's and others' access away."""
    import os

    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        os.fchmod(fd, 0o600)
    finally:
        os.close(fd)


def _new_context(ca_bundle: str | None, keylog_path: str | None) -> HarnessSSLContext:
    ctx = HarnessSSLContext(ssl.PROTOCOL_TLS_CLIENT)  # CERT_REQUIRED and check_hostname by default
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    if ca_bundle:
        ctx.load_verify_locations(cafile=ca_bundle)
    else:
        ctx.load_default_certs(ssl.Purpose.SERVER_AUTH)
    if keylog_path:
        Path(keylog_path).parent.mkdir(parents=True, exist_ok=True)
        private_file(Path(keylog_path))  # TLS secrets: readable by the owner only
        ctx.keylog_filename = keylog_path  # OpenSSL appends one NSS line per secret
    return ctx


def open_tcp(host: str, port: int, timeout_s: float, source_address: tuple[str, int] | None = None,
             ) -> TranscriptSocket:
    """A connected harness TCP socket (deadline-aware reads and writes). The connect is bounded
    by timeout_s, and by the active step's connect bound when one is active."""
    active = deadline.current()
    if active is not None:
        timeout_s = min(timeout_s, active.connect_timeout()) if timeout_s else active.connect_timeout()
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    family, stype, proto, _, addr = infos[0]
    sock = TranscriptSocket(family, stype, proto)
    # Each write is a whole message (a WebSocket frame, a handshake request): send it at once.
    # With Nagle's algorithm a write made while an earlier one is unacknowledged waited for the
    # peer's delayed ACK (~40 ms on Linux); urllib3 (HTTP) and websocket-client set this too.
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.settimeout(timeout_s)
    try:
        if source_address:
            sock.bind(source_address)
        sock.connect(addr)
    except BaseException:
        sock.close()
        raise
    return sock
