"""How long `ims-conformance validate` takes on a large catalog.

Generates 500 test cases (4-9 steps, 2-7 expectations per step, fragments, capture blocks,
PICS selections) in a temporary directory, then times discovery + loading + validation of the
whole catalog (`conformance.model.catalog.load_catalog`), 5 runs, and prints the median.
Goal: <= 2 s on 2 cores.

    python benchmarks/bench_validate.py [--cases 500] [--runs 5] [--pure-python]

--pure-python times the fallback without jsonschema-rs (pure jsonschema for every file).
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from conformance.model import schema  # noqa: E402
from conformance.model.catalog import discover, load_catalog  # noqa: E402

FRAGMENT = """\
fragment: login_{n}
description: log in at the third-party web application and authorize
params:
  account: ${{user.tp_username}}
steps:
  - name: log in
    flow: [1]
    http:
      method: POST
      url: ${{pixit.nodes.3rdwws.base_url}}/login
      form: {{username: "${{params.account}}", password: "${{user.tp_password}}"}}
    expect:
      - status: 303
        ref: BINDING step 1
      - {{header: Set-Cookie, regex: "(?i);\\\\s*httponly", ref: RFC 6265 4.1.2.6}}
  - name: enter the WebRTC URL
    flow: [2, 3]
    http: {{url: "${{pixit.nodes.3rdwws.base_url}}/webrtc"}}
    expect:
      - status: [302, 303]
      - {{header: Location, query: state, present: true, ref: RFC 6749 10.12}}
      - {{header: Location, query: code_challenge_method, equals: S256, ref: RFC 9700 2.1.1}}
    save:
      state: {{header: Location, query: state}}
"""

STEPS = [
    """\
  - name: open the WebSocket {i}
    flow: [13]
    ws_connect: {{name: wsf, url: "${{pixit.nodes.wsf.url}}", subprotocols: [sip]}}
    expect:
""",
    """\
  - name: REGISTER {i}
    flow: [14, 15, 16, 17]
    sip_send: {{over: ws, name: wsf, template: register, bearer: "${{saved.state}}"}}
    timeout_ms: {t}
    expect:
""",
    """\
  - name: token request {i}
    flow: [9, 10]
    http:
      method: POST
      url: ${{pixit.nodes.as.base_url}}/token
      form: {{grant_type: authorization_code, code: "x{i}"}}
      auth: {{basic: ["${{pixit.oauth.client_id}}", "${{pixit.oauth.client_secret}}"]}}
    save:
      access_token: {{json: $.access_token}}
    expect:
""",
    """\
  - sip_expect: {{name: wsf}}
    expect:
""",
]
EXPECTS = [
    "      - {{status: {code}, ref: RFC 3261 10.3}}\n",
    "      - {{header: Via, count: {small}, ref: RFC 3261 16.7}}\n",
    "      - {{header: WWW-Authenticate, param: realm, equals: \"${{pixit.home_domain}}\", ref: RFC 8898 2.2}}\n",
    "      - {{json: $.expires_in, less_than: {big}}}\n",
    "      - {{header: P-Associated-URI, is_default_impu_of: \"${{user.web_id}}\", ref: TS 24.229 5.4.1.2.2}}\n",
    "      - {{header: Contact, param: expires, greater_than: 0}}\n",
    "      - {{header: Service-Route, uri_param: lr, present: true, ref: RFC 3608 5}}\n",
    "      - {{jwt: \"${{saved.state}}\", claim: aud, equals: wsf.operator.example}}\n",
]
CAPTURE = """\
capture:
  settle_ms: 300
  expect:
    - {{flow: 17, from: wsf, to: pcscf, sip: {{method: REGISTER}}}}
    - flow: 18
      from: pcscf
      to: scscf
      sip: {{method: REGISTER}}
      expect:
        - {{header: Require, contains: path, ref: RFC 3327 5}}
"""
PICS = ["signalling.path == 'relay'", "signalling.path == 'direct' and token.wsf_url_member",
        "wsf.verify in ['introspection', 'local_jwt']", "not core.separate_icscf"]


def make_catalog(root: Path, cases: int, seed: int = 7) -> None:
    rnd = random.Random(seed)
    (root / "fragments").mkdir(parents=True)
    for n in range(5):
        (root / "fragments" / f"login_{n}.yaml").write_text(FRAGMENT.format(n=n))
    (root / "wsf").mkdir()
    for i in range(cases):
        text = [f"id: TP_WSF_GEN{i // 1000}_{i % 1000:03d}\n", f"title: generated case {i}\n", "sut: wsf\n",
                f"kind: {rnd.choice(['positive', 'negative'])}\n", "severity: normal\n",
                'refs: ["TR 23.701 step 14", "RFC 8898 2.2"]\n', f'pics: "{rnd.choice(PICS)}"\n',
                "tags: [generated]\n", f"uses:\n  - fragment: login_{i % 5}\n    with: {{account: user{i}}}\n",
                "steps:\n"]
        for s in range(rnd.randint(4, 9)):
            text.append(rnd.choice(STEPS).format(i=s, t=rnd.randint(1000, 9000)))
            for _ in range(rnd.randint(2, 7)):
                text.append(rnd.choice(EXPECTS).format(code=rnd.choice([200, 401, 403]), small=rnd.randint(1, 3),
                                                       big=rnd.randint(100, 900)))
        if i % 3 == 0:
            text.append(CAPTURE.format())
        (root / "wsf" / f"TP_WSF_GEN_{i:03d}.yaml").write_text("".join(text))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", type=int, default=500)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--pure-python", action="store_true", help="do not use jsonschema-rs")
    args = ap.parse_args()
    if args.pure_python:
        schema._fast_check = lambda file: None
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"Python {platform.python_version()} ({platform.python_implementation()})")
    print(f"validator: {schema.backend()}")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "testcases"
        make_catalog(root, args.cases)
        lines = sum(p.read_text().count("\n") for p in root.rglob("*.yaml"))
        times, cpu = [], []
        for _ in range(args.runs):
            started, started_cpu = time.perf_counter(), time.process_time()
            files = discover(root)
            catalog = load_catalog(root)
            times.append(time.perf_counter() - started)
            cpu.append(time.process_time() - started_cpu)
        if catalog.problems:
            print("\n".join(str(p) for p in catalog.problems[:10]))
            return 1
        print(f"{len(files)} test cases ({lines} YAML lines, {len(catalog.testcases)} valid): "
              f"collect + validate median {statistics.median(times):.3f} s over {args.runs} runs "
              f"(min {min(times):.3f}, max {max(times):.3f}; CPU time median {statistics.median(cpu):.3f} s); "
              "goal <= 2 s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
