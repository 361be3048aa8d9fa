"""The flow phase of a test case, for `ims-conformance list`.

Registration cases exercise the numbered TR 23.701 steps 1-22; the lifecycle cases
(testcases/lifecycle/, docs/lifecycle.md) exercise what follows the first 200 OK and name their
procedure in a `LIFECYCLE <procedure>` reference, which is what the phase shows.
"""

from __future__ import annotations

LIFECYCLE_REF = "LIFECYCLE "


def phase_of(refs: list[str] | tuple[str, ...], flow_steps) -> str:
    procedures = [r[len(LIFECYCLE_REF):] for r in refs if r.startswith(LIFECYCLE_REF)]
    if procedures:
        return "after 22: " + ", ".join(dict.fromkeys(procedures))
    return "steps 1-22" if flow_steps else "-"
