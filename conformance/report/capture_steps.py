"""The capture checks of a test case as report steps: one step per `capture:` entry, named after
its TR flow step and leg, carrying that entry's findings (so a violation fails the step that
checked the offending message, not a trailing summary) and the captured message as text.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from conformance.verdicts import Verdict, worst

MAX_TEXT = 16_384  # bytes of one captured message shown in the report (bounded evidence)


def message_text(event: Any) -> str:
    """The captured message as a reader wants it: the raw bytes where the dissector kept them,
    else the start line, header fields and body."""
    raw = getattr(event, "raw", None)
    if isinstance(raw, bytes | bytearray) and raw:
        return bytes(raw[:MAX_TEXT]).decode("utf-8", "backslashreplace")
    lines = []
    if getattr(event, "method", None):
        lines.append(f"{event.method} {getattr(event, 'url', '')} {getattr(event, 'version', '')}".rstrip())
    elif getattr(event, "status", None) is not None:
        lines.append(f"{getattr(event, 'version', 'HTTP/1.1')} {event.status} {getattr(event, 'reason', '')}".rstrip())
    for k, v in getattr(event, "headers", None) or []:
        lines.append(f"{k}: {v}")
    body = getattr(event, "body", None)
    if isinstance(body, bytes | bytearray) and body:
        lines += ["", bytes(body[:MAX_TEXT]).decode("utf-8", "backslashreplace")]
    return "\n".join(lines) if lines else repr(event)[:MAX_TEXT]


def report_capture_entries(reporter, findings: list, timeline, block: Mapping[str, Any] | None,
                           pixit: Mapping[str, Any] | None, bm=None) -> None:
    """One reporter step per capture entry with its findings and, when it matched a message, the
    message as a text attachment. Findings that belong to no entry (the capture as a whole) go
    into a last step."""
    from conformance.capture.assertions import BlockError, match_block, parse_block
    from conformance.capture.timeline import UE

    if not block or timeline is None:
        return
    if bm is None:  # `bm`: the match the verdict was judged on (CaptureResult.block_match)
        try:
            known = {UE} | set(((pixit or {}).get("nodes") or {}).keys())
            known |= {n for it in timeline.items for n in (it.src_node, it.dst_node) if n}
            bm = match_block(block, timeline, pixit, entries=parse_block(block, pixit, known))
        except BlockError:
            return
    used: set[int] = set()
    for r in bm.results:
        e = r.entry
        prefix = f"capture {e.step_label} "
        mine = [f for f in findings if id(f) not in used and f.subject.startswith(prefix)]
        if not mine:
            continue
        used.update(id(f) for f in mine)
        flow = f"[{e.flow}] " if e.flow is not None else ""
        with reporter.step(f"{flow}captured {e.describe()}") as handle:
            shown = r.item if r.item is not None else (r.hits[0] if r.hits else None)
            if shown is not None:
                reporter.attach_text(f"captured {shown.src_node or shown.src} -> {shown.dst_node or shown.dst}: "
                                     f"{shown.summary()}", message_text(shown.event))
            handle.finish(worst(f.verdict for f in mine), mine)
    rest = [f for f in findings if id(f) not in used]
    if rest:
        with reporter.step("capture as a whole") as handle:
            handle.finish(worst(f.verdict for f in rest) if rest else Verdict.PASS, rest)
