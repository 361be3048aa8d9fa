"""The operator AS as the harness plays it (BINDING.md steps 4-7, 9-10, 15-16).

Default behaviour is BINDING's: RFC 8414 metadata, JWKS, the authorization UI (web_id, password,
consent), the authorization code grant with PKCE S256 and RFC 9207 `iss`, RFC 9068 JWT access
tokens signed with joserfc (ES256), and RFC 7662 introspection for the profile's introspection
client carrying the Web ID -> IMPI/IMPU mapping. Deliberately small and hand-driven rather than
Authlib's server: a test case must be able to make any exchange misbehave (script.py).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import html
import secrets
import time
from urllib.parse import urlencode

from aiohttp import web
from joserfc import jwt
from joserfc.jwk import ECKey

from conformance.events import HttpExchange
from conformance.peers import pki

SILENT_HOLD_S = 60.0  # "never answer": held this long at most (every wait is bounded)
CODE_LIFETIME_S = 60
TOKEN_LIFETIME_S = 300
SHORT_LIVED_S = 1  # pixit.oauth.short_lived_client: a genuinely expired token within seconds

LOGIN_PAGE = """<!doctype html><html><head><title>Operator sign-in</title></head><body>
<h1>Sign in to use WebRTC with {client_id}</h1>{error}
<form method="post" action="/authorize">
<input type="hidden" name="transaction" value="{txn}">
<p><label>Web ID <input name="web_id" autocomplete="username"></label></p>
<p><label>Password <input type="password" name="password"></label></p>
<p><label><input type="radio" name="consent" value="approve" checked> Allow</label>
<label><input type="radio" name="consent" value="deny"> Deny</label></p>
<p><button type="submit">Continue</button></p>
</form></body></html>"""


def _basic(request: web.Request) -> tuple[str, str] | None:
    value = request.headers.get("Authorization", "")
    if not value.lower().startswith("basic "):
        return None
    try:
        user, _, password = base64.b64decode(value[6:].strip(), validate=True).decode().partition(":")
    except (ValueError, UnicodeDecodeError):
        return None
    return user, password


def _same(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


class EmulatedAs:
    def __init__(self, peers, node: dict):
        self.peers, self.node = peers, node
        pixit = peers.profile.pixit
        self.oauth = pixit.get("oauth") or {}
        self.issuer = node.get("issuer") or node.get("base_url")
        self.wsf_url = (pixit["nodes"].get("wsf") or {}).get("url")
        self.pics = peers.profile.pics
        self.key = ECKey.generate_key("P-256", private=True, auto_kid=True)
        self.transactions: dict[str, dict] = {}
        self.codes: dict[str, dict] = {}
        self.tokens: dict[str, dict] = {}  # token -> introspection body (without active)
        self._runner: web.AppRunner | None = None
        self._site: web.TCPSite | None = None
        self._tls = None
        lifetime = (peers.profile.raw.get("peers") or {}).get("token_lifetime_s") or TOKEN_LIFETIME_S
        self.clients = _clients(self.oauth, int(lifetime))

    def _client_ok(self, creds: tuple[str, str] | None) -> bool:
        client = self.clients.get(creds[0]) if creds else None
        return client is not None and _same(creds[1], client["secret"])

    # -- lifecycle -------------------------------------------------------------------------------
    async def start(self) -> None:
        app = web.Application(client_max_size=64 * 1024, middlewares=[self._harness_errors])
        app.add_routes([
            web.get("/.well-known/oauth-authorization-server", self.metadata),
            web.get("/jwks", self.jwks),
            web.get("/authorize", self.authorize_form),
            web.post("/authorize", self.authorize_submit),
            web.post("/token", self.token),
            web.post("/introspect", self.introspect),
            web.post("/revoke", self.revoke),
            web.post("/admin/users", self.admin_users),
            *self._deregister_route(),
        ])
        self._tls, _ = pki.server_context(self.peers.profile, self.peers.workdir, self.node, self.peers.keylog)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await self.resume()

    async def pause(self) -> None:
        """Stop listening (a test case's `down: true`); exchanges under way (a scripted silence)
        go on, so this never waits for them as stop() would."""
        if self._site is not None:
            await self._site.stop()
            self._site = None

    async def resume(self) -> None:
        self._site = web.TCPSite(self._runner, self.node["address"], int(self.node["port"]), ssl_context=self._tls)
        await self._site.start()

    @web.middleware
    async def _harness_errors(self, request, handler):
        """A bug of the emulated AS is the harness's, never the SUT's: it makes the case an error."""
        try:
            return await handler(request)
        except web.HTTPException:
            raise
        except Exception as exc:  # noqa: BLE001 - recorded, then the client sees a 500
            self.peers.board.error(f"emulated AS {request.method} {request.path}: {type(exc).__name__}: {exc}")
            raise

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    # -- the scripted answer ---------------------------------------------------------------------
    async def answer(self, request: web.Request, on: str, status: int, payload=None, *,
                     headers: dict | None = None, text: str | None = None,
                     content_type: str = "application/json",
                     redirect: tuple[str, dict] | None = None) -> web.StreamResponse:
        """Send the default answer, or what the test case scripted for this exchange; record the
        request either way (the request is the 'message' the peer's expectations look at).

        `redirect` = (URI, query parameters): the answer is a redirect there, and a script's
        `merge`/`omit`/`json` shape its parameters as they shape a JSON body (an authorization
        response with `error` and no `code`, another `iss`: RFC 6749 4.1.2.1, RFC 9207)."""
        body = await request.read()
        event = HttpExchange(method=request.method, url=str(request.url),
                             request_headers=list(request.headers.items()), request_body=body,
                             headers=list(request.headers.items()), body=body)
        script = self.peers.board.script_for("as", on)
        headers = dict(headers or {})
        if redirect is not None:
            params = redirect[1] if script is None else script.shape_json(redirect[1])
            headers["Location"] = f"{redirect[0]}?{urlencode({k: v for k, v in params.items() if v is not None})}"
        if script is None:
            self.peers.board.record("as", on, event, str(status))
            return self._response(status, payload, headers, text, content_type)
        if script.delay_ms:
            # recorded before the wait: a late answer may come after the test case has ended, and
            # what the peer received must be evidence all the same
            self.peers.board.record("as", on, event, f"answered {script.delay_ms} ms late (scripted)")
            await asyncio.sleep(script.delay_ms / 1000.0)
            event = None  # already recorded
        if script.silent:
            self._record(on, event, "no answer (scripted)")
            await asyncio.sleep(SILENT_HOLD_S)
            raise web.HTTPServiceUnavailable()  # only after the hold: the client gave up long before
        if script.close or script.raw is not None:
            self._record(on, event, "closed (scripted)" if script.close else "raw bytes (scripted)")
            if script.raw is not None and request.transport is not None:
                request.transport.write(script.raw.encode())
            if request.transport is not None:
                request.transport.close()
            return web.Response()
        status = script.status or status
        headers.update(script.headers)
        if script.body is not None:
            text, payload = script.body, None
        elif redirect is None and (payload is not None or script.json is not None):
            payload = script.shape_json(payload)
        self._record(on, event, f"{status} (scripted)")
        return self._response(status, payload, headers, text, content_type)

    def _record(self, on: str, event, answered: str) -> None:
        if event is not None:  # None: recorded when the scripted delay began
            self.peers.board.record("as", on, event, answered)

    @staticmethod
    def _response(status, payload, headers, text, content_type) -> web.Response:
        if payload is not None:
            return web.json_response(payload, status=status, headers=headers)
        # a scripted Content-Type wins over the default one (aiohttp refuses both at once)
        explicit = next((k for k in headers if k.lower() == "content-type"), None)
        if explicit:
            return web.Response(status=status, body=(text or "").encode(), headers=headers)
        return web.Response(status=status, text=text or "", headers=headers, content_type=content_type)

    # -- endpoints -------------------------------------------------------------------------------
    async def metadata(self, request):
        iss = self.issuer
        return await self.answer(request, "metadata", 200, {
            "issuer": iss, "authorization_endpoint": f"{iss}/authorize", "token_endpoint": f"{iss}/token",
            "jwks_uri": f"{iss}/jwks", "introspection_endpoint": f"{iss}/introspect",
            "response_types_supported": ["code"], "grant_types_supported": ["authorization_code"],
            "code_challenge_methods_supported": ["S256"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic"],
            "introspection_endpoint_auth_methods_supported": ["client_secret_basic"],
            "revocation_endpoint": f"{iss}/revoke",
            "authorization_response_iss_parameter_supported": True, "scopes_supported": [self.oauth.get("scope")]})

    async def jwks(self, request):
        return await self.answer(request, "jwks", 200, {
            "keys": [{**self.key.as_dict(private=False), "use": "sig", "alg": "ES256"}]})

    def _page(self, request, status: int, error: str = "", txn: str = ""):
        err = f"<p class=error>{html.escape(error)}</p>" if error else ""
        page = LOGIN_PAGE.format(client_id=html.escape(self.oauth.get("client_id", "")), error=err, txn=txn)
        return self.answer(request, "authorize", status, text=page, content_type="text/html")

    async def authorize_form(self, request):  # steps 4-5
        q = request.query
        if q.get("client_id") not in self.clients or q.get("redirect_uri") != self.oauth.get("redirect_uri"):
            return await self._page(request, 400, "unknown client or redirect URI (RFC 6749 4.1.2.1)")
        if q.get("response_type") != "code" or q.get("code_challenge_method") != "S256" or not q.get("code_challenge"):
            return await self._page(request, 400, "invalid_request: code with PKCE S256 required")
        txn = secrets.token_urlsafe(16)
        self.transactions[txn] = dict(q)
        return await self._page(request, 200, txn=txn)

    async def authorize_submit(self, request):  # steps 6-7
        form = await request.post()
        params = self.transactions.pop(str(form.get("transaction", "")), None)
        if params is None:
            return await self._page(request, 400, "unknown or expired transaction")
        back = {"state": params.get("state"), "iss": self.issuer}
        if form.get("consent") != "approve":
            back = {"error": "access_denied", **back}
        else:
            user = self.peers.users.get(str(form.get("web_id", "")))
            if user is None or not _same(user.get("password", ""), str(form.get("password", ""))):
                txn = secrets.token_urlsafe(16)
                self.transactions[txn] = params
                return await self._page(request, 403, "Unknown Web ID or wrong password.", txn)
            code = secrets.token_urlsafe(24)
            self.codes[code] = {"params": params, "web_id": user["web_id"], "at": time.time()}
            back = {"code": code, **back}
        return await self.answer(request, "authorize", 302, redirect=(params["redirect_uri"], back))

    async def token(self, request):  # steps 9-10
        await request.read()
        form = await request.post()
        creds = _basic(request)
        no_store = {"Cache-Control": "no-store", "Pragma": "no-cache"}
        if not self._client_ok(creds):
            return await self.answer(request, "token", 401, {"error": "invalid_client"},
                                     headers={**no_store, "WWW-Authenticate": f'Basic realm="{self.issuer}"'})
        grant = self.codes.pop(str(form.get("code", "")), None)
        if (form.get("grant_type") != "authorization_code" or grant is None
                or time.time() - grant["at"] > CODE_LIFETIME_S
                or grant["params"].get("client_id") != creds[0]  # RFC 6749 4.1.3: issued to this client
                or form.get("redirect_uri") != grant["params"].get("redirect_uri")
                or not _pkce_ok(str(form.get("code_verifier", "")), grant["params"].get("code_challenge", ""))):
            return await self.answer(request, "token", 400, {"error": "invalid_grant"}, headers=no_store)
        token, body = self._issue(grant["web_id"], grant["params"].get("scope") or self.oauth.get("scope"), creds[0])
        resp = {"access_token": token, "token_type": "Bearer", "expires_in": body["exp"] - body["iat"],
                "scope": body["scope"]}
        if self.pics.get("token.wsf_url_member", True) and self.wsf_url:
            resp["wsf_url"] = self.wsf_url
        return await self.answer(request, "token", 200, resp, headers=no_store)

    def _issue(self, web_id: str, scope: str, client_id: str | None = None) -> tuple[str, dict]:
        client_id = client_id or self.oauth.get("client_id")
        client = self.clients[client_id]
        now = int(time.time())
        claims = {"iss": self.issuer, "sub": web_id, "aud": client["aud"], "client_id": client_id, "scope": scope,
                  "iat": now, "exp": now + client["lifetime"], "jti": secrets.token_urlsafe(16)}
        if self.pics.get("token.format", "jwt") == "opaque":
            token = secrets.token_urlsafe(32)
        else:
            token = jwt.encode({"alg": "ES256", "typ": "at+jwt", "kid": self.key.kid}, claims, self.key)
        self.tokens[token] = claims
        return token, claims

    async def introspect(self, request):  # steps 15-16
        await request.read()
        form = await request.post()
        creds = _basic(request)
        if creds is None or creds[0] != self.oauth.get("introspection_client_id") or not _same(
                creds[1], self.oauth.get("introspection_client_secret", "")):
            return await self.answer(request, "introspect", 401, {"error": "invalid_client"},
                                     headers={"WWW-Authenticate": f'Basic realm="{self.issuer}"'})
        claims = self.tokens.get(str(form.get("token", "")))
        if claims is None or claims["exp"] <= time.time():
            return await self.answer(request, "introspect", 200, {"active": False})
        user = self.peers.users.get(claims["sub"]) or {}
        body = {"active": True, **claims, "token_type": "Bearer",
                "impi": user.get("impi"), "impu": list(user.get("impus") or [])}
        return await self.answer(request, "introspect", 200, body)

    async def revoke(self, request):  # RFC 7009 2.1: the client revokes its own token
        await request.read()
        form = await request.post()
        creds = _basic(request)
        if not self._client_ok(creds):
            return await self.answer(request, "revoke", 401, {"error": "invalid_client"},
                                     headers={"WWW-Authenticate": f'Basic realm="{self.issuer}"'})
        claims = self.tokens.get(str(form.get("token", "")))
        if claims is not None and claims.get("client_id") == creds[0]:
            del self.tokens[str(form.get("token", ""))]
        return await self.answer(request, "revoke", 200, text="")  # RFC 7009 2.2: 200 for unknown tokens too

    async def admin_users(self, request):
        """Provisioning of the harness's fresh test identities (pixit.users.provisioning)."""
        token = ((self.peers.profile.pixit.get("users") or {}).get("provisioning") or {}).get("token", "")
        if not _same(request.headers.get("Authorization", ""), f"Bearer {token}"):
            return web.json_response({"error": "invalid_token"}, status=401)
        try:
            user = await request.json()
            ok = isinstance(user, dict) and all(isinstance(user.get(k), str) for k in ("web_id", "password", "impi"))
        except ValueError:
            ok = False
        if not ok:
            return web.json_response({"error": "invalid_request"}, status=400)
        if not self.peers.users.add(user):
            return web.json_response({"error": "conflict"}, status=409)
        return web.json_response({"web_id": user["web_id"]}, status=201)


    def _deregister_route(self) -> list:
        """The operator's trigger of a network-initiated de-registration, where the profile says
        it is (pixit.lifecycle.deregister_url) when that is at this AS (docs/lifecycle.md section 9)."""
        url = str((self.peers.profile.pixit.get("lifecycle") or {}).get("deregister_url") or "")
        base = str(self.node.get("base_url") or "").rstrip("/")
        if not base or not url.startswith(base + "/"):
            return []
        return [web.post(url[len(base):], self.admin_deregister)]

    async def admin_deregister(self, request):
        """Bearer pixit.lifecycle.deregister_token; JSON {impu, event: deactivated | rejected}: the
        emulated core removes the IMPU's bindings and notifies its subscribers (registrar.py)."""
        token = str((self.peers.profile.pixit.get("lifecycle") or {}).get("deregister_token") or "")
        if not token or not _same(request.headers.get("Authorization", ""), f"Bearer {token}"):
            return web.json_response({"error": "invalid_token"}, status=401)
        try:
            body = await request.json()
        except ValueError:
            body = None
        event = body.get("event", "deactivated") if isinstance(body, dict) else None
        if not isinstance(body, dict) or not isinstance(body.get("impu"), str) or event not in ("deactivated", "rejected"):
            return web.json_response({"error": "invalid_request"}, status=400)
        core = self.peers.emulated_core()
        if core is None:  # a supplied S-CSCF has its own trigger (its vendor's PIXIT)
            return web.json_response({"error": "the S-CSCF is not played by the harness"}, status=501)
        core.network_deregister(body["impu"], event)
        return web.json_response({"queued": True}, status=202)


def _pkce_ok(verifier: str, challenge: str) -> bool:
    digest = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return bool(verifier) and _same(digest, challenge)


def _clients(oauth: dict, lifetime: int = TOKEN_LIFETIME_S) -> dict[str, dict]:
    """The OAuth clients the emulated AS registers: the profile's third-party application, and
    its second clients when the profile names them (tokens that expire within seconds; tokens
    for another audience than the WSF's)."""
    audience = oauth.get("audience")
    clients = {oauth.get("client_id"): {"secret": oauth.get("client_secret", ""), "lifetime": lifetime,
                                        "aud": audience}}
    short, other = oauth.get("short_lived_client") or {}, oauth.get("other_audience_client") or {}
    if short.get("client_id"):
        clients[short["client_id"]] = {"secret": short.get("client_secret", ""), "lifetime": SHORT_LIVED_S,
                                       "aud": audience}
    if other.get("client_id"):
        clients[other["client_id"]] = {"secret": other.get("client_secret", ""), "lifetime": lifetime,
                                       "aud": f"not-{audience}"}
    return clients
