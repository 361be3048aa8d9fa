"""The `capture:` block of a test case, evaluated against a capture's Timeline (docs/capture.md).

    expect     messages that must appear on named legs, in this order on the wire
    forbidden  messages that must not appear (optionally within a window)
    absent     no packet at all may reach a node within a window ("nothing reaches the P-CSCF")

Verdicts: a message seen where and when expected passes (and its `expect` list is checked by the
same matchers as steps); seen out of order fails ("step 17 came before step 15"); missing fails
only when its leg was observable, otherwise it is inconclusive: a leg that was not captured, could
not be decrypted, or has holes never makes an assertion pass.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from conformance.capture import blind_spots, pairing
from conformance.capture.timeline import UE, HttpRequestSeen, Timeline, TimelineItem, WsFrameSeen
from conformance.events import Garbage, HttpExchange, SipReceived, WsHandshake
from conformance.match.levels import level_of
from conformance.verdicts import Finding, Verdict

SELECTORS = ("http", "ws_handshake", "ws", "sip", "garbage", "tls_alert", "any")
ENTRY_KEYS = {"flow", "from", "to", "expect", "optional", "order", "ref", "level", "name", "note", "after",
              "within_ms"} | set(SELECTORS)
ABSENT_KEYS = {"from", "to", "within_ms", "after", "ref", "level", "name", "note"}


class BlockError(ValueError):
    """The capture block itself is wrong (verdict error: the test case, not the SUT)."""


def _nodes(value: Any, known: set[str], where: str) -> set[str] | None:
    """`from`/`to`: a node name, "a|b", or a list; `ue` is the harness. None = any node."""
    if value is None:
        return None
    names = value if isinstance(value, list) else str(value).split("|")
    names = [str(n).strip() for n in names if str(n).strip()]
    unknown = [n for n in names if n not in known]
    if unknown:
        raise BlockError(f"{where}: unknown node {', '.join(unknown)} (known: {', '.join(sorted(known))})")
    return set(names)


@dataclass
class Entry:
    kind: str  # expect | forbidden | absent
    spec: Mapping[str, Any]
    position: int
    src: set[str] | None
    dst: set[str] | None
    selector: str | None
    sel: Mapping[str, Any]

    @property
    def flow(self) -> Any:
        return self.spec.get("flow")

    @property
    def optional(self) -> bool:
        return bool(self.spec.get("optional"))

    @property
    def any_order(self) -> bool:
        """`order: any`: the binding does not order this message against its neighbours (steps 12
        and 13 in relay mode): it must appear, anywhere in the capture."""
        return self.spec.get("order") == "any"

    @property
    def step_label(self) -> str:
        flow = self.flow
        if flow is None:
            return f"{self.kind} #{self.position + 1}"
        return f"step {flow}"

    def what(self) -> str:
        detail = " ".join(f"{k}={v}" for k, v in self.sel.items()) if self.sel else ""
        return (self.selector or "packet") + (f" {detail}" if detail else "")

    def describe(self) -> str:
        frm = "|".join(sorted(self.src)) if self.src else "any"
        to = "|".join(sorted(self.dst)) if self.dst else "any"
        name = self.spec.get("name")
        return (f"{name}: " if name else "") + f"{frm}->{to} {self.what()}"


@dataclass
class EntryResult:
    entry: Entry
    status: str  # matched | out_of_order | missing | optional_missing | unobservable | seen | clear
    item: TimelineItem | None = None
    before: Entry | None = None  # out_of_order: the expected message it should have followed
    reason: str = ""
    hits: list[TimelineItem] = field(default_factory=list)  # forbidden/absent: offending items


@dataclass
class BlockMatch:
    results: list[EntryResult]
    unusable: str | None = None  # the capture as a whole could not be used

    def by_item(self) -> dict[int, EntryResult]:
        return {r.item.index: r for r in self.results if r.item is not None and r.status in ("matched", "out_of_order")}


# -- parsing the block ----------------------------------------------------------------------

def parse_block(block: Mapping[str, Any], pixit: Mapping[str, Any] | None = None,
                known: set[str] | None = None) -> list[Entry]:
    if known is None:
        known = {UE} | set(((pixit or {}).get("nodes") or {}).keys())
    entries: list[Entry] = []
    for kind in ("expect", "forbidden", "absent"):
        for pos, spec in enumerate(block.get(kind) or []):
            where = f"capture.{kind}[{pos}]"
            if not isinstance(spec, Mapping):
                raise BlockError(f"{where}: an entry is a mapping")
            allowed = ABSENT_KEYS if kind == "absent" else ENTRY_KEYS
            extra = [k for k in spec if k not in allowed]
            if extra:
                raise BlockError(f"{where}: unknown key(s) {', '.join(map(str, extra))}")
            sels = [k for k in SELECTORS if k in spec]
            if kind != "absent" and len(sels) != 1:
                raise BlockError(f"{where}: name exactly one message kind of {', '.join(SELECTORS)}")
            try:
                level_of(spec)
            except ValueError as exc:
                raise BlockError(f"{where}: {exc}") from None
            sel = spec.get(sels[0]) if sels else None
            if sel is not None and not isinstance(sel, Mapping):
                raise BlockError(f"{where}: {sels[0]} takes a mapping of criteria")
            entries.append(Entry(kind, spec, pos, _nodes(spec.get("from"), known, where),
                                 _nodes(spec.get("to"), known, where), sels[0] if sels else None, sel or {}))
    return entries


# -- selecting items ------------------------------------------------------------------------

def _is_request(msg: Any) -> bool:
    return bool(getattr(msg, "is_request", hasattr(msg, "uri")))


def _text_match(want: Any, got: Any) -> bool:
    if got is None:
        return False
    if isinstance(want, list):
        return any(_text_match(w, got) for w in want)
    return str(want).lower() == str(got).lower()


def _path_match(sel: Mapping[str, Any], url: str) -> bool:
    path = url.split("?", 1)[0]
    if "path" in sel and path != sel["path"]:
        return False
    return not ("path_regex" in sel and not re.search(sel["path_regex"], url))


def selects(entry: Entry, item: TimelineItem) -> bool:
    """Whether the item is on the entry's leg and is the kind of message it names."""
    if entry.src is not None and item.src_node not in entry.src:
        return False
    if entry.dst is not None and item.dst_node not in entry.dst:
        return False
    ev, sel, kind = item.event, entry.sel, entry.selector
    if kind == "any":
        return not isinstance(ev, WsFrameSeen) or ev.carried is None
    if kind == "http":
        if "status" in sel:
            return (isinstance(ev, HttpExchange) and _status_match(sel["status"], ev.status)
                    and ("method" not in sel or _text_match(sel["method"], ev.method)) and _path_match(sel, ev.url))
        return (isinstance(ev, HttpRequestSeen) and ("method" not in sel or _text_match(sel["method"], ev.method))
                and _path_match(sel, ev.url))
    if kind == "ws_handshake":
        if not isinstance(ev, WsHandshake):
            return False
        if "status" in sel:
            return _status_match(sel["status"], ev.status)
        return ev.status is None and _path_match(sel, ev.url)
    if kind == "ws":
        if not isinstance(ev, WsFrameSeen):
            return False
        checks = {"opcode": ev.opcode, "masked": ev.masked, "fin": ev.fin,
                  "close_code": ev.close.code if ev.close else None, "error": ev.error is not None}
        return all(k not in sel or (sel[k] == v if not isinstance(sel[k], str) else _text_match(sel[k], v))
                   for k, v in checks.items())
    if kind == "sip":
        if not isinstance(ev, SipReceived):
            return False
        msg = ev.message
        if "transport" in sel and not _text_match(sel["transport"], ev.transport):
            return False
        if "status" in sel:  # a response; `method` is then the CSeq method it answers
            return (not _is_request(msg) and _status_match(sel["status"], getattr(msg, "status", None))
                    and ("method" not in sel or _text_match(sel["method"], getattr(msg, "method", None))))
        return _is_request(msg) and ("method" not in sel or _text_match(sel["method"], msg.method))
    if kind == "garbage":
        return isinstance(ev, Garbage) and ("reason" not in sel or re.search(sel["reason"], ev.reason) is not None)
    if kind == "tls_alert":
        return type(ev).__name__ == "TlsAlertSeen"
    return False


