"""Offline prefilter at libpcap speed (issue 15): the profile's BPF filter applied by libpcap.

A vendor's lab capture is mostly traffic of no leg of the profile. Reading it record by record in
Python costs a few microseconds per packet even when the packet is dropped at once; libpcap reads
the file and runs the compiled BPF program in C, so only the packets on the profile's legs ever
become Python objects. The filter is the live capture's (`sniff.bpf_filter`), so both paths keep
the same packets; the pure-Python reader (`packets.iter_records` + `Scanner`) stays the fallback
when libpcap is missing or cannot read the file (pcapng with interfaces of several link types).

libpcap is reached through ctypes, no compiled extension to build. The kept packets do not come
back one ctypes call each (about 2.5 us per packet, a third of libpcap's time on the benchmark
capture): `pcap_loop` hands them to libpcap's own `pcap_dump`, which writes them as a pcap file
into memory (`open_memstream`), and Python parses that once. Where the C library has no
`open_memstream`, `pcap_next_ex` in a loop does the same, slower. The file itself is mapped into
memory and handed to libpcap as a `fmemopen` stream: read(2) in 4 kB steps was a third of
libpcap's time on the 141 MB benchmark capture.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import mmap
import struct
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from conformance.capture.packets import _PCAP_MAGICS

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
_LIBC: ctypes.CDLL | None | bool = None  # False: no open_memstream here


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
        lib.pcap_dump_fopen.restype = ctypes.c_void_p
        lib.pcap_dump_fopen.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
        lib.pcap_loop.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p]
        lib.pcap_dump_flush.argtypes = [ctypes.c_void_p]
        lib.pcap_dump_close.argtypes = [ctypes.c_void_p]
        lib.pcap_fopen_offline_with_tstamp_precision.restype = ctypes.c_void_p
        lib.pcap_fopen_offline_with_tstamp_precision.argtypes = [ctypes.c_void_p, ctypes.c_uint, ctypes.c_char_p]
        _LIB = lib
    return _LIB


def _libc() -> ctypes.CDLL | None:
    """The C library's open_memstream, fmemopen and free (POSIX 2008), or None."""
    global _LIBC
    if _LIBC is None:
        try:
            libc = ctypes.CDLL(None)
            libc.open_memstream.restype = ctypes.c_void_p
            libc.open_memstream.argtypes = [ctypes.POINTER(ctypes.c_void_p), ctypes.POINTER(ctypes.c_size_t)]
            libc.free.argtypes = [ctypes.c_void_p]
            libc.fclose.argtypes = [ctypes.c_void_p]
            libc.fmemopen.restype = ctypes.c_void_p
            libc.fmemopen.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_char_p]
            _LIBC = libc
        except (OSError, AttributeError, TypeError):  # TypeError: no CDLL(None) (Windows)
            _LIBC = False
    return _LIBC or None


def offline_filter(pixit: dict, linktype: int) -> str:
    """The live capture's filter (without `inbound`), also through one or two VLAN tags on
    Ethernet, as the Python scanner accepts them."""
    from conformance.capture.sniff import bpf_filter

    flt = bpf_filter(pixit, "offline")
    if linktype == LINKTYPE_ETHERNET:
        return f"({flt}) or (vlan and (({flt}) or (vlan and ({flt}))))"
    return flt


def read_filtered(path: str | Path, pixit: dict) -> Iterable[tuple[float, int, bytes, int]]:
    """(timestamp, linktype, frame, interface 0) of the packets that pass the profile's filter.

    The whole file is read before this returns: when libpcap fails half-way (a pcapng interface of
    another link type) nothing has been handed on yet and the caller reads the file in Python
    instead. What it returns can be iterated more than once (DumpedRecords, or a list).
    """
    lib = _lib()
    errbuf = ctypes.create_string_buffer(ERRBUF_SIZE)
    with _mapped(path) as mapped:
        handle = _open(lib, path, mapped, errbuf)
        if not handle:
            raise LibpcapUnavailable(f"libpcap cannot read {path}: {errbuf.value.decode(errors='replace')}")
        try:
            return _filter_and_read(lib, handle, pixit)
        finally:
            lib.pcap_close(handle)  # closes the stream too, before the mapping goes


