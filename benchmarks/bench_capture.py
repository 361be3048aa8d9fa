"""Capture analysis throughput (issues 4 and 15): offline analysis of a 200,000-packet capture in
which under 5 % of the packets belong to the profile's legs must run at >= 500,000 packets/s
(issue 15: libpcap applies the profile's BPF filter while reading, and the relevant packets are
dissected by one process per core, split by flow: capture.shards). Measured in the same run,
interleaved round by round so machine load hits all alike: the same analysis in one process, the
same with the pure-Python reader (no libpcap), tshark with the same key log on the same file (the
number of SIP messages both find must match), and plain Scapy PcapReader dissection. `--live`
measures the live-capture ceiling on lo (the highest rate at which no packet is lost).

Rates are packets of the file per second of wall time (median of the rounds), and per second of
CPU time of the processes doing the work, the shards' included (less sensitive to other load on
the machine). Every analysis of ours must give the same timeline (a digest of all its items).

Run: .venv/bin/python benchmarks/bench_capture.py [--packets 200000] [--runs 5] [--live]
Exit status 1 when the offline target is missed, the SIP counts differ or the timelines differ.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shutil
import socket
import statistics
import struct
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from conformance.capture import analyze_file  # noqa: E402
from conformance.capture.synth import Capture, registration, tcp_segment, udp_datagram, write_pcap  # noqa: E402

PIXIT = yaml.safe_load((ROOT / "profiles" / "reference.yaml").read_text())["pixit"]
TARGET_PPS = 500_000
# Non-standard TLS ports of the profile: tshark is told what they carry (no heuristics).
DECODE_AS = [arg for n in ("3rdwws", "as", "wsf") for arg in ("-d", f"tcp.port=={PIXIT['nodes'][n]['port']},tls")]


def _patch_client_port(frame: bytes, old: int, new: int) -> bytes:
    """Move a TCP frame to another client port (a replica of the same conversation)."""
    sport, dport = struct.unpack_from("!HH", frame, 34)
    if sport == old:
        sport = new
    if dport == old:
        dport = new
    return frame[:34] + struct.pack("!HH", sport, dport) + frame[38:]


def build_capture(path: Path, keylog: Path, total: int, relevant_share: float, seed: int = 7) -> dict:
    """Relevant traffic: replicas of a full registration (TLS 1.3 WSS, TLS 1.2 HTTPS, SIP/UDP)
    on distinct client ports; background: TCP and UDP between other hosts, and other ports of
    the nodes' own addresses (what the address test alone would let through)."""
    cap = Capture()
    registration(cap, keylog, port=40000)
    conv = cap.frames
    n_conv = max(1, int(total * relevant_share) // len(conv))
    rng = random.Random(seed)
    relevant: list[bytes] = []
    for k in range(n_conv):
        for _ts, frame in conv:
            f = frame
            if frame[23] == 6:
                for base in (40000, 40001, 40002):
                    f = _patch_client_port(f, base, 20000 + 3 * k + (base - 40000))
            relevant.append(f)
    background_n = total - len(relevant)
    payloads = [bytes(rng.getrandbits(8) for _ in range(n)) for n in (60, 200, 512, 1200, 1400)]
    templates = []
    for i in range(64):
        p = payloads[i % len(payloads)]
        if i % 4 == 0:  # a node's address, but not a profile port
            templates.append(udp_datagram("127.0.0.14", 6000 + i, "127.0.0.13", 7000 + i, p))
        elif i % 2:
            templates.append(tcp_segment(f"10.0.{i}.1", 1024 + i, f"10.1.{i}.2", 443, i * 1000, 1, 0x18, p))
        else:
            templates.append(udp_datagram(f"192.168.{i}.1", 5000 + i, f"192.168.{i}.2", 30000 + i, p))
    out: list[tuple[float, bytes]] = []
    t = 1_700_000_000.0
    every = total / max(1, len(relevant))
    ri = 0
    for i in range(total):
        t += 0.00001
        if ri < len(relevant) and i >= ri * every:
            out.append((t, relevant[ri]))
            ri += 1
        else:
            out.append((t, templates[i % len(templates)]))
    write_pcap(path, out)
    return {"packets": total, "relevant": len(relevant), "background": background_n,
            "registrations": n_conv, "share": round(len(relevant) / total, 4)}


def run_ours(path: Path, keylog: Path, prefilter: bool, workers: int | None = None) -> tuple[float, float, dict]:
    """One analysis: (wall s, CPU s of this process and of the shards' processes, stats).
    `workers` None: as a user gets it (one process per core for this capture, capture.shards)."""
    import hashlib
    import resource

    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    wall, cpu = time.perf_counter(), time.process_time()
    result = analyze_file(path, PIXIT, [keylog], prefilter=prefilter, workers=workers)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu += (after.ru_utime - children.ru_utime) + (after.ru_stime - children.ru_stime)
    stats = dict(result.stats)
    stats["sip_messages"] = sum(1 for i in result.timeline.items if i.proto == "sip")
    stats["undecryptable"] = sum(len(c.undecryptable) for c in result.timeline.coverage.values())
    # the whole timeline in a digest: the split analysis must give the one-process timeline
    stats["timeline_sha256"] = hashlib.sha256(repr([
        (i.index, i.t, i.src, i.dst, i.proto, i.stream, i.decrypted, i.summary(), getattr(i.event, "raw", b""))
        for i in result.timeline.items]).encode()).hexdigest()
    return wall, cpu, stats


def run_tshark(path: Path, keylog: Path) -> tuple[float, float, int]:
    """tshark with the same key log: (wall s, CPU s of tshark, SIP messages found)."""
    import resource
    import subprocess

    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    wall = time.perf_counter()
    out = subprocess.run(["tshark", "-n", "-r", str(path), "-o", f"tls.keylog_file:{keylog}", *DECODE_AS,
                          "-Y", "sip", "-T", "fields", "-E", "separator=|", "-e", "sip.Method",
                          "-e", "sip.Status-Code"], capture_output=True, text=True, timeout=900, check=True)
    wall = time.perf_counter() - wall
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    # one line per frame; a frame carrying several SIP messages lists each value, comma-separated
    count = sum(len([v for v in field.split(",") if v]) for line in out.stdout.splitlines()
                for field in line.split("|"))
    return wall, cpu, count


def bench_scapy(path: Path, limit: int) -> float:
    """Plain Scapy: read and dissect every packet with PcapReader (no TLS, no reassembly)."""
    import scapy.all  # noqa: F401 - every layer registered, as a user of plain Scapy has it
    from scapy.utils import PcapReader

    start = time.perf_counter()
    n = 0
    with PcapReader(str(path)) as reader:
        for _pkt in reader:  # each record becomes a full layer tree (Ether/IP/TCP|UDP/...)
            n += 1
            if n >= limit:
                break
    return n / (time.perf_counter() - start)


SENDER = """
import socket, sys, time
src, dst, port, rate, count = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5])
payload = b"REGISTER sip:ims.example.net SIP/2.0\\r\\nX: " + b"x" * 400 + b"\\r\\n\\r\\n"
tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
tx.bind((src, 0))
gap, start = 1.0 / rate, time.perf_counter()
for i in range(count):
    tx.sendto(payload, (dst, port))
    while time.perf_counter() < start + (i + 1) * gap:
        pass
print(count / (time.perf_counter() - start))
"""


def live_ceiling(rates: list[int], count: int) -> list[dict]:
    """A separate sender process pushes `count` SIP-sized UDP datagrams to the P-CSCF address at
    each rate while a CaptureSession sniffs lo; a rate is lossless when every datagram was captured
    and the kernel dropped none."""
    import subprocess

    from conformance.capture.sniff import CaptureSession

    node = (PIXIT["nodes"]["pcscf"]["address"], PIXIT["nodes"]["pcscf"]["port"])
    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)  # so the datagrams have a receiver
    rx.bind(node)
    rx.setblocking(False)
    results = []
    workdir = tempfile.TemporaryDirectory()
    for rate in rates:
        session = CaptureSession(PIXIT, [], ["lo"], 300, workdir=Path(workdir.name))
        session.start()
        if session.error:
            return [{"error": session.error}]
        out = subprocess.run([sys.executable, "-c", SENDER, PIXIT["nodes"]["wsf"]["address"], node[0],
                              str(node[1]), str(rate), str(count)], capture_output=True, text=True, timeout=600)
        achieved = float(out.stdout.strip() or 0)
        result = session.stop()
        captured = result.stats.get("relevant", 0)
        drops = sum(k.get("drops", 0) for k in result.stats.get("kernel", {}).values())
        results.append({"rate_pps": rate, "achieved_pps": round(achieved), "sent": count, "captured": captured,
                        "kernel_drops": drops, "lossless": captured == count and not drops, "error": result.error})
        while True:
            try:
                rx.recv(65535)
            except BlockingIOError:
                break
    rx.close()
    workdir.cleanup()
    return results


