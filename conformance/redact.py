"""Secret redaction for everything the harness writes (reports, logs, attachments).

Every occurrence of a secret becomes `<redacted:NAME>`, in the forms it travels in:
- as written;
- URL-encoded (form bodies, query strings; `quote` and `quote_plus`, upper- and lower-case hex);
- JSON-escaped (inside a JSON string) and base64-encoded on its own;
- inside an HTTP Basic credential (RFC 7617 2: base64 of `user-id ":" password`): the base64
  token is decoded and, when it contains a secret, replaced as a whole, so the secret cannot be
  recovered from a report whatever the user-id was.

Values shorter than MIN_LENGTH are not redacted: replacing "pw" everywhere would garble a report
without protecting anything.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import quote, quote_plus

MIN_LENGTH = 4

# RFC 7617 2: credentials = "Basic" 1*SP token68; token68 = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="
_BASIC = re.compile(r"(?i)(\bBasic[ ]+)([A-Za-z0-9+/]{4,}={0,2})")
_BASIC_B = re.compile(rb"(?i)(\bBasic[ ]+)([A-Za-z0-9+/]{4,}={0,2})")


def _forms(value: str) -> set[str]:
    forms = {value, quote(value, safe=""), quote_plus(value, safe="")}
    forms |= {re.sub(r"%[0-9A-F]{2}", lambda m: m.group(0).lower(), f) for f in list(forms)}
    # inside a JSON string (RFC 8259 7): as json.dumps writes it, also with "/" escaped
    for ascii_only in (True, False):
        escaped = json.dumps(value, ensure_ascii=ascii_only)[1:-1]
        forms |= {escaped, escaped.replace("/", "\\/")}
    forms |= base64_forms(value)
    return {f for f in forms if len(f) >= MIN_LENGTH}


def base64_forms(value: str) -> set[str]:
    """The value base64-encoded on its own (padded or not) and the characters that encode it
    inside a longer base64 text at each of the three byte alignments (a JWT payload, a Basic
    credential), in the standard and URL-safe alphabets."""
    raw = value.encode()
    out: set[str] = set()
    for enc in (base64.b64encode, base64.urlsafe_b64encode):
        whole = enc(raw).decode()
        out |= {whole, whole.rstrip("=")}
        for k in range(3):  # k bytes precede the value in the encoded text
            text = enc(b"\0" * k + raw).decode()
            first, end = -(-8 * k // 6), (8 * k + 8 * len(raw)) // 6  # characters made of its bits only
            if end - first >= 8:
                out.add(text[first:end])
    return out


class Redactor:
    """`Redactor({"pixit.oauth.client_secret": "s3cret"}).text("... s3cret ...")`."""

    def __init__(self, secrets: Mapping[str, Any] | Iterable[tuple[str, Any]] = ()):
        self._secrets: dict[str, str] = {}  # value -> name
        self._compiled = None
        self._forms_of: dict[str, set[str]] = {}  # value -> its forms (computed once per secret)
        items = secrets.items() if isinstance(secrets, Mapping) else secrets
        for name, value in items:
            self.add(name, value)

    def add(self, name: str, value: Any) -> None:
        """Register one more secret (e.g. a password provisioned at run time)."""
        if value is None or isinstance(value, bool):
            return
        value = str(value)
        if len(value) >= MIN_LENGTH:
            self._secrets.setdefault(value, name)
            self._compiled = None

    @property
    def names(self) -> list[str]:
        return sorted(set(self._secrets.values()))

    def __bool__(self) -> bool:
        return bool(self._secrets)

    def _compile(self):
        """The forms of every secret, indexed by their first MIN_LENGTH characters (and octets).

        Every provisioned user adds two secrets, so a catalog run ends with hundreds: one regex
        alternation of all their forms took 1.5 s to compile per test case at 200 users (and
        sre tries each alternative at every position). The index is rebuilt in linear time and
        `_replace` looks up one slice per position; same result as the alternation."""
        if self._compiled is None:
            by_form: dict[str, str] = {}
            for value, name in self._secrets.items():
                forms = self._forms_of.get(value)
                if forms is None:
                    forms = self._forms_of[value] = _forms(value)
                for form in forms:
                    by_form.setdefault(form, name)
            ordered = sorted(by_form, key=len, reverse=True)  # longest first: no partial overlap
            index: dict[str, list[str]] = {}
            index_b: dict[bytes, list[bytes]] = {}
            for f in ordered:
                index.setdefault(f[:MIN_LENGTH], []).append(f)
                fb = f.encode()
                index_b.setdefault(fb[:MIN_LENGTH], []).append(fb)
            self._compiled = (by_form, index, index_b)
        return self._compiled

    def _basic_name(self, token: str | bytes) -> str | None:
        try:
            decoded = base64.b64decode(token, validate=True).decode("utf-8", "replace")
        except (binascii.Error, ValueError):
            return None
        for value, name in self._secrets.items():
            # RFC 6749 2.3.1: client credentials are form-urlencoded before the base64
            if any(form in decoded for form in (value, quote(value, safe=""), quote_plus(value, safe=""))):
                return name
        return None

    def text(self, s: str) -> str:
        if not self._secrets or not s:
            return s
        by_form, index, _ = self._compile()

        def basic(m: re.Match) -> str:
            name = self._basic_name(m.group(2))
            return f"{m.group(1)}<redacted:{name}>" if name else m.group(0)

        s = _BASIC.sub(basic, s)
        return _replace(s, index, lambda f: f"<redacted:{by_form[f]}>")

    def bytes(self, b: bytes) -> bytes:
        if not self._secrets or not b:
            return b
        by_form, _, index_b = self._compile()

        def basic(m: re.Match) -> bytes:
            name = self._basic_name(m.group(2))
            return m.group(1) + f"<redacted:{name}>".encode() if name else m.group(0)

        b = _BASIC_B.sub(basic, b)
        return _replace(b, index_b, lambda f: f"<redacted:{by_form[f.decode()]}>".encode())

    def obj(self, obj: Any) -> Any:
        """Redact every string and bytes value of a nested structure (e.g. a JSON report)."""
        if isinstance(obj, str):
            return self.text(obj)
        if isinstance(obj, bytes | bytearray):
            return self.bytes(bytes(obj))
        if isinstance(obj, dict):
            return {k: self.obj(v) for k, v in obj.items()}
        if isinstance(obj, list | tuple):
            return type(obj)(self.obj(v) for v in obj)
        return obj


def _replace(s, index: dict, repl):
    """Every occurrence of a form replaced, leftmost first and the longest form at a position
    (what a longest-first regex alternation of the forms does); `index` maps the first
    MIN_LENGTH characters (octets) of each form to the forms, longest first."""
    if not index:
        return s
    out = []
    last, i, end = 0, 0, len(s) - MIN_LENGTH
    get, startswith = index.get, s.startswith
    while i <= end:
        candidates = get(s[i:i + MIN_LENGTH])
        if candidates is not None:
            for form in candidates:
                if startswith(form, i):
                    out.append(s[last:i])
                    out.append(repl(form))
                    i = last = i + len(form)
                    break
            else:
                i += 1
        else:
            i += 1
    if not out:
        return s
    out.append(s[last:])
    return s[:0].join(out)
