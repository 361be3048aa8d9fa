"""One vocabulary: the schema, the loader, the matcher, the engines and docs/format.md agree with
conformance/vocabulary, where every action, subject, qualifier and operator is defined once."""

from __future__ import annotations

import dataclasses
import json
import re
import textwrap
from pathlib import Path

import pytest

from conformance.events import HttpExchange, Nothing, SipReceived, WsClosed, WsHandshake
from conformance.match import engine as matcher
from conformance.match import identity, subjects
from conformance.match import operators as match_operators
from conformance.match.engine import MatchContext, check
from conformance.model import testcase as loader
from conformance.model.testcase import Expectation, check_testcase
from conformance.model.yaml_marks import loads
from conformance.run import actions as run_actions
from conformance.run import browser_actions
from conformance.verdicts import Verdict
from conformance.vocabulary import actions as vocabulary_actions
from conformance.vocabulary import schema_gen
from conformance.vocabulary.actions import ACTIONS, BROWSER_ACTIONS, RUNNABLE, SIP_ACTIONS, ActionDef
from conformance.vocabulary.definition import Registry, Word
from conformance.vocabulary.errors import MalformedExpectation
from conformance.vocabulary.operators import COUNT, IDENTITY_OPERATORS, OPERATORS, PREDICATES
from conformance.vocabulary.shorthand import normalise
from conformance.vocabulary.subjects import META, QUALIFIERS, SUBJECTS

REPO = Path(__file__).resolve().parents[2]
FORMAT_MD = (REPO / "docs" / "format.md").read_text(encoding="utf-8")
SCHEMA_TEXT = schema_gen.SCHEMA_FILE.read_text(encoding="utf-8")
SCHEMA = json.loads(SCHEMA_TEXT)


# -- the schema derives from the registry ------------------------------------------------------------

def test_schema_file_is_what_the_vocabulary_derives():
    assert schema_gen.stale(SCHEMA) == [], "run python -m conformance.vocabulary.schema_gen --write"
    assert schema_gen.rewrite(SCHEMA_TEXT) == SCHEMA_TEXT, "the derived $defs are laid out as the generator writes them"


def test_schema_lists_exactly_the_registered_words():
    defs = SCHEMA["$defs"]
    step_actions = {r["required"][0] for r in defs["step"]["anyOf"]}
    assert step_actions == set(ACTIONS.names())
    assert {r["required"][0] for r in defs["expectation"]["anyOf"]} == set(SUBJECTS.names())
    assert {r["required"][0] for r in defs["any_operator"]["anyOf"]} == set(OPERATORS.names())
    words = {*SUBJECTS.names(), *QUALIFIERS.names(), *OPERATORS.names(), *META.names()}
    assert set(defs["expectation"]["properties"]) == words
    # the hand-written selector names the selectable subjects, each with qualifiers it accepts
    selector = defs["selector"]
    assert set(selector["properties"]) <= words
    assert {r["required"][0] for r in selector["anyOf"]} == set(SUBJECTS.where(selectable=True))
    for name in SUBJECTS.where(selectable=True):
        allowed = set(selector["dependentSchemas"][name]["propertyNames"]["enum"])
        assert allowed <= {name, *SUBJECTS[name].accepts}, name


@pytest.mark.parametrize("action", ACTIONS.names())
def test_every_action_has_its_schema_fragment(action):
    ref = ACTIONS[action].schema_fragment()["$ref"]
    assert ref == f"#/$defs/{action}" and action in SCHEMA["$defs"], f"add $defs/{action} to testcase.schema.json"


def test_a_new_action_is_one_definition_plus_its_fragment(monkeypatch):
    """Registering an action changes the step schema the generator derives (one action rule,
    allowed keys, error message): nothing else has to list it."""
    extra = ActionDef("dns_query", "resolve a name (example)", {"$ref": "#/$defs/dns_query"}, "x:y")
    grown = Registry("action", [*ACTIONS, extra])
    monkeypatch.setattr(schema_gen, "ACTIONS", grown)
    step = schema_gen.step(SCHEMA["$defs"]["step"])
    assert {"required": ["dns_query"]} in step["anyOf"]
    assert step["properties"]["dns_query"] == {"$ref": "#/$defs/dns_query", "description": "resolve a name (example)"}
    assert "dns_query" in step["dependentSchemas"]["dns_query"]["propertyNames"]["enum"]
    assert "dns_query" in step["x-errors"]["anyOf"]
    assert schema_gen.stale(SCHEMA) == ["step"]  # the file is now behind: the test above would fail


def test_a_word_cannot_be_defined_twice():
    with pytest.raises(ValueError, match="defined twice"):
        Registry("operator", [Word("equals", "a", {}), Word("equals", "b", {})])
    with pytest.raises(KeyError, match="did you mean sip_send"):
        ACTIONS["sip_sned"]


# -- the loader, the matcher and the engines use it -------------------------------------------------

