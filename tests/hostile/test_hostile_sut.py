"""A hostile or broken SUT cannot hang the harness, exhaust its memory, or earn a pass.

Every node of the profile points at one small hostile server (tests/hostile/servers.py), and the
catalog's test cases that talk to that protocol first run against it with a short step timeout.
For every case: it ends within (steps run x step timeout) plus a margin, measured on the
monotonic clock (a correctness bound, not a performance claim); peak memory stays bounded; the
verdict follows format.md "Verdicts" (silence or nothing listening: inconclusive; anything else
the SUT did wrong: fail, with the bytes or the reason in the evidence); never pass, never error.
"""

from __future__ import annotations

import resource
import socket
import time
from pathlib import Path

import pytest
import trustme
import yaml

from conformance.model.catalog import load_catalog
from conformance.model.profile import load_profile
from conformance.run.engine import Engine
from conformance.run.reporter import NullReporter
from conformance.verdicts import Verdict
from refnet.config import SEED_USERS
from tests.hostile import servers as hs

REPO = Path(__file__).resolve().parents[2]
STEP_MS = 1000  # long enough that a loaded CI machine still schedules a server that answers at once
MARGIN_S = 1.5  # thread start-up and teardown on a busy 2-core machine
MEMORY_LIMIT_MB = 500

# The catalog's cases whose first exchange is with the node the hostile server stands for.
HTTP_CASES = ["TP_AS_META_001", "TP_AS_TOKEN_001", "TP_AS_AUTHZ_001", "TP_3RDWWS_LOGIN_001", "TP_AS_INTRO_001"]
WS_CASES = ["TP_WSF_WS_001", "TP_WSF_WS_002", "TP_WSF_WS_004", "TP_WSF_WS_003", "TP_WSF_SIP_005", "TP_WSF_TOK_001",
            "TP_WSF_WS_005"]
UDP_CASES = ["TP_PCSCF_SIP_001", "TP_PCSCF_SIP_007", "TP_PCSCF_REG_001", "TP_SCSCF_REG_001"]
TCP_CASES = ["TP_PCSCF_REG_002", "TP_PCSCF_SIP_006"]

F, INC = Verdict.FAIL, Verdict.INCONCLUSIVE

# (protocol, mode): behaviour, verdict required, text the evidence of every failed case must carry
# (bytes or reason); a tuple: the first must show in at least one case of the mode (the
# hostility itself), any of them in every failed case (a case may fail earlier, e.g. on the 101
# a negative case forbids)
MODES = {
    ("http", "silent"): (hs.http_silent, INC, "no answer"),
    ("http", "drip"): (hs.http_drip, F, "HTTP/1"),
    ("http", "garbage"): (hs.http_garbage, F, "GARBAGE"),
    ("http", "truncated"): (hs.http_truncated, F, "issuer"),
    ("http", "huge"): (hs.http_huge, F, "10485760"),
    ("http", "untrusted"): (hs.http_ok, F, "certificate verify failed"),
    ("http", "nothing"): (None, INC, "unreachable"),
    ("ws", "silent"): (hs.http_silent, INC, "no handshake answer"),
    ("ws", "drip"): (hs.ws_drip, F, "HTTP/1"),
    ("ws", "garbage"): (hs.http_garbage, F, "GARBAGE"),
    ("ws", "wrong-accept"): (hs.ws_wrong_accept, F, "RFC 6455 4.1"),
    ("ws", "endless-fragments"): (hs.ws_endless_fragments, F, ("xxxx", "101")),
    ("ws", "ping-flood"): (hs.ws_ping_flood, None, ("silent", "101")),
    ("ws", "huge"): (hs.ws_huge, F, ("1048576", "101")),
    ("ws", "untrusted"): (hs.ws_upgrade_ok, F, "certificate verify failed"),
    ("ws", "nothing"): (None, INC, "unreachable"),
    ("udp", "silent"): (hs.sip_udp_silent, INC, "silent"),
    ("udp", "garbage"): (hs.sip_udp_garbage, F, "GARBAGE"),
    ("udp", "truncated"): (hs.sip_udp_truncated, F, "483 Too Many Hops"),
    ("udp", "huge"): (hs.sip_udp_huge, F, "Content-Length 10485760"),
    ("udp", "nothing"): (None, INC, "silent"),
    ("tcp", "silent"): (hs.http_silent, INC, "silent"),
    ("tcp", "drip"): (hs.sip_tcp_drip, F, "SIP/2"),
    ("tcp", "garbage"): (hs.sip_tcp_garbage, F, "GARBAGE"),
    ("tcp", "truncated"): (hs.sip_tcp_truncated, F, "483 Too Many Hops"),
    ("tcp", "huge"): (hs.sip_tcp_huge, F, "10485760"),
    ("tcp", "nothing"): (None, INC, "unreachable"),
}
CASES = {"http": HTTP_CASES, "ws": WS_CASES, "udp": UDP_CASES, "tcp": TCP_CASES}


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    d = tmp_path_factory.mktemp("pki")
    trusted, other = trustme.CA(), trustme.CA()
    trusted.cert_pem.write_to_path(str(d / "ca.pem"))
    contexts = {}
    for name, ca in (("trusted", trusted), ("untrusted", other)):
        ctx = __import__("ssl").SSLContext(__import__("ssl").PROTOCOL_TLS_SERVER)
        ca.issue_cert("127.0.0.1", "localhost").configure_cert(ctx)
        contexts[name] = ctx
    return d / "ca.pem", contexts


@pytest.fixture(scope="module")
def catalog():
    cases, problems = load_catalog(REPO / "testcases")
    assert not problems
    return {tc.id: tc for tc in cases}


