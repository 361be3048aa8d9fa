"""Live capture around one test case: Scapy sniffers on the profile's interfaces.

- BPF filter from the profile's node endpoints: a packet is kept when one end is a node's
  (address, port) and both addresses are known (nodes or the harness). On `lo` every packet is
  seen twice by a packet socket (outgoing and incoming); `inbound` keeps one copy.
- Packets are taken as raw bytes (no Scapy layer tree per packet: that is what limits live capture
  to a few thousand packets/s) and dissected after the test with the offline pipeline.
- Errors are checked, not swallowed: opening the socket fails at `start()` (no privilege ->
  CaptureResult.error, assertions inconclusive); a socket that dies while sniffing, a sniffer
  thread that raised, or packets the kernel dropped make the result's `error` say so.
- `stop()` waits the settle time, stops the sniffer and drains what is still queued in the
  socket, so the last packets of a test are not lost in the race with the stop signal.
"""

from __future__ import annotations

import ipaddress
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

SOL_PACKET, PACKET_STATISTICS = 263, 6
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
    """One interface: a Scapy L2 listen socket handed to AsyncSniffer, packets kept as raw bytes."""

    def __init__(self, iface: str, bpf: str, on_packet: Callable[[float, int, bytes], None]):
        self.iface, self.bpf, self.on_packet = iface, bpf, on_packet
        self.sock = None
        self.sniffer = None
        self.linktype = 1
        self.error: str | None = None
        self.kernel = {"packets": 0, "drops": 0}

    def start(self) -> None:
        import scapy.layers.l2  # noqa: F401 - registers Ether for Linux lo (ARPHRD_LOOPBACK)
        from scapy.arch.linux import L2ListenSocket
        from scapy.config import conf
        from scapy.sendrecv import AsyncSniffer

        owner = self

        class RawListenSocket(L2ListenSocket):
            """Returns Raw packets (bytes + time) and remembers why it failed, if it does."""

            def recv(self, x=65535, **kwargs):
                try:
                    cls, val, ts = self.recv_raw(x)
                except Exception as exc:
                    owner.error = owner.error or f"sniffer on {owner.iface} failed: {type(exc).__name__}: {exc}"
                    raise
                if not val:
                    return None
                pkt = conf.raw_layer(val)
                pkt.time = ts
                return pkt

        # Opening the socket is where a missing privilege shows (PermissionError); let it raise here.
        self.sock = RawListenSocket(iface=self.iface, filter=self.bpf)
        try:
            self.sock.ins.setsockopt(socket.SOL_SOCKET, getattr(socket, "SO_RCVBUFFORCE", 33), RCVBUF)
        except OSError:
            self.sock.ins.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RCVBUF)
        self.linktype = conf.l2types.layer2num.get(self.sock.LL, 1)
        self._kernel_stats()  # reading resets the counters
        started = threading.Event()
        self.sniffer = AsyncSniffer(opened_socket=self.sock, store=False, prn=self._prn,
                                    started_callback=started.set)
        self.sniffer.start()
        if not started.wait(START_TIMEOUT_S):
            self.error = f"sniffer on {self.iface} did not start within {START_TIMEOUT_S} s"
            raise RuntimeError(self.error)

    def _prn(self, pkt) -> None:
        self.on_packet(float(pkt.time), self.linktype, pkt.load)

    def _kernel_stats(self) -> tuple[int, int]:
        """struct tpacket_stats { unsigned tp_packets, tp_drops } (packet(7))."""
        try:
            return struct.unpack("II", self.sock.ins.getsockopt(SOL_PACKET, PACKET_STATISTICS, 8))
        except (OSError, AttributeError):
            return (0, 0)

    def stop(self) -> None:
        sniffer = self.sniffer
        if sniffer is not None:
            if sniffer.running:
                try:
                    sniffer.stop(join=False)
                except Exception as exc:  # noqa: BLE001 - recorded, then reported as the capture error
                    self.error = self.error or f"stopping the sniffer on {self.iface}: {exc}"
            if sniffer.thread is not None:
                sniffer.thread.join(STOP_TIMEOUT_S)
                if sniffer.thread.is_alive():
                    self.error = self.error or f"sniffer on {self.iface} did not stop within {STOP_TIMEOUT_S} s"
            if sniffer.exception is not None:
                self.error = self.error or f"sniffer on {self.iface} raised {sniffer.exception!r}"
        if self.sock is not None and not self.sock.closed:
            self._drain()
            packets, drops = self._kernel_stats()
            self.kernel["packets"] += packets
            self.kernel["drops"] += drops
            if drops:
                self.error = self.error or f"the kernel dropped {drops} packets on {self.iface}"
            self.sock.close()

    def _drain(self) -> None:
        """Packets still queued in the socket when the sniffer thread stopped."""
        fd = self.sock.ins
        for _ in range(1_000_000):  # bounded: the queue is finite, the bound is a backstop
            ready, _, _ = select.select([fd], [], [], 0)
            if not ready:
                return
            try:
                _cls, val, ts = self.sock.recv_raw(65535)
            except OSError as exc:
                self.error = self.error or f"draining the socket on {self.iface}: {exc}"
                return
            if val:
                self.on_packet(float(ts), self.linktype, val)


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

    def observable_nodes(self) -> set[str]:
        """Every packet between loopback addresses crosses lo: capturing lo (or any) sees all of
        their legs, so a message missing there was not sent. Other interfaces give no such promise."""
        if not {"lo", "any"} & set(self.interfaces):
            return set()
        nodes = NodeMap(self.pixit)
        return {name for addr, names in nodes.by_address.items() if ipaddress.ip_address(addr).is_loopback
                for name in names}

    def _collector(self, iface_index: int) -> Callable[[float, int, bytes], None]:
        append = self.records.append
        barrier = self.barrier

        def on_packet(ts: float, linktype: int, frame: bytes) -> None:
            if barrier is not None and barrier.is_marker(frame):
                return  # the harness's own marker: proof of progress, not traffic
            append((ts, linktype, frame, iface_index))  # list.append is atomic under the GIL
        return on_packet

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
