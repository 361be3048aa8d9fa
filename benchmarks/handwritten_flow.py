"""The baseline of bench_harness_flow.py: the exchanges of testcases/flow/TP_FLOW_REG_001.yaml
(relay mode, BINDING.md steps 1-22) written by hand with requests and websocket-client, no
harness code, checking only status codes.

One run = provision a fresh user (POST /admin/users on the AS, as conformance/run/identities.py
does for every harness run), then as a new browser: POST /login, GET /webrtc, GET the AS
authorize URL, POST the authorize form (hidden `transaction` field found with a regex), GET the
callback, GET /webrtc/app, WSS to the 3rdWWS /sip (session cookie, subprotocol `sip`),
REGISTER, read the 200 OK (1xx skipped).

    .venv/bin/python benchmarks/handwritten_flow.py PROFILE.yaml [--runs 3]

PROFILE.yaml is a harness profile (tests/integration/profiles.py writes one for a running
reference network); only its PIXIT addresses, CA bundle and provisioning token are read.
"""

from __future__ import annotations

import argparse
import re
import secrets
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import requests
import websocket  # websocket-client
import yaml

TIMEOUT_S = 5.0  # every HTTP request, the WebSocket handshake and the wait for the 200 OK
TRANSACTION = re.compile(r'name="transaction"\s+value="([^"]+)"')


@dataclass(frozen=True)
class Target:
    tp_base: str  # https://<3rdWWS>
    ws_url: str  # wss://<3rdWWS>/sip
    ca_file: str
    provisioning_url: str  # https://<AS>/admin/users
    admin_token: str
    home_domain: str = "ims.example.net"


def target_from_pixit(pixit: dict, base_dir: Path = Path(".")) -> Target:
    ca = Path(pixit["tls"]["ca_bundle"])
    prov = pixit["users"]["provisioning"]
    tp = pixit["nodes"]["3rdwws"]
    return Target(tp_base=tp["base_url"], ws_url=tp["ws_url"], ca_file=str(ca if ca.is_absolute() else base_dir / ca),
                  provisioning_url=prov["url"], admin_token=prov.get("token", ""),
                  home_domain=pixit.get("home_domain", "ims.example.net"))


def _session(t: Target) -> requests.Session:
    s = requests.Session()
    s.trust_env = False  # REQUESTS_CA_BUNDLE would override verify
    s.verify = t.ca_file
    return s


def provision(t: Target) -> dict:
    """A fresh identity, the same fields and request as the harness's IdentityProvider."""
    local = f"tp-flow-reg-001-{secrets.token_hex(4)}"
    user = {"web_id": f"{local}@web.operator.example", "password": secrets.token_urlsafe(12),
            "impi": f"{local}@{t.home_domain}",
            "impus": [f"sip:{local}@{t.home_domain}", f"tel:+1555{secrets.randbelow(10**7):07d}"],
            "tp_username": f"tp-{local}", "tp_password": secrets.token_urlsafe(12)}
    with _session(t) as s:
        r = s.post(t.provisioning_url, json=user, timeout=TIMEOUT_S,
                   headers={"Authorization": f"Bearer {t.admin_token}"})
    assert r.status_code in (200, 201), (r.status_code, r.text[:200])
    return user


def _expect(r: requests.Response, *codes: int) -> requests.Response:
    assert r.status_code in codes, f"{r.request.method} {r.url}: {r.status_code}, wanted {codes}"
    return r


def _location(r: requests.Response) -> str:
    return urljoin(r.url, r.headers["Location"])


def register_message(t: Target, web_id: str) -> str:
    """BINDING.md step 12 REGISTER (fixtures/sip/register.sip): no credentials, AOR = Web ID."""
    host = f"{secrets.token_hex(6)}.invalid"
    aor = f"sip:{web_id}"
    return (f"REGISTER sip:{t.home_domain} SIP/2.0\r\n"
            f"Via: SIP/2.0/WSS {host};branch=z9hG4bK{secrets.token_hex(8)}\r\n"
            "Max-Forwards: 70\r\n"
            f"To: <{aor}>\r\n"
            f"From: <{aor}>;tag={secrets.token_hex(6)}\r\n"
            f"Call-ID: {secrets.token_hex(12)}\r\n"
            "CSeq: 1 REGISTER\r\n"
            f'Contact: <sip:{secrets.token_hex(4)}@{host};transport=ws>;+sip.instance="<urn:uuid:{uuid.uuid4()}>"'
            ";reg-id=1;expires=600\r\n"
            "Supported: path, outbound\r\n"
            "Content-Length: 0\r\n\r\n")


def flow(t: Target, user: dict) -> None:
    """Steps 1-22 as a new browser; AssertionError names the first unexpected status."""
    with _session(t) as s:
        _expect(s.post(f"{t.tp_base}/login", data={"username": user["tp_username"], "password": user["tp_password"]},
                       allow_redirects=False, timeout=TIMEOUT_S), 303)  # 1
        r = _expect(s.get(f"{t.tp_base}/webrtc", allow_redirects=False, timeout=TIMEOUT_S), 302, 303)  # 2-3
        r = _expect(s.get(_location(r), allow_redirects=False, timeout=TIMEOUT_S), 200)  # 4-5
        m = TRANSACTION.search(r.text)
        assert m, "no hidden transaction field in the authorization page"
        r = _expect(s.post(urljoin(r.url, "/authorize"), allow_redirects=False, timeout=TIMEOUT_S,
                           data={"transaction": m.group(1), "web_id": user["web_id"],
                                 "password": user["password"], "consent": "approve"}), 302, 303)  # 6-7
        r = _expect(s.get(_location(r), allow_redirects=False, timeout=TIMEOUT_S), 302, 303)  # 8-11
        _expect(s.get(_location(r), allow_redirects=False, timeout=TIMEOUT_S), 200)  # 11
        cookies = s.cookies.get_dict(domain=urlsplit(t.tp_base).hostname)
    ws = websocket.create_connection(  # 12 (the 3rdWWS does 13-21)
        t.ws_url, subprotocols=["sip"], timeout=TIMEOUT_S, sslopt={"ca_certs": t.ca_file},
        cookie="; ".join(f"{k}={v}" for k, v in cookies.items()))
    try:
        assert ws.getstatus() == 101 and ws.getsubprotocol() == "sip", (ws.getstatus(), ws.getsubprotocol())
        ws.send(register_message(t, user["web_id"]))
        deadline = time.monotonic() + TIMEOUT_S
        while True:  # 22; skip provisional responses like the harness does
            ws.settimeout(max(0.001, deadline - time.monotonic()))
            status = ws.recv().split(" ", 2)[1]
            if not status.startswith("1"):
                break
        assert status == "200", f"REGISTER answered {status}"
    finally:
        ws.close()


def run_once(t: Target) -> tuple[float, float]:
    """(provisioning seconds, flow seconds) of one run."""
    t0 = time.perf_counter()
    user = provision(t)
    t1 = time.perf_counter()
    flow(t, user)
    return t1 - t0, time.perf_counter() - t1


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("profile", type=Path)
    p.add_argument("--runs", type=int, default=3)
    a = p.parse_args()
    t = target_from_pixit(yaml.safe_load(a.profile.read_text())["pixit"], a.profile.parent)
    for i in range(a.runs):
        prov, fl = run_once(t)
        print(f"run {i + 1}: provisioning {prov * 1000:.1f} ms, flow {fl * 1000:.1f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
