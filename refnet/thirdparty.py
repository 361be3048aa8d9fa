"""3rdWWS: the third-party web server, a confidential OAuth 2.0 client of the AS (BINDING.md steps
1-3, 8-12, 22), on aiohttp, HTTPS and WSS on one port.

- `POST /login` (its own accounts) -> session cookie; `GET /webrtc` -> authorization request with
  state and PKCE S256 (RFC 6749 4.1.1, RFC 7636 4.2); `GET /oauth/callback` checks state and `iss`
  (RFC 9207 2.4), redeems the code with client_secret_basic and keeps the token server-side.
- relay mode: `wss://.../sip` (RFC 7118), one WSS to the WSF per UE connection; a REGISTER from
  the UE gets `Authorization: Bearer <token>` (RFC 8898 2.1), everything else passes unchanged.
- direct mode: `GET /webrtc/session` hands `{wsf_url, access_token}` to the UE instead.

Its accounts live in the operator's SQLite file (see store.py: a reference-network shortcut).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import html
import logging
import secrets
import signal
import time
import weakref
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, urlencode

import aiohttp
from aiohttp import WSCloseCode, WSMsgType, web

from . import pki, sip, wire_style
from .config import NetworkConfig
from .faults import ActiveFaults
from .store import Store

log = logging.getLogger("refnet.3rdwws")

MAX_BODY = 64 * 1024
SESSION_TTL_S = 3600
MAX_SESSIONS = 10_000
COOKIE = "sid"


@dataclass
class Session:
    username: str
    web_id: str
    created: float
    state: str | None = None
    verifier: str | None = None
    token: str | None = None
    wsf_url: str | None = None


def pkce_pair() -> tuple[str, str]:
    # RFC 7636 4.1: code-verifier = 43*128unreserved; 4.2: S256 = BASE64URL(SHA256(ASCII(verifier)))
    verifier = secrets.token_urlsafe(48)  # 64 characters from the unreserved set
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


def bearer_credentials(token: str, syntax: str) -> str:
    # RFC 8898 2.1 / RFC 6750 2.1: credentials = "Bearer" 1*SP b64token
    # TS 24.371 A.3.2 writes it as an auth-param instead: Bearer access_token="<token>"
    return f'Bearer access_token="{token}"' if syntax == "ts24371" else f"Bearer {token}"


def add_bearer(data: bytes, token: str, syntax: str) -> bytes | None:
    """A REGISTER gets the Bearer credential; other messages pass unchanged; None = not SIP."""
    try:
        msg = sip.parse(data)
    except ValueError as exc:
        log.info("discarding a malformed SIP message from the UE: %s", exc)
        return None
    if not isinstance(msg, sip.Request) or msg.method != "REGISTER":
        return data
    msg.headers.set("Authorization", bearer_credentials(token, syntax))
    out = msg.serialize()
    return out.encode() if isinstance(out, str) else out


PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title></head>
<body><h1>{title}</h1>{body}</body></html>
"""

LOGIN_FORM = """<form method="post" action="/login">
<p><label>Username <input name="username" autocomplete="username"></label></p>
<p><label>Password <input type="password" name="password" autocomplete="current-password"></label></p>
<p><button type="submit">Sign in</button></p></form>"""

# The WebRTC application of step 11: a real JsSIP client (refnet/webapp/app.js) and the JsSIP
# library bundled from node_modules by `make node-deps` (esbuild; not committed).
WEBAPP_DIR = Path(__file__).resolve().parent / "webapp"
JSSIP_BUNDLE = Path(__file__).resolve().parent.parent / "build" / "jssip.js"


def _page(title: str, body: str, status: int = 200) -> web.Response:
    resp = web.Response(text=PAGE.format(title=html.escape(title), body=body), status=status,
                        content_type="text/html")
    resp.headers["Cache-Control"] = "no-store"
    return resp


