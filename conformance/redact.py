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
        # each secret as it can appear inside a Basic credential: as is, and form-urlencoded (RFC
        # 6749 2.3.1: client credentials are form-urlencoded before the base64); made once, at
        # `add` (quoting every secret again for every Basic token cost about 1 ms a token with the
        # hundreds of secrets of a catalog run)
        self._basic: list[tuple[tuple[str, ...], str]] = []
        items = secrets.items() if isinstance(secrets, Mapping) else secrets
        for name, value in items:
            self.add(name, value)

    def add(self, name: str, value: Any) -> None:
        """Register one more secret (e.g. a password provisioned at run time)."""
        if value is None or isinstance(value, bool):
            return
        value = str(value)
        if len(value) >= MIN_LENGTH and value not in self._secrets:
            self._secrets[value] = name
            self._basic.append(((value, quote(value, safe=""), quote_plus(value, safe="")), name))
            if self._compiled is not None:  # one user more per test case: extend, do not rebuild
                self._index_forms(value, name)

    @property
    def names(self) -> list[str]:
        return sorted(set(self._secrets.values()))

    def __bool__(self) -> bool:
        return bool(self._secrets)

    def _compile(self):
        """The forms of every secret, indexed for `_replace` (str and bytes).

        Every provisioned user adds two secrets, so a catalog run ends with hundreds: one regex
        alternation of all their forms took 1.5 s to compile per test case at 200 users (and
        sre tries each alternative at every position). The index is built once and extended by
        `add` (rebuilding it at every test case cost 16 ms at 200 users); same result as the
        alternation."""
        if self._compiled is None:
            self._compiled = ({}, _FormIndex(), _FormIndex())
            for value, name in self._secrets.items():
                self._index_forms(value, name)
        return self._compiled

    def _index_forms(self, value: str, name: str) -> None:
        by_form, index, index_b = self._compiled
        forms = self._forms_of.get(value)
        if forms is None:
            forms = self._forms_of[value] = _forms(value)
        for form in forms:
            if form not in by_form:  # a form shared by two secrets keeps the first one's name
                by_form[form] = name
                index.add(form)
                index_b.add(form.encode())

    def _basic_name(self, token: str | bytes) -> str | None:
        try:
            decoded = base64.b64decode(token, validate=True).decode("utf-8", "replace")
        except (binascii.Error, ValueError):
            return None
        for forms, name in self._basic:
            if any(form in decoded for form in forms):
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


STRIDE = 4  # text positions looked up per 4-gram: one in STRIDE


class _FormIndex:
    """Where the forms occur in a text, with one dict look-up per STRIDE positions.

    A form of at least STRIDE + MIN_LENGTH - 1 characters has, whatever its position in the
    text, one of its first STRIDE MIN_LENGTH-grams starting at a multiple of STRIDE: those
    grams are indexed with their offset in the form, and only the text's grams at multiples of
    STRIDE are looked up (the per-position look-up was 160 ns a byte, most of the cost of a
    test case's plaintext capture). Shorter forms are found with str.find, in C."""

    def __init__(self):
        self.grams: dict = {}  # MIN_LENGTH-gram -> [(offset in the form, form)]
        self.short: list = []  # forms too short for the strided look-up

    def __bool__(self) -> bool:
        return bool(self.grams or self.short)

    def add(self, form) -> None:
        if len(form) < STRIDE + MIN_LENGTH - 1:
            self.short.append(form)
            return
        for k in range(STRIDE):
            self.grams.setdefault(form[k:k + MIN_LENGTH], []).append((k, form))

    def occurrences(self, s) -> list:
        """Every (start, form) with `form` at `start` in `s`, overlapping ones included."""
        out = []
        get, startswith = self.grams.get, s.startswith
        if self.grams:
            for p in range(0, len(s) - MIN_LENGTH + 1, STRIDE):
                hits = get(s[p:p + MIN_LENGTH])
                if hits is not None:
                    for k, form in hits:
                        j = p - k
                        if j >= 0 and startswith(form, j):
                            out.append((j, form))
        for form in self.short:
            j = s.find(form)
            while j >= 0:
                out.append((j, form))
                j = s.find(form, j + 1)
        return out


def _replace(s, index: _FormIndex, repl):
    """Every occurrence of a form replaced, leftmost first and the longest form at a position
    (what a longest-first regex alternation of the forms does)."""
    if not index:
        return s
    found = index.occurrences(s)
    if not found:
        return s
    found.sort(key=lambda o: (o[0], -len(o[1])))
    out = []
    last = 0
    for j, form in found:
        if j < last:
            continue  # inside the form just replaced, or a shorter form at the same place
        out.append(s[last:j])
        out.append(repl(form))
        last = j + len(form)
    out.append(s[last:])
    return s[:0].join(out)
