"""The WSF as the harness plays it (BINDING.md steps 13-17 and 20-21).

A WSS endpoint (subprotocol `sip`, RFC 7118) that takes a REGISTER with a Bearer token, verifies
the token (RFC 7662 introspection at the AS with the profile's introspection client, or the JWT
against the AS's JWKS with `wsf.verify: local_jwt`), and forwards the authentication-less REGISTER
to the P-CSCF over `core.transport`: To/From the default IMPU of the mapping, the Bearer
credential replaced by the trusted-node Digest (`integrity-protected="auth-done"`, TS 24.229
5.4.1.2.2), its own Via, Max-Forwards decremented and a Path with `ob` (RFC 5626, RFC 7118 5).
Responses come back with its Via removed. A token that does not verify gets 401 Bearer
(RFC 8898 2.2) and nothing goes to the P-CSCF. Requests other than REGISTER on a registered flow
(a reg-event SUBSCRIBE) and the core's requests back to the UE (its NOTIFYs) go along the flow
(wsf_flows.py, docs/lifecycle.md).
"""

from __future__ import annotations

import asyncio
import re
from http import HTTPStatus

from websockets.asyncio.server import serve
from websockets.datastructures import Headers as WsHeaders
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Response as WsResponse

from conformance.codec import sip
from conformance.events import SipReceived
from conformance.peers import pki
from conformance.peers.sip_stream import TIMER_F_S, final_response
from conformance.peers.token_check import TokenChecker
from conformance.peers.wsf_flows import FlowTable

_BEARER = re.compile(r'^\s*Bearer\s+(?:access_token="([^"]+)"|([A-Za-z0-9\-._~+/]+=*))\s*$', re.I)


def bearer_token(req: sip.Request) -> str | None:
    """The token of `Authorization: Bearer` in either syntax (RFC 8898 2.1, TS 24.371 A.3.2)."""
    for value in req.headers.get_all("Authorization"):
        m = _BEARER.match(value)
        if m:
            return m.group(1) or m.group(2)
    return None


def forwarded_register(req: sip.Request, impi: str, impus: list[str], *, home_domain: str,
                       wsf_name: str, flow: str) -> sip.Request:
    """The REGISTER of step 17 built from the UE's REGISTER of step 14 (BINDING.md); its own Via
    is added when the socket (and so the sent-by port) is known."""
    out = req.copy()
    default = impus[0]
    for name in ("To", "From"):  # the Web ID never enters the core: the default IMPU replaces it
        value = out.headers.get(name) or ""
        tag = re.search(r";\s*tag=[^;>\s]+", value)
        out.headers.set(name, f"<{default}>" + (tag.group(0) if tag else ""))
    out.headers.remove("Authorization")  # the token never enters the IMS core
    out.headers.add("Authorization", f'Digest username="{impi}", realm="{home_domain}", '
                    f'uri="sip:{home_domain}", nonce="", response="", integrity-protected="auth-done"')
    try:
        hops = int(out.headers.get("Max-Forwards") or "70")
    except ValueError:
        hops = 70
    out.headers.set("Max-Forwards", str(hops - 1))
    out.headers.prepend("Path", f"<sip:{flow}@{wsf_name};lr;ob>")
    return out


