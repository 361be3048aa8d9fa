"""Reference-network performance (issue 3), measured over the wire on loopback.

1. re-REGISTER throughput through the whole chain (UE -> [3rdWWS ->] WSF -> [AS introspection ->]
   P-CSCF -> S-CSCF and back): N UEs (default 50), each with its token already obtained and its
   WebSocket connection kept open, one REGISTER in flight per UE, for a fixed duration; the rate
   is the median of the runs. Goal: >= 500 registrations/s on 2 cores.
2. The whole BINDING.md flow for one new user (steps 1-22: login, authorization request, login
   and consent at the AS, callback and code redemption, app page, WSS, REGISTER, 200 OK), one user
   after another, each time a new browser (new cookies, new TLS connections). Goal: median <= 50 ms.

Both are measured for every verify mode (introspection, local_jwt) x signalling path (relay,
direct): one reference network each, on free ports, in a temporary state directory, stopped at
the end. The client (asyncio: `websockets` for SIP over WSS, aiohttp for HTTPS) runs on the same
cores as the network; its CPU share and every node's are measured from /proc and printed.

Run: .venv/bin/python benchmarks/bench_refnet.py [--quick] [--ues 50] [--seconds 10] [--runs 3]
     [--flows 30] [--verify introspection local_jwt] [--signalling relay direct] [--json FILE]
Exit status 1 when a measurement failed (errors), or with --strict when a goal is missed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import secrets
import ssl
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path
from urllib.parse import urljoin

import aiohttp
from websockets.asyncio.client import ClientConnection, connect
from yarl import URL

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from machine import describe  # noqa: E402 - benchmarks/machine.py, run as a script

from refnet.config import NetworkConfig, Options  # noqa: E402
from refnet.launcher import Network, free_endpoints, start  # noqa: E402
from refnet.store import hash_secret, verify_secret  # noqa: E402

GOAL_RATE = 500.0  # registrations/s
GOAL_FLOW_MS = 50.0  # median of the 1-22 flow
HTTP_TIMEOUT_S = 10.0
SIP_TIMEOUT_S = 10.0  # one REGISTER, UE to S-CSCF and back (the WSF gives up at Timer F = 32 s)
SETUP_CONCURRENCY = 8  # provisioning and logins in parallel (each costs scrypt hashes at the nodes)
CLK_TCK = os.sysconf("SC_CLK_TCK")


class BenchError(RuntimeError):
    pass


# -- machine and CPU accounting ------------------------------------------------------------------

def machine() -> dict:
    return describe(websockets=version("websockets"), aiohttp=version("aiohttp"), werkzeug=version("werkzeug"),
                    authlib=version("authlib"))


def _proc_cpu_s(pid: int) -> float:
    """utime + stime of one process, all its threads (proc(5): fields 14 and 15)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def _machine_busy_s() -> float:
    """CPU seconds the whole machine was busy, all cores (proc(5) /proc/stat: all but idle, iowait)."""
    try:
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except (OSError, ValueError):
        return 0.0
    return (sum(fields[:8]) - fields[3] - fields[4]) / CLK_TCK


class CpuMeter:
    """CPU seconds used during a window by the client (this process), by each node, and by the
    rest of the machine (other processes would make the numbers lower than they should be)."""

    def __init__(self, net: Network):
        self.pids = net.pids()

    def snapshot(self) -> dict[str, float]:
        snap = {node: _proc_cpu_s(pid) for node, pid in self.pids.items()}
        snap["client"] = time.process_time()
        snap["machine"] = _machine_busy_s()
        return snap

    @staticmethod
    def shares(before: dict[str, float], after: dict[str, float], wall_s: float) -> dict[str, float]:
        """Percent of one core, per process; `others` = the machine minus client and nodes."""
        pct = {k: 100 * (after[k] - before[k]) / wall_s for k in before}
        machine = pct.pop("machine")
        pct["all ours"] = sum(pct.values())
        pct["others"] = max(0.0, machine - pct["all ours"])
        return {k: round(v, 1) for k, v in pct.items()}


