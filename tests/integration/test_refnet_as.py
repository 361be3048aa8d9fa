"""The reference AS over the wire (BINDING.md steps 4-7, 9-10, 15-16), the test playing the
third-party client itself; plus each AS fault made observable, and node stop/restart."""

from __future__ import annotations

import base64
import json
import os
import secrets
import socket
import sqlite3
import ssl
import time
from urllib.parse import parse_qs, urlsplit

import pytest
from joserfc import jwt
from joserfc.errors import BadSignatureError
from joserfc.jwk import KeySet

from refnet.config import NetworkConfig
from refnet.faults import FAULTS
from refnet.launcher import free_endpoints, start

pytestmark = pytest.mark.integration
AS_ONLY = ("as",)


@pytest.fixture(scope="module")
def net(refnet_factory):
    return refnet_factory(nodes=AS_ONLY)


# -- helpers: the test is the OAuth client ---------------------------------------------------------
def auth_params(net, challenge, **over) -> dict:
    cfg = net.cfg
    params = {"response_type": "code", "client_id": cfg.client_id, "redirect_uri": cfg.redirect_uri,
              "scope": cfg.scope, "state": secrets.token_urlsafe(12), "code_challenge": challenge,
              "code_challenge_method": "S256", **over}
    return {k: v for k, v in params.items() if v is not None}


def authorize(h, net, user, consent="approve", **over):
    """Steps 4-7. Returns (response to POST /authorize, request params, code_verifier)."""
    s = h.session(net)
    verifier, challenge = h.pkce()
    params = auth_params(net, challenge, **over)
    page = s.get(net.url("as", "/authorize"), params=params, allow_redirects=False)
    assert page.status_code == 200, page.text
    resp = s.post(net.url("as", "/authorize"), allow_redirects=False,
                  data={"transaction": h.transaction(page.text), "web_id": user["web_id"],
                        "password": user["password"], "consent": consent})
    return resp, params, verifier


def location_params(resp) -> dict:
    assert resp.status_code in (302, 303), (resp.status_code, resp.text[:300])
    return {k: v[0] for k, v in parse_qs(urlsplit(resp.headers["Location"]).query, keep_blank_values=True).items()}


