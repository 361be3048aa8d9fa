"""The 3rdWWS (third-party WebRTC web server) as the harness plays it (BINDING.md steps 1-3,
8-12 and 22).

Its own accounts (the fixtures' `tp_username`/`tp_password`) sign in at `POST /login` (303 and a
session cookie, HttpOnly and Secure); `GET /webrtc` sends the browser to the AS with an
authorization request (PKCE S256, RFC 7636; `state` bound to the session, RFC 6749 10.12);
`GET /oauth/callback` checks `state` and the RFC 9207 `iss` before redeeming the code at the
AS's token endpoint with HTTP Basic client authentication. The access token stays server-side:
in relay mode the SIP WebSocket `/sip` relays to the WSF (`wsf_url` of the token response) with
the Bearer credential added to each REGISTER; in direct mode `GET /webrtc/session` hands the UE
the token and the WSF URL.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import html
import secrets
from dataclasses import dataclass
from urllib.parse import urlencode

import aiohttp
from aiohttp import WSMsgType, web

from conformance.codec import sip
from conformance.peers import pki
from conformance.peers.token_check import basic_auth

COOKIE = "tp_session"
CALL_TIMEOUT_S = 10.0
PAGE = "<!doctype html><html><head><title>{title}</title></head><body><h1>{title}</h1>{body}</body></html>"
LOGIN_FORM = ('<form method="post" action="/login"><input name="username" autocomplete="username">'
              '<input type="password" name="password"><button type="submit">Sign in</button></form>')


@dataclass
class Session:
    username: str
    web_id: str
    state: str | None = None
    verifier: str | None = None
    token: str | None = None
    wsf_url: str | None = None


def pkce_pair() -> tuple[str, str]:
    """RFC 7636 4.1-4.2: a 43-character verifier and its S256 challenge."""
    verifier = secrets.token_urlsafe(32)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


def with_bearer(data: bytes, token: str, syntax: str) -> bytes | None:
    """The UE's REGISTER with the session's Bearer credential (RFC 8898 2.1 or TS 24.371 A.3.2);
    other messages pass unchanged; None for a message that does not parse."""
    try:
        msg = sip.parse(data)
    except sip.SipParseError:
        return None
    if not isinstance(msg, sip.Request) or msg.method != "REGISTER":
        return data
    msg.headers.remove("Authorization")
    msg.headers.add("Authorization", f'Bearer access_token="{token}"' if syntax == "ts24371" else f"Bearer {token}")
    return msg.serialize()


def _page(title: str, body: str, status: int = 200) -> web.Response:
    return web.Response(text=PAGE.format(title=html.escape(title), body=body), status=status,
                        content_type="text/html", headers={"Cache-Control": "no-store"})


class EmulatedThirdParty:
    def __init__(self, peers, node: dict):
        self.peers, self.node = peers, node
        pixit, self.pics = peers.profile.pixit, peers.profile.pics
        self.oauth = pixit.get("oauth") or {}
        self.as_node = pixit["nodes"]["as"]
        self.default_wsf_url = (pixit["nodes"].get("wsf") or {}).get("url")
        self.sessions: dict[str, Session] = {}
        self._runner: web.AppRunner | None = None
        self._http: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        app = web.Application(client_max_size=64 * 1024)
        app.add_routes([web.get("/", self.index), web.post("/login", self.login), web.get("/webrtc", self.webrtc),
                        web.get("/oauth/callback", self.callback), web.get("/webrtc/app", self.webrtc_app),
                        web.get("/webrtc/session", self.webrtc_session), web.get("/sip", self.sip_websocket)])
        ctx, _ = pki.server_context(self.peers.profile, self.peers.workdir, self.node, self.peers.keylog)
        # its calls leave from the 3rdWWS's address, so a capture attributes steps 9 and 13 to it
        self._http = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(ssl=pki.client_context(self.peers.profile, self.peers.workdir),
                                           local_addr=(self.node["address"], 0)),
            timeout=aiohttp.ClientTimeout(total=CALL_TIMEOUT_S))
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, self.node["address"], int(self.node["port"]), ssl_context=ctx).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        if self._http is not None:
            await self._http.close()

    def session(self, request: web.Request) -> Session | None:
        return self.sessions.get(request.cookies.get(COOKIE, ""))

    def account(self, username: str, password: str) -> dict | None:
        for user in self.peers.users.by_web_id.values():
            if user.get("tp_username") == username and hmac.compare_digest(
                    str(user.get("tp_password", "")).encode(), password.encode()):
                return user
        return None

    async def index(self, request):
        return _page("Third-party WebRTC application (emulated)", LOGIN_FORM)

    async def login(self, request):  # step 1
        form = await request.post()
        user = self.account(str(form.get("username", "")), str(form.get("password", "")))
        if user is None:
            return _page("Sign-in failed", "<p>Unknown username or wrong password.</p>" + LOGIN_FORM, 403)
        sid = secrets.token_urlsafe(32)
        self.sessions[sid] = Session(str(form["username"]), user["web_id"])
        resp = web.Response(status=303, headers={"Location": "/webrtc"})
        resp.set_cookie(COOKIE, sid, httponly=True, secure=True, samesite="Lax", path="/")
        return resp

    async def webrtc(self, request):  # steps 2-3
        sess = self.session(request)
        if sess is None:
            return _page("Sign in first", '<p><a href="/">Sign in</a></p>', 403)
        sess.state = secrets.token_urlsafe(32)
        sess.verifier, challenge = pkce_pair()
        params = {"response_type": "code", "client_id": self.oauth.get("client_id"),
                  "redirect_uri": self.oauth.get("redirect_uri"), "scope": self.oauth.get("scope"),
                  "state": sess.state, "code_challenge": challenge, "code_challenge_method": "S256"}
        raise web.HTTPFound(f"{self.as_node['base_url']}/authorize?{urlencode(params)}")

    async def callback(self, request):  # steps 8-11
        sess = self.session(request)
        if sess is None:
            return _page("Sign in first", '<p><a href="/">Sign in</a></p>', 403)
        q = request.query
        expected, sess.state = sess.state, None  # a state value is good for one response only
        if expected is None or not hmac.compare_digest(q.get("state", "").encode(), expected.encode()):
            return _page("Authorization failed", "<p>state mismatch (RFC 6749 10.12)</p>", 400)
        if q.get("iss") != self.as_node.get("issuer"):  # RFC 9207 2.4: mix-up defence
            return _page("Authorization failed", "<p>missing or wrong iss (RFC 9207 2.4)</p>", 400)
        if "error" in q or not q.get("code"):
            return _page("Authorization failed", f"<p>{html.escape(q.get('error', 'no code'))}</p>", 400)
        verifier, sess.verifier = sess.verifier, None
        data = {"grant_type": "authorization_code", "code": q["code"],
                "redirect_uri": self.oauth.get("redirect_uri"), "code_verifier": verifier}
        auth = basic_auth(self.oauth.get("client_id", ""), self.oauth.get("client_secret", ""))
        try:
            async with self._http.post(f"{self.as_node['base_url']}/token", data=data,
                                       headers={"Authorization": auth}) as resp:
                status, body = resp.status, await resp.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            return _page("Token request failed", f"<p>{html.escape(type(exc).__name__)}</p>", 502)
        if status != 200 or not isinstance(body, dict) or not isinstance(body.get("access_token"), str):
            return _page("Token request failed", f"<p>AS answered {status}</p>", 502)
        sess.token = body["access_token"]
        sess.wsf_url = body["wsf_url"] if isinstance(body.get("wsf_url"), str) else self.default_wsf_url
        raise web.HTTPSeeOther("/webrtc/app")

    async def webrtc_app(self, request):
        sess = self.session(request)
        if sess is None or sess.token is None:
            return _page("Sign in first", '<p><a href="/">Sign in</a></p>', 403)
        return _page("WebRTC", f"<p>Signed in as {html.escape(sess.username)}.</p>")

    async def webrtc_session(self, request):  # direct mode: the UE opens the WSS itself
        if self.pics.get("signalling.path", "relay") != "direct":
            raise web.HTTPNotFound()  # relay: the token never reaches the browser
        sess = self.session(request)
        if sess is None or sess.token is None:
            return web.json_response({"error": "login_required"}, status=403)
        return web.json_response({"wsf_url": sess.wsf_url, "access_token": sess.token},
                                 headers={"Cache-Control": "no-store", "Pragma": "no-cache"})

    async def sip_websocket(self, request):  # steps 12-14, 21-22 (relay)
        if self.pics.get("signalling.path", "relay") != "relay":
            raise web.HTTPNotFound()
        sess = self.session(request)
        if sess is None or sess.token is None:
            return _page("Sign in first", "<p>no session</p>", 401)
        ue = web.WebSocketResponse(protocols=("sip",), max_msg_size=65536)
        ready = ue.can_prepare(request)
        if not ready.ok or ready.protocol != "sip":  # RFC 7118 4: the sip subprotocol is mandatory
            return _page("Bad request", "<p>a WebSocket offering sip is expected</p>", 400)
        try:  # step 13 before accepting the UE: a failure is an HTTP error, not a dead socket
            wsf = await self._http.ws_connect(sess.wsf_url, protocols=("sip",), max_msg_size=65536,
                                              origin=self.node.get("base_url"))
        except (aiohttp.ClientError, TimeoutError, OSError):
            return _page("Bad gateway", "<p>the WSF is unreachable</p>", 502)
        await ue.prepare(request)
        try:
            await _relay(ue, wsf, sess.token, str(self.pics.get("sip.bearer_syntax", "rfc8898")))
        finally:
            await wsf.close()
            await ue.close()
        return ue


async def _relay(ue, wsf, token: str, syntax: str) -> None:
    async def ue_to_wsf():
        async for msg in ue:
            if msg.type not in (WSMsgType.TEXT, WSMsgType.BINARY):
                break
            data = msg.data.encode() if msg.type == WSMsgType.TEXT else msg.data
            out = with_bearer(data, token, syntax)
            if out is not None:  # RFC 3261 18.3: a malformed message is discarded
                await wsf.send_str(out.decode("utf-8", "replace"))

    async def wsf_to_ue():  # responses pass unchanged (steps 21-22)
        async for msg in wsf:
            if msg.type == WSMsgType.TEXT:
                await ue.send_str(msg.data)
            elif msg.type == WSMsgType.BINARY:
                await ue.send_bytes(msg.data)
            else:
                break

    tasks = [asyncio.create_task(ue_to_wsf()), asyncio.create_task(wsf_to_ue())]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
