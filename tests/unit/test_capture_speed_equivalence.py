"""Issue 15, round 2: the offline analysis got cheaper without reading anything differently.

- `TlsConnection.feed` cuts records by position instead of deleting each one from the front of a
  bytearray: the events must be those of the record-by-record reading it replaced (kept below as
  the oracle), however the TCP stream is cut into pieces, for TLS 1.3 and 1.2 streams.
- The dissector no longer forms reference cycles: one analysis leaves no cyclic garbage (it did:
  about 25,000 objects per benchmark analysis that only the cyclic GC freed).
"""

from __future__ import annotations

import gc
import random
import struct
from pathlib import Path

import pytest
import yaml

from conformance.capture import analyze_records
from conformance.capture.packets import Scanner
from conformance.capture.reassembly import TcpReassembler
from conformance.capture.synth import Capture, registration
from conformance.capture.tls import MAX_RECORD, KeyLog, TlsConnection, TlsEvent

ROOT = Path(__file__).resolve().parents[2]
PIXIT = yaml.safe_load((ROOT / "profiles" / "reference.yaml").read_text())["pixit"]


class RecordByRecord(TlsConnection):
    """The reading before the change: each record deleted from the front of the buffer."""

    def feed(self, from_client: bool, data: bytes) -> list[TlsEvent]:
        d = self.c if from_client else self.s
        if self.failed:
            return []
        d.buf += data
        out: list[TlsEvent] = []
        while len(d.buf) >= 5:
            ctype, version, length = d.buf[0], bytes(d.buf[1:3]), struct.unpack_from("!H", d.buf, 3)[0]
            if ctype not in (20, 21, 22, 23, 24) or d.buf[1] != 3 or length > MAX_RECORD:
                self.failed = f"invalid TLS record header {bytes(d.buf[:5]).hex()}"
                out.append(TlsEvent("error", from_client, bytes(d.buf), self.failed))
                d.buf.clear()
                break
            if len(d.buf) < 5 + length:
                break
            header, body = bytes(d.buf[:5]), bytes(d.buf[5:5 + length])
            del d.buf[:5 + length]
            d.records += 1
            out += self._record(from_client, d, ctype, version, header, body)
        return out


class _Collect:
    """Reassembler handler keeping each connection's byte stream, in capture order."""

    def __init__(self, chunks: list):
        self.chunks = chunks

    def data(self, fc, data, ts):
        self.chunks.append((fc, data))

    def gap(self, fc, missing, ts):
        raise AssertionError("the synthetic capture has no holes")

    def eof(self, fc, ts):
        pass

    def close(self, ts):
        pass


def _streams(tmp_path: Path, tls_version: str) -> tuple[list[list[tuple[bool, bytes]]], KeyLog]:
    keylog = tmp_path / f"keys-{tls_version}.log"
    cap = Capture()
    registration(cap, keylog, tls_version=tls_version, mss=300)
    conns: list[list] = []

    def on_open(_conn):
        conns.append([])
        return _Collect(conns[-1])

    tcp = TcpReassembler(on_open)
    for pkt in Scanner(None).scan(cap.frames_records()):
        if pkt.proto == 6:
            tcp.packet(pkt)
    tcp.finish()
    tls = [c for c in conns if c and c[0][1][:1] == b"\x16"]
    assert len(tls) >= 2, "the registration has the token and the WebSocket TLS connections"
    return tls, KeyLog([keylog])


def _events(conn: TlsConnection, pieces) -> list[tuple]:
    out = []
    for fc, data in pieces:
        out += [(e.kind, e.from_client, bytes(e.data), e.detail) for e in conn.feed(fc, data)]
    conn.finish()
    return out + [("status", conn.status, conn.c.records, conn.s.records, conn.c.decrypted, conn.s.decrypted,
                   bytes(conn.c.buf), bytes(conn.s.buf))]


def _recut(chunks, rng: random.Random) -> list[tuple[bool, bytes]]:
    """The same bytes per direction, in the same order, cut at random places (also inside
    record headers), sometimes a byte at a time."""
    out = []
    for fc, data in chunks:
        pos = 0
        while pos < len(data):
            n = rng.choice((1, 2, 3, 4, 5, 6, 17, 300, len(data)))
            out.append((fc, data[pos:pos + n]))
            pos += n
    return out


@pytest.mark.parametrize("tls_version", ["1.3", "1.2"])
def test_feed_reads_every_cut_as_the_record_by_record_reading(tmp_path, tls_version):
    streams, keylog = _streams(tmp_path, tls_version)
    rng = random.Random(15)
    for chunks in streams:
        want = _events(RecordByRecord(keylog), chunks)
        assert any(k == "data" for k, *_ in want), "the oracle decrypted application data"
        assert _events(TlsConnection(keylog), chunks) == want
        for _ in range(5):
            pieces = _recut(chunks, rng)
            assert _events(TlsConnection(keylog), pieces) == _events(RecordByRecord(keylog), pieces)


def test_feed_reads_a_broken_stream_as_before(tmp_path):
    """A stream that stops being TLS: the same error event, with the same bytes, and nothing after."""
    streams, keylog = _streams(tmp_path, "1.3")
    fc, first = streams[0][0]
    broken = [(fc, first), (fc, b"\x17\x03\x03\x00\x05abc"), (fc, b"GET / HTTP/1.1\r\n\r\n"), (fc, b"more")]
    want = _events(RecordByRecord(keylog), broken)
    assert any(k == "error" for k, *_ in want)
    assert _events(TlsConnection(keylog), broken) == want


def test_an_analysis_leaves_no_cyclic_garbage(tmp_path):
    keylog = tmp_path / "keys.log"
    cap = Capture()
    registration(cap, keylog)
    was = gc.isenabled()
    gc.collect()
    gc.disable()
    try:
        result = analyze_records(cap.frames_records(), PIXIT, [keylog])
        assert any(i.proto == "sip" for i in result.timeline.items), "the analysis read the SIP messages"
        assert result.stats["tls_connections"] >= 2
        assert gc.collect() == 0, "the dissector's state is freed by reference counting"
    finally:
        if was:
            gc.enable()