def test_loader_names_are_the_registry_names():
    assert loader.ACTIONS == ACTIONS.names()
    assert loader.SUBJECTS == SUBJECTS.names()
    assert loader.QUALIFIERS == QUALIFIERS.names()
    assert loader.OPERATORS == OPERATORS.names()
    assert loader.SIP_ACTIONS == SIP_ACTIONS == {"sip_send", "sip_expect", "sip_serve"}


def test_engine_dispatches_exactly_the_registered_actions():
    assert run_actions.ACTIONS == RUNNABLE == tuple(a for a in ACTIONS.names() if a != "use")
    for name in RUNNABLE:
        assert callable(run_actions._handler(name)), name
    with pytest.raises(run_actions.StepError, match="no action 'use'"):
        run_actions._handler("use")  # the loader expands it; it never reaches the engine
    assert ACTIONS["use"].implementation() is None
    assert browser_actions.BROWSER_ACTIONS == BROWSER_ACTIONS
    assert set(BROWSER_ACTIONS) <= set(RUNNABLE)
    for name in BROWSER_ACTIONS:
        assert callable(ACTIONS[name].browser_implementation()), name


def test_action_of_finds_only_registered_actions():
    assert run_actions.action_of({"sip_serve": {}, "expect": []}) == "sip_serve"
    with pytest.raises(run_actions.StepError, match="exactly one action"):
        run_actions.action_of({"dns_query": {}})


def test_matcher_implements_exactly_the_registered_subjects_and_operators():
    assert set(subjects._RESOLVERS) == set(SUBJECTS.names())
    assert all(callable(s.implementation()) for s in SUBJECTS)
    assert set(match_operators.OPERATORS) == set(PREDICATES)
    assert set(identity.IDENTITY_CHECKS) == set(IDENTITY_OPERATORS)
    assert match_operators.ALL_OPERATORS == {*PREDICATES, COUNT, *IDENTITY_OPERATORS} == set(OPERATORS.names())
    for op in OPERATORS:
        assert callable(op.implementation()), op.name
    assert subjects.MODIFIERS == QUALIFIERS.names() and set(subjects.META) == set(META.names())
    # one exception class: what the vocabulary raises is what the matcher turns into verdict error
    assert match_operators.MalformedExpectation is MalformedExpectation


# -- docs/format.md documents every word ------------------------------------------------------------

def _section(title: str) -> str:
    start = FORMAT_MD.index(f"\n### {title}\n")
    end = FORMAT_MD.find("\n## ", start + 1)
    nxt = FORMAT_MD.find("\n### ", start + 1)
    return FORMAT_MD[start:min(x for x in (end, nxt) if x != -1)]


@pytest.mark.parametrize("action", ACTIONS.names())
def test_every_action_has_a_paragraph_in_format_md(action):
    assert re.search(rf"^`{action}` \u2014 ", _section("Actions"), re.M), f"docs/format.md: add `{action}` \u2014 ..."


@pytest.mark.parametrize("word", [*SUBJECTS.names(), *QUALIFIERS.names(), *OPERATORS.names()])
def test_every_subject_qualifier_and_operator_is_in_format_md(word):
    assert re.search(rf"`{word}\b", _section("Expectations")), f"docs/format.md Expectations: explain `{word}`"


def test_format_md_tells_how_to_add_an_action():
    assert "Adding an action" in FORMAT_MD and "conformance/vocabulary" in FORMAT_MD


# -- one reading of the shorthand -------------------------------------------------------------------

def _http(status: int, body: bytes, reason: str = "OK") -> HttpExchange:
    return HttpExchange(method="GET", url="https://as/x", request_headers=[], request_body=b"", status=status,
                        reason=reason, headers=[("Content-Type", "text/plain")], body=body)


def _register(uri: str = "sip:ims.example.net") -> SipReceived:
    from conformance.codec import sip

    raw = (f"REGISTER {uri} SIP/2.0\r\nVia: SIP/2.0/UDP x;branch=z9hG4bK1\r\nTo: <sip:a@x>\r\n"
           "From: <sip:a@x>;tag=1\r\nCall-ID: c\r\nCSeq: 1 REGISTER\r\nContent-Length: 0\r\n\r\n").encode()
    return SipReceived(message=sip.parse(raw), raw=raw, transport="udp")


# (item without an operator, events to check it on)
SHORTHANDS = [
    ({"status": 401}, [_http(401, b""), _http(200, b"")]),
    ({"status": [302, 303]}, [_http(303, b""), _http(200, b"")]),
    ({"method": "REGISTER"}, [_register(), Nothing(waited_ms=10, peer_alive=True)]),
    ({"subprotocol": None}, [WsHandshake("wss://x/sip", 101, subprotocol=None),
                             WsHandshake("wss://x/sip", 101, subprotocol="sip")]),
    ({"subprotocol": "sip"}, [WsHandshake("wss://x/sip", 101, subprotocol="sip")]),
    ({"request_uri": "sip:IMS.example.net"}, [_register(), _register("sip:other.example")]),
    ({"request_uri": True}, [_register()]),
    ({"ws_closed": True}, [WsClosed(1002), _http(200, b"")]),
    ({"ws_closed": False}, [WsHandshake("wss://x/sip", 101, subprotocol="sip"), WsClosed(1002)]),
    ({"ws_closed": 1002}, [WsClosed(1002), WsClosed(1000)]),
    ({"ws_closed": [1002, 1006]}, [WsClosed(1006), WsClosed(1000)]),
    ({"nothing": True}, [Nothing(waited_ms=10, peer_alive=True), _register()]),
    ({"nothing": False}, [_register(), Nothing(waited_ms=10, peer_alive=True)]),
    ({"header": "Content-Type"}, [_http(200, b""), WsClosed(1000)]),
]


