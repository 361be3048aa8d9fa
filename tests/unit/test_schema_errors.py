"""Bad input is rejected with file:line:column and the schema location, every problem at once."""

from __future__ import annotations

import json
import re
import textwrap
from pathlib import Path

import pytest
import yaml
from jsonschema import Draft202012Validator

from conformance.model import schema
from conformance.model.testcase import check_testcase, load_testcase
from conformance.model.yaml_marks import Problem, loads

HERE = Path(__file__).resolve().parent
BROKEN = HERE / "data" / "broken"
FRAGMENTS = BROKEN / "fragments"
REPO = HERE.parents[1]
OWN_SCHEMAS = ("testcase.schema.json", "fragment.schema.json", "profile.schema.json", "peers.schema.json")

HEAD = """\
id: TP_WSF_BAD_905
title: t
sut: wsf
kind: negative
severity: normal
refs: [x]
"""


def problems_of(name: str) -> list[tuple[str, int, int, str]]:
    _, problems = check_testcase(BROKEN / name, FRAGMENTS)
    return [(Path(p.file).name, p.line, p.column, p.message) for p in problems]


def problems_in(tmp_path: Path, body: str) -> list[tuple[int, int, str]]:
    path = tmp_path / "case.yaml"
    path.write_text(HEAD + textwrap.dedent(body))
    _, problems = check_testcase(path, tmp_path)
    return [(p.line, p.column, p.message) for p in problems]


def test_problem_prints_like_a_compiler():
    p = Problem("t.yaml", 12, 7, "unknown key 'expcet'", "$defs/step/additionalProperties")
    assert str(p) == "t.yaml:12:7: unknown key 'expcet' (schema path: $defs/step/additionalProperties)"
    assert str(Problem("t.yaml", 1, 1, "YAML syntax: x")) == "t.yaml:1:1: YAML syntax: x"


def test_bad_indentation_is_a_yaml_error_with_position():
    assert problems_of("bad_indentation.yaml") == [
        ("bad_indentation.yaml", 13, 6, "YAML syntax: did not find expected key (while parsing a block mapping at line 10)")]


def test_misspelt_key_is_reported_at_the_key_with_a_suggestion():
    _, problems = check_testcase(BROKEN / "typo_key.yaml", FRAGMENTS)
    assert [(p.line, p.column, p.message, p.schema_path) for p in problems] == [
        (11, 5, "unknown key 'expcet'; did you mean 'expect'?", "$defs/step/additionalProperties")]
    assert str(problems[0]).startswith(f"{BROKEN / 'typo_key.yaml'}:11:5: unknown key 'expcet'")


def test_wrong_types_are_all_reported_each_at_its_place():
    assert problems_of("wrong_types.yaml") == [
        ("wrong_types.yaml", 7, 11, "severity: 'urgent' is not one of 'blocker', 'critical', 'normal', 'minor', "
                                    "'trivial'"),
        ("wrong_types.yaml", 8, 7, "refs: expected array, got string 'RFC 8898 2.2'"),
        ("wrong_types.yaml", 11, 16, "23 is greater than the maximum of 22"),
        ("wrong_types.yaml", 12, 17, "expected an integer or a ${...} template, got 'soon'"),
        ("wrong_types.yaml", 16, 17, "status is a code 100-699, a list of codes, or true with an operator; got '4O1'"),
        ("wrong_types.yaml", 17, 9, "this check needs an operator: one of equals, not_equals, regex, contains, "
                                    "not_contains, absent, present, one_of, uri_equals, less_than, greater_than, "
                                    "count, starts_with, is_default_impu_of, is_impu_of, is_impi_of"),
    ]


def test_errors_inside_fragments_point_at_the_fragment_file():
    assert problems_of("bad_fragment_use.yaml") == [
        ("bad_fragment_use.yaml", 12, 21, f"unknown fragment 'login_and_authorise' in {FRAGMENTS} "
                                          "(known: broken_login, open_wsf)"),
        ("bad_fragment_use.yaml", 15, 14, "fragment 'open_wsf' has no parameter 'wsf_ulr'; did you mean wsf_url?"),
        ("broken_login.yaml", 7, 7, "unknown key 'methd'; did you mean 'method'?"),
    ]
    _, problems = check_testcase(BROKEN / "bad_fragment_use.yaml", FRAGMENTS)
    assert problems[-1].schema_path == "testcase.schema.json#/$defs/http/additionalProperties"


def test_load_testcase_raises_with_all_problems():
    with pytest.raises(Exception) as err:
        load_testcase(BROKEN / "wrong_types.yaml", FRAGMENTS)
    assert len(err.value.problems) == 6
    assert str(err.value).count("wrong_types.yaml:") == 6


