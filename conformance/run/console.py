"""What `ims-conformance run` prints: one line per test case as it finishes (id, title, verdict,
seconds) instead of pytest's dots, and a summary table by node and verdict at the end.

The line comes from the pytest report's `user_properties` (set by the plugin), so it works the
same under xdist, where the controller only sees the workers' reports.
"""

from __future__ import annotations

import sys
from collections import Counter

VERDICT_ORDER = ["pass", "pass with warnings", "fail", "inconclusive", "not applicable", "error"]
TITLE_WIDTH = 60


def _props(report) -> dict:
    return {k: v for k, v in getattr(report, "user_properties", []) if k.startswith("ims_")}


def case_line(case_id: str, title: str, verdict: str, seconds: float, deviation: bool = False) -> str:
    title = title if len(title) <= TITLE_WIDTH else title[:TITLE_WIDTH - 1] + "…"
    shown = f"{verdict} (expected deviation)" if deviation else verdict
    return f"{case_id:<24} {title:<{TITLE_WIDTH}} {shown:<18} {seconds:6.2f} s"


class CaseLines:
    """A pytest plugin object (`pytest.main(argv, plugins=[CaseLines()])`)."""

    def __init__(self, out=None):
        self.out = out or sys.stdout
        self.printed: set[str] = set()

    def pytest_report_teststatus(self, report, config):
        # no progress dots or letters: the line per test case says it (categories unchanged)
        if report.when == "call" or (report.when == "setup" and not report.passed):
            if getattr(report, "wasxfail", None) is not None:
                return "xfailed", "", "XFAIL"
            category = report.outcome if report.outcome != "failed" or report.when == "call" else "error"
            return category, "", category.upper()
        if report.when in ("setup", "teardown"):
            return ("error", "", "ERROR") if report.failed else ("", "", "")
        return None

    def pytest_runtest_logreport(self, report):
        props = _props(report)
        if report.when != "teardown" or report.nodeid in self.printed:
            return
        self.printed.add(report.nodeid)
        name = report.nodeid.rsplit("::", 1)[-1]
        title = report.head_line or name
        if ": " in title:
            title = title.split(": ", 1)[1]
        verdict = props.get("ims_verdict") or ("error" if report.failed else "unknown")
        print(case_line(name, title, verdict, float(props.get("ims_seconds") or 0.0),
                        bool(props.get("ims_expected_deviation"))), file=self.out, flush=True)


def summary_table(results: list[dict]) -> str:
    """Counts of verdicts by node under test, with a total row."""
    by_node: dict[str, Counter] = {}
    for r in results:
        key = f"{r['verdict']} (xdev)" if r.get("expected_deviation") else r["verdict"]
        by_node.setdefault(r["sut"], Counter())[key] += 1
    if not by_node:
        return "no test case ran"
    seen = {k for c in by_node.values() for k in c}
    cols = [v for v in VERDICT_ORDER if v in seen] + sorted(seen - set(VERDICT_ORDER))
    total = sum(by_node.values(), Counter())
    head = ["node", *cols, "total"]
    rows = [[node, *(str(c.get(v, 0)) for v in cols), str(sum(c.values()))] for node, c in sorted(by_node.items())]
    rows.append(["all", *(str(total.get(v, 0)) for v in cols), str(sum(total.values()))])
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    lines = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths)))
             for r in [head, *rows]]
    lines.insert(1, "-" * len(lines[0]))
    lines.insert(len(lines) - 1, "-" * len(lines[0]))
    return "\n".join(lines)
