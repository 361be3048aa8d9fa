"""AS: the operator WWS acting as OAuth 2.0 authorization server (BINDING.md steps 4-7, 9-10, 15-16).

Authlib does the OAuth 2.0 protocol work (RFC 6749 authorization code grant, RFC 7636 PKCE,
RFC 7662 introspection, RFC 7009 revocation); this module supplies the storage, the login and
consent page, the RFC 9068 JWT access tokens (joserfc, ES256), RFC 8414 metadata, RFC 9207 `iss`,
the identity mapping returned at introspection, test-user provisioning, and the named faults.

Served by werkzeug's threaded WSGI server over TLS (test PKI, NSS key log).
"""

from __future__ import annotations

import base64
import hmac
import io
import json
import logging
import os
import secrets
import signal
import socket
import ssl
import threading
import time
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from authlib.integrations.flask_oauth2 import AuthorizationServer
from authlib.oauth2 import OAuth2Error, rfc8414, rfc9207
from authlib.oauth2.rfc6749 import (
    AuthorizationCodeMixin,
    ClientMixin,
    InvalidClientError,
    InvalidRequestError,
    OAuth2Request,
    TokenMixin,
)
from authlib.oauth2.rfc6749.grants import AuthorizationCodeGrant
from authlib.oauth2.rfc6749.requests import BasicOAuth2Payload
from authlib.oauth2.rfc7009 import RevocationEndpoint
from authlib.oauth2.rfc7636 import CodeChallenge
from authlib.oauth2.rfc7662 import IntrospectionEndpoint
from flask import Flask, Response, jsonify, render_template_string, request
from joserfc import jwt
from joserfc.jwk import ECKey
from werkzeug.serving import ThreadedWSGIServer, WSGIRequestHandler

from . import pki
from .config import NetworkConfig
from .faults import ActiveFaults
from .store import Conflict, Store, VerifiedSecrets

log = logging.getLogger("refnet.as")

MAX_BODY = 64 * 1024
WRONG_AUDIENCE = "wrong-audience.operator.example"  # fault as-token-wrong-aud
WRONG_IMPI = "mallory@ims.example.net"  # fault as-introspect-wrong-impi


# -- signing key and JWT access tokens (RFC 9068) ------------------------------------------------
class Signer:
    """ES256 key kept in the state directory, so tokens stay verifiable across AS restarts."""

    def __init__(self, cfg: NetworkConfig):
        path = cfg.state / "as-signing-key.json"
        if path.exists():
            self.key = ECKey.import_key(json.loads(path.read_text()))
        else:
            self.key = ECKey.generate_key("P-256", private=True, auto_kid=True)
            tmp = path.with_suffix(".tmp")
            tmp.write_text(json.dumps(self.key.as_dict(private=True)))
            tmp.chmod(0o600)
            tmp.replace(path)

    def jwks(self) -> dict:
        return {"keys": [{**self.key.as_dict(private=False), "use": "sig", "alg": "ES256"}]}

    def sign(self, claims: dict, alg_none: bool = False) -> str:
        # RFC 9068 2.1: typ "at+jwt"
        if alg_none:  # fault as-token-alg-none: an unsecured JWS (RFC 7515 A.5), empty signature
            header = {"alg": "none", "typ": "at+jwt"}
            return f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}."
        return jwt.encode({"alg": "ES256", "typ": "at+jwt", "kid": self.key.kid}, claims, self.key)


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def claims_of(token: str) -> dict:
    """Payload of a JWT we issued ourselves (looked up in our store first, so not re-verified)."""
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