def test_exclusive_keys_are_reported_once_at_the_second(tmp_path: Path):
    got = problems_in(tmp_path, """\
        steps:
          - name: two actions
            http: {url: "https://a"}
            wait: {ms: 5}
          - sip_expect: {name: wsf}
            expect:
              - method: REGISTER
                body: true
              - header: Via
                equals: a
                contains: b
              - header: Via
                param: branch
                query: x
                present: true
        """)
    assert got == [
        (10, 5, "'wait' cannot be used in a step whose action is http (one action per step)"),
        (14, 9, "'body' cannot be used with subject method"),
        (17, 9, "'contains': one operator per expectation (this one has equals)"),
        (20, 9, "'query' cannot be combined with param"),
    ]


def test_shorthand_with_operator_and_missing_action(tmp_path: Path):
    got = problems_in(tmp_path, """\
        steps:
          - name: nothing to do
            flow: [4]
          - ws_connect: {url: "wss://a", subprotocol: sip}
            expect:
              - status: 101
                equals: 101
              - subprotocol: true
                one_of: [sip, null]
              - cookie: sid
                field: x
                present: true
        """)
    assert got == [
        (8, 5, "a step needs one action: one of http, oauth, ws_connect, ws_send, ws_close, sip_send, sip_expect, "
               "forge_token, wait, sip_serve, reginfo, use"),
        (10, 34, "unknown key 'subprotocol'; did you mean 'subprotocols'?"),
        (12, 9, "status: <value> already compares; to use an operator write 'status: true'"),
        (17, 9, "'field' cannot be used with subject cookie"),
    ]


def test_transport_rules_and_conflicting_bodies(tmp_path: Path):
    got = problems_in(tmp_path, """\
        steps:
          - sip_send: {over: udp, name: x, template: register}
          - sip_send: {over: ws, to: pcscf, raw: "OPTIONS sip:a SIP/2.0", template: register}
          - http: {method: post, url: "https://a", form: {a: 1}, json: {b: 2}}
        """)
    assert got == [
        (8, 5, "missing required key 'to'"),
        (8, 33, "'name' is a ws connection; with over: udp/tcp use to"),
        (9, 30, "'to' names the node of a udp/tcp transport; with over: ws use name"),
        (9, 67, "'template' cannot be combined with 'raw'"),
        (10, 20, "method: 'post' does not match ^([A-Z]+|\\$\\{[^{}]+\\})$ (HTTP method in capitals (default GET))"),
        (10, 58, "'json' cannot be combined with 'form'"),
    ]


def test_capture_block_errors(tmp_path: Path):
    got = problems_in(tmp_path, """\
        steps:
          - wait: {ms: 1}
        capture:
          expect:
            - {flow: 17, from: wsf, to: pcscf, sip: {method: REGISTER}, expcet: []}
            - {flow: 17, from: wsf, to: pcscf}
        """)
    assert got == [
        (11, 65, "unknown key 'expcet'; did you mean 'expect'?"),
        (12, 7, "needs one of http, ws_handshake, ws, sip, garbage, tls_alert, any"),
    ]


def test_pics_and_template_problems_in_a_file(tmp_path: Path):
    got = problems_in(tmp_path, """\
        pics: "signalling.path == 'relya' or token.fromat == 'jwt'"
        steps:
          - http: {url: "${pixit.nodes.as.base_url}/x?a=${unclosed"}
        """)
    assert got == [
        (7, 7, "pics: 'relya' is not a value of signalling.path (allowed: 'relay', 'direct') (column 20 of the expression)"),
        (7, 7, "pics: unknown PICS name token.fromat; did you mean token.format? (column 31 of the expression)"),
        (9, 17, "unterminated '${' at offset 31 in '${pixit.nodes.as.base_url}/x?a=${unclosed' (write $${ for a literal)"),
    ]


def test_duplicate_keys_and_empty_file(tmp_path: Path):
    assert problems_in(tmp_path, "steps: []\nsteps: []\n") == [(8, 1, "duplicate key 'steps' (first at line 7)")]
    empty = tmp_path / "empty.yaml"
    empty.write_text("# nothing\n")
    assert [p.message for p in check_testcase(empty, tmp_path)[1]] == ["empty file: a test case is a YAML mapping"]


def test_yaml_reader_errors_have_a_position():
    _, problems = loads(b"a: 1\nb: \xff\n", "bin.yaml")
    assert [(p.line, p.column) for p in problems] == [(2, 4)]
    _, problems = loads("a: 1\nb: [1, 2\n", "x.yaml")
    assert problems[0].line == 3 and problems[0].message.startswith("YAML syntax:")


# -- the schema files themselves -------------------------------------------------------------------

def _walk(node, path=""):
    if isinstance(node, dict):
        yield path, node
        for k, v in node.items():
            yield from _walk(v, f"{path}/{k}")
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _walk(v, f"{path}/{i}")


