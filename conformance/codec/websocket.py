"""Passive, sans-IO WebSocket frame dissector (RFC 6455 5.2) with message reassembly.

Bytes of one direction of a connection go in, typed frames come out. Nothing here answers,
closes or pings: the dissector only tells what was on the wire and what was wrong with it.

RFC 6455 5.2 base framing:

     0                   1                   2                   3
     0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
    +-+-+-+-+-------+-+-------------+-------------------------------+
    |F|R|R|R| opcode|M| Payload len |    Extended payload length    |
    |I|S|S|S|  (4)  |A|     (7)     |             (16/64)           |
    |N|V|V|V|       |S|             |   (if payload len==126/127)   |
    | |1|2|3|       |K|             |                               |
    +-+-+-+-+-------+-+-------------+ - - - - - - - - - - - - - - - +
    |     Extended payload length continued, if payload len == 127  |
    + - - - - - - - - - - - - - - - +-------------------------------+
    |                               |Masking-key, if MASK set to 1  |
    +-------------------------------+-------------------------------+
    | Masking-key (continued)       |          Payload Data         |
    +-------------------------------- - - - - - - - - - - - - - - - +
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass, field

CONTINUATION, TEXT, BINARY, CLOSE, PING, PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
OPCODE_NAMES = {CONTINUATION: "continuation", TEXT: "text", BINARY: "binary", CLOSE: "close",
                PING: "ping", PONG: "pong"}
OPCODES_BY_NAME = {v: k for k, v in OPCODE_NAMES.items()}
DEFAULT_MAX_PAYLOAD = 16 * 1024 * 1024  # bound on what one frame may make us buffer


def unmask(payload: bytes, key: bytes) -> bytes:
    """RFC 6455 5.3: octet i of the payload is XORed with octet i MOD 4 of the masking key."""
    if not payload:
        return payload
    n = len(payload)
    # One big-int XOR instead of a Python loop per byte (fast for SIP-sized payloads and larger).
    repeated = (key * (n // 4 + 1))[:n]
    return (int.from_bytes(payload, "big") ^ int.from_bytes(repeated, "big")).to_bytes(n, "big")


@dataclass(frozen=True)
class Frame:
    fin: bool
    rsv: int  # RSV1..RSV3 as a 3-bit number (RSV1 = 4)
    opcode: int
    masked: bool
    mask_key: bytes | None
    payload: bytes  # unmasked
    length: int  # payload length announced in the header
    header_len: int = 2  # bytes of header on the wire (2..14)

    @property
    def opcode_name(self) -> str:
        return OPCODE_NAMES.get(self.opcode, f"reserved-{self.opcode:x}")

    @property
    def is_control(self) -> bool:
        return self.opcode >= 0x8  # RFC 6455 5.5: opcodes with the MSB set

    @property
    def wire_len(self) -> int:
        return self.header_len + self.length


@dataclass(frozen=True)
class FrameError:
    """A frame that breaks RFC 6455, or bytes that cannot be framed at all.

    `frame` is the parsed frame when the framing itself was intact (the parser then continues
    with the next frame); `fatal` means the byte stream can no longer be framed and the parser
    stops, keeping the rest as `raw`.
    """

    reason: str
    frame: Frame | None = None
    fatal: bool = False
    raw: bytes = b""
    ref: str = "RFC 6455 5.2"


class FrameParser:
    """Incremental parser for one direction.

    `require_mask`: True for client-to-server data (RFC 6455 5.1: every client frame is masked),
    False for server-to-client (a server MUST NOT mask), None to not check.
    `allowed_rsv`: RSV bits an extension negotiated in the handshake (e.g. 4 for permessage-deflate).
    """

    def __init__(self, require_mask: bool | None = None, allowed_rsv: int = 0,
                 max_payload: int = DEFAULT_MAX_PAYLOAD):
        self.require_mask = require_mask
        self.allowed_rsv = allowed_rsv
        self.max_payload = max_payload
        self._buf = bytearray()
        self.failed: FrameError | None = None

    @property
    def pending(self) -> int:
        """Bytes buffered that do not yet make a whole frame."""
        return len(self._buf)

    def take_rest(self) -> bytes:
        """The bytes of an incomplete frame (e.g. when the connection closed inside it)."""
        rest = bytes(self._buf)
        self._buf.clear()
        return rest

    def feed(self, data: bytes) -> list[Frame | FrameError]:
        if self.failed is not None:
            return []
        self._buf += data
        out: list[Frame | FrameError] = []
        while True:
            item = self._next()
            if item is None:
                break
            out.append(item)
            if isinstance(item, FrameError) and item.fatal:
                break
        return out

    def _next(self) -> Frame | FrameError | None:
        buf = self._buf
        if len(buf) < 2:
            return None
        b0, b1 = buf[0], buf[1]
        fin, rsv, opcode = bool(b0 & 0x80), (b0 >> 4) & 0x7, b0 & 0x0F
        masked, length = bool(b1 & 0x80), b1 & 0x7F
        pos = 2
        minimal = True
        if length == 126:
            if len(buf) < 4:
                return None
            (length,) = struct.unpack_from("!H", buf, 2)
            pos, minimal = 4, length >= 126
        elif length == 127:
            if len(buf) < 10:
                return None
            (length,) = struct.unpack_from("!Q", buf, 2)
            pos, minimal = 10, length > 0xFFFF
            if length >> 63:  # "the most significant bit MUST be 0"
                return self._fatal("64-bit payload length with the most significant bit set")
        if length > self.max_payload:
            return self._fatal(f"payload length {length} exceeds the dissector bound {self.max_payload}")
        mask_key = None
        if masked:
            if len(buf) < pos + 4:
                return None
            mask_key = bytes(buf[pos:pos + 4])
            pos += 4
        if len(buf) < pos + length:
            return None
        payload = bytes(buf[pos:pos + length])
        del buf[:pos + length]
        if mask_key is not None:
            payload = unmask(payload, mask_key)
        frame = Frame(fin, rsv, opcode, masked, mask_key, payload, length, pos)
        problem = self._problem(frame, minimal)
        return FrameError(problem[0], frame, ref=problem[1]) if problem else frame

    def _problem(self, f: Frame, minimal: bool) -> tuple[str, str] | None:
        if f.opcode not in OPCODE_NAMES:
            return f"unknown opcode 0x{f.opcode:x}", "RFC 6455 5.2"
        if f.rsv & ~self.allowed_rsv:
            return f"reserved bits set (RSV={f.rsv:03b}) without a negotiated extension", "RFC 6455 5.2"
        if f.is_control and f.length > 125:
            return f"control frame ({f.opcode_name}) with {f.length} bytes of payload (max 125)", "RFC 6455 5.5"
        if f.is_control and not f.fin:
            return f"fragmented control frame ({f.opcode_name})", "RFC 6455 5.5"
        if not minimal:
            return f"payload length {f.length} not in the minimal encoding", "RFC 6455 5.2"
        if self.require_mask is True and not f.masked:
            return "client-to-server frame not masked", "RFC 6455 5.1"
        if self.require_mask is False and f.masked:
            return "server-to-client frame masked", "RFC 6455 5.1"
        return None

    def _fatal(self, reason: str) -> FrameError:
        err = FrameError(reason, fatal=True, raw=bytes(self._buf))
        self._buf.clear()
        self.failed = err
        return err


@dataclass(frozen=True)
class Message:
    """A complete data message (RFC 6455 5.4: a start frame and its continuations)."""

    opcode: int  # TEXT or BINARY
    payload: bytes
    frames: int = 1
    compressed: bool = False  # RSV1 on the first frame: permessage-deflate (RFC 7692 6), still deflated

    @property
    def text(self) -> str:
        return self.payload.decode("utf-8", "replace")


@dataclass(frozen=True)
class Close:
    """A close frame's payload parsed (RFC 6455 5.5.1)."""

    code: int | None
    reason: str
    error: str | None = None


