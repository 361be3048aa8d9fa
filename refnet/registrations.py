"""S-CSCF registrar bindings kept in SQLite, so that they survive an S-CSCF restart within their expiry.

RFC 3261 10.3 (processing REGISTER) step 7 decides when a binding is added, refreshed or removed;
RFC 5626 4.2 keys a binding by (AOR, +sip.instance, reg-id) when the UA sends both, else by the
Contact URI. This module only stores; the S-CSCF (refnet/cscf.py) parses the SIP.

It also reads the identity store (refnet/store.py's database) read-only to map an IMPI to its
IMPUs: the S-CSCF, unlike the WSF, knows the user by IMPI only.
"""

from __future__ import annotations

import json
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

SCHEMA = """
CREATE TABLE IF NOT EXISTS bindings (
    aor        TEXT NOT NULL,     -- the registered IMPU (To URI), as the S-CSCF normalised it
    key        TEXT NOT NULL,     -- '+sip.instance|reg-id' (RFC 5626) or the Contact URI
    contact    TEXT NOT NULL,     -- Contact value to echo, without its expires parameter
    impi       TEXT NOT NULL,
    call_id    TEXT NOT NULL,
    cseq       INTEGER NOT NULL,
    expires_at REAL NOT NULL,     -- epoch seconds
    path       TEXT NOT NULL,     -- JSON list of the Path header values, in order
    PRIMARY KEY (aor, key)
);
-- every REGISTER first deletes the expired bindings: an index keeps that from scanning them all
CREATE INDEX IF NOT EXISTS bindings_expiry ON bindings (expires_at);
"""


class OutOfOrder(Exception):
    """RFC 3261 10.3 step 7: same Call-ID and a CSeq not higher than the binding's: the update fails."""


@dataclass(frozen=True)
class Binding:
    aor: str
    key: str
    contact: str
    impi: str
    call_id: str
    cseq: int
    expires_at: float
    path: tuple[str, ...]

    def remaining(self, now: float | None = None) -> int:
        return max(0, int(round(self.expires_at - (time.time() if now is None else now))))


@dataclass(frozen=True)
class ContactUpdate:
    key: str
    contact: str
    expires: int  # granted seconds; 0 removes the binding


