"""TCP reassembly (RFC 9293): segments in capture order in, each direction's byte stream out.

Handles what captures really contain: segments out of order, retransmissions and overlaps (the
first copy of a byte wins, as in Wireshark's default), a capture that starts mid-connection, and
the 4-tuple reused by a new connection. A hole that is never filled is reported as a gap with its
size, never papered over: the consumer stops dissecting that direction.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from conformance.capture.packets import ACK, FIN, RST, SYN, TCP, IpPacket

MAX_PENDING_BYTES = 8 * 1024 * 1024  # out-of-order data buffered before a hole is declared lost


def _rel(a: int, b: int) -> int:
    """a - b in sequence space (RFC 9293 3.4: arithmetic modulo 2**32)."""
    d = (a - b) & 0xFFFFFFFF
    return d - 0x100000000 if d & 0x80000000 else d


@dataclass
class Direction:
    """One direction of a connection: delivers contiguous bytes to `sink(data, ts)`."""

    next_seq: int | None = None  # next byte expected
    syn_seen: bool = False
    fin_seen: bool = False
    fin_ts: float = 0.0
    eof_sent: bool = False
    pending: dict[int, tuple[bytes, float]] = field(default_factory=dict)
    pending_bytes: int = 0
    delivered: int = 0
    retransmitted: int = 0
    out_of_order: int = 0
    gaps: list[tuple[float, int]] = field(default_factory=list)  # (ts, bytes missing)
    packets: int = 0

    def segment(self, pkt: IpPacket, sink: Callable[[bytes, float], None],
                gap: Callable[[int, float], None]) -> None:
        self.packets += 1
        seq, data, flags = pkt.seq, pkt.payload, pkt.flags
        if flags & SYN:
            self.syn_seen = True
            if self.next_seq is None or not self.delivered:
                self.next_seq = (seq + 1) & 0xFFFFFFFF
            seq = (seq + 1) & 0xFFFFFFFF  # SYN occupies one sequence number
        if self.next_seq is None:
            if not data:
                return
            self.next_seq = seq  # capture started mid-connection: take the first data as the start
        if data:
            self._data(seq, data, pkt.ts, sink)
        if flags & (FIN | RST) and not self.fin_seen:
            self.fin_seen, self.fin_ts = True, pkt.ts
        if self.pending_bytes > MAX_PENDING_BYTES:
            self.flush_gap(pkt.ts, gap, sink)

    def _data(self, seq: int, data: bytes, ts: float, sink) -> None:
        d = _rel(seq, self.next_seq)
        if d < 0:  # retransmission or overlap: keep only what is new
            if -d >= len(data):
                self.retransmitted += 1
                return
            data, seq = data[-d:], self.next_seq
            d = 0
        if d > 0:
            self.out_of_order += 1
            old = self.pending.get(seq)
            if old is None or len(old[0]) < len(data):
                self.pending_bytes += len(data) - (len(old[0]) if old else 0)
                self.pending[seq] = (data, ts)
            return
        self._deliver(data, ts, sink)
        self._drain(sink)

    def _deliver(self, data: bytes, ts: float, sink) -> None:
        self.next_seq = (self.next_seq + len(data)) & 0xFFFFFFFF
        self.delivered += len(data)
        sink(data, ts)

    def _drain(self, sink) -> None:
        while self.pending:
            progressed = False
            for seq in list(self.pending):
                d = _rel(seq, self.next_seq)
                if d > 0:
                    continue
                data, ts = self.pending.pop(seq)
                self.pending_bytes -= len(data)
                if -d < len(data):
                    self._deliver(data[-d:] if d else data, ts, sink)
                else:
                    self.retransmitted += 1
                progressed = True
            if not progressed:
                return

    def flush_gap(self, ts: float, gap: Callable[[int, float], None], sink) -> None:
        """Declare the hole before the lowest pending segment lost, and go on after it."""
        if not self.pending:
            return
        first = min(self.pending, key=lambda s: _rel(s, self.next_seq))
        missing = _rel(first, self.next_seq)
        self.gaps.append((ts, missing))
        gap(missing, ts)
        self.next_seq = first
        self._drain(sink)


@dataclass
class TcpConnection:
    """Both directions of one connection; `client` is the side that sent the SYN (or first spoke)."""

    ident: int
    client: tuple[str, int]
    server: tuple[str, int]
    c2s: Direction = field(default_factory=Direction)
    s2c: Direction = field(default_factory=Direction)
    first_ts: float = 0.0
    last_ts: float = 0.0
    rst: bool = False
    handshake_seen: bool = False  # SYN seen: the connection start is in the capture
    # capture positions (IpPacket.index) of the packet that opened this connection and of the
    # first packet of its 4-tuple (earlier when the 4-tuple was reused): the capture order of
    # connections, which an analysis split over processes (capture.shards) numbers them by
    first_index: int = 0
    key_index: int = 0

    @property
    def closed(self) -> bool:
        return self.rst or (self.c2s.fin_seen and self.s2c.fin_seen)


def _sinks(handler, from_client: bool) -> tuple[Callable[[bytes, float], None], Callable[[int, float], None]]:
    """(data sink, gap sink) of one direction of a connection, for `Direction.segment`."""
    return (lambda data, ts: handler.data(from_client, data, ts),
            lambda missing, ts: handler.gap(from_client, missing, ts))


class TcpReassembler:
    """Tracks connections by 4-tuple and calls the consumer for each connection's events.

    `on_open(conn) -> handler` where handler has `data(from_client, bytes, ts)`,
    `gap(from_client, missing, ts)` and `eof(from_client, ts)`.
    `is_server(addr, port)` tells which end is the listening one when the SYN was not captured.
    """

    def __init__(self, on_open: Callable[[TcpConnection], object],
                 is_server: Callable[[str, int], bool] = lambda a, p: False):
        self.on_open = on_open
        self.is_server = is_server
        # key -> (connection, handler, sinks per direction): the sinks are made once per
        # connection, not two closures per segment (offline analysis, issue 15)
        self.conns: dict[tuple, tuple[TcpConnection, object, dict]] = {}
        self.all: list[TcpConnection] = []

    def packet(self, pkt: IpPacket) -> None:
        assert pkt.proto == TCP
        # both directions under one flat key, the lower (address, port) first: nested tuples
        # cost a hash each per packet (issue 15)
        src, sport, dst, dport = pkt.src, pkt.sport, pkt.dst, pkt.dport
        key = (src, sport, dst, dport) if src < dst or (src == dst and sport <= dport) else (dst, dport, src, sport)
        entry = self.conns.get(key)
        fresh_syn = pkt.flags & SYN and not pkt.flags & ACK
        key_index = pkt.index
        if entry is not None and fresh_syn:
            conn = entry[0]
            # a new SYN on a closed 4-tuple (or with another ISN) starts a new connection
            if conn.closed or (conn.c2s.next_seq is not None and conn.c2s.delivered
                               and _rel(pkt.seq + 1, conn.c2s.next_seq) != 0):
                self._close(entry, pkt.ts)
                key_index = conn.key_index
                entry = None
        if entry is None:
            a, b = (src, sport), (dst, dport)
            if fresh_syn or (not pkt.flags & SYN and not self.is_server(*a) and self.is_server(*b)):
                client, server = a, b
            elif pkt.flags & SYN or self.is_server(*a):
                client, server = b, a  # a SYN-ACK, or the server spoke first in the capture
            else:
                client, server = a, b
            conn = TcpConnection(len(self.all), client, server, first_ts=pkt.ts, handshake_seen=bool(fresh_syn),
                                 first_index=pkt.index, key_index=key_index)
            self.all.append(conn)
            handler = self.on_open(conn)
            entry = (conn, handler, {fc: _sinks(handler, fc) for fc in (True, False)})
            self.conns[key] = entry
        conn, handler, sinks = entry
        conn.last_ts = pkt.ts
        from_client = sport == conn.client[1] and src == conn.client[0]
        dirn = conn.c2s if from_client else conn.s2c
        if pkt.payload or pkt.flags & (SYN | FIN | RST) or dirn.pending_bytes > MAX_PENDING_BYTES:
            dirn.segment(pkt, *sinks[from_client])
        else:  # a bare ACK, about half of all segments: all that segment() would do with it
            dirn.packets += 1
        if pkt.flags & RST:
            conn.rst = True
        if dirn.fin_seen and not dirn.pending and not dirn.eof_sent:
            dirn.eof_sent = True
            handler.eof(from_client, dirn.fin_ts)

    def _close(self, entry, ts: float) -> None:
        conn, handler, sinks = entry
        for from_client, dirn in ((True, conn.c2s), (False, conn.s2c)):
            if dirn.pending:
                data_sink, gap_sink = sinks[from_client]
                dirn.flush_gap(ts, gap_sink, data_sink)
            if dirn.fin_seen and not dirn.eof_sent:
                dirn.eof_sent = True
                handler.eof(from_client, dirn.fin_ts)
        handler.close(ts)

    def finish(self, before_close: Callable[[TcpConnection], None] | None = None) -> None:
        """End of capture: report holes that were never filled, and let handlers flush.
        The connections are closed in the order their 4-tuples first appeared (`key_index`);
        `before_close(conn)` is told which one is next."""
        for entry in list(self.conns.values()):
            if before_close is not None:
                before_close(entry[0])
            self._close(entry, entry[0].last_ts)
        self.conns.clear()
