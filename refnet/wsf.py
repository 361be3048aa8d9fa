"""WSF: the WebRTC Signalling Function (BINDING.md steps 13-17 and 20-21).

UE side: SIP over secure WebSocket (RFC 7118) on the `websockets` library: path /sip, subprotocol
`sip` required, one SIP message per WebSocket message (text or binary), 64 KiB at most (1009).
Core side: SIP over UDP or TCP to the P-CSCF (refnet.sip_transport).

On REGISTER the WSF verifies the access token (RFC 8898 / TS 24.371 Bearer credentials) by RFC 7662
introspection at the AS (steps 15-16) or locally against the AS's JWKS (RFC 9068), maps it to the
IMS identities, and forwards (step 17) with To/From set to the default IMPU, the Bearer credential
replaced by a TS 24.229 trusted-node Digest (`integrity-protected="auth-done"`), its own Via, and
a Path naming the WebSocket flow (RFC 5626 / RFC 7118 5). Responses are relayed back to the
flow the request came from (step 21) with the WSF's Via removed and nothing else changed.

Both Bearer syntaxes are accepted whatever the profile's sip.bearer_syntax says: a receiver that
understands both is conformant to either, and the harness only checks what the sender sends.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import secrets
import time
from dataclasses import dataclass, field
from http import HTTPStatus
from urllib.parse import urlsplit

import aiohttp
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from websockets.asyncio.server import ServerConnection
from websockets.asyncio.server import serve as ws_serve
from websockets.exceptions import ConnectionClosed, NegotiationError

from . import pki, wire_style
from .config import NetworkConfig
from .faults import ActiveFaults
from .lifecycle import FlowRegistration, deregistration, origin_refusal, record_success
from .sip import (
    HeaderError,
    Request,
    Response,
    SipUri,
    UriError,
    parse_credentials,
    parse_name_addr,
    parse_uri,
    parse_via,
    uri_equal,
)
from .sip_transport import (
    SipTransport,
    Source,
    announce,
    check,
    make_response,
    run_until_signal,
)
from .store import Store
from .wsf_routing import FlowRouter

log = logging.getLogger("refnet.wsf")

HTTP_TIMEOUT_S = 5.0
TIMER_T1, TIMER_T2, TIMER_F = 0.5, 4.0, 32.0  # RFC 3261 17.1.2.2 (non-INVITE client transaction)
JWKS_REFRESH_S = 10.0  # an unknown kid refetches the JWKS at most this often
MAX_INFLIGHT_PER_FLOW = 64
JWT_ALGORITHMS = ["ES256", "ES384", "ES512", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "EdDSA"]
AT_JWT_TYPES = {"at+jwt", "application/at+jwt"}  # RFC 9068 2.1
EXP_LEEWAY_S = 3  # variation wsf-exp-leeway: clock skew accepted past exp (RFC 7519 4.1.4)


class TokenRejected(Exception):
    """The token is not valid (RFC 6750 3.1 invalid_token)."""


class VerifierUnavailable(Exception):
    """The token could not be checked (AS unreachable or answering an error)."""


@dataclass
class Identity:
    sub: str | None
    impi: str | None
    impus: list[str]


# -- token verification ------------------------------------------------------------------------

def bearer_token(req: Request) -> tuple[bool, str | None]:
    """(a Bearer credential is present, its token or None when malformed).

    credentials = "Bearer" 1*SP token68               (RFC 8898 2.1, RFC 6750 2.1)
    credentials = "Bearer" LWS access_token="<token>"  (TS 24.371 A.3.2)"""
    for value in req.headers.get_all("Authorization"):
        scheme = value.strip().split(None, 1)[0] if value.strip() else ""
        if scheme.lower() != "bearer":
            continue
        try:
            cred = parse_credentials(value)
        except HeaderError:
            return True, None
        token = cred.token68 or cred.params.get("access_token")
        return True, (token or None)
    return False, None


def unverified_claims(token: str) -> dict:
    """The JWT payload, unchecked (fault wsf-skip-verification only)."""
    try:
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        return claims if isinstance(claims, dict) else {}
    except (IndexError, ValueError):
        return {}


class Verifier:
    """Steps 15-16 (introspection) or the local RFC 9068 check; one HTTP session, reused."""

    def __init__(self, cfg: NetworkConfig, faults: ActiveFaults, store: Store):
        self.cfg, self.faults, self.store = cfg, faults, store
        self._session: aiohttp.ClientSession | None = None
        self._jwks: KeySet | None = None
        self._jwks_at = 0.0

    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            connector = aiohttp.TCPConnector(
                ssl=pki.client_ssl_context(self.cfg, "wsf"),  # writes the WSF's NSS key log
                local_addr=(self.cfg.endpoints["wsf"].host, 0), limit=32)
            self._session = aiohttp.ClientSession(
                connector=connector, timeout=aiohttp.ClientTimeout(total=HTTP_TIMEOUT_S))
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def verify(self, token: str) -> Identity:
        if self.cfg.options.verify == "local_jwt":
            return await self.local_jwt(token)
        return await self.introspect(token)

    async def introspect(self, token: str) -> Identity:
        """RFC 7662 2.1: POST token + token_type_hint, the WSF authenticated with HTTP Basic."""
        cfg = self.cfg
        try:
            auth = None if self.faults.on("wsf-introspect-no-auth") else aiohttp.BasicAuth(
                cfg.wsf_client_id, cfg.wsf_client_secret)
            async with self.session().post(
                    cfg.issuer + "/introspect", data={"token": token, "token_type_hint": "access_token"},
                    auth=auth) as resp:
                if resp.status != 200:
                    raise VerifierUnavailable(f"introspection answered HTTP {resp.status}")
                body = await resp.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            raise VerifierUnavailable(f"introspection failed: {exc!r}") from None
        if not isinstance(body, dict):
            raise VerifierUnavailable("introspection answer is not a JSON object")
        if body.get("active") is not True and not self.faults.on("wsf-accept-inactive"):
            raise TokenRejected("token not active at introspection")
        aud = body.get("aud")
        if (aud is not None and cfg.audience not in (aud if isinstance(aud, list) else [aud])
                and not self.faults.on("wsf-ignore-audience")):
            raise TokenRejected(f"token audience {aud!r} is not {cfg.audience}")
        impus = body.get("impu") or []
        return Identity(body.get("sub"), body.get("impi"), list(impus) if isinstance(impus, list) else [impus])

    async def _jwks_uri(self) -> str:
        """RFC 8414 3: the AS metadata names the JWKS; the path is the AS's choice."""
        async with self.session().get(self.cfg.issuer + "/.well-known/oauth-authorization-server") as resp:
            if resp.status != 200:
                raise VerifierUnavailable(f"AS metadata answered HTTP {resp.status}")
            uri = (await resp.json(content_type=None)).get("jwks_uri")
        if not isinstance(uri, str) or not uri.startswith("https://"):
            raise VerifierUnavailable(f"AS metadata has no usable jwks_uri: {uri!r}")
        return uri

    async def _keyset(self, refresh: bool = False) -> KeySet:
        now = time.monotonic()
        if self._jwks is None or (refresh and now - self._jwks_at > JWKS_REFRESH_S):
            try:
                async with self.session().get(await self._jwks_uri()) as resp:
                    if resp.status != 200:
                        raise VerifierUnavailable(f"JWKS answered HTTP {resp.status}")
                    self._jwks = KeySet.import_key_set(await resp.json(content_type=None))
                    self._jwks_at = now
            except (aiohttp.ClientError, TimeoutError, ValueError, JoseError) as exc:
                raise VerifierUnavailable(f"JWKS fetch failed: {exc!r}") from None
        return self._jwks

    async def local_jwt(self, token: str) -> Identity:
        """RFC 9068 4: signature by the AS's key (never alg none), typ at+jwt, iss, aud, exp."""
        cfg = self.cfg
        keys = await self._keyset()
        try:
            try:
                tok = jwt.decode(token, keys, algorithms=JWT_ALGORITHMS)
            except JoseError:  # maybe a key rotated since the JWKS was cached
                tok = jwt.decode(token, await self._keyset(refresh=True), algorithms=JWT_ALGORITHMS)
        except (JoseError, ValueError, TypeError) as exc:
            raise TokenRejected(f"token signature or format rejected ({type(exc).__name__})") from None
        typ = str(tok.header.get("typ", "")).lower()
        if typ not in AT_JWT_TYPES:
            raise TokenRejected(f"token typ {typ!r} is not at+jwt")
        claims = tok.claims
        if claims.get("iss") != cfg.issuer:
            raise TokenRejected(f"token issuer {claims.get('iss')!r} is not {cfg.issuer}")
        aud = claims.get("aud")
        if cfg.audience not in (aud if isinstance(aud, list) else [aud]):
            raise TokenRejected(f"token audience {aud!r} is not {cfg.audience}")
        exp = claims.get("exp")
        if not isinstance(exp, (int, float)):
            raise TokenRejected("token has no exp")
        leeway = EXP_LEEWAY_S if cfg.varies("wsf-exp-leeway") else 0  # RFC 7519 4.1.4 clock skew
        if exp + leeway <= time.time() and not self.faults.on("wsf-accept-expired"):
            raise TokenRejected("token expired")
        sub = claims.get("sub")
        ident = self.store.identity(sub) if isinstance(sub, str) else None
        return Identity(sub, ident and ident["impi"], ident["impus"] if ident else [])

    def unverified(self, token: str, to_uri) -> Identity:
        """Fault wsf-skip-verification: no 15-16, the mapping straight from the store by the token's
        (unchecked) sub, else by the Web ID in To."""
        sub = unverified_claims(token).get("sub")
        if not isinstance(sub, str) and isinstance(to_uri, SipUri) and to_uri.user:
            sub = f"{to_uri.user_decoded}@{to_uri.host}"
        ident = self.store.identity(sub) if isinstance(sub, str) else None
        return Identity(sub, ident and ident["impi"], ident["impus"] if ident else [])


