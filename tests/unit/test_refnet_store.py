"""The reference network's identity store keeps its look-ups indexed as it grows: every run
provisions users into a state directory that outlives runs (refnet/store.py)."""

from __future__ import annotations

import json
import sqlite3

from refnet.registrations import Identities
from refnet.store import Store


def _plan(db_path, sql: str, *args) -> str:
    with sqlite3.connect(db_path) as db:
        return " ".join(str(row[-1]) for row in db.execute(f"EXPLAIN QUERY PLAN {sql}", args))


def test_impi_and_impu_look_ups_use_indexes(tmp_path):
    db = tmp_path / "refnet.sqlite3"
    store = Store(db)
    store.init_schema()
    for k in range(30):
        store.create_user(f"u{k}@web.example", "pw", f"u{k}@ims.example", [f"sip:u{k}@ims.example", f"tel:+1555{k:04d}"])
    ids = Identities(db)
    assert ids.by_impu("tel:+15550007")["web_id"] == "u7@web.example"
    assert ids.by_impi("u9@ims.example")["impus"] == ["sip:u9@ims.example", "tel:+15550009"]
    assert ids.by_impu("sip:nobody@ims.example") is None
    assert "USING INDEX user_impus_impu" in _plan(db, "SELECT web_id FROM user_impus WHERE impu = ?", "x")
    assert "USING INDEX users_impi" in _plan(db, "SELECT web_id FROM users WHERE impi = ?", "x")
    assert "USING INDEX code_tokens_code" in _plan(db, "SELECT jti FROM code_tokens WHERE code = ?", "x")


def test_an_impu_two_users_share_maps_to_the_first_made(tmp_path):
    db = tmp_path / "refnet.sqlite3"
    store = Store(db)
    store.init_schema()
    store.create_user("first@web.example", "pw", "first@ims.example", ["sip:shared@ims.example"])
    store.create_user("second@web.example", "pw", "second@ims.example", ["sip:own@ims.example", "sip:shared@ims.example"])
    assert Identities(db).by_impu("sip:shared@ims.example")["web_id"] == "first@web.example"


def test_a_store_made_before_the_index_is_brought_up_to_date(tmp_path):
    """A state directory from an earlier version: users but no user_impus. The S-CSCF, which only
    reads, finds users before the AS has brought the store up to date, and after."""
    db = tmp_path / "refnet.sqlite3"
    with sqlite3.connect(db) as old:
        old.execute("CREATE TABLE users (web_id TEXT PRIMARY KEY, password_hash TEXT NOT NULL, impi TEXT NOT NULL, "
                    "impus TEXT NOT NULL)")
        old.executemany("INSERT INTO users VALUES (?, 'x', ?, ?)",
                        [(f"u{k}@web.example", f"u{k}@ims.example", json.dumps([f"sip:u{k}@ims.example"]))
                         for k in range(5)])
    assert Identities(db).by_impu("sip:u3@ims.example")["web_id"] == "u3@web.example"  # not migrated yet
    Store(db).init_schema()
    Store(db).init_schema()  # a second node starting: done already, nothing doubled
    with sqlite3.connect(db) as migrated:
        assert migrated.execute("SELECT count(*) FROM user_impus").fetchone()[0] == 5
        assert migrated.execute("PRAGMA user_version").fetchone()[0] == 1
    assert Identities(db).by_impu("sip:u3@ims.example")["web_id"] == "u3@web.example"