# -- storage models for Authlib -------------------------------------------------------------------
class Client(ClientMixin):
    def __init__(self, row: dict, loose_redirect: bool, secrets_checked: VerifiedSecrets):
        self.row = row
        self.secrets_checked = secrets_checked
        self.client_id = row["client_id"]
        self.loose_redirect = loose_redirect

    def get_client_id(self):
        return self.client_id

    def get_default_redirect_uri(self):
        return self.row["redirect_uris"][0] if self.row["redirect_uris"] else None

    def get_allowed_scope(self, scope):
        allowed = self.row["scope"].split()
        if not scope:
            return self.row["scope"]
        return " ".join(s for s in scope.split() if s in allowed)

    def check_redirect_uri(self, redirect_uri):
        # RFC 9700 2.1: exact string matching against the registered URIs
        if redirect_uri in self.row["redirect_uris"]:
            return True
        if self.loose_redirect:  # fault as-redirect-uri-loose: ignore the query component
            strip = lambda u: urlunsplit(urlsplit(u)._replace(query="", fragment=""))  # noqa: E731
            return strip(redirect_uri) in {strip(u) for u in self.row["redirect_uris"]}
        return False

    def check_client_secret(self, client_secret):
        # scrypt once per process and secret, then a keyed hash (every introspection authenticates)
        return self.secrets_checked.check(client_secret, self.row["secret_hash"])

    def check_endpoint_auth_method(self, method, endpoint):
        return method == self.row["auth_method"]

    def check_response_type(self, response_type):
        return response_type == "code" and "authorization_code" in self.row["grant_types"]

    def check_grant_type(self, grant_type):
        return grant_type in self.row["grant_types"]


class AuthCode(AuthorizationCodeMixin):
    def __init__(self, row: dict):
        self.row = row
        self.code_challenge = row["code_challenge"]
        self.code_challenge_method = row["code_challenge_method"]

    def get_redirect_uri(self):
        return self.row["redirect_uri"]

    def get_scope(self):
        return self.row["scope"]


class Token(TokenMixin):
    def __init__(self, row: dict):
        self.row = row

    def check_client(self, client):
        return client.client_id == self.row["client_id"]

    def get_scope(self):
        return self.row["scope"]

    def get_expires_in(self):
        return self.row["exp"] - self.row["iat"]

    def is_expired(self):
        return self.row["exp"] <= time.time()

    def is_revoked(self):
        return bool(self.row["revoked"])

    def get_user(self):
        return self.row["web_id"]

    def get_client(self):
        return self.row["client_id"]


# -- Authlib server, grant and endpoints ----------------------------------------------------------
class Server(AuthorizationServer):
    def __init__(self, app: Flask, cfg: NetworkConfig, faults: ActiveFaults, store: Store):
        self.cfg, self.faults, self.store = cfg, faults, store
        self.signer = Signer(cfg)
        self.client_secrets = VerifiedSecrets()
        super().__init__(app, query_client=self._query_client_row, save_token=self._link_token_to_code)
        self.register_token_generator("default", self._generate_token)

    def _query_client_row(self, client_id):
        row = self.store.client(client_id) if isinstance(client_id, str) else None
        return Client(row, self.faults.on("as-redirect-uri-loose"), self.client_secrets) if row else None

    def _link_token_to_code(self, token: dict, request) -> None:
        """Tokens are stored when issued; here the code grant's token is tied to its code."""
        payload = getattr(request, "payload", None)
        data = getattr(payload, "data", None) or getattr(request, "form", None) or {}
        code = data.get("code") if hasattr(data, "get") else None
        if code and token.get("access_token"):
            row = self.store.token_by_value(token["access_token"])
            jti = row and row["jti"]
            if jti:
                self.store.link_code_token(code, jti)

    def issue_access_token(self, client_id: str, web_id: str, scope: str) -> str:
        cfg, faults = self.cfg, self.faults
        now = int(time.time())
        exp = now + cfg.token_lifetime(client_id)
        claims = {"iss": cfg.issuer, "sub": web_id,
                  "aud": WRONG_AUDIENCE if faults.on("as-token-wrong-aud") else cfg.audience_of(client_id),
                  "client_id": client_id, "scope": scope, "iat": now, "exp": exp,
                  "jti": secrets.token_urlsafe(16)}
        if faults.on("as-token-no-exp"):
            del claims["exp"]
        if cfg.options.token_format == "opaque":  # a random handle; only introspection tells what it means
            token = secrets.token_urlsafe(32)
        else:
            token = self.signer.sign(claims, alg_none=faults.on("as-token-alg-none"))
        self.store.save_token(claims["jti"], token, web_id, client_id, scope, now, exp)
        return token

    def claims_of(self, row: dict) -> dict:
        """The claims a token stands for: its JWT payload, or (opaque) what was stored for it."""
        if self.cfg.options.token_format == "opaque":
            return {"iss": self.cfg.issuer, "aud": self.cfg.audience_of(row["client_id"]),
                    "exp": row["exp"], "iat": row["iat"]}
        return claims_of(row["token"])

    def _generate_token(self, grant_type, client, user=None, scope=None, expires_in=None,
                        include_refresh_token=True):
        # RFC 6749 5.1 token response, plus the wsf_url extension member (BINDING step 10)
        body = {"access_token": self.issue_access_token(client.client_id, user["web_id"], scope),
                "token_type": "Bearer", "expires_in": self.cfg.token_lifetime(client.client_id), "scope": scope}
        if self.cfg.options.wsf_url_member:
            body["wsf_url"] = self.cfg.wsf_url
        return body


