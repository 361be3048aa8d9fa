"""The RFC 4475 torture-test corpus against the SIP codec: every valid message parses, validates
clean and round-trips; every invalid one is reported with exactly the rules listed below."""

from __future__ import annotations

import csv
import hashlib
import os
import re
from pathlib import Path

import pytest

from conformance.codec import sip
from conformance.codec.sip_headers import parse_credentials, parse_name_addr, parse_via
from conformance.codec.sip_uri import SipUri, parse_uri


def _corpus_dir() -> Path | None:
    # shared/ is the sibling of the repository root wherever the repo is cloned.
    default = Path(__file__).resolve().parents[3] / "shared" / "corpora" / "rfc4475"
    for candidate in (default, Path(os.environ["RFC4475_DIR"]) if os.environ.get("RFC4475_DIR") else None):
        if candidate is not None and (candidate / "MANIFEST.tsv").is_file():
            return candidate
    return None


CORPUS = _corpus_dir()
pytestmark = pytest.mark.skipif(
    CORPUS is None, reason="RFC 4475 corpus not found at ../shared/corpora/rfc4475 (set RFC4475_DIR)")


def _manifest() -> dict[str, str]:
    if CORPUS is None:
        return {}
    with open(CORPUS / "MANIFEST.tsv", newline="") as fh:
        return {row["file"]: row["expected"] for row in csv.DictReader(fh, delimiter="\t")}


MANIFEST = _manifest()
VALID = sorted(f for f, e in MANIFEST.items() if e == "valid")
INVALID = sorted(f for f, e in MANIFEST.items() if e == "invalid")

# The exact set of error-severity rules each invalid message must trigger (RFC 4475 section in brackets).
EXPECTED_ERRORS = {
    "badinv01.dat": {"RFC3261-20.42 via-grammar", "RFC3261-25.1 generic-param"},  # 3.1.2.1
    "clerr.dat": {"RFC3261-18.3 content-length-mismatch"},  # 3.1.2.2
    "ncl.dat": {"RFC3261-20.14 content-length"},  # 3.1.2.3
    "scalar02.dat": {"RFC3261-8.1.1.5 cseq-range", "RFC3261-8.1.1.6 max-forwards", "RFC3261-20.19 expires",
                     "RFC3261-20.10 contact-expires"},  # 3.1.2.4
    "scalarlg.dat": {"RFC3261-8.1.1.5 cseq-range", "RFC3261-20.43 warning"},  # 3.1.2.5
    "quotbal.dat": {"RFC3261-25.1 quote-balance"},  # 3.1.2.6
    "ltgtruri.dat": {"RFC3261-19.1.1 request-uri"},  # 3.1.2.7
    "lwsruri.dat": {"RFC3261-7.1 request-line", "RFC3261-19.1.1 request-uri"},  # 3.1.2.8
    "lwsstart.dat": {"RFC3261-7.1 request-line"},  # 3.1.2.9
    "trws.dat": {"RFC3261-7.1 request-line"},  # 3.1.2.10
    "escruri.dat": {"RFC3261-19.1.1 ruri-headers"},  # 3.1.2.11
    "baddate.dat": {"RFC3261-20.17 date-gmt"},  # 3.1.2.12
    "regbadct.dat": {"RFC3261-20.10 addr-spec-reserved"},  # 3.1.2.13
    "badaspec.dat": {"RFC3261-25.1 name-addr-lws"},  # 3.1.2.14
    "baddn.dat": {"RFC3261-25.1 display-name", "RFC3261-7 empty-line"},  # 3.1.2.15
    "badvers.dat": {"RFC3261-7.1 sip-version"},  # 3.1.2.16
    "mismatch01.dat": {"RFC3261-8.1.1.5 cseq-method"},  # 3.1.2.17
    "mismatch02.dat": {"RFC3261-8.1.1.5 cseq-method"},  # 3.1.2.18
    "bigcode.dat": {"RFC3261-7.2 status-code"},  # 3.1.2.19
    "insuf.dat": {"RFC3261-8.1.1 mandatory-header"},  # 3.3.1
    "multi01.dat": {"RFC3261-7.3.1 single-valued"},  # 3.3.8
    "mcl01.dat": {"RFC3261-7.3.1 single-valued"},  # 3.3.9
}

# Valid messages that still deserve a lower-severity note (RFC 2543 leftovers, RFC 4475 3.2.1 / 3.4.1).
EXPECTED_WARNINGS = {
    "badbranch.dat": {"RFC3261-8.1.1.7 branch-cookie"},
    "inv2543.dat": {"RFC3261-8.1.1.7 branch-cookie", "RFC3261-8.1.1.3 from-tag",
                    "RFC3261-8.1.1.6 max-forwards-missing", "RFC3261-20.14 content-length-missing"},
    "wsinv.dat": {"RFC3261-8.1.1.7 branch-cookie"},
    "longreq.dat": {"RFC3261-8.1.1.7 branch-cookie"},
}


def _read(name: str) -> bytes:
    return (CORPUS / name).read_bytes()