def _status_match(want: Any, got: Any) -> bool:
    if got is None:
        return False
    if isinstance(want, list):
        return got in want
    if isinstance(want, str) and re.fullmatch(r"\dxx", want):
        return str(got)[0] == want[0]
    return got == want


# -- observability --------------------------------------------------------------------------

def observability(entry: Entry, timeline: Timeline) -> str | None:
    """Why the entry's leg could not be fully seen (None: it could)."""
    seen_nodes = {n for _, s, d, _ in timeline.packets for n in (s, d) if n} | timeline.observable_nodes
    srcs = entry.src if entry.src is not None else None
    dsts = entry.dst if entry.dst is not None else None
    problems = []
    for key, cov in timeline.coverage.items():
        a, b = key
        if _touches(a, b, srcs, dsts):
            if cov.undecryptable:
                problems.append(f"leg {a}-{b} could not be decrypted ({cov.undecryptable[0]})")
            if cov.gaps:
                problems.append(f"leg {a}-{b} has holes ({cov.gaps[0]})")
    if problems:
        return "; ".join(problems)
    for side, nodes in (("from", srcs), ("to", dsts)):
        if nodes is not None and not nodes & seen_nodes:
            return (f"no packet of {'|'.join(sorted(nodes))} was captured at all ({side} side): "
                    "the leg was not captured")
    return None


