"""Parses of one header value, cached by the value when it is short.

The capture analysis asks for the same parse again and again: a case's pairing wants the Vias of
the same messages for each entry against each candidate, at every settle round and again for the
verdict; its checks want each parameter of one Authorization header as a check of its own.
Parsing the same value again was a tenth of a case's capture analysis. A parse depends on its
arguments only, so it is cached by them; only values up to `max_len` characters are kept, and at
most `maxsize` of them, so the huge headers of a hostile SUT cannot grow the cache. A parse that
raises is not cached (it raises at every call).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TypeVar

R = TypeVar("R")


def cached_for_short_values(max_len: int, maxsize: int) -> Callable[[Callable[..., R]], Callable[..., R]]:
    """Decorator: the wrapped parse's last argument is the value (a str) the bound applies to."""

    def wrap(parse: Callable[..., R]) -> Callable[..., R]:
        cached = functools.lru_cache(maxsize=maxsize)(parse)

        @functools.wraps(parse)
        def call(*args):
            return cached(*args) if len(args[-1]) <= max_len else parse(*args)

        call.max_len = max_len
        call.cache_info, call.cache_clear = cached.cache_info, cached.cache_clear
        return call

    return wrap
