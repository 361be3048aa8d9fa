"""Order of the test cases in a parallel run: the ones that wait a stated time first.

About ten test cases of the catalog spend most of their time waiting what they state (a token
to expire, a binding to lapse, a window of required silence): about 21 s of a 45 s serial run,
at no CPU. Run in catalog order under `-n 2`, where they fall is chance: in one measured run one
worker got 21.6 s of test cases and the other 17.8 s, and a long wait at the end of one worker's
list leaves the other idle. Collected first by every worker and dealt out a few at a time by the
scheduler below (the plugin's pytest_xdist_make_scheduler, for --dist load), they go to one
worker while the other runs the cases that work, so that sleeping overlaps working, and the last
cases to run are short ones.

The key is what the test case states, never a measured time: the same on every worker (xdist
needs every worker to collect the same order) and on every machine. A wait for a token's expiry
counts its bound (`max_ms`): the token's lifetime is not known before the case runs.
"""

from __future__ import annotations

import re
from typing import Any

_PIXIT_REF = re.compile(r"^\$\{pixit\.([A-Za-z0-9_.]+)\}$")
UNTIL_EXP_DEFAULT_MS = 10_000.0  # conformance.run.actions: the default bound of wait.until_exp


def _number(value: Any, pixit: dict) -> float:
    """A duration as written: a number, or `${pixit.a.b}` resolved from the profile; 0 otherwise."""
    if isinstance(value, str):
        m = _PIXIT_REF.match(value.strip())
        if m:
            node: Any = pixit
            for part in m.group(1).split("."):
                node = node.get(part) if isinstance(node, dict) else None
            value = node
    try:
        return max(0.0, float(value))
    except (TypeError, ValueError):
        return 0.0


def stated_wait_ms(tc, pixit: dict) -> float:
    """The time test case `tc` says it waits: its `wait` steps, the window of every step that
    expects nothing to arrive (it lasts its whole timeout), and the bound of every poll."""
    total = 0.0
    for step in tc.steps:
        if step.action == "wait" and isinstance(step.args, dict):
            if "until_exp" in step.args:
                total += _number(step.args.get("max_ms", UNTIL_EXP_DEFAULT_MS), pixit)
            else:
                total += _number(step.args.get("ms", 0), pixit)
        elif step.timeout_ms is not None and any(e.op == "nothing" or e.subject == "nothing" for e in step.expect):
            total += _number(step.timeout_ms, pixit)
        if isinstance(step.raw.get("poll"), dict):  # at most that long; an expiry poll takes most of it
            total += _number(step.raw["poll"].get("within_ms", 0), pixit)
    return total


def longest_first(items: list, wait_of) -> list:
    """`items` with the ones that wait longest first; ties, and every case that states no wait,
    keep their catalog order (a stable sort)."""
    return sorted(items, key=lambda item: -wait_of(item))


AHEAD = 3  # cases queued on a worker: the one it runs, the next (pytest needs it), one more


def pick(pending: list[int], waiting: set[int], num: int, waiter: bool) -> list[int]:
    """The next `num` cases for a worker, from `pending` (collection indices, the waiting cases
    first, longest first). The waiter takes the waiting cases from the longest down, then the
    others; every other worker takes the cases that do not wait, then the waiting ones from the
    shortest up (what is left of the waits when the work has run out)."""
    if waiter:
        order = [i for i in pending if i in waiting] + [i for i in pending if i not in waiting]
    else:
        order = [i for i in pending if i not in waiting] + [i for i in reversed(pending) if i in waiting]
    return order[:num]


# A case stating a shorter wait (a required silence of 0.8 s, a poll that usually ends at once)
# lasts about as long as the longest cases that work: dealt with those, it evens out the two
# shares. Given to the waiter, it came last in its list: measured on the reference profile, the
# waiter ran 15.8-16.1 s of cases and the other worker 14 s, idle at the end.
LONG_WAIT_MS = 2000.0


