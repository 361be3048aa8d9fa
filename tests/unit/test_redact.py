"""Secrets never reach a report: plain, URL-encoded and inside HTTP Basic credentials."""

from __future__ import annotations

import base64
import re

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conformance.redact import MIN_LENGTH, Redactor, _forms

SECRETS = {"pixit.oauth.client_secret": "s3cr3t/+&=", "ALICE_PW": "alice-pw"}


def basic(user: str, password: str) -> str:
    return base64.b64encode(f"{user}:{password}".encode()).decode()


def test_plain_and_url_encoded_forms():
    r = Redactor(SECRETS)
    assert r.text("password=alice-pw&x=1") == "password=<redacted:ALICE_PW>&x=1"
    assert r.text("client_secret=s3cr3t%2F%2B%26%3D") == "client_secret=<redacted:pixit.oauth.client_secret>"
    assert r.text("client_secret=s3cr3t%2f%2b%26%3d") == "client_secret=<redacted:pixit.oauth.client_secret>"
    assert r.text('{"client_secret": "s3cr3t/+&="}') == '{"client_secret": "<redacted:pixit.oauth.client_secret>"}'
    assert r.text("nothing secret here") == "nothing secret here"


def test_basic_credentials_are_replaced_whatever_the_user():
    r = Redactor(SECRETS)
    header = f"Authorization: Basic {basic('thirdparty-webrtc-app', 's3cr3t/+&=')}"
    assert r.text(header) == "Authorization: Basic <redacted:pixit.oauth.client_secret>"
    assert r.text(f"authorization: basic {basic('wsf', 'alice-pw')}\r\n") == "authorization: basic <redacted:ALICE_PW>\r\n"
    unrelated = f"Authorization: Basic {basic('joe', 'public')}"
    assert r.text(unrelated) == unrelated


def test_a_secret_added_after_the_first_basic_credential_is_found_in_the_next():
    r = Redactor(SECRETS)
    assert r.text(f"Basic {basic('u1', 'alice-pw')}") == "Basic <redacted:ALICE_PW>"  # the forms are kept now
    later = f"Basic {basic('u2', 'bob pw&2')}"
    assert r.text(later) == later  # not a secret yet
    r.add("BOB_PW", "bob pw&2")  # a user provisioned during the run
    assert r.text(later) == "Basic <redacted:BOB_PW>"
    encoded = base64.b64encode(b"u2:bob+pw%262").decode()  # form-urlencoded first (RFC 6749 2.3.1)
    assert r.text(f"Basic {encoded}") == "Basic <redacted:BOB_PW>"


def test_bytes_and_nested_objects():
    r = Redactor(SECRETS)
    raw = b"POST /token HTTP/1.1\r\nAuthorization: Basic " + basic("c", "s3cr3t/+&=").encode() + \
        b"\r\n\r\npassword=alice-pw\xff"
    assert r.bytes(raw) == (b"POST /token HTTP/1.1\r\nAuthorization: Basic <redacted:pixit.oauth.client_secret>"
                            b"\r\n\r\npassword=<redacted:ALICE_PW>\xff")
    assert r.obj({"a": ["alice-pw", b"alice-pw", 3], "b": ("x alice-pw",)}) == {
        "a": ["<redacted:ALICE_PW>", b"<redacted:ALICE_PW>", 3], "b": ("x <redacted:ALICE_PW>",)}


def test_longest_secret_wins_and_short_values_are_ignored():
    r = Redactor({"short": "pw", "inner": "alice", "outer": "alice-pw-long"})
    assert r.text("alice-pw-long alice pw") == "<redacted:outer> <redacted:inner> pw"
    assert "short" not in r.names


def test_added_at_run_time_and_empty():
    r = Redactor()
    assert not r and r.text("x") == "x" and r.bytes(b"x") == b"x"
    r.add("fresh.password", "Zx9-generated")
    r.add("ignored", None)
    r.add("flag", True)
    assert r.names == ["fresh.password"]
    assert r.text("pw Zx9-generated") == "pw <redacted:fresh.password>"


def test_indexed_replacement_matches_the_longest_first_alternation():
    """The prefix-indexed replacement gives, on str and on bytes, exactly what one regex
    alternation of every form (longest first) gives: overlapping secrets, a secret inside
    another, non-ASCII secrets, secrets next to each other."""
    import random
    import re

    rng = random.Random(15)
    values = ["s3cr3t-pass", "pass-word", "word", "abcdabcd", "bcda", "pässwörd€x", "a/b+c=d&e"]
    values += ["".join(rng.choice("abcd/+=%") for _ in range(rng.randint(4, 10))) for _ in range(30)]
    r = Redactor({f"name{i}": v for i, v in enumerate(values)})
    by_form = r._compile()[0]
    ordered = sorted(by_form, key=len, reverse=True)
    rx = re.compile("|".join(re.escape(f) for f in ordered))
    rxb = re.compile(b"|".join(re.escape(f.encode()) for f in ordered))
    pieces = list(by_form) + ["x", "ab", "cd", " ", "%2F", "ä", "\n"]
    for _ in range(3000):
        text = "".join(rng.choice(pieces)[: rng.randint(1, 12)] for _ in range(rng.randint(0, 12)))
        want = rx.sub(lambda m: f"<redacted:{by_form[m.group(0)]}>", text)
        assert r.text(text) == want, text
        raw = text.encode()
        want_b = rxb.sub(lambda m: f"<redacted:{by_form[m.group(0).decode()]}>".encode(), raw)
        assert r.bytes(raw) == want_b, raw


