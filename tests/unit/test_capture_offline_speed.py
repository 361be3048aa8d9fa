"""Issue 15, round 3 (offline analysis at 800,000 packets per CPU-second): cheaper code that must
compute exactly what the code it replaced computed. The replaced code is kept here as the oracle.
"""

from __future__ import annotations

import hmac
import struct
from collections.abc import Iterable, Iterator
from pathlib import Path

import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from conformance.capture.packets import (
    LINKTYPE_ETHERNET,
    LINKTYPE_IPV4,
    LINKTYPE_IPV6,
    LINKTYPE_LINUX_SLL,
    LINKTYPE_LINUX_SLL2,
    LINKTYPE_LOOP,
    LINKTYPE_NULL,
    LINKTYPE_RAW,
    TCP,
    UDP,
    IpPacket,
    Scanner,
    _ntoa,
)
from conformance.capture.tls import _hmac_of, hkdf_expand, prf12

ROOT = Path(__file__).resolve().parents[2]
PIXIT = yaml.safe_load((ROOT / "profiles" / "reference.yaml").read_text())["pixit"]

HASHES = st.sampled_from(["sha256", "sha384", "sha1", "sha512"])


def _hkdf_expand_before(prk: bytes, info: bytes, length: int, hash_name: str) -> bytes:
    out, block, counter = b"", b"", 1
    while len(out) < length:
        block = hmac.digest(prk, block + info + bytes([counter]), hash_name)
        out += block
        counter += 1
    return out[:length]


def _prf12_before(secret: bytes, label: bytes, seed: bytes, length: int, hash_name: str) -> bytes:
    seed = label + seed
    out, a = b"", seed
    while len(out) < length:
        a = hmac.digest(secret, a, hash_name)
        out += hmac.digest(secret, a + seed, hash_name)
    return out[:length]


@settings(max_examples=300)
@given(key=st.binary(max_size=300), msg=st.binary(max_size=300), hash_name=HASHES)
def test_hmac_is_the_standard_librarys(key, msg, hash_name):
    # keys shorter than, equal to and longer than the block size (64 or 128 bytes): hashed first
    assert _hmac_of(key, hash_name)(msg) == hmac.digest(key, msg, hash_name)


@settings(max_examples=200)
@given(prk=st.binary(min_size=1, max_size=64), info=st.binary(max_size=80), length=st.integers(1, 200),
       hash_name=HASHES)
def test_hkdf_expand_unchanged(prk, info, length, hash_name):
    assert hkdf_expand(prk, info, length, hash_name) == _hkdf_expand_before(prk, info, length, hash_name)


@settings(max_examples=200)
@given(secret=st.binary(min_size=1, max_size=64), label=st.binary(max_size=20), seed=st.binary(max_size=64),
       length=st.integers(1, 200), hash_name=HASHES)
def test_prf12_unchanged(secret, label, seed, length, hash_name):
    assert prf12(secret, label, seed, length, hash_name) == _prf12_before(secret, label, seed, length, hash_name)


# -- SIP header section: the lenient parse's loop without branches --------------------------------

_LINE = st.one_of(
    st.tuples(st.sampled_from(["Via", "v", "Content-Length", "l", "L", "content-LENGTH", "Content-Length ",
                               "Content-Lengthy", "To", "X-A", "Contact ", "Route\t"]),
              st.sampled_from([":", ": ", ":\t", " : "]),
              st.text(st.sampled_from("ab ,;:<>\t\r\"=10"), max_size=12)).map("".join),
    st.text(st.sampled_from("ab :\t\r"), max_size=8),  # folding, no colon, CR noise, empty-ish
)


@settings(max_examples=400)
@given(start=st.sampled_from(["REGISTER sip:x SIP/2.0", "SIP/2.0 200 OK", "INVITE sip:a@b SIP/2.0\r"]),
       lines=st.lists(_LINE, max_size=8), eol=st.sampled_from(["\r\n", "\n"]),
       body=st.binary(max_size=6))
