"""The conformance statement: a requirements matrix in the style of an ICS proforma.

Per requirement reference, its verdict comes from the *checks* that cite it, never from whole
test cases (a test case that fails at step 17 says nothing against the cookie flags it checked
at step 3):

- fail: a MUST check citing it failed;
- pass with warnings: only SHOULD/MAY checks citing it failed;
- pass: a check citing it passed and none failed;
- inconclusive: checks citing it could not observe (or errored), none passed or failed;
- not applicable: every test case citing it was not applicable to the profile;
- not run: no test case citing it ran (e.g. deselected with -k).

A check cites its expectation's `ref`; a check without one cites its test case's `refs`; a test
case that passed counts as one passed check of its `refs` (its test purpose held).
The statement is a page and a JSON file of its own beside the Allure report, built from the
verdicts stored with the Allure results of the same run; each check links into that report.
"""

from __future__ import annotations

import hashlib
import html
import json
import re
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from conformance.report.allure import ref_url

FAIL, WARN, PASS, INCONCLUSIVE, NA, NOT_RUN = ("fail", "pass with warnings", "pass", "inconclusive",
                                               "not applicable", "not run")
ORDER = [FAIL, WARN, PASS, INCONCLUSIVE, NA, NOT_RUN]


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
    """Every requirement a test case can check: its refs and every expectation's and capture check's ref."""
    refs = {r.strip() for r in tc.refs}
    for step in tc.steps:
        refs.update(r.strip() for r in _refs_in(step.get("expect") or []))
    refs.update(r.strip() for r in _refs_in(tc.capture or {}))
    return refs


def document_of(ref: str) -> str:
    m = re.match(r"(RFC\s*\d+|T[SR]\s*\d+\.\d+|BINDING|TR 23\.701)", ref)
    return re.sub(r"\s+", " ", m.group(1)) if m else "other"


def requirement_verdict(checks: list[dict], case_verdicts: list[str]) -> str:
    """The rules of the module docstring. `checks`: the checks citing the requirement;
    `case_verdicts`: the verdicts of the test cases that cite it (for n/a and not run)."""
    verdicts = [c["verdict"] for c in checks if c["verdict"] != NA]  # e.g. offline: needed a live value
    if FAIL in verdicts:
        return FAIL
    if WARN in verdicts:
        return WARN
    if PASS in verdicts:
        return PASS
    if verdicts or any(v not in (NA, NOT_RUN) for v in case_verdicts):
        return INCONCLUSIVE  # ran, but nothing citing it was observed (or the check errored)
    if NA in case_verdicts:
        return NA
    return NOT_RUN


def allure_links(alluredir: Path | None) -> dict[str, str]:
    """Test case id -> its page in the Allure 3 report (the report's test result id is the md5
    of the result's uuid)."""
    links: dict[str, str] = {}
    if alluredir is None or not alluredir.is_dir():
        return links
    for f in alluredir.glob("*-result.json"):
        try:
            doc = json.loads(f.read_text())
        except (OSError, ValueError):
            continue
        case = next((lb["value"] for lb in doc.get("labels", []) if lb.get("name") == "as_id"), None)
        if case and doc.get("uuid"):
            links[case] = "index.html#/" + hashlib.md5(doc["uuid"].encode()).hexdigest()  # noqa: S324 - an id
    return links


def build(cases, results: list[dict], pics: dict, known_pics: dict | None = None, *,
          allure_results: Path | None = None) -> dict:
    record_of = {r["id"]: r for r in results}
    links = allure_links(allure_results)
    reqs: dict[str, dict] = {}
    for tc in sorted(cases, key=lambda c: c.id):
        rec = record_of.get(tc.id)
        case_verdict = rec["verdict"] if rec else NOT_RUN
        for ref in case_refs(tc):
            row = reqs.setdefault(ref, {"checks": [], "test_cases": {}})
            row["test_cases"][tc.id] = {"id": tc.id, "title": tc.title, "sut": tc.sut, "verdict": case_verdict,
                                        "expected_deviation": bool(rec and rec.get("expected_deviation")),
                                        "link": links.get(tc.id)}
        checks = list((rec or {}).get("checks", []))
        if case_verdict in (PASS, WARN):  # the test purpose as a whole held: it checked the case's refs
            checks.append({"refs": [r.strip() for r in tc.refs], "step": "test purpose", "level": "MUST",
                           "verdict": PASS, "description": f"{tc.id} {case_verdict}: every check of the test case held"})
        for check in checks:
            for ref in check["refs"]:
                row = reqs.setdefault(ref, {"checks": [], "test_cases": {}})
                row["checks"].append({"test_case": tc.id, "step": check["step"], "level": check["level"],
                                      "verdict": check["verdict"], "check": check["description"],
                                      "link": links.get(tc.id)})
                row["test_cases"].setdefault(tc.id, {"id": tc.id, "title": tc.title, "sut": tc.sut,
                                                     "verdict": case_verdict, "expected_deviation": False,
                                                     "link": links.get(tc.id)})
    rows = []
    for ref in sorted(reqs, key=lambda r: (document_of(r), r)):
        row = reqs[ref]
        entries = sorted(row["test_cases"].values(), key=lambda e: e["id"])
        rows.append({"requirement": ref, "document": document_of(ref), "link": ref_url(ref),
                     "verdict": requirement_verdict(row["checks"], [e["verdict"] for e in entries]),
                     "checks": row["checks"], "test_cases": entries})
    totals: dict[str, int] = {}
    for row in rows:
        totals[row["verdict"]] = totals.get(row["verdict"], 0) + 1
    pics_rows = []
    for name, answer in sorted(pics.items()):
        opt = (known_pics or {}).get(name)
        allowed = getattr(opt, "values", None) if opt is not None else None
        pics_rows.append({"option": name, "answer": answer, "allowed": list(allowed) if allowed else None})
    return {"generated": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "rules": __doc__.split("\n\n")[1],
            "pics": pics_rows, "totals": totals, "requirements": rows}


