"""Offline analysis split over the machine's cores (issue 15).

After libpcap's prefilter, an offline analysis is Python dissecting the packets of the profile's
legs: TCP reassembly, TLS, HTTP, WebSocket and SIP, about 30 us a packet. Flows do not depend on
each other until the timeline is built, so the packets are split by flow (both directions of a
4-tuple: the reassembler's key) into shards of about equal packet counts. One Dissector per shard
runs in a process of its own (forked before the capture is read, see `Split`), the first in this
one, and the shards' outputs are merged into exactly the timeline a single Dissector makes from
all the packets (tests/unit/test_capture_shards.py compares them field by field, for every way of
splitting the flows).

Why the merge is exact: a Dissector appends each of its outputs (an item, a gap, a TLS connection,
a leg's first sight) while it dissects one packet, or at the end of the capture while it closes
one connection. Each output here is tagged with that *trigger*: the packet's position in the
capture, or, at the end, the position where the connection's 4-tuple first appeared (the order
the reassembler closes connections in), placed after every packet. A trigger belongs to one flow,
so to one shard; ordering the outputs of all shards by trigger, stably, replays the single
Dissector's order, and `Timeline.finalize` then sorts by time as it always does. TCP streams are
named by the position of the packet that opened them while the shards run ("tcp/#1234"), and
renamed to their rank in capture order ("tcp/7") once all are in, which is how one reassembler
counts them.

A shard whose process fails, does not answer within its deadline, or scanned other packets than
this one (records that are not the same when iterated again) is dissected here instead: the result is the same, only later. Forking needs
a POSIX system; elsewhere, with one core, or for a capture too small to gain, the analysis stays
in one process (capture._analyze).
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, Pipe
from operator import attrgetter, itemgetter

from conformance.capture.dissect import Dissector
from conformance.capture.packets import IpPacket
from conformance.capture.reassembly import TcpConnection
from conformance.capture.stream import stream_key
from conformance.capture.timeline import LegCoverage, Timeline
from conformance.capture.tls import KeyLog, TlsConnection

# Below this many relevant packets the split gains little or loses (`bench_capture.py --crossover`:
# 0.85x at about 1,000 relevant packets, 1.08x at 2,000, 1.23x at 5,000).
MIN_PACKETS = 2000
# After the last packet: outputs of the end of the capture come after every packet's.
_AT_END = 1 << 62
# A shard's process does what this one does with its own shard; if it has not answered this long
# after this one finished its own (or it died), its shard is dissected here.
MIN_WAIT_S = 30.0
WAIT_FACTOR = 10.0


def processes_for(requested: int | None) -> int:
    """How many processes: `requested` if given, else one per core this process may use (at
    most 8); one where processes cannot be forked."""
    if not hasattr(os, "fork"):
        return 1
    if requested is not None:
        return max(1, requested)
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # no sched_getaffinity (macOS)
        cores = os.cpu_count() or 1
    return max(1, min(cores, 8))


def split(packets: list[IpPacket], shards: int) -> list[list[int]]:
    """Positions in `packets` per shard, in capture order, all of a flow (both directions of a
    4-tuple: stream.stream_key) in one shard: the largest flows first, each to the shard with the
    fewest packets so far."""
    flows: dict[tuple, list[int]] = {}
    for pos, p in enumerate(packets):
        flows.setdefault(stream_key(p), []).append(pos)
    load = [0] * shards
    parts: list[list[int]] = [[] for _ in range(shards)]
    for flow in sorted(flows.values(), key=len, reverse=True):  # stable: ties in capture order
        s = load.index(min(load))
        parts[s] += flow
        load[s] += len(flow)
    for part in parts:
        part.sort()
    return parts


class ShardDissector(Dissector):
    """A Dissector that tags each of its outputs with its trigger (see the module's docstring).
    Its timeline is left unsorted, each item's `index` holding its trigger, for `merge`."""

    def __init__(self, pixit: dict, keylog: KeyLog):
        super().__init__(pixit, keylog)
        self.trigger = 0
        self.cov_first: dict[tuple[str, str], int] = {}  # leg -> trigger of its first sight
        self.notes: list[tuple[int, tuple[str, str], str, str]] = []  # (trigger, leg, kind, reason)
        self.tls_triggers: list[int] = []  # parallel to self.tls

    def packet(self, pkt: IpPacket) -> None:
        self.trigger = pkt.index
        super().packet(pkt)

    def emit(self, *args, **kwargs):
        item = super().emit(*args, **kwargs)
        item.index = self.trigger
        return item

    def coverage(self, sn, dn, src, dst) -> LegCoverage:
        cov = super().coverage(sn, dn, src, dst)
        self.cov_first.setdefault(cov.nodes, self.trigger)
        return cov

    def stream_name(self, conn: TcpConnection) -> str:
        return f"tcp/#{conn.first_index}"

    def tls_opened(self, tls: TlsConnection) -> None:
        super().tls_opened(tls)
        self.tls_triggers.append(self.trigger)

    def note(self, cov: LegCoverage, kind: str, reason: str) -> None:
        super().note(cov, kind, reason)
        self.notes.append((self.trigger, cov.nodes, kind, reason))

    def finish(self) -> Timeline:
        def closing(conn: TcpConnection) -> None:
            self.trigger = _AT_END + conn.key_index

        self.tcp.finish(closing)
        self.tcp.on_open = None  # no cycle left for the collector (Dissector.finish)
        return self.timeline


@dataclass
class ShardResult:
    """What a shard hands back to be merged (pickled, from a forked process)."""

    timeline: Timeline  # unsorted; item.index = trigger; packets in the shard's order
    cov_first: dict[tuple[str, str], int]
    notes: list[tuple[int, tuple[str, str], str, str]]
    tls: list[tuple[int, bytes | None]]  # (trigger, client random) per TLS connection
    conn_firsts: list[int] = field(default_factory=list)  # first_index of every TCP connection
    # a forked process's view of the split: how many relevant packets it read, which it took
    relevant: int = 0
    part: list[int] = field(default_factory=list)


def dissect_shard(packets: list[IpPacket], pixit: dict, keylog: KeyLog) -> ShardResult:
    d = ShardDissector(pixit, keylog)
    for pkt in packets:
        d.packet(pkt)
    tl = d.finish()
    return ShardResult(tl, d.cov_first, d.notes,
                       [(t, tls.client_random) for t, tls in zip(d.tls_triggers, d.tls)],
                       [c.first_index for c in d.tcp.all])


@dataclass
class Merged:
    timeline: Timeline  # finalized
    client_randoms: list[bytes]  # in the order one Dissector would list them
    tls_connections: int


def merge(results: list[ShardResult], parts: list[list[int]]) -> Merged:
    """One timeline from the shards' results (of the packets at `parts`' positions of the
    capture's relevant packets), in the order one Dissector would have made it."""
    first = results[0].timeline
    tl = Timeline(problems=list(first.problems), observable_nodes=set(first.observable_nodes))
    # TCP streams numbered by capture order of their first packet, as one reassembler counts them
    names = {f"tcp/#{f}": f"tcp/{n}" for n, f in enumerate(sorted(f for r in results for f in r.conn_firsts))}
    items = [i for r in results for i in r.timeline.items]
    items.sort(key=attrgetter("index"))  # stable; a trigger is never in two shards
    for item in items:
        if item.stream.startswith("tcp/#"):
            item.stream = names[item.stream]
    tl.items = items
    packets: list = [None] * sum(len(part) for part in parts)  # one entry per packet, in its place
    for r, part in zip(results, parts):
        for pos, entry in zip(part, r.timeline.packets):
            packets[pos] = entry
    tl.packets = packets
    starts = [r.timeline.t_start for r in results if r.timeline.t_start is not None]
    ends = [r.timeline.t_end for r in results if r.timeline.t_end is not None]
    tl.t_start, tl.t_end = (min(starts) if starts else None), (max(ends) if ends else None)
    tl.coverage = _merge_coverage(results, names)
    tls = sorted((pair for r in results for pair in r.tls), key=itemgetter(0))
    return Merged(tl.finalize(), [random for _, random in tls if random], len(tls))


def _merge_coverage(results: list[ShardResult], names: dict[str, str]) -> dict[tuple[str, str], LegCoverage]:
    firsts = sorted(((t, leg) for r in results for leg, t in r.cov_first.items()), key=itemgetter(0))
    merged: dict[tuple[str, str], LegCoverage] = {}
    for _, leg in firsts:
        if leg in merged:
            continue
        cov = merged[leg] = LegCoverage(leg)
        for r in results:
            part = r.timeline.coverage.get(leg)
            if part is not None:
                cov.packets += part.packets
                cov.bytes += part.bytes
                cov.tls_connections += part.tls_connections
                cov.decrypted_connections += part.decrypted_connections
    for _, leg, kind, reason in sorted((n for r in results for n in r.notes), key=itemgetter(0)):
        if reason.startswith("tcp/#"):  # an undecryptable connection's reason names its stream first
            stream, rest = reason.split(" ", 1)
            reason = f"{names[stream]} {rest}"
        getattr(merged[leg], kind).append(reason)
    return merged


class Split:
    """An analysis split over processes, forked once the capture is read and before any object is
    made for one of its packets.

    Each process cuts the records from what was read, scans them and splits the packets itself
    (the split is a function of the packets alone, so all make the same one), dissects its own
    shard and sends the result back. Forking after the scan would be simpler, but then both
    processes share every packet object copy-on-write and pay a page fault the first time they
    write a reference count on each page of them (`benchmarks/bench_shard_fork.py`). libpcap's
    output is one bytes object until it is iterated (libpcap.DumpedRecords), so nothing of it is
    copied. Where the capture turns out to have fewer than `min_packets` relevant packets, all
    agree not to split: the others stop and this process dissects alone.
    """

    def __init__(self, processes: int, load: Callable[[], tuple[list[IpPacket], KeyLog]], pixit: dict,
                 min_packets: int = MIN_PACKETS):
        # The dissection's lazily imported codec is imported before the fork: a child must not
        # need an import lock that another thread of this process may hold at the fork.
        import conformance.codec.sip  # noqa: F401

        self.processes, self.pixit, self.min_packets = processes, pixit, min_packets
        self.children: list[tuple[int, Connection]] = []
        try:
            for k in range(1, processes):
                self.children.append(_fork(k, processes, load, pixit, min_packets))
        except BaseException:
            self.cancel()
            raise

    def finish(self, packets: list[IpPacket], keylog: KeyLog) -> Merged | None:
        """This process's shard dissected and the others' collected and merged; None (and the
        others stopped) when `packets` are too few to split."""
        if len(packets) < self.min_packets:
            self.cancel()
            return None
        parts = split(packets, self.processes)
        started = time.monotonic()
        results = [dissect_shard([packets[i] for i in parts[0]], self.pixit, keylog)]
        deadline = time.monotonic() + max(MIN_WAIT_S, WAIT_FACTOR * (time.monotonic() - started))
        for (pid, reader), part in zip(self.children, parts[1:]):
            result = _collect(pid, reader, deadline)
            if result is None or result.relevant != len(packets) or result.part != part:
                # it failed, or its records were not these (an iterable that yields other records
                # a second time): not the same split
                result = dissect_shard([packets[i] for i in part], self.pixit, keylog)
            results.append(result)
        self.children = []
        return merge(results, parts)

    def cancel(self) -> None:
        """Stop and reap every process still there."""
        children, self.children = self.children, []
        for pid, reader in children:
            reader.close()
            _reap(pid, kill=True)


def _fork(k: int, processes: int, load, pixit: dict, min_packets: int) -> tuple[int, Connection]:
    """Process `k` of the split: it loads, splits and dissects shard k, and sends its ShardResult.

    os.fork, not multiprocessing.Process: the child must run nothing but the analysis and leave
    with os._exit, no atexit handlers and no flush of standard streams whose locks a thread of
    this process (pytest-xdist's execnet, say) may have held at the fork."""
    reader, writer = Pipe(duplex=False)
    pid = os.fork()
    if pid == 0:  # the child
        code = 1
        try:
            reader.close()
            _child(writer, k, processes, load, pixit, min_packets)
            code = 0
        finally:
            os._exit(code)
    writer.close()
    return pid, reader


def _child(writer: Connection, k: int, processes: int, load, pixit: dict, min_packets: int) -> None:
    try:
        packets, keylog = load()
        result = None
        if len(packets) >= min_packets:  # else the parent dissects alone, and stops this process
            part = split(packets, processes)[k]
            result = dissect_shard([packets[i] for i in part], pixit, keylog)
            result.relevant, result.part = len(packets), part
    except BaseException:  # noqa: BLE001 - the parent dissects this shard itself, and raises
        result = None
    writer.send(result)


def _collect(pid: int, reader: Connection, deadline: float) -> ShardResult | None:
    """The child's result, or None if it failed, died or is too late; the child is reaped
    (killed first if it has not answered)."""
    result = None
    try:
        if reader.poll(max(0.0, deadline - time.monotonic())):
            result = reader.recv()
    except Exception:  # noqa: BLE001 - it died half-way, or sent what does not unpickle
        result = None
    finally:
        reader.close()
        _reap(pid, kill=result is None)
    return result if isinstance(result, ShardResult) else None


def _reap(pid: int, kill: bool) -> None:
    if kill:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    os.waitpid(pid, 0)  # it has answered or been killed: this returns at once
