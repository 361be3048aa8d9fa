"""Network-initiated de-registration (TS 24.229 5.4.1.5), triggered by the operator.

In an IMS the trigger is the HSS (Cx Registration-Termination) or an operator action; the
reference network offers it as a test-support admin call on the AS (`POST /admin/deregister`,
Bearer admin token, JSON {"impu": ..., "event": "deactivated" | "rejected"}), the same way it
provisions test users. The AS queues the request in the shared database; the S-CSCF picks it up
(polled, at most POLL_S late), removes the IMPU's bindings and notifies every reg-event
subscriber: registration terminated, contacts terminated with the event, subscription terminated
(RFC 3680 5.3, RFC 6665 4.2.2). A vendor names its own trigger in PIXIT lifecycle.deregister_url.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import sqlite3
from pathlib import Path

log = logging.getLogger("refnet.deregister")

POLL_S = 0.1
EVENTS = ("deactivated", "rejected")
SCHEMA = """CREATE TABLE IF NOT EXISTS network_deregistrations (
    id INTEGER PRIMARY KEY AUTOINCREMENT, impu TEXT NOT NULL, event TEXT NOT NULL)"""


def queue(db_path: str | Path, impu: str, event: str) -> None:
    db = sqlite3.connect(str(db_path), timeout=5, isolation_level=None)
    try:
        db.execute(SCHEMA)
        db.execute("INSERT INTO network_deregistrations (impu, event) VALUES (?, ?)", (impu, event))
    finally:
        db.close()


def add_admin_route(app, cfg, store) -> None:
    """POST /admin/deregister on the AS's Flask app (test support, like /admin/users)."""
    from flask import jsonify, request

    @app.post("/admin/deregister")
    def admin_deregister():
        if not hmac.compare_digest(request.headers.get("Authorization", ""), f"Bearer {cfg.admin_token}"):
            return jsonify(error="invalid_token"), 401, {"WWW-Authenticate": 'Bearer realm="refnet-admin"'}
        body = request.get_json(silent=True)
        if not isinstance(body, dict) or not isinstance(body.get("impu"), str) or not body["impu"]:
            return jsonify(error="invalid_request", error_description="impu: non-empty string required"), 400
        event = body.get("event", "deactivated")
        if event not in EVENTS:
            return jsonify(error="invalid_request", error_description=f"event: one of {', '.join(EVENTS)}"), 400
        queue(cfg.db_path, body["impu"], event)
        return jsonify(queued=True), 202


async def poll(db_path: str | Path, handle, stop: asyncio.Event) -> None:
    """Call `handle(impu, event)` for each request queued after the S-CSCF started."""
    last = None
    db = None
    while not stop.is_set():
        try:
            if db is None and Path(db_path).exists():
                db = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=5, isolation_level=None)
            if db is not None:
                if last is None:
                    last = db.execute("SELECT COALESCE(MAX(id), 0) FROM network_deregistrations").fetchone()[0]
                rows = db.execute("SELECT id, impu, event FROM network_deregistrations WHERE id > ? ORDER BY id",
                                  (last,)).fetchall()
                for row_id, impu, event in rows:
                    last = row_id
                    await handle(impu, event)
        except sqlite3.OperationalError:  # the table does not exist yet
            if last is None:
                last = 0
        try:
            await asyncio.wait_for(stop.wait(), POLL_S)
        except TimeoutError:
            pass
    if db is not None:
        db.close()