def test_secrets_added_after_use_redact_as_if_given_at_once():
    """`add` extends the index built at the first use: a redactor that grew one secret at a time,
    used in between, gives what one built with every secret at once gives (the same secret added
    twice, or a form shared by two secrets, keeps its first name)."""
    import random

    rng = random.Random(16)
    values = ["".join(rng.choice("abcd/+=%é") for _ in range(rng.randint(4, 12))) for _ in range(40)]
    values += values[:3] + ["abcd", "abcdabcd"]
    grown = Redactor()
    texts = []
    for i, v in enumerate(values):
        grown.add(f"n{i}", v)
        text = "".join(rng.choice(values + ["x", " ", "%2F", "ab"]) for _ in range(rng.randint(1, 20)))
        texts.append(text)
        assert grown.text(text) == Redactor(list(zip([f"n{k}" for k in range(i + 1)], values[:i + 1],
                                                     strict=True))).text(text)
    at_once = Redactor([(f"n{i}", v) for i, v in enumerate(values)])
    for text in texts:
        assert grown.text(text) == at_once.text(text)
        assert grown.bytes(text.encode()) == at_once.bytes(text.encode())


def test_overlapping_forms_and_shared_prefixes_across_additions():
    """A match of a secret added later overrules an overlapping one of an earlier secret, and the
    search resumes after it: "efghij" is still found after "xxabcd", although "abcdef" overlapped
    both."""
    r = Redactor({"a": "abcdef", "e": "efghij"})
    assert r.text("abcdefghij efghij") == "<redacted:a>ghij <redacted:e>"
    r.add("x", "xxabcd")
    assert r.text("xxabcdefghij") == "<redacted:x><redacted:e>"
    assert r.bytes(b"xxabcdefghij") == b"<redacted:x><redacted:e>"
    r.add("p", "prefix-a")
    assert r.text("prefix-a-long") == "<redacted:p>-long"
    r.add("pl", "prefix-a-long")
    r.add("pm", "prefix-a-lo")
    assert r.text("prefix-a-long prefix-a-lo prefix-a-l") == "<redacted:pl> <redacted:pm> <redacted:p>-l"
    assert r.bytes(b"prefix-a-longprefix-a-lo") == b"<redacted:pl><redacted:pm>"
    # one secret's occurrences overlapping each other: leftmost first, then after it
    r.add("rep", "abab")
    assert r.text("abababab ababa") == "<redacted:rep><redacted:rep> <redacted:rep>a"


def test_a_form_shared_by_two_secrets_keeps_the_first_name():
    """"a%2Fbcd" is a secret and the URL-encoded form of another: the first added names it,
    whether the two came at once or the second after a search."""
    assert Redactor([("one", "a/bcd"), ("two", "a%2Fbcd")]).text("a%2Fbcd") == "<redacted:one>"
    assert Redactor([("two", "a%2Fbcd"), ("one", "a/bcd")]).text("a%2Fbcd") == "<redacted:two>"
    r = Redactor([("one", "a/bcd")])
    assert r.text("a/bcd") == "<redacted:one>"
    r.add("two", "a%2Fbcd")
    assert r.text("a%2Fbcd a/bcd") == "<redacted:one> <redacted:one>"
    assert r.bytes(b"a%2Fbcd") == b"<redacted:one>"


def test_non_ascii_text_is_replaced_at_character_offsets():
    """A str is searched as UTF-8 and replaced where its characters are, also after characters
    of 2, 3 and 4 bytes, and next to lone surrogates (bytes decoded with surrogateescape), which
    strict UTF-8 cannot encode."""
    r = Redactor({"pw": "pässwörd€", "tok": "tok-1234"})
    s = "😀 ü€ pässwörd€ and 😀😀tok-1234 ∑ pässwörd€😀"
    want = "😀 ü€ <redacted:pw> and 😀😀<redacted:tok> ∑ <redacted:pw>😀"
    assert r.text(s) == want
    assert r.bytes(s.encode()) == want.encode()
    assert r.text('{"p": "p\\u00e4ssw\\u00f6rd\\u20ac"}') == '{"p": "<redacted:pw>"}'
    raw = b"\xff tok-1234\xfe\xfdp\xc3\xa4ssw\xc3\xb6rd\xe2\x82\xac \xff"
    assert r.text(raw.decode("utf-8", "surrogateescape")) == \
        "\udcff <redacted:tok>\udcfe\udcfd<redacted:pw> \udcff"
    assert r.bytes(raw) == b"\xff <redacted:tok>\xfe\xfd<redacted:pw> \xff"


