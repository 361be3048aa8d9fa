"""Sequence diagram (SVG) of the observed flow, in the style of TR 23.701's figure.

Columns UE, 3rdWWS, Operator WWS, WSF, P-CSCF, I/S-CSCF; one arrow per dissected message in
capture order, labelled with its TR flow step number when a `capture:` entry matched it. Marked:
out-of-order messages (orange), expected-but-missing messages (dashed red, drawn where they should
have been), forbidden messages seen (red), undissected bytes (grey). Plain SVG, no script, so it
renders inside the Allure report and any browser.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from xml.sax.saxutils import escape

from conformance.capture.assertions import BlockError, BlockMatch, EntryResult, match_block, parse_block
from conformance.capture.timeline import UE, Timeline, TimelineItem, WsFrameSeen
from conformance.events import Garbage

LABELS = {UE: "UE", "3rdwws": "3rdWWS", "as": "Operator WWS", "wsf": "WSF", "pcscf": "P-CSCF",
          "icscf": "I-CSCF", "scscf": "I/S-CSCF"}
ORDER = [UE, "3rdwws", "as", "wsf", "pcscf", "icscf", "scscf"]
# Text is 13 px (>= 12 px inline even when a viewer scales the diagram a little); a row holds
# the arrow's label and, for a violated message, the finding under it.
FONT, SMALL = 13, 12
COL_W, ROW_H, LEFT, TOP = 170, 30, 96, 76
FINDING_H = 16
MAX_ROWS = 400
COLORS = {"ok": "#1f4e79", "step": "#1a7f37", "out_of_order": "#d97706", "missing": "#c62828",
          "forbidden": "#c62828", "violated": "#c62828", "garbage": "#666666"}


def _violations(findings: list | None, bm: BlockMatch | None) -> dict[int, list[str]]:
    """Timeline item index -> the failed checks of the capture entry that matched it (a message
    that arrived but broke a per-message expectation is drawn red with what it broke)."""
    out: dict[int, list[str]] = {}
    if not bm:
        return out
    bad = [f for f in findings or [] if getattr(f, "verdict", None) is not None
           and f.verdict.value not in ("pass", "not applicable")]
    for r in bm.results:
        if r.item is None or r.status not in ("matched", "out_of_order"):
            continue
        prefix = f"capture {r.entry.step_label} "
        hits = [f for f in bad if f.subject.startswith(prefix) and f.subject != f"{prefix}{r.entry.describe()}"]
        if hits:
            out[r.item.index] = [_short(f, prefix) for f in hits]
    return out


def _short(f, prefix: str) -> str:
    """A finding on one line: the checked field, the clause, expected and got (got shortened)."""
    got = f.actual if len(f.actual) <= 60 else f.actual[:57] + "..."
    ref = f" [{f.ref}]" if f.ref else ""
    return f"{f.verdict.value.upper()} {f.subject[len(prefix):]}{ref}: expected {f.expected}, got {got}"


def _wrap(text: str, width_px: int, font: int = FONT) -> list[str]:
    """Lines that fit `width_px` at `font` px (Helvetica averages about 0.55 em per character)."""
    import textwrap

    per_line = max(20, int(width_px / (0.55 * font)))
    return textwrap.wrap(text, per_line, break_long_words=True, break_on_hyphens=False) or [""]


def _columns(timeline: Timeline, pixit: Mapping[str, Any] | None) -> tuple[list[str], dict[str, str]]:
    names = set((pixit or {}).get("nodes", {}) or {}) | {UE}
    for it in timeline.items:
        names |= {n for n in (it.src_node, it.dst_node) if n}
    cols = [n for n in ORDER if n in names]
    labels = {**LABELS, "?": "other"}
    if "icscf" in cols:  # PICS core.separate_icscf: the figure's I/S-CSCF column splits in two
        labels["scscf"] = "S-CSCF"
    cols += sorted(n for n in names if n not in cols)
    if any(it.src_node is None or it.dst_node is None for it in timeline.items):
        cols.append("?")
    return cols, labels


def _shown(item: TimelineItem) -> bool:
    ev = item.event
    # a data frame that carried SIP is drawn as the SIP message; control frames and errors stay
    return not (isinstance(ev, WsFrameSeen) and ev.carried and ev.error is None)


def render_ladder(timeline: Timeline, findings: list | None = None, block: Mapping[str, Any] | None = None,
                  pixit: Mapping[str, Any] | None = None, title: str = "", bm: BlockMatch | None = None) -> str:
    cols, labels = _columns(timeline, pixit)
    x = {n: LEFT + COL_W * i + COL_W // 2 for i, n in enumerate(cols)}
    if bm is None and block:  # `bm`: the match the verdict was judged on (CaptureResult.block_match)
        try:
            known = {UE} | set(((pixit or {}).get("nodes") or {}).keys()) | set(cols)
            bm = match_block(block, timeline, pixit, entries=parse_block(block, pixit, known))
        except BlockError:
            bm = None
    by_item = bm.by_item() if bm else {}
    violated = _violations(findings, bm)
    forbidden = {h.index for r in (bm.results if bm else []) if r.entry.kind == "forbidden" and r.status == "seen"
                 for h in r.hits}
    rows: list[tuple[str, Any]] = []  # ("item", TimelineItem) | ("missing", EntryResult)
    missing_after: dict[int, list[EntryResult]] = {}
    if bm:
        prev = -1
        for r in bm.results:
            if r.entry.kind != "expect":
                continue
            if r.status == "matched":
                prev = r.item.index
            elif r.status in ("missing", "unobservable"):
                missing_after.setdefault(prev, []).append(r)
    for r in missing_after.get(-1, []):
        rows.append(("missing", r))
    for it in timeline.items:
        if _shown(it):
            rows.append(("item", it))
        for r in missing_after.get(it.index, []):
            rows.append(("missing", r))
    truncated = len(rows) > MAX_ROWS
    rows = rows[:MAX_ROWS]

    problems = [f.describe() for f in (findings or []) if getattr(f, "verdict", None) is not None
                and f.verdict.value != "pass"]
    width = LEFT + COL_W * len(cols) + 120  # room for labels of the right-most column
    legend = ("green [n]: TR 23.701 flow step matched; red: violated, forbidden or (dashed) expected but missing; "
              "orange: out of order; grey: undissected; TLS: decrypted from TLS")
    foot_lines = [w for text in problems[:12] + list(timeline.problems[:3]) for w in _wrap(text, width - 20)]
    legend_lines = _wrap(legend, width - 20, SMALL)
    extra = sum(FINDING_H * len(violated.get(obj.index, [])) for kind, obj in rows if kind == "item")
    offsets, acc = [], 0
    for kind, obj in rows:  # each row is pushed down by the finding lines of the rows above it
        offsets.append(acc)
        if kind == "item":
            acc += FINDING_H * len(violated.get(obj.index, []))
    height = (TOP + ROW_H * (len(rows) + 1) + extra + 24 + 18 * (len(foot_lines) + (1 if truncated else 0))
              + 16 * len(legend_lines) + 12)
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}" font-family="Helvetica, Arial, sans-serif" font-size="{FONT}">',
           "<defs>" + "".join(
               f'<marker id="a-{k}" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7" '
               f'orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="{c}"/></marker>'
               for k, c in COLORS.items()) + "</defs>",
           f'<rect width="{width}" height="{height}" fill="white"/>']
    if title:
        out.append(f'<text x="10" y="18" font-size="13" font-weight="bold">{escape(title)}</text>')
    bottom = TOP + ROW_H * (len(rows) + 1) + extra
    for n in cols:
        out.append(f'<rect x="{x[n] - 60}" y="{TOP - 40}" width="120" height="24" rx="3" fill="#eef3f8" '
                   f'stroke="#1f4e79"/><text x="{x[n]}" y="{TOP - 24}" text-anchor="middle" '
                   f'font-weight="bold">{escape(labels.get(n, n))}</text>')
        out.append(f'<line x1="{x[n]}" y1="{TOP - 16}" x2="{x[n]}" y2="{bottom}" stroke="#999" '
                   f'stroke-dasharray="3,3"/>')
    t0 = timeline.t_start
    for row, (kind, obj) in enumerate(rows):
        y = TOP + ROW_H * (row + 1) + offsets[row]
        if kind == "missing":
            out += _missing_row(obj, x, cols, y)
            continue
        it: TimelineItem = obj
        r = by_item.get(it.index)
        style, label = "ok", it.summary()
        if r is not None:
            label = f"[{r.entry.flow}] {label}" if r.entry.flow is not None else label
            style = "step" if r.status == "matched" else "out_of_order"
            if r.status == "out_of_order":
                label += f" (came before {r.before.step_label})" if r.before else " (out of order)"
        if it.index in forbidden:
            style, label = "forbidden", f"{label} - forbidden"
        broken = violated.get(it.index, [])
        if broken:
            style = "violated"
        if isinstance(it.event, Garbage) or (isinstance(it.event, WsFrameSeen) and it.event.error):
            style = "garbage" if style == "ok" else style
            if isinstance(it.event, WsFrameSeen):
                label += f" ({it.event.error})"
        if t0 is not None:
            out.append(f'<text x="8" y="{y + 4}" fill="#555">+{(it.t - t0) * 1000:.1f} ms</text>')
        out += _arrow(x[it.src_node or "?"], x[it.dst_node or "?"], y, label, style, dashed=False,
                      tls=it.decrypted)
        for i, text in enumerate(broken):  # what the message broke, right under it
            out.append(f'<text x="{LEFT}" y="{y + 14 + FINDING_H * i + 4}" font-size="{SMALL}" '
                       f'fill="{COLORS["violated"]}">{escape(_fit(text, width - LEFT - 10, SMALL))}</text>')
    y = bottom + 24
    if truncated:
        out.append(f'<text x="10" y="{y}" fill="#c62828">... {MAX_ROWS} rows shown, the rest is in the pcapng</text>')
        y += 16
    for line in foot_lines:
        out.append(f'<text x="10" y="{y}" fill="#c62828">{escape(line)}</text>')
        y += 18
    for line in legend_lines:
        out.append(f'<text x="10" y="{y}" font-size="{SMALL}" fill="#555">{escape(line)}</text>')
        y += 16
    out.append("</svg>")
    return "\n".join(out)


def _arrow(x1: int, x2: int, y: int, label: str, style: str, dashed: bool, tls: bool = False) -> list[str]:
    color = COLORS[style]
    dash = ' stroke-dasharray="6,4"' if dashed else ""
    weight = "bold" if style != "ok" else "normal"
    if x1 == x2:  # a message between two endpoints of the same column: a small loop
        path = f'<path d="M{x1},{y - 6} h30 v12 h-30" fill="none" stroke="{color}"{dash} marker-end="url(#a-{style})"/>'
        tx, anchor = x1 + 36, "start"
    else:
        path = (f'<line x1="{x1}" y1="{y}" x2="{x2}" y2="{y}" stroke="{color}" stroke-width="1.5"{dash} '
                f'marker-end="url(#a-{style})"/>')
        tx, anchor = (x1 + x2) // 2, "middle"
    room = max(abs(x2 - x1), COL_W) + (COL_W if anchor == "middle" else 0)  # a label may overhang the arrow
    text = (f'<text x="{tx}" y="{y - 5}" text-anchor="{anchor}" fill="{color}" font-weight="{weight}">'
            f'{escape(_fit(label, room, FONT))}</text>')
    badge = (f'<text x="{x1 + (6 if x2 > x1 else -6)}" y="{y + 12}" font-size="{SMALL}" fill="#555" '
             f'text-anchor="{"start" if x2 > x1 else "end"}">TLS</text>') if tls else ""
    return [path, text] + ([badge] if badge else [])


def _fit(text: str, width_px: int, font: int) -> str:
    """Shorten a one-line label to what fits (the full text is in the findings and the pcapng)."""
    n = max(12, int(width_px / (0.55 * font)))
    return text if len(text) <= n else text[:n - 1] + "…"


def _missing_row(r: EntryResult, x: dict[str, int], cols: list[str], y: int) -> list[str]:
    e = r.entry
    src = next((n for n in cols if e.src and n in e.src), cols[0])
    dst = next((n for n in cols if e.dst and n in e.dst), cols[-1])
    what = e.what()
    word = "missing" if r.status == "missing" else "not observed"
    label = f"[{e.flow}] {word}: {what}" if e.flow is not None else f"{word}: {what}"
    return _arrow(x[src], x[dst], y, label, "missing", dashed=True)
