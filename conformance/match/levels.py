"""The RFC 2119 level of the requirement a check enforces (MUST fails, SHOULD and MAY warn).

An expectation or capture entry says it with `level: MUST | SHOULD | MAY`. Without one, its
`ref` decides when the cited text is a SHOULD in the place the catalog cites it (the table below,
reviewed clause by clause); everything else is MUST. The table holds only refs whose every use
in the catalog is a SHOULD: a clause that mixes keywords is cited with an explicit `level:` on
the items that are not MUST.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from conformance.verdicts import Level

# ref (normalised: single spaces) -> level of the text the catalog cites under it, and why.
REF_LEVELS: dict[str, tuple[Level, str]] = {
    # "the resource server SHOULD include the "error" attribute"; without any credentials "the
    # resource server SHOULD NOT include an error code" (BINDING's own challenge has none)
    "RFC 6750 3.1": (Level.SHOULD, "error attribute of a Bearer challenge"),
    # RFC 6265bis 4.1.2.7: SameSite is a recommendation for a session cookie, not a requirement
    "draft-ietf-httpbis-rfc6265bis 4.1.2.7": (Level.SHOULD, "SameSite attribute"),
}

LEVEL_KEY = "level"


def normalise_ref(ref: str) -> str:
    return re.sub(r"\s+", " ", ref.strip())


def level_of_ref(ref: Any) -> Level:
    """The level the catalog records for a ref (MUST when it records none)."""
    if not isinstance(ref, str):
        return Level.MUST
    entry = REF_LEVELS.get(normalise_ref(ref))
    return entry[0] if entry else Level.MUST


def level_of(item: Any) -> Level:
    """The level of one expectation or capture entry: its own `level:`, else its ref's, else MUST.

    Raises ValueError for a `level:` that is not MUST, SHOULD or MAY (the schema rejects it
    first; this guards items built in code)."""
    if isinstance(item, Mapping):
        explicit = item.get(LEVEL_KEY)
        if explicit is not None:
            try:
                return Level(str(explicit).upper())
            except ValueError:
                raise ValueError(f"level must be MUST, SHOULD or MAY, not {explicit!r}") from None
        return level_of_ref(item.get("ref"))
    return Level.MUST