def _keylog_handshakes(path: Path) -> int:
    """TLS handshakes logged by a node (client and server side): one client random line each."""
    try:
        text = path.read_text()
    except OSError:
        return 0
    return len(re.findall(r"^(?:CLIENT_RANDOM|CLIENT_HANDSHAKE_TRAFFIC_SECRET) ", text, re.M))


# -- reference network and users ---------------------------------------------------------------

def start_network(tmp: Path, verify: str, signalling: str) -> Network:
    state = Path(tempfile.mkdtemp(prefix=f"refnet-{verify}-{signalling}-", dir=tmp))
    cfg = NetworkConfig(str(state), endpoints=free_endpoints(prefer_defaults=False),
                        options=Options(verify=verify, signalling=signalling))
    return start(cfg)


@dataclass
class User:
    web_id: str
    password: str
    tp_username: str
    tp_password: str


def new_http(net: Network) -> aiohttp.ClientSession:
    """A new browser: its own cookie jar (unsafe=True: cookies of IP-address hosts), own TLS."""
    ctx = ssl.create_default_context(cafile=str(net.cfg.ca_file))
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=ctx),
                                 cookie_jar=aiohttp.CookieJar(unsafe=True),
                                 timeout=aiohttp.ClientTimeout(total=HTTP_TIMEOUT_S))


async def provision(http: aiohttp.ClientSession, net: Network) -> User:
    """A fresh identity and its third-party account (POST /admin/users at the AS)."""
    n = secrets.token_hex(5)
    body = {"web_id": f"bench{n}@web.operator.example", "password": f"pw-{n}", "impi": f"bench{n}@ims.example.net",
            "impus": [f"sip:bench{n}@ims.example.net"], "tp_username": f"tp{n}", "tp_password": f"tp-pw-{n}"}
    async with http.post(net.url("as", "/admin/users"), json=body,
                         headers={"Authorization": f"Bearer {net.cfg.admin_token}"}) as r:
        if r.status != 201:
            raise BenchError(f"provisioning answered {r.status}: {await r.text()}")
    return User(body["web_id"], body["password"], body["tp_username"], body["tp_password"])


def _expect(r: aiohttp.ClientResponse, statuses: tuple[int, ...], what: str) -> None:
    if r.status not in statuses:
        raise BenchError(f"{what}: HTTP {r.status}, expected {statuses}")


async def browser_login(http: aiohttp.ClientSession, net: Network, user: User, marks: dict) -> dict | None:
    """Steps 1-11 as a browser does them (every redirect followed by hand, so each is checked);
    in direct mode also GET /webrtc/session. Returns the session JSON (direct) or None (relay).
    `marks` receives the time at the end of each phase."""
    tp = net.url("3rdwws")
    async with http.post(tp + "/login", data={"username": user.tp_username, "password": user.tp_password},
                         allow_redirects=False) as r:  # step 1
        _expect(r, (303,), "POST /login")
        await r.read()
    marks["login"] = time.perf_counter()
    async with http.get(tp + "/webrtc", allow_redirects=False) as r:  # steps 2-3
        _expect(r, (302,), "GET /webrtc")
        authorize = r.headers["Location"]
    async with http.get(authorize, allow_redirects=False) as r:  # steps 4-5
        _expect(r, (200,), "GET /authorize")
        m = re.search(r'name="transaction" value="([^"]+)"', await r.text())
        if not m:
            raise BenchError("no transaction field in the authorization page")
    marks["authorize page"] = time.perf_counter()
    async with http.post(net.url("as", "/authorize"), allow_redirects=False,
                         data={"transaction": m.group(1), "web_id": user.web_id, "password": user.password,
                               "consent": "approve"}) as r:  # steps 6-7
        _expect(r, (302, 303), "POST /authorize")
        callback = r.headers["Location"]
    marks["AS login+consent"] = time.perf_counter()
    async with http.get(callback, allow_redirects=False) as r:  # steps 8-10 (9-10: 3rdWWS -> AS /token)
        _expect(r, (303,), "GET /oauth/callback")
        app = urljoin(callback, r.headers["Location"])
    marks["callback+token"] = time.perf_counter()
    for path in (app, tp + "/webrtc/app.js"):  # step 11
        async with http.get(path, allow_redirects=False) as r:
            _expect(r, (200,), f"GET {path}")
            await r.read()
    session = None
    if net.cfg.options.signalling == "direct":
        async with http.get(tp + "/webrtc/session", allow_redirects=False) as r:
            _expect(r, (200,), "GET /webrtc/session")
            session = await r.json()
    marks["app"] = time.perf_counter()
    return session