def _rules(violations, severity):
    return {v.rule for v in violations if v.severity == severity}


def test_corpus_is_complete_and_intact():
    assert len(MANIFEST) == 49 and len(VALID) == 27 and len(INVALID) == 22
    assert set(INVALID) == set(EXPECTED_ERRORS)
    sums = dict((name, digest) for digest, name in re.findall(
        r"^([0-9a-f]{64})  (\S+)$", (CORPUS / "SOURCE.md").read_text(), re.MULTILINE))
    for name in MANIFEST:
        assert hashlib.sha256(_read(name)).hexdigest() == sums[name], name


@pytest.mark.parametrize("name", VALID)
def test_valid_message_validates_clean(name):
    msg, violations = sip.validate(_read(name))
    assert msg is not None
    assert sip.errors(violations) == []
    assert _rules(violations, "warning") == EXPECTED_WARNINGS.get(name, set())
    assert sip.parse(_read(name), strict=True) == msg


@pytest.mark.parametrize("name", VALID)
def test_valid_message_round_trips(name):
    msg = sip.parse(_read(name))
    again = sip.parse(sip.serialize(msg, content_length=False))
    assert type(again) is type(msg)
    assert again.headers.items() == msg.headers.items()
    assert again.body == msg.body
    if msg.is_request:
        assert (again.method, again.uri, again.version) == (msg.method, msg.uri, msg.version)
    else:
        assert (again.status, again.reason, again.version) == (msg.status, msg.reason, msg.version)

    # With Content-Length management the only change is the (added or fixed) Content-Length.
    wire = msg.serialize()
    fixed = sip.parse(wire)
    assert fixed.body == msg.body
    assert int(fixed.headers.get("Content-Length")) == len(msg.body)
    strip = lambda m: [(n, v) for n, v in m.headers.items() if sip.header_key(n) != "content-length"]  # noqa: E731
    assert strip(fixed) == strip(msg)
    assert sip.errors(sip.validate(wire)[1]) == []


@pytest.mark.parametrize("name", INVALID)
def test_invalid_message_reports_the_expected_rules(name):
    msg, violations = sip.validate(_read(name))
    assert _rules(violations, "error") == EXPECTED_ERRORS[name], [str(v) for v in violations]
    # "must not crash": the lenient parser still reads every one of them, strict mode refuses them
    assert sip.parse(_read(name)) == msg
    with pytest.raises(sip.SipParseError) as exc:
        sip.parse(_read(name), strict=True)
    assert {v.rule for v in sip.errors(exc.value.violations)} == EXPECTED_ERRORS[name]


def test_rules_carry_line_numbers_where_they_can():
    _, violations = sip.validate(_read("scalar02.dat"))
    lines = {v.rule: v.line for v in violations}
    assert lines["RFC3261-8.1.1.5 cseq-range"] == 5
    assert lines["RFC3261-8.1.1.6 max-forwards"] == 7
    assert lines["RFC3261-20.10 contact-expires"] == 9  # the folded Contact starts on line 9


def test_wsinv_folding_and_whitespace():
    msg = sip.parse(_read("wsinv.dat"))
    assert msg.headers.get("To") == "sip:vivekg@chair-dnrc.example.com ;   tag    = 1918181833n"
    assert parse_name_addr(msg.headers.get("t")).tag == "1918181833n"
    assert msg.headers.get("Subject") == ""
    assert msg.headers.get("NewFangledHeader") == "newfangled value continued newfangled value"
    assert msg.cseq == (9, "INVITE") and msg.headers.get("max-forwards") == "0068"
    vias = [parse_via(v) for v in msg.headers.get_all("Via")]
    assert [(v.transport, v.host, v.branch) for v in vias] == [
        ("UDP", "192.0.2.2", "390skdjuw"), ("TCP", "spindle.example.com", "z9hG4bK9ikj8"),
        ("UDP", "192.168.255.111", "z9hG4bK30239")]
    contact = parse_name_addr(msg.headers.get("m"))
    assert contact.display == 'Quoted string ""'
    assert dict(contact.params) == {"newparam": "newvalue", "secondparam": None, "q": "0.33"}
    assert parse_name_addr(msg.headers.get("From")).display == 'J Rosenberg \\"'
    assert len(msg.body) == 150


def test_intmeth_widest_repertoire():
    msg = sip.parse(_read("intmeth.dat"))
    assert msg.method == "!interesting-Method0123456789_*+`.%indeed'~"
    uri = parse_uri(msg.uri)
    assert uri.user == "1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*"
    assert uri.password == "&it+has=1,weird!*pas$wo~d_too.(doesn't-it)"
    assert parse_name_addr(msg.headers.get("To")).display == "BEL:\x07 NUL:\x00 DEL:\x7f"
    frm = parse_name_addr(msg.headers.get("From"))
    assert frm.display == "token1~` token2'+_ token3*%!.-"
    assert frm.params["fromParam''~+*_!.-%"] == '"работающий"'
    assert msg.call_id == "intmeth.word%ZK-!.*_+'@word`~)(><:\\/\"][?}{"
    assert msg.headers.get("extensionHeader-!.%*+_`'~") == "\ufeff大停電"


