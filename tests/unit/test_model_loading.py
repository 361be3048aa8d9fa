"""Loading test cases: line marks, fragment expansion, normalised expectations, the catalog."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from conformance.model.catalog import discover, load_catalog, validate_catalog
from conformance.model.testcase import TestCaseError, check_testcase, load_testcase
from conformance.model.yaml_marks import MarkedDict, MarkedList, loads

REPO = Path(__file__).resolve().parents[2]

LOGIN = """\
fragment: login
description: log in and get a token
params:
  account: jane
  expected_status: 303
steps:
  - name: log in
    flow: [1]
    http:
      method: POST
      url: ${pixit.nodes.3rdwws.base_url}/login
      form: {username: "${params.account}", password: "${user.tp_password}", literal: "$${params.account}"}
    expect:
      - status: ${params.expected_status}
  - use: {fragment: pkce}
"""

PKCE = """\
fragment: pkce
description: PKCE and state
steps:
  - oauth: {pkce: S256, state: true}
"""

CASE = """\
id: TP_WSF_REG_002
title: WSF rejects a REGISTER without a token
sut: wsf
kind: negative
severity: critical
refs: ["RFC 8898 2.2"]
pics: "signalling.path == 'direct' and token.wsf_url_member"
tags: [bearer]
uses:
  - fragment: login
    with: {account: joe}
steps:
  - name: open the WebSocket
    flow: [13]
    ws_connect: {name: wsf, url: "${pixit.nodes.wsf.url}"}
    expect:
      - status: 101
      - subprotocol: sip
  - name: REGISTER without Authorization
    flow: [14, 15]
    sip_send: {name: wsf, template: register, headers: {Authorization: null}}
  - sip_expect: {name: wsf}
    expect:
      - status: [401, 403]
      - header: WWW-Authenticate
        param: realm
        equals: ims.example.net
        ref: RFC 8898 2.2
      - ws_closed: true
      - jwt: ${saved.state}
        signature: valid
      - nothing: true
    save:
      challenge: {header: WWW-Authenticate}
  - use:
      fragment: login
      with: {expected_status: 302}
capture:
  forbidden:
    - {flow: 17, from: wsf, to: pcscf, sip: {method: REGISTER}}
