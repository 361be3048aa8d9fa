"""Streaming analysis of a session-wide capture (issue 15): every packet is dissected once.

A test case's window used to be dissected from scratch, together with the whole history of every
TCP stream active in it (a node's keep-alive connection carries the TLS handshake that decrypts
a later case's message). On a long session that history grows with every test case: the WSF's
connection to the AS was re-decrypted from its first byte at every case. Here one Dissector
consumes the session's packets as they are captured, in capture order, once; a window is a view
of what it has dissected:

- its items are the messages completed inside [t0, t1];
- its packets and leg coverage are those of the packets inside the window;
- a TLS connection or TCP stream active in the window counts with its state at the window's end
  (undecryptable, holes), exactly as the per-window analysis counted it.

Key logs are read incrementally (only the bytes appended since the last read), because TLS
secrets are written while the session runs.
"""

from __future__ import annotations

import os
from bisect import bisect_left
from contextlib import nullcontext
from pathlib import Path

from conformance.capture import CaptureResult, _no_cycle_collection
from conformance.capture.dissect import Dissector
from conformance.capture.packets import TCP, IpPacket, Scanner
from conformance.capture.plaintext import PlaintextRecorder
from conformance.capture.timeline import LegCoverage, Timeline
from conformance.capture.tls import KeyLog

ORDER_SLACK_S = 5.0  # decrypted data kept this long before a window: several interfaces may be out of order


def stream_key(pkt: IpPacket) -> tuple:
    a, b = (pkt.src, pkt.sport), (pkt.dst, pkt.dport)
    return (a, b) if a <= b else (b, a)


def keylog_ends(paths: list[Path]) -> dict[Path, tuple[int, bool]]:
    """Where each key log ends now: (size, whether it ends inside a line), for SessionAnalysis's
    `read_from`. A key log that does not exist yet is read from its start."""
    out = {}
    for path in map(Path, paths):
        try:
            with path.open("rb") as fh:
                size = fh.seek(0, os.SEEK_END)
                if size:
                    fh.seek(size - 1)
                out[path] = (size, bool(size) and fh.read(1) != b"\n")
        except OSError:
            continue
    return out


