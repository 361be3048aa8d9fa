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
COL_W, ROW_H, LEFT, TOP = 150, 26, 90, 70
MAX_ROWS = 400
COLORS = {"ok": "#1f4e79", "step": "#1a7f37", "out_of_order": "#d97706", "missing": "#c62828",
          "forbidden": "#c62828", "garbage": "#888888"}


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
                  pixit: Mapping[str, Any] | None = None, title: str = "") -> str:
    cols, labels = _columns(timeline, pixit)
    x = {n: LEFT + COL_W * i + COL_W // 2 for i, n in enumerate(cols)}
    bm: BlockMatch | None = None
    if block:
        try:
            known = {UE} | set(((pixit or {}).get("nodes") or {}).keys()) | set(cols)
            bm = match_block(block, timeline, pixit, entries=parse_block(block, pixit, known))
        except BlockError:
            bm = None
    by_item = bm.by_item() if bm else {}
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
    foot_lines = problems[:12] + list(timeline.problems[:3])
    height = TOP + ROW_H * (len(rows) + 1) + 20 + 16 * (len(foot_lines) + (1 if truncated else 0)) + 30
    width = LEFT + COL_W * len(cols) + 120  # room for labels of the right-most column
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}" font-family="Helvetica, Arial, sans-serif" font-size="11">',
           "<defs>" + "".join(
               f'<marker id="a-{k}" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7" '
               f'orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="{c}"/></marker>'
               for k, c in COLORS.items()) + "</defs>",
           f'<rect width="{width}" height="{height}" fill="white"/>']
    if title:
        out.append(f'<text x="10" y="18" font-size="13" font-weight="bold">{escape(title)}</text>')
    bottom = TOP + ROW_H * (len(rows) + 1)
    for n in cols:
        out.append(f'<rect x="{x[n] - 60}" y="{TOP - 40}" width="120" height="24" rx="3" fill="#eef3f8" '
                   f'stroke="#1f4e79"/><text x="{x[n]}" y="{TOP - 24}" text-anchor="middle" '
                   f'font-weight="bold">{escape(labels.get(n, n))}</text>')
        out.append(f'<line x1="{x[n]}" y1="{TOP - 16}" x2="{x[n]}" y2="{bottom}" stroke="#999" '
                   f'stroke-dasharray="3,3"/>')
    t0 = timeline.t_start
    for row, (kind, obj) in enumerate(rows):
        y = TOP + ROW_H * (row + 1)
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
        if isinstance(it.event, Garbage) or (isinstance(it.event, WsFrameSeen) and it.event.error):
            style = "garbage" if style == "ok" else style
            if isinstance(it.event, WsFrameSeen):
                label += f" ({it.event.error})"
        if t0 is not None:
            out.append(f'<text x="8" y="{y + 4}" fill="#555">+{(it.t - t0) * 1000:.1f} ms</text>')
        out += _arrow(x[it.src_node or "?"], x[it.dst_node or "?"], y, label, style, dashed=False,
                      tls=it.decrypted)
    y = bottom + 24
    if truncated:
        out.append(f'<text x="10" y="{y}" fill="#c62828">... {MAX_ROWS} rows shown, the rest is in the pcapng</text>')
        y += 16
    for line in foot_lines:
        out.append(f'<text x="10" y="{y}" fill="#c62828">{escape(line[:220])}</text>')
        y += 16
    out.append(f'<text x="10" y="{height - 8}" fill="#555">green [n]: TR 23.701 flow step matched; orange: out of '
               f'order; dashed red: expected but missing; red: forbidden; grey: undissected; TLS: decrypted from TLS</text>')
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
    text = (f'<text x="{tx}" y="{y - 4}" text-anchor="{anchor}" fill="{color}" font-weight="{weight}">'
            f'{escape(label[:120])}</text>')
    badge = (f'<text x="{x1 + (6 if x2 > x1 else -6)}" y="{y + 10}" font-size="8" fill="#555" '
             f'text-anchor="{"start" if x2 > x1 else "end"}">TLS</text>') if tls else ""
    return [path, text] + ([badge] if badge else [])


def _missing_row(r: EntryResult, x: dict[str, int], cols: list[str], y: int) -> list[str]:
    e = r.entry
    src = next((n for n in cols if e.src and n in e.src), cols[0])
    dst = next((n for n in cols if e.dst and n in e.dst), cols[-1])
    what = e.what()
    word = "missing" if r.status == "missing" else "not observed"
    label = f"[{e.flow}] {word}: {what}" if e.flow is not None else f"{word}: {what}"
    return _arrow(x[src], x[dst], y, label, "missing", dashed=True)
