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


class _Transcript:
    """Plaintext a socket sent and received while recording: evidence of the WebSocket handshake.

    websocket-client writes the opening handshake with `send` and reads it with `recv` on the
    socket it is given, and reports the response as a dict (duplicates merged); keeping the
    bytes lets the driver report both directions exactly as they crossed the wire.
    """

    _sent: bytearray | None = None
    _received: bytearray | None = None

    def start_transcript(self) -> None:
        self._sent, self._received = bytearray(), bytearray()

    def stop_transcript(self) -> tuple[bytes, bytes]:
        sent, received = bytes(self._sent or b""), bytes(self._received or b"")
        self._sent = self._received = None
        return sent, received

    def send(self, data, *args):  # noqa: D401 - same contract as socket.send
        n = super().send(data, *args)
        if self._sent is not None:
            self._sent += bytes(data)[:n]
        return n

    def recv(self, *args):
        data = super().recv(*args)
        if self._received is not None:
            self._received += data
        return data


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


def _new_context(ca_bundle: str | None, keylog_path: str | None) -> HarnessSSLContext:
    ctx = HarnessSSLContext(ssl.PROTOCOL_TLS_CLIENT)  # CERT_REQUIRED and check_hostname by default
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    if ca_bundle:
        ctx.load_verify_locations(cafile=ca_bundle)
    else:
        ctx.load_default_certs(ssl.Purpose.SERVER_AUTH)
    if keylog_path:
        Path(keylog_path).parent.mkdir(parents=True, exist_ok=True)
        ctx.keylog_filename = keylog_path  # OpenSSL appends one NSS line per secret
    return ctx
