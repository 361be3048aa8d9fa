"""Parallel runs: each xdist worker gets its own reference network on the next loopback block."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

from conformance.capture.sniff import bpf_filter
from conformance.model.profile import load_profile
from conformance.run import worker_network

ROOT = Path(__file__).resolve().parents[2]


def _profile():
    return load_profile(ROOT / "profiles" / "reference.yaml")


def test_worker_profile_moves_every_node_address_and_the_state_dir_only():
    base = _profile()
    p = worker_network.for_worker(base, 1)
    text = json.dumps(p.pixit)
    assert "127.0.0.1" in text and "127.0.0.11" not in text and "127.2.0.11" in text  # UE stays
    assert p.pixit["ue"]["address"] == "127.0.0.1"
    assert p.pixit["nodes"]["wsf"]["url"] == "wss://127.2.0.13:7443/sip"
    assert p.pixit["oauth"]["redirect_uri"] == "https://127.2.0.11:8443/oauth/callback"
    assert p.reference_network["state_dir"] == ".refnet-gw1"
    assert p.pixit["tls"]["ca_bundle"] == ".refnet-gw1/pki/ca.pem"
    assert all(k.startswith(".refnet-gw1/keylogs/") for k in p.pixit["sut_keylogs"])
    assert p.pics == base.pics and p.secrets == base.secrets
    assert base.pixit["nodes"]["wsf"]["address"] == "127.0.0.13"  # the loaded profile is untouched


def test_workers_capture_disjoint_traffic():
    base = _profile()
    f0 = bpf_filter(worker_network.for_worker(base, 0).pixit, "lo")
    f1 = bpf_filter(worker_network.for_worker(base, 1).pixit, "lo")
    assert "127.1.0.14" in f0 and "127.2.0.14" not in f0 and "127.2.0.14" in f1


def test_applies_only_to_a_launched_network_on_loopback():
    base = _profile()
    assert worker_network.applies(base)
    assert not worker_network.applies(SimpleNamespace(reference_network={"launch": False}, pixit=base.pixit))
    vendor = {"nodes": {"wsf": {"address": "192.0.2.13", "port": 7443}}}
    assert not worker_network.applies(SimpleNamespace(reference_network={"launch": True}, pixit=vendor))


def test_worker_index_from_the_xdist_worker_id():
    assert worker_network.worker_index(SimpleNamespace(workerinput={"workerid": "gw3"})) == 3
    assert worker_network.worker_index(SimpleNamespace()) is None


def test_a_worker_plays_the_peers_at_its_own_addresses_with_its_own_networks_ca():
    """Each worker starts the emulated peers of a node-alone profile itself (conformance/plugin.py),
    so they must listen on the worker's block and issue certificates from the worker's CA."""
    base = load_profile(ROOT / "profiles" / "wsf-only.yaml")
    p = worker_network.for_worker(base, 0)
    assert p.pixit["nodes"]["as"]["address"] == "127.1.0.12"
    assert p.pixit["nodes"]["pcscf"]["address"] == "127.1.0.14"
    assert p.raw["peers"]["tls"] == {"ca_cert": ".refnet-wsf-gw0/pki/ca.pem", "ca_key": ".refnet-wsf-gw0/pki/ca.key"}
    assert base.raw["peers"]["tls"]["ca_cert"] == ".refnet-wsf/pki/ca.pem"  # the loaded profile is untouched
