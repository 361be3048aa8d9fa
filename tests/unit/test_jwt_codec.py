"""JWT codec: inspection of untrusted tokens, verification against a JWKS, forged variants."""

from __future__ import annotations

import base64
import json
import warnings

import pytest
from joserfc import jws
from joserfc.jwk import ECKey, OKPKey, RSAKey

from conformance.codec import jwt

CLAIMS = {"iss": "https://127.0.0.12:9443", "sub": "alice@web.operator.example", "aud": "wsf.operator.example",
          "client_id": "thirdparty-webrtc-app", "scope": "ims-webrtc", "iat": 1_700_000_000,
          "exp": 1_700_000_300, "jti": "j1"}


@pytest.fixture(scope="module")
def as_key() -> ECKey:
    return ECKey.generate_key("P-256", auto_kid=True)


@pytest.fixture(scope="module")
def as_jwks(as_key) -> dict:
    return {"keys": [as_key.as_dict(private=False)]}


def _token(key, alg="ES256", claims=CLAIMS, **header) -> str:
    hdr = {k: v for k, v in {"alg": alg, "typ": "at+jwt", "kid": key.kid, **header}.items() if v is not None}
    return jws.serialize_compact(hdr, json.dumps(claims).encode(), key, algorithms=[alg])


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


# -- decode_unverified -------------------------------------------------------------------------------

def test_decode_unverified_reads_header_and_claims(as_key):
    header, claims = jwt.decode_unverified(_token(as_key))
    assert header == {"alg": "ES256", "typ": "at+jwt", "kid": as_key.kid}
    assert claims == CLAIMS


def test_decode_tolerates_a_whole_bearer_credential(as_key):
    assert jwt.decode_unverified("Bearer " + _token(as_key))[1]["sub"] == "alice@web.operator.example"


@pytest.mark.parametrize("garbage", [
    "", "abc", "a.b", "a.b.c.d", "!!!.e30.", "e30.e30", f"{_b64(b'not json')}.e30.",
    f"{_b64(b'[1,2]')}.e30.", f"e30.{_b64(b'{bad')}.", f"e30.{_b64(bytes([0xff, 0xfe]))}.", None, 42, b"e30.e30.",
])
def test_decode_rejects_garbage_with_jwt_error(garbage):
    with pytest.raises(jwt.JwtError):
        jwt.decode_unverified(garbage)


def test_jwt_error_is_a_value_error():
    assert issubclass(jwt.JwtError, ValueError)


# -- verify ---------------------------------------------------------------------------------------

def test_verify_accepts_a_token_signed_by_the_jwks_key(as_key, as_jwks):
    assert jwt.verify(_token(as_key), as_jwks) is True


def test_verify_rejects_another_key(as_jwks):
    other = ECKey.generate_key("P-256", auto_kid=True)
    assert jwt.verify(_token(other), as_jwks) is False  # unknown kid
    assert jwt.verify(_token(other, kid=None), as_jwks) is False  # no kid: every key tried, none fits


def test_verify_rejects_a_tampered_payload(as_key, as_jwks):
    h, _, s = _token(as_key).split(".")
    tampered = f"{h}.{_b64(json.dumps(dict(CLAIMS, sub='mallory')).encode())}.{s}"
    assert jwt.verify(tampered, as_jwks) is False


def test_verify_rejects_alg_none_even_when_asked_to_allow_it(as_key, as_jwks):
    unsigned = jwt.forge(_token(as_key), alg="none")
    assert jwt.verify(unsigned, as_jwks) is False
    assert jwt.verify(unsigned, as_jwks, algorithms=("none", "ES256")) is False


def test_hs256_with_a_guessed_key_is_rejected_by_default_algorithms(as_key):
    # A JWKS that (wrongly) also publishes the guessed secret: only the algorithm allow-list saves us.
    jwks = {"keys": [as_key.as_dict(private=False), {"kty": "oct", "k": _b64(jwt.GUESSED_HMAC_KEY), "kid": "h"}]}
    forged = jwt.forge(_token(as_key), alg="HS256", header={"kid": "h"})
    assert jwt.verify(forged, jwks) is False
    assert jwt.verify(forged, jwks, algorithms=("HS256",)) is True  # proves the MAC itself is right


