"""Fast raw reading of pcap / pcapng files and a header pre-filter.

Scapy builds a full layer tree for every packet (about 5,000 packets/s). A vendor's lab capture
is mostly traffic that is none of our business, so records are read with `struct`, the
link/IP/TCP/UDP headers parsed by offset, and only packets between the profile's endpoints
become `IpPacket`s for reassembly and dissection.

Formats: pcap (libpcap, µs and ns, both byte orders) and pcapng (SHB, IDB with if_tsresol, EPB,
SPB, obsolete PB). Link types: Ethernet (with 802.1Q tags), BSD/Linux loopback, raw IPv4/IPv6,
Linux cooked v1/v2. IPv4 fragments between relevant addresses are reassembled (RFC 791).
"""

from __future__ import annotations

import ipaddress
import socket
import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

LINKTYPE_NULL, LINKTYPE_ETHERNET, LINKTYPE_RAW, LINKTYPE_LOOP = 0, 1, 101, 108
LINKTYPE_LINUX_SLL, LINKTYPE_LINUX_SLL2, LINKTYPE_IPV4, LINKTYPE_IPV6 = 113, 276, 228, 229
TCP, UDP = 6, 17
FIN, SYN, RST, ACK = 0x01, 0x02, 0x04, 0x10

_PCAP_MAGICS = {
    b"\xd4\xc3\xb2\xa1": ("<", 1e-6), b"\xa1\xb2\xc3\xd4": (">", 1e-6),
    b"\x4d\x3c\xb2\xa1": ("<", 1e-9), b"\xa1\xb2\x3c\x4d": (">", 1e-9),
}
_PCAPNG_SHB = b"\x0a\x0d\x0d\x0a"


class CaptureFormatError(ValueError):
    pass


class IpPacket:
    """One TCP segment or UDP datagram between relevant endpoints."""

    __slots__ = ("ts", "index", "linktype", "frame", "iface", "proto", "src", "sport", "dst", "dport",
                 "payload", "seq", "ack", "flags")

    def __init__(self, ts, index, linktype, frame, iface, proto, src, sport, dst, dport, payload,
                 seq=0, ack=0, flags=0):
        self.ts, self.index, self.linktype, self.frame, self.iface = ts, index, linktype, frame, iface
        self.proto, self.src, self.sport, self.dst, self.dport = proto, src, sport, dst, dport
        self.payload, self.seq, self.ack, self.flags = payload, seq, ack, flags

    def __repr__(self) -> str:
        kind = "TCP" if self.proto == TCP else "UDP"
        return f"<{kind} {self.src}:{self.sport} > {self.dst}:{self.dport} len={len(self.payload)} t={self.ts:.6f}>"


@dataclass
class ScanStats:
    packets: int = 0  # records read
    relevant: int = 0  # packets that passed the pre-filter
    undecodable: int = 0  # records whose link/IP headers could not be parsed
    fragments: int = 0
    linktypes: set[int] = field(default_factory=set)


# -- record readers ---------------------------------------------------------------------------

def read_records(path: str | Path) -> Iterator[tuple[float, int, bytes, int]]:
    """Yield (timestamp, linktype, frame bytes, interface id) for every packet record."""
    data = Path(path).read_bytes()
    yield from iter_records(data)


def iter_records(data: bytes) -> Iterator[tuple[float, int, bytes, int]]:
    magic = data[:4]
    if magic in _PCAP_MAGICS:
        yield from _pcap_records(data)
    elif magic == _PCAPNG_SHB:
        yield from _pcapng_records(data)
    else:
        raise CaptureFormatError(f"not a pcap or pcapng file (magic {magic.hex()})")


def _pcap_records(data: bytes) -> Iterator[tuple[float, int, bytes, int]]:
    endian, unit = _PCAP_MAGICS[data[:4]]
    if len(data) < 24:
        raise CaptureFormatError("truncated pcap global header")
    (linktype,) = struct.unpack_from(endian + "I", data, 20)
    linktype &= 0x0FFFFFFF  # upper bits: FCS length flags
    rec = struct.Struct(endian + "IIII")
    pos, end = 24, len(data)
    while pos + 16 <= end:
        sec, frac, incl, _orig = rec.unpack_from(data, pos)
        pos += 16
        if pos + incl > end:
            raise CaptureFormatError(f"truncated pcap record at offset {pos - 16}")
        yield sec + frac * unit, linktype, data[pos:pos + incl], 0
        pos += incl


