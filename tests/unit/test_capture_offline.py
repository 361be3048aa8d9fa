"""Offline pipeline: pcap/pcapng -> pre-filter -> TCP reassembly -> TLS decryption -> HTTP /
WebSocket / SIP dissection -> one timeline attributed to legs.

The TLS traffic is real (OpenSSL on both ends over memory BIOs, with a genuine NSS key log), the
frames are built into captures in memory, and reassembly is exercised by reordering, duplicating
and dropping them.
"""

from __future__ import annotations

import os
import random
import struct
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from conformance.capture import analyze_file, analyze_records
from conformance.capture.dissect import dissect
from conformance.capture.packets import PacketFilter, Scanner, iter_records, read_records
from conformance.capture.pcapng import embedded_keylogs, write_pcapng
from conformance.capture.synth import (
    Capture,
    TcpFlow,
    TlsPair,
    http_request,
    http_response,
    registration,
    sip_ok,
    sip_register,
    tls_contexts,
    write_pcap,
    ws_text,
    ws_upgrade_request,
    ws_upgrade_response,
)
from conformance.capture.timeline import HttpRequestSeen, NodeMap, WsFrameSeen
from conformance.capture.tls import KeyLog, hkdf_expand_label, prf12
from conformance.codec.websocket import build_frame
from conformance.events import Garbage, HttpExchange, SipReceived, WsHandshake

ROOT = Path(__file__).resolve().parents[2]
PIXIT = yaml.safe_load((ROOT / "profiles" / "reference.yaml").read_text())["pixit"]


def summary(result) -> list[tuple[str | None, str | None, str]]:
    return [(i.src_node, i.dst_node, i.summary()) for i in result.timeline.items]


def sips(result) -> list:
    return [i for i in result.timeline.items if isinstance(i.event, SipReceived)]


@pytest.fixture
def reg(tmp_path):
    cap, keylog = Capture(), tmp_path / "keys.log"
    steps = registration(cap, keylog)
    return cap, keylog, steps


def test_registration_flow_dissected_on_every_leg(reg, tmp_path):
    cap, keylog, _ = reg
    r = analyze_file(cap.write(tmp_path / "reg.pcap"), PIXIT, [keylog])
    assert [s for s in summary(r) if s[2] != "WS text"] == [
        ("3rdwws", "as", "POST /token"), ("as", "3rdwws", "200 OK"), ("3rdwws", "wsf", "WS handshake GET /sip"), ("wsf", "3rdwws", "WS handshake 101"),
        ("3rdwws", "wsf", "REGISTER"), ("wsf", "as", "POST /introspect"), ("as", "wsf", "200 OK"),
        ("wsf", "pcscf", "REGISTER"), ("pcscf", "scscf", "REGISTER"), ("scscf", "pcscf", "200 OK (REGISTER)"),
        ("pcscf", "wsf", "200 OK (REGISTER)"), ("wsf", "3rdwws", "200 OK (REGISTER)")]
    items = r.timeline.items
    hs = [i.event for i in items if isinstance(i.event, WsHandshake)]
    assert hs[0].status is None and hs[1].status == 101 and hs[1].subprotocol == "sip"
    req = next(i.event for i in items if isinstance(i.event, HttpRequestSeen) and i.event.url == "/introspect")
    assert req.header_values("authorization") == ["Basic d3NmOndzZi1zZWNyZXQ="] and req.body.startswith(b"token=")
    resp = next(i.event for i in items if isinstance(i.event, HttpExchange) and i.event.url == "/introspect")
    assert resp.method == "POST" and resp.url == "/introspect" and resp.json()["impi"] == "alice@ims.example.net"
    s = sips(r)
    assert s[0].event.transport == "wss" and s[0].decrypted and s[0].event.message.method == "REGISTER"
    assert s[0].event.message.headers.get("Authorization").startswith("Bearer ")
    assert s[1].event.transport == "udp" and not s[1].decrypted and "auth-done" in s[1].event.raw.decode()
    frames = [i.event for i in items if isinstance(i.event, WsFrameSeen)]
    assert [(f.masked, f.carried) for f in frames] == [(True, "sip"), (False, "sip")]
    cov = r.timeline.coverage
    assert cov[("3rdwws", "wsf")].decrypted_connections == 1 and cov[("as", "wsf")].complete
    assert r.stats["tls_connections"] == 3


