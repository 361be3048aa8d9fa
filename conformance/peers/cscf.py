"""The P-CSCF / S-CSCF as the harness plays them: SIP over UDP and TCP (BINDING.md steps 17-20).

With the S-CSCF supplied, the emulated P-CSCF is a proxy (BINDING.md "P-CSCF"): it adds its Via,
its Path on top, `Require: path`, P-Visited-Network-ID and P-Charging-Vector, forwards the REGISTER
to the S-CSCF from its own address (the one the S-CSCF trusts) over `core.transport`, and relays
the final answer back with its Via removed; no answer within Timer F is a 408 (RFC 3261 16.7).

With neither CSCF supplied, the emulated P-CSCF answers for the whole core (what the WSF sees at
step 20 is what P-CSCF and S-CSCF together send back): a REGISTER carrying the trusted-node
credentials (`integrity-protected="auth-done"`, TS 24.229 5.4.1.2.2) of a known IMPI is
registered without challenge; the 200 OK carries Contact with its granted expires, the Path
values (the P-CSCF's own first when it plays the P-CSCF), Service-Route and P-Associated-URI
(default IMPU first); otherwise 401 with a Digest challenge (or 403 for an unknown IMPI).
"""

from __future__ import annotations

import asyncio
import secrets
from contextlib import suppress

from conformance.codec import sip
from conformance.codec.sip_headers import HeaderError, parse_credentials, parse_name_addr
from conformance.events import SipReceived
from conformance.peers.pcscf_routing import DialogRouting
from conformance.peers.registrar import Change, Registrar
from conformance.peers.sip_stream import TIMER_F_S, final_response


