"""Rules of a node tested alone (docs/peers.md): which lifecycle cases are not applicable while
the harness plays a node; the emulated peers' key log is not required before they start; the emulated
P-CSCF proxies to a supplied S-CSCF (a fake S-CSCF on a free port of 127.0.0.1)."""

from __future__ import annotations

import asyncio
import copy
import socket
from pathlib import Path
from types import SimpleNamespace

from conformance.codec import sip
from conformance.model.profile import load_profile
from conformance.model.profile_files import check_files
from conformance.model.testcase import load_testcase
from conformance.peers.base import Users
from conformance.peers.cscf import EmulatedCscf
from conformance.peers.script import Board
from tests.unit.free_ports import free_tcp_and_udp_port

ROOT = Path(__file__).resolve().parents[2]
REFERENCE = load_profile(ROOT / "profiles" / "reference.yaml")


def _nodes(**supplied):
    nodes = copy.deepcopy(dict(REFERENCE.pixit["nodes"]))
    for name, value in supplied.items():
        nodes[name]["supplied"] = value
    return {**REFERENCE.pixit, "nodes": nodes}


def _case(path: str):
    return load_testcase(ROOT / "testcases" / path, ROOT / "testcases" / "fragments")


def test_an_scscf_lifecycle_case_runs_with_the_other_nodes_played():
    tc = _case("lifecycle/TP_SCSCF_EXP_001.yaml")
    assert tc.unsupplied(_nodes()) == ""
    assert tc.unsupplied(_nodes(pcscf=False, wsf=False)) == ""  # the emulated WSF and P-CSCF route it
    core = _case("scscf/TP_SCSCF_REG_001.yaml")
    assert core.unsupplied(_nodes(pcscf=False, wsf=False)) == ""  # not a lifecycle case: it runs alone


def test_a_network_deregistration_case_needs_the_as_trigger_and_the_core_on_one_side():
    tc = _case("lifecycle/TP_SCSCF_NETDEREG_001.yaml")
    assert tc.unsupplied(_nodes(pcscf=False, wsf=False)) == ""
    reason = tc.unsupplied(_nodes(pcscf=False, wsf=False, **{"as": False}))  # a real S-CSCF, an emulated AS
    assert "deregister_url" in reason and "emulated AS" in reason


def test_wsf_and_3rdwws_lifecycle_cases_run_with_the_others_played():
    assert _case("lifecycle/TP_WSF_RER_001.yaml").unsupplied(_nodes(pcscf=False, scscf=False)) == ""
    assert _case("lifecycle/TP_WSF_REGEV_002.yaml").unsupplied(
        _nodes(pcscf=False, scscf=False, **{"as": False, "3rdwws": False})) == ""
    assert _case("lifecycle/TP_3RDWWS_ORG_001.yaml").unsupplied(_nodes(wsf=False, pcscf=False, scscf=False)) == ""


def test_a_lifecycle_case_of_a_node_the_peers_do_not_serve_stays_not_applicable():
    tc = _case("lifecycle/TP_WSF_RER_001.yaml")
    tc.sut = "pcscf"  # no P-CSCF lifecycle case exists; the rule keeps its reason for one
    reason = tc.unsupplied(_nodes(scscf=False))
    assert "lifecycle" in reason and "scscf" in reason


def test_the_peers_key_log_is_not_required_before_the_peers_start(tmp_path):
    alone = load_profile(ROOT / "profiles" / "pcscf-only.yaml")
    keylog = str(tmp_path / "not-yet" / "peers.keylog")
    alone.pixit["sut_keylogs"] = [keylog]
    assert check_files(alone) == []
    every_node = load_profile(ROOT / "profiles" / "reference.yaml")
    every_node.pixit["sut_keylogs"] = [keylog]  # nobody plays a peer: nobody will write it
    assert [p for p in check_files(every_node) if "not-yet" in p.message]


def _free_udp() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_the_emulated_pcscf_forwards_to_a_supplied_scscf_and_relays_the_answer():
    scscf_port, pcscf_port = _free_udp(), free_tcp_and_udp_port()
    pixit = {"home_domain": "ims.example.net", "visited_network_id": "visited.example.net",
             "nodes": {"scscf": {"address": "127.0.0.1", "port": scscf_port}}}
    peers = SimpleNamespace(users=Users({}), board=Board(),
                            profile=SimpleNamespace(pixit=pixit, pics={"core.transport": "udp"}))
    pcscf = EmulatedCscf(peers, "pcscf", {"address": "127.0.0.1", "port": pcscf_port,
                                          "sip_uri": "sip:pcscf.ims.example.net"}, whole_core=False)
    seen: list[sip.Request] = []

    class FakeScscf(asyncio.DatagramProtocol):
        def connection_made(self, transport):
            self.transport = transport

        def datagram_received(self, data, addr):
            req = sip.parse(data)
            seen.append((req, addr))
            self.transport.sendto(sip.make_response(req, 200, to_tag="s1").serialize(), addr)

    register = sip.parse(
        b"REGISTER sip:ims.example.net SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.13:5060;branch=z9hG4bKw1\r\n"
        b"Max-Forwards: 69\r\nTo: <sip:a@ims.example.net>\r\nFrom: <sip:a@ims.example.net>;tag=1\r\n"
        b"Call-ID: c1\r\nCSeq: 1 REGISTER\r\nPath: <sip:f@wsf.operator.example;lr;ob>\r\nContent-Length: 0\r\n\r\n")

    async def go():
        loop = asyncio.get_running_loop()
        fake, _ = await loop.create_datagram_endpoint(FakeScscf, local_addr=("127.0.0.1", scscf_port))
        await pcscf.start()
        try:
            return await asyncio.wait_for(pcscf.proxy(register), 5)
        finally:
            await pcscf.stop()
            fake.close()

    answer = asyncio.run(go())
    forwarded, came_from = seen[0]
    assert came_from == ("127.0.0.1", pcscf_port)  # from the P-CSCF's own address, the trusted one
    assert forwarded.headers.get_all("Path") == ["<sip:term@pcscf.ims.example.net;lr>",
                                                 "<sip:f@wsf.operator.example;lr;ob>"]
    assert forwarded.headers.get("Require") == "path" and forwarded.headers.get("Max-Forwards") == "68"
    assert forwarded.headers.get("P-Visited-Network-ID") == '"visited.example.net"'
    assert forwarded.headers.get("P-Charging-Vector").startswith("icid-value=")
    assert len(forwarded.headers.get_all("Via")) == 2
    assert answer.status == 200
    assert answer.headers.get_all("Via") == ["SIP/2.0/UDP 127.0.0.13:5060;branch=z9hG4bKw1"]


def test_every_node_has_a_profile_that_supplies_it_alone():
    """profiles/<node>-only.yaml: loads, supplies exactly its node, and the emulated peers'
    certificates come from the CA of that node's reference network state directory."""
    for node in ("3rdwws", "as", "wsf", "pcscf", "scscf"):
        profile = load_profile(ROOT / "profiles" / f"{node}-only.yaml")
        supplied = {n for n, spec in profile.pixit["nodes"].items() if spec.get("supplied", True)}
        assert supplied == {node}, (node, supplied)
        state = profile.reference_network["state_dir"]
        assert profile.raw["peers"]["tls"]["ca_cert"] == f"{state}/pki/ca.pem"
        assert profile.pixit["tls"]["ca_bundle"] == f"{state}/pki/ca.pem"