@pytest.mark.parametrize("item, events", SHORTHANDS, ids=[json.dumps(s[0]) for s in SHORTHANDS])
def test_loader_and_matcher_read_a_shorthand_alike(item, events):
    """The operator the loader puts in the model, written out explicitly, gives the matcher the
    same verdicts as the shorthand itself: both read it through one normaliser."""
    loaded = Expectation.from_mapping(loads(json.dumps(item))[0], "t.yaml")
    subject = loaded.subject
    explicit = {subject: loaded.target if loaded.target is not None else True, loaded.op: loaded.operand}
    ctx = MatchContext()
    shorthand_verdicts = [check([item], e, ctx)[0].verdict for e in events]
    explicit_verdicts = [check([explicit], e, ctx)[0].verdict for e in events]
    assert shorthand_verdicts == explicit_verdicts
    assert Verdict.ERROR not in shorthand_verdicts
    assert (loaded.op, loaded.operand) == normalise(subject, item)


def test_shorthands_fail_where_they_must():
    """Not vacuous: each shorthand above passes on its first event and at least one fails."""
    ctx = MatchContext()
    firsts = [check([item], events[0], ctx)[0].verdict for item, events in SHORTHANDS]
    assert set(firsts) == {Verdict.PASS}
    seconds = [check([item], events[1], ctx)[0].verdict for item, events in SHORTHANDS if len(events) > 1]
    assert Verdict.FAIL in seconds


BODY_WITHOUT_OPERATOR = {"body": "invalid_token"}


def test_body_with_a_value_is_malformed_everywhere(tmp_path):
    """docs/format.md: `body` is written `body: true` with an operator. `{body: invalid_token}` was
    `present` in the loader and `contains` in the matcher; now it is the same mistake in both."""
    with pytest.raises(MalformedExpectation, match="write body: true with an operator"):
        normalise("body", BODY_WITHOUT_OPERATOR)
    with pytest.raises(MalformedExpectation, match="write body: true with an operator"):
        Expectation.from_mapping(loads(json.dumps(BODY_WITHOUT_OPERATOR))[0], "t.yaml")
    answer = _http(401, b'{"error": "invalid_token"}')
    (finding,) = check([BODY_WITHOUT_OPERATOR], answer, MatchContext())
    assert finding.verdict == Verdict.ERROR and "body: true" in finding.message
    # the loader rejects it before anything runs (peers.expect items reach the matcher unchecked)
    case = tmp_path / "case.yaml"
    case.write_text(textwrap.dedent("""\
        id: TP_WSF_BAD_906
        title: t
        sut: wsf
        kind: negative
        severity: normal
        refs: [x]
        steps:
          - http: {url: "https://wsf.example/x"}
            expect:
              - {body: invalid_token, ref: RFC 6750 3.1}
        """))
    tc, problems = check_testcase(case, tmp_path)
    assert tc is None and any(p.line == 10 and "body" in p.message for p in problems), problems
    # written as the format says, both read it as contains and it holds on that answer
    good = {"body": True, "contains": "invalid_token"}
    assert Expectation.from_mapping(loads(json.dumps(good))[0], "t.yaml").operators == {"contains": "invalid_token"}
    assert check([good], answer, MatchContext())[0].verdict == Verdict.PASS
    assert check([good], _http(401, b"{}"), MatchContext())[0].verdict == Verdict.FAIL


def test_shorthand_errors_are_the_matchers_errors():
    assert check([{"jwt": "x.y.z", "signature": "maybe"}], _http(200, b""), MatchContext())[0].verdict == Verdict.ERROR
    two = {"header": "To", "equals": "a", "contains": "b"}
    with pytest.raises(MalformedExpectation, match="one operator per expectation"):
        normalise("header", two)
    assert check([two], _http(200, b""), MatchContext())[0].verdict == Verdict.ERROR


def test_definitions_provide_what_the_protocol_names():
    for registry in (ACTIONS, SUBJECTS, QUALIFIERS, OPERATORS, META):
        for d in registry:
            assert d.name and d.doc and isinstance(d.schema_fragment(), dict), d
            assert d.schema_fragment()["description"] == d.doc
    assert dataclasses.is_dataclass(vocabulary_actions.ActionDef)
    assert matcher.normalise is normalise  # the matcher calls the vocabulary's normaliser
    assert loader.normalise is normalise  # and so does the loader
