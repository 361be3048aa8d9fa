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


def analyze_records(records: Iterable[tuple[float, int, bytes, int]], pixit: dict,
                    keylogs: Iterable[str | Path] = (), *, keylog_text: str = "",
                    pcapng_out: str | Path | None = None, t_window: tuple[float, float] | None = None,
                    interfaces: list[str] | None = None, plaintext_out: str | Path | None = None,
                    redactor=None) -> CaptureResult:
    """The whole offline pipeline on (ts, linktype, frame, iface) records.

    `pcapng_out`: the raw capture with its TLS key log inside (secrets: only where the profile
    opts in); `plaintext_out`: the decrypted traffic as plaintext packets, `redactor` applied."""
    with _no_cycle_collection():
        return _analyze_records(records, pixit, keylogs, keylog_text=keylog_text, pcapng_out=pcapng_out,
                                t_window=t_window, interfaces=interfaces, plaintext_out=plaintext_out,
                                redactor=redactor)


def _analyze_records(records, pixit, keylogs, *, keylog_text, pcapng_out, t_window, interfaces,
                     plaintext_out, redactor) -> CaptureResult:
    from conformance.capture.dissect import Dissector
    from conformance.capture.packets import Scanner
    from conformance.capture.pcapng import write_pcapng
    from conformance.capture.tls import KeyLog

    started = time.perf_counter()
    keylog = KeyLog(keylogs)
    if keylog_text:
        keylog.add_text(keylog_text)
    d = Dissector(pixit, keylog)
    if plaintext_out is not None:
        from conformance.capture.plaintext import PlaintextRecorder

        d.plaintext = PlaintextRecorder()
    scanner = Scanner(d.packet_filter())
    kept = []
    for pkt in scanner.scan(records):
        d.packet(pkt)
        if pcapng_out is not None:
            kept.append((pkt.ts, pkt.linktype, pkt.frame, pkt.iface))
    timeline = d.finish()
    if t_window is not None:
        timeline.t_start, timeline.t_end = t_window
    path = None
    if pcapng_out is not None:
        path = write_pcapng(pcapng_out, kept, keylog.lines_for(d.client_randoms()), interfaces)
    plain = None
    if plaintext_out is not None:
        from conformance.capture.plaintext import write_plaintext_pcapng

        plain = write_plaintext_pcapng(plaintext_out, d.plaintext, redactor, interfaces, t_window)
    s = scanner.stats
    stats = {"packets": s.packets, "relevant": s.relevant, "undecodable": s.undecodable,
             "tls_connections": len(d.tls), "items": len(timeline.items),
             "analysis_s": round(time.perf_counter() - started, 3)}
    return CaptureResult(timeline, path, None, stats, list(d.nodes.order), plain)


def analyze_file(path: str | Path, pixit: dict, keylogs: Iterable[str | Path] = (), *,
                 pcapng_out: str | Path | None = None, prefilter: bool = True) -> CaptureResult:
    """Dissect a capture file (pcap or pcapng) against the profile's nodes (`pixit`).

    TLS secrets come from the NSS key logs given and from Decryption Secrets Blocks in the file.
    With `prefilter`, libpcap reads the file and drops the packets of no leg of the profile with
    the profile's BPF filter before Python sees them (capture.libpcap); without libpcap, or for a
    file it cannot read, the Python reader does the same filtering, slower.
    """
    from conformance.capture.libpcap import LibpcapUnavailable, read_filtered
    from conformance.capture.packets import iter_records
    from conformance.capture.pcapng import embedded_keylogs

    path = Path(path)
    with path.open("rb") as fh:
        pcapng = fh.read(4) == b"\x0a\x0d\x0d\x0a"
    records, how = None, "python"
    if prefilter:
        try:
            records, how = read_filtered(path, pixit), "libpcap BPF"
        except LibpcapUnavailable as exc:
            how = f"python ({exc})"
    data = path.read_bytes() if records is None or pcapng else b""
    if records is None:
        records = iter_records(data)
    result = analyze_records(records, pixit, keylogs, keylog_text=embedded_keylogs(data) if pcapng else "",
                             pcapng_out=pcapng_out)
    result.stats["source"] = str(path)
    # with the libpcap prefilter, "packets" counts only those that passed the profile's filter
    result.stats["reader"] = how
    return result


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