class Registrations:
    def __init__(self, path: str | Path):
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        # One process, one event loop thread: a single connection is enough.
        self.db = sqlite3.connect(str(path), isolation_level=None, timeout=5)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: durable across a process restart
        self.db.executescript(SCHEMA)

    def close(self) -> None:
        self.db.close()

    def bindings(self, aor: str, now: float | None = None) -> list[Binding]:
        now = time.time() if now is None else now
        rows = self.db.execute(
            "SELECT aor, key, contact, impi, call_id, cseq, expires_at, path FROM bindings "
            "WHERE aor = ? AND expires_at > ? ORDER BY expires_at DESC, key", (aor, now)).fetchall()
        return [Binding(r[0], r[1], r[2], r[3], r[4], r[5], r[6], tuple(json.loads(r[7]))) for r in rows]

    def update(self, aor: str, impi: str, call_id: str, cseq: int, path: list[str],
               contacts: list[ContactUpdate], now: float | None = None) -> list[Binding]:
        """Apply the Contacts of one REGISTER atomically; returns the AOR's bindings afterwards."""
        now = time.time() if now is None else now
        self.db.execute("BEGIN IMMEDIATE")
        try:
            self.db.execute("DELETE FROM bindings WHERE expires_at <= ?", (now,))
            for c in contacts:
                self._check_order(aor, c.key, call_id, cseq)
                if c.expires <= 0:
                    self.db.execute("DELETE FROM bindings WHERE aor = ? AND key = ?", (aor, c.key))
                else:
                    self.db.execute(
                        "INSERT OR REPLACE INTO bindings VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                        (aor, c.key, c.contact, impi, call_id, cseq, now + c.expires, json.dumps(path)))
            self.db.execute("COMMIT")
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        return self.bindings(aor, now)

    def remove_all(self, aor: str, call_id: str, cseq: int, now: float | None = None) -> None:
        """`Contact: *` with `Expires: 0` (RFC 3261 10.3 step 6)."""
        now = time.time() if now is None else now
        self.db.execute("BEGIN IMMEDIATE")
        try:
            for (key,) in self.db.execute("SELECT key FROM bindings WHERE aor = ? AND expires_at > ?",
                                          (aor, now)).fetchall():
                self._check_order(aor, key, call_id, cseq)
            self.db.execute("DELETE FROM bindings WHERE aor = ?", (aor,))
            self.db.execute("COMMIT")
        except BaseException:
            self.db.execute("ROLLBACK")
            raise

    def drop_aor(self, aor: str) -> None:
        """Network-initiated de-registration: every binding of the AOR goes, whatever its Call-ID."""
        self.db.execute("DELETE FROM bindings WHERE aor = ?", (aor,))

    def remove_others(self, aor: str, keep: set[str]) -> None:
        """Fault scscf-single-binding only: every binding of the AOR but `keep` goes."""
        for (key,) in self.db.execute("SELECT key FROM bindings WHERE aor = ?", (aor,)).fetchall():
            if key not in keep:
                self.db.execute("DELETE FROM bindings WHERE aor = ? AND key = ?", (aor, key))

    def _check_order(self, aor: str, key: str, call_id: str, cseq: int) -> None:
        row = self.db.execute("SELECT call_id, cseq FROM bindings WHERE aor = ? AND key = ?",
                              (aor, key)).fetchone()
        if row and row[0] == call_id and cseq <= row[1]:
            raise OutOfOrder(f"CSeq {cseq} not higher than {row[1]} for this Call-ID")


class Identities:
    """Read-only lookups in the identity store's `users` table (refnet/store.py: web_id, impi, impus JSON).

    Opened lazily: the AS creates the database, and the S-CSCF may start first."""

    def __init__(self, db_path: str | Path):
        self.db_path = Path(db_path)
        self._db: sqlite3.Connection | None = None

    def _conn(self) -> sqlite3.Connection | None:
        if self._db is None and self.db_path.exists():
            self._db = sqlite3.connect(f"file:{self.db_path}?mode=ro", uri=True, timeout=5,
                                       isolation_level=None)
        return self._db

    def by_impi(self, impi: str) -> dict | None:
        """{web_id, impi, impus (default first)} of the user with this IMPI, or None."""
        db = self._conn()
        if db is None:
            return None
        try:
            row = db.execute("SELECT web_id, impi, impus FROM users WHERE impi = ?", (impi,)).fetchone()
        except sqlite3.OperationalError:  # schema not created yet
            return None
        if row is None:
            return None
        return {"web_id": row[0], "impi": row[1], "impus": json.loads(row[2])}


    def by_impu(self, impu: str) -> dict | None:
        """The user one of whose IMPUs is exactly `impu` (as stored), or None."""
        db = self._conn()
        if db is None:
            return None
        try:  # the index the identity store keeps (refnet/store.py); the first user made wins
            row = db.execute("SELECT u.web_id, u.impi, u.impus FROM user_impus i JOIN users u ON u.web_id = i.web_id "
                             "WHERE i.impu = ? ORDER BY u.rowid LIMIT 1", (impu,)).fetchone()
        except sqlite3.OperationalError:  # a store the AS has not brought up to date yet
            try:
                row = db.execute("SELECT u.web_id, u.impi, u.impus FROM users u, json_each(u.impus) j "
                                 "WHERE j.value = ? LIMIT 1", (impu,)).fetchone()
            except sqlite3.OperationalError:  # schema not created yet
                return None
        if row is None:
            return None
        return {"web_id": row[0], "impi": row[1], "impus": json.loads(row[2])}

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None


def identity_by_impi(db_path: str | Path, impi: str) -> dict | None:
    ids = Identities(db_path)
    try:
        return ids.by_impi(impi)
    finally:
        ids.close()
