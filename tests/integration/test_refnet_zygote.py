"""A network whose nodes are forked from a zygote (refnet/zygote.py, launcher fork_server=True):
the nodes serve, a restarted node is forked again, a node that dies is seen as exited, a node
that cannot start is reported with its log, and stopping the network leaves no process."""

from __future__ import annotations

import os
import signal
import socket
import time

import pytest
import requests
from processes import node_processes  # tests/integration/processes.py

from refnet.config import NetworkConfig, Options
from refnet.launcher import ForkedNode, NodeFailed, free_endpoints, start


def _network(tmp_path, nodes=("as", "pcscf")):
    cfg = NetworkConfig(str(tmp_path / "state"), endpoints=free_endpoints(prefer_defaults=False), options=Options())
    return cfg, start(cfg, nodes, fork_server=True)


def _metadata(net) -> int:
    s = requests.Session()
    s.trust_env = False  # REQUESTS_CA_BUNDLE would override verify
    return s.get(net.url("as", "/.well-known/oauth-authorization-server"), verify=str(net.cfg.ca_file),
                 timeout=5).status_code


def test_forked_nodes_serve_restart_and_stop_without_leftovers(tmp_path):
    cfg, net = _network(tmp_path)
    try:
        assert all(isinstance(p, ForkedNode) for p in net.procs.values())
        zygote = net._zygote.proc.pid
        for proc in net.procs.values():  # forks of the zygote, each leading its own session
            assert int(open(f"/proc/{proc.pid}/stat").read().rsplit(")", 1)[1].split()[1]) == zygote
            assert os.getsid(proc.pid) == proc.pid
        assert _metadata(net) == 200
        host, port = net.listening["pcscf"]
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:  # the P-CSCF answers an OPTIONS
            udp.settimeout(5)
            udp.sendto(b"OPTIONS sip:" + host.encode() + b" SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5999;branch=z9hG4bK1\r\n"
                       b"From: <sip:a@b>;tag=1\r\nTo: <sip:a@b>\r\nCall-ID: zygote-1\r\nCSeq: 1 OPTIONS\r\n"
                       b"Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n", (host, port))
            assert udp.recvfrom(65535)[0].startswith(b"SIP/2.0 ")
        before = net.procs["as"].pid
        net.restart("as")
        assert net.procs["as"].pid != before and _metadata(net) == 200
        victim = net.procs["pcscf"]
        os.kill(victim.pid, signal.SIGKILL)
        assert victim.wait(5) == ForkedNode.EXITED  # reaped by the zygote at once: its PID is gone
        assert len(node_processes(str(cfg.state))) == 2  # the zygote and the AS
    finally:
        net.stop_all()
    deadline = time.monotonic() + 5
    while node_processes(str(cfg.state)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert node_processes(str(cfg.state)) == []


def test_a_forked_node_that_cannot_start_is_reported_with_its_log(tmp_path):
    cfg = NetworkConfig(str(tmp_path / "state"), endpoints=free_endpoints(prefer_defaults=False), options=Options())
    host, port = cfg.endpoints["as"].host, cfg.endpoints["as"].port
    with socket.socket() as taken:  # the AS's port is taken: the node exits at bind
        taken.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        taken.bind((host, port))
        taken.listen()
        with pytest.raises(NodeFailed) as err:
            start(cfg, ("as",), timeout=10, fork_server=True)
    assert "exited" in str(err.value) and "address" in str(err.value).lower()
    assert node_processes(str(cfg.state)) == []


def test_networks_sharing_one_zygote_serve_and_stop_apart(tmp_path):
    from refnet.launcher import shared_zygote

    cfgs = [NetworkConfig(str(tmp_path / name), endpoints=free_endpoints(prefer_defaults=False), options=Options())
            for name in ("a", "b")]
    zygote = shared_zygote([c.state for c in cfgs], tmp_path / "zygote.log")
    nets = []
    try:
        nets = [start(c, ("as",), zygote=zygote) for c in cfgs]
        for cfg, net in zip(cfgs, nets):
            assert net._zygote is zygote and _metadata(net) == 200
            pid = net.procs["as"].pid
            assert int(open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[1]) == zygote.proc.pid
            assert pid in node_processes(str(cfg.state))  # found by its own state directory
        nets[0].stop_all()  # one network stops (its worker finished): the other runs on
        assert zygote.proc.poll() is None and _metadata(nets[1]) == 200
        with pytest.raises(NodeFailed, match="not served"):
            zygote.spawn("as", tmp_path / "c", tmp_path / "c.log", 5)
        nets[1].restart("as")  # forked again from the shared zygote
        assert _metadata(nets[1]) == 200
    finally:
        for net in nets:
            net.stop_all()
        zygote.close()
    deadline = time.monotonic() + 5
    while any(node_processes(str(c.state)) for c in cfgs) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert [node_processes(str(c.state)) for c in cfgs] == [[], []]