def test_sip_parse_fast_path_reads_what_the_full_loop_reads(start, lines, eol, body):
    from conformance.codec.sip import _parse

    data = (eol.join([start, *lines]) + "\r\n\r\n").encode() + body
    try:
        fast = _parse(data, None)  # the branch-free loop when no line continues another
    except Exception as exc:  # noqa: BLE001 - both must fail alike
        fast = type(exc)
    try:
        full = _parse(data, [])  # with a list for violations: always the full loop
    except Exception as exc:  # noqa: BLE001
        full = type(exc)
    if isinstance(full, type):
        assert fast is full
        return
    assert fast.msg.headers.items() == full.msg.headers.items()
    assert fast.line_numbers == full.line_numbers
    assert (fast.msg, fast.start_line, fast.body_available, fast.content_length) == \
        (full.msg, full.start_line, full.body_available, full.content_length)


@settings(max_examples=300)
@given(lines=st.lists(st.tuples(st.sampled_from(["Via", "v", "VIA", "Route", "Content-Length", "l", "X"]),
                                st.text(st.sampled_from("a ,<>\""), max_size=6)), max_size=6),
       name=st.sampled_from(["Via", "v", "route", "Content-Length", "l", "x", "Missing"]))
def test_headers_get_unchanged(lines, name):
    from conformance.codec.sip import LIST_HEADERS, Headers, header_key, split_list

    h = Headers(lines)

    def before(name, default=None):
        for i in h._matches(name):
            value = h._items[i][1]
            if header_key(name) in LIST_HEADERS:
                values = split_list(value)
                if not values:
                    continue
                return values[0]
            return value
        return default

    assert h.get(name) == before(name) and h.get(name, "d") == before(name, "d")


# -- Scanner: transport layer read at offsets into the frame ---------------------------------------

class ScannerBefore(Scanner):
    """The scan before the change: the L4 bytes sliced out, then the payload sliced again."""

    def scan(self, records: Iterable[tuple[float, int, bytes, int]]) -> Iterator[IpPacket]:
        stats = self.stats
        addrs = self.flt.addresses if self.flt else None
        unpack_hh = struct.Struct("!HH").unpack_from
        text = self._text

        def ntoa(raw: bytes) -> str:
            s = text.get(raw)
            if s is None:
                s = text[raw] = _ntoa(raw)
            return s
        for ts, linktype, frame, iface in records:
            stats.packets += 1
            # link layer -> offset of the IP header
            if linktype == LINKTYPE_ETHERNET:
                etype = frame[12:14]
                off = 14
                while etype in (b"\x81\x00", b"\x88\xa8"):  # 802.1Q / 802.1ad tags
                    etype, off = frame[off + 2:off + 4], off + 4
                if etype == b"\x08\x00":
                    v6 = False
                elif etype == b"\x86\xdd":
                    v6 = True
                else:
                    continue
            elif linktype in (LINKTYPE_RAW, 12, 14, LINKTYPE_IPV4, LINKTYPE_IPV6):
                off = 0
                if not frame:
                    continue
                v6 = frame[0] >> 4 == 6
            elif linktype in (LINKTYPE_NULL, LINKTYPE_LOOP):
                fam = frame[0:4]
                fam_v = struct.unpack("<I" if linktype == LINKTYPE_NULL and fam[0] else ">I", fam)[0] \
                    if len(fam) == 4 else 0
                if fam_v == 2:
                    v6 = False
                elif fam_v in (10, 24, 28, 30):
                    v6 = True
                else:
                    continue
                off = 4
            elif linktype == LINKTYPE_LINUX_SLL:
                etype, off = frame[14:16], 16
                if etype not in (b"\x08\x00", b"\x86\xdd"):
                    continue
                v6 = etype == b"\x86\xdd"
            elif linktype == LINKTYPE_LINUX_SLL2:
                etype, off = frame[0:2], 20
                if etype not in (b"\x08\x00", b"\x86\xdd"):
                    continue
                v6 = etype == b"\x86\xdd"
            else:
                stats.undecodable += 1
                continue
            # network layer: the address test first, on raw bytes
            if not v6:
                if len(frame) < off + 20:
                    stats.undecodable += 1
                    continue
                src, dst = frame[off + 12:off + 16], frame[off + 16:off + 20]
                if addrs is not None and (src not in addrs or dst not in addrs):
                    continue
                ihl = (frame[off] & 0x0F) * 4
                total, _id, frag = struct.unpack_from("!HHH", frame, off + 2)
                proto = frame[off + 9]
                if proto != TCP and proto != UDP:
                    continue
                l4 = frame[off + ihl:off + total]  # total length strips Ethernet padding
                if frag & 0x3FFF:  # MF set or offset != 0
                    stats.fragments += 1
                    l4 = self._defrag(src, dst, _id, proto, frag, l4)
                    if l4 is None:
                        continue
            else:
                if len(frame) < off + 40:
                    stats.undecodable += 1
                    continue
                src, dst = frame[off + 8:off + 24], frame[off + 24:off + 40]
                if addrs is not None and (src not in addrs or dst not in addrs):
                    continue
                proto = frame[off + 6]
                (plen,) = struct.unpack_from("!H", frame, off + 4)
                l4 = frame[off + 40:off + 40 + plen]
                if proto != TCP and proto != UDP:
                    continue  # extension headers: not used on the legs we dissect
            if len(l4) < 8:
                stats.undecodable += 1
                continue
            sport, dport = unpack_hh(l4, 0)
            if self.flt is not None and not self.flt.wants(src, sport, dst, dport):
                continue
            stats.relevant += 1
            stats.linktypes.add(linktype)
            if proto == TCP:
                if len(l4) < 20:
                    stats.undecodable += 1
                    continue
                seq, ack, offflags = struct.unpack_from("!IIH", l4, 4)
                yield IpPacket(ts, stats.packets - 1, linktype, frame, iface, TCP, ntoa(src), sport,
                               ntoa(dst), dport, l4[(offflags >> 12) * 4:], seq, ack, offflags & 0x3F)
            else:
                (ulen,) = struct.unpack_from("!H", l4, 4)
                payload = l4[8:ulen] if 8 <= ulen <= len(l4) else l4[8:]
                yield IpPacket(ts, stats.packets - 1, linktype, frame, iface, UDP, ntoa(src), sport,
                               ntoa(dst), dport, payload)


