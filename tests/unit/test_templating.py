"""`${...}` substitution: types, escapes, random values, unknown variables, fragment params."""

from __future__ import annotations

import re

import pytest

from conformance.model.yaml_marks import loads
from conformance.run.templating import (
    TemplateContext,
    TemplateError,
    expand_params,
    render,
    render_string,
    scan,
)

ALICE = {"web_id": "alice@web.operator.example", "password": "alice-pw", "impi": "alice@ims.example.net",
         "impus": ["sip:alice@ims.example.net", "tel:+15550100"], "tp_username": "jane", "tp_password": "jane-pw"}


@pytest.fixture
def ctx() -> TemplateContext:
    return TemplateContext(
        pixit={"home_domain": "ims.example.net", "nodes": {"3rdwws": {"base_url": "https://127.0.0.11:8443"},
                                                           "as": {"port": 9443}}},
        pics={"signalling.path": "relay", "token.wsf_url_member": True},
        user=ALICE, users={"bob": {"web_id": "bob@web.operator.example", "impus": ["sip:bob@ims.example.net"]}},
        saved={"access_token": "eyJ.a.b", "expires_in": 300, "claims": {"aud": ["wsf"]}, "nothing": None},
        clock=lambda: 1700000000.9,
    )


@pytest.mark.parametrize("text, expected", [
    ("${pixit.nodes.3rdwws.base_url}/login", "https://127.0.0.11:8443/login"),
    ("${pics.signalling.path}", "relay"),
    ("${pics.token.wsf_url_member}", True),
    ("${user.web_id}", "alice@web.operator.example"),
    ("${user.impu}", "sip:alice@ims.example.net"),
    ("${user.impus[1]}", "tel:+15550100"),
    ("${user.impus[-1]}", "tel:+15550100"),
    ("${users.bob.impu}", "sip:bob@ims.example.net"),
    ("${saved.expires_in}", 300),
    ("${pixit.nodes.as.port}", 9443),
    ("${saved.claims.aud[0]}", "wsf"),
    ("${now}", 1700000000),
    ("Bearer ${saved.access_token}", "Bearer eyJ.a.b"),
    ("max ${saved.expires_in}s", "max 300s"),
    ("flag=${pics.token.wsf_url_member}", "flag=true"),
    ("aud=${saved.claims.aud}", 'aud=["wsf"]'),
    ("none=${saved.nothing}", "none=null"),
    ("${ saved.expires_in }", 300),
    ("literal $${saved.x} and $$ and $ {x}", "literal ${saved.x} and $$ and $ {x}"),
    ("$${saved.x}", "${saved.x}"),
    ("no template at all", "no template at all"),
])
def test_render_string(ctx: TemplateContext, text: str, expected):
    got = render_string(text, ctx)
    assert got == expected and type(got) is type(expected)


def test_unknown_variable_names_it_and_suggests(ctx: TemplateContext):
    with pytest.raises(TemplateError) as err:
        render_string("Bearer ${saved.acess_token}", ctx)
    assert err.value.variable == "saved.acess_token"
    assert err.value.suggestions[0] == "saved.access_token"
    assert str(err.value) == ("unknown variable ${saved.acess_token}: nothing saved under this name yet; "
                              "did you mean ${saved.access_token}?")
    with pytest.raises(TemplateError, match=r"pixit.nodes has no member 'wsf'"):
        render_string("${pixit.nodes.wsf.url}", ctx)
    with pytest.raises(TemplateError, match=r"did you mean \$\{pixit.home_domain\}"):
        render_string("${pixit.home_domian}", ctx)
    with pytest.raises(TemplateError, match=r"user.impus has no item \[5\]"):
        render_string("${user.impus[5]}", ctx)
    with pytest.raises(TemplateError, match="known users: bob"):
        render_string("${users.carol.web_id}", ctx)
    with pytest.raises(TemplateError, match="a variable starts with one of"):
        render_string("${sved.x}", ctx)
    with pytest.raises(TemplateError, match="only allowed in profiles"):
        render_string("${env:HOME}", ctx)
    with pytest.raises(TemplateError, match="malformed variable"):
        render_string("${saved..x}", ctx)
    with pytest.raises(TemplateError, match="unterminated"):
        render_string("abc ${saved.x", ctx)
    with pytest.raises(TemplateError, match="only available inside a fragment"):
        render_string("${params.x}", ctx)


def test_random_values_stable_within_a_step(ctx: TemplateContext):
    a = render_string("${random.hex8} ${random.hex8} ${random.branch} ${random.uuid} ${random.tag}", ctx)
    hex1, hex2, branch, uid, tag = a.split()
    assert hex1 == hex2 and re.fullmatch(r"[0-9a-f]{8}", hex1)
    assert re.fullmatch(r"z9hG4bK[0-9a-f]{16}", branch)  # RFC 3261 8.1.1.7 magic cookie
    assert re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}", uid)
    assert re.fullmatch(r"[0-9a-f]{10}", tag)
    assert len(render_string("${random.hex5}", ctx)) == 5
    assert render_string("${random.call_id}", ctx) == render_string("${random.call_id}", ctx)
    before = render_string("${random.call_id}", ctx)
    ctx.new_step()
    assert render_string("${random.call_id}", ctx) != before
    with pytest.raises(TemplateError, match="unknown random kind 'hex99'"):
        render_string("${random.hex99}", ctx)


def test_extra_roots(ctx: TemplateContext):
    ctx.extra = {"vars": {"aor": "sip:alice@web.operator.example", "cseq": 7}}
    assert render_string("To: <${vars.aor}>", ctx) == "To: <sip:alice@web.operator.example>"
    assert render_string("${vars.cseq}", ctx) == 7


def test_render_nested_keeps_marks_and_never_touches_keys(ctx: TemplateContext):
    doc, _ = loads('http:\n  url: "${pixit.nodes.3rdwws.base_url}/x"\n  form: {"${user.web_id}": "${user.password}"}\n'
                   "expect:\n  - json: $.expires_in\n    less_than: ${saved.expires_in}\n", "s.yaml")
    out = render(doc, ctx)
    assert out["http"]["url"] == "https://127.0.0.11:8443/x"
    assert out["http"]["form"] == {"${user.web_id}": "alice-pw"}
    assert out["expect"][0]["less_than"] == 300
    assert out["expect"][0].mark == doc["expect"][0].mark == (5, 5) and out["expect"][0].line == 5
    assert out["http"].key_marks == doc["http"].key_marks
    assert doc["http"]["url"].startswith("${")  # the source is not modified


def test_expand_params_only_touches_params():
    doc, _ = loads('url: "${params.base}/login"\ncount: ${params.n}\nkeep: "${saved.x} $${params.base}"\n'
                   'flag: "${params.flag}"\n', "f.yaml")
    out = expand_params(doc, {"base": "https://a", "n": 3, "flag": False})
    assert out == {"url": "https://a/login", "count": 3, "keep": "${saved.x} $${params.base}", "flag": False}
    assert out.value_marks == doc.value_marks
    with pytest.raises(TemplateError, match=r"unknown fragment parameter \$\{params.bse\}; did you mean base"):
        expand_params({"u": "${params.bse}"}, {"base": 1})


def test_scan_reports_templates_and_skips_escapes():
    found = [(t.expr, t.start) for t in scan("a ${x.y} $${z} ${ now }")]
    assert found == [("x.y", 2), ("now", 15)]
