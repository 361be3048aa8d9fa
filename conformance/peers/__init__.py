"""Emulated peers: the nodes the vendor does not supply, played by the harness (issue 12).

A profile marks a node `supplied: false`; `start_for_profile` then starts the harness's own
version of it where the SUT is configured to reach it (PIXIT address, port, TLS name), behaving as
BINDING.md says unless a test case scripts it (`peers:` key, docs/peers.md). Peers are harness
code: they never import refnet, and what they receive is evidence in the report.
"""

from conformance.peers.base import PeerSet, active, start_for_profile

__all__ = ["PeerSet", "active", "start_for_profile"]