class EmulatedCscf:
    def __init__(self, peers, role: str, node: dict, whole_core: bool):
        self.peers, self.role, self.node, self.whole_core = peers, role, node, whole_core
        self.host, self.port = node["address"], int(node["port"])
        uri = node.get("sip_uri") or f"sip:{role}.{peers.profile.pixit.get('home_domain', 'ims.example.net')}"
        self.domain_name = uri.split(":", 1)[1]
        self.home_domain = peers.profile.pixit.get("home_domain", "ims.example.net")
        self._udp: asyncio.DatagramTransport | None = None
        self._tcp: asyncio.base_events.Server | None = None
        self._tasks: set[asyncio.Task] = set()
        self._pending: dict[str, asyncio.Future] = {}  # branch -> the S-CSCF's final answer (proxy)
        self.transport = str((getattr(peers.profile, "pics", None) or {}).get("core.transport", "udp"))
        self.scscf = (peers.profile.pixit.get("nodes") or {}).get("scscf")
        self.dialog_routing = DialogRouting(self)
        self.registrar = Registrar(self)  # bindings and reg events when it answers for the core

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._udp, _ = await loop.create_datagram_endpoint(lambda: _Udp(self), local_addr=(self.host, self.port))
        self._tcp = await asyncio.start_server(self._tcp_client, self.host, self.port)

    async def stop(self) -> None:
        if self._udp is not None:
            self._udp.close()
        if self._tcp is not None:
            self._tcp.close()
        for task in list(self._tasks):
            task.cancel()

    # a test case's `down: true`: nothing listens on the CSCF's address while it runs
    pause, resume = stop, start

    def spawn(self, coro) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- transports -------------------------------------------------------------------------------
    async def _tcp_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        parser = sip.StreamParser()
        peer = writer.get_extra_info("peername")
        try:
            while data := await reader.read(65536):
                for msg in parser.feed(data):
                    if isinstance(msg, sip.Request):
                        await self.on_request(msg, bytes(msg), "tcp", peer, writer.write, writer.close)
                    elif isinstance(msg, sip.Response):  # the edge answers a NOTIFY of the core
                        self.on_response(msg)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    # -- behaviour --------------------------------------------------------------------------------
    async def on_request(self, req: sip.Request, raw: bytes, transport: str, peer, send, close) -> None:
        try:
            await self._on_request(req, raw, transport, peer, send, close)
        except Exception as exc:  # noqa: BLE001 - a bug of the emulated CSCF makes the case an error
            self.peers.board.error(f"emulated {self.role} on {req.method}: {type(exc).__name__}: {exc}")

    async def _on_request(self, req: sip.Request, raw: bytes, transport: str, peer, send, close) -> None:
        if req.method == "ACK":
            return
        event = SipReceived(req, raw, transport, f"{peer[0]}:{peer[1]}")
        script = self.peers.board.script_for(self.role, req.method)
        if script is not None and script.delay_ms:
            # recorded before the wait: the late answer may come after the test case has ended
            self.peers.board.record(self.role, req.method, event, f"answered {script.delay_ms} ms late (scripted)")
            await asyncio.sleep(script.delay_ms / 1000.0)
            event = None  # already recorded
        if script is not None and (script.silent or script.close or script.raw is not None):
            what = "no answer" if script.silent else "closed" if script.close else "raw bytes"
            self._record(req.method, event, f"{what} (scripted)")
            if script.raw is not None:
                send(script.raw.encode())
            if script.close and transport == "tcp":
                close()
            return
        if self.role == "pcscf" and not self.whole_core and req.method == "REGISTER" and script is None:
            self.peers.board.record(self.role, req.method, event, "forwarded to the S-CSCF")
            send((await self.proxy(req)).serialize())
            return
        if self.role == "pcscf" and not self.whole_core and req.method != "REGISTER" and script is None:
            routed = await self.dialog_routing.route(req, event, peer)
            if routed is not None:
                send(routed.serialize())
                return
        if req.method == "SUBSCRIBE" and script is None and self.whole_core:
            resp, sub = self.registrar.subscribe(req, send, self.peers.users.by_impu)
            self._record(req.method, event, f"{resp.status}")
            send(resp.serialize())
            if sub is not None:  # RFC 6665 4.2.1: at once a NOTIFY with the state (or its end)
                self.spawn(self.send_notify(sub, self.registrar.notify(
                    sub, terminated="timeout" if sub.expires_at <= self.registrar.clock() else None)))
            return
        resp, change = self.default_answer(req)
        if script is not None:
            resp = self.scripted(req, resp, script)
        self._record(req.method, event, f"{resp.status}" + (" (scripted)" if script is not None else ""))
        send(resp.serialize())
        if change is not None and script is None:  # RFC 3680 4.7: every change to the subscribers
            for sub in self.registrar.subscribers(change.aor):
                self.spawn(self.send_notify(sub, self.registrar.notify(sub, change)))

    async def send_notify(self, sub, notify: sip.Request) -> None:
        """A NOTIFY of the core to the edge the SUBSCRIBE came from; its answer (or none within
        Timer F) ends the transaction: nothing else depends on it."""
        branch = sip.new_branch()
        notify.headers.prepend("Via", f"SIP/2.0/{self.transport.upper()} {self.host}:{self.port};branch={branch};rport")
        answered = asyncio.get_running_loop().create_future()
        self._pending[branch] = answered
        try:
            sub.send(notify.serialize())
            await asyncio.wait_for(answered, TIMER_F_S)
        except (TimeoutError, OSError):
            pass
        finally:
            self._pending.pop(branch, None)

    def network_deregister(self, impu: str, event: str) -> None:
        """The operator's trigger (the emulated AS's /admin/deregister, docs/peers.md)."""
        for sub, notify in self.registrar.network_deregister(impu, event):
            self.spawn(self.send_notify(sub, notify))

    def _record(self, method: str, event, answered: str) -> None:
        if event is not None:  # None: recorded when the scripted delay began
            self.peers.board.record(self.role, method, event, answered)

    # -- the P-CSCF as a proxy to a supplied S-CSCF -------------------------------------------------
    async def proxy(self, req: sip.Request) -> sip.Response:
        out = req.copy()
        branch = sip.new_branch()
        out.headers.prepend("Via", f"SIP/2.0/{self.transport.upper()} {self.host}:{self.port};branch={branch};rport")
        try:
            hops = int(out.headers.get("Max-Forwards") or "70")
        except ValueError:
            hops = 70
        out.headers.set("Max-Forwards", str(hops - 1))
        out.headers.prepend("Path", f"<sip:term@{self.domain_name};lr>")  # RFC 3327 4.1: on top
        if "path" not in (out.headers.get("Require") or "").lower():
            out.headers.add("Require", "path")
        visited = self.peers.profile.pixit.get("visited_network_id", "visited.example.net")
        out.headers.set("P-Visited-Network-ID", f'"{visited}"')  # RFC 7315 4.3
        out.headers.set("P-Charging-Vector", f"icid-value={secrets.token_hex(12)}")  # RFC 7315 4.6
        return await self.forward_to_scscf(req, out, branch)

    async def forward_to_scscf(self, req: sip.Request, out: sip.Request, branch: str) -> sip.Response:
        """`out` (req with this proxy's Via `branch` on top) to the S-CSCF; its final answer with
        that Via removed (RFC 3261 16.7), or 408 after Timer F."""
        try:
            answer = await asyncio.wait_for(self._to_scscf(out, branch), TIMER_F_S)
        except (TimeoutError, OSError):
            return sip.make_response(req, 408, to_tag=sip.new_tag())
        finally:
            self._pending.pop(branch, None)
        answer.headers.remove_first("Via")
        return answer

    async def _to_scscf(self, req: sip.Request, branch: str) -> sip.Response:
        addr = (self.scscf["address"], int(self.scscf["port"]))
        if self.transport == "tcp":  # from the P-CSCF's own address: the one the S-CSCF trusts
            reader, writer = await asyncio.open_connection(*addr, local_addr=(self.host, 0))
            try:
                writer.write(req.serialize())
                return await final_response(reader, branch, "S-CSCF")
            finally:
                writer.close()
        answered = asyncio.get_running_loop().create_future()
        self._pending[branch] = answered
        self._udp.sendto(req.serialize(), addr)  # from the P-CSCF's own socket
        return await answered

    def on_response(self, resp: sip.Response) -> None:
        future = self._pending.get(resp.branch or "")
        if future is not None and resp.status >= 200 and not future.done():
            with suppress(asyncio.InvalidStateError):
                future.set_result(resp)

    def scripted(self, req: sip.Request, default: sip.Response, script) -> sip.Response:
        if script.status is None:
            resp = default
        else:
            resp = sip.make_response(req, script.status, script.reason, to_tag=sip.new_tag())
        for name, value in script.headers.items():
            resp.headers.set(name, value)
        if script.body is not None:
            resp.body = script.body.encode()
        return resp

    def default_answer(self, req: sip.Request) -> tuple[sip.Response, Change | None]:
        """The answer, and the change to the bindings a REGISTER made (registrar.py)."""
        if req.method == "OPTIONS":
            return sip.make_response(req, 200, to_tag=sip.new_tag()), None
        if req.method != "REGISTER":
            return sip.make_response(req, 501, "Not Implemented (emulated core: REGISTER and SUBSCRIBE only)",
                                     to_tag=sip.new_tag()), None
        impi = _auth_done_impi(req)
        if impi is None:  # TS 24.229 5.4.1.2.1: not a trusted-node request: challenge
            resp = sip.make_response(req, 401, to_tag=sip.new_tag())
            resp.headers.add("WWW-Authenticate", f'Digest realm="{self.home_domain}", '
                             f'nonce="{secrets.token_hex(16)}", algorithm=AKAv1-MD5, qop="auth"')
            return resp, None
        user = self.peers.users.by_impi(impi)
        if user is None:
            return sip.make_response(req, 403, "Forbidden (unknown IMPI)", to_tag=sip.new_tag()), None
        refused, change = self.registrar.register(req)
        if refused is not None:
            return refused, None
        resp = sip.make_response(req, 200, to_tag=sip.new_tag())
        aor = str(parse_name_addr(req.headers.get("To")).uri)
        for value in self.registrar.contacts(aor):  # RFC 3261 10.3 step 8: every binding of the AOR
            resp.headers.add("Contact", value)
        if self.role == "pcscf":  # the P-CSCF's Path is the first the S-CSCF sees (BINDING step 18)
            resp.headers.add("Path", f"<sip:term@{self.domain_name};lr>")
        for value in req.headers.get_all("Path"):
            resp.headers.add("Path", value)
        resp.headers.add("Service-Route", f"<sip:orig@scscf.{self.home_domain};lr>")
        for impu in user.get("impus") or []:
            resp.headers.add("P-Associated-URI", f"<{impu}>")
        return resp, change


class _Udp(asyncio.DatagramProtocol):
    def __init__(self, cscf: EmulatedCscf):
        self.cscf = cscf
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr) -> None:
        try:
            msg = sip.parse(data)
        except sip.SipParseError:
            return  # RFC 3261 18.3: a datagram that does not parse is discarded
        if isinstance(msg, sip.Response):
            self.cscf.on_response(msg)
        elif isinstance(msg, sip.Request):
            self.cscf.spawn(self.cscf.on_request(msg, data, "udp", addr,
                                                 lambda out: self.transport.sendto(out, addr), lambda: None))


def _auth_done_impi(req: sip.Request) -> str | None:
    for value in req.headers.get_all("Authorization"):
        try:
            cred = parse_credentials(value)
        except HeaderError:
            continue
        params = {k.lower(): v for k, v in (cred.params or {}).items()}
        if cred.scheme.lower() == "digest" and (params.get("integrity-protected") or "").strip('"') == "auth-done":
            return (params.get("username") or "").strip('"') or None
    return None