@pytest.mark.parametrize("version,ciphers,etm,suite", [
    ("1.3", None, True, "TLS_AES_256_GCM_SHA384"),
    ("1.2", "ECDHE-ECDSA-AES128-GCM-SHA256", True, "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256"),
    ("1.2", "ECDHE-ECDSA-AES256-GCM-SHA384", True, "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384"),
    ("1.2", "ECDHE-ECDSA-CHACHA20-POLY1305", True, "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256"),
    # CBC with encrypt-then-MAC (RFC 7366, OpenSSL's default), and with MAC-then-encrypt
    ("1.2", "ECDHE-ECDSA-AES128-SHA", True, "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA"),
    ("1.2", "ECDHE-ECDSA-AES256-SHA384", False, "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA384"),
])
def test_tls_versions_and_cipher_suites(tmp_path, version, ciphers, etm, suite):
    keylog, cap = tmp_path / "k.log", Capture()
    srv, cli, _ = tls_contexts(keylog, version=version, ciphers=ciphers)
    if not etm:  # SSL_OP_NO_ENCRYPT_THEN_MAC: not exported by the ssl module
        cli.options |= 0x80000
        srv.options |= 0x80000
    flow = TcpFlow(cap, ("127.0.0.13", 40001), ("127.0.0.12", 9443)).open()
    tls = TlsPair(flow, srv, cli).handshake()
    body = b'{"active": true}' + b" " * 40000  # many records
    assert tls.send(True, http_request("POST", "/introspect", b"token=abc")).startswith(b"POST")
    tls.send(False, http_response(200, body, chunked=True))
    tl, d = dissect(Scanner(None).scan(cap.frames_records()), PIXIT, KeyLog([keylog]))
    conn = d.tls[0]
    assert conn.status == "decrypted" and conn.version == (0x0304 if version == "1.3" else 0x0303)
    assert conn.suite.name == suite
    if conn.suite.kind == "cbc":
        assert conn.etm is etm
    assert [i.summary() for i in tl.items] == ["POST /introspect", "200 OK"]
    assert tl.items[1].event.body == body


TLS13_SUITES_SCRIPT = textwrap.dedent("""
    import sys
    from conformance.capture.synth import Capture, TcpFlow, TlsPair, tls_contexts, http_request
    cap = Capture()
    srv, cli, _ = tls_contexts(sys.argv[1])
    tls = TlsPair(TcpFlow(cap, ("127.0.0.1", 40000), ("127.0.0.12", 9443)).open(), srv, cli).handshake()
    tls.send(True, http_request("GET", "/jwks"))
    cap.write(sys.argv[2])
    print(tls.client.cipher()[0])
""")


@pytest.mark.parametrize("suite", ["TLS_AES_128_GCM_SHA256", "TLS_CHACHA20_POLY1305_SHA256",
                                   "TLS_AES_128_CCM_SHA256", "TLS_AES_128_CCM_8_SHA256"])