def test_copied_after_use():
    import copy
    import pickle

    r = Redactor({"a": "alice-pw"})
    assert r.text("alice-pw") == "<redacted:a>"
    for twin in (copy.deepcopy(r), pickle.loads(pickle.dumps(r))):
        twin.add("b", "bob-pw-1")
        assert twin.text("alice-pw bob-pw-1") == "<redacted:a> <redacted:b>"
        assert twin.bytes(b"alice-pw") == b"<redacted:a>"


# No space anywhere in these texts: the HTTP Basic handling (which needs "Basic ") stays out of
# the comparison, which is about the forms alone. Two letters (drawn twice as often) make
# secrets that overlap one another in a text; "%2F" with "/" makes forms shared by two secrets.
_ALPHABETS = ["ab", "ab", "ab/%2F", "abcd/+=%é€😀\n"]


def _longest_first_alternation(added: list[tuple[str, str]]):
    """The reference: one regex alternation of every form, longest first (a form shared by two
    secrets, or a secret added twice, keeps the first name); for str and for bytes."""
    by_form: dict[str, str] = {}
    seen: set[str] = set()
    for name, value in added:
        if len(value) >= MIN_LENGTH and value not in seen:
            seen.add(value)
            for form in _forms(value):
                by_form.setdefault(form, name)
    if not by_form:
        return (lambda s: s), (lambda b: b)
    ordered = sorted(by_form, key=len, reverse=True)
    rx = re.compile("|".join(re.escape(f) for f in ordered))
    rxb = re.compile(b"|".join(re.escape(f.encode()) for f in ordered))
    return (lambda s: rx.sub(lambda m: f"<redacted:{by_form[m.group(0)]}>", s),
            lambda b: rxb.sub(lambda m: f"<redacted:{by_form[m.group(0).decode()]}>".encode(), b))


def _chained(forms: list[str]) -> str:
    """The forms one after the other, each overlapping the end of the text so far as much as it
    can without being inside it."""
    text = ""
    for form in forms:
        text += form[next((k for k in range(len(form) - 1, 0, -1) if text.endswith(form[:k])), 0):]
    return text


def _uniform(alphabet: str, min_size: int, max_size: int):
    """Strings of independent, uniformly drawn characters: hypothesis's own strings, with more
    repeats, seldom make secrets of two letters that overlap in a text."""
    return st.randoms(use_true_random=False).map(
        lambda rnd: "".join(rnd.choice(alphabet) for _ in range(rnd.randint(min_size, max_size))))


@settings(max_examples=100, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_same_as_the_longest_first_alternation_with_secrets_added_in_batches(data):
    """Secrets added in batches, with searches (str or bytes, in any order) in between, so that
    the index is extended between searches: every search gives what the alternation of every
    form added so far gives (what the redactor's docstring promises)."""
    alphabet = data.draw(st.sampled_from(_ALPHABETS))
    r = Redactor()
    added: list[tuple[str, str]] = []
    forms: list[str] = []
    for _ in range(data.draw(st.integers(1, 8))):
        values = st.one_of(st.text(alphabet, min_size=MIN_LENGTH - 1, max_size=7), _uniform(alphabet, MIN_LENGTH - 1, 7))
        if forms:  # a secret that is a form of another one
            values = st.one_of(values, st.sampled_from(forms))
        for value in data.draw(st.lists(values, min_size=1, max_size=5)):
            added.append((f"n{len(added)}", value))
            r.add(*added[-1])
        text_ref, bytes_ref = _longest_first_alternation(added)
        forms = sorted({f for _, v in added if len(v) >= MIN_LENGTH for f in _forms(v)})
        texts = _uniform(alphabet, 0, 40)
        if forms:  # also forms, their beginnings and ends, between other characters; forms overlapping
            form = st.sampled_from(forms)
            pieces = st.one_of(_uniform(alphabet, 0, 16), form, form.map(lambda f: f[: len(f) // 2]),
                               form.map(lambda f: f[len(f) // 2:]))
            texts = st.one_of(texts, st.lists(pieces, max_size=10).map("".join),
                              st.lists(form, min_size=2, max_size=8).map(_chained))
        for text in data.draw(st.lists(texts, min_size=1, max_size=3)):
            if data.draw(st.booleans()):
                assert r.text(text) == text_ref(text)
                assert r.bytes(text.encode()) == bytes_ref(text.encode())
            else:
                assert r.bytes(text.encode()) == bytes_ref(text.encode())
                assert r.text(text) == text_ref(text)