def _touches(a: str, b: str, srcs: set[str] | None, dsts: set[str] | None) -> bool:
    def side(n, nodes):
        return nodes is None or n in nodes
    return (side(a, srcs) and side(b, dsts)) or (side(b, srcs) and side(a, dsts))


# -- matching the block ---------------------------------------------------------------------

def match_block(block: Mapping[str, Any], timeline: Timeline, pixit: Mapping[str, Any] | None = None,
                unusable: str | None = None, entries: list[Entry] | None = None,
                identity: Iterable[str] = ()) -> BlockMatch:
    """`identity`: the test case's own identity strings when nobody else uses them
    (correlate.identity_of); with them a request entry never takes another user's request."""
    entries = entries if entries is not None else parse_block(block, pixit)
    results: list[EntryResult] = []
    if unusable:
        return BlockMatch([EntryResult(e, "unobservable", reason=unusable) for e in entries], unusable)
    items = timeline.items
    results_of: dict[int, EntryResult] = {}
    expects = [x for x in entries if x.kind == "expect"]
    fits = _Pairing(expects, items, results_of, identity).fits
    used = _match_required(expects, items, timeline, results_of, fits)
    _match_optional(expects, items, results_of, used, fits)
    by_flow: dict[str, EntryResult] = {}
    for e in expects:
        r = results_of[id(e)]
        if e.flow is not None and r.item is not None:
            by_flow.setdefault(str(e.flow), r)
        results.append(r)
    for e in (x for x in entries if x.kind in ("forbidden", "absent")):
        window = _window(e, timeline, by_flow)
        if isinstance(window, str):
            results.append(EntryResult(e, "unobservable", reason=window))
            continue
        lo, hi = window
        if e.kind == "forbidden":
            hits = [i for i in items if lo <= i.t <= hi and fits(e, i)]
        else:
            hits = [TimelineItem(t, "", "", s, d, "packet", f"{n} bytes") for t, s, d, n in timeline.packets
                    if lo <= t <= hi and (e.src is None or s in e.src) and (e.dst is None or d in e.dst)]
        if hits:
            results.append(EntryResult(e, "seen", hits[0], hits=hits))
            continue
        why = observability(e, timeline) if e.kind == "forbidden" else None
        results.append(EntryResult(e, "unobservable" if why else "clear", reason=why or ""))
    return BlockMatch(results)



