"""The model: test cases, fragments, profiles and PICS, loaded from YAML and validated.

Everything that can be wrong in an input is found here, before anything is sent, and reported
as `file:line:column: message (schema path: ...)`.

The names below are imported lazily (PEP 562): conformance.run.templating uses
conformance.model.yaml_marks, and the test-case loader uses templating, so an eager package
import would be circular.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "Catalog": "catalog", "discover": "catalog", "load_catalog": "catalog", "validate_catalog": "catalog",
    "Deviation": "deviations", "load_deviations": "deviations",
    "KNOWN_PICS": "pics", "PicsError": "pics", "PicsOption": "pics", "Selection": "pics",
    "Profile": "profile", "ProfileError": "profile", "load_profile": "profile",
    "Expectation": "testcase", "Step": "testcase", "TestCase": "testcase", "TestCaseError": "testcase",
    "check_testcase": "testcase", "load_testcase": "testcase",
    "MarkedDict": "yaml_marks", "MarkedList": "yaml_marks", "ModelError": "yaml_marks", "Problem": "yaml_marks",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(list(globals()) + __all__)
