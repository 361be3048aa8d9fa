"""Issue 15, round 3 (offline analysis at 800,000 packets per CPU-second): cheaper code that must
compute exactly what the code it replaced computed. The replaced code is kept here as the oracle.
"""

from __future__ import annotations

import hmac

from hypothesis import given, settings
from hypothesis import strategies as st

from conformance.capture.tls import _hmac_of, hkdf_expand, prf12

HASHES = st.sampled_from(["sha256", "sha384", "sha1", "sha512"])


def _hkdf_expand_before(prk: bytes, info: bytes, length: int, hash_name: str) -> bytes:
    out, block, counter = b"", b"", 1
    while len(out) < length:
        block = hmac.digest(prk, block + info + bytes([counter]), hash_name)
        out += block
        counter += 1
    return out[:length]


def _prf12_before(secret: bytes, label: bytes, seed: bytes, length: int, hash_name: str) -> bytes:
    seed = label + seed
    out, a = b"", seed
    while len(out) < length:
        a = hmac.digest(secret, a, hash_name)
        out += hmac.digest(secret, a + seed, hash_name)
    return out[:length]


@settings(max_examples=300)
@given(key=st.binary(max_size=300), msg=st.binary(max_size=300), hash_name=HASHES)
def test_hmac_is_the_standard_librarys(key, msg, hash_name):
    # keys shorter than, equal to and longer than the block size (64 or 128 bytes): hashed first
    assert _hmac_of(key, hash_name)(msg) == hmac.digest(key, msg, hash_name)


@settings(max_examples=200)
@given(prk=st.binary(min_size=1, max_size=64), info=st.binary(max_size=80), length=st.integers(1, 200),
       hash_name=HASHES)
def test_hkdf_expand_unchanged(prk, info, length, hash_name):
    assert hkdf_expand(prk, info, length, hash_name) == _hkdf_expand_before(prk, info, length, hash_name)


@settings(max_examples=200)
@given(secret=st.binary(min_size=1, max_size=64), label=st.binary(max_size=20), seed=st.binary(max_size=64),
       length=st.integers(1, 200), hash_name=HASHES)
def test_prf12_unchanged(secret, label, seed, length, hash_name):
    assert prf12(secret, label, seed, length, hash_name) == _prf12_before(secret, label, seed, length, hash_name)


# -- SIP header section: the lenient parse's loop without branches --------------------------------

_LINE = st.one_of(
    st.tuples(st.sampled_from(["Via", "v", "Content-Length", "l", "To", "X-A", "Contact ", "Route\t"]),
              st.sampled_from([":", ": ", ":\t", " : "]),
              st.text(st.sampled_from("ab ,;:<>\t\r\"=1"), max_size=12)).map("".join),
    st.text(st.sampled_from("ab :\t\r"), max_size=8),  # folding, no colon, CR noise, empty-ish
)


@settings(max_examples=400)
@given(start=st.sampled_from(["REGISTER sip:x SIP/2.0", "SIP/2.0 200 OK", "INVITE sip:a@b SIP/2.0\r"]),
       lines=st.lists(_LINE, max_size=8), eol=st.sampled_from(["\r\n", "\n"]),
       body=st.binary(max_size=6))
def test_sip_parse_fast_path_reads_what_the_full_loop_reads(start, lines, eol, body):
    from conformance.codec.sip import _parse

    data = (eol.join([start, *lines]) + "\r\n\r\n").encode() + body
    try:
        fast = _parse(data, None)  # the branch-free loop when no line continues another
    except Exception as exc:  # noqa: BLE001 - both must fail alike
        fast = type(exc)
    try:
        full = _parse(data, [])  # with a list for violations: always the full loop
    except Exception as exc:  # noqa: BLE001
        full = type(exc)
    if isinstance(full, type):
        assert fast is full
        return
    assert fast.msg.headers.items() == full.msg.headers.items()
    assert fast.line_numbers == full.line_numbers
    assert (fast.msg, fast.start_line, fast.body_available, fast.content_length) == \
        (full.msg, full.start_line, full.body_available, full.content_length)


@settings(max_examples=300)
@given(lines=st.lists(st.tuples(st.sampled_from(["Via", "v", "VIA", "Route", "Content-Length", "l", "X"]),
                                st.text(st.sampled_from("a ,<>\""), max_size=6)), max_size=6),
       name=st.sampled_from(["Via", "v", "route", "Content-Length", "l", "x", "Missing"]))
def test_headers_get_unchanged(lines, name):
    from conformance.codec.sip import LIST_HEADERS, Headers, header_key, split_list

    h = Headers(lines)

    def before(name, default=None):
        for i in h._matches(name):
            value = h._items[i][1]
            if header_key(name) in LIST_HEADERS:
                values = split_list(value)
                if not values:
                    continue
                return values[0]
            return value
        return default

    assert h.get(name) == before(name) and h.get(name, "d") == before(name, "d")
