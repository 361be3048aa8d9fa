"""Small hostile servers on loopback ephemeral ports: what a broken or malicious SUT does.

Each server runs one behaviour per accepted connection (TCP, optionally TLS) or per datagram
(UDP) in daemon threads, and `stop()` ends them all. Behaviours are plain functions, so a new
kind of hostility is a few lines.
"""

from __future__ import annotations

import base64
import hashlib
import socket
import ssl
import threading
import time

from conformance.codec.websocket import build_frame

GARBAGE = b"\x00GARBAGE\xff\xfe" * 64
TEN_MIB = 10 * 1024 * 1024
WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


class Stop(Exception):
    pass


class TcpServer:
    def __init__(self, behaviour, tls: ssl.SSLContext | None = None, host: str = "127.0.0.1"):
        self.behaviour, self.tls = behaviour, tls
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, 0))
        self.sock.listen(64)
        self.address = self.sock.getsockname()
        self.stopped = threading.Event()
        self.conns: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self.stopped.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(conn)
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        conn.settimeout(5)
        try:
            self.behaviour(self, conn)
        except (OSError, Stop, ssl.SSLError):
            pass
        finally:
            try:
                conn.close()
            except OSError:
                pass

    def wrap(self, conn: socket.socket) -> socket.socket:
        """TLS on the connection when the server has a context (the behaviour decides when)."""
        if self.tls is None:
            return conn
        tls = self.tls.wrap_socket(conn, server_side=True)
        self.conns.append(tls)
        return tls

    def hold(self, seconds: float = 30.0) -> None:
        """Keep the connection open without a word until the test ends."""
        self.stopped.wait(seconds)

    def stop(self) -> None:
        self.stopped.set()
        self.sock.close()
        for c in self.conns:
            try:
                c.close()
            except OSError:
                pass


class UdpServer:
    def __init__(self, behaviour, host: str = "127.0.0.1"):
        self.behaviour = behaviour
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((host, 0))
        self.sock.settimeout(0.2)
        self.address = self.sock.getsockname()
        self.stopped = threading.Event()
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self) -> None:
        while not self.stopped.is_set():
            try:
                data, peer = self.sock.recvfrom(65535)
            except TimeoutError:
                continue
            except OSError:
                return
            answer = self.behaviour(data)
            if answer:
                try:
                    self.sock.sendto(answer, peer)
                except OSError:
                    pass

    def stop(self) -> None:
        self.stopped.set()
        self.sock.close()


def nothing_listening(kind: int = socket.SOCK_STREAM) -> tuple[str, int]:
    """An address where nothing listens (bound, then released)."""
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()


# -- helpers ---------------------------------------------------------------------------------------
def read_head(conn, limit: int = 65536) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data and len(data) < limit:
        chunk = conn.recv(4096)
        if not chunk:
            raise Stop
        data += chunk
    return data


def drip(server: TcpServer, conn, data: bytes, every_s: float = 0.05) -> None:
    """One byte at a time, then (if the data ran out) endless header bytes: never a complete message."""
    for i in range(len(data)):
        if server.stopped.is_set():
            return
        conn.sendall(data[i:i + 1])
        time.sleep(every_s)
    while not server.stopped.is_set():
        conn.sendall(b"a")
        time.sleep(every_s)


def send_huge(server: TcpServer, conn, head: bytes, total: int = TEN_MIB) -> None:
    conn.sendall(head)
    chunk = b"x" * 65536
    sent = 0
    while sent < total and not server.stopped.is_set():
        conn.sendall(chunk[: total - sent])
        sent += len(chunk)
    server.hold(5)


# -- HTTP ------------------------------------------------------------------------------------------
def http_silent(server, conn):
    server.hold()


def http_drip(server, conn):
    conn = server.wrap(conn)
    read_head(conn)
    drip(server, conn, b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nX-Drip: ")


def http_garbage(server, conn):
    conn = server.wrap(conn)
    read_head(conn)
    conn.sendall(GARBAGE)


def http_truncated(server, conn):
    conn = server.wrap(conn)
    read_head(conn)
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"issuer\": ")