class S256Challenge(CodeChallenge):
    """RFC 7636 with the BINDING profile: a code_challenge is required and only S256 is accepted
    (an absent method means "plain", RFC 7636 4.3, so it is refused too)."""

    SUPPORTED_CODE_CHALLENGE_METHOD = ["S256"]

    def validate_code_challenge(self, grant, redirect_uri):
        data = grant.request.payload.data
        if not data.get("code_challenge"):
            raise InvalidRequestError("Missing 'code_challenge' (PKCE is required)")
        if data.get("code_challenge_method") != "S256":
            raise InvalidRequestError("'code_challenge_method' must be S256")
        super().validate_code_challenge(grant, redirect_uri)

    def validate_code_verifier(self, grant, result):
        if grant.server.faults.on("as-pkce-ignored"):
            return
        super().validate_code_verifier(grant, result)


class CodeGrant(AuthorizationCodeGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_basic"]

    def save_authorization_code(self, code, request):
        data = request.payload.data
        self.server.store.save_code(
            code, request.client.client_id, request.payload.redirect_uri, request.user["web_id"], request.scope,
            data.get("code_challenge"), data.get("code_challenge_method"), self.server.cfg.options.code_lifetime_s)

    def query_authorization_code(self, code, client):
        # RFC 6749 4.1.2: single use, bound to the client; consumed here atomically
        # fault as-code-any-client: the code is looked up without its client
        bound_to = None if self.server.faults.on("as-code-any-client") else client.client_id
        row = self.server.store.claim_code(code, bound_to, allow_reuse=self.server.faults.on("as-code-reusable"))
        return AuthCode(row) if row else None

    def delete_authorization_code(self, authorization_code):
        pass  # already consumed by claim_code()

    def authenticate_user(self, authorization_code):
        return self.server.store.identity(authorization_code.row["web_id"])


class _TokenLookup:
    def query_token(self, token_string, token_type_hint):
        row = self.server.store.token_by_value(token_string)
        return Token(row) if row else None


class _TimelessToken(Token):
    """Fault as-introspect-expired-active: the expiry is not looked at."""

    def is_expired(self):
        return False


class Introspection(_TokenLookup, IntrospectionEndpoint):
    CLIENT_AUTH_METHODS = ["client_secret_basic"]

    def query_token(self, token_string, token_type_hint):
        token = super().query_token(token_string, token_type_hint)
        if token is not None and self.server.faults.on("as-introspect-expired-active"):
            return _TimelessToken(token.row)
        return token

    def authenticate_endpoint_client(self, request):
        try:
            return super().authenticate_endpoint_client(request)
        except InvalidClientError:
            # fault as-introspect-unauthenticated: answer anyone, as if the WSF had asked
            if not self.server.faults.on("as-introspect-unauthenticated"):
                raise
            request.client = self.server.query_client(self.server.cfg.wsf_client_id)
            return request.client

    def check_permission(self, token, client, request):
        # fault as-introspect-any-client: every authenticated client may introspect every token
        return client.client_id == self.server.cfg.wsf_client_id or self.server.faults.on("as-introspect-any-client")

    def introspect_token(self, token):
        # RFC 7662 2.2, plus the impi/impu extension members (BINDING step 16)
        claims = self.server.claims_of(token.row)
        ident = self.server.store.identity(token.row["web_id"]) or {"impi": None, "impus": []}
        body = {"active": True, "iss": claims.get("iss"), "sub": token.row["web_id"],
                "client_id": token.row["client_id"], "scope": token.row["scope"],
                "exp": claims.get("exp", token.row["exp"]), "iat": claims.get("iat", token.row["iat"]),
                "aud": claims.get("aud"), "token_type": "Bearer", "jti": token.row["jti"],
                "impi": ident["impi"], "impu": ident["impus"]}
        if self.server.faults.on("as-introspect-wrong-impi"):
            body["impi"] = WRONG_IMPI
        return body


class Revocation(_TokenLookup, RevocationEndpoint):
    CLIENT_AUTH_METHODS = ["client_secret_basic"]

    def authenticate_token(self, request, client):
        if not self.server.faults.on("as-revoke-any-client"):
            return super().authenticate_token(request, client)  # RFC 7009 2.1: the token's own client only
        self.check_params(request, client)
        return self.query_token(request.form["token"], request.form.get("token_type_hint"))

    def revoke_token(self, token, request):
        self.server.store.revoke_token(token.row["jti"])


class StoredAuthorizationRequest(OAuth2Request):
    """The authorization request parameters kept server-side between GET and POST /authorize."""

    def __init__(self, uri: str, params: dict, headers):
        super().__init__("GET", uri, headers=headers)
        self.payload = BasicOAuth2Payload(params)
        self._params = params

    @property
    def args(self):
        return self._params

    @property
    def form(self):
        return {}


class Transactions:
    """Pending authorizations (hidden `transaction` field of the login form), bounded, 10 min TTL."""

    TTL_S, MAX = 600, 10_000

    def __init__(self):
        self._lock = threading.Lock()
        self._items: dict[str, tuple[float, dict]] = {}

    def put(self, params: dict) -> str:
        txn = secrets.token_urlsafe(24)
        now = time.monotonic()
        with self._lock:
            self._items = {k: v for k, v in self._items.items() if v[0] > now}
            if len(self._items) >= self.MAX:
                self._items.pop(next(iter(self._items)))
            self._items[txn] = (now + self.TTL_S, params)
        return txn

    def get(self, txn: str | None) -> dict | None:
        with self._lock:
            item = self._items.get(txn or "")
        return item[1] if item and item[0] > time.monotonic() else None

    def pop(self, txn: str) -> None:
        with self._lock:
            self._items.pop(txn, None)


LOGIN_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Operator sign-in</title></head>
<body>
<h1>Sign in with your operator Web ID</h1>
<p><b>{{ client_id }}</b> asks for access to <b>{{ scope }}</b> (registration to IMS over WebRTC).</p>
{% if error %}<p class="error" role="alert">{{ error }}</p>{% endif %}
<form method="post" action="/authorize">
  <input type="hidden" name="{{ f.txn }}" value="{{ txn }}">
  <p><label>Web ID <input name="web_id" value="{{ web_id }}" autocomplete="username"></label></p>
  <p><label>Password <input type="password" name="password" autocomplete="current-password"></label></p>
  <fieldset><legend>Consent</legend>
    <label><input type="radio" name="consent" value="{{ f.approve }}" checked> Allow</label>
    <label><input type="radio" name="consent" value="{{ f.deny }}"> Deny</label>
  </fieldset>
  <p><button type="submit">Continue</button></p>
</form>
</body></html>
"""

ERROR_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Authorization error</title></head>
<body><h1>Authorization error</h1>
<p class="error" role="alert"><code>{{ error }}</code>: {{ description }}</p></body></html>
"""


def create_app(cfg: NetworkConfig, faults: ActiveFaults, store: Store | None = None) -> Flask:
    store = store or Store(cfg.db_path)
    store.seed(cfg)
    app = Flask("refnet.as")
    # bounded bodies (413 beyond), form fields included
    app.config.update(MAX_CONTENT_LENGTH=MAX_BODY, MAX_FORM_MEMORY_SIZE=MAX_BODY,
                      OAUTH2_SCOPES_SUPPORTED=[cfg.scope])
    server = Server(app, cfg, faults, store)
    server.register_grant(CodeGrant, [S256Challenge(required=True)])
    server.register_endpoint(Introspection)
    server.register_endpoint(Revocation)
    transactions = Transactions()
    iss = cfg.issuer
    # the names BINDING leaves open: hidden transaction field and consent values (variation)
    form_names = ({"txn": "txn_ref", "approve": "allow", "deny": "refuse"} if cfg.varies("as-form-field-names")
                  else {"txn": "transaction", "approve": "approve", "deny": "deny"})
    jwks_path = "/.well-known/keys" if cfg.varies("as-jwks-elsewhere") else "/jwks"

    metadata = rfc8414.AuthorizationServerMetadata({
        "issuer": iss,
        "authorization_endpoint": f"{iss}/authorize",
        "token_endpoint": f"{iss}/token",
        "jwks_uri": f"{iss}{jwks_path}",
        "introspection_endpoint": f"{iss}/introspect",
        "revocation_endpoint": f"{iss}/revoke",
        "scopes_supported": [cfg.scope],
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": ["authorization_code"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic"],
        "introspection_endpoint_auth_methods_supported": ["client_secret_basic"],
        "revocation_endpoint_auth_methods_supported": ["client_secret_basic"],
        "code_challenge_methods_supported": ["S256"],
        "authorization_response_iss_parameter_supported": True,  # RFC 9207 3
    })
    metadata.validate(metadata_classes=[rfc9207.AuthorizationServerMetadata])

    def page(template: str, status: int, **ctx) -> Response:
        resp = Response(render_template_string(template, f=form_names, **ctx), status=status, mimetype="text/html")
        resp.headers["Cache-Control"] = "no-store"
        # RFC 9700 4.16: the login page must not be framed (clickjacking)
        resp.headers["Content-Security-Policy"] = "frame-ancestors 'none'"
        resp.headers["X-Frame-Options"] = "DENY"
        return resp

    def finish_redirect(resp: Response, user: dict | None = None, client_id: str = "") -> Response:
        """Every redirect back to the client: add `iss` (RFC 9207 2), then the redirect faults."""
        if resp.status_code not in (302, 303) or not resp.location:
            return resp
        parts = urlsplit(resp.location)
        params = parse_qsl(parts.query, keep_blank_values=True)
        if faults.on("as-state-dropped"):
            params = [(k, v) for k, v in params if k != "state"]
        params.append(("iss", iss))
        if faults.on("as-token-in-redirect") and user and any(k == "code" for k, _ in params):
            token = server.issue_access_token(client_id, user["web_id"], cfg.scope)
            params += [("access_token", token), ("token_type", "Bearer")]
        resp.location = urlunsplit(parts._replace(query=urlencode(params)))
        return resp

    def authorization_error(err: OAuth2Error) -> Response:
        if err.redirect_uri:  # RFC 6749 4.1.2.1: the redirect URI is valid, tell the client
            return finish_redirect(server.handle_error_response(None, err))
        # unknown client or unregistered redirect URI: never redirect (RFC 6749 4.1.2.1)
        return page(ERROR_PAGE, 400, error=err.error, description=err.description or "")

    @app.get("/.well-known/oauth-authorization-server")
    def as_metadata():
        return jsonify(dict(metadata))

    @app.get(jwks_path)
    def jwks():
        return jsonify(server.signer.jwks())

    @app.get("/authorize")
    def authorize_form():  # steps 4-5
        try:
            grant = server.get_consent_grant(end_user=None)
        except OAuth2Error as err:
            return authorization_error(err)
        txn = transactions.put(request.args.to_dict())
        return page(LOGIN_PAGE, 200, client_id=grant.client.client_id, scope=grant.request.scope, txn=txn,
                    web_id="", error="")

    @app.post("/authorize")
    def authorize_submit():  # steps 6-7
        txn = request.form.get(form_names["txn"])
        params = transactions.get(txn)
        if params is None:
            return page(ERROR_PAGE, 400, error="invalid_request", description="unknown or expired transaction")
        consent = request.form.get("consent")
        web_id = request.form.get("web_id", "")
        user = None
        if consent == form_names["approve"]:
            user = store.check_user(web_id, request.form.get("password", ""))
            if user is None:
                return page(LOGIN_PAGE, 403, client_id=params.get("client_id"), scope=params.get("scope"),
                            txn=txn, web_id=web_id, error="Unknown Web ID or wrong password.")
        elif consent != form_names["deny"]:
            return page(LOGIN_PAGE, 400, client_id=params.get("client_id"), scope=params.get("scope"),
                        txn=txn, web_id=web_id, error="Choose Allow or Deny.")
        transactions.pop(txn)
        req = StoredAuthorizationRequest(f"{iss}/authorize?{urlencode(params)}", params, request.headers)
        try:
            grant = server.get_authorization_grant(req)
        except OAuth2Error as err:
            return authorization_error(err)
        resp = server.create_authorization_response(request=req, grant_user=user, grant=grant)  # None: denied
        return finish_redirect(resp, user, params.get("client_id", ""))

    def basic_challenge(resp: Response) -> Response:
        # RFC 6749 5.2: 401 invalid_client carries a challenge for the scheme the client used;
        # RFC 7617 2: the Basic challenge requires a realm (Authlib's lacks it)
        if resp.status_code == 401:
            resp.headers["WWW-Authenticate"] = f'Basic realm="{iss}", charset="UTF-8"'
        return resp

    @app.post("/token")
    def token():  # steps 9-10
        return basic_challenge(server.create_token_response())

    @app.post("/introspect")
    def introspect():  # steps 15-16
        if cfg.varies("as-introspect-400-unauthenticated") and not request.headers.get("Authorization") \
                and "client_secret" not in request.form:
            # RFC 6749 5.2: no client authentication at all is invalid_client, 400 by default; the
            # 401 (and its challenge) is a MAY unless the client tried the Authorization header
            return jsonify(error="invalid_client", error_description="no client authentication included"), 400
        return basic_challenge(server.create_endpoint_response("introspection"))

    @app.post("/revoke")
    def revoke():
        return basic_challenge(server.create_endpoint_response("revocation"))

    @app.post("/admin/users")
    def admin_users():
        """Provision a test identity (and its third-party account, same database)."""
        if not hmac.compare_digest(request.headers.get("Authorization", ""), f"Bearer {cfg.admin_token}"):
            return jsonify(error="invalid_token"), 401, {"WWW-Authenticate": 'Bearer realm="refnet-admin"'}
        body = request.get_json(silent=True)
        problem = _check_user_body(body)
        if problem:
            return jsonify(error="invalid_request", error_description=problem), 400
        try:
            created = store.create_user(body["web_id"], body["password"], body["impi"], body["impus"],
                                        body.get("tp_username"), body.get("tp_password"))
        except Conflict as exc:
            return jsonify(error="conflict", error_description=str(exc)), 409
        return jsonify(created), 201

    from .operator_deregister import add_admin_route  # network-initiated de-registration (docs/lifecycle.md)

    add_admin_route(app, cfg, store)
    return app


