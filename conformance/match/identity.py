"""Identity-mapping operators: does a URI or IMPI belong to the IMS identities of a Web ID?

The table comes from the identity fixtures (and the identity provisioned for the test case):
{web_id: {"impi": str, "impus": [str, ...]}} with the default IMPU first (TS 23.228 4.3.3.3:
the first IMPU of the implicit registration set is the default; BINDING "Identities").
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from conformance.codec.sip_uri import UriError, uri_equal
from conformance.match.operators import MISSING, MalformedExpectation, uri_of
from conformance.vocabulary.operators import IDENTITY_OPERATORS


def _entry(identities: Mapping[str, Any], web_id: Any) -> Mapping[str, Any]:
    entry = identities.get(str(web_id)) if isinstance(web_id, str) else None
    if entry is None:
        known = ", ".join(sorted(identities)) or "none"
        raise MalformedExpectation(f"unknown Web ID {web_id!r} (identities known: {known})")
    return entry


def _same_uri(actual: Any, impu: str) -> bool:
    try:
        return uri_equal(uri_of(actual), impu)
    except UriError:
        return False


def is_default_impu_of(actual: Any, web_id: Any, identities: Mapping[str, Any]) -> tuple[bool, str]:
    impus = list(_entry(identities, web_id).get("impus") or [])
    if not impus:
        raise MalformedExpectation(f"Web ID {web_id!r} has no IMPU in the identity table")
    ok = actual is not MISSING and actual is not None and _same_uri(actual, impus[0])
    return ok, f"is the default IMPU of {web_id} ({impus[0]})"


def is_impu_of(actual: Any, web_id: Any, identities: Mapping[str, Any]) -> tuple[bool, str]:
    impus = list(_entry(identities, web_id).get("impus") or [])
    ok = actual is not MISSING and actual is not None and any(_same_uri(actual, i) for i in impus)
    return ok, f"is an IMPU of {web_id} ({', '.join(impus)})"


def is_impi_of(actual: Any, web_id: Any, identities: Mapping[str, Any]) -> tuple[bool, str]:
    impi = _entry(identities, web_id).get("impi")
    if not impi:
        raise MalformedExpectation(f"Web ID {web_id!r} has no IMPI in the identity table")
    # An IMPI is an NAI (RFC 7542): the realm compares case-insensitively, the username exactly.
    ok = False
    if isinstance(actual, str):
        user, _, realm = actual.strip().strip('"').rpartition("@")
        want_user, _, want_realm = str(impi).rpartition("@")
        ok = user == want_user and realm.lower() == want_realm.lower()
    return ok, f"is the IMPI of {web_id} ({impi})"


# by operator name, as conformance/vocabulary/operators.py registers them (the function of each
# identity operator is this module's function of that name)
IDENTITY_CHECKS = {name: globals()[name] for name in IDENTITY_OPERATORS}
