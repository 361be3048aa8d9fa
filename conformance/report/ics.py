"""The conformance statement: a requirements matrix in the style of an ICS proforma.

For every requirement reference of the catalog (the test case's `refs`, each expectation's `ref`,
each capture check's `ref`): the test cases that check it and their verdicts, plus the profile's
PICS answers. Written as JSON (for tools) and HTML (for people), and attached to the Allure
report as one extra result in its own epic.
"""

from __future__ import annotations

import html
import json
import re
import time
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Any

# How a requirement's verdict follows from its test cases' verdicts: the worst one counts,
# and "not run" only when nothing ran.
_ORDER = ["error", "fail", "inconclusive", "warn", "pass", "not applicable", "not run"]


def _refs_in(obj: Any) -> Iterable[str]:
    if isinstance(obj, dict):
        for k, v in obj.items():
            if k == "ref" and isinstance(v, str):
                yield v
            else:
                yield from _refs_in(v)
    elif isinstance(obj, list):
        for v in obj:
            yield from _refs_in(v)


def case_refs(tc) -> set[str]:
    refs = {r.strip() for r in tc.refs}
    for step in tc.steps:
        refs.update(r.strip() for r in _refs_in(step.get("expect") or []))
    refs.update(r.strip() for r in _refs_in(tc.capture or {}))
    return refs


def document_of(ref: str) -> str:
    m = re.match(r"(RFC\s*\d+|T[SR]\s*\d+\.\d+|BINDING|TR 23\.701)", ref)
    return re.sub(r"\s+", " ", m.group(1)) if m else "other"


def aggregate(verdicts: list[str]) -> str:
    return min(verdicts, key=_ORDER.index) if verdicts else "not run"


def _for_requirement(entry: dict, ref: str, rec: dict | None) -> dict:
    """A case that passed with warnings warns only the requirements whose SHOULD it violated."""
    if entry["verdict"] != "pass with warnings":
        return entry
    warned = {r.strip() for r in (rec or {}).get("warned_refs", [])}
    return {**entry, "verdict": "warn" if ref.strip() in warned else "pass"}


def build(cases, results: list[dict], pics: dict, known_pics: dict | None = None) -> dict:
    verdict_of = {r["id"]: r for r in results}
    reqs: dict[str, list[dict]] = {}
    for tc in cases:
        rec = verdict_of.get(tc.id)
        entry = {"id": tc.id, "sut": tc.sut, "kind": tc.kind,
                 "verdict": rec["verdict"] if rec else "not run",
                 "expected_deviation": bool(rec and rec.get("expected_deviation"))}
        for ref in case_refs(tc):
            reqs.setdefault(ref, []).append(_for_requirement(entry, ref, rec))
    rows = []
    for ref in sorted(reqs, key=lambda r: (document_of(r), r)):
        entries = sorted(reqs[ref], key=lambda e: e["id"])
        rows.append({"requirement": ref, "document": document_of(ref),
                     "verdict": aggregate([e["verdict"] for e in entries]), "test_cases": entries})
    totals: dict[str, int] = {}
    for row in rows:
        totals[row["verdict"]] = totals.get(row["verdict"], 0) + 1
    pics_rows = []
    for name, answer in sorted(pics.items()):
        opt = (known_pics or {}).get(name)
        allowed = getattr(opt, "values", None) if opt is not None else None
        pics_rows.append({"option": name, "answer": answer,
                          "allowed": list(allowed) if allowed else None})
    return {"generated": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "pics": pics_rows,
            "totals": totals, "requirements": rows}


_CSS = """body{font-family:sans-serif;margin:2em}table{border-collapse:collapse;margin-bottom:2em}
td,th{border:1px solid #ccc;padding:4px 8px;text-align:left;vertical-align:top}
.pass{color:#16794c}.fail{color:#b3261e;font-weight:bold}.error{color:#7a4b00;font-weight:bold}
.inconclusive{color:#8a6d00}.warn{color:#9a5b00}.na{color:#777}"""


def _cls(v: str) -> str:
    return {"pass": "pass", "fail": "fail", "error": "error", "inconclusive": "inconclusive",
            "warn": "warn"}.get(v, "na")


def to_html(doc: dict, title: str = "Conformance statement (TR 23.701)") -> str:
    e = html.escape
    out = [f"<!doctype html><html><head><meta charset='utf-8'><title>{e(title)}</title>",
           f"<style>{_CSS}</style></head><body><h1>{e(title)}</h1>",
           f"<p>Generated {e(doc['generated'])}. Requirements by verdict: "
           + ", ".join(f"{e(k)}: {v}" for k, v in sorted(doc["totals"].items())) + "</p>",
           "<h2>PICS answers of the profile</h2><table><tr><th>option</th><th>answer</th><th>allowed</th></tr>"]
    for p in doc["pics"]:
        allowed = ", ".join(map(str, p["allowed"])) if p["allowed"] else ""
        out.append(f"<tr><td>{e(p['option'])}</td><td>{e(str(p['answer']))}</td><td>{e(allowed)}</td></tr>")
    out.append("</table><h2>Requirements</h2><table><tr><th>document</th><th>requirement</th>"
               "<th>verdict</th><th>test cases</th></tr>")
    for row in doc["requirements"]:
        cases = "<br>".join(
            f"<span class='{_cls(c['verdict'])}'>{e(c['id'])}: {e(c['verdict'])}"
            + (" (expected deviation)" if c["expected_deviation"] else "") + "</span>"
            for c in row["test_cases"])
        out.append(f"<tr><td>{e(row['document'])}</td><td>{e(row['requirement'])}</td>"
                   f"<td class='{_cls(row['verdict'])}'>{e(row['verdict'])}</td><td>{cases}</td></tr>")
    out.append("</table></body></html>")
    return "\n".join(out)


def write(doc: dict, outdir: Path) -> tuple[Path, Path]:
    outdir.mkdir(parents=True, exist_ok=True)
    j, h = outdir / "ics.json", outdir / "ics.html"
    j.write_text(json.dumps(doc, indent=2))
    h.write_text(to_html(doc))
    return j, h


def attach_to_allure(doc: dict, alluredir: Path) -> Path:
    """One extra Allure result, epic "Conformance statement", carrying the matrix as attachments."""
    alluredir.mkdir(parents=True, exist_ok=True)
    attachments = []
    for name, body, mime, ext in (("conformance statement (HTML)", to_html(doc), "text/html", "html"),
                                  ("conformance statement (JSON)", json.dumps(doc, indent=2), "application/json",
                                   "json")):
        source = f"conformance-statement-attachment.{ext}"  # fixed names: a second report replaces it
        (alluredir / source).write_text(body)
        attachments.append({"name": name, "source": source, "type": mime})
    now = int(time.time() * 1000)
    failed = doc["totals"].get("fail", 0) + doc["totals"].get("error", 0)
    result = {
        "uuid": str(uuid.uuid4()), "historyId": "ics-conformance-statement",
        "name": "Conformance statement (requirements matrix)", "fullName": "ics.conformance_statement",
        "status": "failed" if failed else "passed", "stage": "finished", "start": now, "stop": now,
        "statusDetails": {"message": ", ".join(f"{k}: {v}" for k, v in sorted(doc["totals"].items()))},
        "labels": [{"name": "epic", "value": "Conformance statement"}, {"name": "feature", "value": "ICS"}],
        "attachments": attachments,
    }
    path = alluredir / "conformance-statement-result.json"
    path.write_text(json.dumps(result))
    return path
