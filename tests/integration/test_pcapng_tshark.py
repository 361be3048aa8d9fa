"""tshark opens the pcapng written by conformance.capture.pcapng already decrypted: the TLS key log
travels in a Decryption Secrets Block, so SIP inside WebSocket frames inside TLS shows with no
key log option. `editcap --inject-secrets` (Wireshark's own tool) is the reference."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from conformance.capture import analyze_records
from conformance.capture.synth import Capture, registration

ROOT = Path(__file__).resolve().parents[2]
PIXIT = yaml.safe_load((ROOT / "profiles" / "reference.yaml").read_text())["pixit"]

pytestmark = pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark is not installed")

# Non-standard TLS ports of the profile: tell tshark what they carry rather than rely on heuristics.
DECODE_AS = [arg for n in ("3rdwws", "as", "wsf") for arg in ("-d", f"tcp.port=={PIXIT['nodes'][n]['port']},tls")]
FIELDS = ["-T", "fields", "-E", "separator=|", "-e", "ip.src", "-e", "ip.dst", "-e", "sip.Method",
          "-e", "sip.Status-Code", "-e", "websocket.opcode"]


def tshark(*args: str) -> str:
    out = subprocess.run(["tshark", "-n", *args], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return out.stdout


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("tshark")
    cap, keylog = Capture(), tmp / "keys.log"
    registration(cap, keylog)
    pcap = cap.write(tmp / "plain.pcap")
    out = tmp / "capture.pcapng"
    analyze_records(cap.frames_records(), PIXIT, [keylog], pcapng_out=out)
    return out, pcap, keylog


def sip_lines(path: Path, *extra: str) -> list[str]:
    return [line for line in tshark("-r", str(path), *DECODE_AS, *extra, "-Y", "sip", *FIELDS).splitlines() if line]


def test_tshark_shows_sip_inside_websocket_decrypted(written):
    out, _, _ = written
    lines = sip_lines(out)
    assert "127.0.0.11|127.0.0.13|REGISTER||1" in lines  # step 14: in a WebSocket text frame, in TLS 1.3
    assert "127.0.0.13|127.0.0.11||200|1" in lines  # step 21
    assert "127.0.0.13|127.0.0.14|REGISTER||" in lines  # step 17 over UDP
    http = tshark("-r", str(out), *DECODE_AS, "-Y", "http.request", "-T", "fields", "-e", "http.request.uri")
    assert "/introspect" in http.split() and "/token" in http.split()  # TLS 1.2 and TLS 1.3


def test_same_view_as_editcap_inject_secrets(written, tmp_path):
    out, pcap, keylog = written
    if shutil.which("editcap") is None:
        pytest.skip("editcap is not installed")
    ref = tmp_path / "ref.pcapng"
    subprocess.run(["editcap", "--inject-secrets", f"tls,{keylog}", str(pcap), str(ref)], check=True, timeout=60)
    assert sip_lines(out) == sip_lines(ref)
    # without secrets tshark sees no SIP inside the TLS legs: the DSB is what decrypts
    plain = sip_lines(pcap)
    assert not any(line.startswith("127.0.0.11|127.0.0.13|") for line in plain)