def _pcapng_records(data: bytes) -> Iterator[tuple[float, int, bytes, int]]:
    pos, end = 0, len(data)
    endian = "<"
    ifaces: list[tuple[int, float]] = []  # (linktype, seconds per timestamp unit)
    while pos + 12 <= end:
        btype, blen = struct.unpack_from(endian + "II", data, pos)
        if btype == 0x0A0D0D0A:  # Section Header Block: byte order from its magic
            bom = data[pos + 8:pos + 12]
            endian = "<" if bom == b"\x4d\x3c\x2b\x1a" else ">"
            btype, blen = struct.unpack_from(endian + "II", data, pos)
            ifaces = []
        if blen < 12 or blen % 4 or pos + blen > end:
            raise CaptureFormatError(f"bad pcapng block length {blen} at offset {pos}")
        body = pos + 8
        if btype == 1:  # Interface Description Block
            linktype, _res, _snap = struct.unpack_from(endian + "HHI", data, body)
            ifaces.append((linktype, _tsresol(data, body + 8, pos + blen - 4, endian)))
        elif btype == 6:  # Enhanced Packet Block
            iface, hi, lo, cap, _orig = struct.unpack_from(endian + "IIIII", data, body)
            linktype, unit = ifaces[iface]
            yield ((hi << 32) | lo) * unit, linktype, data[body + 20:body + 20 + cap], iface
        elif btype == 3:  # Simple Packet Block: no timestamp, interface 0
            (orig,) = struct.unpack_from(endian + "I", data, body)
            cap = min(orig, blen - 16)
            yield 0.0, ifaces[0][0], data[body + 4:body + 4 + cap], 0
        elif btype == 2:  # obsolete Packet Block
            iface, _drops, hi, lo, cap, _orig = struct.unpack_from(endian + "HHIIII", data, body)
            linktype, unit = ifaces[iface]
            yield ((hi << 32) | lo) * unit, linktype, data[body + 20:body + 20 + cap], iface
        pos += blen


def _tsresol(data: bytes, pos: int, end: int, endian: str) -> float:
    """if_tsresol (option 9): MSB clear = 10^-n, set = 2^-n; default microseconds."""
    while pos + 4 <= end:
        code, length = struct.unpack_from(endian + "HH", data, pos)
        if code == 0:
            break
        if code == 9 and length >= 1:
            v = data[pos + 4]
            return 2.0 ** -(v & 0x7F) if v & 0x80 else 10.0 ** -v
        pos += 4 + (length + 3) // 4 * 4
    return 1e-6


# -- header pre-filter ------------------------------------------------------------------------

def _ip_key(addr: str) -> bytes:
    return ipaddress.ip_address(addr).packed


class PacketFilter:
    """Keeps a packet when one end is a node endpoint (address, port) and the other end is a known
    address (a node or the harness). `any_port_hosts` are addresses kept whatever the ports.
    """

    def __init__(self, endpoints: Iterable[tuple[str, int]], addresses: Iterable[str],
                 any_port_hosts: Iterable[str] = ()):
        self.endpoints = {(_ip_key(a), int(p)) for a, p in endpoints}
        self.addresses = {_ip_key(a) for a in addresses} | {a for a, _ in self.endpoints}
        self.any_port = {_ip_key(a) for a in any_port_hosts}

    def wants(self, src: bytes, sport: int, dst: bytes, dport: int) -> bool:
        if src in self.any_port or dst in self.any_port:
            return True
        return (dst, dport) in self.endpoints or (src, sport) in self.endpoints


def _ntoa(raw: bytes) -> str:
    return socket.inet_ntop(socket.AF_INET if len(raw) == 4 else socket.AF_INET6, raw)


