"""Capture and trace analysis of the legs the harness never sees itself (issue 4).

Live: `CaptureSession(pixit, keylogs, interfaces, settle_ms).start()` before a test case's first
step, `.stop()` after its last -> CaptureResult. Offline: `analyze_file(path, pixit, keylogs)` on a
vendor's lab capture. Either way the packets go through the same pipeline (packets -> reassembly ->
tls -> dissect -> timeline) and `evaluate_capture(block, result, ctx)` turns the test case's
`capture:` block into Findings; `conformance.report.ladder.render_ladder` draws the flow.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Iterable
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from conformance.capture.timeline import Timeline


@dataclass
class CaptureResult:
    timeline: Timeline
    pcapng_path: Path | None = None
    error: str | None = None  # the capture as a whole is unusable (no privilege, sniffer died, drops)
    stats: dict = field(default_factory=dict)
    nodes: list[str] = field(default_factory=list)  # node names of the profile ("ue" = the harness)
    plaintext_path: Path | None = None  # decrypted, redacted, no TLS secret (conformance.capture.plaintext)
    # what evaluate_capture matched each entry with: the report's per-entry steps and the ladder
    # show that match, the one the verdict was judged on, without matching the block again
    block_match: Any = None
    # the adaptive settle's last match of the block on this very result (SettleMatch), which
    # evaluate_capture takes instead of matching again while nothing it depends on has changed
    settle_match: Any = None


@contextmanager
def _no_cycle_collection():
    """Dissection allocates many short-lived, acyclic objects: the cyclic collector would run
    hundreds of times for nothing (about 30 % of the analysis time, measured). Reference counting
    still frees them; the collector's state is restored afterwards."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            # What survived (packets, reassembled streams, the timeline) would otherwise be
            # traversed by the young collection that the first allocation after enable() starts:
            # about 2.2 ms per test case of a live session, of about 12 ms of analysis (issue 15).
            # freeze() + unfreeze() moves every tracked object to the oldest generation without
            # traversing it; cycles among them are still found by the next full collection.
            gc.freeze()
            gc.unfreeze()
            gc.enable()


@dataclass
class _Source:
    """A capture as read: its records, the TLS key log text inside it, which reader read it."""

    records: Iterable[tuple[float, int, bytes, int]]
    keylog_text: str = ""
    reader: str | None = None


def analyze_records(records: Iterable[tuple[float, int, bytes, int]], pixit: dict,
                    keylogs: Iterable[str | Path] = (), *, keylog_text: str = "",
                    pcapng_out: str | Path | None = None, t_window: tuple[float, float] | None = None,
                    interfaces: list[str] | None = None, plaintext_out: str | Path | None = None,
                    redactor=None, workers: int | None = 1) -> CaptureResult:
    """The whole offline pipeline on (ts, linktype, frame, iface) records.

    `pcapng_out`: the raw capture with its TLS key log inside (secrets: only where the profile
    opts in); `plaintext_out`: the decrypted traffic as plaintext packets, `redactor` applied.
    `workers`: processes to dissect in (capture.shards), None for one per core when the capture is
    large enough to gain; the timeline is the same either way. Not with `plaintext_out`. With
    more than one, each process iterates `records` after a fork: a list, or an iterator over
    memory, not one that reads a file descriptor the processes would share."""
    from conformance.capture import shards

    small = hasattr(records, "__len__") and len(records) < shards.MIN_PACKETS
    with _no_cycle_collection():
        return _analyze(_Source(records, keylog_text), pixit, keylogs, pcapng_out=pcapng_out,
                        t_window=t_window, interfaces=interfaces, plaintext_out=plaintext_out,
                        redactor=redactor, workers=1 if workers is None and small else workers)


def _prepare(source: _Source, pixit: dict, keylogs):
    """The key log (the files and the capture's own secrets), a Dissector and its scanner."""
    from conformance.capture.dissect import Dissector
    from conformance.capture.packets import Scanner
    from conformance.capture.tls import KeyLog

    keylog = KeyLog(keylogs)
    if source.keylog_text:
        keylog.add_text(source.keylog_text)
    d = Dissector(pixit, keylog)
    return keylog, d, Scanner(d.packet_filter())


