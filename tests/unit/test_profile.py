"""Profiles: schema, ${env:NAME}, PICS answers, secrets, expected deviations."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from conformance.model.deviations import unknown_ids
from conformance.model.pics import KNOWN_PICS
from conformance.model.profile import ProfileError, load_profile
from conformance.run.templating import render_string

REPO = Path(__file__).resolve().parents[2]
REFERENCE = REPO / "profiles" / "reference.yaml"
TEMPLATE = REPO / "profiles" / "vendor-template.yaml"
TEMPLATE_ENV = {name: f"value-of-{name.lower()}" for name in (
    "ACME_CLIENT_SECRET", "ACME_WSF_SECRET", "ACME_ADMIN_TOKEN", "ACME_ALICE_PASSWORD", "ACME_JANE_PASSWORD",
    "ACME_BOB_PASSWORD", "ACME_JOE_PASSWORD")}


def position(path: Path, needle: str, nth: int = 0) -> tuple[int, int]:
    """1-based line and column of the nth occurrence of `needle` in a file."""
    lines = path.read_text().splitlines()
    hits = [(i + 1, line.index(needle) + 1) for i, line in enumerate(lines) if needle in line]
    return hits[nth]


def variant(tmp_path: Path, edit, name: str = "p.yaml") -> Path:
    """The reference profile with `edit(doc)` applied, written to tmp_path."""
    doc = yaml.safe_load(REFERENCE.read_text())
    edit(doc)
    path = tmp_path / name
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def problems(path: Path, environ=None) -> list[tuple[int, int, str]]:
    with pytest.raises(ProfileError) as err:
        load_profile(path, environ=environ if environ is not None else {})
    return [(p.line, p.column, p.message) for p in err.value.problems]


def test_reference_profile(tmp_path: Path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    p = load_profile(REFERENCE, environ={})
    assert p.name == "reference" and p.path == REFERENCE and p.base_dir == tmp_path
    assert p.pics == {n: o.default for n, o in KNOWN_PICS.items()}
    assert p.node("wsf")["url"] == "wss://127.0.0.13:7443/sip"
    assert p.pixit["nodes"]["as"].line == position(REFERENCE, "supplied: true", 1)[0]  # marks are kept
    with pytest.raises(KeyError, match="nodes: 3rdwws, as, wsf, pcscf, scscf"):
        p.node("icscf")
    assert set(p.fixtures) == {"alice", "bob"}
    assert p.reference_network["launch"] is True and p.deviations == [] and p.deviation("TP_X_Y_001") is None
    assert p.step_timeout_ms == 5000 and p.connect_timeout_ms == 3000
    assert p.resolve_path(".refnet/pki/ca.pem") == tmp_path / ".refnet/pki/ca.pem"
    assert p.secrets == {
        "pixit.oauth.client_secret": "thirdparty-webrtc-app-secret",
        "pixit.oauth.introspection_client_secret": "wsf-secret",
        "pixit.oauth.short_lived_client.client_secret": "thirdparty-short-lived-secret",
        "pixit.oauth.other_audience_client.client_secret": "thirdparty-voicemail-secret",
        "pixit.users.provisioning.token": "refnet-admin-token",
        "pixit.users.fixtures.alice.password": "alice-pw",
        "pixit.users.fixtures.alice.tp_password": "jane-pw",
        "pixit.users.fixtures.bob.password": "bob-pw",
        "pixit.users.fixtures.bob.tp_password": "joe-pw",
        "pixit.lifecycle.deregister_token": "refnet-admin-token",
    }
    assert p.redactor is p.redactor
    assert p.redactor.text("client_secret=thirdparty-webrtc-app-secret") == \
        "client_secret=<redacted:pixit.oauth.client_secret>"
    ctx = p.template_context(p.fixtures["alice"])
    assert render_string("${pixit.nodes.as.issuer} ${user.impu} ${pics.core.transport}", ctx) == \
        "https://127.0.0.12:9443 sip:alice@ims.example.net udp"


def test_vendor_template_needs_its_environment():
    got = problems(TEMPLATE)
    assert [m for _, _, m in got] == [f"environment variable {v} is not set (${{env:{v}}})" for v in TEMPLATE_ENV]
    assert got[0][:2] == position(TEMPLATE, "${env:ACME_CLIENT_SECRET}")
    p = load_profile(TEMPLATE, environ=TEMPLATE_ENV)
    assert p.name == "acme-lab" and p.pics["signalling.path"] == "relay"
    assert p.fixtures["alice"]["password"] == "value-of-acme_alice_password"
    assert sorted(p.secrets.values()) == sorted(TEMPLATE_ENV.values())


def test_unknown_pics_option_lists_the_known_ones(tmp_path: Path):
    path = variant(tmp_path, lambda d: d["pics"].update({"signaling.path": "relay", "x-acme.fast": True}))
    ((line, col, msg),) = problems(path)
    assert (line, col) == position(path, "signaling.path")
    assert msg == ("unknown PICS option 'signaling.path'; known options: " + ", ".join(KNOWN_PICS)
                   + " (vendor options start with x-)")


def test_bad_and_missing_pics_answers(tmp_path: Path):
    def edit(d):
        d["pics"]["signalling.path"] = "relya"
        d["pics"]["token.wsf_url_member"] = "yes"
        del d["pics"]["core.transport"]
    path = variant(tmp_path, edit)
    assert problems(path) == [
        (*position(path, "pics:"), "missing required key 'core.transport'"),
        (position(path, "relya")[0], position(path, "relya")[1],
         "signalling.path: 'relya' is not one of 'relay', 'direct'; did you mean 'relay'?"),
        (*position(path, "'yes'"),
         "token.wsf_url_member: expected boolean, got string 'yes'"),
    ]


def test_env_values_are_typed_where_the_schema_says_and_are_secrets(tmp_path: Path):
    def edit(d):
        d["pixit"]["nodes"]["wsf"]["port"] = "${env:WSF_PORT}"
        d["pixit"]["nodes"]["wsf"]["url"] = "wss://${env:WSF_HOST}:7443/sip"
        d["pixit"]["capture"]["enabled"] = "${env:CAPTURE}"
        d["sut"]["name"] = "literal $${not a template}"
    path = variant(tmp_path, edit)
    p = load_profile(path, environ={"WSF_PORT": "7443", "WSF_HOST": "wsf.lab", "CAPTURE": "false"})
    assert p.node("wsf")["port"] == 7443 and p.pixit["capture"]["enabled"] is False
    assert p.node("wsf")["url"] == "wss://wsf.lab:7443/sip"
    assert p.sut["name"] == "literal ${not a template}"
    assert p.secrets["WSF_HOST"] == "wsf.lab" and p.secrets["WSF_PORT"] == "7443"
    got = problems(path, {"WSF_PORT": "seventy", "WSF_HOST": "h", "CAPTURE": "no"})
    assert [m for _, _, m in got] == ["port: expected integer, got string 'seventy'",
                                      "enabled: expected boolean, got string 'no'"]
    assert got[0][:2] == position(path, "${env:WSF_PORT}")


def test_only_env_templates_in_a_profile(tmp_path: Path):
    path = variant(tmp_path, lambda d: d["pixit"]["nodes"]["as"].update(jwks_uri="${pixit.nodes.as.issuer}/jwks"))
    assert problems(path) == [(*position(path, "${pixit"), "${pixit.nodes.as.issuer}: only ${env:NAME} can be "
                                                            "used in a profile (write $${ for a literal ${)")]


def test_schema_typo_in_pixit(tmp_path: Path):
    path = variant(tmp_path, lambda d: d["pixit"]["oauth"].update(client_secert="x"))
    assert problems(path) == [(*position(path, "client_secert"), "unknown key 'client_secert'; did you mean "
                                                                  "'client_secret'?")]


def test_deviations_file_relative_to_the_profile(tmp_path: Path):
    (tmp_path / "profiles").mkdir()
    (tmp_path / "profiles" / "devs.yaml").write_text(
        "- id: TP_WSF_REG_007\n  reason: revocation is cached\n  verdict: fail\n  ticket: ACME-1\n"
        "- id: TP_AS_CODE_002\n  reason: no capture of that leg\n  verdict: inconclusive\n")
    path = variant(tmp_path / "profiles", lambda d: d.update(expected_deviations="devs.yaml"))
    p = load_profile(path, environ={})
    dev = p.deviation("TP_WSF_REG_007")
    assert (dev.reason, dev["reason"], dev.verdict, dev.ticket, dev.line) == (
        "revocation is cached", "revocation is cached", "fail", "ACME-1", 1)
    assert p.deviation("TP_AS_CODE_002").get("ticket") is None
    assert [str(x) for x in unknown_ids(p.deviations, ["TP_WSF_REG_007"])] == [
        f"{tmp_path / 'profiles' / 'devs.yaml'}:5:1: expected deviation for unknown test case TP_AS_CODE_002"]


def test_deviation_errors_point_at_the_deviations_file(tmp_path: Path):
    devs = tmp_path / "devs.yaml"
    devs.write_text("- id: TP_WSF_REG_007\n  reason: r\n  verdict: xfail\n- id: TP_WSF_REG_007\n  reason: again\n"
                    "  verdict: fail\n")
    path = variant(tmp_path, lambda d: d.update(expected_deviations="devs.yaml"))
    with pytest.raises(ProfileError) as err:
        load_profile(path, environ={})
    assert [str(p) for p in err.value.problems] == [
        f"{devs}:3:12: verdict: 'xfail' is not one of 'fail', 'inconclusive'; did you mean 'fail'? "
        "(schema path: $defs/deviation/properties/verdict/enum)"]
    devs.write_text("- {id: TP_WSF_REG_007, reason: r, verdict: fail}\n- {id: TP_WSF_REG_007, reason: s, verdict: fail}\n")
    with pytest.raises(ProfileError) as err:
        load_profile(path, environ={})
    assert [(p.line, p.message) for p in err.value.problems] == [(2, "TP_WSF_REG_007 is listed twice (first at line 1)")]
    missing = variant(tmp_path, lambda d: d.update(expected_deviations="nope.yaml"), "q.yaml")
    ((line, col, msg),) = problems(missing)
    assert (line, col) == position(missing, "nope.yaml") and msg == f"expected_deviations: no file {tmp_path / 'nope.yaml'}"


def test_inline_deviations(tmp_path: Path):
    path = variant(tmp_path, lambda d: d.update(expected_deviations=[
        {"id": "TP_WSF_REG_007", "reason": "known", "verdict": "fail"}]))
    assert load_profile(path, environ={}).deviation("TP_WSF_REG_007").reason == "known"


def test_yaml_syntax_error_in_profile(tmp_path: Path):
    path = tmp_path / "bad.yaml"
    path.write_text("profile: x\npixit:\n  a: [1, 2\n")
    ((line, col, msg),) = problems(path)
    assert line == 4 and msg.startswith("YAML syntax:")


def test_reference_network_knows_sip_nodes_by_the_host_of_their_sip_uri():
    # the reference S-CSCF routes a NOTIFY by the P-CSCF's name (its Path): without the name the
    # network launched from a profile found no address and the reg event never reached the UE
    from conformance.run.reference import _name_of

    assert _name_of({"sip_uri": "sip:pcscf.ims.example.net"}) == "pcscf.ims.example.net"
    assert _name_of({"sip_uri": "sip:scscf.ims.example.net:5070;transport=tcp"}) == "scscf.ims.example.net"
    assert _name_of({"tls_name": "wsf.operator.example", "sip_uri": "sip:x@y"}) == "wsf.operator.example"
    assert _name_of({}) == ""
