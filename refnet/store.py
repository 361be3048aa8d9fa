"""The operator's database (SQLite): users, third-party accounts, OAuth clients, codes, tokens.

One file per reference network (`cfg.db_path`), WAL mode so that several node processes read it
while the AS writes. Shared on purpose, as one operator domain plus a simplification:
- the WSF reads the Web ID -> IMS identity mapping (`identity()`) in local_jwt mode;
- the 3rdWWS reads its own accounts (`tp_accounts`) from the same file, so that provisioning a
  test identity at the AS (`POST /admin/users`) also creates its third-party account. A real
  third party keeps its own database; nothing on the wire depends on this shortcut.

Connections are per thread (sqlite3 objects must not cross threads), autocommit, with a busy
timeout so concurrent writers wait instead of failing.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import sqlite3
import threading
import time
from pathlib import Path

from .config import SEED_USERS, NetworkConfig

SCHEMA = """
CREATE TABLE IF NOT EXISTS users (
    web_id TEXT PRIMARY KEY, password_hash TEXT NOT NULL, impi TEXT NOT NULL, impus TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS tp_accounts (
    username TEXT PRIMARY KEY, password_hash TEXT NOT NULL,
    web_id TEXT NOT NULL REFERENCES users(web_id));
CREATE TABLE IF NOT EXISTS clients (
    client_id TEXT PRIMARY KEY, secret_hash TEXT NOT NULL, redirect_uris TEXT NOT NULL,
    auth_method TEXT NOT NULL, grant_types TEXT NOT NULL, scope TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS codes (
    code TEXT PRIMARY KEY, client_id TEXT NOT NULL, redirect_uri TEXT, web_id TEXT NOT NULL,
    scope TEXT NOT NULL, code_challenge TEXT, code_challenge_method TEXT,
    expires_at REAL NOT NULL, used INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS tokens (
    jti TEXT PRIMARY KEY, token TEXT NOT NULL UNIQUE, web_id TEXT NOT NULL, client_id TEXT NOT NULL,
    scope TEXT NOT NULL, iat INTEGER NOT NULL, exp INTEGER NOT NULL, revoked INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS code_tokens (code TEXT NOT NULL, jti TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS user_impus (impu TEXT NOT NULL, web_id TEXT NOT NULL REFERENCES users(web_id));
CREATE INDEX IF NOT EXISTS users_impi ON users(impi);
CREATE INDEX IF NOT EXISTS user_impus_impu ON user_impus(impu);
CREATE INDEX IF NOT EXISTS code_tokens_code ON code_tokens(code);
"""
# Look-ups by IMPI and IMPU (the S-CSCF's, per REGISTER and SUBSCRIBE) and by code are indexed:
# the state directory outlives runs, and every run provisions users. Unindexed, after some weeks
# of runs (23,000 users), an IMPU look-up scanned every user's JSON list (11 ms) and an IMPI
# look-up every row (3 ms), about 2 s of a catalog run (measured: fresh state 22-23 s, grown 24-26 s).
# user_version 1: user_impus is filled (from users' JSON lists, for a database made before it).
_SCHEMA_VERSION = 1

# scrypt parameters (RFC 7914). N=2^14 (the interactive-login recommendation) costs ~50 ms on the
# 2-core benchmark machine, paid twice in the 1-22 flow (3rdWWS login, AS login) and twice more
# when the harness provisions a test case's identity (password, third-party password). The
# identities here are test fixtures with random passwords, so N=2^10 (1 MiB, ~3 ms; 2^11 was
# ~5.5 ms, about 1 s of a serial catalog run spent hashing in the AS; issue 15). Stored hashes
# carry their own N, so hashes written with another N still verify.
_N, _R, _P = 1 << 10, 8, 1


def hash_secret(secret: str) -> str:
    salt = os.urandom(16)
    digest = hashlib.scrypt(secret.encode(), salt=salt, n=_N, r=_R, p=_P, dklen=32)
    return f"scrypt${_N}${_R}${_P}${salt.hex()}${digest.hex()}"


def verify_secret(secret: str, stored: str) -> bool:
    try:
        algo, n, r, p, salt, digest = stored.split("$")
        if algo != "scrypt":
            return False
        got = hashlib.scrypt(secret.encode(), salt=bytes.fromhex(salt), n=int(n), r=int(r), p=int(p),
                             dklen=len(digest) // 2)
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(got.hex(), digest)


class VerifiedSecrets:
    """Client secrets (RFC 6749 2.3.1) that already passed scrypt in this process.

    A confidential client presents its secret on every request: the WSF on every introspection
    (step 15), so on every REGISTER. scrypt is slow on purpose, right for a person's password
    and a bottleneck for a machine client. After one successful check, the stored hash maps to
    HMAC-SHA-256(process-random key, secret), compared in constant time: the secret itself is never
    kept, a changed secret (a new stored hash, new salt) misses, and a wrong secret still pays the
    full scrypt. User passwords never go through this (check_user, check_tp_account)."""

    MAX = 256  # distinct stored hashes remembered (one per client secret)

    def __init__(self):
        self._key = os.urandom(32)
        self._macs: dict[str, bytes] = {}
        self._lock = threading.Lock()

    def check(self, secret: str, stored: str) -> bool:
        try:
            mac = hmac.new(self._key, secret.encode(), hashlib.sha256).digest()
        except (UnicodeEncodeError, AttributeError):
            return False
        with self._lock:
            known = self._macs.get(stored)
        if known is not None and hmac.compare_digest(mac, known):
            return True
        if not verify_secret(secret, stored):
            return False
        with self._lock:
            if len(self._macs) >= self.MAX:
                self._macs.pop(next(iter(self._macs)))
            self._macs[stored] = mac
        return True


class Conflict(ValueError):
    """The Web ID or third-party username already exists."""


class Store:
    def __init__(self, db_path: str | Path):
        self.db_path = str(db_path)
        self._local = threading.local()

    # -- connection ----------------------------------------------------------------------------
    @property
    def db(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.db_path, timeout=10, isolation_level=None)
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA foreign_keys=ON")
            self._local.conn = conn
        return conn

    def init_schema(self) -> None:
        db = self.db
        db.executescript(SCHEMA)
        if db.execute("PRAGMA user_version").fetchone()[0] >= _SCHEMA_VERSION:
            return
        db.execute("BEGIN IMMEDIATE")  # one process migrates; the others find it done
        try:
            if db.execute("PRAGMA user_version").fetchone()[0] < _SCHEMA_VERSION:
                db.execute("DELETE FROM user_impus")
                db.execute("INSERT INTO user_impus SELECT j.value, u.web_id FROM users u, json_each(u.impus) j "
                           "ORDER BY u.rowid")
                db.execute(f"PRAGMA user_version = {_SCHEMA_VERSION}")
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def seed(self, cfg: NetworkConfig) -> None:
        """Create the schema, the fixture identities and the two OAuth clients (idempotent)."""
        self.init_schema()
        for user in SEED_USERS:
            if self.identity(user["web_id"]) is None:
                try:
                    self.create_user(**user)
                except Conflict:  # another process seeded it meanwhile
                    pass
        self.put_client(cfg.client_id, cfg.client_secret, [cfg.redirect_uri], grant_types=["authorization_code"],
                        scope=cfg.scope)
        self.put_client(cfg.wsf_client_id, cfg.wsf_client_secret, [], grant_types=[], scope="")
        for client_id, secret in ((cfg.short_lived_client_id, cfg.short_lived_client_secret),
                                  (cfg.other_audience_client_id, cfg.other_audience_client_secret)):
            self.put_client(client_id, secret, [cfg.redirect_uri], grant_types=["authorization_code"],
                            scope=cfg.scope)

    # -- users ---------------------------------------------------------------------------------
    def create_user(self, web_id: str, password: str, impi: str, impus: list[str],
                    tp_username: str | None = None, tp_password: str | None = None) -> dict:
        pw_hash = hash_secret(password)  # hashed outside the transaction: scrypt is slow on purpose
        tp_hash = hash_secret(tp_password) if tp_username and tp_password is not None else None
        db = self.db
        try:
            db.execute("BEGIN IMMEDIATE")
            db.execute("INSERT INTO users VALUES (?, ?, ?, ?)", (web_id, pw_hash, impi, json.dumps(list(impus))))
            db.executemany("INSERT INTO user_impus VALUES (?, ?)", [(impu, web_id) for impu in impus])
            if tp_hash is not None:
                db.execute("INSERT INTO tp_accounts VALUES (?, ?, ?)", (tp_username, tp_hash, web_id))
            db.execute("COMMIT")
        except sqlite3.IntegrityError as exc:
            db.execute("ROLLBACK")
            raise Conflict(str(exc)) from None
        except BaseException:
            db.execute("ROLLBACK")
            raise
        return {"web_id": web_id, "impi": impi, "impus": list(impus), "tp_username": tp_username}

    def identity(self, web_id: str) -> dict | None:
        """The IMS identities mapped to an operator Web ID: {web_id, impi, impus (default first)}."""
        row = self.db.execute("SELECT web_id, impi, impus FROM users WHERE web_id = ?", (web_id,)).fetchone()
        if row is None:
            return None
        return {"web_id": row["web_id"], "impi": row["impi"], "impus": json.loads(row["impus"])}

    def check_user(self, web_id: str, password: str) -> dict | None:
        row = self.db.execute("SELECT password_hash FROM users WHERE web_id = ?", (web_id,)).fetchone()
        if row is None or not verify_secret(password, row["password_hash"]):
            return None
        return self.identity(web_id)

    def check_tp_account(self, username: str, password: str) -> dict | None:
        row = self.db.execute("SELECT username, password_hash, web_id FROM tp_accounts WHERE username = ?",
                              (username,)).fetchone()
        if row is None or not verify_secret(password, row["password_hash"]):
            return None
        return {"username": row["username"], "web_id": row["web_id"]}

    # -- OAuth clients -------------------------------------------------------------------------
    def put_client(self, client_id: str, secret: str, redirect_uris: list[str], grant_types: list[str],
                   scope: str, auth_method: str = "client_secret_basic") -> None:
        """Register or update a client; the configuration is authoritative (ports may change)."""
        current = self.client(client_id)
        if (current and current["redirect_uris"] == redirect_uris and current["grant_types"] == grant_types
                and current["scope"] == scope and current["auth_method"] == auth_method
                and verify_secret(secret, current["secret_hash"])):
            return
        self.db.execute("INSERT OR REPLACE INTO clients VALUES (?, ?, ?, ?, ?, ?)",
                        (client_id, hash_secret(secret), json.dumps(redirect_uris), auth_method,
                         json.dumps(grant_types), scope))

    def client(self, client_id: str) -> dict | None:
        row = self.db.execute("SELECT * FROM clients WHERE client_id = ?", (client_id,)).fetchone()
        if row is None:
            return None
        d = dict(row)
        d["redirect_uris"] = json.loads(d["redirect_uris"])
        d["grant_types"] = json.loads(d["grant_types"])
        return d

    # -- authorization codes -------------------------------------------------------------------
    def save_code(self, code: str, client_id: str, redirect_uri: str | None, web_id: str, scope: str,
                  code_challenge: str | None, code_challenge_method: str | None, lifetime_s: float) -> None:
        self.db.execute("INSERT INTO codes VALUES (?, ?, ?, ?, ?, ?, ?, ?, 0)",
                        (code, client_id, redirect_uri, web_id, scope, code_challenge, code_challenge_method,
                         time.time() + lifetime_s))

    def claim_code(self, code: str, client_id: str | None, allow_reuse: bool = False) -> dict | None:
        """Atomically consume a live code issued to `client_id` (single use even under concurrency;
        None: issued to any client, fault as-code-any-client).

        A claimed code stays consumed even if the rest of the token request then fails."""
        db = self.db
        db.execute("BEGIN IMMEDIATE")
        try:
            row = db.execute("SELECT * FROM codes WHERE code = ? AND (? IS NULL OR client_id = ?) AND expires_at > ?"
                             + ("" if allow_reuse else " AND used = 0"),
                             (code, client_id, client_id, time.time())).fetchone()
            if row is not None:
                db.execute("UPDATE codes SET used = 1 WHERE code = ?", (code,))
            elif not allow_reuse:
                # RFC 6749 4.1.2: a replayed code SHOULD revoke the tokens issued with it
                db.execute("UPDATE tokens SET revoked = 1 WHERE jti IN (SELECT jti FROM code_tokens "
                           "WHERE code = ?)", (code,))
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        return dict(row) if row is not None else None

    # -- access tokens -------------------------------------------------------------------------
    def save_token(self, jti: str, token: str, web_id: str, client_id: str, scope: str, iat: int, exp: int) -> None:
        self.db.execute("INSERT INTO tokens VALUES (?, ?, ?, ?, ?, ?, ?, 0)",
                        (jti, token, web_id, client_id, scope, iat, exp))

    def token_by_value(self, token: str) -> dict | None:
        row = self.db.execute("SELECT * FROM tokens WHERE token = ?", (token,)).fetchone()
        return dict(row) if row is not None else None

    def link_code_token(self, code: str, jti: str) -> None:
        """Remember which code a token was issued for (to revoke it if the code is replayed)."""
        self.db.execute("INSERT INTO code_tokens VALUES (?, ?)", (code, jti))

    def revoke_token(self, jti: str) -> None:
        self.db.execute("UPDATE tokens SET revoked = 1 WHERE jti = ?", (jti,))
