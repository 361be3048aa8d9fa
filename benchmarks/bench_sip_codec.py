"""SIP codec throughput: parse, validate and serialise a REGISTER (medians of 7 runs).

Run: .venv/bin/python benchmarks/bench_sip_codec.py
"""

from __future__ import annotations

import os
import platform
import statistics
import time

from conformance.codec import sip

REGISTER = (
    b"REGISTER sip:ims.example.net SIP/2.0\r\n"
    b"Via: SIP/2.0/WSS df7jal23ls0d.invalid;branch=z9hG4bK776asdhds\r\n"
    b"Max-Forwards: 70\r\nTo: <sip:alice@web.operator.example>\r\n"
    b"From: <sip:alice@web.operator.example>;tag=456248\r\nCall-ID: 843817637684230@998sdasdh09\r\n"
    b"CSeq: 1 REGISTER\r\nContact: <sip:x@df7jal23ls0d.invalid;transport=ws>;+sip.instance=\"<urn:uuid:1>\";reg-id=1\r\n"
    b"Supported: path, outbound\r\nAuthorization: Bearer abc.def.ghi\r\nContent-Length: 0\r\n\r\n"
)


def per_call_us(fn, n=2000, runs=7) -> float:
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        for _ in range(n):
            fn()
        samples.append((time.perf_counter() - start) / n * 1e6)
    return statistics.median(samples)


def main() -> None:
    msg = sip.parse(REGISTER)
    print(f"machine: {platform.machine()} {platform.processor() or ''} cpus={os.cpu_count()} "
          f"python={platform.python_version()}")
    print(f"parse     {per_call_us(lambda: sip.parse(REGISTER)):8.1f} us (median)")
    print(f"validate  {per_call_us(lambda: sip.validate(REGISTER)):8.1f} us (median)")
    print(f"serialize {per_call_us(msg.serialize):8.1f} us (median)")


if __name__ == "__main__":
    main()