# -- flows and transactions --------------------------------------------------------------------

@dataclass(eq=False)
class Flow:
    """One WebSocket connection: the flow token of the Path names it (RFC 5626 5.2)."""

    token: str
    ws: ServerConnection
    slots: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(MAX_INFLIGHT_PER_FLOW))
    reg: FlowRegistration = field(default_factory=FlowRegistration)  # docs/lifecycle.md

    async def send(self, data: bytes) -> None:
        try:
            try:
                text = data.decode("utf-8")
            except UnicodeDecodeError:  # RFC 7118 4.2: binary frames for non-UTF-8 content
                await self.ws.send(data)
            else:
                await self.ws.send(wire_style.restyle_text(text))
        except ConnectionClosed:
            log.info("flow %s closed before a message could be sent", self.token)


@dataclass(eq=False)
class ClientTransaction:
    """RFC 3261 17.1.2: retransmit over UDP (Timer E), give up after Timer F with a 408."""

    flow: Flow
    request: Request  # as received from the UE, for a locally generated 408/503
    data: bytes
    timers: list[asyncio.TimerHandle] = field(default_factory=list)
    forwarded: Request | None = None  # the REGISTER as sent to the P-CSCF, and whose identity
    ident: Identity | None = None

    def cancel(self) -> None:
        for t in self.timers:
            t.cancel()
        self.timers.clear()


