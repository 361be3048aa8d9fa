"""The whole catalog against one hostile server (issue 10 "Done when"): wall time against the
bound (steps run x step timeout, plus start-up), peak memory, and whether the report renders.

    .venv/bin/python benchmarks/hostile_catalog.py huge            # 10 MiB answers on every protocol
    .venv/bin/python benchmarks/hostile_catalog.py silent --step-ms 300 --report
    modes: silent drip garbage truncated huge nothing

Every node of a generated profile points at one loopback port where a TCP server (HTTP, WSS,
SIP/TCP all get the same hostile behaviour) and a UDP server (SIP/UDP) listen. The catalog runs
through `ims-conformance run` in a child process (capture off), whose peak RSS is read from
getrusage; `--report` then renders it with `ims-conformance report` and measures that too.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import trustme  # noqa: E402

from tests.hostile import servers as hs  # noqa: E402
from tests.hostile.test_hostile_sut import _profile  # noqa: E402

TCP = {"silent": hs.http_silent, "drip": hs.http_drip, "garbage": hs.http_garbage,
       "truncated": hs.http_truncated, "huge": hs.http_huge}
UDP = {"silent": hs.sip_udp_silent, "drip": hs.sip_udp_silent, "garbage": hs.sip_udp_garbage,
       "truncated": hs.sip_udp_truncated, "huge": hs.sip_udp_huge}


def _child_run(cmd: list[str]) -> tuple[int, float, float]:
    """(exit code, wall seconds, peak RSS MB of the child) of one command."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    start = time.monotonic()
    rc = subprocess.call(cmd, cwd=REPO, stdout=subprocess.DEVNULL)
    wall = time.monotonic() - start
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return rc, wall, max(peak, before) / 1024.0


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=[*TCP, "nothing"])
    ap.add_argument("--step-ms", type=int, default=300)
    ap.add_argument("--report", action="store_true", help="also render the Allure report of the run")
    args = ap.parse_args()
    import ssl

    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        ca = trustme.CA()
        ca.cert_pem.write_to_path(str(d / "ca.pem"))
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ca.issue_cert("127.0.0.1").configure_cert(ctx)
        servers = []
        if args.mode == "nothing":
            host, port = hs.nothing_listening()
        else:
            tcp = hs.TcpServer(TCP[args.mode], tls=ctx)
            host, port = tcp.address
            servers.append(tcp)
            udp = hs.UdpServer.__new__(hs.UdpServer)  # the same port number for SIP/UDP
            import socket
            import threading

            udp.behaviour = UDP[args.mode]
            udp.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            udp.sock.bind((host, port))
            udp.sock.settimeout(0.2)
            udp.address, udp.stopped = udp.sock.getsockname(), threading.Event()
            threading.Thread(target=udp._run, daemon=True).start()
            servers.append(udp)
        import tests.hostile.test_hostile_sut as suite

        suite.STEP_MS = args.step_ms
        profile = _profile(d, d / "ca.pem", host, port, "udp")
        results, work = d / "allure-results", d / "work"
        try:
            rc, wall, peak = _child_run([sys.executable, "-m", "conformance.cli", "run", "--profile", str(profile),
                                         "--alluredir", str(results), "--workdir", str(work), "--no-capture"])
            verdicts = [r for f in work.glob("verdicts-*.json") for r in json.loads(f.read_text())["results"]]
            steps = 0
            for f in results.glob("*-result.json"):
                steps += len(json.loads(f.read_text()).get("steps") or [])
            counts: dict[str, int] = {}
            for r in verdicts:
                counts[r["verdict"]] = counts.get(r["verdict"], 0) + 1
            bound = steps * args.step_ms / 1000.0
            size = sum(f.stat().st_size for f in results.glob("*")) / 1e6
            print(f"mode {args.mode}: {len(verdicts)} cases {counts}, exit {rc}")
            passed = [r["id"] for r in verdicts if r["verdict"] in ("pass", "pass with warnings", "error")]
            if passed:
                print(f"  pass/error: {passed}")
            print(f"  wall {wall:.1f} s; steps run {steps} x {args.step_ms} ms = {bound:.1f} s "
                  f"(+ start-up); sum of case times {sum(r['seconds'] for r in verdicts):.1f} s")
            print(f"  peak RSS of the run {peak:.0f} MB; allure-results {size:.1f} MB")
            if args.report:
                rc2, wall2, peak2 = _child_run([sys.executable, "-m", "conformance.cli", "report", "--alluredir",
                                                str(results), "--output", str(d / "report"), "--workdir",
                                                str(work)])
                page = d / "report" / "index.html"
                print(f"  report: exit {rc2}, {wall2:.1f} s, peak RSS {peak2:.0f} MB (largest child so far), "
                      f"index.html {page.stat().st_size / 1e6 if page.exists() else 0:.1f} MB")
        finally:
            for s in servers:
                s.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
