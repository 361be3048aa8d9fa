"""Matchers: expectations of a step (format.md "Expectations") checked against a received event.

The names below are loaded on first use: a module that needs only a part of the package (the
test-case model imports `levels`) must not pull in the engine, the subjects and through them the
HTTP driver, requests and the JOSE library (about 0.3 s of imports, paid by every process that
only reads a catalog, the controller of an `-n` run among them)."""

from __future__ import annotations

from importlib import import_module

_WHERE = {"MatchContext": "engine", "check": "engine", "save": "engine", "MISSING": "operators",
          "MalformedExpectation": "operators", "SaveError": "subjects"}

__all__ = list(_WHERE)


def __getattr__(name: str):
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(f"{__name__}.{module}"), name)
