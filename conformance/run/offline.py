"""Offline analysis (`ims-conformance analyze`): what a recorded trace can and cannot judge.

- A negative test case judges the SUT's answer to a stimulus the harness sends; a trace recorded
  elsewhere holds no such stimulus: not applicable offline.
- An expectation that needs a value saved during a live run (`${saved.*}`: the token the harness
  was issued, the branch it sent), or compares with a literal the test case's own steps send (a
  Call-ID it chose), cannot be evaluated: that expectation (or its whole capture entry) is not
  applicable offline, the others are evaluated.
- A test case none of whose expected messages is in the trace, or none of those the harness itself
  sends in it (from `ue`: the stimulus), is about another scenario than the one recorded: not
  applicable offline. A trace with the stimulus and without the answer is judged.
- The identity the trace shows is given as a fixture name, a Web ID, an IMPU or an IMPI, or found
  in the trace: the introspection answer of steps 15-16 (BINDING: sub, impi, impu), else the
  REGISTERs of steps 14 and 17, else the subject of the access token of step 10.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from typing import Any

from conformance.verdicts import Finding, Verdict

ENTRY_LISTS = ("expect", "forbidden", "absent")
NEGATIVE_REASON = ("offline analysis judges a recorded trace; a negative test case judges the answer to "
                   "a stimulus the harness sends, which the trace does not contain")


def _na(subject: str, why: str, ref: str | None = None) -> Finding:
    return Finding(Verdict.NOT_APPLICABLE, subject, "a value of the live run", "offline", ref,
                   f"not applicable offline: {why}")


OPERANDS = ("equals", "starts_with", "ends_with", "contains")
MIN_STIMULUS = 6  # shorter literals ("ws", "69") are too common to tie to the stimulus


def from_stimulus(item: Mapping[str, Any], stimulus: str) -> str | None:
    """The literal an expectation compares with, when the test case's own steps send it (a
    Call-ID the harness chose): a recorded trace shows another client's values."""
    for op in OPERANDS:
        value = item.get(op)
        if isinstance(value, str) and len(value) >= MIN_STIMULUS and "${" not in value and value in stimulus:
            return value
    return None


def render_offline(block: Mapping[str, Any], render: Callable[[Any], Any],
                   error: type[Exception], stimulus: str = "") -> tuple[dict, list[Finding]]:
    """The capture block with every entry and per-message expectation that renders; what needs a
    value of the live run, or compares with a value the test case's steps send (`stimulus`: their
    text), becomes a not-applicable finding instead of an error or a false failure."""
    out: dict[str, Any] = {k: render(v) for k, v in block.items() if k not in ENTRY_LISTS}
    skipped: list[Finding] = []
    for key in ENTRY_LISTS:
        kept = []
        for entry in block.get(key) or []:
            label = f"capture {key} step {entry.get('flow')}" if entry.get("flow") is not None else f"capture {key}"
            head = {k: v for k, v in entry.items() if k != "expect"}
            try:
                rendered = dict(render(head))
            except error as exc:
                skipped.append(_na(label, str(exc), entry.get("ref")))
                continue
            inner = []
            for item in entry.get("expect") or []:
                literal = from_stimulus(item, stimulus)
                if literal is not None:
                    what = item.get("name") or item.get("header") or item.get("json") or "expectation"
                    skipped.append(_na(f"{label} {what}", f"{literal!r} is sent by the test case's own steps",
                                       item.get("ref")))
                    continue
                try:
                    inner.append(render(item))
                except error as exc:
                    what = item.get("name") or item.get("header") or item.get("json") or "expectation"
                    skipped.append(_na(f"{label} {what}", str(exc), item.get("ref")))
            if "expect" in entry:
                rendered["expect"] = inner
            kept.append(rendered)
        if key in block:
            out[key] = kept
    return out, skipped


_LEG = re.compile(r" ([\w|]+)->([\w|]+) ")


def scenario_absent(findings: list[Finding], timeline=None) -> bool:
    """True when the trace does not show the test case's scenario: none of the messages it expects
    is there; or none of those the harness itself sends in it (from `ue`: the stimulus); or an
    expected message on a leg of the harness (`ue`) is missing and the trace has no traffic at all
    between the two (the UE of the trace is another node, e.g. the 3rdWWS in relay mode). A trace
    that shows the harness's leg and lacks an answer on it is judged (fail), never excused."""
    entries = [f for f in findings if f.subject.startswith("capture ") and f.expected.startswith("present")
               and _LEG.search(f.subject) and " header " not in f.subject and " json " not in f.subject]
    if not entries:
        return False
    if all(f.actual == "missing" for f in entries):
        return True
    legs = {tuple(sorted((i.src_node or "?", i.dst_node or "?"))) for i in (timeline.items if timeline else [])}
    stimulus = []
    for f in entries:
        src, dst = (set(side.split("|")) for side in _LEG.search(f.subject).groups())
        if "ue" in src:
            stimulus.append(f)
        if f.actual == "missing" and "ue" in src | dst and timeline is not None:
            other = (dst if "ue" in src else src) - {"ue"}
            if other and not any(tuple(sorted(("ue", o))) in legs for o in other):
                return True
    return bool(stimulus) and all(f.actual == "missing" for f in stimulus)


