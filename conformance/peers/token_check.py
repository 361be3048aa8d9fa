"""How the emulated WSF verifies an access token (BINDING.md steps 15-16): RFC 7662 introspection
at the AS with the profile's introspection client, or with `wsf.verify: local_jwt` the RFC 9068
JWT against the AS's JWKS, the IMS identities then coming from the harness's own user list (the
binding's "separate lookup"). Either way the answer is the mapping {impi, impu: [...]} or None."""

from __future__ import annotations

import base64
import time
from urllib.parse import quote

import aiohttp
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from conformance.peers import pki

CALL_TIMEOUT_S = 10.0  # a silent AS must not hold the REGISTER past the UE's step deadline for long


def basic_auth(client_id: str, secret: str) -> str:
    """HTTP Basic client authentication, id and secret form-encoded first (RFC 6749 2.3.1)."""
    pair = f"{quote(client_id, safe='')}:{quote(secret, safe='')}".encode()
    return "Basic " + base64.b64encode(pair).decode()


class TokenChecker:
    def __init__(self, peers, *, local_jwt: bool):
        self.peers, self.local_jwt = peers, local_jwt
        pixit = peers.profile.pixit
        self.as_node = pixit["nodes"]["as"]
        self.oauth = pixit.get("oauth") or {}
        self._session: aiohttp.ClientSession | None = None

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None:
            ctx = pki.client_context(self.peers.profile, self.peers.workdir)
            # from the WSF's address, so a capture attributes steps 15 and 16 to it
            local = (self.peers.profile.pixit["nodes"]["wsf"]["address"], 0)
            self._session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=ctx, local_addr=local),
                                                  timeout=aiohttp.ClientTimeout(total=CALL_TIMEOUT_S))
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def verify(self, token: str) -> dict | None:
        try:
            return await (self._local(token) if self.local_jwt else self._introspect(token))
        except (aiohttp.ClientError, TimeoutError, ValueError, JoseError):
            return None  # an AS that fails or a token that does not verify: nothing is forwarded

    async def _introspect(self, token: str) -> dict | None:
        issuer = self.as_node.get("issuer") or self.as_node.get("base_url")
        auth = basic_auth(self.oauth.get("introspection_client_id", ""),
                          self.oauth.get("introspection_client_secret", ""))
        async with self._http().post(f"{issuer}/introspect", headers={"Authorization": auth},
                                     data={"token": token, "token_type_hint": "access_token"}) as resp:
            if resp.status != 200:
                return None
            body = await resp.json(content_type=None)
        if not isinstance(body, dict) or body.get("active") is not True:
            return None
        return {"impi": body.get("impi"), "impu": body.get("impu") or []}

    async def _local(self, token: str) -> dict | None:
        async with self._http().get(self.as_node["jwks_uri"]) as resp:
            keys = KeySet.import_key_set(await resp.json(content_type=None))
        decoded = jwt.decode(token, keys, algorithms=["ES256", "RS256", "PS256", "EdDSA"])
        claims = decoded.claims
        aud = claims.get("aud")
        auds = aud if isinstance(aud, list) else [aud]
        if (decoded.header.get("typ", "").lower() not in ("at+jwt", "application/at+jwt")
                or claims.get("iss") != self.as_node.get("issuer")
                or self.oauth.get("audience") not in auds or int(claims.get("exp", 0)) <= time.time()):
            return None
        user = self.peers.users.get(str(claims.get("sub", "")))
        return {"impi": user.get("impi"), "impu": list(user.get("impus") or [])} if user else None
