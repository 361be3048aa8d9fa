"""Registrar rules of the lifecycle procedures (docs/lifecycle.md), kept out of refnet/cscf.py.

RFC 3261 10.3 step 7: a registrar MAY refuse an expiry shorter than it accepts with
423 (Interval Too Brief) and a Min-Expires header; expires=0 is a removal, never too brief.
RFC 3261 8.2.6.2 / 19.3: the To tag a UAS adds must be globally unique per dialog-creating
answer; fault scscf-fixed-to-tag uses one tag for every response to show a test catches it.
"""

from __future__ import annotations

from .sip import Response, parse_name_addr

FIXED_TO_TAG = "scscf0000"


class TooBrief(Exception):
    def __init__(self, minimum: int):
        super().__init__(f"expiry below Min-Expires {minimum}")
        self.minimum = minimum


def check_min_expires(asked: int, minimum: int) -> None:
    if 0 < asked < minimum:
        raise TooBrief(minimum)


def fix_to_tag(resp: Response, tag: str) -> None:
    na = parse_name_addr(resp.headers.get("To"))
    na.params["tag"] = tag
    resp.headers.set("To", str(na))