def _analyze(source: _Source, pixit, keylogs, *, pcapng_out, t_window, interfaces, plaintext_out, redactor,
             workers) -> CaptureResult:
    from conformance.capture import shards
    from conformance.capture.pcapng import write_pcapng

    started = time.perf_counter()
    keylog, d, scanner = _prepare(source, pixit, keylogs)
    processes = 1 if plaintext_out is not None else shards.processes_for(workers)
    if processes > 1:
        # forked here, once the capture is read and before its records are: see shards.Split
        split = shards.Split(processes, lambda: (list(scanner.scan(source.records)), keylog), pixit,
                             shards.MIN_PACKETS if workers is None else 0)
        try:
            packets = list(scanner.scan(source.records))
            merged = split.finish(packets, keylog)  # None: too few packets to split
        except BaseException:
            split.cancel()
            raise
    else:
        packets = scanner.scan(source.records)  # dissected as they are read
        merged = None
    if plaintext_out is not None:
        from conformance.capture.plaintext import PlaintextRecorder

        d.plaintext = PlaintextRecorder()
    kept = []
    if merged is not None:
        timeline, client_randoms, tls_connections = merged.timeline, merged.client_randoms, merged.tls_connections
        if pcapng_out is not None:
            kept = [(pkt.ts, pkt.linktype, pkt.frame, pkt.iface) for pkt in packets]
    else:
        for pkt in packets:
            d.packet(pkt)
            if pcapng_out is not None:
                kept.append((pkt.ts, pkt.linktype, pkt.frame, pkt.iface))
        timeline, client_randoms, tls_connections = d.finish(), d.client_randoms(), len(d.tls)
    if t_window is not None:
        timeline.t_start, timeline.t_end = t_window
    path = None
    if pcapng_out is not None:
        path = write_pcapng(pcapng_out, kept, keylog.lines_for(client_randoms), interfaces)
    plain = None
    if plaintext_out is not None:
        from conformance.capture.plaintext import write_plaintext_pcapng

        plain = write_plaintext_pcapng(plaintext_out, d.plaintext, redactor, interfaces, t_window)
    s = scanner.stats
    stats = {"packets": s.packets, "relevant": s.relevant, "undecodable": s.undecodable,
             "tls_connections": tls_connections, "items": len(timeline.items),
             "shards": 1 if merged is None else processes, "analysis_s": round(time.perf_counter() - started, 3)}
    if source.reader is not None:
        stats["reader"] = source.reader
    return CaptureResult(timeline, path, None, stats, list(d.nodes.order), plain)


# A capture file smaller than this holds fewer packets than a split needs (shards.MIN_PACKETS; a
# record is at least 16 bytes of header and about 54 of frame), so no process is forked for it.
MIN_SPLIT_FILE_BYTES = 128 * 1024


def analyze_file(path: str | Path, pixit: dict, keylogs: Iterable[str | Path] = (), *,
                 pcapng_out: str | Path | None = None, prefilter: bool = True,
                 workers: int | None = None) -> CaptureResult:
    """Dissect a capture file (pcap or pcapng) against the profile's nodes (`pixit`).

    TLS secrets come from the NSS key logs given and from Decryption Secrets Blocks in the file.
    With `prefilter`, libpcap reads the file and drops the packets of no leg of the profile with
    the profile's BPF filter before Python sees them (capture.libpcap); without libpcap, or for a
    file it cannot read, the Python reader does the same filtering, slower. `workers`: as for
    analyze_records; by default one process per core for a large capture (capture.shards).
    """
    path = Path(path)
    if workers is None and path.stat().st_size < MIN_SPLIT_FILE_BYTES:
        workers = 1
    with _no_cycle_collection():
        result = _analyze(_read_file(path, pixit, prefilter), pixit, keylogs, pcapng_out=pcapng_out,
                          t_window=None, interfaces=None, plaintext_out=None, redactor=None, workers=workers)
    result.stats["source"] = str(path)
    return result


def _read_file(path: Path, pixit: dict, prefilter: bool) -> _Source:
    from conformance.capture.libpcap import LibpcapUnavailable, read_filtered
    from conformance.capture.packets import iter_records
    from conformance.capture.pcapng import embedded_keylogs

    with path.open("rb") as fh:
        pcapng = fh.read(4) == b"\x0a\x0d\x0d\x0a"
    records, how = None, "python"
    if prefilter:
        try:
            # with the libpcap prefilter, stats["packets"] counts only those that passed the filter
            records, how = read_filtered(path, pixit), "libpcap BPF"
        except LibpcapUnavailable as exc:
            how = f"python ({exc})"
    data = path.read_bytes() if records is None or pcapng else b""
    if records is None:
        records = iter_records(data)
    return _Source(records, embedded_keylogs(data) if pcapng else "", how)


def __getattr__(name: str):
    # The live and assertion parts pull in Scapy and the matchers: load them on first use.
    if name == "CaptureSession":
        from conformance.capture.sniff import CaptureSession

        return CaptureSession
    if name == "evaluate_capture":
        from conformance.capture.assertions import evaluate_capture

        return evaluate_capture
    raise AttributeError(name)


__all__ = ["CaptureResult", "CaptureSession", "analyze_file", "analyze_records", "evaluate_capture"]
