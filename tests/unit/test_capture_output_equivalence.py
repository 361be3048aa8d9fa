"""The per-case capture outputs were made cheaper (issue 15): the Internet checksum of the
synthesized plaintext segments and the pcapng writer give the same bytes as the straightforward
versions kept here as oracles."""

from __future__ import annotations

import random
import struct

from conformance.capture import pcapng
from conformance.capture.synth import _csum


def _csum_oracle(data: bytes) -> int:
    """RFC 1071 as written: sum the 16-bit words, fold the carries, complement."""
    if len(data) % 2:
        data += b"\x00"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def test_checksum_matches_the_word_by_word_sum():
    rng = random.Random(15)
    cases = [b"", b"\x00", b"\x00\x00" * 9, b"\xff\xff", b"\xff\xff" * 7, b"\xff", b"\xff\xfe\x00\x01"]
    cases += [bytes(rng.choice((0, 255, rng.randrange(256))) for _ in range(rng.randint(0, 64)))
              for _ in range(5000)]
    cases += [rng.randbytes(rng.randint(1000, 1500)) for _ in range(50)]
    for data in cases:
        assert _csum(data) == _csum_oracle(data), data


def _epbs_oracle(records, idb) -> bytes:
    out = b""
    for ts, linktype, frame, iface in records:
        ns = int(round(ts * 1e9))
        body = struct.pack("<IIIII", idb[(linktype, iface)], ns >> 32, ns & 0xFFFFFFFF, len(frame), len(frame))
        out += pcapng._block(pcapng.EPB, body + frame)
    return out


def test_packet_blocks_match_one_padded_block_per_frame(tmp_path):
    rng = random.Random(16)
    for k in range(200):
        records = [(1.7e9 + rng.random() * 100, rng.choice((1, 1, 101)), rng.randbytes(rng.randint(0, 70)),
                    rng.randint(0, 2)) for _ in range(rng.randint(0, 30))]
        path = pcapng.write_pcapng(tmp_path / "x.pcapng", records, "", ["lo", "eth0", "any"])
        empty = pcapng.write_pcapng(tmp_path / "e.pcapng", [], "", ["lo", "eth0", "any"]).read_bytes()
        data = path.read_bytes()
        idb = {}
        for _ts, linktype, _frame, iface in records:
            idb.setdefault((linktype, iface), len(idb))
        epbs = _epbs_oracle(records, idb)
        assert data.endswith(epbs), k
        if records:  # the head: section header and one interface block per (link type, interface)
            assert data[:len(data) - len(epbs)].startswith(empty[:28]), k
        else:
            assert data == empty
