"""Offline prefilter at libpcap speed (issue 15): the profile's BPF filter applied by libpcap.

A vendor's lab capture is mostly traffic of no leg of the profile. Reading it record by record in
Python costs a few microseconds per packet even when the packet is dropped at once; libpcap reads
the file and runs the compiled BPF program in C, so only the packets on the profile's legs ever
become Python objects. The filter is the live capture's (`sniff.bpf_filter`), so both paths keep
the same packets; the pure-Python reader (`packets.iter_records` + `Scanner`) stays the fallback
when libpcap is missing or cannot read the file (pcapng with interfaces of several link types).

libpcap is reached through ctypes: five functions, no compiled extension to build.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from pathlib import Path

PCAP_TSTAMP_PRECISION_NANO = 1
PCAP_NETMASK_UNKNOWN = 0xFFFFFFFF
ERRBUF_SIZE = 256
LINKTYPE_ETHERNET = 1


class LibpcapUnavailable(Exception):
    """libpcap is not there, or cannot read or filter this file: use the Python reader."""


class _Timeval(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_usec", ctypes.c_long)]


class _PktHdr(ctypes.Structure):
    _fields_ = [("ts", _Timeval), ("caplen", ctypes.c_uint32), ("len", ctypes.c_uint32)]


class _BpfProgram(ctypes.Structure):
    _fields_ = [("bf_len", ctypes.c_uint), ("bf_insns", ctypes.c_void_p)]


_LIB: ctypes.CDLL | None = None


def _lib() -> ctypes.CDLL:
    global _LIB
    if _LIB is None:
        name = ctypes.util.find_library("pcap")
        if not name:
            raise LibpcapUnavailable("libpcap not found (Debian: apt-get install libpcap0.8)")
        try:
            lib = ctypes.CDLL(name)
            lib.pcap_open_offline_with_tstamp_precision.restype = ctypes.c_void_p
            lib.pcap_open_offline_with_tstamp_precision.argtypes = [ctypes.c_char_p, ctypes.c_uint, ctypes.c_char_p]
        except (OSError, AttributeError) as exc:
            raise LibpcapUnavailable(f"libpcap {name} unusable: {exc}") from exc
        lib.pcap_datalink.argtypes = [ctypes.c_void_p]
        lib.pcap_compile.argtypes = [ctypes.c_void_p, ctypes.POINTER(_BpfProgram), ctypes.c_char_p,
                                     ctypes.c_int, ctypes.c_uint32]
        lib.pcap_setfilter.argtypes = [ctypes.c_void_p, ctypes.POINTER(_BpfProgram)]
        lib.pcap_freecode.argtypes = [ctypes.POINTER(_BpfProgram)]
        lib.pcap_next_ex.argtypes = [ctypes.c_void_p, ctypes.POINTER(ctypes.POINTER(_PktHdr)),
                                     ctypes.POINTER(ctypes.POINTER(ctypes.c_ubyte))]
        lib.pcap_geterr.restype = ctypes.c_char_p
        lib.pcap_geterr.argtypes = [ctypes.c_void_p]
        lib.pcap_close.argtypes = [ctypes.c_void_p]
        _LIB = lib
    return _LIB


def offline_filter(pixit: dict, linktype: int) -> str:
    """The live capture's filter (without `inbound`), also through one or two VLAN tags on
    Ethernet, as the Python scanner accepts them."""
    from conformance.capture.sniff import bpf_filter

    flt = bpf_filter(pixit, "offline")
    if linktype == LINKTYPE_ETHERNET:
        return f"({flt}) or (vlan and (({flt}) or (vlan and ({flt}))))"
    return flt


def read_filtered(path: str | Path, pixit: dict) -> list[tuple[float, int, bytes, int]]:
    """(timestamp, linktype, frame, interface 0) of the packets that pass the profile's filter.

    Returns a list, not an iterator: when libpcap fails half-way (a pcapng interface of another
    link type) nothing has been handed on yet and the caller reads the file in Python instead.
    """
    lib = _lib()
    errbuf = ctypes.create_string_buffer(ERRBUF_SIZE)
    handle = lib.pcap_open_offline_with_tstamp_precision(str(path).encode(), PCAP_TSTAMP_PRECISION_NANO, errbuf)
    if not handle:
        raise LibpcapUnavailable(f"libpcap cannot read {path}: {errbuf.value.decode(errors='replace')}")
    try:
        linktype = lib.pcap_datalink(handle)
        prog = _BpfProgram()
        if lib.pcap_compile(handle, ctypes.byref(prog), offline_filter(pixit, linktype).encode(), 1,
                            PCAP_NETMASK_UNKNOWN) != 0:
            raise LibpcapUnavailable(f"BPF filter for link type {linktype}: "
                                     f"{lib.pcap_geterr(handle).decode(errors='replace')}")
        try:
            if lib.pcap_setfilter(handle, ctypes.byref(prog)) != 0:
                raise LibpcapUnavailable(f"pcap_setfilter: {lib.pcap_geterr(handle).decode(errors='replace')}")
        finally:
            lib.pcap_freecode(ctypes.byref(prog))
        return _read_all(lib, handle, linktype)
    finally:
        lib.pcap_close(handle)


def _read_all(lib, handle, linktype: int) -> list[tuple[float, int, bytes, int]]:
    hdr = ctypes.POINTER(_PktHdr)()
    data = ctypes.POINTER(ctypes.c_ubyte)()
    next_ex, string_at = lib.pcap_next_ex, ctypes.string_at
    hdr_ref, data_ref = ctypes.byref(hdr), ctypes.byref(data)  # made once, not per packet
    out = []
    append = out.append
    while True:
        rc = next_ex(handle, hdr_ref, data_ref)
        if rc == 1:
            h = hdr.contents
            append((h.ts.tv_sec + h.ts.tv_usec * 1e-9, linktype, string_at(data, h.caplen), 0))
        elif rc == -2:  # end of file
            return out
        elif rc == 0:  # only live captures time out; a file never does
            continue
        else:
            raise LibpcapUnavailable(f"libpcap: {lib.pcap_geterr(handle).decode(errors='replace')}")