def redeem(h, net, code, verifier, redirect_uri=None, secret=None):
    cfg = net.cfg
    data = {"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri or cfg.redirect_uri}
    if verifier is not None:
        data["code_verifier"] = verifier
    return h.session(net).post(net.url("as", "/token"), data=data,
                               auth=(cfg.client_id, secret or cfg.client_secret))


def get_token(h, net, user) -> str:
    resp, _, verifier = authorize(h, net, user)
    r = redeem(h, net, location_params(resp)["code"], verifier)
    assert r.status_code == 200, r.text
    return r.json()["access_token"]


def introspect(h, net, token, auth="wsf"):
    cfg = net.cfg
    creds = {"wsf": (cfg.wsf_client_id, cfg.wsf_client_secret), "app": (cfg.client_id, cfg.client_secret),
             "bad": (cfg.wsf_client_id, "wrong"), None: None}[auth]
    return h.session(net).post(net.url("as", "/introspect"), auth=creds,
                               data={"token": token, "token_type_hint": "access_token"})


def jose_parts(token: str) -> tuple[dict, dict, str]:
    def dec(part):
        return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    h, p, sig = token.split(".")
    return dec(h), dec(p), sig


# -- metadata, keys -----------------------------------------------------------------------------------
def test_metadata_rfc8414(net, refnet_helpers):
    r = refnet_helpers.session(net).get(net.url("as", "/.well-known/oauth-authorization-server"))
    assert r.status_code == 200
    md = r.json()
    iss = net.cfg.issuer
    assert md["issuer"] == iss
    assert md["authorization_endpoint"] == f"{iss}/authorize"
    assert md["token_endpoint"] == f"{iss}/token"
    assert md["introspection_endpoint"] == f"{iss}/introspect"
    assert md["jwks_uri"] == f"{iss}/jwks"
    assert md["code_challenge_methods_supported"] == ["S256"]
    assert md["authorization_response_iss_parameter_supported"] is True
    assert md["response_types_supported"] == ["code"]
    assert md["grant_types_supported"] == ["authorization_code"]
    assert md["token_endpoint_auth_methods_supported"] == ["client_secret_basic"]


def test_tls_certificate_valid_by_ip_and_name(net):
    ep = net.cfg.endpoints["as"]
    ctx = ssl.create_default_context(cafile=str(net.cfg.ca_file))
    for server_hostname in (ep.host, ep.tls_name):
        with socket.create_connection((ep.host, ep.port), timeout=5) as raw, \
                ctx.wrap_socket(raw, server_hostname=server_hostname) as tls:
            assert tls.version() in ("TLSv1.2", "TLSv1.3")
    assert net.cfg.keylog("as").read_text().count("CLIENT_") > 0  # NSS key log written by the AS


def test_introspection_connections_persist_and_close_on_request(net):
    """The WSF reuses one TLS connection for steps 15-16 (RFC 9112 9.3): two POSTs answered on one
    connection, then `Connection: close` honoured."""
    ep, cfg = net.cfg.endpoints["as"], net.cfg
    basic = base64.b64encode(f"{cfg.wsf_client_id}:{cfg.wsf_client_secret}".encode()).decode()
    body = b"token=unknown&token_type_hint=access_token"

    def request(close: bool) -> bytes:
        return (f"POST /introspect HTTP/1.1\r\nHost: {ep.host}:{ep.port}\r\nAuthorization: Basic {basic}\r\n"
                f"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {len(body)}\r\n"
                + ("Connection: close\r\n" if close else "") + "\r\n").encode() + body

    ctx = ssl.create_default_context(cafile=str(cfg.ca_file))
    with socket.create_connection((ep.host, ep.port), timeout=5) as raw, \
            ctx.wrap_socket(raw, server_hostname=ep.host) as tls:
        tls.sendall(request(False) + request(True))  # pipelined on one connection
        data = b""
        while True:
            chunk = tls.recv(65536)
            if not chunk:
                break
            data += chunk
    answers = data.count(b"HTTP/1.1 200")
    assert answers == 2, data[:400]
    assert data.count(b'"active": false') + data.count(b'"active":false') == 2


# -- steps 4-10 ---------------------------------------------------------------------------------------
def test_authorization_page_is_a_login_and_consent_form(net, refnet_helpers):
    _, challenge = refnet_helpers.pkce()
    r = refnet_helpers.session(net).get(net.url("as", "/authorize"), params=auth_params(net, challenge))
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/html")
    for needle in ('name="web_id"', 'name="password"', 'type="hidden" name="transaction"', 'name="consent"',
                   'method="post"'):
        assert needle in r.text
    assert refnet_helpers.transaction(r.text)


def test_code_flow_redirect_and_token_response(net, refnet_helpers):
    h, cfg = refnet_helpers, net.cfg
    user = h.user(net)
    resp, params, verifier = authorize(h, net, user, state="x y/+&=é")  # state echoed byte for byte
    assert resp.status_code == 302
    assert resp.headers["Location"].startswith(cfg.redirect_uri + "?")
    q = location_params(resp)
    assert q["state"] == params["state"]
    assert q["iss"] == cfg.issuer  # RFC 9207
    assert q["code"] and "access_token" not in q

    r = redeem(h, net, q["code"], verifier)
    assert r.status_code == 200, r.text
    assert r.headers["Cache-Control"] == "no-store" and r.headers["Pragma"] == "no-cache"
    body = r.json()
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 300
    assert body["scope"] == "ims-webrtc"
    assert body["wsf_url"] == cfg.wsf_url
    assert "refresh_token" not in body


def test_access_token_is_a_signed_rfc9068_jwt(net, refnet_helpers):
    h, cfg = refnet_helpers, net.cfg
    user = h.user(net)
    token = get_token(h, net, user)
    jwks = h.session(net).get(net.url("as", "/jwks")).json()
    decoded = jwt.decode(token, KeySet.import_key_set(jwks), algorithms=["ES256"])  # raises if bad signature
    assert decoded.header["typ"] == "at+jwt"
    assert decoded.header["kid"] == jwks["keys"][0]["kid"]
    c = decoded.claims
    assert c["iss"] == cfg.issuer and c["sub"] == user["web_id"] and c["aud"] == "wsf.operator.example"
    assert c["client_id"] == cfg.client_id and c["scope"] == "ims-webrtc" and c["jti"]
    assert c["exp"] - c["iat"] == 300 and abs(c["iat"] - time.time()) < 60
    assert not {"impi", "impu", "impus"} & set(c)  # the mapping only comes from introspection
    assert user["impi"] not in token and user["impus"][0] not in json.dumps(c)
    tampered = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    with pytest.raises(BadSignatureError):
        jwt.decode(tampered, KeySet.import_key_set(jwks), algorithms=["ES256"])


def test_token_endpoint_rejects_get_and_wrong_secret(net, refnet_helpers):
    h = refnet_helpers
    assert h.session(net).get(net.url("as", "/token")).status_code == 405
    resp, _, verifier = authorize(h, net, h.user(net))
    r = redeem(h, net, location_params(resp)["code"], verifier, secret="not-the-secret")
    assert r.status_code == 401 and r.json()["error"] == "invalid_client"
    assert r.headers["WWW-Authenticate"].startswith("Basic ")


def test_code_is_single_use(net, refnet_helpers):
    h = refnet_helpers
    resp, _, verifier = authorize(h, net, h.user(net))
    code = location_params(resp)["code"]
    assert redeem(h, net, code, verifier).status_code == 200
    again = redeem(h, net, code, verifier)
    assert again.status_code == 400 and again.json()["error"] == "invalid_grant"


@pytest.mark.parametrize("verifier_kind", ["wrong", "missing"])
def test_pkce_verifier_must_match(net, refnet_helpers, verifier_kind):
    h = refnet_helpers
    resp, _, verifier = authorize(h, net, h.user(net))
    bad = h.pkce()[0] if verifier_kind == "wrong" else None
    r = redeem(h, net, location_params(resp)["code"], bad)
    assert r.status_code == 400 and r.json()["error"] in ("invalid_grant", "invalid_request")
    assert "access_token" not in r.json()


@pytest.mark.parametrize("over", [{"code_challenge_method": "plain"}, {"code_challenge_method": None},
                                  {"code_challenge": None, "code_challenge_method": None}],
                         ids=["plain", "no-method", "no-challenge"])
def test_pkce_s256_required_at_authorization(net, refnet_helpers, over):
    h = refnet_helpers
    _, challenge = h.pkce()
    params = auth_params(net, challenge, **over)
    r = h.session(net).get(net.url("as", "/authorize"), params=params, allow_redirects=False)
    q = location_params(r)  # the redirect URI is valid: the error goes back to the client
    assert r.headers["Location"].startswith(net.cfg.redirect_uri)
    assert q["error"] == "invalid_request" and q["state"] == params["state"] and q["iss"] == net.cfg.issuer
    assert "code" not in q


@pytest.mark.parametrize("redirect_uri", ["https://evil.example/cb", "{reg}?x=1", "{reg}/", "{reg}#f"])
def test_redirect_uri_exact_match(net, refnet_helpers, redirect_uri):
    h = refnet_helpers
    _, challenge = h.pkce()
    params = auth_params(net, challenge, redirect_uri=redirect_uri.format(reg=net.cfg.redirect_uri))
    r = h.session(net).get(net.url("as", "/authorize"), params=params, allow_redirects=False)
    assert r.status_code == 400 and "Location" not in r.headers
    assert "invalid_request" in r.text


def test_token_request_redirect_uri_must_match(net, refnet_helpers):
    h = refnet_helpers
    resp, _, verifier = authorize(h, net, h.user(net))
    r = redeem(h, net, location_params(resp)["code"], verifier, redirect_uri=net.cfg.redirect_uri + "?x=1")
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant"


def test_unknown_client_gets_an_error_page(net, refnet_helpers):
    h = refnet_helpers
    _, challenge = h.pkce()
    r = h.session(net).get(net.url("as", "/authorize"), allow_redirects=False,
                           params=auth_params(net, challenge, client_id="nobody"))
    assert r.status_code == 400 and "Location" not in r.headers


def test_consent_denied_and_wrong_password(net, refnet_helpers):
    h = refnet_helpers
    user = h.user(net)
    resp, params, _ = authorize(h, net, user, consent="deny")
    q = location_params(resp)
    assert q["error"] == "access_denied" and q["state"] == params["state"] and "code" not in q
    resp, _, _ = authorize(h, net, dict(user, password="wrong"))
    assert resp.status_code == 403 and "Location" not in resp.headers
    assert 'name="transaction"' in resp.text  # the form again, same transaction


def test_unknown_transaction_refused(net, refnet_helpers):
    r = refnet_helpers.session(net).post(net.url("as", "/authorize"), allow_redirects=False,
                                         data={"transaction": "forged", "web_id": "alice@web.operator.example",
                                               "password": "alice-pw", "consent": "approve"})
    assert r.status_code == 400 and "Location" not in r.headers


def test_seed_identity_alice(net, refnet_helpers):
    alice = {"web_id": "alice@web.operator.example", "password": "alice-pw"}
    token = get_token(refnet_helpers, net, alice)
    body = introspect(refnet_helpers, net, token).json()
    assert body["impi"] == "alice@ims.example.net"
    assert body["impu"] == ["sip:alice@ims.example.net", "tel:+15550100"]


# -- steps 15-16: introspection -----------------------------------------------------------------------
def test_introspection(net, refnet_helpers):
    h, cfg = refnet_helpers, net.cfg
    user = h.user(net)
    token = get_token(h, net, user)
    r = introspect(h, net, token)
    assert r.status_code == 200 and r.headers["Cache-Control"] == "no-store"
    body = r.json()
    assert body["active"] is True
    assert body["sub"] == user["web_id"] and body["iss"] == cfg.issuer and body["client_id"] == cfg.client_id
    assert body["aud"] == cfg.audience and body["scope"] == "ims-webrtc" and body["token_type"] == "Bearer"
    assert body["exp"] - body["iat"] == 300
    assert body["impi"] == user["impi"] and body["impu"] == user["impus"]

    unauth = introspect(h, net, token, auth=None)
    assert unauth.status_code == 401 and unauth.json()["error"] == "invalid_client"
    assert unauth.headers["WWW-Authenticate"].startswith("Basic ")
    assert "impi" not in unauth.text
    assert introspect(h, net, token, auth="bad").status_code == 401
    assert introspect(h, net, token, auth="app").json() == {"active": False}  # not a resource server
    assert introspect(h, net, "not-a-token").json() == {"active": False}


def test_revoked_token_is_inactive(net, refnet_helpers):
    h, cfg = refnet_helpers, net.cfg
    token = get_token(h, net, h.user(net))
    r = h.session(net).post(net.url("as", "/revoke"), data={"token": token}, auth=(cfg.client_id, cfg.client_secret))
    assert r.status_code == 200
    assert introspect(h, net, token).json() == {"active": False}


def test_expired_code_and_token(refnet_factory, refnet_helpers):
    h = refnet_helpers
    net = refnet_factory(nodes=AS_ONLY, code_lifetime_s=1, token_lifetime_s=2)
    user = h.user(net)
    token = get_token(h, net, user)
    assert introspect(h, net, token).json()["active"] is True
    resp, _, verifier = authorize(h, net, user)
    time.sleep(2.1)
    r = redeem(h, net, location_params(resp)["code"], verifier)
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant"
    assert introspect(h, net, token).json() == {"active": False}


# -- provisioning ---------------------------------------------------------------------------------------
def test_admin_users(net, refnet_helpers):
    h, cfg = refnet_helpers, net.cfg
    s = h.session(net)
    url = net.url("as", "/admin/users")
    user = {"web_id": f"adm{secrets.token_hex(4)}@web.operator.example", "password": "p", "impi": "a@ims.example.net",
            "impus": ["sip:a@ims.example.net"], "tp_username": f"adm{secrets.token_hex(4)}", "tp_password": "q"}
    assert s.post(url, json=user).status_code == 401
    assert s.post(url, json=user, headers={"Authorization": "Bearer wrong"}).status_code == 401
    auth = {"Authorization": f"Bearer {cfg.admin_token}"}
    assert s.post(url, json=dict(user, impus=[]), headers=auth).status_code == 400
    assert s.post(url, data=b"\xff{", headers=dict(auth, **{"Content-Type": "application/json"})).status_code == 400
    assert s.post(url, json=user, headers=auth).status_code == 201
    assert s.post(url, json=user, headers=auth).status_code == 409


# -- robustness -----------------------------------------------------------------------------------------
def test_malformed_and_oversized_requests(net, refnet_helpers):
    s = refnet_helpers.session(net)
    token_url = net.url("as", "/token")
    assert s.post(token_url, data=b"x" * (70 * 1024),
                  headers={"Content-Type": "application/x-www-form-urlencoded"}).status_code == 413
    assert s.post(token_url, data=b"\xff\xfe%%%&&==", auth=("a", "b"),
                  headers={"Content-Type": "application/x-www-form-urlencoded"}).status_code in (400, 401)
    assert s.post(token_url, data={"grant_type": "password", "username": "u", "password": "p"},
                  auth=(net.cfg.client_id, net.cfg.client_secret)).json()["error"] == "unsupported_grant_type"
    assert s.get(net.url("as", "/authorize")).status_code == 400
    assert s.get(net.url("as", "/.well-known/oauth-authorization-server")).status_code == 200


def test_silent_and_non_tls_clients_do_not_block_the_server(net, refnet_helpers):
    ep = net.cfg.endpoints["as"]
    with socket.create_connection((ep.host, ep.port), timeout=5) as silent, \
            socket.create_connection((ep.host, ep.port), timeout=5) as garbage:
        garbage.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")  # plaintext on a TLS port
        t0 = time.monotonic()
        r = refnet_helpers.session(net).get(net.url("as", "/jwks"), timeout=5)
        assert r.status_code == 200 and time.monotonic() - t0 < 3
        assert silent.fileno() >= 0


# -- faults: each AS fault switched on is observable ------------------------------------------------------
def _flow(h, net):
    """The whole client side once, recording what each fault may change."""
    user = h.user(net)
    resp, params, verifier = authorize(h, net, user)
    q = location_params(resp)
    tok = redeem(h, net, q["code"], verifier)
    token = tok.json()["access_token"]
    return {"user": user, "params": params, "redirect": q, "verifier": verifier, "token_response": tok,
            "token": token, "jose": jose_parts(token), "introspection": introspect(h, net, token).json()}


def _code_reusable(h, net, o):
    assert redeem(h, net, o["redirect"]["code"], o["verifier"]).status_code == 200


def _code_any_client(h, net, o):
    # RFC 6749 4.1.3: another client allowed the code grant presents the application's code
    resp, _, verifier = authorize(h, net, o["user"])
    cfg = net.cfg
    r = h.session(net).post(net.url("as", "/token"), auth=(cfg.other_audience_client_id, cfg.other_audience_client_secret),
                            data={"grant_type": "authorization_code", "code": location_params(resp)["code"],
                                  "redirect_uri": cfg.redirect_uri, "code_verifier": verifier})
    assert r.status_code == 200 and "access_token" in r.json(), r.text


def _redirect_uri_loose(h, net, o):
    _, challenge = h.pkce()
    params = auth_params(net, challenge, redirect_uri=net.cfg.redirect_uri + "?x=1")
    assert h.session(net).get(net.url("as", "/authorize"), params=params).status_code == 200


def _pkce_ignored(h, net, o):
    resp, _, _ = authorize(h, net, o["user"])
    assert redeem(h, net, location_params(resp)["code"], h.pkce()[0]).status_code == 200


def _state_dropped(h, net, o):
    assert "state" not in o["redirect"] and o["params"]["state"]


def _alg_none(h, net, o):
    header, _, signature = o["jose"]
    assert header["alg"] == "none" and signature == ""


def _wrong_aud(h, net, o):
    assert o["jose"][1]["aud"] != net.cfg.audience


def _no_exp(h, net, o):
    assert "exp" not in o["jose"][1] and "iat" in o["jose"][1]


def _introspect_unauthenticated(h, net, o):
    r = introspect(h, net, o["token"], auth=None)
    assert r.status_code == 200 and r.json()["active"] is True


def _introspect_wrong_impi(h, net, o):
    assert o["introspection"]["impi"] != o["user"]["impi"]
    assert o["introspection"]["impu"] == o["user"]["impus"]


def _introspect_expired_active(h, net, o):
    # the token's expiry moved into the past in the AS's own database: a genuinely expired token
    with sqlite3.connect(net.cfg.db_path) as db:
        db.execute("UPDATE tokens SET exp = ? WHERE token = ?", (int(time.time()) - 5, o["token"]))
    assert introspect(h, net, o["token"]).json()["active"] is True


def _introspect_any_client(h, net, o):
    # RFC 7662 2.1 / 4: the third-party application's own client learns the IMS identities
    r = introspect(h, net, o["token"], auth="app")
    assert r.status_code == 200 and r.json().get("impi") == o["user"]["impi"], r.text


def _revoke_any_client(h, net, o):
    # RFC 7009 2.1: the WSF's client revokes a token issued to the application
    cfg = net.cfg
    h.session(net).post(net.url("as", "/revoke"), data={"token": o["token"]},
                        auth=(cfg.wsf_client_id, cfg.wsf_client_secret))
    assert introspect(h, net, o["token"]).json()["active"] is False


def _token_in_redirect(h, net, o):
    assert o["redirect"]["access_token"]


AS_FAULT_CHECKS = {
    "as-code-reusable": _code_reusable, "as-code-any-client": _code_any_client,
    "as-redirect-uri-loose": _redirect_uri_loose,
    "as-pkce-ignored": _pkce_ignored, "as-state-dropped": _state_dropped, "as-token-alg-none": _alg_none,
    "as-token-wrong-aud": _wrong_aud, "as-token-no-exp": _no_exp,
    "as-introspect-unauthenticated": _introspect_unauthenticated,
    "as-introspect-wrong-impi": _introspect_wrong_impi, "as-token-in-redirect": _token_in_redirect,
    "as-introspect-expired-active": _introspect_expired_active,
    "as-introspect-any-client": _introspect_any_client, "as-revoke-any-client": _revoke_any_client,
}


def test_every_as_fault_has_a_check():
    assert set(AS_FAULT_CHECKS) == {f.name for f in FAULTS if f.node == "as"}


@pytest.mark.parametrize("fault", sorted(AS_FAULT_CHECKS))
def test_as_fault_is_observable(refnet_factory, refnet_helpers, net, fault):
    h = refnet_helpers
    faulty = refnet_factory(faults=[fault], nodes=AS_ONLY)
    observed = _flow(h, faulty)
    AS_FAULT_CHECKS[fault](h, faulty, observed)
    # ... and the same check fails on the clean network
    with pytest.raises((AssertionError, KeyError)):
        AS_FAULT_CHECKS[fault](h, net, _flow(h, net))


# -- launcher: stop / restart ---------------------------------------------------------------------------
def test_stop_and_restart(tmp_path, refnet_helpers):
    h = refnet_helpers
    cfg = NetworkConfig(str(tmp_path / "net"), endpoints=free_endpoints(prefer_defaults=False))
    with start(cfg, nodes=AS_ONLY) as net:
        ready = json.loads(net.ready_file.read_text())
        assert ready["nodes"]["as"]["port"] == cfg.endpoints["as"].port
        assert ready["ca_file"] == str(cfg.ca_file) and "as" in ready["keylogs"]
        old_pid = ready["nodes"]["as"]["pid"]
        token = get_token(h, net, {"web_id": "bob@web.operator.example", "password": "bob-pw"})
        kid = h.session(net).get(net.url("as", "/jwks")).json()["keys"][0]["kid"]

        net.restart("as")
        ready = json.loads(net.ready_file.read_text())
        assert ready["nodes"]["as"]["pid"] != old_pid
        assert h.session(net).get(net.url("as", "/jwks")).json()["keys"][0]["kid"] == kid  # same key
        assert introspect(h, net, token).json()["active"] is True  # same database

        pid = net.procs["as"].pid
        net.stop("as")
        assert "as" not in json.loads(net.ready_file.read_text())["nodes"]
        with pytest.raises(OSError):
            socket.create_connection((cfg.endpoints["as"].host, cfg.endpoints["as"].port), timeout=2).close()
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
        net.start_nodes(["as"])
        pid = net.procs["as"].pid
    assert not net.ready_file.exists()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