@dataclass
class MessageAssembler:
    """Reassembles fragmented data messages; control frames pass through (they may be interleaved)."""

    _opcode: int | None = None
    _parts: list[bytes] = field(default_factory=list)
    _compressed: bool = False

    @property
    def in_message(self) -> bool:
        return self._opcode is not None

    def feed(self, frame: Frame) -> Message | Close | FrameError | None:
        if frame.opcode == CLOSE:
            return parse_close(frame.payload)
        if frame.is_control:
            return None  # ping/pong carry no message
        if frame.opcode == CONTINUATION:
            if self._opcode is None:
                return FrameError("continuation frame without a message in progress", frame, ref="RFC 6455 5.4")
            self._parts.append(frame.payload)
        else:
            if self._opcode is not None:
                self._reset()
                return FrameError("new data frame while a fragmented message is in progress", frame,
                                  ref="RFC 6455 5.4")
            self._opcode, self._parts = frame.opcode, [frame.payload]
            self._compressed = bool(frame.rsv & 4)
        if not frame.fin:
            return None
        opcode, parts, compressed = self._opcode, self._parts, self._compressed
        self._reset()
        payload = b"".join(parts)
        if opcode == TEXT and not compressed:  # a deflated text message is checked once inflated
            try:
                payload.decode("utf-8")
            except UnicodeDecodeError:
                return FrameError("text message is not valid UTF-8", frame, ref="RFC 6455 8.1")
        return Message(opcode, payload, len(parts), compressed)

    def _reset(self) -> None:
        self._opcode, self._parts, self._compressed = None, [], False


