"""Repository-wide pytest configuration for the project's own tests.

The YAML test cases are collected by the `conformance.plugin` (registered as a pytest11 entry
point); this file only marks the project's tests so that `pytest -m "not integration"` runs
the fast, network-free part alone.
"""

from __future__ import annotations

from pathlib import Path

import pytest

INTEGRATION = Path(__file__).resolve().parent / "tests" / "integration"


def pytest_collection_modifyitems(config, items):
    for item in items:
        if INTEGRATION in Path(str(item.path)).parents:
            item.add_marker(pytest.mark.integration)
