"""Live capture around one test case: Scapy sniffers on the profile's interfaces.

- BPF filter from the profile's node endpoints: a packet is kept when one end is a node's
  (address, port) and both addresses are known (nodes or the harness). On `lo` every packet is
  seen twice by a packet socket (outgoing and incoming); `inbound` keeps one copy.
- Packets are taken as raw bytes by our own reader thread (no Scapy packet per frame: that is what
  limits live capture to a few thousand packets/s) and dissected with the offline pipeline.
- Errors are checked, not swallowed: opening the socket fails at `start()` (no privilege ->
  CaptureResult.error, assertions inconclusive); a socket that dies while sniffing, a sniffer
  thread that raised, or packets the kernel dropped make the result's `error` say so.
- `stop()` waits the settle time, stops the sniffer and drains what is still queued in the
  socket, so the last packets of a test are not lost in the race with the stop signal.
"""

from __future__ import annotations

import ipaddress
import os
import select
import socket
import struct
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

from conformance.capture import CaptureResult, analyze_records
from conformance.capture.timeline import NodeMap, Timeline

SOL_PACKET, PACKET_AUXDATA, PACKET_STATISTICS = 263, 8, 6
SO_TIMESTAMPNS = 35  # SO_TIMESTAMPNS_OLD, what Scapy's socket enables
SIOCGSTAMP = 0x8906
TP_STATUS_VLAN_VALID, TP_STATUS_VLAN_TPID_VALID, ETH_P_8021Q = 1 << 4, 1 << 6, 0x8100
_TIMESPEC = struct.Struct("qq")  # struct timespec on a 64-bit kernel
_AUXDATA = struct.Struct("IIIHHHH")  # struct tpacket_auxdata (packet(7))
ANCILLARY_SPACE = socket.CMSG_SPACE(_TIMESPEC.size) + socket.CMSG_SPACE(_AUXDATA.size)
SNAPLEN = 65535  # what the AsyncSniffer read per frame (a buffer this size is allocated per read)
BATCH = 256  # frames read per wake-up before the stop flag is looked at again
DRAIN_BATCHES = 4000  # up to a million frames left in the socket at stop
WAKE_BACKSTOP_S = 0.5  # the stop pipe wakes the reader; this only bounds a lost wake-up
RCVBUF = 32 * 1024 * 1024  # absorbs bursts while the Python side catches up
START_TIMEOUT_S = 3.0
STOP_TIMEOUT_S = 3.0


def bpf_filter(pixit: dict, iface: str, extra: str | None = None) -> str:
    nodes = NodeMap(pixit)
    if not nodes.endpoints:
        raise ValueError("pixit.nodes names no address and port to capture")
    eps = " or ".join(f"(src host {a} and src port {p}) or (dst host {a} and dst port {p})"
                      for a, p in sorted(nodes.endpoints))
    src = " or ".join(f"src host {a}" for a in nodes.addresses)
    dst = " or ".join(f"dst host {a}" for a in nodes.addresses)
    # IPv4 fragments after the first carry no ports: keep them between known hosts.
    frag = "(ip[6:2] & 0x1fff != 0)"
    # The address tests first: most foreign packets fail them at once, before the longer list
    # of endpoint tests runs (about 20 % of libpcap's time on a mostly foreign capture).
    flt = f"({src}) and ({dst}) and (({eps}) or {frag})"
    if extra:  # the capture barrier's marker (capture.barrier)
        flt = f"({flt}) or {extra}"
    return f"inbound and {flt}" if iface == "lo" else flt