# -- SIP over WebSocket UE ------------------------------------------------------------------------

@dataclass
class Ue:
    """One UE: its WSS (to the 3rdWWS in relay mode, to the WSF in direct mode) and its
    registration (one Call-ID, CSeq counting up: re-REGISTERs refresh the same binding)."""

    ws: ClientConnection
    web_id: str
    token: str | None  # direct mode: the UE sends the Bearer credential itself
    call_id: str = field(default_factory=lambda: secrets.token_hex(10))
    tag: str = field(default_factory=lambda: secrets.token_hex(4))
    instance: str = field(default_factory=lambda: f"urn:uuid:{secrets.token_hex(4)}-0000-1000-8000-"
                                                  f"{secrets.token_hex(6)}")
    cseq: int = 0

    def register_message(self, branch: str) -> str:
        # BINDING.md step 14 (the 3rdWWS adds the Authorization in relay mode, step 12 -> 14)
        auth = f"Authorization: Bearer {self.token}\r\n" if self.token else ""
        return (f"REGISTER sip:ims.example.net SIP/2.0\r\n"
                f"Via: SIP/2.0/WSS df7jal23ls0d.invalid;branch={branch}\r\n"
                f"Max-Forwards: 70\r\n"
                f"To: <sip:{self.web_id}>\r\n"
                f"From: <sip:{self.web_id}>;tag={self.tag}\r\n"
                f"Call-ID: {self.call_id}\r\n"
                f"CSeq: {self.cseq} REGISTER\r\n"
                f"Contact: <sip:{self.tag}@df7jal23ls0d.invalid;transport=ws>"
                f';+sip.instance="<{self.instance}>";reg-id=1;expires=600\r\n'
                f"Supported: path, outbound\r\n"
                f"{auth}Content-Length: 0\r\n\r\n")

    async def register(self) -> int:
        """Send one REGISTER, return the final status code (bounded wait)."""
        self.cseq += 1
        branch = f"z9hG4bK{secrets.token_hex(8)}"
        async with asyncio.timeout(SIP_TIMEOUT_S):
            await self.ws.send(self.register_message(branch))
            while True:
                data = await self.ws.recv()
                text = data if isinstance(data, str) else data.decode("utf-8", "replace")
                # a cheap match (the client must not be the bottleneck): our branch, a final status
                if text.startswith("SIP/2.0 ") and branch in text and text[8:9] != "1":
                    return int(text[8:11])


async def open_ue(net: Network, http: aiohttp.ClientSession, web_id: str, session: dict | None) -> Ue:
    ctx = ssl.create_default_context(cafile=str(net.cfg.ca_file))
    if session is not None:  # direct: steps 13-14 from the UE to the WSF
        url, token, headers = session["wsf_url"], session["access_token"], {}
    else:  # relay: step 12 to the 3rdWWS, with the session cookie
        cookie = http.cookie_jar.filter_cookies(URL(net.url("3rdwws"))).get("sid")
        if cookie is None:
            raise BenchError("no 3rdWWS session cookie after the login")
        url, token, headers = net.url("3rdwws", "/sip", scheme="wss"), None, {"Cookie": f"sid={cookie.value}"}
    ws = await connect(url, ssl=ctx, subprotocols=["sip"], additional_headers=headers, compression=None,
                       open_timeout=HTTP_TIMEOUT_S, close_timeout=2, max_size=64 * 1024)
    return Ue(ws, web_id, token)


