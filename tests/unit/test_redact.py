"""Secrets never reach a report: plain, URL-encoded and inside HTTP Basic credentials."""

from __future__ import annotations

import base64

from conformance.redact import Redactor

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