def close_code_valid(code: int) -> bool:
    """RFC 6455 7.4.1/7.4.2: codes an endpoint may send in a close frame."""
    if code in (1004, 1005, 1006, 1015):
        return False
    return code in range(1000, 1015) or 3000 <= code <= 4999


def parse_close(payload: bytes) -> Close:
    """RFC 6455 5.5.1: empty, or a 2-byte code followed by a UTF-8 reason."""
    if not payload:
        return Close(None, "")
    if len(payload) == 1:
        return Close(None, "", "close payload of 1 byte (needs a 2-byte code)")
    (code,) = struct.unpack_from("!H", payload)
    try:
        reason = payload[2:].decode("utf-8")
    except UnicodeDecodeError:
        return Close(code, payload[2:].decode("utf-8", "replace"), "close reason is not valid UTF-8")
    error = None if close_code_valid(code) else f"close code {code} may not be sent (RFC 6455 7.4)"
    return Close(code, reason, error)


def build_frame(payload: bytes | str = b"", opcode: int | str = TEXT, *, fin: bool = True, rsv: int = 0,
                mask: bool | bytes = False, length_encoding: int | None = None) -> bytes:
    """Build one frame (for tests and negative cases).

    `mask`: True for a random key, bytes for a given key. `length_encoding` forces 7, 16 or 64-bit
    length encoding (a non-minimal one is a protocol error the parser reports).
    """
    if isinstance(payload, str):
        payload = payload.encode()
    if isinstance(opcode, str):
        opcode = OPCODES_BY_NAME[opcode]
    n = len(payload)
    head = bytes([(0x80 if fin else 0) | (rsv & 7) << 4 | (opcode & 0xF)])
    enc = length_encoding or (7 if n < 126 else 16 if n <= 0xFFFF else 64)
    mask_bit = 0x80 if mask else 0
    if enc == 7:
        head += bytes([mask_bit | n])
    elif enc == 16:
        head += bytes([mask_bit | 126]) + struct.pack("!H", n)
    else:
        head += bytes([mask_bit | 127]) + struct.pack("!Q", n)
    if mask:
        key = mask if isinstance(mask, bytes) else os.urandom(4)
        return head + key + unmask(payload, key)
    return head + payload


def close_payload(code: int, reason: str = "") -> bytes:
    return struct.pack("!H", code) + reason.encode()
