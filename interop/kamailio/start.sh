#!/usr/bin/env bash
# Start Kamailio as the P-CSCF (127.0.0.14:5060) and the S-CSCF (127.0.0.15:5060) of BINDING.md,
# with the reference network's AS, 3rdWWS and WSF, in the background. Stop with stop.sh.
#
#   interop/kamailio/start.sh [STATE_DIR] [udp|tcp] [relay|direct]
#
# STATE_DIR (default .interop/kamailio) holds the reference network's state (PKI, key logs,
# identity store), logs/ and pids/. udp|tcp is the WSF's core transport (PICS core.transport);
# the P-CSCF forwards over the transport a request arrived on. relay|direct is the signalling
# path of the reference 3rdWWS and WSF (PICS signalling.path). The binding's addresses are fixed:
# run it in a network namespace (interop/netns.sh) when something else may hold them.
set -euo pipefail
STATE="$(mkdir -p "${1:-.interop/kamailio}" && cd "${1:-.interop/kamailio}" && pwd)"
TRANSPORT="${2:-udp}"
SIGNALLING="${3:-relay}"
HERE="$(cd "$(dirname "$0")" && pwd)"
source "$HERE/../lib.sh"
command -v kamailio >/dev/null || die "kamailio is not installed (make interop-deps)"
[ -x "$IMS" ] || die "$IMS missing (make install)"
trap 'stop_all' ERR

mkdir -p "$STATE/logs" "$STATE/run/pcscf" "$STATE/run/scscf"
# The AS creates the identity store the S-CSCF reads: reference nodes first.
spawn refnet "$STATE/logs/refnet.log" "$IMS" reference up --state-dir "$STATE" \
  --node as --node 3rdwws --node wsf --core-transport "$TRANSPORT" --signalling "$SIGNALLING" \
  --token-lifetime-s 8   # the reference profile's short tokens: the expiry cases wait seconds
wait_for_line refnet "$STATE/logs/refnet.log" "^reference network up" 30

# The S-CSCF's presence and pua modules check their tables' versions at start (their state stays
# in memory): an SQLite file with the schema Kamailio ships.
SQL=/usr/share/kamailio/db_sqlite
[ -r "$SQL/presence-create.sql" ] || die "$SQL/presence-create.sql missing (kamailio-sqlite-modules)"
python3 -c 'import sqlite3, sys; sqlite3.connect(sys.argv[1]).executescript(
  "".join(open(f).read() for f in sys.argv[2:]))' "$STATE/run/scscf/presence.sqlite3" \
  "$SQL/standard-create.sql" "$SQL/presence-create.sql"

for node in pcscf scscf; do
  spawn "$node" "$STATE/logs/$node.log" kamailio -f "$HERE/$node.cfg" -DD -E \
    -Y "$STATE/run/$node" -A "HSS_DB=\"hss=>sqlite://$STATE/refnet.sqlite3\"" \
    -A "PRES_DB=\"sqlite://$STATE/run/scscf/presence.sqlite3\""
done
wait_for_port pcscf 127.0.0.14 5060 20
wait_for_port scscf 127.0.0.15 5060 20
echo "kamailio P-CSCF (pid $(cat "$STATE/pids/pcscf.pid")) and S-CSCF (pid $(cat "$STATE/pids/scscf.pid")) up;" \
     "reference AS, 3rdWWS, WSF (pid $(cat "$STATE/pids/refnet.pid")); state $STATE"