class Wsf:
    def __init__(self, cfg: NetworkConfig, faults: ActiveFaults):
        self.cfg, self.faults = cfg, faults
        me = cfg.endpoints["wsf"]
        self.name = me.tls_name or me.host
        self.store = Store(cfg.db_path)
        self.verifier = Verifier(cfg, faults, self.store)
        # Core side: any free port on the WSF's own address (UDP and TCP on the same number).
        self.core = SipTransport(me.host, 0, self.on_core_message, "wsf")
        self.transactions: dict[str, ClientTransaction] = {}
        self._tasks: set[asyncio.Task] = set()
        self.router = FlowRouter(self)  # requests over the flow both ways (docs/lifecycle.md)

    # -- WebSocket side ------------------------------------------------------------------------
    def select_subprotocol(self, _conn: ServerConnection, offered) -> str | None:
        # RFC 7118 4.1: the client MUST offer "sip" and the server MUST select it
        if "sip" in offered:
            return "sip"
        if self.faults.on("wsf-accept-no-subprotocol"):
            return None
        raise NegotiationError("the WebSocket subprotocol 'sip' is required (RFC 7118 4.1)")

    def process_request(self, conn: ServerConnection, request):
        if urlsplit(request.path).path != "/sip":
            return conn.respond(HTTPStatus.NOT_FOUND, "Not Found: SIP over WebSocket is at /sip\n")
        return self.check_origin(conn, request)

    def check_origin(self, conn: ServerConnection, request):
        """RFC 6455 10.2: pages of the WebRTC application (and of the WSF itself) only."""
        me = self.cfg.endpoints["wsf"]
        allowed = self.cfg.web_origins | {f"https://{me.host}:{me.port}", f"https://{self.name}:{me.port}"}
        why = origin_refusal(request.headers.get("Origin"), allowed, self.cfg.options.origin_missing,
                             self.faults.on("wsf-accept-foreign-origin"))
        return conn.respond(HTTPStatus.FORBIDDEN, why) if why else None

    async def handle(self, ws: ServerConnection) -> None:
        # Responses find their flow through the client transaction (by branch), so the flow token
        # only has to be unique; a terminating request would look it up from the Path's user part.
        flow = Flow(secrets.token_hex(8), ws)
        self.router.flows[flow.token] = flow
        try:
            async for message in ws:
                data = message.encode("utf-8") if isinstance(message, str) else message
                await flow.slots.acquire()  # back-pressure: at most N requests in progress per flow
                task = asyncio.create_task(self.on_ws_message(flow, data))
                self._tasks.add(task)
                task.add_done_callback(lambda t: (self._tasks.discard(t), flow.slots.release()))
        except ConnectionClosed:
            pass
        self.router.flows.pop(flow.token, None)
        await self.on_flow_closed(flow)

    async def on_flow_closed(self, flow: Flow) -> None:
        """The WebSocket closed or was lost (PICS wsf.on_ws_close): de-register what the flow holds,
        or leave the bindings to expire at the S-CSCF."""
        if self.cfg.options.ws_close != "deregister" or self.faults.on("wsf-keep-binding-on-close"):
            return
        reg = flow.reg
        for (aor, _uri), contact in list(reg.bindings.items()):
            req = deregistration(aor, contact, reg.impi or "", self.cfg.home_domain,
                                 f"{secrets.token_hex(12)}@{self.name}")
            req.headers.prepend("Max-Forwards", "70")
            transport = self.cfg.options.core_transport.upper()
            branch = f"z9hG4bK{secrets.token_hex(10)}"
            req.headers.prepend("Via", f"SIP/2.0/{transport} {self.core.host}:{self.core.port};branch={branch};rport")
            await self.send_to_pcscf(flow, req, req.copy(), branch, transport)
        reg.bindings.clear()

    async def on_ws_message(self, flow: Flow, data: bytes) -> None:
        msg = None
        try:
            msg, rejection = check(data)
            if rejection is not None:
                await flow.send(rejection.serialize())
                return
            if msg is None:  # nothing to answer: RFC 6455 7.4.1 1007, data not consistent with the type
                await flow.ws.close(1007, "not a SIP message")
                return
            if isinstance(msg, Response):
                self.router.response_from_ue(msg)  # to a NOTIFY the WSF delivered over the flow
                return
            if msg.method == "ACK":
                return
            if msg.method == "REGISTER":
                await self.register(flow, msg)
            else:
                await self.router.request_from_ue(flow, msg)
        except Exception as exc:
            log.exception("WSF failed on a message from flow %s", flow.token)
            if isinstance(msg, Request) and msg.method != "ACK":
                await flow.send(make_response(msg, 500, f"Server Internal Error: {exc}").serialize())

    async def answer(self, flow: Flow, req: Request, status: int, reason: str,
                     headers: list[tuple[str, str]] = ()) -> None:
        await flow.send(make_response(req, status, reason, list(headers)).serialize())

    def challenge(self, error: str | None) -> list[tuple[str, str]]:
        # RFC 8898 2.2 / RFC 6750 3: Bearer realm, authz_server; error only when a token was sent
        value = f'Bearer realm="{self.cfg.home_domain}", authz_server="{self.cfg.issuer}"'
        if error and not self.cfg.varies("wsf-challenge-without-error"):  # RFC 6750 3.1: a SHOULD
            value += f', error="{error}"'
        return [("WWW-Authenticate", value)]

    async def register(self, flow: Flow, req: Request) -> None:
        faults = self.faults
        mf_text = req.headers.get("Max-Forwards")
        mf = int(mf_text) if mf_text is not None else 70
        if mf <= 0:  # RFC 3261 16.3 item 2
            await self.answer(flow, req, 483, "Too Many Hops")
            return
        present, token = bearer_token(req)
        reuse = self.flow_identity(flow, present)
        if reuse is not None:
            await self.forward_register(flow, req, reuse, mf)
            return
        if not present:
            if faults.on("wsf-no-challenge"):
                await self.answer(flow, req, 403, "Forbidden (no access token)")
            else:
                await self.answer(flow, req, 401, "Unauthorized (no access token)", self.challenge(None))
            return
        if token is None:
            await self.answer(flow, req, 401, "Unauthorized (malformed Bearer credentials)",
                              self.challenge("invalid_token"))
            return
        to = parse_name_addr(req.headers.get("To"))
        if faults.on("wsf-skip-verification"):
            ident = self.verifier.unverified(token, to.uri)
        else:
            try:
                ident = await self.verifier.verify(token)  # steps 15-16
            except TokenRejected as exc:
                await self.answer(flow, req, 401, f"Unauthorized ({exc})", self.challenge("invalid_token"))
                return
            except VerifierUnavailable as exc:
                log.warning("token verification unavailable: %s", exc)
                if not faults.on("wsf-fail-open"):
                    await self.answer(flow, req, 503, f"Service Unavailable ({exc})")
                    return
                sub = unverified_claims(token).get("sub")
                ident = Identity(sub, sub, [f"sip:{sub}"])  # fault: trusts what it could not verify
        if (not ident.impi or not ident.impus) and faults.on("wsf-register-without-impu") and ident.sub:
            ident = Identity(ident.sub, ident.impi or ident.sub, [f"sip:{ident.sub}"])
        if not ident.impi or not ident.impus:
            await self.answer(flow, req, 403, "Forbidden (no IMS identity is mapped to this token)")
            return
        await self.forward_register(flow, req, ident, mf)

    def flow_identity(self, flow: Flow, token_present: bool) -> Identity | None:
        """The identity of an earlier REGISTER on this flow, when this one may go without a (checked)
        token: PICS wsf.reregister_token = first, or one of the faults that break `every`."""
        reg = flow.reg
        if not reg.registered or self.faults.on("wsf-flow-identity-lost"):
            return None
        tokenless_ok = self.cfg.options.reregister_token == "first" or self.faults.on("wsf-reregister-tokenless")
        if (not token_present and tokenless_ok) or (token_present and self.faults.on("wsf-reregister-unverified")):
            return Identity(reg.sub, reg.impi, list(reg.impus))
        return None

    async def forward_register(self, flow: Flow, req: Request, ident: Identity, mf: int) -> None:
        cfg, faults = self.cfg, self.faults
        to = parse_name_addr(req.headers.get("To"))
        # To names the Web ID (sip.client_aor = web_id) or one of the mapped IMPUs (= impu)
        to_is_web_id = (isinstance(to.uri, SipUri) and to.uri.user is not None and ident.sub is not None
                        and f"{to.uri.user_decoded}@{to.uri.host}".lower() == ident.sub.lower())
        if not to_is_web_id and not any(_same_uri(u, to.uri) for u in ident.impus):
            await self.answer(flow, req, 403, "Forbidden (To is neither the token's Web ID nor one of its IMPUs)")
            return
        fwd = req.copy()
        h = fwd.headers
        if to_is_web_id and not faults.on("wsf-keep-web-id"):
            default = parse_uri(ident.impus[0])
            for name in ("To", "From"):
                na = parse_name_addr(h.get(name))
                na.uri = default  # display name and parameters (tags) are kept
                h.set(name, str(na))
        h.set("Max-Forwards", str(mf - 1))
        bearer = [v for v in h.get_all("Authorization") if v.strip().lower().startswith("bearer")]
        h.remove("Authorization")  # the token never enters the IMS core
        if faults.on("wsf-forward-bearer"):
            for value in bearer:
                h.add("Authorization", value)
        params = [("username", f'"{ident.impi}"'), ("realm", f'"{cfg.home_domain}"'), ("uri", f'"{req.uri}"'),
                  ("nonce", '""'), ("response", '""')]
        if not faults.on("wsf-no-auth-done"):
            params.append(("integrity-protected", '"auth-done"'))  # TS 24.229 5.2.2: trusted node
        if cfg.varies("wsf-digest-param-order"):  # auth-params are an unordered list (RFC 7616 3.4)
            params.reverse()
        h.add("Authorization", "Digest " + ", ".join(f"{k}={v}" for k, v in params))
        transport = cfg.options.core_transport.upper()
        branch = wire_style.new_branch()
        h.prepend("Via", f"SIP/2.0/{transport} {self.core.host}:{self.core.port};branch={branch};rport")
        if not faults.on("wsf-no-path"):
            # RFC 5626 5.1 / RFC 7118 5: a Path naming this flow, with ob (outbound edge proxy)
            h.prepend("Path", f"<sip:{flow.token}@{self.name};lr;ob>")
        await self.send_to_pcscf(flow, req, fwd, branch, transport, ident)

    async def send_to_pcscf(self, flow: Flow, req: Request, fwd: Request, branch: str, transport: str,
                            ident: Identity | None = None) -> None:
        pcscf = self.cfg.endpoints["pcscf"]
        data = fwd.serialize()
        txn = ClientTransaction(flow, req, data, forwarded=fwd, ident=ident)
        self.transactions[branch] = txn
        loop = asyncio.get_running_loop()
        txn.timers.append(loop.call_later(TIMER_F, self._timeout, branch))
        try:
            await self.core.send(data, transport, pcscf.host, pcscf.port)  # step 17
        except OSError as exc:  # RFC 3261 8.1.3.1: a transport error is a 503
            self.transactions.pop(branch, None)
            txn.cancel()
            await self.answer(flow, req, 503, f"Service Unavailable (P-CSCF unreachable: {exc})")
            return
        if transport == "UDP":
            txn.timers.append(loop.call_later(TIMER_T1, self._retransmit, branch, TIMER_T1))

    def _retransmit(self, branch: str, interval: float) -> None:
        txn = self.transactions.get(branch)
        if txn is None:
            return
        pcscf = self.cfg.endpoints["pcscf"]
        self.core.send_udp(txn.data, pcscf.host, pcscf.port)
        nxt = min(2 * interval, TIMER_T2)
        txn.timers.append(asyncio.get_running_loop().call_later(nxt, self._retransmit, branch, nxt))

    def _timeout(self, branch: str) -> None:
        txn = self.transactions.pop(branch, None)
        if txn is None:
            return
        txn.cancel()
        resp = make_response(txn.request, 408, "Request Timeout (no answer from the P-CSCF)")
        if self.faults.on("wsf-core-error-as-480"):
            resp = make_response(txn.request, 480, "Temporarily Unavailable")
        task = asyncio.create_task(txn.flow.send(resp.serialize()))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- core side -----------------------------------------------------------------------------
    async def on_core_message(self, msg: Request | Response, source: Source) -> None:
        if isinstance(msg, Request):
            if msg.method != "ACK":  # over the flow its Route names (RFC 5626 5.3, RFC 7118 5)
                await self.router.request_from_core(msg, source)
            return
        branch = msg.branch  # parsed from the top Via on every access: once is enough
        txn = self.transactions.get(branch or "")
        if txn is None:
            return  # a late or stray response (17.1.3: no matching transaction)
        top = parse_via(msg.headers.get("Via"))
        if top.host != self.core.host:
            return
        if msg.status >= 200:
            self.transactions.pop(branch, None)
            txn.cancel()
            if txn.ident is not None and txn.forwarded is not None:  # what the flow now holds
                record_success(txn.flow.reg, txn.forwarded, msg, txn.ident)
        else:  # provisional: stop retransmitting, keep waiting for the final response
            for t in txn.timers[1:]:
                t.cancel()
            del txn.timers[1:]
        msg.headers.remove_first("Via")
        if msg.status >= 300 and self.faults.on("wsf-core-error-as-480"):
            msg = make_response(txn.request, 480, "Temporarily Unavailable")
        await txn.flow.send(msg.serialize())  # step 21

    # -- lifecycle -----------------------------------------------------------------------------
    async def run(self, stop: asyncio.Event) -> None:
        me = self.cfg.endpoints["wsf"]
        await self.core.start()
        async with ws_serve(self.handle, me.host, me.port, ssl=pki.server_ssl_context(self.cfg, "wsf"),
                         subprotocols=["sip"], select_subprotocol=self.select_subprotocol,
                         process_request=self.process_request, max_size=wire_style.max_message(),
                         compression=None, open_timeout=10, close_timeout=2):
            announce("wsf", me.host, me.port)
            await stop.wait()
        await self.core.close()
        await self.verifier.close()


def _same_uri(a: str, b) -> bool:
    try:
        return b is not None and uri_equal(a, b)
    except (UriError, ValueError):
        return False


def serve(cfg: NetworkConfig, faults: ActiveFaults) -> None:
    """WSF process: WSS on cfg.endpoints["wsf"] (path /sip), blocks until SIGTERM/SIGINT."""
    pki.ensure(cfg)
    wsf = Wsf(cfg, faults)
    run_until_signal(wsf.run)
