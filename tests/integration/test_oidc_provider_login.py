"""The login page of the oidc-provider interop AS (interop/oidc-provider/interactions.mjs) checks
passwords against the operator's identity store, whose hashes refnet/store.py writes: the Node
verifier must accept exactly the password a hash was made from.

Needs node and `make node-deps` (interactions.mjs imports oidc-provider's errors)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from refnet.store import hash_secret

REPO = Path(__file__).resolve().parents[2]
NODE_TIMEOUT_S = 30

pytestmark = [
    pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed"),
    pytest.mark.skipif(not (REPO / "node_modules" / "oidc-provider").is_dir(), reason="make node-deps"),
]

# reads [[password, stored], ...] on stdin, prints [verifyPassword(password, stored), ...]
VERIFY_ALL = """
import { verifyPassword } from './interop/oidc-provider/interactions.mjs';
let input = '';
process.stdin.on('data', (c) => { input += c; });
process.stdin.on('end', async () => {
  const out = [];
  for (const [password, stored] of JSON.parse(input)) out.push(await verifyPassword(password, stored));
  console.log(JSON.stringify(out));
});
"""


def verify_all(pairs: list[list]) -> list[bool]:
    proc = subprocess.run(["node", "--input-type=module", "-e", VERIFY_ALL], cwd=REPO, input=json.dumps(pairs),
                          capture_output=True, text=True, timeout=NODE_TIMEOUT_S)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_node_verifier_accepts_only_the_hashed_password():
    stored = hash_secret("alice-pw")
    other = hash_secret("alice-pw")  # same password, another salt
    salt_changed = stored.split("$")
    salt_changed[4] = ("0" if salt_changed[4][0] != "0" else "1") + salt_changed[4][1:]
    got = verify_all([
        ["alice-pw", stored],
        ["alice-pw", other],
        ["alice-pw ", stored],          # one character more
        ["alice-p", stored],            # one character less
        ["", stored],
        ["bob-pw", stored],
        ["alice-pw", "$".join(salt_changed)],
        ["alice-pw", "pbkdf2$1$2$3$00$00"],   # not an scrypt hash
        ["alice-pw", "scrypt$2048$8$1$00"],   # truncated
        ["alice-pw", "scrypt$2048$8$1$00$zz"],   # no digest
        ["alice-pw", "scrypt$3$8$1$00$00"],   # N not a power of two: scrypt refuses it
        [None, stored],                 # no password field in the form
    ])
    assert got == [True, True] + [False] * 10