def waiting_head(collection: list[str], wait_of, at_least_ms: float = LONG_WAIT_MS) -> set[int]:
    """Indices of the cases that wait at least `at_least_ms`, at the head of a collection sorted
    longest first: the look-ups stop at the first case that states a shorter wait."""
    out: set[int] = set()
    for index, nodeid in enumerate(collection):
        if (wait_of(nodeid) or 0) < max(at_least_ms, 1e-9):  # no stated wait never counts
            break
        out.add(index)
    return out


def make_scheduler(config, log, wait_of):
    """xdist's load scheduling for a catalog whose workers collect the waiting cases first. One
    worker (the waiter) takes the cases that wait, longest first; the others take the cases that
    do not. A waiting case spends its time asleep, so it overlaps the other worker's CPU work
    instead of competing with it: dealt round robin, both workers slept through the first seconds
    of the run and then shared two cores for the rest. (Measured on the reference profile, the
    wall time barely moved, 20.7 -> 20.4 s together with the zygote: the work, not the waits,
    sets it there; benchmarks/README.md.) Whoever runs out of its own kind takes the
    other's (the waiter the short cases, the others the shortest waits left). Each worker is kept
    AHEAD cases ahead, one case sent per case done, so the last ones left to share are short.

    `wait_of(nodeid)` is the case's stated wait in ms (0 when it states none or is not applicable
    under the profile); it is asked only for the head of the collection.

    Why three ahead: an xdist worker starts a case only once it knows the case after it (pytest's
    `nextitem`); with two queued, every case would wait for the controller's answer to the
    previous one's report, a round trip per case through a process that gets little CPU on a
    busy machine.

    A worker starts as soon as its own collection is in, not when every worker's is: xdist sets
    the workers up one after the other, and the last one's collection came 0.1-0.4 s after the
    first's (measured under `-n 2`). A later worker joins with the same collection; one whose
    collection differs is reported as xdist reports it (a failed collection, the run fails) and
    gets no case."""
    import pytest
    from xdist.scheduler import LoadScheduling
    from xdist.scheduler.load import report_collection_diff

    class LongFirstScheduling(LoadScheduling):
        waiting: frozenset[int] = frozenset()  # collection indices of the waiting cases

        @property
        def collection_is_completed(self) -> bool:  # xdist then calls schedule() at each collection
            return bool(self.node2collection)

        def add_node_collection(self, node, collection) -> None:
            if self.collection is None or list(collection) == self.collection:
                self.node2collection[node] = list(collection)
                return
            first = next(iter(self.node2collection))
            msg = report_collection_diff(self.collection, collection, first.gateway.id, node.gateway.id)
            self.log(msg)
            self.config.hook.pytest_collectreport(
                report=pytest.CollectReport(nodeid=node.gateway.id, outcome="failed", longrepr=msg, result=[]))
            node.shutdown()

        def schedule(self) -> None:
            assert self.collection_is_completed
            if self.collection is not None:  # a later worker's collection is in: it joins
                for node in self.nodes:
                    self.check_schedule(node)
                return
            self.collection = next(iter(self.node2collection.values()))
            self.pending[:] = range(len(self.collection))
            if not self.collection:
                return
            self.waiting = frozenset(waiting_head(self.collection, wait_of) if len(self.nodes) > 1 else ())
            for node in self.nodes:
                if node in self.node2collection:
                    self._send_tests(node, AHEAD)
            if not self.pending:
                for node in self.nodes:
                    node.shutdown()

        def _send_tests(self, node, num: int) -> None:
            chosen = pick(self.pending, self.waiting, num, waiter=node is self.nodes[0])
            if chosen:
                taken = set(chosen)
                self.pending[:] = [i for i in self.pending if i not in taken]
                self.node2pending[node].extend(chosen)
                node.send_runtest_some(chosen)

        def check_schedule(self, node, duration: float = 0) -> None:
            if node.shutting_down or node not in self.node2collection:  # not collected yet (or differently)
                return
            if not self.pending:
                node.shutdown()
                return
            missing = AHEAD - len(self.node2pending[node])
            if missing > 0:
                self._send_tests(node, missing)

    return LongFirstScheduling(config, log)
