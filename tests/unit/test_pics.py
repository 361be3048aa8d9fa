"""PICS selection expressions: the restricted grammar, static checks, evaluation."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conformance.model.pics import KNOWN_PICS, PicsError, Selection, pics_schema

REFERENCE = {name: opt.default for name, opt in KNOWN_PICS.items()}  # relay, jwt, True, rfc8898, ...
REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("expr, expected", [
    ("signalling.path == 'relay'", True),
    ("signalling.path == 'direct'", False),
    ('signalling.path != "direct"', True),
    ("token.wsf_url_member", True),
    ("not token.wsf_url_member", False),
    ("core.separate_icscf", False),
    ("token.wsf_url_member == true", True),
    ("core.separate_icscf == False", True),
    ("core.transport in ['udp', 'tcp']", True),
    ("core.transport not in ['tcp']", True),
    ("signalling.path == 'direct' or token.format == 'jwt'", True),
    ("signalling.path == 'direct' and token.format == 'jwt'", False),
    ("not (signalling.path == 'direct' or core.separate_icscf)", True),
    ("  wsf.verify == 'introspection'  ", True),
    ("sip.client_aor == 'web_id' and\n  sip.bearer_syntax == 'rfc8898'", True),
])
def test_evaluate(expr: str, expected: bool):
    sel = Selection(expr)
    assert sel.check() == []
    assert sel.evaluate(REFERENCE) is expected


def test_names_are_the_dotted_options():
    sel = Selection("signalling.path == 'direct' and (token.wsf_url_member or not core.separate_icscf)")
    assert sel.names == {"signalling.path", "token.wsf_url_member", "core.separate_icscf"}


@pytest.mark.parametrize("expr, message, column", [
    ("__import__('os').system('true')", "not allowed in a PICS expression", 1),
    ("signalling.path.upper() == 'RELAY'", "not allowed in a PICS expression", 1),
    ("signalling.path == 'relay' == 'relay'", "chained comparisons are not allowed", 1),
    ("core.transport in 'udp'", "'in' needs a list on its right", 19),
    ("core.transport == ['udp']", "a list can only follow 'in' or 'not in'", 1),
    ("core.transport in [token.format]", "list items must be literals", 20),
    ("token.format < 'z'", "only ==, !=, in and not in compare", 1),
    ("(signalling.path == 'relay'", "syntax error", 1),
    ("signalling.path == ", "syntax error", 1),
    ("signalling.path == None", "not allowed in a PICS expression", 20),
    ("lambda: 1", "not allowed in a PICS expression", 1),
    ("", "a PICS selection must be a non-empty string", 1),
])
def test_rejected_expressions(expr: str, message: str, column: int):
    with pytest.raises(PicsError) as err:
        Selection(expr)
    assert message in err.value.message
    assert err.value.column == column


def test_static_check_names_values_and_bare_enums():
    errors = Selection("signalling.path == 'relya' or token.fromat == 'jwt' or signalling.path").check()
    assert [(e.message, e.column) for e in errors] == [
        ("'relya' is not a value of signalling.path (allowed: 'relay', 'direct')", 20),
        ("unknown PICS name token.fromat; did you mean token.format?", 31),
        ("signalling.path is not a yes/no option; compare it, e.g. signalling.path == 'relay'", 56),
    ]
    assert [e.message for e in Selection("token.wsf_url_member == 'yes'").check()] == [
        "'yes' is not a value of token.wsf_url_member (allowed: true, false)"]
    assert [e.message for e in Selection("core.transport in ['udp', 'sctp']").check()] == [
        "'sctp' is not a value of core.transport (allowed: 'udp', 'tcp')"]


def test_unknown_name_lists_the_known_ones():
    (error,) = Selection("foo").check()
    assert error.message == "unknown PICS name foo; known: " + ", ".join(KNOWN_PICS)


def test_evaluate_errors():
    with pytest.raises(PicsError, match="unknown PICS name core.transport"):
        Selection("core.transport == 'udp'").evaluate({"signalling.path": "relay"})
    with pytest.raises(PicsError, match="signalling.path is 'relay', not true/false"):
        Selection("signalling.path").evaluate(REFERENCE)


def test_known_pics_match_binding():
    assert {n: o.values for n, o in KNOWN_PICS.items()} == {
        "signalling.path": ("relay", "direct"),
        "token.format": ("jwt", "opaque"),
        "token.wsf_url_member": (True, False),
        "sip.bearer_syntax": ("rfc8898", "ts24371"),
        "sip.client_aor": ("web_id", "impu"),
        "wsf.verify": ("introspection", "local_jwt"),
        "core.transport": ("udp", "tcp"),
        "core.separate_icscf": (True, False),
        "wsf.reregister_token": ("every", "first"),
        "wsf.on_ws_close": ("deregister", "expire"),
        "wsf.origin_missing": ("accept", "reject"),
    }
    assert all(o.default in o.values and o.description for o in KNOWN_PICS.values())


def test_profile_schema_pics_section_is_generated_from_known_pics():
    """KNOWN_PICS is the single source: the schema file must hold exactly what it generates."""
    doc = json.loads((REPO / "conformance" / "schema" / "profile.schema.json").read_text())
    assert doc["$defs"]["pics"] == pics_schema()


def test_vendor_template_documents_every_option():
    text = (REPO / "profiles" / "vendor-template.yaml").read_text()
    for name, opt in KNOWN_PICS.items():
        assert f"\n  {name}: " in text, name
        for value in opt.values:
            shown = ("true" if value else "false") if isinstance(value, bool) else value
            assert shown in text, (name, value)