class Scanner:
    """Turns raw frames into `IpPacket`s for the relevant flows, as cheaply as possible.

    The address test runs on the raw 4/16-byte slices, before anything is decoded, so an irrelevant
    packet costs a couple of slices and set look-ups.
    """

    def __init__(self, flt: PacketFilter | None):
        self.flt = flt
        self.stats = ScanStats()
        self._frags: dict[tuple, dict] = {}
        self._text: dict[bytes, str] = {}  # raw address -> text: a capture has few addresses

    def scan(self, records: Iterable[tuple[float, int, bytes, int]]) -> Iterator[IpPacket]:
        stats = self.stats
        flt = self.flt
        addrs = flt.addresses if flt else None
        endpoints = flt.endpoints if flt else None
        any_port = flt.any_port if flt else None
        unpack_h = struct.Struct("!H").unpack_from
        unpack_hh = struct.Struct("!HH").unpack_from
        unpack_hhh = struct.Struct("!HHH").unpack_from
        unpack_iih = struct.Struct("!IIH").unpack_from
        text = self._text
        linktypes = stats.linktypes
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
            # network layer: the address test first, on raw bytes. The transport layer is read
            # at offsets into the frame (l4, end): the segment is copied once, as the payload
            # (offline analysis, issue 15); only a reassembled fragment is a copy of its own.
            if not v6:
                if len(frame) < off + 20:
                    stats.undecodable += 1
                    continue
                src, dst = frame[off + 12:off + 16], frame[off + 16:off + 20]
                if addrs is not None and (src not in addrs or dst not in addrs):
                    continue
                ihl = (frame[off] & 0x0F) * 4
                total, _id, frag = unpack_hhh(frame, off + 2)
                proto = frame[off + 9]
                if proto != TCP and proto != UDP:
                    continue
                buf, l4 = frame, off + ihl
                end = min(off + total, len(frame))  # total length strips Ethernet padding
                if frag & 0x3FFF:  # MF set or offset != 0
                    stats.fragments += 1
                    buf = self._defrag(src, dst, _id, proto, frag, frame[l4:off + total])
                    if buf is None:
                        continue
                    l4, end = 0, len(buf)
            else:
                if len(frame) < off + 40:
                    stats.undecodable += 1
                    continue
                src, dst = frame[off + 8:off + 24], frame[off + 24:off + 40]
                if addrs is not None and (src not in addrs or dst not in addrs):
                    continue
                proto = frame[off + 6]
                (plen,) = unpack_h(frame, off + 4)
                buf, l4 = frame, off + 40
                end = min(off + 40 + plen, len(frame))
                if proto != TCP and proto != UDP:
                    continue  # extension headers: not used on the legs we dissect
            if end - l4 < 8:
                stats.undecodable += 1
                continue
            sport, dport = unpack_hh(buf, l4)
            if flt is not None and not (src in any_port or dst in any_port or (dst, dport) in endpoints
                                        or (src, sport) in endpoints):  # PacketFilter.wants, inlined
                continue
            stats.relevant += 1
            linktypes.add(linktype)
            src_text = text.get(src)
            if src_text is None:  # a capture has few addresses: each is converted once
                src_text = text[src] = _ntoa(src)
            dst_text = text.get(dst)
            if dst_text is None:
                dst_text = text[dst] = _ntoa(dst)
            if proto == TCP:
                if end - l4 < 20:
                    stats.undecodable += 1
                    continue
                seq, ack, offflags = unpack_iih(buf, l4 + 4)
                yield IpPacket(ts, stats.packets - 1, linktype, frame, iface, TCP, src_text, sport,
                               dst_text, dport, buf[l4 + (offflags >> 12) * 4:end], seq, ack, offflags & 0x3F)
            else:
                (ulen,) = unpack_h(buf, l4 + 4)
                payload = buf[l4 + 8:l4 + ulen] if 8 <= ulen <= end - l4 else buf[l4 + 8:end]
                yield IpPacket(ts, stats.packets - 1, linktype, frame, iface, UDP, src_text, sport,
                               dst_text, dport, payload)

    def _defrag(self, src: bytes, dst: bytes, ident: int, proto: int, frag: int, data: bytes) -> bytes | None:
        """RFC 791 reassembly of the fragments of one datagram; returns the L4 bytes when whole."""
        key = (src, dst, ident, proto)
        parts = self._frags.setdefault(key, {"pieces": {}, "total": None})
        offset = (frag & 0x1FFF) * 8
        parts["pieces"][offset] = data
        if not frag & 0x2000:  # last fragment: total size known
            parts["total"] = offset + len(data)
        if parts["total"] is None:
            return None
        buf, pos = bytearray(), 0
        for off in sorted(parts["pieces"]):
            if off > pos:
                return None  # hole
            piece = parts["pieces"][off]
            buf += piece[pos - off:]
            pos = max(pos, off + len(piece))
        if pos < parts["total"]:
            return None
        del self._frags[key]
        return bytes(buf[:parts["total"]])


def scan_file(path: str | Path, flt: PacketFilter | None) -> tuple[list[IpPacket], ScanStats]:
    scanner = Scanner(flt)
    packets = list(scanner.scan(read_records(path)))
    return packets, scanner.stats
