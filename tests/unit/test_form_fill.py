"""HTML form filling: what a browser would submit from the AS's authorization page."""

from __future__ import annotations

import pytest

from conformance.drivers.http import FormNotFound, fill_form, find_form, parse_forms

CONSENT_PAGE = """<!doctype html>
<html><body>
<form id="search" action="/search"><input name="q" value="x"></form>
<form id="consent" method="post" action="/authorize?tx=1">
  <input type="hidden" name="transaction" value="tx-&amp;-42">
  <label>Web ID <input type="text" name="web_id"></label>
  <input type="password" name="password" value="">
  <input type="radio" name="scope_choice" value="minimal">
  <input type="radio" name="scope_choice" value="full" checked>
  <input type="checkbox" name="remember" checked>
  <input type="checkbox" name="newsletter" value="yes">
  <input type="text" name="disabled_field" value="nope" disabled>
  <select name="lang"><option value="en">English</option><option selected>fr</option></select>
  <select name="empty_choice"><option value="a">A</option><option value="b">B</option></select>
  <textarea name="comment">hello
world</textarea>
  <input type="file" name="upload">
  <input type="reset" name="reset" value="r">
  <button type="submit" name="consent" value="allow">Allow</button>
  <button type="submit" name="consent" value="deny">Deny</button>
  <button type="button" name="help" value="h">?</button>
</form>
</body></html>"""


def test_default_entries_are_what_a_browser_submits():
    method, action, entries = fill_form(CONSENT_PAGE, "#consent", {}, base_url="https://127.0.0.12:9443/authorize?x=1")
    assert method == "POST"
    assert action == "https://127.0.0.12:9443/authorize?tx=1"
    assert entries == [
        ("transaction", "tx-&-42"),  # hidden kept, character reference decoded
        ("web_id", ""),
        ("password", ""),
        ("scope_choice", "full"),  # only the checked radio
        ("remember", "on"),  # checked checkbox without value
        ("lang", "fr"),  # selected option, value from its text
        ("empty_choice", "a"),  # no selected option: the first
        ("comment", "hello\nworld"),
        ("consent", "allow"),  # the first submit button counts as clicked
    ]


def test_fields_replace_in_place_append_and_remove():
    _, _, entries = fill_form(CONSENT_PAGE, "#consent", {
        "web_id": "alice@web.operator.example", "password": "alice-pw", "consent": "deny",
        "transaction": None, "extra": "injected", "newsletter": ["yes", "weekly"],
    })
    d = dict(entries)
    assert d["web_id"] == "alice@web.operator.example" and d["password"] == "alice-pw"
    assert [v for n, v in entries if n == "consent"] == ["deny"]
    assert "transaction" not in d
    # names the form does not submit by default are appended, in the order given
    assert entries[-3:] == [("extra", "injected"), ("newsletter", "yes"), ("newsletter", "weekly")]
    assert [n for n, _ in entries].index("web_id") == 0  # replaced where the form had it


def test_form_selection_by_id_name_action_and_default():
    assert find_form(CONSENT_PAGE).id == "search"
    assert find_form(CONSENT_PAGE, "#consent").id == "consent"
    assert find_form(CONSENT_PAGE, "authorize").id == "consent"
    page = '<form name="login" action="/login"><input name="u"></form>'
    assert find_form(page, "login").name == "login"


def test_get_form_defaults_and_missing_action():
    method, action, entries = fill_form('<form><input name="a" value="1"></form>', None, {"b": 2},
                                        base_url="https://h/page")
    assert (method, action, entries) == ("GET", "https://h/page", [("a", "1"), ("b", "2")])


def test_no_form_or_no_match_raises_form_not_found():
    with pytest.raises(FormNotFound):
        fill_form("<p>no form here</p>", None, {})
    with pytest.raises(FormNotFound, match="#nope"):
        fill_form(CONSENT_PAGE, "#nope", {})
    assert issubclass(FormNotFound, LookupError)


def test_parse_forms_accepts_bytes_and_sloppy_html():
    forms = parse_forms(b"<FORM ACTION='/x' METHOD=post><INPUT NAME=a VALUE=b><input name=c type=CHECKBOX CHECKED>")
    assert len(forms) == 1 and forms[0].method == "POST" and forms[0].action == "/x"
    assert forms[0].entries() == [("a", "b"), ("c", "on")]