@contextmanager
def _mapped(path: str | Path) -> Iterator[tuple[int, int] | None]:
    """(address, size) of the file mapped into memory, or None where it cannot be (no fmemopen,
    an empty file, not a regular file). For finished capture files (`--ims-analyze`, benchmarks):
    a file truncated while mapped would fault (SIGBUS); the live capture never reads this way."""
    if _libc() is None:
        yield None
        return
    try:
        with open(path, "rb") as fh:
            # ACCESS_COPY: ctypes needs a writable buffer; the pages are never written
            mapping = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_COPY)
    except (OSError, ValueError):
        yield None
        return
    try:
        buf = (ctypes.c_char * len(mapping)).from_buffer(mapping)
        try:
            yield ctypes.addressof(buf), len(mapping)
        finally:
            del buf  # the export ends before the mapping closes
    finally:
        mapping.close()


def _open(lib, path: str | Path, mapped: tuple[int, int] | None, errbuf) -> int | None:
    """A libpcap handle on the mapped file (a fmemopen stream), else on the path."""
    if mapped is not None:
        fp = _libc().fmemopen(mapped[0], mapped[1], b"rb")
        if fp:
            handle = lib.pcap_fopen_offline_with_tstamp_precision(fp, PCAP_TSTAMP_PRECISION_NANO, errbuf)
            if handle:
                return handle
            _libc().fclose(fp)  # libpcap leaves a stream it could not read open
    return lib.pcap_open_offline_with_tstamp_precision(str(path).encode(), PCAP_TSTAMP_PRECISION_NANO, errbuf)


def _filter_and_read(lib, handle, pixit: dict) -> list[tuple[float, int, bytes, int]]:
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
    if _libc() is not None:
        return _read_dumped(lib, handle, linktype)
    return _read_all(lib, handle, linktype)


def _read_dumped(lib, handle, linktype: int) -> list[tuple[float, int, bytes, int]]:
    """libpcap filters the file and dumps what passes into a memory buffer, all in C; then the
    buffer is cut into records here. pcap_dump writes the handle's timestamp precision (ns)."""
    libc = _libc()
    ptr, size = ctypes.c_void_p(), ctypes.c_size_t()
    fp = libc.open_memstream(ctypes.byref(ptr), ctypes.byref(size))
    if not fp:
        return _read_all(lib, handle, linktype)
    dumper = lib.pcap_dump_fopen(handle, fp)
    if not dumper:
        libc.fclose(fp)
        libc.free(ptr)
        return _read_all(lib, handle, linktype)
    try:
        rc = lib.pcap_loop(handle, -1, ctypes.cast(lib.pcap_dump, ctypes.c_void_p), dumper)
        error = lib.pcap_geterr(handle).decode(errors="replace") if rc == -1 else None
        lib.pcap_dump_flush(dumper)
    finally:
        lib.pcap_dump_close(dumper)  # closes the stream: ptr and size are final
        try:
            data = ctypes.string_at(ptr.value, size.value) if ptr.value else b""
        finally:
            libc.free(ptr)
    if error is not None:  # e.g. a pcapng interface of another link type, half-way
        raise LibpcapUnavailable(f"libpcap: {error}")
    return DumpedRecords(data, linktype)


class DumpedRecords:
    """The records of the pcap file pcap_dump wrote (host byte order, one link type), cut from
    it as they are iterated. Until then they are one bytes object: the processes of a split
    analysis (capture.shards), forked after the reading, each cut their own records from it, and
    share no per-packet object whose pages a write to its reference count would copy."""

    def __init__(self, data: bytes, linktype: int):
        if len(data) < 24 or data[:4] not in _PCAP_MAGICS:
            raise LibpcapUnavailable("libpcap wrote no pcap header")
        self.data, self.linktype = data, linktype

    def __iter__(self) -> Iterator[tuple[float, int, bytes, int]]:
        data, linktype = self.data, self.linktype
        endian, unit = _PCAP_MAGICS[data[:4]]
        header = struct.Struct(endian + "IIII").unpack_from
        pos, end = 24, len(data)
        while pos + 16 <= end:
            sec, frac, incl, _orig = header(data, pos)
            pos += 16
            yield sec + frac * unit, linktype, data[pos:pos + incl], 0
            pos += incl


def _read_all(lib, handle, linktype: int) -> list[tuple[float, int, bytes, int]]:
    """One pcap_next_ex call per kept packet (without open_memstream)."""
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