def test_tls13_suites_selected_through_openssl_config(tmp_path, suite):
    """Python cannot pick TLS 1.3 suites; OpenSSL's configuration file can (in a child process)."""
    conf = tmp_path / "openssl.cnf"
    conf.write_text("openssl_conf = c\n[c]\nssl_conf = s\n[s]\nsystem_default = d\n[d]\n"
                    f"Ciphersuites = {suite}\n")
    env = {**os.environ, "OPENSSL_CONF": str(conf)}
    out = subprocess.run([sys.executable, "-c", TLS13_SUITES_SCRIPT, str(tmp_path / "k.log"), str(tmp_path / "c.pcap")],
                         env=env, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == suite
    r = analyze_file(tmp_path / "c.pcap", PIXIT, [tmp_path / "k.log"])
    assert summary(r) == [("ue", "as", "GET /jwks")]


def test_tls13_hello_retry_request(tmp_path):
    keylog, cap = tmp_path / "k.log", Capture()
    srv, cli, _ = tls_contexts(keylog)
    srv.set_ecdh_curve("secp384r1")  # the client's first key share (X25519) is refused: HRR
    tls = TlsPair(TcpFlow(cap, ("127.0.0.1", 40000), ("127.0.0.12", 9443)).open(), srv, cli).handshake()
    tls.send(True, http_request("GET", "/jwks"))
    tl, d = dissect(Scanner(None).scan(cap.frames_records()), PIXIT, KeyLog([keylog]))
    assert d.tls[0].status == "decrypted" and [i.summary() for i in tl.items] == ["GET /jwks"]


def _record13(secret: bytes, seq: int, content_type: int, data: bytes) -> bytes:
    """One TLS 1.3 record protected with TLS_AES_256_GCM_SHA384 (RFC 8446 5.2)."""
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    key = hkdf_expand_label(secret, "key", b"", 32, "sha384")
    iv = hkdf_expand_label(secret, "iv", b"", 12, "sha384")
    inner = data + bytes([content_type])
    header = bytes([23, 3, 3]) + struct.pack("!H", len(inner) + 16)
    nonce = (int.from_bytes(iv, "big") ^ seq).to_bytes(12, "big")
    return header + AESGCM(key).encrypt(nonce, inner, header)


def test_tls13_key_update(tmp_path):
    """RFC 8446 4.6.3: after a KeyUpdate the sender's records use the next traffic secret. OpenSSL
    through Python cannot be asked to send one, so the client's KeyUpdate and the data after it
    are sealed here with the secrets of the key log."""
    keylog, cap = tmp_path / "k.log", Capture()
    srv, cli, _ = tls_contexts(keylog)
    flow = TcpFlow(cap, ("127.0.0.1", 40000), ("127.0.0.12", 9443)).open()
    tls = TlsPair(flow, srv, cli).handshake()
    tls.send(True, http_request("GET", "/one"))  # client application record 0
    secret0 = next(bytes.fromhex(line.split()[2]) for line in keylog.read_text().splitlines()
                   if line.startswith("CLIENT_TRAFFIC_SECRET_0 "))
    secret1 = hkdf_expand_label(secret0, "traffic upd", b"", 48, "sha384")
    flow.send(True, _record13(secret0, 1, 22, bytes([24, 0, 0, 1, 0])))  # KeyUpdate(update_not_requested)
    flow.send(True, _record13(secret1, 0, 23, http_request("GET", "/two")))
    tl, d = dissect(Scanner(None).scan(cap.frames_records()), PIXIT, KeyLog([keylog]))
    assert d.tls[0].status == "decrypted"
    assert [i.summary() for i in tl.items] == ["GET /one", "GET /two"]


def test_reassembly_out_of_order_retransmitted_and_overlapping(tmp_path):
    keylog, cap = tmp_path / "k.log", Capture()
    steps = registration(cap, keylog, mss=100)  # small segments: records and frames span many
    reference = summary(analyze_records(cap.frames_records(), PIXIT, [keylog]))
    rng = random.Random(4)
    frames = list(cap.frames)
    # reorder data segments inside each step window, and retransmit some (also partially)
    for idxs in steps.values():
        if len(idxs) > 2:
            window = [frames[i] for i in idxs]
            rng.shuffle(window)
            for i, f in zip(idxs, window):
                frames[i] = f
    extra = []
    for ts, frame in frames[::3]:
        if frame[23] != 6:
            continue  # a duplicated UDP datagram is another message, not a retransmission
        extra.append((ts, frame))
        if len(frame) > 14 + 20 + 20 + 10:  # an overlapping partial retransmission too
            extra.append((ts, _trim_tcp_payload(frame, 5)))
    mixed = sorted(frames + extra, key=lambda x: x[0])
    r = analyze_records(_records(mixed), PIXIT, [keylog])
    assert summary(r) == reference
    assert all(c.complete for c in r.timeline.coverage.values())


def _trim_tcp_payload(frame: bytes, keep: int) -> bytes:
    """A copy of a segment carrying only its first `keep` payload bytes (an overlapping retransmission)."""
    ihl = (frame[14] & 0x0F) * 4
    tcp = 14 + ihl
    doff = (frame[tcp + 12] >> 4) * 4
    payload = frame[tcp + doff:tcp + doff + keep]
    total = ihl + doff + len(payload)
    return frame[:16] + struct.pack("!H", total) + frame[18:tcp + doff] + payload


def _records(frames):
    return [(ts, 1, f, 0) for ts, f in frames]


def test_lost_segment_is_a_gap_not_a_guess(tmp_path):
    keylog, cap = tmp_path / "k.log", Capture()
    steps = registration(cap, keylog, mss=60)
    lost = steps[15][1]  # a middle segment of the introspection request
    frames = [f for i, f in enumerate(cap.frames) if i != lost]
    r = analyze_records(_records(frames), PIXIT, [keylog])
    gaps = [i for i in r.timeline.items if isinstance(i.event, Garbage) and i.event.reason.startswith("TCP:")]
    assert gaps and "60 bytes" in gaps[0].event.reason and gaps[0].leg == ("wsf", "as")
    cov = r.timeline.coverage[("as", "wsf")]
    assert not cov.complete and cov.gaps
    assert not any(isinstance(i.event, HttpRequestSeen) and i.event.path == "/introspect" for i in r.timeline.items)


def test_missing_keys_and_missing_handshake_make_legs_undecryptable(reg, tmp_path):
    cap, keylog, steps = reg
    # keep only the TLS 1.3 secrets (3rdWWS-WSF): the WSF-AS connection (TLS 1.2) has no key
    partial = tmp_path / "partial.log"
    partial.write_text("".join(line + "\n" for line in keylog.read_text().splitlines()
                               if not line.startswith("CLIENT_RANDOM ")))
    r = analyze_records(cap.frames_records(), PIXIT, [partial])
    cov = r.timeline.coverage[("as", "wsf")]
    assert cov.tls_connections == 1 and cov.decrypted_connections == 0
    assert "no CLIENT_RANDOM in the key logs" in cov.undecryptable[0]
    assert any(isinstance(i.event, Garbage) and "TLS" in i.event.reason and i.leg == ("wsf", "as")
               for i in r.timeline.items)
    assert r.timeline.coverage[("3rdwws", "wsf")].complete
    # a capture that starts after the handshake
    late = [f for i, f in enumerate(cap.frames) if i >= steps[13][0]]
    r = analyze_records(_records(late), PIXIT, [keylog])
    assert "handshake not captured" in r.timeline.coverage[("3rdwws", "wsf")].undecryptable[0]
    # an unreadable key log is reported, not ignored
    r = analyze_records(cap.frames_records(), PIXIT, [tmp_path / "nope.log"])
    assert any("nope.log" in p for p in r.timeline.problems)


def test_malformed_traffic_is_kept_with_its_reason(tmp_path):
    cap = Capture()
    flow = TcpFlow(cap, ("127.0.0.11", 40000), ("127.0.0.13", 7443)).open()
    flow.send(True, ws_upgrade_request())
    flow.send(False, ws_upgrade_response())
    flow.send(True, build_frame(b"x", 0x3, mask=True))  # unknown opcode
    flow.send(True, build_frame(b"p" * 130, "ping", mask=True))  # control frame too long
    flow.send(True, build_frame("REGISTER", "text"))  # client frame not masked
    flow.send(True, ws_text("not sip at all\r\n\r\n", True))
    flow.send(False, ws_text(sip_ok(), False))
    cap.udp(("127.0.0.13", 5062), ("127.0.0.14", 5060), b"\x00\x01binary junk")
    cap.udp(("127.0.0.13", 5062), ("127.0.0.14", 5060), b"\r\n\r\n")  # keep-alive: not an item
    other = TcpFlow(cap, ("127.0.0.1", 40001), ("127.0.0.12", 9443)).open()
    other.send(True, b"\x01\x02 this is neither TLS nor HTTP\r\n")
    r = analyze_records(cap.frames_records(), PIXIT, [])
    errors = [i.event.error for i in r.timeline.items if isinstance(i.event, WsFrameSeen) and i.event.error]
    assert any("unknown opcode" in e for e in errors) and any("126" not in e and "130 bytes" in e for e in errors)
    assert any("not masked" in e for e in errors)
    garbage = [i.event for i in r.timeline.items if isinstance(i.event, Garbage)]
    reasons = " | ".join(g.reason for g in garbage)
    assert "not a SIP message" in reasons and "unrecognised application protocol" in reasons
    assert any(g.raw == b"\x00\x01binary junk" for g in garbage)
    assert any(i.summary().startswith("200 OK") for i in sips(r))


def test_sip_over_tcp_framing_with_keepalives():
    cap = Capture()
    flow = TcpFlow(cap, ("127.0.0.13", 40000), ("127.0.0.14", 5060), mss=50).open()
    body = b"v=0\r\n"
    invite = sip_register(extra="Content-Type: application/sdp\r\n").replace(b"Content-Length: 0", b"Content-Length: 5")
    flow.send(True, b"\r\n\r\n" + sip_register() + invite + body + b"\r\n\r\n" + sip_register(cseq=3))
    flow.send(False, sip_ok() + b"\r\n")
    r = analyze_records(cap.frames_records(), PIXIT, [])
    s = sips(r)
    assert [(i.src_node, i.event.transport, i.summary()) for i in s] == [
        ("wsf", "tcp", "REGISTER"), ("wsf", "tcp", "REGISTER"), ("wsf", "tcp", "REGISTER"),
        ("pcscf", "tcp", "200 OK (REGISTER)")]
    assert s[1].event.message.body == body
    # RFC 3261 18.3: on a stream, a message without Content-Length is an error, kept as evidence
    cap = Capture()
    TcpFlow(cap, ("127.0.0.13", 40000), ("127.0.0.14", 5060)).open().send(
        True, sip_register().replace(b"Content-Length: 0\r\n", b"") + sip_register(cseq=2))
    items = analyze_records(cap.frames_records(), PIXIT, []).timeline.items
    assert isinstance(items[0].event, Garbage) and "no Content-Length" in items[0].event.reason
    assert isinstance(items[1].event, SipReceived) and "CSeq: 2" in items[1].event.raw.decode()


def test_plain_http_pairs_responses_and_port_reuse_starts_a_new_connection():
    cap = Capture()
    for n in range(2):  # the same 4-tuple twice
        flow = TcpFlow(cap, ("127.0.0.1", 40000), ("127.0.0.12", 9443), isn=(1000 + n * 7777, 9000)).open()
        flow.send(True, http_request("HEAD", "/a") + http_request("GET", f"/b{n}"))
        flow.send(False, http_response(200, b"", headers={"Content-Length": "9"}).replace(
            b"Content-Length: 0\r\n", b"") + http_response(404, b"nope", reason="Not Found"))
        flow.close()
    r = analyze_records(cap.frames_records(), PIXIT, [])
    got = [(type(i.event).__name__, i.summary(), getattr(i.event, "url", "")) for i in r.timeline.items]
    assert got == [("HttpRequestSeen", "HEAD /a", "/a"), ("HttpRequestSeen", "GET /b0", "/b0"),
                   ("HttpExchange", "200 OK", "/a"), ("HttpExchange", "404 Not Found", "/b0"),
                   ("HttpRequestSeen", "HEAD /a", "/a"), ("HttpRequestSeen", "GET /b1", "/b1"),
                   ("HttpExchange", "200 OK", "/a"), ("HttpExchange", "404 Not Found", "/b1")]
    assert len({i.stream for i in r.timeline.items}) == 2


def test_capture_formats_and_link_types_written_by_scapy(tmp_path):
    """Scapy-written pcap/pcapng, 802.1Q, Linux cooked, raw IP, IPv4 fragments: same timeline."""
    from scapy.layers.inet import IP, UDP, fragment
    from scapy.layers.l2 import CookedLinux, Dot1Q, Ether
    from scapy.utils import PcapNgWriter, wrpcap

    reg_ = sip_register(extra="X-Pad: " + "p" * 3000 + "\r\n")
    pkt = IP(src="127.0.0.13", dst="127.0.0.14") / UDP(sport=5062, dport=5060) / reg_
    frags = fragment(pkt, fragsize=1000)
    assert len(frags) > 2
    base = 1_700_000_000.0
    variants = {
        "ether.pcap": [Ether() / f for f in frags],
        "vlan.pcap": [Ether() / Dot1Q(vlan=7) / f for f in frags],
        "sll.pcap": [CookedLinux(proto=0x0800) / f for f in frags],
        "raw.pcap": list(frags),
    }
    for name, pkts in variants.items():
        for i, p in enumerate(pkts):
            p.time = base + i / 1000
        wrpcap(str(tmp_path / name), list(reversed(pkts)))  # fragments in reverse order
    ng = [Ether() / f for f in frags]
    for i, p in enumerate(ng):
        p.time = base + i / 1000
    w = PcapNgWriter(str(tmp_path / "ng.pcapng"))
    for p in ng:
        w.write(p)
    w.close()
    for name in list(variants) + ["ng.pcapng"]:
        r = analyze_file(tmp_path / name, PIXIT, [])
        s = sips(r)
        assert len(s) == 1 and s[0].event.raw == reg_ and s[0].leg == ("wsf", "pcscf"), name


def test_prefilter_keeps_only_the_profile_legs():
    nodes = NodeMap(PIXIT)
    flt = PacketFilter(nodes.endpoints, nodes.addresses)
    cap = Capture()
    cap.udp(("127.0.0.13", 5062), ("127.0.0.14", 5060), sip_register())  # kept: to the P-CSCF port
    cap.udp(("127.0.0.13", 5062), ("127.0.0.14", 5999), sip_register())  # other port of a node
    cap.udp(("127.0.0.99", 5062), ("127.0.0.14", 5060), sip_register())  # unknown address
    cap.udp(("10.1.1.1", 1), ("10.1.1.2", 2), b"x")
    scanner = Scanner(flt)
    kept = list(scanner.scan(cap.frames_records()))
    assert [(p.src, p.dport) for p in kept] == [("127.0.0.13", 5060)]
    assert scanner.stats.packets == 4 and scanner.stats.relevant == 1


def test_pcapng_with_decryption_secrets_block_round_trip(reg, tmp_path):
    cap, keylog, _ = reg
    out = tmp_path / "out.pcapng"
    first = analyze_records(cap.frames_records(), PIXIT, [keylog], pcapng_out=out)
    data = out.read_bytes()
    secrets = embedded_keylogs(data)
    assert "CLIENT_HANDSHAKE_TRAFFIC_SECRET" in secrets and "CLIENT_RANDOM" in secrets  # TLS 1.3 and 1.2
    assert len(list(iter_records(data))) == len(cap.frames)
    again = analyze_file(out, PIXIT, [])  # no key log given: the DSB is enough
    assert summary(again) == summary(first)
    # an empty capture still makes a file tshark can open
    empty = write_pcapng(tmp_path / "empty.pcapng", [], "")
    assert list(read_records(empty)) == []


def test_key_derivation_known_answers():
    # RFC 8448 3 (simple 1-RTT): server handshake traffic secret -> key / iv
    secret = bytes.fromhex("b67b7d690cc16c4e75e54213cb2d37b4e9c912bcded9105d42befd59d391ad38")
    assert hkdf_expand_label(secret, "key", b"", 16, "sha256").hex() == "3fce516009c21727d0f2e4e86ee403bc"
    assert hkdf_expand_label(secret, "iv", b"", 12, "sha256").hex() == "5d313eb2671276ee13000b30"
    # TLS 1.2 PRF (SHA-256) test vector published by the IETF TLS WG mailing list
    out = prf12(bytes.fromhex("9bbe436ba940f017b17652849a71db35"), b"test label",
                bytes.fromhex("a0ba9f936cda311827a6f796ffd5198c"), 100, "sha256")
    assert out[:16].hex() == "e3f229ba727be17b8d122620557cd453"


def test_window_and_packets_recorded_for_absence_checks(reg):
    cap, keylog, steps = reg
    r = analyze_records(cap.frames_records(), PIXIT, [keylog])
    tl = r.timeline
    assert tl.t_start == cap.frames[0][0] and tl.t_end == cap.frames[-1][0]
    to_pcscf = [p for p in tl.packets if p[2] == "pcscf"]
    assert len(to_pcscf) == 2 and to_pcscf[0][0] == cap.frames[steps[17][0]][0]


def test_write_pcap_helper_is_readable(tmp_path):
    p = write_pcap(tmp_path / "x.pcap", [(1.5, b"\x00" * 14)])
    assert list(read_records(p)) == [(1.5, 1, b"\x00" * 14, 0)]


@settings(max_examples=60, deadline=None)
@given(st.binary(min_size=1, max_size=3000), st.integers(1, 200), st.randoms(use_true_random=False),
       st.integers(0, 2**32 - 1))
def test_reassembly_property_any_order_any_duplicates(data, mss, rnd, isn):
    """Whatever the segmentation, order and duplication (and a sequence-number wrap), the byte
    stream comes out exactly once, in order."""
    from conformance.capture.packets import ACK, SYN, TCP, IpPacket
    from conformance.capture.reassembly import TcpReassembler

    got = bytearray()

    class Sink:
        def data(self, from_client, chunk, ts):
            got.extend(chunk)

        def gap(self, *a):
            raise AssertionError("no gap expected")

        def eof(self, *a):
            pass

        def close(self, ts):
            pass

    def seg(seq, payload, flags=ACK):
        return IpPacket(0.0, 0, 1, b"", 0, TCP, "127.0.0.1", 40000, "127.0.0.13", 7443, payload, seq & 0xFFFFFFFF, 0, flags)

    segs = [seg(isn + 1 + i, data[i:i + mss]) for i in range(0, len(data), mss)]
    segs += [rnd.choice(segs) for _ in range(len(segs) // 2)]  # retransmissions
    rnd.shuffle(segs)
    r = TcpReassembler(lambda conn: Sink())
    r.packet(seg(isn, b"", SYN))
    for s in segs:
        r.packet(s)
    r.finish()
    assert bytes(got) == data


@settings(max_examples=80, deadline=None)
@given(st.lists(st.binary(max_size=400), min_size=1, max_size=6), st.sampled_from([7443, 9443, 5060]))
def test_dissector_never_raises_on_arbitrary_bytes(chunks, port):
    cap = Capture()
    flow = TcpFlow(cap, ("127.0.0.1", 40000), ("127.0.0.13" if port == 7443 else "127.0.0.12", port)).open()
    for i, chunk in enumerate(chunks):
        flow.send(i % 2 == 0, chunk)
    cap.udp(("127.0.0.13", 5062), ("127.0.0.14", 5060), b"".join(chunks)[:1000] or b"x")
    flow.close()
    r = analyze_records(cap.frames_records(), PIXIT, [])
    for item in r.timeline.items:
        assert item.summary()


def test_hkdf_expand_matches_cryptography():
    """The key schedule's one-shot HMAC HKDF-Expand (RFC 5869 2.3) gives the library's output."""
    import os

    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.kdf.hkdf import HKDFExpand

    from conformance.capture.tls import hkdf_expand

    for name, algo in (("sha256", hashes.SHA256), ("sha384", hashes.SHA384)):
        for length in (12, 16, 32, 48, 100):
            prk, info = os.urandom(48), os.urandom(20)
            assert hkdf_expand(prk, info, length, name) == HKDFExpand(algo(), length, info).derive(prk)
