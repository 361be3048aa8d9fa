"""A test case's dealings with the emulated peers: install its scripts before the steps, and
afterwards turn what the peers received into report evidence and findings (`peers.expect`, checked
with the same matchers as steps)."""

from __future__ import annotations

import re
from collections.abc import Callable

from conformance.codec.sip_headers import HeaderError, parse_name_addr
from conformance.events import HttpExchange, SipReceived
from conformance.match.engine import check
from conformance.peers.base import active
from conformance.peers.script import Record, Script
from conformance.verdicts import Finding, Level, Verdict

_CREDENTIALS = re.compile(r"(?im)^((?:proxy-)?authorization:\s*(?:basic|bearer))\s+\S.*$")
MAX_SHOWN_BYTES = 4096


def _block(tc) -> dict:
    return (getattr(tc, "raw", None) or {}).get("peers") or {}


def scripts_of(tc) -> list[Script]:
    return [Script.from_spec(s) for s in (_block(tc).get("script") or [])]


def begin(tc) -> None:
    peers = active()
    if peers is not None:
        peers.resume()  # should an earlier case have ended without finish(), its peer is back first
        peers.board.begin(scripts_of(tc))
        peers.pause(peers.board.down())


def finish(tc, mctx, render: Callable, reporter, redact: Callable[[str], str]) -> list[Finding]:
    peers = active()
    if peers is not None:
        peers.resume()  # a peer the case took down listens again for the next one
    records, errors = peers.board.end() if peers is not None else ([], [])
    if records:
        reporter.attach_text("emulated peers: what they received", redact(show_records(records)))
    findings = [Finding(Verdict.ERROR, "emulated peer", "a working peer", "harness error", message=e)
                for e in errors]
    for item in _block(tc).get("expect") or []:
        findings += _check_item(render(item), records, mctx, peers is not None, getattr(item, "line", None))
    return findings


def _check_item(item: dict, records: list[Record], mctx, running: bool, line) -> list[Finding]:
    peer, on = item["peer"], item["on"]
    seen = [r for r in records if r.peer == peer and r.on.lower() == on.lower()]
    ref, level = item.get("ref"), Level(item.get("level", "MUST"))
    subject = f"emulated {peer} received {on}"
    if not running:
        return [Finding(Verdict.INCONCLUSIVE, subject, "an emulated peer", "the harness plays no peer",
                        message="this profile supplies the node; nothing to look at", ref=ref, line=line)]
    if item.get("received", True) is False:
        # the node's own de-registration of an earlier case's flow (wsf.on_ws_close: deregister)
        # may reach a peer after that case ended: it belongs to that case's user, not to this one
        seen = [r for r in seen if not _foreign_deregistration(r, mctx)]
        if seen:
            return [Finding(Verdict.FAIL, subject, "nothing", f"{len(seen)} message(s)", ref=ref, level=level,
                            line=line, message=_first_line(seen[0]))]
        return [Finding(Verdict.PASS, subject, "nothing", "nothing", ref=ref, level=level, line=line)]
    if not seen:
        return [Finding(Verdict.FAIL, subject, "at least one", "none", ref=ref, level=level, line=line)]
    findings = [Finding(Verdict.PASS, subject, "at least one", str(len(seen)), ref=ref, level=level, line=line)]
    for f in check(item.get("expect") or [], seen[0].event, mctx):
        f.subject = f"{subject}: {f.subject}"
        f.line = f.line or line
        findings.append(f)
    return findings


def _foreign_deregistration(record: Record, mctx) -> bool:
    """A REGISTER that only removes bindings (RFC 3261 10.2.2) of an AoR none of this case's
    identities has."""
    ev = record.event
    msg = getattr(ev, "message", None)
    if not isinstance(ev, SipReceived) or getattr(msg, "method", None) != "REGISTER":
        return False
    expires = (msg.headers.get("Expires") or "").strip()
    contacts = msg.headers.get_all("Contact")
    removing = contacts == ["*"] or (expires == "0" and not any("expires=" in c.lower() for c in contacts)) or (
        contacts and all(re.search(r";\s*expires\s*=\s*0\b", c, re.I) for c in contacts))
    if not removing:
        return False
    try:
        aor = str(parse_name_addr(msg.headers.get("To") or "").uri)
    except (HeaderError, ValueError):
        return False
    ours = {u for ident in (mctx.identities or {}).values() for u in ident.get("impus", [])}
    return bool(ours) and aor not in ours


def _first_line(record: Record) -> str:
    return show_records([record]).splitlines()[0]


def show_records(records: list[Record]) -> str:
    """Evidence text: each message as the peer received it, credentials masked."""
    out = []
    for r in records:
        out.append(f"--- {r.peer} <- {r.on} (answered: {r.answered})")
        ev = r.event
        if isinstance(ev, SipReceived):
            text = ev.raw[:MAX_SHOWN_BYTES].decode("utf-8", "replace")
        elif isinstance(ev, HttpExchange):
            head = "\n".join(f"{k}: {v}" for k, v in ev.request_headers)
            text = f"{ev.method} {ev.url}\n{head}\n\n" + ev.request_body[:MAX_SHOWN_BYTES].decode("utf-8", "replace")
            text = re.sub(r"(?<=token=)[^&\s]+", "[token]", text)
        else:
            text = repr(ev)
        out.append(_CREDENTIALS.sub(r"\1 [redacted]", text))
    return "\n".join(out)