class ScapySniffer:
    """One interface: Scapy opens the packet socket and attaches the compiled BPF filter; our own
    thread reads it.

    Scapy's AsyncSniffer built a Scapy packet (a Raw layer) for every frame only to hand its bytes
    on, and ran its session machinery around it: about 100 us of CPU per packet, measured as 14 ms
    per 1-22 flow in the benchmark's process (the hand-written client slowed from 17 to 31 ms of
    CPU when the sniffer ran beside it). The reader here takes each frame with one `recvmsg` and
    its kernel timestamp from the ancillary data Scapy's socket asks for (SO_TIMESTAMPNS, and
    PACKET_AUXDATA for VLAN tags, as Scapy's `_recv_raw` reads them), and drains everything queued
    at each wake-up. A pipe wakes it to stop, so the stop does not wait for a packet or a timeout.
    """

    def __init__(self, iface: str, bpf: str, on_packet: Callable[[float, int, bytes], None]):
        self.iface, self.bpf, self.on_packet = iface, bpf, on_packet
        self.sock = None
        self.thread: threading.Thread | None = None
        self.linktype = 1
        self.error: str | None = None
        self.kernel = {"packets": 0, "drops": 0}
        self._recvmsg = None  # the socket's recvmsg; an attribute so a test can make it fail
        self._wake_r = self._wake_w = -1
        self._stopping = False

    def start(self) -> None:
        import scapy.layers.l2  # noqa: F401 - registers Ether for Linux lo (ARPHRD_LOOPBACK)
        from scapy.arch.linux import L2ListenSocket
        from scapy.config import conf

        # Opening the socket is where a missing privilege shows (PermissionError); let it raise here.
        self.sock = L2ListenSocket(iface=self.iface, filter=self.bpf)
        try:
            self.sock.ins.setsockopt(socket.SOL_SOCKET, getattr(socket, "SO_RCVBUFFORCE", 33), RCVBUF)
        except OSError:
            self.sock.ins.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RCVBUF)
        self.linktype = conf.l2types.layer2num.get(self.sock.LL, 1)
        self._recvmsg = self.sock.ins.recvmsg
        self._wake_r, self._wake_w = os.pipe()
        self._kernel_stats()  # reading resets the counters
        started = threading.Event()
        self.thread = threading.Thread(target=self._run, args=(started,), name=f"sniffer-{self.iface}",
                                       daemon=True)
        self.thread.start()
        if not started.wait(START_TIMEOUT_S):
            error = f"sniffer on {self.iface} did not start within {START_TIMEOUT_S} s"
            self.stop()  # the caller keeps no handle on a sniffer that failed to start: release it here
            self.error = error
            raise RuntimeError(error)

    def _run(self, started: threading.Event) -> None:
        fd, wake = self.sock.ins.fileno(), self._wake_r
        poller = select.poll()  # not select(): a long session may hold descriptors above FD_SETSIZE
        poller.register(fd, select.POLLIN)
        poller.register(wake, select.POLLIN)
        started.set()
        try:
            while not self._stopping:
                ready = poller.poll(WAKE_BACKSTOP_S * 1000)
                if self._stopping or any(f == wake for f, _ in ready):
                    return
                if ready:
                    self._read_queued(BATCH)
        except Exception as exc:  # noqa: BLE001 - reported as the capture's error, never swallowed
            self.error = self.error or f"sniffer on {self.iface} failed: {type(exc).__name__}: {exc}"

    def _read_queued(self, limit: int) -> int:
        """Hand over up to `limit` frames already queued in the socket (never blocks)."""
        recvmsg, on_packet, linktype = self._recvmsg, self.on_packet, self.linktype
        n = 0
        while n < limit:
            try:
                frame, ancdata, _flags, _addr = recvmsg(SNAPLEN, ANCILLARY_SPACE, socket.MSG_DONTWAIT)
            except (BlockingIOError, InterruptedError):
                return n
            n += 1
            if not frame:
                continue
            ts = None
            for level, kind, data in ancdata:
                if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(data) == 16:
                    sec, nsec = _TIMESPEC.unpack(data)
                    ts = sec + nsec * 1e-9
                elif level == SOL_PACKET and kind == PACKET_AUXDATA and len(data) >= _AUXDATA.size:
                    frame = _with_vlan_tag(frame, data)
            if ts is None:  # no ancillary timestamp: the socket's last one, as Scapy does
                ts = _last_timestamp(self.sock.ins)
            on_packet(ts, linktype, frame)
        return n

    def _kernel_stats(self) -> tuple[int, int]:
        """struct tpacket_stats { unsigned tp_packets, tp_drops } (packet(7))."""
        try:
            return struct.unpack("II", self.sock.ins.getsockopt(SOL_PACKET, PACKET_STATISTICS, 8))
        except (OSError, AttributeError):
            return (0, 0)

    def new_drops(self) -> int:
        """Packets the kernel dropped since the last look (reading the counters resets them)."""
        if self.sock is None or self.sock.closed:
            return 0
        packets, drops = self._kernel_stats()
        self.kernel["packets"] += packets
        self.kernel["drops"] += drops
        return drops

    def stop(self) -> None:
        self._stopping = True
        if self._wake_w >= 0:
            try:
                os.write(self._wake_w, b"x")
            except OSError as exc:
                self.error = self.error or f"stopping the sniffer on {self.iface}: {exc}"
        thread = self.thread
        stopped = True
        if thread is not None:
            thread.join(STOP_TIMEOUT_S)
            if thread.is_alive():
                stopped = False
                self.error = self.error or f"sniffer on {self.iface} did not stop within {STOP_TIMEOUT_S} s"
        if self.sock is not None and not self.sock.closed:
            if stopped:  # a thread still reading would race the drain for the same frames
                self._drain()
            packets, drops = self._kernel_stats()
            self.kernel["packets"] += packets
            self.kernel["drops"] += drops
            if drops:
                self.error = self.error or f"the kernel dropped {drops} packets on {self.iface}"
            self.sock.close()
        for fd in (self._wake_r, self._wake_w):
            if fd >= 0:
                os.close(fd)
        self._wake_r = self._wake_w = -1

    def _drain(self) -> None:
        """Packets still queued in the socket when the reader thread stopped."""
        try:
            for _ in range(DRAIN_BATCHES):  # bounded: the queue is finite, the bound is a backstop
                if self._read_queued(BATCH) < BATCH:
                    return
        except OSError as exc:
            self.error = self.error or f"draining the socket on {self.iface}: {exc}"