def test_verify_without_kid_tries_every_key(as_key):
    other = ECKey.generate_key("P-256", auto_kid=True)
    jwks = {"keys": [other.as_dict(private=False), as_key.as_dict(private=False)]}
    assert jwt.verify(_token(as_key, kid=None), jwks) is True


@pytest.mark.parametrize("make_key,alg", [
    (lambda: RSAKey.generate_key(2048, auto_kid=True), "RS256"),
    (lambda: RSAKey.generate_key(2048, auto_kid=True), "PS256"),
    (lambda: OKPKey.generate_key("Ed25519", auto_kid=True), "EdDSA"),
])
def test_verify_supports_the_other_default_algorithms(make_key, alg):
    key = make_key()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # joserfc flags EdDSA as deprecated (RFC 9864)
        token = _token(key, alg=alg)
    assert jwt.verify(token, {"keys": [key.as_dict(private=False)]}) is True


def test_verify_raises_on_an_unusable_jwks_or_token(as_key):
    with pytest.raises(jwt.JwtError):
        jwt.verify(_token(as_key), {"keys": [{"kty": "nonsense"}]})
    with pytest.raises(jwt.JwtError):
        jwt.verify("not-a-token", {"keys": []})


# -- forge ----------------------------------------------------------------------------------------

def test_forge_alg_none_is_unsigned_and_keeps_the_claims(as_key):
    forged = jwt.forge(_token(as_key), alg="none")
    header, claims = jwt.decode_unverified(forged)
    assert header["alg"] == "none" and header["typ"] == "at+jwt"
    assert claims == CLAIMS
    assert forged.endswith(".") and jwt.signature_bytes(forged) == b""


def test_forge_time_claims_are_offsets_from_now(as_key):
    forged = jwt.forge(_token(as_key), claims={"exp": -60, "iat": -120, "nbf": 30, "aud": "other"}, now=10_000)
    _, claims = jwt.decode_unverified(forged)
    assert (claims["exp"], claims["iat"], claims["nbf"]) == (9_940, 9_880, 10_030)
    assert claims["aud"] == "other" and claims["sub"] == CLAIMS["sub"]


def test_forge_removes_claims_and_header_members(as_key):
    forged = jwt.forge(_token(as_key), remove_claims=["exp", "jti"], claims={"scope": None},
                       header={"kid": None, "typ": "JWT"}, resign="keep_signature")
    header, claims = jwt.decode_unverified(forged)
    assert "exp" not in claims and "jti" not in claims and "scope" not in claims
    assert "kid" not in header and header["typ"] == "JWT"


def test_keep_signature_without_change_is_the_original_token(as_key, as_jwks):
    token = _token(as_key)
    assert jwt.forge(token, resign="keep_signature") == token
    changed = jwt.forge(token, claims={"aud": "other"}, resign="keep_signature")
    assert changed.split(".")[2] == token.split(".")[2]
    assert changed.split(".")[0] == token.split(".")[0]  # untouched header segment kept byte for byte
    assert jwt.verify(changed, as_jwks) is False


def test_truncate_signature_halves_it(as_key, as_jwks):
    token = _token(as_key)
    forged = jwt.forge(token, resign="truncate_signature")
    assert len(jwt.signature_bytes(forged)) == len(jwt.signature_bytes(token)) // 2
    assert forged.split(".")[:2] == token.split(".")[:2]
    assert jwt.verify(forged, as_jwks) is False


def test_harness_key_signature_verifies_only_with_the_harness_jwks(as_key, as_jwks):
    forged = jwt.forge(_token(as_key), claims={"sub": "mallory"})
    header, claims = jwt.decode_unverified(forged)
    assert header["alg"] == "ES256" and claims["sub"] == "mallory"
    assert jwt.verify(forged, as_jwks) is False  # carries the AS kid, but not the AS signature
    assert jwt.verify(forged, {"keys": [dict(k, kid=header["kid"]) for k in jwt.harness_jwks()["keys"]]}) is True


def test_harness_key_is_stable_within_the_process():
    assert jwt.harness_jwks() == jwt.harness_jwks()


def test_forge_rejects_unknown_modes_and_garbage(as_key):
    with pytest.raises(ValueError):
        jwt.forge(_token(as_key), resign="sideways")
    with pytest.raises(ValueError):
        jwt.forge(_token(as_key), alg="RS256")  # the harness has no RSA key to sign with
    with pytest.raises(jwt.JwtError):
        jwt.forge("garbage")