# -- measurement 1: re-REGISTER throughput --------------------------------------------------------

def _quantile(values: list[float], q: float) -> float:
    """Linear interpolation between the closest ranks (statistics.quantiles, inclusive method)."""
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[round(100 * q) - 1]


async def prepare_ues(net: Network, count: int, ues: list[Ue], browsers: list[aiohttp.ClientSession]) -> None:
    """Provision `count` users, log each in through its own browser, open its WSS and register
    once; what is opened goes into `ues` and `browsers` as it is, for the caller to close."""
    sem = asyncio.Semaphore(SETUP_CONCURRENCY)
    admin = new_http(net)

    async def one() -> None:
        async with sem:
            user = await provision(admin, net)
            http = new_http(net)
            browsers.append(http)
            session = await browser_login(http, net, user, {})
            ue = await open_ue(net, http, user.web_id, session)
            ues.append(ue)
            status = await ue.register()  # the initial registration; the runs re-register
            if status != 200:
                raise BenchError(f"initial REGISTER answered {status}")

    try:
        await asyncio.gather(*(one() for _ in range(count)))
    finally:
        await admin.close()


async def drive(ues: list[Ue], seconds: float) -> dict:
    """Every UE re-registers back to back for `seconds`; completions inside the window count."""
    statuses: dict[int, int] = {}
    latencies: list[float] = []
    errors: list[str] = []
    t0 = time.perf_counter()
    end = t0 + seconds

    async def loop(ue: Ue) -> None:
        while time.perf_counter() < end:
            start_t = time.perf_counter()
            try:
                status = await ue.register()
            except Exception as exc:  # timeout, websockets.ConnectionClosed, OSError: this UE is done
                errors.append(f"{type(exc).__name__}: {exc}")
                return
            done = time.perf_counter()
            if done <= end:
                statuses[status] = statuses.get(status, 0) + 1
                latencies.append(done - start_t)

    await asyncio.gather(*(loop(ue) for ue in ues))
    ok = statuses.get(200, 0)
    lat = sorted(latencies)
    return {"registrations": ok, "rate_per_s": round(ok / seconds, 1),
            "latency_median_ms": round(1000 * statistics.median(lat), 1) if lat else None,
            "latency_p99_ms": round(1000 * _quantile(lat, 0.99), 1) if lat else None,
            "other_statuses": {k: v for k, v in statuses.items() if k != 200}, "errors": errors[:5],
            "error_count": len(errors), "drain_s": round(time.perf_counter() - end, 2)}


