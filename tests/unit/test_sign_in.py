"""The operator sign-in form (step 5) filled without assuming its names: hidden inputs carried
as received, identity/password fields from PIXIT, consent from PIXIT or the form's own controls."""

from __future__ import annotations

import pytest

from conformance.drivers.http import fill_form, find_form
from conformance.run.sign_in import ConsentNotDiscoverable, consent_fields, sign_in_fields

DEFAULT_UI = {"identity_field": "web_id", "password_field": "password"}
ALICE = {"identity": "alice@web.operator.example", "password": "alice-pw"}

# the reference AS: radios consent=approve (checked) / deny
RADIOS = """<form method="post" action="/authorize">
<input type="hidden" name="transaction" value="t-1">
<input name="web_id"><input type="password" name="password">
<input type="radio" name="consent" value="approve" checked><input type="radio" name="consent" value="deny">
<button type="submit">Continue</button></form>"""

# another conformant AS: other names, two submit buttons, extra hidden inputs
BUTTONS = """<form method="post" action="/login/consent">
<input type="hidden" name="csrf_token" value="c-9"><input type="hidden" name="tx" value="x-7">
<input name="username"><input type="password" name="pass">
<button type="submit" name="decision" value="cancel">Cancel</button>
<button type="submit" name="decision" value="allow">Allow</button></form>"""

# consent as a lone checkbox, one unnamed submit
CHECKBOX = """<form method="post" action="/authorize">
<input type="hidden" name="state_ref" value="s">
<input name="web_id"><input type="password" name="password">
<input type="checkbox" name="i_agree" checked><input type="submit" value="Go"></form>"""

# two differently named submit buttons
NAMED = """<form method="post" action="/a"><input type="hidden" name="h" value="1">
<input name="web_id"><input type="password" name="password">
<input type="submit" name="deny" value="No thanks"><input type="submit" name="grant" value="Yes"></form>"""

# a choice the harness cannot read
OPAQUE = """<form method="post" action="/a"><input name="web_id"><input type="password" name="password">
<input type="radio" name="c" value="a" checked><input type="radio" name="c" value="b"></form>"""


def filled(html, ui, spec):
    return fill_form(html, None, sign_in_fields(find_form(html), ui, spec))[2]


def test_reference_form_grant_and_deny():
    entries = filled(RADIOS, DEFAULT_UI, {**ALICE, "consent": "grant"})
    assert entries == [("transaction", "t-1"), ("web_id", "alice@web.operator.example"),
                       ("password", "alice-pw"), ("consent", "approve")]
    assert ("consent", "deny") in filled(RADIOS, DEFAULT_UI, {**ALICE, "consent": "deny"})


def test_other_names_and_submit_buttons_are_discovered():
    ui = {"identity_field": "username", "password_field": "pass"}
    grant = filled(BUTTONS, ui, {**ALICE, "consent": "grant"})
    assert ("csrf_token", "c-9") in grant and ("tx", "x-7") in grant  # every hidden input as received
    assert ("username", ALICE["identity"]) in grant and ("pass", "alice-pw") in grant
    assert [v for n, v in grant if n == "decision"] == ["allow"]  # not the first button, the allow one
    deny = filled(BUTTONS, ui, {**ALICE, "consent": "deny"})
    assert [v for n, v in deny if n == "decision"] == ["cancel"]


def test_checkbox_consent_is_unchecked_to_deny_and_left_to_grant():
    assert ("i_agree", "on") in filled(CHECKBOX, DEFAULT_UI, {**ALICE, "consent": "grant"})
    assert "i_agree" not in dict(filled(CHECKBOX, DEFAULT_UI, {**ALICE, "consent": "deny"}))


def test_clicking_one_named_button_sends_no_other():
    deny = dict(filled(NAMED, DEFAULT_UI, {**ALICE, "consent": "deny"}))
    assert deny.get("deny") == "No thanks" and "grant" not in deny
    grant = dict(filled(NAMED, DEFAULT_UI, {**ALICE, "consent": "grant"}))
    assert grant.get("grant") == "Yes" and "deny" not in grant


def test_pixit_consent_wins_over_discovery():
    ui = {**DEFAULT_UI, "consent_field": "c", "consent_grant": "b", "consent_deny": "a"}
    assert consent_fields(find_form(OPAQUE), ui, "grant") == {"c": "b"}
    assert consent_fields(find_form(OPAQUE), ui, "deny") == {"c": "a"}


def test_unreadable_choice_grants_by_default_and_cannot_deny():
    assert consent_fields(find_form(OPAQUE), DEFAULT_UI, "grant") == {}  # the form's own default
    with pytest.raises(ConsentNotDiscoverable, match="consent_deny"):
        consent_fields(find_form(OPAQUE), DEFAULT_UI, "deny")


def test_forged_transaction_replaces_every_hidden_input_or_the_named_one():
    spec = {**ALICE, "forge_transaction": "forged"}
    entries = filled(BUTTONS, {"identity_field": "username", "password_field": "pass"}, spec)
    assert ("csrf_token", "forged") in entries and ("tx", "forged") in entries
    named = filled(BUTTONS, {"identity_field": "username", "password_field": "pass", "transaction_field": "tx"},
                   spec)
    assert ("csrf_token", "c-9") in named and ("tx", "forged") in named
