"""Offline prefilter (issue 15): libpcap applies the profile's BPF filter while reading; the result
is the Python reader's, packet for packet, and the Python reader takes over where libpcap cannot."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest
import yaml

from conformance.capture import analyze_file
from conformance.capture.libpcap import LibpcapUnavailable, offline_filter, read_filtered
from conformance.capture.packets import PacketFilter, Scanner, iter_records
from conformance.capture.pcapng import write_pcapng
from conformance.capture.synth import Capture, registration, sip_register, udp_datagram, write_pcap
from conformance.capture.timeline import NodeMap

ROOT = Path(__file__).resolve().parents[2]
PIXIT = yaml.safe_load((ROOT / "profiles" / "reference.yaml").read_text())["pixit"]


def _libpcap() -> bool:
    try:
        from conformance.capture.libpcap import _lib

        _lib()
        return True
    except LibpcapUnavailable:
        return False


needs_libpcap = pytest.mark.skipif(not _libpcap(), reason="libpcap is not installed")


def _vlan(frame: bytes, vid: int = 7) -> bytes:
    """The same Ethernet frame with an 802.1Q tag."""
    return frame[:12] + b"\x81\x00" + struct.pack("!H", vid) + frame[12:]


def _mixed_capture(tmp_path) -> tuple[Path, Path]:
    """A registration on the profile's legs, one SIP datagram behind a VLAN tag, and traffic the
    filter must drop: other hosts, other ports of the nodes' addresses, an unknown host."""
    cap, keylog = Capture(), tmp_path / "k.log"
    registration(cap, keylog)
    sip = cap.frames[-1][1]
    frames = list(cap.frames)
    t = frames[-1][0]
    noise = [udp_datagram("10.0.0.1", 1000, "10.0.0.2", 2000, b"x" * 50),
             udp_datagram("127.0.0.13", 5062, "127.0.0.14", 5999, b"REGISTER sip:x SIP/2.0\r\n\r\n"),
             udp_datagram("127.0.0.99", 5062, "127.0.0.14", 5060, b"REGISTER sip:x SIP/2.0\r\n\r\n")]
    for k, f in enumerate(noise * 50):
        frames.append((t + (k + 1) * 1e-4, f))
    frames.append((t + 0.1, _vlan(udp_datagram("127.0.0.13", 5062, "127.0.0.14", 5060, sip[42:]))))
    return write_pcap(tmp_path / "mixed.pcap", frames), keylog


def _summary(result) -> list[tuple]:
    return [(round(i.t, 6), i.src_node, i.dst_node, i.summary()) for i in result.timeline.items]


@needs_libpcap
def test_libpcap_prefilter_finds_what_the_python_reader_finds(tmp_path):
    path, keylog = _mixed_capture(tmp_path)
    fast = analyze_file(path, PIXIT, [keylog])
    slow = analyze_file(path, PIXIT, [keylog], prefilter=False)
    assert fast.stats["reader"] == "libpcap BPF" and slow.stats["reader"] == "python"
    assert _summary(fast) == _summary(slow) and len(_summary(fast)) > 10
    # only the profile's packets crossed into Python: the 150 noise datagrams never did
    assert fast.stats["packets"] == slow.stats["relevant"] == slow.stats["packets"] - 150


@needs_libpcap
def test_bpf_filter_drops_exactly_what_the_python_filter_drops(tmp_path):
    path, _ = _mixed_capture(tmp_path)
    nodes = NodeMap(PIXIT)
    python = [r for r in iter_records(path.read_bytes())
              if list(Scanner(PacketFilter(nodes.endpoints, nodes.addresses)).scan([r]))]
    libpcap = list(read_filtered(path, PIXIT))
    assert [f for _, _, f, _ in libpcap] == [f for _, _, f, _ in python]
    assert abs(libpcap[0][0] - python[0][0]) < 1e-6  # nanosecond timestamps kept