class SessionAnalysis:
    """`read_from`: where to start reading each key log (keylog_ends, taken before the session's
    sniffer started). A secret logged before that belongs to a handshake sent before it, which
    the capture does not have, so it could decrypt nothing here. Read from their start, the
    reference network's key logs (which grow with every run in its state directory) were 32 MB
    after some weeks of runs: every session parsed them all, and kept every secret in memory, in
    each -n worker too (found as several seconds of CPU per catalog run). A line being written
    when the size was taken is skipped whole (its secret is as old)."""

    def __init__(self, pixit: dict, keylog_paths: list[Path], read_from: dict[Path, tuple[int, bool]] | None = None):
        self.keylog = KeyLog([])
        self.paths = [Path(p) for p in keylog_paths]
        self._offsets = {p: 0 for p in self.paths}
        self._mid_line: set[Path] = set()  # the next read starts inside a line: skip to its end
        for path, (size, mid_line) in (read_from or {}).items():
            if path in self._offsets:
                self._offsets[path] = size
                if mid_line:
                    self._mid_line.add(path)
        self._unreadable: dict[Path, str] = {}
        self.d = Dissector(pixit, self.keylog)
        self.d.plaintext = PlaintextRecorder()  # the decrypted traffic, for the report's plaintext pcapng
        self._last: tuple = ([], set(), [])
        self.scanner = Scanner(self.d.packet_filter())
        self.packets: list[IpPacket] = []
        # running maximum of the packets' (items', plaintext events') times: a window finds its
        # first candidate by bisection instead of walking back through the session (that walk
        # grew with the session: the last 5 s of packets and items, at every window)
        self._packet_max: list[float] = []
        self._item_max: list[float] = []
        self._event_max: list[float] = []
        self.history: dict[tuple, list[IpPacket]] = {}  # TCP stream -> its packets (pcapng of a window)
        self.handlers: dict[tuple, list] = {}  # TCP stream -> its connections' dissection state
        dissector_open = self.d._open

        def on_open(conn):
            handler = dissector_open(conn)
            key = (conn.client, conn.server) if conn.client <= conn.server else (conn.server, conn.client)
            self.handlers.setdefault(key, []).append(handler)
            return handler

        self.d.tcp.on_open = on_open

    def add_keylog(self, path: Path) -> None:
        path = Path(path)
        if path not in self._offsets:
            self.paths.append(path)
            self._offsets[path] = 0

    def _read_keys(self) -> None:
        """The complete lines appended to each key log since the last read."""
        for path in self.paths:
            try:
                size = os.stat(path).st_size
                if size < self._offsets[path]:
                    # shorter than what was read: the endpoint started a new log (opened it for
                    # writing, not appending, on a restart); all of it is new
                    self._offsets[path] = 0
                    self._mid_line.discard(path)
                if size <= self._offsets[path]:  # nothing new: no open, read, close
                    self._unreadable.pop(path, None)
                    continue
                with path.open("rb") as fh:
                    fh.seek(self._offsets[path])
                    data = fh.read()
            except OSError as exc:  # said in the window's problems, as the per-window analysis did
                self._unreadable[path] = f"key log {path}: {exc.strerror or exc}"
                continue
            self._unreadable.pop(path, None)
            if path in self._mid_line:
                cut = data.find(b"\n") + 1
                if not cut:  # the line begun before the session is not finished yet
                    continue
                self._offsets[path] += cut
                data = data[cut:]
                self._mid_line.discard(path)
            end = data.rfind(b"\n") + 1
            if end:
                self.keylog.add_text(data[:end].decode("ascii", "replace"))
                self._offsets[path] += end

    def feed(self, records: list[tuple[float, int, bytes, int]], *, final: bool = True) -> None:
        """Dissect newly captured records (in capture order).

        `final=False` while the test case still runs (CaptureFactory's feeder): a TLS connection
        whose secrets are not all logged yet is held until they are (Dissector.hold_for_keys).
        `final=True` (a window ends): everything held is dissected with the secrets there are,
        so the window's verdict is the one the whole capture at hand would give.

        While the case runs, the key logs are read only for a connection that waits for its
        secrets: looking at every key log at every feed (about a dozen a case) was a tenth of the
        feeder's time, for nothing new on most of them."""
        d = self.d
        if final or d.held:
            self._read_keys()
        d.hold_for_keys = not final
        # the cyclic collector is switched off (process-wide) only for the window's feed: a feed
        # while the case runs is a few packets, and the case's own thread runs meanwhile
        with _no_cycle_collection() if final else nullcontext():
            d.release_ready()  # secrets logged since the last feed
            if records:
                packet_max = self._packet_max
                top = packet_max[-1] if packet_max else float("-inf")
                for pkt in self.scanner.scan(sorted(records, key=lambda r: r[0])):
                    self.packets.append(pkt)
                    top = pkt.ts if pkt.ts > top else top
                    packet_max.append(top)
                    d.packet(pkt)
                    if pkt.proto == TCP:
                        self.history.setdefault(stream_key(pkt), []).append(pkt)
            if not final and d.held:  # a handshake just seen: its secrets are likely logged by now
                self._read_keys()
                d.release_ready()
            if final:
                d.release_all()

    # -- a window ------------------------------------------------------------------------
    @staticmethod
    def _since(seq: list, maxima: list[float], t0: float) -> list:
        """The elements of `seq` from the first whose running maximum time reaches t0: every one
        before it is older than t0 (exact, whatever the order of several interfaces)."""
        return seq[bisect_left(maxima, t0):]

    @staticmethod
    def _extend_maxima(maxima: list[float], seq: list, time_of) -> None:
        top = maxima[-1] if maxima else float("-inf")
        for x in seq[len(maxima):]:
            t = time_of(x)
            top = t if t > top else top
            maxima.append(top)

    def window(self, t0: float, t1: float, *, pcapng_out: Path | None = None,
               interfaces: list[str] | None = None) -> CaptureResult:
        d = self.d
        in_window = [p for p in self._since(self.packets, self._packet_max, t0) if t0 <= p.ts <= t1]
        self._extend_maxima(self._item_max, d.timeline.items, _item_time)
        items = [i for i in self._since(d.timeline.items, self._item_max, t0) if t0 <= i.t <= t1]
        self._read_keys()
        tl = Timeline(items=items, t_start=t0, t_end=t1,
                      problems=list(d.timeline.problems) + list(self._unreadable.values()))
        streams = set()
        for p in in_window:
            sn, dn = d.names((p.src, p.sport), (p.dst, p.dport))
            tl.packets.append((p.ts, sn, dn, len(p.payload)))
            cov = _cov(tl, sn or f"{p.src}:{p.sport}", dn or f"{p.dst}:{p.dport}")
            cov.packets += 1
            cov.bytes += len(p.payload)
            if p.proto == TCP:
                streams.add(stream_key(p))
        randoms = []
        for key in streams:
            for h in self.handlers.get(key, ()):
                if h.conn.last_ts < t0 or h.conn.first_ts > t1:
                    continue  # an earlier or later connection on the same 4-tuple
                self._conn_coverage(tl, h)
                if h.tls is not None and h.tls.client_random:
                    randoms.append(h.tls.client_random)
        tl.finalize()
        self._last = (in_window, streams, randoms)
        path = None
        if pcapng_out is not None:
            path = self._write_raw(pcapng_out, t1, interfaces)
        stats = {"packets": len(in_window), "relevant": len(in_window), "tls_connections": len(randoms),
                 "items": len(items), "session_packets": len(self.packets)}
        return CaptureResult(tl, path, None, stats, list(d.nodes.order))

    def _write_raw(self, pcapng_out: Path, t1: float, interfaces) -> Path:
        """The window's packets and every older packet of its TCP streams, with the TLS secrets of
        its connections (for decryption in Wireshark): only where the profile opts in."""
        from conformance.capture.pcapng import write_pcapng

        in_window, streams, randoms = self._last
        kept = {id(p): p for key in streams for p in self.history.get(key, ()) if p.ts <= t1}
        kept.update((id(p), p) for p in in_window)
        records = sorted(((p.ts, p.linktype, p.frame, p.iface) for p in kept.values()), key=lambda r: r[0])
        return write_pcapng(pcapng_out, records, self.keylog.lines_for(randoms), interfaces)

    def write(self, result: CaptureResult, t0: float, t1: float, *, plaintext_out: Path | None = None,
              pcapng_out: Path | None = None, redactor=None, interfaces: list[str] | None = None) -> None:
        """The outputs of the last window (called once it has settled)."""
        from conformance.capture.plaintext import write_plaintext_pcapng

        if pcapng_out is not None:
            result.pcapng_path = self._write_raw(pcapng_out, t1, interfaces)
        recorder = self.d.plaintext
        self._extend_maxima(self._event_max, recorder.events, _event_time)
        if plaintext_out is not None:
            # only the events from the first that may be in [t0, t1]: older ones (data, or the close
            # of a connection that has no data in the window) leave the written file unchanged
            recent = PlaintextRecorder()
            recent.events = self._since(recorder.events, self._event_max, t0)
            result.plaintext_path = write_plaintext_pcapng(plaintext_out, recent, redactor, interfaces, (t0, t1))
        # decrypted data older than this window is never shown again: keep the recorder bounded
        cut = bisect_left(self._event_max, t0 - ORDER_SLACK_S)
        if cut:
            del recorder.events[:cut]
            del self._event_max[:cut]

    def _conn_coverage(self, tl: Timeline, h) -> None:
        """A connection's state now, as the per-window analysis's end of capture would count it."""
        src, dst = h.conn.client, h.conn.server
        sn, dn = self.d.names(src, dst)
        cov = _cov(tl, sn or f"{src[0]}:{src[1]}", dn or f"{dst[0]}:{dst[1]}")
        for fc, dirn in ((True, h.conn.c2s), (False, h.conn.s2c)):
            a, b = (src, dst) if fc else (dst, src)
            for _ts, missing in dirn.gaps:
                cov.gaps.append(f"TCP: {missing} bytes of {a[0]}:{a[1]} > {b[0]}:{b[1]} missing from the capture")
        tls = h.tls
        if tls is None:
            return
        cov.tls_connections += 1
        reason = tls.failed or tls.undecryptable
        if reason is None and (tls.c.waiting or tls.s.waiting):
            reason = "handshake not captured" if tls.client_random is None else "keys never derived"
        if reason is None and tls.client_random is None and (tls.c.encrypted or tls.s.encrypted):
            reason = "handshake not captured"
        if reason:
            cov.undecryptable.append(f"{h.stream} {src[0]}:{src[1]} > {dst[0]}:{dst[1]}: not decrypted: {reason}")
        else:
            cov.decrypted_connections += 1


def _item_time(item) -> float:
    return item.t


def _event_time(ev: tuple) -> float:
    return ev[3] if ev[0] == "tcp" else ev[2]


def _cov(tl: Timeline, a: str, b: str) -> LegCoverage:
    key = tuple(sorted((a, b)))
    cov = tl.coverage.get(key)
    if cov is None:
        cov = tl.coverage[key] = LegCoverage(key)
    return cov