def test_escapes_are_decoded_once():
    msg = sip.parse(_read("esc01.dat"))
    assert parse_uri(msg.uri).user_decoded == "sips:user@example.com"
    assert parse_name_addr(msg.headers.get("To")).uri.user_decoded == "user"
    params = parse_name_addr(msg.headers.get("Contact")).uri.params
    assert params["n%61me"] == "v%61lue%25%34%31"  # raw; %25%34%31 unescapes to "%41", not "A"
    nulls = [parse_name_addr(c).uri.user_decoded for c in sip.parse(_read("escnull.dat")).headers.get_all("Contact")]
    assert nulls == ["\x00", "\x00\x00"]
    semi = parse_uri(sip.parse(_read("semiuri.dat")).uri)
    assert isinstance(semi, SipUri) and semi.user_decoded == "user;par=u@example.net" and not semi.params


def test_esc02_percent_signs_that_are_not_escapes():
    msg = sip.parse(_read("esc02.dat"))
    assert msg.method == "RE%47IST%45R" and msg.cseq == (29344, "RE%47IST%45R")
    assert len(msg.headers.get_all("Contact")) == 2  # C%6Fntact is another header
    assert msg.headers.get("C%6Fntact") == "<sip:alias2@host2.example.com>"
    assert parse_name_addr(msg.headers.get("To")).display == "%Z%45"


def test_bodies_are_raw_octets_delimited_by_content_length():
    mpart = sip.parse(_read("mpart01.dat"))
    assert len(mpart.body) == 553 and b"\x00" in mpart.body and mpart.body.endswith(b"--7a9cbec02ceef655--\r\n")
    dbl = sip.parse(_read("dblreq.dat"))
    assert dbl.method == "REGISTER" and dbl.body == b"" and dbl.call_id.startswith("dblreq.0ha0")
    inv = sip.parse(_read("inv2543.dat"))
    assert "Content-Length" not in inv.headers and inv.body.startswith(b"v=0") and inv.body.endswith(b"0\r\n")


def test_responses_with_odd_reason_phrases():
    unreason = sip.parse(_read("unreason.dat"))
    assert unreason.status == 200 and unreason.reason.startswith("= 2**3 * 5**2 но")
    noreason = sip.parse(_read("noreason.dat"))
    assert noreason.status == 100 and noreason.reason == ""
    assert sip.message_summary(noreason) == "100 (INVITE)"


def test_header_params_versus_uri_params():
    cparam01 = parse_name_addr(sip.parse(_read("cparam01.dat")).headers.get("Contact"))
    assert "unknownparam" in cparam01.params and not cparam01.uri.params
    cparam02 = parse_name_addr(sip.parse(_read("cparam02.dat")).headers.get("Contact"))
    assert "unknownparam" in cparam02.uri.params and not cparam02.params
    regescrt = parse_name_addr(sip.parse(_read("regescrt.dat")).headers.get("m"))
    assert regescrt.uri.headers["Route"] == "%3Csip:sip.example.com%3E"


def test_unknown_schemes_and_auth_scheme():
    assert str(parse_uri(sip.parse(_read("novelsc.dat")).uri)) == "soap.beep://192.0.2.103:3002"
    unksm2 = sip.parse(_read("unksm2.dat"))
    assert [parse_name_addr(unksm2.headers.get(h)).uri.scheme for h in ("To", "From", "Contact")] == [
        "isbn", "http", "name"]
    cred = parse_credentials(sip.parse(_read("regaut01.dat")).headers.get("Authorization"))
    assert cred.scheme == "NoOneKnowsThisScheme" and cred.params["opaque-data"] == "here"


def test_longreq_many_vias():
    msg = sip.parse(_read("longreq.dat"))
    assert len(msg.headers.get_all("Via")) == 34
    assert parse_via(msg.headers.get_all("v")[-1]).received == "192.0.2.5"


def test_the_extra_file_is_not_a_sip_message():
    data = (CORPUS / "extra" / "test.dat").read_bytes()
    with pytest.raises(sip.SipParseError) as exc:
        sip.parse(data)
    assert exc.value.violations and exc.value.violations[0].rule == "RFC3261-7.1 request-line"
    msg, violations = sip.validate(data)
    assert msg is None and sip.errors(violations)


def test_stream_framing_of_the_valid_corpus():
    """Every valid message with a Content-Length frames identically on a stream, back to back."""
    names = [n for n in VALID if n != "dblreq.dat" and "Content-Length" in sip.parse(_read(n)).headers]
    wire = b"".join(sip.serialize(sip.parse(_read(n))) for n in names)
    framed = sip.StreamParser().feed(wire)
    assert [sip.message_summary(m) for m in framed] == [sip.message_summary(sip.parse(_read(n))) for n in names]
    assert [m.body for m in framed] == [sip.parse(_read(n)).body for n in names]
