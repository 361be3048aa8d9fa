"""Filling the operator's sign-in and consent form (step 5) without assuming its names.

BINDING fixes only "a form with web_id, password, a hidden transaction field, a consent choice":
another conformant AS may name its transaction `tx` or `csrf_token`, and offer consent as radio
buttons `approve`/`deny`, a checkbox, or two submit buttons `allow`/`cancel`. So:
- every hidden input is carried as received (the browser does that; fill_form keeps them);
- the identity and password inputs are the ones PIXIT names (defaults `web_id`, `password`);
- consent is PIXIT's `consent_field` = `consent_grant` / `consent_deny` when declared, else the
  form's own control whose value (or name) says allow or deny, else, to allow, what the form
  submits by default (its first submit control, its checked choices). A deny the form does not
  make recognisable cannot be exercised: the case is inconclusive, never guessed.
A sign-in may span pages (conformance/run/sign_in_walk.py): identity and password go to the page
that has their inputs, consent to the page that offers it; a deny is looked for on each page.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from conformance.drivers.http import Form, FormControl

GRANT_WORDS = re.compile(r"(?i)\b(approve|approved|allow|accept|grant|agree|authori[sz]e|consent|yes|ok|"
                         r"continue|confirm|true|on|1)\b")
DENY_WORDS = re.compile(r"(?i)\b(deny|denied|reject|decline|refuse|cancel|disallow|no|false|off|0)\b")


class ConsentNotDiscoverable(LookupError):
    """The form has no control the harness can tell is the deny choice, and PIXIT names none."""


def _is_submit(c: FormControl) -> bool:
    return c.type in ("submit", "image") or (c.tag == "button" and c.type in ("", "submit"))


def _is_choice(c: FormControl) -> bool:
    return bool(c.name) and not c.disabled and (c.type in ("radio", "checkbox") or _is_submit(c))


def _says(c: FormControl, words: re.Pattern) -> bool:
    # The value decides when there is one: radios share a name ("consent") that means nothing.
    return bool(words.search(c.value if c.value else c.name))


def consent_fields(form: Form, ui: Mapping[str, Any], choice: str) -> dict[str, Any]:
    """fill_form fields that give (choice="grant") or refuse (choice="deny") consent."""
    field, value = ui.get("consent_field"), ui.get(f"consent_{choice}")
    if field and value is not None:
        return {field: value}
    controls = [c for c in form.controls if _is_choice(c) and (not field or c.name == field)]
    want, other = (GRANT_WORDS, DENY_WORDS) if choice == "grant" else (DENY_WORDS, GRANT_WORDS)
    pick = next((c for c in controls if _says(c, want) and not _says(c, other)), None)
    if pick is not None:
        out: dict[str, Any] = {pick.name: pick.value if pick.value is not None else "on"}
        if _is_submit(pick):  # clicking it: no other submit control is sent
            out.update({c.name: None for c in controls if _is_submit(c) and c.name != pick.name})
        return out
    if choice == "grant":
        return {}  # the form's own default submission, whatever its values
    boxes = [c for c in controls if c.type == "checkbox"]
    if len(boxes) == 1:  # a lone consent checkbox: left unchecked, consent is refused
        return {boxes[0].name: None}
    raise ConsentNotDiscoverable(
        "the sign-in form has no control recognisable as 'deny' (controls: "
        + (", ".join(f"{c.name}={c.value!r}" for c in controls) or "none")
        + "); declare pixit.authorization_ui.consent_field and consent_deny")


def sign_in_fields(form: Form, ui: Mapping[str, Any], spec: Mapping[str, Any]) -> dict[str, Any]:
    """fill_form fields for `form_from_previous: {sign_in: {identity, password, consent, forge_transaction}}`."""
    fields: dict[str, Any] = {}
    if "identity" in spec:
        fields[ui.get("identity_field") or "web_id"] = spec["identity"]
    if "password" in spec:
        fields[ui.get("password_field") or "password"] = spec["password"]
    forged = spec.get("forge_transaction")
    if forged is not None:
        named = ui.get("transaction_field")
        names = [named] if named else [c.name for c in form.controls if c.type == "hidden" and c.name]
        # no hidden input at all: nothing is forged and the AS's refusal is still required
        fields.update({n: forged for n in names})
    consent = spec.get("consent", "grant")
    if consent in ("grant", "deny"):
        fields.update(consent_fields(form, ui, consent))
    return fields


def _has_input(form: Form, name: str) -> bool:
    return any(c.name == name for c in form.controls)


def first_page_fields(form: Form, ui: Mapping[str, Any], spec: Mapping[str, Any]) -> tuple[dict[str, Any], bool]:
    """(fields, consent made) for the first page of a sign-in that may go on over further pages.

    As sign_in_fields, except that a sign-in page (it has the identity input) without a
    recognisable deny control is submitted without a consent choice: the consent page may follow.
    """
    try:
        return sign_in_fields(form, ui, spec), True
    except ConsentNotDiscoverable:
        if not _has_input(form, ui.get("identity_field") or "web_id"):
            raise
        return sign_in_fields(form, ui, {k: v for k, v in spec.items() if k != "consent"} | {"consent": None}), False


def next_page_fields(form: Form, ui: Mapping[str, Any], spec: Mapping[str, Any]) -> tuple[dict[str, Any], bool]:
    """(fields, consent made) for a later page: only the inputs it has, no forged transaction."""
    present = {k: v for k, v in spec.items() if k in ("identity", "password", "consent")}
    for key, default in (("identity", "web_id"), ("password", "password")):
        if not _has_input(form, ui.get(f"{key}_field") or default):
            present.pop(key, None)
    return first_page_fields(form, ui, present)