def _check_user_body(body) -> str | None:
    if not isinstance(body, dict):
        return "JSON object expected"
    for name in ("web_id", "password", "impi"):
        if not isinstance(body.get(name), str) or not body[name]:
            return f"{name}: non-empty string required"
    impus = body.get("impus")
    if not isinstance(impus, list) or not impus or not all(isinstance(u, str) and u for u in impus):
        return "impus: non-empty list of strings required"
    tp_user, tp_pw = body.get("tp_username"), body.get("tp_password")
    if tp_user is not None and (not isinstance(tp_user, str) or not tp_user or not isinstance(tp_pw, str)):
        return "tp_username/tp_password: strings required together"
    return None


# -- TLS WSGI server ---------------------------------------------------------------------------
class _Handler(WSGIRequestHandler):
    """werkzeug's request handler with TLS in the connection's thread and persistent connections.

    werkzeug's server sends `Connection: close` on every response: it cannot tell a request body
    the application left unread from the next request. Here a Content-Length body (at most
    MAX_BODY) is read before the application runs, so the connection can carry the next request
    (RFC 9112 9.3): the WSF's introspections (steps 15-16) reuse one TLS connection instead of
    paying a handshake per REGISTER. A chunked or oversized body, several Content-Length fields
    or HTTP/1.0 keep werkzeug's behaviour (read what is left, then close)."""

    timeout = 30  # seconds a connection may stay idle (socket timeout)
    _body_consumed = False

    def handle(self):
        # werkzeug writes the status line and headers, then the body: two TLS records. Without
        # TCP_NODELAY, Nagle holds the second one back until the client's delayed ACK (~40 ms),
        # which a persistent connection would pay on every response.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:  # the TLS handshake runs here, in the connection's thread, not in accept()
            self.connection.do_handshake()
        except (ssl.SSLError, OSError) as exc:
            log.info("TLS handshake with %s failed: %s", self.client_address[0], exc)
            return
        super().handle()

    def _read_body(self) -> bytes | None:
        lengths = self.headers.get_all("Content-Length") or ["0"]
        if self.request_version != "HTTP/1.1" or "Transfer-Encoding" in self.headers or len(lengths) != 1:
            return None
        length = lengths[0].strip()
        if not length.isdigit() or int(length) > MAX_BODY:  # too large: the app answers 413, then close
            return None
        body = self.rfile.read(int(length))  # bounded by `timeout` per read
        return body if len(body) == int(length) else None

    def run_wsgi(self):
        body = self._read_body()
        self._body_consumed = body is not None
        if not self._body_consumed:
            return super().run_wsgi()
        socket_file, self.rfile = self.rfile, io.BytesIO(body)  # wsgi.input; werkzeug's drain finds nothing
        try:
            return super().run_wsgi()
        finally:
            self.rfile = socket_file

    def send_header(self, keyword, value):
        if (keyword.lower() == "connection" and value.lower() == "close" and self._body_consumed
                and not self.close_connection):  # close_connection: the client asked to close
            return
        super().send_header(keyword, value)

    def log_request(self, code="-", size="-"):  # plain text (werkzeug adds ANSI colours)
        log.info('%s "%s" %s', self.client_address[0], self.requestline, getattr(code, "value", code))


