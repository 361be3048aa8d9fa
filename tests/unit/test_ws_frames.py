"""WebSocket frame dissector (RFC 6455 5.2): framing, masking, fragmentation, validity checks."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from conformance.codec.websocket import (
    BINARY,
    CLOSE,
    CONTINUATION,
    PING,
    TEXT,
    Close,
    Frame,
    FrameError,
    FrameParser,
    Message,
    MessageAssembler,
    build_frame,
    close_payload,
    parse_close,
    unmask,
)


def test_rfc6455_examples():
    # RFC 6455 5.7: a single-frame unmasked text message, and the masked "Hello".
    p = FrameParser()
    [f] = p.feed(bytes.fromhex("810548656c6c6f"))
    assert (f.fin, f.opcode, f.masked, f.payload, f.length) == (True, TEXT, False, b"Hello", 5)
    [f] = FrameParser().feed(bytes.fromhex("818537fa213d7f9f4d5158"))
    assert f.masked and f.mask_key == bytes.fromhex("37fa213d") and f.payload == b"Hello"
    # fragmented unmasked text message "Hel" + "lo"
    frames = FrameParser().feed(bytes.fromhex("010348656c") + bytes.fromhex("80026c6f"))
    asm = MessageAssembler()
    assert [asm.feed(fr) for fr in frames] == [None, Message(TEXT, b"Hello", 2)]


@pytest.mark.parametrize("size", [0, 125, 126, 65535, 65536, 70000])
def test_length_encodings_round_trip_byte_by_byte(size):
    payload = bytes(range(256)) * (size // 256) + bytes(range(size % 256))
    wire = build_frame(payload, BINARY, mask=b"\x01\x02\x03\x04")
    p = FrameParser(require_mask=True)
    out = []
    step = 1 if size < 200 else 997
    for i in range(0, len(wire), step):
        out += p.feed(wire[i:i + step])
    assert len(out) == 1 and isinstance(out[0], Frame)
    assert out[0].payload == payload and out[0].length == size and out[0].wire_len == len(wire)
    assert p.pending == 0


@given(st.binary(max_size=300), st.binary(min_size=4, max_size=4))
def test_unmask_is_an_involution(data, key):
    assert unmask(unmask(data, key), key) == data
    assert unmask(data, key) == bytes(b ^ key[i % 4] for i, b in enumerate(data))


@pytest.mark.parametrize("wire,reason", [
    (build_frame(b"x" * 126, PING), "control frame (ping) with 126 bytes"),
    (build_frame(b"", PING, fin=False), "fragmented control frame"),
    (build_frame(b"a", 0x3), "unknown opcode 0x3"),
    (build_frame(b"a", TEXT, rsv=4), "reserved bits set"),
    (build_frame(b"a" * 10, TEXT, length_encoding=16), "not in the minimal encoding"),
])
def test_validity_checks_keep_the_frame_and_go_on(wire, reason):
    p = FrameParser()
    out = p.feed(wire + build_frame(b"next"))
    assert isinstance(out[0], FrameError) and reason in out[0].reason and out[0].frame is not None
    assert not out[0].fatal
    assert isinstance(out[1], Frame) and out[1].payload == b"next"


def test_rsv_allowed_by_extension():
    [f] = FrameParser(allowed_rsv=4).feed(build_frame(b"a", TEXT, rsv=4))
    assert isinstance(f, Frame) and f.rsv == 4


def test_masking_direction():
    [err] = FrameParser(require_mask=True).feed(build_frame("REGISTER"))
    assert isinstance(err, FrameError) and "not masked" in err.reason and err.ref == "RFC 6455 5.1"
    [err] = FrameParser(require_mask=False).feed(build_frame("x", mask=True))
    assert "server-to-client frame masked" in err.reason


def test_fatal_64bit_length_stops_the_parser():
    wire = bytes([0x82, 127]) + struct.pack("!Q", 1 << 63) + b"rest"
    p = FrameParser()
    [err] = p.feed(wire)
    assert err.fatal and err.raw.endswith(b"rest")
    assert p.feed(build_frame("more")) == []


def test_oversized_frame_is_fatal():
    [err] = FrameParser(max_payload=1000).feed(build_frame(b"x" * 2000, BINARY))
    assert err.fatal and "exceeds" in err.reason


def test_assembler_interleaved_control_and_errors():
    asm = MessageAssembler()
    p = FrameParser()
    wire = (build_frame("ab", TEXT, fin=False) + build_frame(b"", PING)
            + build_frame("cd", CONTINUATION, fin=False) + build_frame("ef", CONTINUATION))
    results = [asm.feed(f) for f in p.feed(wire)]
    assert results == [None, None, None, Message(TEXT, b"abcdef", 3)]
    # continuation without a start
    err = asm.feed(next(iter(FrameParser().feed(build_frame("x", CONTINUATION)))))
    assert isinstance(err, FrameError) and "without a message" in err.reason
    # new data frame in the middle of a fragmented one
    asm.feed(FrameParser().feed(build_frame("a", TEXT, fin=False))[0])
    err = asm.feed(FrameParser().feed(build_frame("b", TEXT))[0])
    assert isinstance(err, FrameError) and "in progress" in err.reason
    # invalid UTF-8 in a text message
    err = asm.feed(FrameParser().feed(build_frame(b"\xff\xfe", TEXT))[0])
    assert isinstance(err, FrameError) and "UTF-8" in err.reason


def test_close_codes():
    assert parse_close(b"") == Close(None, "")
    assert parse_close(close_payload(1000, "bye")) == Close(1000, "bye")
    assert parse_close(close_payload(4000)).error is None
    assert "may not be sent" in parse_close(close_payload(1005)).error
    assert "may not be sent" in parse_close(close_payload(999)).error
    assert "1 byte" in parse_close(b"\x03").error
    assert "UTF-8" in parse_close(b"\x03\xe8\xff").error
    [f] = FrameParser().feed(build_frame(close_payload(1002, "protocol"), CLOSE))
    assert MessageAssembler().feed(f) == Close(1002, "protocol")