class EmulatedWsf:
    def __init__(self, peers, node: dict):
        self.peers, self.node = peers, node
        pixit, pics = peers.profile.pixit, peers.profile.pics
        self.home_domain = pixit.get("home_domain", "ims.example.net")
        self.pcscf = pixit["nodes"]["pcscf"]
        self.transport = str(pics.get("core.transport", "udp"))
        self.checker = TokenChecker(peers, local_jwt=pics.get("wsf.verify") == "local_jwt")
        self.host = node["address"]
        self.name = node.get("tls_name") or self.host
        self._server = None
        self.flows = FlowTable(self)

    async def start(self) -> None:
        ctx, _ = pki.server_context(self.peers.profile, self.peers.workdir, self.node, self.peers.keylog)
        self._server = await serve(self._connection, self.host, int(self.node["port"]), ssl=ctx,
                                   subprotocols=["sip"], process_request=_require_sip,
                                   max_size=65536, ping_interval=None)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        await self.checker.close()

    async def _connection(self, ws) -> None:
        flow = self.flows.open(ws)
        peer = ws.remote_address or ("", 0)
        try:
            async for data in ws:
                raw = data.encode() if isinstance(data, str) else data
                try:
                    msg = sip.parse(raw)
                except sip.SipParseError:
                    continue  # RFC 7118 / RFC 3261 18.3: what does not parse is discarded
                if isinstance(msg, sip.Response):  # the UE answers a request of the core (a NOTIFY)
                    self.flows.answer_from_ue(msg)
                    continue
                # each request in its own task: the UE's answer to a NOTIFY must not wait behind it
                asyncio.get_running_loop().create_task(self._serve(ws, msg, raw, peer, flow))
        finally:
            self.flows.close(flow)

    async def _serve(self, ws, msg: sip.Request, raw: bytes, peer, flow) -> None:
        flow.started()
        try:
            resp = await self.on_request(msg, raw, peer, flow)
            if resp is not None:
                await ws.send(resp.serialize().decode("utf-8", "replace"))
        except ConnectionClosed:
            pass  # the UE went away before its answer: nothing to tell it
        except Exception as exc:  # noqa: BLE001 - a bug of the emulated WSF makes the case an error
            self.peers.board.error(f"emulated wsf on {msg.method}: {type(exc).__name__}: {exc}")
        finally:
            flow.answered()

    async def on_request(self, req: sip.Request, raw: bytes, peer, flow) -> sip.Response | None:
        event = SipReceived(req, raw, "wss", f"{peer[0]}:{peer[1]}")
        board = self.peers.board
        script = board.script_for("wsf", req.method)
        if script is not None:
            if script.delay_ms:
                await asyncio.sleep(script.delay_ms / 1000.0)
            if script.silent or script.status is not None:
                board.record("wsf", req.method, event, "no answer (scripted)" if script.silent else
                             f"{script.status} (scripted)")
                if script.silent:
                    return None
                resp = sip.make_response(req, script.status, script.reason, to_tag=sip.new_tag())
                for name, value in script.headers.items():
                    resp.headers.set(name, value)
                return resp
        if req.method != "REGISTER":
            return await self._other_request(req, event, flow)
        token = bearer_token(req)
        mapping = await self.checker.verify(token) if token else None
        if mapping is None or not mapping.get("impu") or not mapping.get("impi"):
            board.record("wsf", req.method, event, "401")
            return self._unauthorized(req, "invalid_token" if token else None)
        board.record("wsf", req.method, event, "forwarded")
        fwd = forwarded_register(req, mapping["impi"], list(mapping["impu"]), home_domain=self.home_domain,
                                 wsf_name=self.name, flow=flow.token)
        answer = await self._to_pcscf(fwd)
        if answer is None:  # RFC 3261 16.7 item 6 / 17.1.2.2: Timer F fired
            return sip.make_response(req, 408, to_tag=sip.new_tag())
        answer.headers.remove_first("Via")
        if answer.status == 200:  # the flow is registered: its identity asserts its later requests
            flow.impus, flow.impi = list(mapping["impu"]), mapping["impi"]
            flow.registers.append(fwd)
        return answer

    async def _other_request(self, req: sip.Request, event, flow) -> sip.Response:
        """A request other than REGISTER from the UE (wsf_flows.py): to the P-CSCF on a registered flow."""
        out = self.flows.towards_core(flow, req)
        if isinstance(out, sip.Response):
            self.peers.board.record("wsf", req.method, event, f"{out.status}")
            return out
        self.peers.board.record("wsf", req.method, event, "forwarded")
        answer = await self._to_pcscf(out)
        if answer is None:
            return sip.make_response(req, 408, to_tag=sip.new_tag())
        answer.headers.remove_first("Via")
        return answer

    def _unauthorized(self, req: sip.Request, error: str | None) -> sip.Response:
        resp = sip.make_response(req, 401, to_tag=sip.new_tag())
        issuer = self.peers.profile.pixit["nodes"]["as"].get("issuer", "")
        value = f'Bearer realm="{self.home_domain}", authz_server="{issuer}"'
        resp.headers.add("WWW-Authenticate", value + (f', error="{error}"' if error else ""))
        return resp

    async def _to_pcscf(self, req: sip.Request) -> sip.Response | None:
        """Send to the P-CSCF and wait for the final answer (provisional ones are skipped)."""
        addr = (self.pcscf["address"], int(self.pcscf["port"]))
        try:
            return await asyncio.wait_for(self._exchange(req, addr), TIMER_F_S)
        except (TimeoutError, OSError):
            return None

    def _via(self, req: sip.Request, sockname) -> str:
        branch = sip.new_branch()
        req.headers.prepend("Via", f"SIP/2.0/{self.transport.upper()} {sockname[0]}:{sockname[1]};branch={branch};rport")
        return branch

    async def _exchange(self, req: sip.Request, addr) -> sip.Response:
        loop = asyncio.get_running_loop()
        if self.transport == "tcp":  # from the WSF's own address, so captures attribute the leg
            reader, writer = await asyncio.open_connection(*addr, local_addr=(self.host, 0))
            try:
                branch = self._via(req, writer.get_extra_info("sockname"))
                writer.write(req.serialize())
                return await final_response(reader, branch, "P-CSCF")
            finally:
                writer.close()
        answered: asyncio.Future = loop.create_future()
        proto = _Answers(answered)
        transport, _ = await loop.create_datagram_endpoint(lambda: proto, local_addr=(self.host, 0), remote_addr=addr)
        try:
            proto.branch = self._via(req, transport.get_extra_info("sockname"))
            transport.sendto(req.serialize())
            return await answered
        finally:
            transport.close()


class _Answers(asyncio.DatagramProtocol):
    def __init__(self, answered: asyncio.Future):
        self.branch: str | None = None
        self.answered = answered

    def datagram_received(self, data: bytes, addr) -> None:
        try:
            msg = sip.parse(data)
        except sip.SipParseError:
            return
        if (isinstance(msg, sip.Response) and msg.branch == self.branch and msg.status >= 200
                and not self.answered.done()):
            self.answered.set_result(msg)


def _require_sip(connection, request):
    """RFC 7118 4: a handshake that does not offer the `sip` subprotocol is refused."""
    offered = ",".join(request.headers.get_all("Sec-WebSocket-Protocol"))
    if "sip" not in [p.strip().lower() for p in offered.split(",")]:
        status = HTTPStatus.BAD_REQUEST
        return WsResponse(status.value, status.phrase, WsHeaders([("Content-Length", "0")]), b"")
    return None