def _profile(tmp: Path, ca: Path, host: str, port: int, transport: str) -> Path:
    fixtures = {name: {k: u[k] for k in ("web_id", "password", "impi", "impus", "tp_username", "tp_password")}
                for name, u in zip(("alice", "bob"), SEED_USERS)}
    base = f"https://{host}:{port}"
    doc = {
        "profile": "hostile", "sut": {"name": "hostile server", "vendor": "tests", "version": "0"},
        "pixit": {
            "home_domain": "ims.example.net", "visited_network_id": "visited.example.net",
            "ue": {"address": "127.0.0.1"},
            "nodes": {
                "3rdwws": {"supplied": True, "address": host, "port": port, "base_url": base,
                           "ws_url": f"wss://{host}:{port}/sip"},
                "as": {"supplied": True, "address": host, "port": port, "base_url": base,
                       "issuer": base, "jwks_uri": f"{base}/jwks"},
                "wsf": {"supplied": True, "address": host, "port": port, "url": f"wss://{host}:{port}/sip"},
                "pcscf": {"supplied": True, "address": host, "port": port},
                "scscf": {"supplied": True, "address": host, "port": port},
            },
            "oauth": {"client_id": "tp", "client_secret": "s3cret-of-the-client", "redirect_uri": f"{base}/cb",
                      "scope": "openid ims", "audience": "wsf", "introspection_client_id": "wsf",
                      "introspection_client_secret": "s3cret-of-the-wsf"},
            "tls": {"ca_bundle": str(ca)},
            "capture": {"enabled": False},
            # the hostile server keeps no registrations: no reset preamble to judge it by
            "users": {"fixtures": fixtures, "reset_registrations": False},
            "timeouts": {"step_ms": STEP_MS, "connect_ms": STEP_MS},
        },
        "pics": {"signalling.path": "relay", "token.format": "jwt", "token.wsf_url_member": True,
                 "sip.bearer_syntax": "rfc8898", "sip.client_aor": "web_id", "wsf.verify": "introspection",
                 "core.transport": transport, "core.separate_icscf": False,
                 "wsf.reregister_token": "every", "wsf.on_ws_close": "deregister", "wsf.origin_missing": "accept"},
    }
    path = tmp / "hostile.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def _start(protocol: str, mode: str, behaviour, contexts):
    if behaviour is None:
        kind = socket.SOCK_DGRAM if protocol == "udp" else socket.SOCK_STREAM
        return None, hs.nothing_listening(kind)
    if protocol == "udp":
        server = hs.UdpServer(behaviour)
    else:
        tls = None if protocol == "tcp" else contexts["untrusted" if mode == "untrusted" else "trusted"]
        server = hs.TcpServer(behaviour, tls=tls)
    return server, server.address


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: kB


@pytest.mark.parametrize("protocol,mode", list(MODES), ids=[f"{p}-{m}" for p, m in MODES])
def test_hostile_sut(protocol, mode, pki, catalog, tmp_path):
    behaviour, wanted, evidence = MODES[(protocol, mode)]
    ca, contexts = pki
    server, (host, port) = _start(protocol, mode, behaviour, contexts)
    alternatives = evidence if isinstance(evidence, tuple) else (evidence,) if evidence else ()
    shown = []
    try:
        profile = load_profile(_profile(tmp_path, ca, host, port, "tcp" if protocol == "tcp" else "udp"))
        for case_id in CASES[protocol]:
            tc = catalog[case_id]
            if not tc.applicable(profile.pics, profile.pixit):
                continue
            reporter = NullReporter()
            engine = Engine(profile, reporter=reporter, workdir=tmp_path / "work")
            started = time.monotonic()
            result = engine.run(tc)
            elapsed = time.monotonic() - started
            steps_run = max(1, len(result.steps))
            where = f"{case_id} against {protocol} {mode}: {result.summary()}"
            # ends within its deadlines: every step run, each bounded by the step timeout
            assert elapsed <= steps_run * STEP_MS / 1000.0 + MARGIN_S, f"{elapsed:.2f} s; {where}"
            # never an error for what the SUT did, never a pass where it misbehaved
            assert result.verdict != Verdict.ERROR, where
            if _plain_ws_refusal(case_id, mode):
                continue
            assert result.verdict not in (Verdict.PASS, Verdict.WARN), where
            if wanted is not None:
                assert result.verdict == wanted, where
            text = result.summary() + "\n" + "\n".join(_attached(reporter))
            if alternatives and result.verdict == F:
                assert any(e in text for e in alternatives), f"evidence {evidence!r} missing; {where}"
            shown.append(text)
            assert _peak_rss_mb() < MEMORY_LIMIT_MB, f"peak memory {_peak_rss_mb():.0f} MB; {where}"
        if alternatives:
            assert any(alternatives[0] in text for text in shown), f"no case shows {alternatives[0]!r}"
    finally:
        if server is not None:
            server.stop()


def _plain_ws_refusal(case_id: str, mode: str) -> bool:
    """TP_WSF_WS_003 sends a plain ws:// handshake to the TLS endpoint: a server that answers it
    with bytes that are not a 101 (garbage, a TLS alert, a close) is doing what the case requires,
    so only silence and nothing listening are judged there (both inconclusive)."""
    return case_id == "TP_WSF_WS_003" and mode not in ("silent", "nothing")


def _attached(reporter: NullReporter) -> list[str]:
    out = []
    for name, value in reporter.attachments:
        if isinstance(value, bytes | bytearray):
            out.append(f"{name}: {bytes(value[:4096])!r}")
        else:
            out.append(f"{name}: {str(value)[:4096]}")
    return out