def _frame_strategy():
    from conformance.capture.synth import tcp_segment, udp_datagram

    def build(kind, payload, cut, pad, mutate, vlan, field):
        if kind == "tcp":
            f = tcp_segment("127.0.0.1", 40000, "127.0.0.13", 7443, 5, 9, 0x18, payload)
        elif kind == "udp":
            f = udp_datagram("127.0.0.13", 5062, "127.0.0.14", 5060, payload)
        else:  # a node's address, another port: dropped by the filter
            f = udp_datagram("127.0.0.13", 5062, "127.0.0.14", 5999, payload)
        f = bytearray(f)
        if mutate is not None:  # one header byte changed: lengths, offsets, flags, protocol
            f[14 + field % (len(f) - 14)] = mutate
        f = bytes(f[:len(f) - cut] if cut < len(f) else f[:14]) + b"\x00" * pad
        if vlan:
            f = f[:12] + b"\x81\x00\x00\x07" + f[12:]
        return f

    return st.builds(build, st.sampled_from(["tcp", "udp", "other"]), st.binary(max_size=40),
                     st.integers(0, 60), st.integers(0, 8), st.one_of(st.none(), st.integers(0, 255)),
                     st.booleans(), st.integers(0, 39))


@settings(max_examples=500)
@given(frames=st.lists(_frame_strategy(), min_size=1, max_size=6))
def test_scanner_reads_what_it_read_before(frames):
    from conformance.capture.dissect import Dissector
    from conformance.capture.tls import KeyLog

    flt = Dissector(PIXIT, KeyLog([])).packet_filter()
    records = [(float(i), 1, f, 0) for i, f in enumerate(frames)]
    new, old = Scanner(flt), ScannerBefore(flt)
    got = [tuple(getattr(p, k) for k in IpPacket.__slots__) for p in new.scan(records)]
    want = [tuple(getattr(p, k) for k in IpPacket.__slots__) for p in old.scan(records)]
    assert got == want
    assert new.stats == old.stats


@settings(max_examples=200)
@given(secret=st.binary(min_size=32, max_size=48), code=st.sampled_from([0x1301, 0x1302, 0x1303, 0x1304, 0x1305]))
def test_tls13_traffic_keys_are_hkdf_expand_label(secret, code):
    from conformance.capture.tls import _TLS13_SUITES, _keys13, hkdf_expand_label

    suite = _TLS13_SUITES[code]
    keys = _keys13(suite, secret)
    assert keys.key == hkdf_expand_label(secret, "key", b"", suite.key_len, suite.hash_name)
    assert keys.iv == hkdf_expand_label(secret, "iv", b"", 12, suite.hash_name)
    assert keys.secret == secret
