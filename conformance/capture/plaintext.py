"""The capture a report may carry: what each leg said, decrypted, as plaintext packets.

The dissector hands every connection's application bytes (after TLS) and every UDP datagram to a
`PlaintextRecorder`; `write_plaintext_pcapng` turns them back into packets: one synthesized TCP
connection per captured one (SYN handshake, data with consistent sequence numbers, FIN), same
addresses and ports, and secret values replaced by `<redacted:NAME>` before the bytes are
framed. Wireshark dissects HTTP, WebSocket and SIP in it like any plaintext capture, and no TLS
secret travels with it (the raw encrypted capture with its key log is written only when the
profile opts in: `pixit.capture.include_tls_secrets`).

Consecutive chunks of one direction are merged before redaction, so a secret split across TLS
records or TCP segments is still found. IPv6 legs are left out (counted in the file's comment).
"""

from __future__ import annotations

import functools
import ipaddress
from dataclasses import dataclass, field
from pathlib import Path

from conformance.capture.pcapng import write_pcapng
from conformance.capture.synth import tcp_segment, udp_datagram

MSS = 1400
SYN, SYN_ACK, ACK, PSH_ACK, FIN_ACK = 0x02, 0x12, 0x10, 0x18, 0x11


@dataclass
class _Flow:
    client: tuple[str, int]
    server: tuple[str, int]
    opened_at: float
    seq: dict = field(default_factory=lambda: {True: 1000, False: 50000})
    pending_dir: bool | None = None
    pending_ts: float = 0.0
    pending: bytearray = field(default_factory=bytearray)
    closed: bool = False


class PlaintextRecorder:
    """Filled by the dissector in capture order."""

    def __init__(self):
        self.events: list[tuple] = []  # ("tcp", key, from_client, ts, data) | ("close", key, ts) | ("udp", ...)

    def tcp(self, client: tuple[str, int], server: tuple[str, int], from_client: bool, ts: float,
            data: bytes) -> None:
        if data:
            self.events.append(("tcp", (client, server), from_client, ts, bytes(data)))

    def tcp_close(self, client: tuple[str, int], server: tuple[str, int], ts: float) -> None:
        self.events.append(("close", (client, server), ts))

    def udp(self, src: tuple[str, int], dst: tuple[str, int], ts: float, data: bytes) -> None:
        self.events.append(("udp", (src, dst), ts, bytes(data)))


@functools.lru_cache(maxsize=1024)  # asked for both ends of every chunk; a capture has few addresses
def _ipv4(addr: str) -> bool:
    try:
        return ipaddress.ip_address(addr).version == 4
    except ValueError:
        return False


class _Writer:
    def __init__(self, redact):
        self.redact = redact
        self.records: list[tuple[float, int, bytes, int]] = []
        self.flows: dict = {}

    def seg(self, f: _Flow, from_client: bool, flags: int, ts: float, payload: bytes = b"") -> None:
        a, b = (f.client, f.server) if from_client else (f.server, f.client)
        frame = tcp_segment(a[0], a[1], b[0], b[1], f.seq[from_client], f.seq[not from_client], flags, payload)
        self.records.append((ts, 1, frame, 0))
        f.seq[from_client] += len(payload) + (1 if flags & (SYN | 0x01) else 0)

    def flush(self, f: _Flow) -> None:
        if f.pending_dir is None:
            return
        data = self.redact(bytes(f.pending))
        for i in range(0, len(data), MSS):
            self.seg(f, f.pending_dir, PSH_ACK, f.pending_ts, data[i:i + MSS])
        f.pending_dir, f.pending = None, bytearray()

    def flow(self, key, ts: float) -> _Flow:
        f = self.flows.get(key)
        if f is None or f.closed:
            f = self.flows[key] = _Flow(key[0], key[1], ts)
            self.seg(f, True, SYN, ts)
            self.seg(f, False, SYN_ACK, ts)
            self.seg(f, True, ACK, ts)
        return f

    def close(self, f: _Flow, ts: float) -> None:
        self.flush(f)
        self.seg(f, True, FIN_ACK, ts)
        self.seg(f, False, FIN_ACK, ts)
        self.seg(f, True, ACK, ts)
        f.closed = True


def write_plaintext_pcapng(path: str | Path, recorder: PlaintextRecorder, redactor=None,
                           interfaces: list[str] | None = None, window: tuple[float, float] | None = None) -> Path:
    """`window`: only the data sent in [t0, t1] (a test case's own messages; the older packets of
    kept-alive connections were needed to decrypt, not to show)."""
    redact = redactor.bytes if redactor is not None else (lambda b: b)
    w = _Writer(redact)
    skipped = 0
    for ev in recorder.events:
        kind, key = ev[0], ev[1]
        if not all(_ipv4(end[0]) for end in key):
            skipped += 1
            continue
        ts = ev[2] if kind != "tcp" else ev[3]
        if window is not None and kind != "close" and not window[0] <= ts <= window[1]:
            continue
        if kind == "udp":
            (src, dst), data = key, ev[3]
            w.records.append((ts, 1, udp_datagram(src[0], src[1], dst[0], dst[1], redact(data)), 0))
        elif kind == "tcp":
            _, _, from_client, _, data = ev
            f = w.flow(key, ts)
            if f.pending_dir is not None and f.pending_dir != from_client:
                w.flush(f)
            if f.pending_dir is None:
                f.pending_dir, f.pending_ts = from_client, ts
            f.pending += data
        elif kind == "close" and key in w.flows and not w.flows[key].closed:
            w.close(w.flows[key], ts)
    for f in w.flows.values():
        if not f.closed:
            w.flush(f)
    w.records.sort(key=lambda r: r[0])  # flushed late, merged chunks keep their own time
    note = "ims-conformance: decrypted application data as plaintext TCP/UDP, secrets redacted"
    if skipped:
        note += f"; {skipped} IPv6 chunks left out"
    return write_pcapng(path, w.records, "", ["decrypted"] if interfaces else None, application=note)