"""


def write(root: Path, rel: str, text: str) -> Path:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


@pytest.fixture
def catalog(tmp_path: Path) -> Path:
    root = tmp_path / "testcases"
    write(root, "fragments/login.yaml", LOGIN)
    write(root, "fragments/pkce.yaml", PKCE)
    write(root, "wsf/TP_WSF_REG_002.yaml", CASE)
    return root


def test_marks_on_every_mapping_and_sequence():
    doc, problems = loads("a:\n  - x: 1\n    y: [2, 3]\n  - z\nb: {c: d}\n", "f.yaml")
    assert problems == []
    assert isinstance(doc, MarkedDict) and isinstance(doc["a"], MarkedList)
    assert doc.mark == (1, 1)
    assert doc["a"].mark == (2, 3)
    assert doc["a"].item_marks == [(2, 5), (4, 5)]
    assert doc["a"][0].key_marks["y"] == (3, 5)
    assert doc["a"][0]["y"].item_marks == [(3, 9), (3, 12)]
    assert doc.key_marks["b"] == (5, 1) and doc.value_marks["b"] == (5, 4)
    assert json.loads(json.dumps(doc)) == {"a": [{"x": 1, "y": [2, 3]}, "z"], "b": {"c": "d"}}


def test_yaml12_booleans_and_duplicate_keys():
    doc, problems = loads("country: NO\nflag: yes\non: true\ndate: 2024-01-01\nx: 1\nx: 2\n", "f.yaml")
    assert doc["country"] == "NO" and doc["flag"] == "yes" and doc["on"] is True
    assert doc["date"] == "2024-01-01"
    assert [(p.line, p.column, p.message) for p in problems] == [(6, 1, "duplicate key 'x' (first at line 5)")]


def test_non_string_keys_are_reported():
    _, problems = loads("200: ok\n", "f.yaml")
    assert [(p.line, p.column) for p in problems] == [(1, 1)]
    assert "keys must be strings" in problems[0].message


def test_testcase_fields_and_expanded_steps(catalog: Path):
    path = catalog / "wsf/TP_WSF_REG_002.yaml"
    tc = load_testcase(path, catalog / "fragments")
    assert (tc.id, tc.sut, tc.kind, tc.severity, tc.user) == ("TP_WSF_REG_002", "wsf", "negative", "critical", "fresh")
    assert tc.pics.names == {"signalling.path", "token.wsf_url_member"}
    assert tc.applicable({"signalling.path": "direct", "token.wsf_url_member": True}) is True
    assert tc.applicable({"signalling.path": "relay", "token.wsf_url_member": True}) is False
    # uses (login -> nested pkce) first, then the steps, with the second login in place
    assert [s.action for s in tc.steps] == ["http", "oauth", "ws_connect", "sip_send", "sip_expect", "http", "oauth"]
    assert [s.index for s in tc.steps] == list(range(1, 8))
    assert [s.from_fragment for s in tc.steps] == ["login", "pkce", None, None, None, "login", "pkce"]
    login = tc.steps[0]
    assert login.file == str(catalog / "fragments/login.yaml") and login.line == 7
    assert login.used_at == (str(path), 10)
    assert tc.steps[1].file.endswith("pkce.yaml") and tc.steps[1].used_at == (str(path), 10)
    assert tc.steps[5].used_at == (str(path), 35)
    assert tc.steps[2].file == str(path) and tc.steps[2].line == 13
    assert tc.flow_steps == (1, 13, 14, 15)  # a forbidden capture message is not exercised
    assert tc.capture["forbidden"][0]["to"] == "pcscf"


def test_fragment_params_substituted_at_load_time(catalog: Path):
    tc = load_testcase(catalog / "wsf/TP_WSF_REG_002.yaml", catalog / "fragments")
    first, again = tc.steps[0], tc.steps[5]
    assert first.args["form"]["username"] == "joe"  # from `with`
    assert again.args["form"]["username"] == "jane"  # default
    # other templates and escapes are left for run time
    assert first.args["url"] == "${pixit.nodes.3rdwws.base_url}/login"
    assert first.args["form"]["password"] == "${user.tp_password}"
    assert first.args["form"]["literal"] == "$${params.account}"
    # a whole-string parameter keeps its type, and marks survive the substitution
    assert (first.expect[0].op, first.expect[0].operand) == ("equals", 303)
    assert again.expect[0].operators == {"equals": 302}
    assert first.args.mark == (10, 7) and first.args.key_marks["form"] == (12, 7)


def test_expectations_are_normalised_with_their_lines(catalog: Path):
    tc = load_testcase(catalog / "wsf/TP_WSF_REG_002.yaml", catalog / "fragments")
    ws, exp = tc.steps[2], tc.steps[4]
    assert [(e.subject, e.op, e.operand) for e in ws.expect] == [("status", "equals", 101),
                                                                  ("subprotocol", "equals", "sip")]
    got = [(e.subject, e.target, e.qualifiers, e.op, e.operand, e.ref, e.line) for e in exp.expect]
    assert got == [
        ("status", None, {}, "one_of", [401, 403], None, 24),
        ("header", "WWW-Authenticate", {"param": "realm"}, "equals", "ims.example.net", "RFC 8898 2.2", 25),
        ("ws_closed", None, {}, "present", True, None, 29),
        ("jwt", "${saved.state}", {"signature": "valid"}, "equals", "valid", None, 30),
        ("nothing", None, {}, "equals", True, None, 32),
    ]
    assert exp.save["challenge"] == {"header": "WWW-Authenticate"}


def test_step_and_expectation_render_at_run_time(catalog: Path):
    from conformance.run.templating import TemplateContext

    tc = load_testcase(catalog / "wsf/TP_WSF_REG_002.yaml", catalog / "fragments")
    ctx = TemplateContext(pixit={"nodes": {"3rdwws": {"base_url": "https://a"}}}, saved={"state": "tok"},
                          user={"tp_password": "pw"})
    args = tc.steps[0].rendered_args(ctx)
    assert args["url"] == "https://a/login" and args["form"]["literal"] == "${params.account}"
    assert args.mark == tc.steps[0].args.mark
    jwt = tc.steps[4].expect[3].rendered(ctx)
    assert jwt.target == "tok" and jwt.line == 30


def test_fragment_cycle_and_depth(tmp_path: Path):
    root = tmp_path / "testcases"
    write(root, "fragments/a.yaml", "fragment: a\ndescription: a\nsteps:\n  - use: {fragment: b}\n")
    write(root, "fragments/b.yaml", "fragment: b\ndescription: b\nsteps:\n  - use: {fragment: a}\n")
    case = write(root, "as/c.yaml", CASE.replace("sut: wsf", "sut: as").split("uses:")[0] + "steps:\n  - use: {fragment: a}\n")
    with pytest.raises(TestCaseError) as err:
        load_testcase(case, root / "fragments")
    msgs = [p.message for p in err.value.problems]
    assert msgs == ["fragment cycle: a -> b -> a"]
    assert err.value.problems[0].file.endswith("b.yaml") and err.value.problems[0].line == 4


def test_saved_names_must_be_saved_earlier(tmp_path: Path):
    case = write(tmp_path, "wsf/x.yaml", """\
        id: TP_WSF_SAVE_001
        title: t
        sut: wsf
        kind: positive
        severity: minor
        refs: [x]
        steps:
          - http: {url: "https://a/?s=${saved.acces_token}"}
            save: {access_token: {json: $.access_token}}
          - http: {url: "https://a/?s=${saved.access_token}&u=${user.webid}&r=${random.hex99}"}
          - forge_token: {from: "${saved.access_token}", alg: none, save_as: forged}
          - http: {url: "https://a", auth: {basic: [u, "${saved.forged}"]}}
        """)
    _, problems = check_testcase(case)
    got = [(p.line, p.column, p.message) for p in problems]
    assert got == [
        (8, 17, "unknown variable ${saved.acces_token}: no earlier step saves 'acces_token'"),
        (10, 17, "unknown variable ${user.webid}: user fields are web_id, password, impi, impu, impus, "
                 "tp_username, tp_password; did you mean web_id?"),
        (10, 17, "unknown variable ${random.hex99}: random kinds are hex8, hex16, hex32, uuid, branch, tag, "
                 "call_id; did you mean hex8?"),
    ]


def test_discover_skips_fragments_and_accepts_checkout_root(catalog: Path):
    write(catalog, "as/TP_AS_X_001.yaml", CASE.replace("TP_WSF_REG_002", "TP_AS_X_001").replace("sut: wsf", "sut: as"))
    found = discover(catalog)
    assert [p.relative_to(catalog).as_posix() for p in found] == ["as/TP_AS_X_001.yaml", "wsf/TP_WSF_REG_002.yaml"]
    assert discover(catalog.parent) == found


def test_catalog_duplicate_id_and_wrong_directory(catalog: Path):
    write(catalog, "wsf/copy.yaml", CASE)
    write(catalog, "as/wrong_dir.yaml", CASE.replace("TP_WSF_REG_002", "TP_WSF_REG_003"))
    cat = load_catalog(catalog)
    got = sorted((Path(p.file).name, p.line, p.column, p.message) for p in cat.problems)
    assert got == [
        ("copy.yaml", 1, 5, f"duplicate id TP_WSF_REG_002 (first in {catalog / 'wsf/TP_WSF_REG_002.yaml'}:1)"),
        ("wrong_dir.yaml", 3, 6, "sut is wsf but the file is in as/ (test cases live in testcases/<sut>/)"),
    ]
    assert {tc.id for tc in cat.testcases} == {"TP_WSF_REG_002", "TP_WSF_REG_003"}


def test_catalog_reports_unused_broken_fragment_once(catalog: Path):
    write(catalog, "fragments/unused.yaml", "fragment: unused\ndescription: x\nsteps:\n  - wait: {ms: -1}\n")
    problems = validate_catalog(catalog)
    assert [(Path(p.file).name, p.line, p.column) for p in problems] == [("unused.yaml", 4, 16)]


def test_fragment_name_must_match_file(catalog: Path):
    write(catalog, "fragments/pkce.yaml", PKCE.replace("fragment: pkce", "fragment: pkce2"))
    problems = validate_catalog(catalog)
    assert any(p.file.endswith("pkce.yaml") and p.line == 1 and "pkce2.yaml" in p.message for p in problems)


def test_repository_catalog_is_valid():
    """The project's own catalog (testcases/) must always validate."""
    problems = validate_catalog(REPO / "testcases")
    assert problems == [], "\n".join(str(p) for p in problems)
