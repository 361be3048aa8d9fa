"""When a test case's capture window may end (adaptive settle, issue 15).

After the last step the harness used to wait a fixed quiet time for late packets. The capture
block says what it waits for, so the window ends as soon as:

- every required `expect` entry has been seen (optional ones never hold the window open), and
- every windowed `forbidden`/`absent` entry (`within_ms`) has had its whole stated window: it ends
  at its start (`after: N`'s message, or the capture start) plus `within_ms`, not a moment later.

Entries without `within_ms` run "until the capture stops", so they never hold the window open.
The profile's `settle_ms` stays the upper bound: what is still missing then is judged missing.

Sans-IO: the caller passes the matched block and the time; nothing here waits.
"""

from __future__ import annotations

from dataclasses import dataclass

from conformance.capture.assertions import BlockMatch


@dataclass(frozen=True)
class SettleState:
    done: bool
    # absolute time at which a windowed check closes (None: nothing to wait for but new packets)
    wake_at: float | None = None
    waiting_for: str = ""  # what holds the window open, for the report and the tests


def settle_state(bm: BlockMatch, t_start: float, now: float) -> SettleState:
    """Whether the window [t_start, now] already holds everything the block waits for."""
    if bm.unusable:
        return SettleState(True)  # the capture is unusable: waiting cannot make it usable
    anchors: dict[str, float] = {}
    missing: list[str] = []
    for r in bm.results:
        e = r.entry
        if e.kind != "expect":
            continue
        if r.item is not None and e.flow is not None:
            anchors.setdefault(str(e.flow), r.item.t)
        if r.status not in ("matched", "out_of_order", "optional_missing"):
            missing.append(e.step_label)
    closes: list[tuple[float, str]] = []
    for r in bm.results:
        e = r.entry
        if e.kind == "expect" or e.spec.get("within_ms") is None:
            continue
        ref = e.spec.get("after")
        lo = anchors.get(str(ref)) if ref is not None else t_start
        if lo is None:
            missing.append(f"step {ref} (window start of {e.kind} #{e.position + 1})")
            continue
        hi = lo + float(e.spec["within_ms"]) / 1000.0
        if hi > now:
            closes.append((hi, f"{e.kind} #{e.position + 1} until +{(hi - t_start) * 1000:.0f} ms"))
    if missing:  # only new packets can help: wait for them (up to the upper bound)
        return SettleState(False, None, "missing " + ", ".join(missing))
    if closes:
        hi, what = min(closes)
        return SettleState(False, max(hi for hi, _ in closes), what)
    return SettleState(True)
