"""JWT codec, sans-IO: inspect a token without trusting it, verify it against a JWKS, forge variants.

The harness reads tokens issued by the SUT (RFC 9068 access tokens) and builds broken copies of
them for negative cases (format.md `forge_token`). Signing and verification are joserfc's; only
the compact serialization (RFC 7515 7.1) is assembled here, because a forged token must be able
to carry what no library will produce (`alg: none`, a reused or truncated signature):

    BASE64URL(UTF8(JWS Protected Header)) '.' BASE64URL(JWS Payload) '.' BASE64URL(JWS Signature)
"""

from __future__ import annotations

import base64
import binascii
import json
import time
import warnings
from collections.abc import Iterable, Mapping
from typing import Any

from joserfc import jws
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, KeySet, OctKey

# Algorithms a verifier accepts by default: asymmetric only, so that a token MACed with a key
# guessed from public material (the RS256 -> HS256 confusion) never verifies, and never `none`.
DEFAULT_ALGORITHMS = ("ES256", "RS256", "PS256", "EdDSA")

# The "guessed key" of `forge_token alg: HS256`: what a careless verifier might share.
GUESSED_HMAC_KEY = b"secret"

# Claims given as offsets from now in `forge_token claims:` (RFC 7519 4.1.4-4.1.6 NumericDate).
_RELATIVE_TIME_CLAIMS = ("exp", "iat", "nbf")


class JwtError(ValueError):
    """The text is not a JWS compact serialization with JSON header and claims."""


def _b64url_decode(segment: str) -> bytes:
    # RFC 7515 2: base64url without padding; reject anything outside the alphabet.
    if any(c not in "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_" for c in segment):
        raise JwtError("segment is not base64url")
    try:
        return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
    except (binascii.Error, ValueError) as exc:
        raise JwtError(f"segment is not base64url: {exc}") from None


def _b64url_encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _json_segment(data: dict) -> str:
    return _b64url_encode(json.dumps(data, separators=(",", ":")).encode("utf-8"))


def split(token: str) -> tuple[str, str, str]:
    """The three segments of a compact JWS (signature may be empty: `alg: none`)."""
    if not isinstance(token, str):
        raise JwtError(f"token must be text, not {type(token).__name__}")
    token = token.strip()
    if token.lower().startswith("bearer "):  # tolerate a whole Authorization value
        token = token[7:].strip()
    parts = token.split(".")
    if len(parts) != 3:
        raise JwtError(f"expected 3 dot-separated segments, got {len(parts)}")
    return parts[0], parts[1], parts[2]


def _decode_object(segment: str, what: str) -> dict:
    raw = _b64url_decode(segment)
    try:
        value = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise JwtError(f"{what} is not JSON: {exc}") from None
    if not isinstance(value, dict):
        raise JwtError(f"{what} is not a JSON object")
    return value


def decode_unverified(token: str) -> tuple[dict, dict]:
    """(header, claims) of a token, without checking anything but the syntax."""
    header_seg, claims_seg, _ = split(token)
    return _decode_object(header_seg, "header"), _decode_object(claims_seg, "claims")


def signature_bytes(token: str) -> bytes:
    return _b64url_decode(split(token)[2])


def _candidate_keys(jwks: Mapping[str, Any], header: dict) -> list:
    """Keys worth trying: the one named by `kid`, else every key (joserfc needs a kid to choose)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # weak keys in a SUT's JWKS are for the verdict, not a warning
            keys = KeySet.import_key_set(dict(jwks))
    except (JoseError, ValueError, TypeError, KeyError) as exc:
        raise JwtError(f"JWKS cannot be loaded: {exc}") from None
    kid = header.get("kid")
    if kid is not None:
        return [k for k in keys.keys if k.kid == kid]
    return list(keys.keys)


def verify(token: str, jwks: Mapping[str, Any], *, algorithms: Iterable[str] = DEFAULT_ALGORITHMS) -> bool:
    """True when the signature verifies with a key of `jwks` under an allowed algorithm.

    False for a wrong signature, an algorithm outside `algorithms` (always including `none`), or
    no key matching the `kid`. Raises JwtError when the token or the JWKS cannot be read at all.
    """
    algorithms = [a for a in algorithms if a.lower() != "none"]
    header, _ = decode_unverified(token)
    if header.get("alg") not in algorithms:
        return False
    _, _, sig = split(token)
    if not sig:
        return False
    compact = ".".join(split(token))
    for key in _candidate_keys(jwks, header):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # joserfc's SecurityWarning on EdDSA is not ours to act on
                jws.deserialize_compact(compact, key, algorithms=algorithms)
            return True
        except (JoseError, ValueError):
            continue
    return False


class _HarnessKey:
    """The harness's own signing key, one per process: a token it signs must never verify at the SUT."""

    _key: ECKey | None = None

    @classmethod
    def get(cls) -> ECKey:
        if cls._key is None:
            cls._key = ECKey.generate_key("P-256", auto_kid=True)
        return cls._key


