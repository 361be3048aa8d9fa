"""Repository-wide pytest configuration for the project's own tests.

The YAML test cases are collected by the `conformance.plugin` (registered as a pytest11 entry
point); this file only marks the project's tests so that `pytest -m "not integration"` runs
the fast, network-free part alone.
"""

from __future__ import annotations

from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent / "tests"
INTEGRATION = TESTS / "integration"

# Under `make test` (pytest-xdist, --dist loadgroup) these modules run anywhere: every network they
# start has ephemeral ports or a network namespace of its own. Every other module of tests/ that
# starts something runs on one worker, one test at a time (group "binding-addresses"): it may bind
# the binding's fixed addresses (the shipped profiles, the emulated peers) or the next loopback
# blocks, which two tests at once would fight over.
PARALLEL_SAFE = {
    "test_fault_matrix.py", "test_variation_matrix.py", "test_refnet_as.py", "test_refnet_cscf.py",
    "test_refnet_wsf.py", "test_refnet_thirdparty.py", "test_refnet_fuzz.py", "test_peers_alone.py",
    "test_interop_kamailio.py", "test_hostile_sut.py",
    "test_capture_live.py",  # its own addresses (127.0.0.41-43), ports from the kernel
    "test_parallel_own_networks.py",  # a network namespace of its own
}
SERIAL_UNIT = {"test_peers.py"}  # emulated P-CSCF on 127.0.0.14:5060


def pytest_collection_modifyitems(config, items):
    for item in items:
        path = Path(str(item.path))
        integration = INTEGRATION in path.parents
        if integration:
            item.add_marker(pytest.mark.integration)
        if (integration or TESTS / "hostile" in path.parents or path.name in SERIAL_UNIT) \
                and path.name not in PARALLEL_SAFE:
            item.add_marker(pytest.mark.xdist_group("binding-addresses"))