_CSS = """body{font-family:sans-serif;margin:2em;font-size:14px}table{border-collapse:collapse;margin-bottom:2em}
td,th{border:1px solid #ccc;padding:4px 8px;text-align:left;vertical-align:top}
.pass{color:#16794c}.fail{color:#b3261e;font-weight:bold}.warn{color:#a05a00;font-weight:bold}
.inconclusive{color:#8a6d00}.na{color:#777}ul{margin:0;padding-left:1.2em}pre{white-space:pre-wrap;margin:0}"""


def _cls(v: str) -> str:
    return {PASS: "pass", FAIL: "fail", "error": "fail", WARN: "warn", INCONCLUSIVE: "inconclusive"}.get(v, "na")


def _a(text: str, href: str | None) -> str:
    e = html.escape
    return f"<a href='{e(href)}'>{e(text)}</a>" if href else e(text)


def to_html(doc: dict, title: str = "Conformance statement (TR 23.701)") -> str:
    e = html.escape
    out = [f"<!doctype html><html><head><meta charset='utf-8'><title>{e(title)}</title>",
           f"<style>{_CSS}</style></head><body><h1>{e(title)}</h1>",
           f"<p>Generated {e(doc['generated'])}. <a href='index.html'>Allure report of the same run</a>. "
           "Requirements by verdict: " + ", ".join(f"{e(k)}: {v}" for k, v in sorted(doc["totals"].items())) + "</p>",
           f"<details><summary>How a requirement's verdict is decided</summary><pre>{e(doc['rules'])}</pre></details>",
           "<h2>PICS answers of the profile</h2><table><tr><th>option</th><th>answer</th><th>allowed</th></tr>"]
    for p in doc["pics"]:
        allowed = ", ".join(map(str, p["allowed"])) if p["allowed"] else ""
        out.append(f"<tr><td>{e(p['option'])}</td><td>{e(str(p['answer']))}</td><td>{e(allowed)}</td></tr>")
    out.append("</table><h2>Requirements</h2><table><tr><th>requirement</th><th>verdict</th>"
               "<th>checks (test case, step, level, verdict)</th><th>test cases</th></tr>")
    for row in doc["requirements"]:
        checks = "".join(
            f"<li class='{_cls(c['verdict'])}'>{_a(c['test_case'], c['link'])} · {e(c['step'])} · {e(c['level'])} · "
            f"{e(c['verdict'])}<br><small>{e(c['check'])}</small></li>" for c in row["checks"])
        cases = "".join(
            f"<li class='{_cls(c['verdict'])}'>{_a(c['id'], c['link'])}: {e(c['verdict'])}"
            + (" (expected deviation)" if c["expected_deviation"] else "") + "</li>" for c in row["test_cases"])
        out.append(f"<tr><td>{_a(row['requirement'], row['link'])}</td>"
                   f"<td class='{_cls(row['verdict'])}'>{e(row['verdict'])}</td>"
                   f"<td><ul>{checks}</ul></td><td><ul>{cases}</ul></td></tr>")
    out.append("</table></body></html>")
    return "\n".join(out)


def write(doc: dict, outdir: Path) -> tuple[Path, Path]:
    outdir.mkdir(parents=True, exist_ok=True)
    j, h = outdir / "ics.json", outdir / "ics.html"
    j.write_text(json.dumps(doc, indent=2))
    h.write_text(to_html(doc))
    return j, h