def harness_jwks() -> dict:
    """The public JWKS of the harness key (for tests and reports)."""
    return {"keys": [_HarnessKey.get().as_dict(private=False)]}


def _sign(header: dict, claims_segment: str, alg: str, hmac_key: bytes) -> str:
    header = dict(header, alg=alg)
    payload = _b64url_decode(claims_segment)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a short guessed HMAC key is the point of the forgery
        if alg == "HS256":
            key: Any = OctKey.import_key(hmac_key)
        elif alg == "ES256":
            key = _HarnessKey.get()
            header.setdefault("kid", key.kid)
        else:
            raise ValueError(f"cannot sign with {alg!r}: use none, HS256 or ES256")
        return jws.serialize_compact(header, payload, key, algorithms=[alg])


def forge(
    token: str,
    *,
    alg: str | None = None,
    header: Mapping[str, Any] | None = None,
    claims: Mapping[str, Any] | None = None,
    remove_claims: Iterable[str] = (),
    resign: str | None = None,
    now: float | None = None,
    hmac_key: bytes = GUESSED_HMAC_KEY,
) -> str:
    """A broken copy of `token` (format.md `forge_token`).

    alg: None keeps the header's alg; 'none' drops the signature (RFC 7519 6.1 unsecured JWT);
    'HS256' MACs with `hmac_key`; 'ES256' signs with the harness key.
    header/claims: members to override (a None value removes the member); claims exp/iat/nbf are
    offsets in seconds from `now` (default: the current time).
    resign: 'harness_key' (default unless alg is none) signs as `alg` says (ES256 when alg is
    None); 'keep_signature' keeps the original signature over the new content;
    'truncate_signature' keeps the content and cuts the signature in half.
    Segments that are not changed are kept byte for byte, so `keep_signature` with no change is
    the original token.
    """
    header_seg, claims_seg, sig_seg = split(token)
    old_header, old_claims = decode_unverified(token)
    new_header = dict(old_header)
    for name, value in (header or {}).items():
        if value is None:
            new_header.pop(name, None)
        else:
            new_header[name] = value
    new_claims = dict(old_claims)
    base = time.time() if now is None else now
    for name, value in (claims or {}).items():
        if value is None:
            new_claims.pop(name, None)
        elif name in _RELATIVE_TIME_CLAIMS and isinstance(value, int | float) and not isinstance(value, bool):
            new_claims[name] = int(base + value)
        else:
            new_claims[name] = value
    for name in remove_claims:
        new_claims.pop(name, None)
    if alg is not None:
        new_header["alg"] = alg

    if new_claims != old_claims:
        claims_seg = _json_segment(new_claims)
    if resign is None:
        resign = "keep_signature" if alg == "none" else "harness_key"

    if alg == "none":
        # RFC 7519 6.1: an unsecured JWT has an empty signature; `none` ignores `resign`.
        return f"{_json_segment(new_header)}.{claims_seg}."
    if resign == "harness_key":
        return _sign(new_header, claims_seg, alg or "ES256", hmac_key)
    if new_header != old_header:
        header_seg = _json_segment(new_header)
    if resign == "keep_signature":
        return f"{header_seg}.{claims_seg}.{sig_seg}"
    if resign == "truncate_signature":
        sig = _b64url_decode(sig_seg)
        return f"{header_seg}.{claims_seg}.{_b64url_encode(sig[: len(sig) // 2])}"
    raise ValueError(f"unknown resign mode {resign!r}: harness_key | keep_signature | truncate_signature")
