"""The user in a real browser (profile `pixit.ue.mode: browser`): headless Chromium driven by
Playwright, playing the UE of the flow test cases the way a person would.

The browser does what the scripted drivers do by hand: it submits the 3rdWWS's login form, follows
the redirects to the AS, fills the AS's authorization form and lands on the WebRTC application,
whose JavaScript client (step 11) opens the WebSocket and registers by itself. What it saw becomes
the same events the scripted drivers produce, so the same expectations judge them:

- every HTTP response of a navigation (each redirect hop, in order) and of the page's own fetches
  -> HttpExchange (Playwright's request/response objects);
- the WebSocket handshakes and frames of the page -> WsHandshake and SipReceived (Chrome DevTools
  Protocol `Network.webSocket*` events: the only place the handshake status and headers and the
  frames the client sends are visible).

TLS: the browser trusts the profile's CA through its own NSS database (certutil, in a temporary
HOME) and writes its TLS secrets to the harness's key log (`--ssl-key-log-file`), so the capture
decrypts the UE's legs as it does for the scripted drivers. Every wait has a deadline.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urljoin, urlsplit

from conformance.codec import sip
from conformance.events import Garbage, HttpExchange, Nothing, SipReceived, WsHandshake

CHROMIUM = "/usr/bin/chromium"
# Debian's chromium as root in a container: no sandbox; nothing may reach out to the internet
ARGS = ["--no-sandbox", "--headless", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
POLL_S = 0.05  # how often a wait lets Playwright deliver the browser's events
PAGE_FETCH_GRACE_S = 1.0  # how long a GET waits for the page itself to request the URL


class BrowserUnavailable(RuntimeError):
    """Chromium, Playwright or certutil is missing: the harness cannot play the user (error)."""


@dataclass
class _Socket:
    """One WebSocket of the page, from the DevTools events."""

    request_id: str
    url: str
    handshake: WsHandshake | None = None
    sent: list[bytes] = field(default_factory=list)
    received: list[bytes] = field(default_factory=list)
    consumed: int = 0  # received frames already returned
    closed: bool = False


def _nss_home(ca_file: str | None) -> Path:
    """A temporary HOME whose NSS database trusts `ca_file` (Chromium on Linux reads ~/.pki/nssdb)."""
    home = Path(tempfile.mkdtemp(prefix="ims-browser-"))
    if not ca_file:
        return home
    if shutil.which("certutil") is None:
        raise BrowserUnavailable("certutil is missing (Debian package libnss3-tools): the browser could "
                                 "not trust the profile's CA")
    db = home / ".pki" / "nssdb"
    db.mkdir(parents=True)
    for cmd in (["certutil", "-N", "--empty-password", "-d", f"sql:{db}"],
                ["certutil", "-A", "-n", "ims-conformance-ca", "-t", "C,,", "-i", str(ca_file), "-d", f"sql:{db}"]):
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
        if done.returncode != 0:
            shutil.rmtree(home, ignore_errors=True)
            raise BrowserUnavailable(f"{' '.join(cmd[:2])}: {done.stderr.strip() or done.stdout.strip()}")
    return home


def _headers(items) -> list[tuple[str, str]]:
    return [(h["name"], h["value"]) for h in items]


class BrowserUe:
    def __init__(self, *, ca_file: str | None, keylog: Path, executable: str = CHROMIUM,
                 clock=time.monotonic):
        # injected: every wait below is measured with it (a Clock object or a function of seconds)
        self.clock = clock.now if hasattr(clock, "now") else clock
        try:
            from playwright.sync_api import sync_playwright
        except ImportError as exc:
            raise BrowserUnavailable(f"Playwright for Python is not installed: {exc}") from exc
        if not Path(executable).exists():
            raise BrowserUnavailable(f"{executable} not found (Debian package chromium)")
        self._cookies: list[str] | None = None
        self.home = _nss_home(ca_file)
        keylog.parent.mkdir(parents=True, exist_ok=True)
        self._pw = sync_playwright().start()
        try:
            self.browser = self._pw.chromium.launch(
                executable_path=executable, headless=True, args=[*ARGS, f"--ssl-key-log-file={keylog}"],
                env={"HOME": str(self.home), "SSLKEYLOGFILE": str(keylog), "PATH": "/usr/bin:/bin"})
            self.context = self.browser.new_context()
            self.page = self.context.new_page()
        except Exception:
            self.close()
            raise
        self.observed: list = []  # Playwright responses the page got, not yet returned to a step
        self.sockets: dict[str, _Socket] = {}
        self.page.on("response", self._on_response)
        cdp = self.context.new_cdp_session(self.page)
        cdp.send("Network.enable")
        cdp.on("Network.webSocketCreated", self._ws_created)
        cdp.on("Network.webSocketHandshakeResponseReceived", self._ws_handshake)
        cdp.on("Network.webSocketFrameSent", lambda p: self._ws_frame(p, sent=True))
        cdp.on("Network.webSocketFrameReceived", lambda p: self._ws_frame(p, sent=False))
        cdp.on("Network.webSocketClosed", self._ws_closed)
        self.cdp = cdp

    # -- events from the browser -------------------------------------------------------------------
    def _on_response(self, response) -> None:
        self.observed.append(response)  # converted when a step takes it (no blocking call in a handler)

    @staticmethod
    def _exchange(response) -> HttpExchange:
        request = response.request
        try:
            body = b"" if 300 <= response.status < 400 else response.body()
        except Exception:  # noqa: BLE001 - a body the browser no longer keeps
            body = b""
        return HttpExchange(
            method=request.method, url=request.url, request_headers=_headers(request.headers_array()),
            request_body=(request.post_data_buffer or b""), status=response.status, reason=response.status_text,
            headers=_headers(response.headers_array()), body=body)

    def _ws_created(self, p) -> None:
        self.sockets[p["requestId"]] = _Socket(p["requestId"], p["url"])

    def _ws_handshake(self, p) -> None:
        sock = self.sockets.get(p["requestId"])
        if sock is None:
            return
        r = p["response"]
        headers = list(r.get("headers", {}).items())
        proto = next((v for k, v in headers if k.lower() == "sec-websocket-protocol"), None)
        sock.handshake = WsHandshake(url=sock.url, status=r.get("status"), headers=headers,
                                     request_headers=list((r.get("requestHeaders") or {}).items()),
                                     subprotocol=proto)

    def _ws_frame(self, p, sent: bool) -> None:
        sock = self.sockets.get(p["requestId"])
        if sock is not None:
            data = p["response"].get("payloadData", "").encode()
            (sock.sent if sent else sock.received).append(data)

    def _ws_closed(self, p) -> None:
        sock = self.sockets.get(p["requestId"])
        if sock is not None:
            sock.closed = True

    def _pump(self, seconds: float) -> None:
        """Let Playwright deliver events (they arrive only while the sync API waits)."""
        self.page.wait_for_timeout(max(1, int(seconds * 1000)))

    def _wait(self, ready, timeout_s: float):
        deadline = self.clock() + timeout_s
        while True:
            found = ready()
            if found is not None or self.clock() >= deadline:
                return found
            self._pump(min(POLL_S, max(0.001, deadline - self.clock())))

    # -- HTTP: what the user does in the page ------------------------------------------------------
    def _take(self, url: str | None = None, method: str = "GET") -> HttpExchange | None:
        for i, resp in enumerate(self.observed):
            if url is None or (resp.url == url and resp.request.method == method):
                del self.observed[:i + 1]  # earlier ones were passed over (sub-resources, hops)
                return self._exchange(resp)
        return None

    def _navigation_hops(self, response) -> list:
        """The hops of the navigation that ended in `response`, first request first."""
        chain, request = [], response.request if response is not None else None
        while request is not None:
            chain.insert(0, request.url)
            request = request.redirected_from
        out = []
        for url in chain:
            ex = next((e for e in self.observed if e.url == url and e not in out), None)
            if ex is not None:
                out.append(ex)
        return out

    def _navigated(self, action, timeout_s: float) -> HttpExchange:
        """Run `action` (a click, a goto), wait for the page to load, return the first hop; the
        others wait for the following steps (`follow: location`, or a GET of the same URL)."""
        from playwright.sync_api import TimeoutError as NavigationTimeout

        self.observed.clear()
        try:
            with self.page.expect_navigation(timeout=timeout_s * 1000, wait_until="load") as nav:
                action()
        except NavigationTimeout as exc:
            # the server kept the page waiting past the step's deadline: silence, not a harness defect
            raise ConnectionError(f"no page loaded within {timeout_s:.3g} s ({self.page.url})") from exc
        hops = self._navigation_hops(nav.value)
        if not hops:
            raise ConnectionError("the browser loaded nothing")
        self.observed = hops + [e for e in self.observed if e not in hops]
        return self._take()

    def get(self, url: str, timeout_s: float) -> HttpExchange:
        """A GET: the next hop of the last navigation or a request the page made itself (e.g. the
        client's fetch of /webrtc/session) if it is that URL; otherwise the user opens the URL."""
        found = self._take(url) or self._wait(lambda: self._take(url), min(PAGE_FETCH_GRACE_S, timeout_s))
        if found is not None:
            return found
        return self._navigated(lambda: self.page.goto(url, wait_until="commit"), timeout_s)

    def follow(self, location_url: str, timeout_s: float) -> HttpExchange:
        """`follow: location`: the browser has followed it already (the next hop), or opens it."""
        return self.get(location_url, timeout_s)

    def submit_form(self, form_index: int, entries: list[tuple[str, str]], typed: dict[str, str],
                    timeout_s: float) -> HttpExchange:
        """Fill form number `form_index` of the current page: the fields the user types (`typed`)
        with real key strokes, the rest (hidden fields, consent choice) set to `entries`, then press
        the submit control that `entries` names (or the form's default one)."""
        form = self.page.locator("form").nth(form_index)
        keyed = []  # the fields a person types into; everything else is set like the page would
        for name, value in typed.items():
            field_ = form.locator(f'input[name="{name}"]:not([type=hidden]):not([type=radio])'
                                  ':not([type=checkbox]):not([type=submit]):visible')
            if field_.count():
                field_.first.fill(value)
                keyed.append(name)
        script = """([index, entries, typed]) => {
          const form = document.forms[index], want = {};
          for (const [n, v] of entries) (want[n] = want[n] || []).push(v);
          let submitter = null;
          for (const el of form.elements) {
            if (!el.name || el.disabled || typed.includes(el.name)) continue;
            const vals = want[el.name], t = (el.type || "").toLowerCase();
            if (t === "submit" || t === "image" || (el.tagName === "BUTTON" && (t === "" || t === "submit"))) {
              if (!submitter && vals && vals.includes(el.value)) submitter = el;
            } else if (t === "radio" || t === "checkbox") {
              el.checked = !!vals && vals.includes(el.value || "on");
            } else if (el.tagName === "SELECT") {
              for (const o of el.options) o.selected = !!vals && vals.includes(o.value);
            } else if (vals === undefined) {
              el.disabled = true;          // a field the test case removes is not submitted
            } else {
              el.value = vals[0];
            }
          }
          form.requestSubmit(submitter || undefined);
        }"""
        return self._navigated(lambda: self.page.evaluate(script, [form_index, entries, keyed]), timeout_s)

    def open_page_with_form(self, url: str, timeout_s: float) -> str:
        """For a POST the test case sends as a form: the page whose form posts there (the site's
        home page when the browser is elsewhere). Returns its HTML."""
        here = self.page.url
        if urlsplit(here)[:2] != urlsplit(url)[:2]:
            self.page.goto(urljoin(url, "/"), timeout=timeout_s * 1000, wait_until="load")
            self.observed.clear()
        return self.page.content()

    def cookie_values(self) -> list[str]:
        """Values of the browser's cookies (the capture ties messages to a test case by them);
        after close(), those it had when it closed."""
        if self._cookies is not None:
            return self._cookies
        return [c["value"] for c in self.context.cookies()]

    # -- WebSocket: what the page's client does ----------------------------------------------------
    def _socket(self, url: str) -> _Socket | None:
        return next((s for s in self.sockets.values() if s.url == url and s.handshake is not None), None)

    def websocket(self, url: str, timeout_s: float) -> WsHandshake:
        sock = self._wait(lambda: self._socket(url), timeout_s)
        if sock is None:
            opened = ", ".join(s.url for s in self.sockets.values()) or "none"
            return WsHandshake(url=url, status=None, error=f"the page opened no WebSocket to {url} within "
                                                           f"{timeout_s:.0f} s (opened: {opened})")
        return sock.handshake

    def sip_exchange(self, url: str, method: str, timeout_s: float):
        """The request `method` the page's client sent on its WebSocket to `url` and the final
        response to it: (raw request or None, SipReceived | Garbage | Nothing)."""
        started = self.clock()
        sock = self._socket(url)
        if sock is None:
            return None, Nothing(0.0)

        def request():
            for raw in sock.sent:
                if raw.split(b" ", 1)[0] == method.encode():
                    return raw
            return None

        raw_request = self._wait(request, timeout_s)
        if raw_request is None:
            return None, Nothing((self.clock() - started) * 1000.0)

        def final():
            while sock.consumed < len(sock.received):
                raw = sock.received[sock.consumed]
                sock.consumed += 1
                try:
                    msg = sip.parse(raw)
                except sip.SipParseError as exc:
                    return Garbage(raw=raw, reason=f"not a SIP message: {exc}", transport="wss")
                if not msg.is_request and msg.status >= 200:
                    return SipReceived(message=msg, raw=raw, transport="wss", peer=urlsplit(url).netloc)
            return None

        left = max(0.0, timeout_s - (self.clock() - started))
        return raw_request, self._wait(final, left) or Nothing((self.clock() - started) * 1000.0)

    def close(self) -> None:
        try:
            self._cookies = self.cookie_values()
        except Exception:  # noqa: BLE001 - a browser that died keeps no cookies
            self._cookies = []
        browser = getattr(self, "browser", None)
        try:
            if browser is not None:
                browser.close()
        except Exception:  # noqa: BLE001 - closing must never mask the verdict
            pass
        try:
            self._pw.stop()
        except Exception:  # noqa: BLE001
            pass
        shutil.rmtree(self.home, ignore_errors=True)