@dataclass
class SettleMatch:
    """The match the adaptive settle made on a result, and what it depended on. evaluate_capture
    reuses it (one match_block of about 2 ms per test case, issue 15) only when the block, the
    result's timeline (the same object, with the same problems), its error and the identity are
    all unchanged; anything else is matched again."""

    block: Mapping[str, Any]
    timeline: Timeline
    problems: int
    error: str | None
    identity: frozenset
    entries: list[Entry]
    bm: BlockMatch

    @classmethod
    def of(cls, block, result, pixit, identity: Iterable[str] = ()) -> SettleMatch:
        """Parse and match as evaluate_capture does; raises BlockError like parse_block."""
        entries = parse_block(block, pixit, _known_nodes(pixit, result))
        bm = match_block(block, result.timeline, pixit, unusable=result.error, entries=entries, identity=identity)
        return cls(block, result.timeline, len(result.timeline.problems), result.error, frozenset(identity),
                   entries, bm)

    def still_fits(self, block, result, identity: Iterable[str]) -> bool:
        return (block is self.block and result.timeline is self.timeline and result.error == self.error
                and len(result.timeline.problems) == self.problems and frozenset(identity) == self.identity)


class _Pairing:
    """Whether an entry may take an item: `selects` (leg and kind), and the item is of the test
    case's own transactions and flows (capture/pairing.py). A SIP or HTTP response entry whose
    request the block names (the entry of the flow step it answers, else the nearest earlier
    request entry of its kind on the way back) takes only a response to the very message that
    entry matched; otherwise a response to a request of the case (HTTP: to a request captured in
    the window). A SIP request entry never takes a request of another flow when the case's
    identity is known."""

    def __init__(self, expects: list[Entry], items: list[TimelineItem], results_of: dict[int, EntryResult],
                 identity: Iterable[str]):
        self.expects, self.results_of = expects, results_of
        self.requests = [i for i in items if pairing.is_request(pairing.sip_message(i))]
        self.http_requests = [i for i in items if isinstance(i.event, HttpRequestSeen)]
        self.case = pairing.CaseRequests(items, identity)

    def fits(self, e: Entry, item: TimelineItem) -> bool:
        if not selects(e, item):
            return False
        if e.selector == "http" and "status" in e.sel:  # a response: to the request of its entry
            r = self._request_result(e)
            if r is not None and isinstance(r.item.event, HttpRequestSeen):
                return pairing.http_answers(item, r.item)
            return any(pairing.http_answers(item, q) for q in self.http_requests)
        if e.selector != "sip":
            return True
        if "status" not in e.sel:
            return self.case.request_of_case(item)
        r = self._request_result(e)
        if r is not None and pairing.sip_message(r.item) is not None:
            return pairing.answers(item, r.item)
        return self.case.answers_case(item, [q for q in self.requests if q.index < item.index])

    def _request_result(self, e: Entry) -> EntryResult | None:
        """What the block's entry for the request this response entry answers matched, if it did."""
        request = self._request_entry(e)
        r = self.results_of.get(id(request)) if request is not None else None
        return r if r is not None and r.item is not None else None

    def _request_entry(self, e: Entry) -> Entry | None:
        if e.kind != "expect":
            return None
        requests = [q for q in self.expects if q.selector == e.selector and "status" not in q.sel
                    and _reverse_leg(q, e) and _same_method(q, e)]
        step = pairing.ANSWERS_STEP.get(_int(e.flow))
        named = [q for q in requests if step is not None and _int(q.flow) == step]
        if named:
            return named[0]
        earlier = [q for q in requests if self.expects.index(q) < self.expects.index(e)]
        return earlier[-1] if earlier else None


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _reverse_leg(request: Entry, response: Entry) -> bool:
    """The request entry's leg is the response entry's leg the other way round (None = any)."""
    def meet(a: set[str] | None, b: set[str] | None) -> bool:
        return a is None or b is None or bool(a & b)
    return meet(request.src, response.dst) and meet(request.dst, response.src)