def _with_vlan_tag(frame: bytes, auxdata: bytes) -> bytes:
    """A VLAN tag the kernel stripped into PACKET_AUXDATA, put back after the MAC addresses
    (what Scapy's `_recv_raw` does; loopback frames never carry one)."""
    status, _len, _snaplen, _mac, _net, tci, tpid = _AUXDATA.unpack_from(auxdata)
    if tci == 0 and not status & TP_STATUS_VLAN_VALID:
        return frame
    tpid = tpid if status & TP_STATUS_VLAN_TPID_VALID else ETH_P_8021Q
    return frame[:12] + struct.pack("!HH", tpid, tci) + frame[12:]


def _last_timestamp(sock: socket.socket) -> float:
    """SIOCGSTAMP: the time of the last packet read (struct timeval, 64-bit fields)."""
    import fcntl

    sec, usec = struct.unpack("qq", fcntl.ioctl(sock, SIOCGSTAMP, b"\0" * 16))
    return sec + usec / 1e6


SnifferFactory = Callable[[str, str, Callable[[float, int, bytes], None]], object]


class CaptureSession:
    """Started before a test case's first step, stopped after its last (plus `settle_ms`)."""

    def __init__(self, profile_pixit: dict, keylogs: list[Path], interfaces: list[str], settle_ms: int,
                 sniffer_factory: SnifferFactory | None = None, workdir: Path | None = None,
                 barrier: bool = False):
        self.pixit = profile_pixit
        self.keylogs = [Path(k) for k in keylogs]
        self.interfaces = list(interfaces or ["lo"])
        self.settle_ms = max(0, int(settle_ms))
        self.factory = sniffer_factory or ScapySniffer
        self.workdir = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix="ims-capture-"))
        self.redactor = None  # secrets to redact in the written capture (the profile's redactor)
        self.include_tls_secrets = bool((profile_pixit.get("capture") or {}).get("include_tls_secrets", False))
        self.records: list[tuple[float, int, bytes, int]] = []
        self._lock = threading.Lock()
        self.sniffers: list = []
        self.error: str | None = None
        self.t_start = self.t_end = None
        self.want_barrier = barrier
        self.barrier = None  # capture.barrier.Barrier once started, when the set-up allows one
        self._observable: frozenset[str] | None = None

    def observable_nodes(self) -> set[str]:
        """Every packet between loopback addresses crosses lo: capturing lo (or any) sees all of
        their legs, so a message missing there was not sent. Other interfaces give no such promise."""
        if self._observable is None:  # asked at every window: the profile and interfaces are fixed
            nodes = NodeMap(self.pixit) if {"lo", "any"} & set(self.interfaces) else None
            self._observable = frozenset() if nodes is None else frozenset(
                name for addr, names in nodes.by_address.items() if ipaddress.ip_address(addr).is_loopback
                for name in names)
        return set(self._observable)

    def _collector(self, iface_index: int) -> Callable[[float, int, bytes], None]:
        append = self.records.append
        barrier = self.barrier

        def on_packet(ts: float, linktype: int, frame: bytes) -> None:
            if barrier is not None and barrier.is_marker(frame):
                return  # the harness's own marker: proof of progress, not traffic
            append((ts, linktype, frame, iface_index))  # list.append is atomic under the GIL
        return on_packet

    def sniffer_problem(self) -> str | None:
        """Asked once per test-case window of the session-wide capture: a sniffer whose reader
        failed (from then on, for every later window too) or packets the kernel dropped since the
        last window. `stop` reports both, but the session-wide capture stops after the last test
        case, when no window reads its error any more."""
        problems = []
        for s in self.sniffers:
            if getattr(s, "error", None):
                problems.append(s.error)
            new_drops = getattr(s, "new_drops", None)
            dropped = new_drops() if new_drops is not None else 0
            if dropped:
                problems.append(f"the kernel dropped {dropped} packets on {getattr(s, 'iface', '?')} "
                                "since the previous test case's window")
        return "; ".join(problems) or None

    def flush(self, timeout_s: float) -> bool:
        """Wait until everything sent so far is captured (False: no barrier, or not in time)."""
        return self.barrier is not None and bool(self.sniffers) and self.barrier.flush(timeout_s)

    def start(self) -> None:
        from conformance.capture.barrier import Barrier

        self.t_start = time.time()
        ue = (self.pixit.get("ue") or {}).get("address")
        if self.want_barrier and Barrier.usable(ue, self.interfaces):
            try:
                self.barrier = Barrier(str(ue).strip("[]"))
            except OSError:
                self.barrier = None  # no barrier: the settle falls back to waiting for quiet legs
        extra = self.barrier.bpf_clause() if self.barrier else None
        for i, iface in enumerate(self.interfaces):
            try:
                sniffer = self.factory(iface, bpf_filter(self.pixit, iface, extra), self._collector(i))
                sniffer.start()
            except PermissionError as exc:
                self.error = f"no privilege to capture on {iface} ({exc}); run as root or grant CAP_NET_RAW"
            except Exception as exc:  # noqa: BLE001 - any failure to start makes the capture unusable
                self.error = f"cannot capture on {iface}: {type(exc).__name__}: {exc}"
            else:
                self.sniffers.append(sniffer)
                continue
            self._stop_all()
            return

    def _stop_all(self) -> None:
        for s in self.sniffers:
            s.stop()
            if getattr(s, "error", None) and not self.error:
                self.error = s.error
        self.sniffers = []
        if self.barrier is not None:
            self.barrier.close()

    def halt(self) -> None:
        """Stop capturing, nothing more. The harness's session-wide sniffer ends this way: every
        test case already had its window dissected by the streaming analysis and its outputs
        written, and `stop` would dissect and redact the whole session again for a file nobody
        reads (measured: a minute of a 201-case catalog run on the busy 2-core box)."""
        self.t_end = time.time()
        self._stop_all()

    def stop(self, pcapng_name: str = "capture.pcapng") -> CaptureResult:
        if self.sniffers:
            time.sleep(self.settle_ms / 1000)  # let the last answers of the test reach the sniffer
        self.t_end = time.time()
        sniffers = list(self.sniffers)
        self._stop_all()
        kernel = {getattr(s, "iface", "?"): getattr(s, "kernel", {}) for s in sniffers}
        if self.error and not self.records:
            tl = Timeline(t_start=self.t_start, t_end=self.t_end, problems=[self.error])
            return CaptureResult(tl, None, self.error, {"packets": 0, "kernel": kernel}, NodeMap(self.pixit).order)
        self.records.sort(key=lambda r: r[0])  # several interfaces: one time order
        out = self.workdir / pcapng_name
        # the session's capture: decrypted and redacted; the raw one with TLS secrets only on request
        result = analyze_records(self.records, self.pixit, self.keylogs,
                                 pcapng_out=out.with_suffix(".tls-secrets.pcapng") if self.include_tls_secrets else None,
                                 plaintext_out=out, redactor=self.redactor,
                                 t_window=(self.t_start, self.t_end), interfaces=self.interfaces)
        result.error = self.error
        result.timeline.observable_nodes = self.observable_nodes()
        result.stats["kernel"] = kernel
        if self.error:
            result.timeline.problems.append(self.error)
        return result