async def bench_throughput(net: Network, n_ues: int, seconds: float, runs: int) -> dict:
    ues: list[Ue] = []
    browsers: list[aiohttp.ClientSession] = []
    meter = CpuMeter(net)
    wsf_keylog = net.cfg.keylog("wsf")
    results = []
    try:
        t = time.perf_counter()
        await prepare_ues(net, n_ues, ues, browsers)
        setup_s = time.perf_counter() - t
        await drive(ues, min(1.0, seconds))  # warm-up: the WSF's connections to the AS, first-use paths
        for _ in range(runs):
            handshakes = _keylog_handshakes(wsf_keylog)
            before, w0 = meter.snapshot(), time.perf_counter()
            res = await drive(ues, seconds)
            after, wall = meter.snapshot(), time.perf_counter() - w0
            res["cpu_percent_of_one_core"] = shares = CpuMeter.shares(before, after, wall)
            # CPU per registration (client included): steadier than the rate when the machine is shared
            res["cpu_ms_per_registration"] = (round(10 * shares["all ours"] * wall / res["registrations"], 2)
                                              if res["registrations"] else None)
            res["wsf_tls_handshakes"] = _keylog_handshakes(wsf_keylog) - handshakes  # keep-alive check
            results.append(res)
    finally:
        for ue in ues:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(ue.ws.close(), 3)
        for http in browsers:
            await http.close()
    rates = [r["rate_per_s"] for r in results]
    median_run = sorted(results, key=lambda r: r["rate_per_s"])[len(results) // 2]
    return {"ues": n_ues, "seconds": seconds, "setup_s": round(setup_s, 1), "rate_median_per_s": statistics.median(rates),
            "rates_per_s": rates, "median_run": median_run,
            "errors": sum(r["error_count"] + sum(r["other_statuses"].values()) for r in results)}


# -- measurement 2: the whole 1-22 flow for one new user ------------------------------------------

async def one_flow(net: Network, user: User) -> dict[str, float]:
    """Steps 1-22 for `user`, with a new browser; milliseconds per phase and in total."""
    http = new_http(net)
    ws = None
    try:
        marks = {"start": time.perf_counter()}
        session = await browser_login(http, net, user, marks)
        ue = await open_ue(net, http, user.web_id, session)  # step 12 (relay) / 13 (direct)
        ws = ue.ws
        marks["WSS open"] = time.perf_counter()
        status = await ue.register()  # steps 14-22
        marks["REGISTER 200"] = time.perf_counter()
        if status != 200:
            raise BenchError(f"REGISTER answered {status}")
    finally:
        if ws is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(ws.close(), 3)
        await http.close()
    names = list(marks)
    phases = {b: 1000 * (marks[b] - marks[a]) for a, b in zip(names, names[1:])}
    phases["total"] = 1000 * (marks[names[-1]] - marks["start"])
    return phases


def password_hash_ms(n: int = 10) -> float:
    """What one check of a user password costs at a node (scrypt with the store's parameters),
    measured here: the flow checks two (3rdWWS login, step 1; AS login, step 6)."""
    stored, times = hash_secret("a-password"), []
    for _ in range(n):
        t = time.perf_counter()
        verify_secret("a-password", stored)
        times.append(1000 * (time.perf_counter() - t))
    return round(statistics.median(times), 1)


async def bench_flow(net: Network, count: int) -> dict:
    admin = new_http(net)
    try:  # provisioned beforehand (not part of the flow), one fresh user per flow
        users = [await provision(admin, net) for _ in range(count + 1)]
    finally:
        await admin.close()
    await one_flow(net, users.pop())  # warm-up (imports, first connections inside the nodes)
    meter = CpuMeter(net)
    before, w0 = meter.snapshot(), time.perf_counter()
    flows = [await one_flow(net, u) for u in users]
    shares = CpuMeter.shares(before, meter.snapshot(), time.perf_counter() - w0)
    totals = sorted(f["total"] for f in flows)
    return {"flows": count, "password_hash_ms": password_hash_ms(), "median_ms": round(statistics.median(totals), 1),
            "p90_ms": round(_quantile(totals, 0.9), 1),
            "min_ms": round(totals[0], 1),
            "phase_median_ms": {k: round(statistics.median(f[k] for f in flows), 1) for k in flows[0] if k != "total"},
            "cpu_percent_of_one_core": shares}


# -- report --------------------------------------------------------------------------------------

def _cpu_text(shares: dict[str, float]) -> str:
    return ", ".join(f"{k} {v:.0f} %" for k, v in shares.items())


def print_result(verify: str, signalling: str, thr: dict | None, flow: dict | None) -> None:
    print(f"\n== verify={verify} signalling={signalling}")
    if thr:
        m = thr["median_run"]
        print(f"  re-REGISTER, {thr['ues']} UEs, {thr['seconds']:g} s per run: median {thr['rate_median_per_s']:.0f} "
              f"registrations/s (runs: {', '.join(f'{r:.0f}' for r in thr['rates_per_s'])} /s); "
              f"goal >= {GOAL_RATE:.0f}/s: {'met' if thr['rate_median_per_s'] >= GOAL_RATE else 'NOT met'}")
        print(f"    median run: latency median {m['latency_median_ms']} ms, p99 {m['latency_p99_ms']} ms; "
              f"non-200 {m['other_statuses'] or 0}, errors {m['error_count']}; "
              f"TLS handshakes by the WSF during the run: {m['wsf_tls_handshakes']}")
        print(f"    CPU, % of one core (2 cores = 200 %): {_cpu_text(m['cpu_percent_of_one_core'])}; "
              f"{m['cpu_ms_per_registration']} CPU ms per registration, client and nodes")
        print(f"    setup (provision + login + first REGISTER of {thr['ues']} UEs): {thr['setup_s']} s")
    if flow:
        print(f"  1-22 flow, new user each time, N={flow['flows']}: median {flow['median_ms']} ms, "
              f"p90 {flow['p90_ms']} ms, min {flow['min_ms']} ms; goal median <= {GOAL_FLOW_MS:.0f} ms: "
              f"{'met' if flow['median_ms'] <= GOAL_FLOW_MS else 'NOT met'}")
        print(f"    phase medians, ms: {', '.join(f'{k} {v}' for k, v in flow['phase_median_ms'].items())}")
        print(f"    of which user password checks (scrypt, by design): 2 x {flow['password_hash_ms']} ms "
              f"(login at the 3rdWWS, login at the AS)")
        print(f"    CPU, % of one core: {_cpu_text(flow['cpu_percent_of_one_core'])}")


async def run_one(tmp: Path, verify: str, signalling: str, args) -> dict:
    net = start_network(tmp, verify, signalling)
    try:
        thr = await bench_throughput(net, args.ues, args.seconds, args.runs) if args.runs else None
        flow = await bench_flow(net, args.flows) if args.flows else None
    finally:
        net.stop_all()
    print_result(verify, signalling, thr, flow)
    return {"verify": verify, "signalling": signalling, "throughput": thr, "flow": flow}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="short run: 3 s, 1 run, 5 flows")
    ap.add_argument("--ues", type=int, default=50, help="concurrent UEs (default 50)")
    ap.add_argument("--seconds", type=float, default=10.0, help="duration of one throughput run")
    ap.add_argument("--runs", type=int, default=3, help="throughput runs (the median is reported; 0 skips)")
    ap.add_argument("--flows", type=int, default=30, help="1-22 flows measured (0 skips)")
    ap.add_argument("--verify", nargs="+", choices=Options.CHOICES["verify"], default=list(Options.CHOICES["verify"]))
    ap.add_argument("--signalling", nargs="+", choices=Options.CHOICES["signalling"],
                    default=list(Options.CHOICES["signalling"]))
    ap.add_argument("--json", type=Path, help="also write every number to this file")
    ap.add_argument("--strict", action="store_true", help="exit 1 when a goal is missed")
    args = ap.parse_args()
    if args.quick:
        args.seconds, args.runs, args.flows = min(args.seconds, 3.0), min(args.runs, 1), min(args.flows, 5)
    mach = machine()
    print(f"machine: {mach['platform']}; CPU {mach['cpu']}, {mach['cores']} cores ({mach['usable_cores']} usable); "
          f"Python {mach['python']}; websockets {mach['websockets']}, aiohttp {mach['aiohttp']}, "
          f"werkzeug {mach['werkzeug']}, authlib {mach['authlib']}")
    print("client and reference network share these cores; SIP core transport UDP")
    results = []
    with tempfile.TemporaryDirectory(prefix="bench-refnet-") as tmp:
        for verify in args.verify:
            for signalling in args.signalling:
                results.append(asyncio.run(run_one(Path(tmp), verify, signalling, args)))
    report = {"machine": mach, "goals": {"rate_per_s": GOAL_RATE, "flow_median_ms": GOAL_FLOW_MS},
              "args": {k: str(v) for k, v in vars(args).items()}, "results": results}
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    errors = sum((r["throughput"] or {}).get("errors", 0) for r in results)
    missed = any((r["throughput"] and r["throughput"]["rate_median_per_s"] < GOAL_RATE)
                 or (r["flow"] and r["flow"]["median_ms"] > GOAL_FLOW_MS) for r in results)
    return 1 if errors or (args.strict and missed) else 0


if __name__ == "__main__":
    sys.exit(main())