@needs_libpcap
def test_pcapng_libpcap_cannot_read_falls_back_to_python(tmp_path):
    cap, keylog = Capture(), tmp_path / "k.log"
    registration(cap, keylog)
    # two interfaces of different link types: Ethernet and raw IPv4 (libpcap refuses the mix)
    records = [(ts, 1, f, 0) for ts, f in cap.frames]
    extra = udp_datagram("127.0.0.13", 5062, "127.0.0.14", 5060, sip_register())[14:]  # raw IPv4
    records.append((cap.frames[-1][0] + 0.01, 101, extra, 1))
    path = write_pcapng(tmp_path / "two.pcapng", records, "", ["eth0", "tun0"])
    result = analyze_file(path, PIXIT, [keylog])
    assert result.stats["reader"].startswith("python (")  # says why
    assert sum(1 for i in result.timeline.items if i.proto == "sip") == 7  # six + the raw-IP copy


def test_offline_filter_reaches_through_vlan_tags_on_ethernet_only():
    eth, raw = offline_filter(PIXIT, 1), offline_filter(PIXIT, 101)
    assert "vlan" in eth and "vlan" not in raw and "inbound" not in eth


@needs_libpcap
def test_dumped_reading_equals_packet_by_packet_reading(tmp_path, monkeypatch):
    """The in-memory pcap_dump path hands on exactly what one pcap_next_ex call per packet does:
    same frames, same nanosecond timestamps, same link type, in the same order."""
    import conformance.capture.libpcap as libpcap

    path, _ = _mixed_capture(tmp_path)
    assert libpcap._libc() is not None  # glibc has open_memstream: the dumped path is the one tested
    records = read_filtered(path, PIXIT)
    dumped = list(records)
    assert list(records) == dumped  # iterable again: each process of a split analysis cuts its own
    monkeypatch.setattr(libpcap, "_LIBC", False)  # no open_memstream, no fmemopen: file by path
    one_by_one = list(read_filtered(path, PIXIT))
    assert dumped == one_by_one and len(dumped) > 10


@needs_libpcap
def test_mapped_file_reads_as_the_file_by_path(tmp_path, monkeypatch):
    import contextlib

    import conformance.capture.libpcap as libpcap

    path, _ = _mixed_capture(tmp_path)
    opened = []
    real_open = libpcap._open
    monkeypatch.setattr(libpcap, "_open", lambda *a: opened.append(a[2]) or real_open(*a))
    mapped = list(read_filtered(path, PIXIT))
    monkeypatch.setattr(libpcap, "_mapped", lambda _path: contextlib.nullcontext(None))
    by_path = list(read_filtered(path, PIXIT))
    assert opened[0] is not None and opened[1] is None  # the first read went through the mapping
    assert mapped == by_path and len(mapped) > 10


@needs_libpcap
@pytest.mark.parametrize("content", [b"", b"not a capture at all"])
def test_file_libpcap_cannot_open_says_so(tmp_path, content):
    path = tmp_path / "bad.pcap"
    path.write_bytes(content)  # empty: cannot be mapped; garbage: mapped, refused
    with pytest.raises(LibpcapUnavailable, match="libpcap cannot read"):
        read_filtered(path, PIXIT)


@needs_libpcap
def test_dumped_reading_of_a_file_libpcap_rejects_half_way_raises(tmp_path):
    cap, keylog = Capture(), tmp_path / "k.log"
    registration(cap, keylog)
    records = [(ts, 1, f, 0) for ts, f in cap.frames]
    extra = udp_datagram("127.0.0.13", 5062, "127.0.0.14", 5060, sip_register())[14:]
    records.append((cap.frames[-1][0] + 0.01, 101, extra, 1))
    path = write_pcapng(tmp_path / "two.pcapng", records, "", ["eth0", "tun0"])
    with pytest.raises(LibpcapUnavailable, match="different from the type of the first interface"):
        read_filtered(path, PIXIT)  # pcap_loop fails at the second interface, after the first packets