class ThirdParty:
    def __init__(self, cfg: NetworkConfig, faults: ActiveFaults, store: Store):
        self.cfg, self.faults, self.store = cfg, faults, store
        self.sessions: dict[str, Session] = {}
        self.client_ctx = pki.client_ssl_context(cfg, "3rdwws")  # 3rdWWS->AS and ->WSF legs, key-logged
        self.http: aiohttp.ClientSession | None = None
        self.websockets: weakref.WeakSet[web.WebSocketResponse] = weakref.WeakSet()

    # -- application -----------------------------------------------------------------------------
    def app(self) -> web.Application:
        app = web.Application(client_max_size=MAX_BODY)
        app.add_routes([
            web.get("/", self.index),
            web.post("/login", self.login),
            web.get("/webrtc", self.webrtc),
            web.get("/oauth/callback", self.callback),
            web.get("/webrtc/app", self.webrtc_app),
            web.get("/webrtc/app.js", self.app_js),
            web.get("/webrtc/jssip.js", self.jssip_js),
            web.get("/webrtc/session", self.webrtc_session),
            web.get("/sip", self.sip_websocket),
        ])
        app.on_startup.append(self._startup)
        app.on_shutdown.append(self._shutdown)
        app.on_cleanup.append(self._cleanup)
        return app

    async def _startup(self, app):
        # Client legs (steps 9 and 13) leave from the node's own address, so a capture attributes
        # them to the 3rdWWS and not to the UE on 127.0.0.1.
        connector = aiohttp.TCPConnector(ssl=self.client_ctx, local_addr=(self.cfg.endpoints["3rdwws"].host, 0))
        self.http = aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=10))

    async def _shutdown(self, app):
        for ws in list(self.websockets):
            await ws.close(code=WSCloseCode.GOING_AWAY, message=b"server shutdown")

    async def _cleanup(self, app):
        await self.http.close()

    # -- sessions --------------------------------------------------------------------------------
    def session(self, request: web.Request) -> Session | None:
        sess = self.sessions.get(request.cookies.get(COOKIE, ""))
        if sess is not None and time.time() - sess.created > SESSION_TTL_S:
            return None
        return sess

    def new_session(self, username: str, web_id: str) -> str:
        if len(self.sessions) >= MAX_SESSIONS:  # bounded: forget the oldest
            self.sessions.pop(next(iter(self.sessions)))
        sid = secrets.token_urlsafe(32)  # a new id at each login (no session fixation)
        self.sessions[sid] = Session(username, web_id, time.time())
        return sid

    @staticmethod
    def need_login() -> web.Response:
        return _page("Sign in first", '<p><a href="/">Sign in</a> to use WebRTC.</p>', 403)

    # -- step 1: login ---------------------------------------------------------------------------
    async def index(self, request):
        return _page("Third-party WebRTC application", LOGIN_FORM)

    async def login(self, request):
        try:
            form = await request.post()
        except ValueError:
            return _page("Bad request", "<p>malformed form</p>", 400)
        username, password = form.get("username"), form.get("password")
        if not isinstance(username, str) or not isinstance(password, str) or not username:
            return _page("Bad request", "<p>username and password are required</p>", 400)
        account = await asyncio.get_running_loop().run_in_executor(
            None, self.store.check_tp_account, username, password)
        if account is None:
            return _page("Sign-in failed", "<p>Unknown username or wrong password.</p>" + LOGIN_FORM, 403)
        resp = web.HTTPSeeOther("/webrtc")
        resp.set_cookie(COOKIE, self.new_session(username, account["web_id"]), httponly=True, secure=True,
                        samesite="Lax", path="/")
        return resp

    # -- steps 2-3: authorization request ---------------------------------------------------------
    async def webrtc(self, request):
        sess = self.session(request)
        if sess is None:
            return self.need_login()
        sess.state = secrets.token_urlsafe(32)  # RFC 6749 10.12: bound to this session
        params = {"response_type": "code", "client_id": self.cfg.client_id, "redirect_uri": self.cfg.redirect_uri,
                  "scope": self.cfg.scope, "state": sess.state}
        if self.faults.on("3rdwws-no-pkce"):
            sess.verifier = None
        else:
            sess.verifier, challenge = pkce_pair()
            params.update(code_challenge=challenge, code_challenge_method="S256")
        raise web.HTTPFound(f"{self.cfg.url('as', '/authorize')}?{urlencode(params)}")

    # -- steps 8-11: callback, code redemption ----------------------------------------------------
    async def callback(self, request):
        sess = self.session(request)
        if sess is None:
            return self.need_login()
        q = request.query
        expected, sess.state = sess.state, None  # a state value is good for one response only
        if not self.faults.on("3rdwws-state-unchecked"):
            state = q.get("state", "")
            if expected is None or not hmac.compare_digest(state.encode(), expected.encode()):
                return _page("Authorization failed", "<p>state mismatch (RFC 6749 10.12)</p>", 400)
        # RFC 9207 2.4: the AS advertises the iss parameter, so it must be present and be the issuer
        if q.get("iss") != self.cfg.issuer and not self.faults.on("3rdwws-iss-unchecked"):
            return _page("Authorization failed", "<p>missing or wrong iss (RFC 9207 2.4)</p>", 400)
        if "error" in q and self.faults.on("3rdwws-ignore-authz-error"):
            raise web.HTTPSeeOther("/webrtc/app")  # fault: as if the user had consented
        if "error" in q:
            return _page("Authorization failed", f"<p>{html.escape(q.get('error', ''))}: "
                                                 f"{html.escape(q.get('error_description', ''))}</p>", 400)
        code = q.get("code")
        if not code:
            return _page("Authorization failed", "<p>no code</p>", 400)
        verifier, sess.verifier = sess.verifier, None
        try:
            status, body = await self.redeem(code, verifier)
        except (TimeoutError, aiohttp.ClientError, ValueError) as exc:
            log.warning("token request failed: %s", exc)
            if self.faults.on("3rdwws-token-error-ignored"):
                raise web.HTTPSeeOther("/webrtc/app") from None  # fault: opens without a token
            return _page("Token request failed", f"<p>{html.escape(str(exc))}</p>", 502)
        if status != 200 or not isinstance(body, dict) or not isinstance(body.get("access_token"), str):
            if self.faults.on("3rdwws-token-error-ignored"):
                raise web.HTTPSeeOther("/webrtc/app")  # fault: opens without a token
            return _page("Token request failed", f"<p>AS answered {status}: {html.escape(str(body))}</p>", 502)
        sess.token = body["access_token"]
        sess.wsf_url = body.get("wsf_url") if isinstance(body.get("wsf_url"), str) else self.cfg.wsf_url
        raise web.HTTPSeeOther("/webrtc/app")

    async def redeem(self, code: str, verifier: str | None) -> tuple[int, object]:
        """Steps 9-10: RFC 6749 4.1.3 with client_secret_basic (2.3.1: id and secret form-encoded)."""
        data = {"grant_type": "authorization_code", "code": code, "redirect_uri": self.cfg.redirect_uri}
        if verifier:
            data["code_verifier"] = verifier
        auth = aiohttp.BasicAuth(quote(self.cfg.client_id, safe=""), quote(self.cfg.client_secret, safe=""))
        async with self.http.post(self.cfg.url("as", "/token"), data=data, auth=auth) as resp:
            try:
                body = await resp.json(content_type=None)
            except ValueError:
                body = (await resp.text())[:200]
            return resp.status, body

    async def webrtc_app(self, request):
        sess = self.session(request)
        if sess is None:
            return self.need_login()
        if sess.token is None:
            raise web.HTTPSeeOther("/webrtc")
        body = (f'<p>Signed in as {html.escape(sess.username)}.</p><p id="status">starting</p>'
                '<p id="identities"></p>'
                '<script src="/webrtc/jssip.js"></script><script src="/webrtc/app.js"></script>')
        data = {"signalling": self.cfg.options.signalling, "web-id": sess.web_id,
                "home-domain": self.cfg.home_domain, "bearer-syntax": self.cfg.options.bearer_syntax}
        attrs = " ".join(f'data-{k}="{html.escape(v)}"' for k, v in data.items())
        text = PAGE.format(title="WebRTC", body=body).replace("<body>", f"<body {attrs}>")
        return web.Response(text=text, content_type="text/html", headers={"Cache-Control": "no-store"})

    async def app_js(self, request):
        return web.FileResponse(WEBAPP_DIR / "app.js", headers={"Content-Type": "application/javascript"})

    async def jssip_js(self, request):
        if not JSSIP_BUNDLE.is_file():
            return web.Response(status=503, content_type="application/javascript",
                                text=f"// {JSSIP_BUNDLE} is missing: run `make node-deps` (bundles the npm package jssip)")
        return web.FileResponse(JSSIP_BUNDLE, headers={"Content-Type": "application/javascript"})

    async def webrtc_session(self, request):
        if self.cfg.options.signalling != "direct":  # relay: the token never reaches the browser
            raise web.HTTPNotFound()
        sess = self.session(request)
        if sess is None or sess.token is None:
            return web.json_response({"error": "login_required"}, status=403)
        return web.json_response({"wsf_url": sess.wsf_url, "access_token": sess.token},
                                 headers={"Cache-Control": "no-store", "Pragma": "no-cache"})

    # -- steps 12-14, 21-22: SIP over WebSocket relay ---------------------------------------------
    async def sip_websocket(self, request):
        if self.cfg.options.signalling != "relay":
            raise web.HTTPNotFound()
        sess = self.session(request)
        if sess is None or sess.token is None:
            return self.need_login()
        refused = self.foreign_origin(request)
        if refused is not None:
            return refused
        ws = web.WebSocketResponse(protocols=("sip",), max_msg_size=wire_style.max_message(), autoping=True)
        ready = ws.can_prepare(request)
        if not ready.ok:
            return _page("Bad request", "<p>WebSocket handshake expected</p>", 400)
        if ready.protocol != "sip":  # RFC 7118 4: the sip subprotocol is mandatory
            return _page("Bad request", "<p>Sec-WebSocket-Protocol must offer sip (RFC 7118)</p>", 400)
        # Step 13 before accepting the UE (step 12): a failure is an HTTP error, not a dead
        # socket. Variation 3rdwws-wsf-after-accept takes the other order, which is as conformant.
        accept_first = self.cfg.varies("3rdwws-wsf-after-accept")
        if accept_first:
            await ws.prepare(request)
        try:
            upstream = await self.http.ws_connect(sess.wsf_url, protocols=("sip",),
                                                  max_msg_size=wire_style.max_message(),
                                                  origin=self.cfg.url("3rdwws"),  # our page's origin
                                                  timeout=aiohttp.ClientWSTimeout(ws_receive=None, ws_close=5.0))
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            log.warning("WSS to the WSF %s failed: %s", sess.wsf_url, exc)
            if accept_first:
                await ws.close(code=WSCloseCode.TRY_AGAIN_LATER, message=b"the WSF is unreachable")
                return ws
            return _page("Bad gateway", "<p>the WSF is unreachable</p>", 502)
        if upstream.protocol != "sip":
            log.warning("the WSF did not negotiate the sip subprotocol (RFC 7118 4)")
        if not accept_first:
            await ws.prepare(request)
        self.websockets.add(ws)
        try:
            await self.relay(ws, upstream, sess)
        finally:
            await upstream.close()
            await ws.close()
        return ws

    def foreign_origin(self, request):
        """RFC 6455 10.2: the session cookie goes with any page's handshake, so only pages of this
        application may open the SIP WebSocket (cross-site WebSocket hijacking). A handshake without
        Origin comes from no browser page and is judged by its cookie alone."""
        origin = request.headers.get("Origin")
        if origin is None or self.faults.on("3rdwws-accept-foreign-origin"):
            return None
        if origin.strip().rstrip("/").lower() in self.cfg.web_origins:
            return None
        return _page("Forbidden", "<p>this Origin may not open the SIP WebSocket (RFC 6455 10.2)</p>", 403)

    async def relay(self, ue: web.WebSocketResponse, wsf: aiohttp.ClientWebSocketResponse, sess: Session):
        syntax = self.cfg.options.bearer_syntax

        async def ue_to_wsf():
            async for msg in ue:
                if msg.type not in (WSMsgType.TEXT, WSMsgType.BINARY):
                    break
                data = msg.data.encode() if msg.type == WSMsgType.TEXT else msg.data
                out = add_bearer(data, sess.token, syntax)
                if out is None:
                    continue  # RFC 3261 18.3: a malformed message is discarded
                if msg.type == WSMsgType.TEXT:
                    await wsf.send_str(out.decode())
                else:
                    await wsf.send_bytes(out)
            await wsf.close(code=_relayable(ue.close_code))

        async def wsf_to_ue():  # responses and requests from the WSF pass unchanged (step 21-22)
            async for msg in wsf:
                if msg.type == WSMsgType.TEXT:
                    await ue.send_str(msg.data)
                elif msg.type == WSMsgType.BINARY:
                    await ue.send_bytes(msg.data)
                else:
                    break
            await ue.close(code=_relayable(wsf.close_code))

        tasks = [asyncio.create_task(ue_to_wsf()), asyncio.create_task(wsf_to_ue())]
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)


def _relayable(code: int | None) -> int:
    # RFC 6455 7.4.1: 1005/1006/1015 must never be sent in a Close frame
    return code if code and 1000 <= code < 5000 and code not in (1005, 1006, 1015) else WSCloseCode.OK


async def _serve(cfg: NetworkConfig, faults: ActiveFaults) -> None:
    ep = cfg.endpoints["3rdwws"]
    store = Store(cfg.db_path)
    store.init_schema()  # the launcher (or the AS) seeds it; this node only reads its accounts
    tp = ThirdParty(cfg, faults, store)
    runner = web.AppRunner(tp.app(), shutdown_timeout=2.0)
    await runner.setup()
    site = web.TCPSite(runner, ep.host, ep.port, ssl_context=pki.server_ssl_context(cfg, "3rdwws"))
    await site.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print(f"listening 3rdwws {ep.host}:{ep.port}", flush=True)
    await stop.wait()
    await runner.cleanup()


def serve(cfg: NetworkConfig, faults: ActiveFaults) -> None:
    asyncio.run(_serve(cfg, faults))
