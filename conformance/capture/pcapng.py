"""pcapng with a Decryption Secrets Block (pcapng spec, draft-ietf-opsawg-pcapng 4.7).

Wireshark and tshark open such a file already decrypted: the TLS key log travels inside the
capture (what `editcap --inject-secrets tls,KEYLOG` does), so the report's attachment needs no
side file. Block layout, all little-endian here:

    Block Type (4) | Block Total Length (4) | body ... | Block Total Length (4)
    DSB body: Secrets Type (4) = 0x544c534b "TLSK" | Secrets Length (4) | Secrets Data, padded to 32 bits
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from pathlib import Path

SHB, IDB, EPB, DSB = 0x0A0D0D0A, 0x00000001, 0x00000006, 0x0000000A
SECRETS_TLS = 0x544C534B  # TLS key log (NSS format)
_BOM = 0x1A2B3C4D
_EPB_HEAD = struct.Struct("<IIIIIII")  # block type, total length, interface, ts high, ts low, captured, original
_LEN = struct.Struct("<I")
_PADS = (b"", b"\x00", b"\x00\x00", b"\x00\x00\x00")


def _pad(data: bytes) -> bytes:
    return data + b"\x00" * (-len(data) % 4)


def _block(btype: int, body: bytes) -> bytes:
    body = _pad(body)
    n = len(body) + 12
    return struct.pack("<II", btype, n) + body + struct.pack("<I", n)


def _option(code: int, value: bytes) -> bytes:
    return struct.pack("<HH", code, len(value)) + _pad(value)


def write_pcapng(path: str | Path, records: Iterable[tuple[float, int, bytes, int]], keylog_text: str = "",
                 interfaces: list[str] | None = None, application: str = "ims-conformance") -> Path:
    """records: (timestamp, linktype, frame, interface index) in capture order."""
    out = bytearray(_block(SHB, struct.pack("<IHHq", _BOM, 1, 0, -1) + _option(4, application.encode())
                           + _option(0, b"")))
    idb: dict[tuple[int, int], int] = {}
    records = list(records)
    for _ts, linktype, _frame, iface in records:
        if (linktype, iface) not in idb:
            idb[(linktype, iface)] = len(idb)
            name = interfaces[iface] if interfaces and iface < len(interfaces) else f"if{iface}"
            opts = _option(2, name.encode()) + _option(9, bytes([9])) + _option(0, b"")  # if_tsresol 10^-9
            out += _block(IDB, struct.pack("<HHI", linktype, 0, 262144) + opts)
    if not idb:  # an empty capture still names an interface so tools open it
        out += _block(IDB, struct.pack("<HHI", 1, 0, 262144) + _option(9, bytes([9])) + _option(0, b""))
    if keylog_text:
        secrets = keylog_text.encode("ascii")
        out += _block(DSB, struct.pack("<II", SECRETS_TLS, len(secrets)) + secrets)
    # Enhanced Packet Blocks, header and trailer packed around the frame without copying it into
    # a padded body first (the plaintext pcapng of every test case is written with this)
    parts = [out]
    append, pack_head, pack_len, pads = parts.append, _EPB_HEAD.pack, _LEN.pack, _PADS
    for ts, linktype, frame, iface in records:
        ns = int(round(ts * 1e9))
        n = len(frame)
        pad = -n % 4
        total = 32 + n + pad
        append(pack_head(EPB, total, idb[(linktype, iface)], ns >> 32, ns & 0xFFFFFFFF, n, n))
        append(frame)
        append(pads[pad] + pack_len(total))
    Path(path).write_bytes(b"".join(parts))
    return Path(path)


def embedded_keylogs(data: bytes) -> str:
    """The TLS key logs of every Decryption Secrets Block in a pcapng file ("" for pcap)."""
    if data[:4] != b"\x0a\x0d\x0d\x0a":
        return ""
    texts, pos, endian = [], 0, "<"
    while pos + 12 <= len(data):
        btype, blen = struct.unpack_from(endian + "II", data, pos)
        if btype == SHB:
            endian = "<" if data[pos + 8:pos + 12] == b"\x4d\x3c\x2b\x1a" else ">"
            btype, blen = struct.unpack_from(endian + "II", data, pos)
        if blen < 12:
            break
        if btype == DSB:
            stype, slen = struct.unpack_from(endian + "II", data, pos + 8)
            if stype == SECRETS_TLS:
                texts.append(data[pos + 16:pos + 16 + slen].decode("ascii", "replace"))
        pos += blen
    return "\n".join(texts)