def _same_method(request: Entry, response: Entry) -> bool:
    want, got = response.sel.get("method"), request.sel.get("method")
    return want is None or got is None or _text_match(want, got)


def _match_required(expects: list[Entry], items: list[TimelineItem], timeline: Timeline,
                    results_of: dict[int, EntryResult], fits) -> set[int]:
    """Required entries first, in order, each taking the first fitting message after the previous
    one: an optional entry never takes a message a required one needs."""
    last = -1
    matched: list[EntryResult] = []
    for e in (x for x in expects if not x.optional and not x.any_order):
        cands = [i for i in items if fits(e, i)]
        after = [i for i in cands if i.index > last]
        if after:
            r = EntryResult(e, "matched", after[0])
            last = after[0].index
            matched.append(r)
        elif cands:
            first = cands[0]
            later = [m for m in matched if m.item.index > first.index]
            r = EntryResult(e, "out_of_order", first, before=later[0].entry if later else None)
        else:
            why = observability(e, timeline)
            r = EntryResult(e, "unobservable" if why else "missing", reason=why or "")
        results_of[id(e)] = r
    used = {m.item.index for m in matched}
    for e in (x for x in expects if not x.optional and x.any_order):
        cands = [i for i in items if fits(e, i) and i.index not in used]
        if cands:
            r = EntryResult(e, "matched", cands[0])
            used.add(cands[0].index)
        else:
            why = observability(e, timeline)
            r = EntryResult(e, "unobservable" if why else "missing", reason=why or "")
        results_of[id(e)] = r
    return used


def _match_optional(expects: list[Entry], items: list[TimelineItem], results_of: dict[int, EntryResult],
                    used: set[int], fits) -> None:
    """An optional entry matches a message between its matched neighbours (when present it still
    has to be in order); missing, it checks nothing."""
    for pos, e in enumerate(expects):
        if not e.optional:
            continue
        lo = max((results_of[id(x)].item.index for x in expects[:pos]
                  if id(x) in results_of and not x.any_order and results_of[id(x)].status == "matched"), default=-1)
        hi = min((results_of[id(x)].item.index for x in expects[pos + 1:]
                  if not x.optional and not x.any_order and results_of[id(x)].status == "matched"),
                 default=float("inf"))
        cands = [i for i in items if fits(e, i) and i.index not in used]
        inside = [i for i in cands if lo < i.index < hi]
        if inside:
            r = EntryResult(e, "matched", inside[0])
            used.add(inside[0].index)
        elif cands:
            nxt = next((x for x in expects[pos + 1:] if not x.optional and not x.any_order), None)
            r = EntryResult(e, "out_of_order", cands[0], before=nxt)
        else:
            r = EntryResult(e, "optional_missing")
        results_of[id(e)] = r

def _window(e: Entry, timeline: Timeline, by_flow: dict[str, EntryResult]) -> tuple[float, float] | str:
    lo = timeline.t_start if timeline.t_start is not None else float("-inf")
    end = timeline.t_end if timeline.t_end is not None else float("inf")
    ref = e.spec.get("after")
    if ref is not None:
        r = by_flow.get(str(ref))
        if r is None:
            return f"the reference message (step {ref}) was not seen, so the window has no start"
        lo = r.item.t
    within = e.spec.get("within_ms")
    if within is None:
        return lo, end
    hi = lo + float(within) / 1000
    if timeline.t_end is not None and hi > timeline.t_end + 1e-6:
        return (f"the capture ended {max(0.0, (timeline.t_end - lo) * 1000):.0f} ms after the window start, "
                f"before the {within} ms window closed (raise settle_ms)")
    return lo, hi