def crossover(sizes: list[int], share: float, runs: int) -> list[dict]:
    """Where splitting over processes starts to pay (shards.MIN_PACKETS): one process against
    two on captures of these sizes, interleaved, medians of wall time."""
    out = []
    with tempfile.TemporaryDirectory() as tmp:
        for total in sizes:
            pcap, keylog = Path(tmp) / f"{total}.pcap", Path(tmp) / f"{total}.log"
            build_capture(pcap, keylog, total, share)
            walls: dict[int, list[float]] = {1: [], 2: []}
            for _ in range(runs):
                for workers in (1, 2):
                    t = time.perf_counter()
                    result = analyze_file(pcap, PIXIT, [keylog], workers=workers)
                    walls[workers].append(time.perf_counter() - t)
            one, two = statistics.median(walls[1]), statistics.median(walls[2])
            out.append({"packets": total, "relevant": result.stats["relevant"], "one_process_ms": round(one * 1e3, 1),
                        "two_processes_ms": round(two * 1e3, 1), "ratio": round(one / two, 2)})
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--packets", type=int, default=200_000)
    ap.add_argument("--share", type=float, default=0.045, help="share of packets on the profile's legs")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--tshark-runs", type=int, default=1, help="tshark runs (it takes minutes each)")
    ap.add_argument("--scapy-packets", type=int, default=20_000, help="packets Scapy dissects for its rate")
    ap.add_argument("--live", action="store_true", help="also measure the live-capture ceiling on lo")
    ap.add_argument("--crossover", action="store_true",
                    help="also measure one process against the split (capture.shards) on smaller captures")
    ap.add_argument("--live-count", type=int, default=100_000, help="datagrams per rate (long enough to fill buffers)")
    args = ap.parse_args()
    report = {"machine": f"{platform.machine()} cpus={os.cpu_count()} python={platform.python_version()}",
              "load_average_1min_start": round(os.getloadavg()[0], 2)}
    with tempfile.TemporaryDirectory() as tmp:
        pcap, keylog = Path(tmp) / "bench.pcap", Path(tmp) / "keys.log"
        t = time.perf_counter()
        report["capture"] = build_capture(pcap, keylog, args.packets, args.share)
        report["build_s"] = round(time.perf_counter() - t, 1)
        have_tshark = shutil.which("tshark") is not None
        rounds: dict[str, list[tuple[float, float]]] = {"libpcap": [], "libpcap_one_process": [], "python": [],
                                                        "tshark": []}
        stats, tshark_sip, digests = {}, None, set()
        for r in range(args.runs):  # interleaved: load on the machine hits every reader alike
            order = list(rounds) if r % 2 == 0 else list(reversed(rounds))
            for name in order:
                if name == "tshark":
                    if have_tshark and r < args.tshark_runs:  # 40x slower: one run tells enough
                        wall, cpu, tshark_sip = run_tshark(pcap, keylog)
                        rounds[name].append((wall, cpu))
                    continue
                wall, cpu, st = run_ours(pcap, keylog, prefilter=name != "python",
                                         workers=1 if name == "libpcap_one_process" else None)
                rounds[name].append((wall, cpu))
                stats.setdefault(name, st)
                digests.add(st["timeline_sha256"])
        scapy = bench_scapy(pcap, args.scapy_packets)
        n = args.packets
        rate = {name: {"wall_s": round(statistics.median(w for w, _ in v), 3),
                       "packets_per_s": round(n / statistics.median(w for w, _ in v)),
                       "packets_per_cpu_s": round(n / statistics.median(c for _, c in v))}
                for name, v in rounds.items() if v}
        ours = rate["libpcap"]["packets_per_s"]
        report["ours_libpcap_prefilter"] = {**rate["libpcap"], "reader": stats["libpcap"].get("reader"),
                                            "processes": stats["libpcap"]["shards"],
                                            "sip_messages": stats["libpcap"]["sip_messages"],
                                            "undecryptable": stats["libpcap"]["undecryptable"],
                                            "tls_connections": stats["libpcap"]["tls_connections"]}
        report["ours_libpcap_one_process"] = {**rate["libpcap_one_process"],
                                              "sip_messages": stats["libpcap_one_process"]["sip_messages"]}
        report["ratio_processes_vs_one_wall"] = round(ours / rate["libpcap_one_process"]["packets_per_s"], 2)
        report["ours_python_reader"] = {**rate["python"], "processes": stats["python"]["shards"],
                                        "sip_messages": stats["python"]["sip_messages"]}
        if have_tshark and rounds["tshark"]:  # --tshark-runs 0: ours only
            report["tshark"] = {**rate["tshark"], "sip_messages": tshark_sip}
            report["ratio_vs_tshark_wall"] = round(ours / rate["tshark"]["packets_per_s"], 1)
        report["ratio_libpcap_vs_python_reader_wall"] = round(ours / rate["python"]["packets_per_s"], 2)
        report["scapy_pcapreader_packets_per_s"] = round(scapy)
        report["ratio_vs_scapy"] = round(ours / scapy, 1)
        report["target_packets_per_s"] = TARGET_PPS
        report["meets_target"] = ours >= TARGET_PPS
        expected_sip = report["capture"]["registrations"] * 6  # steps 14, 17, 18, 19, 20, 21
        report["identical_timelines"] = len(digests) == 1  # split or not, libpcap or Python reader
        report["complete"] = (report["identical_timelines"]
                              and stats["libpcap"]["sip_messages"] == expected_sip == stats["python"]["sip_messages"]
                              and stats["libpcap"]["undecryptable"] == 0
                              and (tshark_sip is None or tshark_sip == expected_sip))
        report["load_average_1min_end"] = round(os.getloadavg()[0], 2)
    if args.crossover:
        report["crossover"] = crossover([22_000, 44_000, 66_000, 110_000], args.share, max(args.runs, 5))
    if args.live:
        report["live"] = live_ceiling([5000, 10000, 20000, 40000, 80000], args.live_count)
    print(json.dumps(report, indent=2))
    return 0 if report["meets_target"] and report["complete"] else 1


if __name__ == "__main__":
    sys.exit(main())
