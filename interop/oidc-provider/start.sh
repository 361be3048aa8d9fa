#!/usr/bin/env bash
# Start oidc-provider (npm `oidc-provider`) as the operator AS of BINDING.md (127.0.0.12:9443,
# HTTPS with the reference network's test CA) and the reference network's 3rdWWS, WSF, P-CSCF and
# S-CSCF pointed at it, in the background. Stop with stop.sh.
#
#   interop/oidc-provider/start.sh [STATE_DIR] [udp|tcp] [relay|direct] [jwt|opaque]
#
# STATE_DIR (default .interop/oidc-provider) holds the reference network's state (PKI, key logs,
# identity store), logs/ and pids/. udp|tcp and relay|direct are the reference nodes' PICS
# core.transport and signalling.path; jwt|opaque is PICS token.format. oidc-provider does not
# introspect JWT access tokens, so with jwt the reference WSF verifies them itself (wsf.verify
# local_jwt) and with opaque it introspects them (wsf.verify introspection). The binding's addresses are fixed: run it in a network
# namespace (interop/netns.sh) when something else may hold them.
set -euo pipefail
STATE="$(mkdir -p "${1:-.interop/oidc-provider}" && cd "${1:-.interop/oidc-provider}" && pwd)"
TRANSPORT="${2:-udp}"
SIGNALLING="${3:-relay}"
TOKEN_FORMAT="${4:-jwt}"
case "$TOKEN_FORMAT" in jwt) VERIFY=local_jwt ;; opaque) VERIFY=introspection ;; *) die "token format $TOKEN_FORMAT" ;; esac
HERE="$(cd "$(dirname "$0")" && pwd)"
source "$HERE/../lib.sh"
command -v node >/dev/null || die "node is not installed"
[ -d "$ROOT/node_modules/oidc-provider" ] || die "npm package oidc-provider missing (make node-deps)"
[ -x "$IMS" ] || die "$IMS missing (make install)"
trap 'stop_all' ERR

mkdir -p "$STATE/logs"
# The reference nodes first: their start creates the test CA, the AS's certificate and the
# operator's identity store that oidc-provider reads.
spawn refnet "$STATE/logs/refnet.log" "$IMS" reference up --state-dir "$STATE" \
  --node 3rdwws --node wsf --node pcscf --node scscf --core-transport "$TRANSPORT" --signalling "$SIGNALLING" --verify "$VERIFY"
wait_for_line refnet "$STATE/logs/refnet.log" "^reference network up" 30

# The identity store (Web ID -> scrypt password hash, IMPI, IMPUs) as oidc-provider's findAccount
# and login page (interactions.mjs) read it; owner-only, like the SQLite store it comes from.
"$ROOT/.venv/bin/python" - "$STATE/refnet.sqlite3" "$STATE/accounts.json" <<'PY'
import json, os, sqlite3, sys
rows = sqlite3.connect(sys.argv[1]).execute("SELECT web_id, password_hash, impi, impus FROM users").fetchall()
with os.fdopen(os.open(sys.argv[2], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as out:
    json.dump([{"web_id": w, "password_hash": h, "impi": i, "impus": json.loads(u)} for w, h, i, u in rows], out)
PY

# ACCESS_TOKEN_TTL: the reference profile's short token lifetime (8 s), so the catalog's expiry
# cases wait seconds; BINDING's default is 300 s.
ACCESS_TOKEN_TTL="${ACCESS_TOKEN_TTL:-8}" TOKEN_FORMAT="$TOKEN_FORMAT" spawn as "$STATE/logs/as.log" node "$HERE/server.mjs" "$STATE"
wait_for_line as "$STATE/logs/as.log" "^oidc-provider listening" 30
echo "oidc-provider AS (pid $(cat "$STATE/pids/as.pid")) up;" \
     "reference 3rdWWS, WSF, P-CSCF, S-CSCF (pid $(cat "$STATE/pids/refnet.pid")); state $STATE"
