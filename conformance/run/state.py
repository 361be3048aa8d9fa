"""Per-test-case state: the connections, the cookie jar, saved values and the last thing received.

One `CaseState` lives for one test case; `close()` releases every socket it opened, whatever
happened, so a misbehaving SUT cannot leak connections into the next test case.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class CaseState:
    profile: Any
    user: dict
    users: dict
    keylog: Path
    saved: dict = field(default_factory=dict)
    http: Any = None  # conformance.drivers.http.HttpDriver, created lazily
    ws: dict = field(default_factory=dict)  # name -> WebSocket connection
    sip: dict = field(default_factory=dict)  # "udp:host:port" -> SIP transport
    # WebSocket name -> requests (SipReceived) the node sent while the harness awaited the answer
    # to its own request; sip_serve takes them first (RFC 6665 4.1.2.4: NOTIFY before the 200)
    held: dict = field(default_factory=dict)
    dialogs: dict = field(default_factory=dict)
    # +sip.instance -> the Contact URIs the harness sent with it (reginfo matches a contact by either)
    registered_contacts: dict = field(default_factory=dict)  # sip_send `dialog:` name -> conformance.run.sip_dialog.Dialog
    last_http: Any = None  # the previous HttpExchange (form filling, follow: location)
    last_received: Any = None
    browser: Any = None  # conformance.drivers.browser.BrowserUe when the browser plays the user
    browser_ws: dict = field(default_factory=dict)  # ws_connect name -> URL the page's client opened

    def close(self) -> None:
        for conn in list(self.ws.values()) + list(self.sip.values()):
            try:
                conn.close()
            except Exception:  # noqa: BLE001 - closing must never mask the verdict
                pass
        self.ws.clear()
        self.sip.clear()
        self.held.clear()
        if self.http is not None:
            self.http.close()
        if self.browser is not None:
            self.browser.close()