# -- identity ---------------------------------------------------------------------------------------
def _user(web_id: str, impi: str, impus: list[str]) -> dict:
    return {"web_id": web_id, "impi": impi, "impus": list(impus)}


def _strip_sip(uri: str) -> str:
    uri = uri.strip().strip("<>").split(";", 1)[0].strip("<>")
    return uri[4:] if uri.startswith("sip:") else uri


def identity_from_trace(timeline) -> dict | None:
    """Web ID, IMPI and IMPUs of the registration the trace shows, or None."""
    from conformance.events import HttpExchange, SipReceived

    web_id = impi = None
    impus: list[str] = []
    token_sub = None
    answers = []  # introspection answers (BINDING step 16: sub, impi, impu), in trace order
    for item in timeline.items:
        ev = item.event
        if isinstance(ev, HttpExchange) and ev.body[:1] == b"{":
            try:
                doc = json.loads(ev.body)
            except ValueError:
                continue
            if isinstance(doc, dict) and doc.get("active") and doc.get("impi") and doc.get("sub"):
                found = doc["impu"] if isinstance(doc.get("impu"), list) else [doc.get("impu")]
                answers.append(_user(str(doc["sub"]), str(doc["impi"]), [str(u) for u in found if u]))
            elif isinstance(doc, dict) and isinstance(doc.get("access_token"), str) and token_sub is None:
                token_sub = _jwt_sub(doc["access_token"])  # step 10: whose token it is
    for item in timeline.items:  # no introspection on the trace (local JWT): the REGISTERs
        ev = item.event
        if not isinstance(ev, SipReceived) or type(ev.message).__name__ != "Request" \
                or ev.message.method != "REGISTER":
            continue
        msg = ev.message
        to = msg.headers.get("To")
        if item.src_node == "ue" and web_id is None and to:
            web_id = _strip_sip(str(to))
        if item.dst_node == "pcscf":  # step 17 (relay: from the WSF; direct: from the UE)
            if to and not impus:
                impus = [str(to).strip().split(";", 1)[0].strip("<>")]
            for value in msg.headers.get_all("Authorization"):
                if "username=" in value:
                    impi = value.split("username=", 1)[1].split(",", 1)[0].strip().strip('"')
    for answer in answers:  # the answer about the user the REGISTER carried
        if impi is None or answer["impi"] == impi:
            return answer
    if web_id and impi:
        return _user(web_id, impi, impus)
    if answers:
        return answers[-1]
    return _user(token_sub, "", []) if token_sub else None  # only the Web ID is known


def _jwt_sub(token: str) -> str | None:
    from conformance.codec import jwt as jwt_codec

    try:
        return str(jwt_codec.decode_unverified(token)[1].get("sub") or "") or None
    except jwt_codec.JwtError:
        return None


class IdentityError(ValueError):
    pass


def resolve_identity(given: str | None, fixtures: Mapping[str, dict], timeline) -> dict:
    """The user whose registration the trace shows. `given`: a fixture name, or a Web ID, IMPU or
    IMPI of a fixture or of the identity found in the trace."""
    def names(u: Mapping) -> set[str]:
        ids = {u.get("web_id"), u.get("impi"), *(u.get("impus") or [])}
        return {i for i in ids if i} | {_strip_sip(i) for i in ids if i}

    if given and given in fixtures:
        return dict(fixtures[given])
    found = identity_from_trace(timeline)
    if not given:
        if found is not None:
            return found
        if fixtures:
            return dict(next(iter(fixtures.values())))
        raise IdentityError("no identity in the trace (no introspection answer, no REGISTER pair) and no "
                            "users.fixtures in the profile: give --user WEB_ID")
    wanted = _strip_sip(given)
    for u in ([found] if found else []) + [dict(f) for f in fixtures.values()]:
        if given in names(u) or wanted in names(u):
            return dict(u)
    shown = f"; the trace shows {found['web_id']} ({found['impi']})" if found else ""
    raise IdentityError(f"--user {given}: neither a fixture name of the profile ({', '.join(fixtures) or 'none'}) "
                        f"nor a Web ID, IMPU or IMPI of one{shown}")