class TLSWSGIServer(ThreadedWSGIServer):
    stop_requested = False  # set by the node's signal handler
    _stopping = False  # shutdown() has been started

    def service_actions(self) -> None:
        """Called by serve_forever between requests (every poll interval): a requested stop
        becomes shutdown(), which waits for serve_forever to return, so from a thread of its own."""
        super().service_actions()
        if self.stop_requested and not self._stopping:
            self._stopping = True
            threading.Thread(target=self.shutdown, daemon=True).start()

    def __init__(self, host: str, port: int, app, ctx: ssl.SSLContext):
        super().__init__(host, port, app, handler=_Handler)
        # werkzeug would handshake inside accept(): one silent client would block every other one
        self.socket = ctx.wrap_socket(self.socket, server_side=True, do_handshake_on_connect=False)
        self.ssl_context = ctx


def serve(cfg: NetworkConfig, faults: ActiveFaults) -> None:
    ep = cfg.endpoints["as"]
    app = create_app(cfg, faults)
    httpd = TLSWSGIServer(ep.host, ep.port, app, pki.server_ssl_context(cfg, "as"))

    def stop(signum, frame):
        # Only a flag: starting a thread here takes threading's locks, which the main thread may
        # hold at that moment (it starts a thread per request). serve_forever's loop acts on it.
        httpd.stop_requested = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print(f"listening as {ep.host}:{ep.port}", flush=True)
    httpd.serve_forever(poll_interval=0.2)
    log.info("stopped (pid %d)", os.getpid())