# -- findings -------------------------------------------------------------------------------

def _at(item: TimelineItem, timeline: Timeline) -> str:
    t0 = timeline.t_start or item.t
    return f"#{item.index} {item.src_node or item.src}->{item.dst_node or item.dst} {item.summary()} at +{(item.t - t0) * 1000:.1f} ms"


def as_matchable(ev: Any) -> Any:
    """A captured request is checked like a message: its own headers and body are the subject."""
    if isinstance(ev, HttpRequestSeen):
        return HttpExchange(method=ev.method, url=ev.url, request_headers=ev.headers, request_body=ev.body,
                            status=None, headers=ev.headers, body=ev.body)
    return ev


def evaluate_capture(block: Mapping[str, Any] | None, result, ctx, pixit: Mapping[str, Any] | None = None,
                     identity: Iterable[str] = ()) -> list[Finding]:
    """Findings for every entry of the block (and for every per-message expectation);
    `identity` as in match_block."""
    if not block:
        return []
    timeline = result.timeline
    reused = result.settle_match
    if reused is not None and reused.still_fits(block, result, identity):  # the settle's last match, as is
        entries, bm = reused.entries, reused.bm
    else:
        try:
            entries = parse_block(block, pixit, _known_nodes(pixit, result))
        except BlockError as exc:
            return [Finding(Verdict.ERROR, "capture block", "a well-formed capture block", "malformed", None, str(exc))]
        bm = match_block(block, timeline, pixit, unusable=result.error, entries=entries, identity=identity)
    result.block_match = bm
    spots = [] if bm.unusable else _blind_spots(entries, timeline)
    explained: set[int] = set()
    findings: list[Finding] = []
    for r in bm.results:
        e = r.entry
        subject = f"capture {e.step_label} {e.describe()}"
        ref = e.spec.get("ref")
        line = _line(e.spec)
        level = level_of(e.spec)
        if r.status == "matched":
            findings.append(Finding(Verdict.PASS, subject, "present" + (" in order" if e.kind == "expect" else ""),
                                    _at(r.item, timeline), ref, line=line, level=level))
        elif r.status == "out_of_order":
            msg = (f"{e.step_label} came before {r.before.step_label}" if r.before is not None
                   else f"{e.step_label} out of order")
            findings.append(Finding(Verdict.FAIL, subject, "present in order", _at(r.item, timeline), ref, msg, line,
                                    level))
        elif r.status == "missing":
            on_leg = [u for u in spots if _on_leg(e, u.item)]
            if on_leg:  # not missing: sent, but in a form the dissector could not read
                explained.update(u.item.index for u in on_leg)
                findings.append(Finding(Verdict.FAIL, subject, "present", "not dissectable: " + _at(on_leg[0].item,
                                                                                                    timeline),
                                        ref, f"{e.step_label} could not be dissected: {blind_spots.describe(on_leg[0])}"
                                        + (f" (+{len(on_leg) - 1} more undissectable)" if len(on_leg) > 1 else ""),
                                        line, level))
            else:
                findings.append(Finding(Verdict.FAIL, subject, "present", "missing", ref,
                                        f"{e.step_label} missing", line, level))
        elif r.status == "optional_missing":
            findings.append(Finding(Verdict.PASS, subject, "optional", "not seen", ref, "optional message", line,
                                    level))
        elif r.status == "unobservable":
            findings.append(Finding(Verdict.INCONCLUSIVE, subject, _expected_word(e), "not observed", ref,
                                    r.reason, line, level))
        elif r.status == "seen":
            n = len(r.hits)
            findings.append(Finding(Verdict.FAIL, subject, "nothing" if e.kind == "absent" else "absent",
                                    _at(r.item, timeline) + (f" (+{n - 1} more)" if n > 1 else ""), ref,
                                    f"{e.step_label}: {'a packet reached' if e.kind == 'absent' else 'forbidden message seen'}",
                                    line, level))
        else:  # clear
            findings.append(Finding(Verdict.PASS, subject, "nothing" if e.kind == "absent" else "absent",
                                    "nothing seen", ref, line=line, level=level))
        if r.item is not None and e.kind == "expect" and e.spec.get("expect"):
            findings += _check_message(e, r.item, ctx)
    findings += _blind_spot_findings([u for u in spots if u.item.index not in explained], timeline)
    vacuous = _vacuous(bm)
    if vacuous:
        findings.append(Finding(Verdict.INCONCLUSIVE, "capture block", "at least one entry checked", "nothing checked",
                                None, vacuous))
    return findings


