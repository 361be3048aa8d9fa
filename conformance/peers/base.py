"""The set of emulated peers of one run: one asyncio loop in a background thread serves them all.

    peers = start_for_profile(profile, workdir)   # None when the vendor supplies every node
    peers.board.begin(scripts); ...; records = peers.board.end()
    peers.close()
"""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

from conformance.model.testcase import PLAYED_NODES
from conformance.peers.script import Board

START_TIMEOUT_S = 10.0
STOP_TIMEOUT_S = 5.0

_active: PeerSet | None = None


def active() -> PeerSet | None:
    """The peers this process runs (the engine scripts them and collects their evidence)."""
    return _active


class Users:
    """Web ID -> password and IMS identities: the fixtures of the profile plus provisioned users.
    Shared by the emulated AS (introspection mapping) and the emulated CSCFs (P-Associated-URI)."""

    def __init__(self, fixtures: dict):
        self._lock = threading.Lock()
        self.by_web_id = {u["web_id"]: dict(u) for u in fixtures.values() if "web_id" in u}

    def add(self, user: dict) -> bool:
        with self._lock:
            if user["web_id"] in self.by_web_id:
                return False
            self.by_web_id[user["web_id"]] = dict(user)
            return True

    def get(self, web_id: str) -> dict | None:
        with self._lock:
            return self.by_web_id.get(web_id)

    def by_impu(self, impu: str) -> dict | None:
        with self._lock:
            return next((u for u in self.by_web_id.values() if impu in (u.get("impus") or [])), None)

    def by_impi(self, impi: str) -> dict | None:
        with self._lock:
            return next((u for u in self.by_web_id.values() if u.get("impi") == impi), None)


class PeerSet:
    def __init__(self, profile, workdir: Path, nodes: list[str]):
        self.profile = profile
        self.workdir = Path(workdir)
        self.nodes = nodes
        self.board = Board()
        self.users = Users(profile.fixtures)
        self.keylog = self.workdir / "peers.keylog"  # the emulated TLS peers' legs decrypt with it
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="emulated-peers", daemon=True)
        self._servers: list = []
        self._by_node: dict = {}  # node -> its server, to take one down for a test case
        self._paused: set[str] = set()

    def start(self) -> PeerSet:
        self._thread.start()
        fut = asyncio.run_coroutine_threadsafe(self._start(), self._loop)
        try:
            fut.result(START_TIMEOUT_S)
        except BaseException:
            self.close()
            raise
        return self

    async def _start(self) -> None:
        from conformance.peers.cscf import EmulatedCscf
        from conformance.peers.oauth_as import EmulatedAs
        from conformance.peers.thirdparty import EmulatedThirdParty
        from conformance.peers.wsf import EmulatedWsf

        nodes = self.profile.pixit["nodes"]
        for name in self.nodes:
            if name == "as":
                server = EmulatedAs(self, nodes["as"])
            elif name == "wsf":
                server = EmulatedWsf(self, nodes["wsf"])
            elif name == "3rdwws":
                server = EmulatedThirdParty(self, nodes["3rdwws"])
            elif name == "pcscf":  # plays the whole core when the S-CSCF is not supplied either
                server = EmulatedCscf(self, "pcscf", nodes["pcscf"], whole_core="scscf" in self.nodes)
            else:
                server = EmulatedCscf(self, "scscf", nodes["scscf"], whole_core=True)
            await server.start()
            self._servers.append(server)
            self._by_node[name] = server

    def server_of(self, node: str):
        """The emulated node's server (None when the vendor supplies it): the emulated P-CSCF hands
        the core's requests for a UE to the emulated WSF in this process."""
        return self._by_node.get(node)

    def emulated_core(self):
        """The emulated CSCF that answers for the S-CSCF (its registrar), None with a supplied S-CSCF."""
        if "scscf" not in self._by_node:
            return None
        pcscf = self._by_node.get("pcscf")
        return pcscf if pcscf is not None and pcscf.whole_core else self._by_node["scscf"]

    def pause(self, nodes: set[str]) -> None:
        """Stop listening as `nodes` for one test case (`down: true`: the SUT's connections are
        refused, as with a peer that is not running); resume() listens again."""
        for node in sorted(set(nodes) & set(self._by_node)):
            asyncio.run_coroutine_threadsafe(self._by_node[node].pause(), self._loop).result(STOP_TIMEOUT_S)
            self._paused.add(node)

    def resume(self) -> None:
        while self._paused:
            node = self._paused.pop()
            asyncio.run_coroutine_threadsafe(self._by_node[node].resume(), self._loop).result(START_TIMEOUT_S)

    def close(self) -> None:
        global _active
        if self._loop.is_running():
            async def stop_all():
                for server in reversed(self._servers):
                    await server.stop()

            try:
                asyncio.run_coroutine_threadsafe(stop_all(), self._loop).result(STOP_TIMEOUT_S)
            except Exception:  # noqa: BLE001 - stopping is best effort; the thread is a daemon
                pass
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(STOP_TIMEOUT_S)
        if _active is self:
            _active = None


def played_nodes(profile) -> list[str]:
    """Nodes the profile marks `supplied: false` that the harness can play."""
    nodes = profile.pixit.get("nodes") or {}
    return [n for n in PLAYED_NODES if n in nodes and nodes[n].get("supplied", True) is False]


def start_for_profile(profile, workdir: Path) -> PeerSet | None:
    global _active
    nodes = played_nodes(profile)
    if not nodes:
        return None
    _active = PeerSet(profile, workdir, nodes).start()
    return _active