@pytest.mark.parametrize("name", OWN_SCHEMAS)
def test_schema_is_strict_and_documented(name: str):
    doc = json.loads((REPO / "conformance" / "schema" / name).read_text())
    Draft202012Validator.check_schema(doc)
    assert doc["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    for path, node in _walk(doc):
        if "properties" in node and isinstance(node["properties"], dict) and not path.endswith("/properties"):
            if all(v is False for v in node["properties"].values()) or "type" not in node:
                continue  # `{properties: {x: false}}` forbids keys; it is not an object definition
            assert node.get("additionalProperties") is False, f"{name}{path}: additionalProperties must be false"
            for key, sub in node["properties"].items():
                assert isinstance(sub, dict) and sub.get("description"), f"{name}{path}/properties/{key}: no description"


def test_schema_location_follows_refs_into_other_files(tmp_path: Path):
    frag = tmp_path / "f.yaml"
    frag.write_text("fragment: f\ndescription: d\nsteps:\n  - http: {url: x, methd: GET}\n")
    from conformance.model.testcase import FragmentLibrary

    got = FragmentLibrary(tmp_path).get("f").problems
    assert [(p.line, p.column, p.schema_path) for p in got] == [
        (4, 20, "testcase.schema.json#/$defs/http/additionalProperties")]


def _docs_examples() -> dict[str, list]:
    """The YAML examples of docs/format.md that are complete enough to validate."""
    text = (REPO / "docs" / "format.md").read_text()
    blocks = [yaml.safe_load(b) for b in re.findall(r"```yaml\n(.*?)```", text, re.S) if "..." not in b]
    found: dict[str, list] = {"expect": [], "save": [], "fragment": []}
    for b in blocks:
        if isinstance(b, dict) and "expect" in b and len(b) == 1:
            found["expect"].append(b)
        elif isinstance(b, dict) and "save" in b and len(b) == 1:
            found["save"].append(b)
        elif isinstance(b, dict) and "fragment" in b:
            found["fragment"].append(b)
    return found


def test_docs_examples_validate_against_the_schema():
    found = _docs_examples()
    assert all(found.values()), f"docs/format.md lost an example: {found}"
    for block in found["expect"] + found["save"]:
        step = {"sip_expect": {"name": "wsf"}, **block}
        doc = {"id": "TP_WSF_DOC_001", "title": "t", "sut": "wsf", "kind": "positive", "severity": "minor",
               "refs": ["x"], "steps": [step]}
        assert list(schema.validator("testcase").iter_errors(doc)) == []
    for block in found["fragment"]:
        assert list(schema.validator("fragment").iter_errors(block)) == []


def test_fast_and_pure_python_validators_agree(monkeypatch):
    """jsonschema-rs (when installed) only answers 'valid?'; it must agree with jsonschema."""
    docs = []
    for path in sorted((REPO / "testcases").rglob("*.yaml")) + sorted(BROKEN.rglob("*.yaml")):
        doc, problems = loads(path.read_bytes(), path)
        if doc is not None:
            docs.append((path, doc))
    assert len(docs) >= 5
    fast = schema._fast_check("testcase.schema.json")
    for path, doc in docs:
        name = "fragment" if "fragment" in doc else "testcase"
        slow_ok = not list(schema.validator(name).iter_errors(doc))
        if fast is not None:
            assert schema._fast_check(schema.SCHEMA_FILES[name])(doc) == slow_ok, path
    # and the pure-Python path alone reports the same problems
    monkeypatch.setattr(schema, "_fast_check", lambda file: None)
    assert problems_of("typo_key.yaml")[0][1:3] == (11, 5)


# -- robustness: any mangled test case is rejected with problems, never with a crash ---------------

VALID = REPO / "testcases" / "flow" / "TP_FLOW_REG_002.yaml"
REPLACEMENTS = [None, 0, -1, 23, 1.5, True, "", "x", "${", "${saved.zz}", "$${x}", [], {}, [1, "a"],
                {"equals": 1}, {"status": 200, "equals": 200}, {"use": {"fragment": "nope"}}]


def _paths(node, path=()):
    yield path
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _paths(v, (*path, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _paths(v, (*path, i))


def test_mangled_testcases_never_crash_the_loader(tmp_path: Path):
    hypothesis = pytest.importorskip("hypothesis")
    from hypothesis import strategies as st

    base = yaml.safe_load(VALID.read_text())
    paths = list(_paths(base))[1:]
    (tmp_path / "fragments").mkdir()
    for frag in (REPO / "testcases" / "fragments").glob("*.yaml"):
        (tmp_path / "fragments" / frag.name).write_text(frag.read_text())

    @hypothesis.settings(max_examples=150, deadline=None, derandomize=True)
    @hypothesis.given(st.lists(st.tuples(st.sampled_from(paths), st.sampled_from(REPLACEMENTS)), min_size=1, max_size=3))
    def check(edits):
        doc = json.loads(json.dumps(base))
        for path, value in edits:
            node = doc
            try:
                for p in path[:-1]:
                    node = node[p]
                node[path[-1]] = json.loads(json.dumps(value))
            except (KeyError, IndexError, TypeError):
                continue
        case = tmp_path / "case.yaml"
        case.write_text(yaml.safe_dump(doc, sort_keys=False))
        tc, problems = check_testcase(case, tmp_path / "fragments")
        assert (tc is None) == bool(problems)
        assert all(p.line >= 1 and p.column >= 1 and p.message for p in problems)

    check()