def http_huge(server, conn):
    conn = server.wrap(conn)
    read_head(conn)
    send_huge(server, conn, b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                            b"Content-Length: %d\r\n\r\n" % TEN_MIB)


def http_ok(server, conn):
    """A well-behaved answer; the hostility is elsewhere (the certificate)."""
    conn = server.wrap(conn)
    read_head(conn)
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}")


# -- WebSocket -------------------------------------------------------------------------------------
def _accept_key(request: bytes, wrong: bool = False) -> bytes:
    key = b""
    for line in request.split(b"\r\n"):
        if line.lower().startswith(b"sec-websocket-key:"):
            key = line.split(b":", 1)[1].strip()
    if wrong:
        key = b"not-the-key" + key
    return base64.b64encode(hashlib.sha1(key + WS_GUID.encode()).digest())


def _upgrade(conn, wrong: bool = False) -> None:
    request = read_head(conn)
    proto = b"Sec-WebSocket-Protocol: sip\r\n" if b"sip" in request.lower() else b""
    conn.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                 b"Sec-WebSocket-Accept: " + _accept_key(request, wrong) + b"\r\n" + proto + b"\r\n")


def ws_drip(server, conn):
    conn = server.wrap(conn)
    read_head(conn)
    drip(server, conn, b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nX-Drip: ")


def ws_wrong_accept(server, conn):
    conn = server.wrap(conn)
    _upgrade(conn, wrong=True)
    server.hold(5)


def ws_endless_fragments(server, conn):
    conn = server.wrap(conn)
    _upgrade(conn)
    conn.sendall(build_frame(b"SIP/2.0 200 OK\r\n", 1, fin=False, mask=False))
    piece = build_frame(b"x" * 1024, 0, fin=False, mask=False)
    while not server.stopped.is_set():
        conn.sendall(piece)


def ws_ping_flood(server, conn):
    conn = server.wrap(conn)
    _upgrade(conn)
    ping = build_frame(b"ping", 9, fin=True, mask=False)
    conn.setblocking(False)  # never wait for the pongs: flood
    while not server.stopped.is_set():
        try:
            conn.send(ping * 64)
        except (BlockingIOError, ssl.SSLWantWriteError, ssl.SSLWantReadError):
            time.sleep(0.001)
        try:
            conn.recv(65536)  # drain the pongs
        except (BlockingIOError, ssl.SSLWantReadError, ssl.SSLWantWriteError):
            pass


def ws_huge(server, conn):
    conn = server.wrap(conn)
    _upgrade(conn)
    # one unmasked text frame of 10 MiB (RFC 6455 5.2: 127 = a 64-bit length follows)
    send_huge(server, conn, bytes([0x81, 127]) + TEN_MIB.to_bytes(8, "big"))


def ws_upgrade_ok(server, conn):
    conn = server.wrap(conn)
    _upgrade(conn)
    server.hold(5)


# -- SIP -------------------------------------------------------------------------------------------
TRUNCATED_483 = b"SIP/2.0 483 Too Many Hops\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;bra"


def sip_udp_silent(data):
    return None


def sip_udp_garbage(data):
    return GARBAGE


def sip_udp_truncated(data):
    return TRUNCATED_483


def sip_udp_huge(data):
    return b"SIP/2.0 200 OK\r\nContent-Length: 10485760\r\n\r\n" + b"x" * 60000


def sip_tcp_drip(server, conn):
    read_head(conn)
    drip(server, conn, b"SIP/2.0 200 OK\r\nVia: SIP/2.0/TCP 127.0.0.1;branch=z9hG4bK")


def sip_tcp_garbage(server, conn):
    read_head(conn)
    conn.sendall(GARBAGE + b"\r\n\r\n")
    server.hold(5)


def sip_tcp_truncated(server, conn):
    read_head(conn)
    conn.sendall(TRUNCATED_483)
    server.hold(5)


def sip_tcp_huge(server, conn):
    read_head(conn)
    send_huge(server, conn, b"SIP/2.0 200 OK\r\nContent-Length: %d\r\n\r\n" % TEN_MIB)