MAX_BLIND_SPOT_FINDINGS = 5  # one per undissectable message, bounded; the pcapng has the rest


def _on_leg(e: Entry, item: TimelineItem) -> bool:
    return ((e.src is None or item.src_node in e.src) and (e.dst is None or item.dst_node in e.dst))


def _blind_spots(entries: list[Entry], timeline: Timeline) -> list[blind_spots.Undissectable]:
    """Undissectable messages a network node sent on a leg the block asserts, unless an entry of
    the block names them itself (a `garbage` or `ws: {error: true}` entry)."""
    legs = [e for e in entries if e.kind in ("expect", "forbidden")]
    out = []
    for item in timeline.items:
        u = blind_spots.undissectable(item)
        if (u is None or not blind_spots.sent_by_network(item) or not any(_on_leg(e, item) for e in legs)
                or any(selects(e, item) for e in legs)):
            continue
        out.append(u)
    return out


_CLAUSE = re.compile(r"RFC \d+ [\d.]+")


def _blind_spot_findings(spots: list[blind_spots.Undissectable], timeline: Timeline) -> list[Finding]:
    out = []
    for u in spots[:MAX_BLIND_SPOT_FINDINGS]:
        clause = _CLAUSE.search(u.reason)
        out.append(Finding(Verdict.FAIL, f"capture undissectable message {_at(u.item, timeline)}",
                           "a well-formed message", blind_spots.excerpt(u.raw), clause.group(0) if clause else None,
                           u.reason))
    if len(spots) > MAX_BLIND_SPOT_FINDINGS:
        out.append(Finding(Verdict.FAIL, "capture undissectable messages", "well-formed messages",
                           f"{len(spots) - MAX_BLIND_SPOT_FINDINGS} more not shown", None))
    return out


def _vacuous(bm: BlockMatch) -> str:
    """A block whose every entry is an optional message that did not appear has checked nothing:
    that is inconclusive, never pass."""
    if not bm.results or any(r.entry.kind != "expect" or not r.entry.optional for r in bm.results):
        return ""
    if any(r.status != "optional_missing" for r in bm.results):
        return ""
    return "every capture entry is optional and none of them was seen"


def _expected_word(e: Entry) -> str:
    return {"expect": "present", "forbidden": "absent", "absent": "nothing"}[e.kind]


def _check_message(e: Entry, item: TimelineItem, ctx) -> list[Finding]:
    from conformance.match.engine import check

    out = []
    for f in check(list(e.spec.get("expect") or []), as_matchable(item.event), ctx):
        f.subject = f"capture {e.step_label} {f.subject}"
        out.append(f)
    return out


def _known_nodes(pixit: Mapping[str, Any] | None, result) -> set[str]:
    known = {UE} | set(getattr(result, "nodes", None) or [])
    if pixit:
        known |= set((pixit.get("nodes") or {}).keys())
    return known


def _line(spec: Any) -> int | None:
    mark = getattr(spec, "mark", None)
    if isinstance(mark, tuple | list) and mark and isinstance(mark[0], int):
        return mark[0]
    line = getattr(spec, "line", None)
    return line if isinstance(line, int) else None
