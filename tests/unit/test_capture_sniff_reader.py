"""The sniffer's own reader (capture.sniff.ScapySniffer): what it makes of each recvmsg, without a
packet socket (the live capture itself is tested in tests/integration/test_capture_live.py)."""

from __future__ import annotations

import socket
import struct

import pytest

from conformance.capture import sniff
from conformance.capture.sniff import ScapySniffer, _with_vlan_tag

FRAME = bytes(range(6)) + bytes(range(6, 12)) + b"\x08\x00" + b"\x45" + b"\x00" * 19


def _timestamp(sec: int, nsec: int):
    return (socket.SOL_SOCKET, sniff.SO_TIMESTAMPNS, struct.pack("qq", sec, nsec))


def _auxdata(status: int, tci: int, tpid: int = 0):
    return (sniff.SOL_PACKET, sniff.PACKET_AUXDATA, struct.pack("IIIHHHH", status, 60, 60, 0, 14, tci, tpid))


def _reader(messages):
    got = []
    s = ScapySniffer("lo", "", lambda ts, lt, frame: got.append((ts, lt, frame)))
    queue = list(messages)

    def recvmsg(bufsize, ancbufsize, flags):
        assert flags & socket.MSG_DONTWAIT  # the reader never blocks in recvmsg
        if not queue:
            raise BlockingIOError
        item = queue.pop(0)
        if isinstance(item, Exception):
            raise item
        return item
    s._recvmsg = recvmsg
    return s, got


def test_frames_carry_the_kernel_timestamp_of_their_ancillary_data():
    s, got = _reader([(FRAME, [_timestamp(1_700_000_000, 123_456_789)], 0, None),
                      (FRAME + b"x", [_timestamp(1_700_000_001, 5)], 0, None)])
    assert s._read_queued(10) == 2
    assert [(round(ts, 9), frame) for ts, _lt, frame in got] == [
        (1_700_000_000.123456789, FRAME), (1_700_000_001.000000005, FRAME + b"x")]


def test_a_batch_stops_at_its_limit_and_empty_reads_are_skipped():
    s, got = _reader([(b"", [], 0, None)] + [(FRAME, [_timestamp(1, 0)], 0, None)] * 5)
    assert s._read_queued(3) == 3 and len(got) == 2
    assert s._read_queued(10) == 3 and len(got) == 5


def test_a_socket_error_reaches_the_caller():
    s, _ = _reader([OSError(100, "Network is down")])
    with pytest.raises(OSError, match="Network is down"):
        s._read_queued(10)


def test_vlan_tag_from_auxdata_is_put_back_after_the_mac_addresses():
    # TP_STATUS_VLAN_VALID with the default TPID (802.1Q), then an explicit TPID (802.1ad)
    tagged = _with_vlan_tag(FRAME, _auxdata(1 << 4, 0x0123)[2])
    assert tagged == FRAME[:12] + b"\x81\x00\x01\x23" + FRAME[12:]
    qinq = _with_vlan_tag(FRAME, _auxdata((1 << 4) | (1 << 6), 0x0045, 0x88A8)[2])
    assert qinq == FRAME[:12] + b"\x88\xa8\x00\x45" + FRAME[12:]
    assert _with_vlan_tag(FRAME, _auxdata(0, 0)[2]) == FRAME  # no tag: unchanged
    s, got = _reader([(FRAME, [_auxdata(1 << 4, 7), _timestamp(2, 0)], 0, None)])
    s._read_queued(1)
    assert got == [(2.0, 1, FRAME[:12] + b"\x81\x00\x00\x07" + FRAME[12:])]
