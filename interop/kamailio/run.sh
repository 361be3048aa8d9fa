#!/usr/bin/env bash
# Start Kamailio (P-CSCF, S-CSCF) and the reference AS, 3rdWWS and WSF, run the catalog against
# them with PROFILE, stop everything by PID. Meant to run inside interop/netns.sh (fixed addresses).
#
#   interop/kamailio/run.sh PROFILE WORKDIR [ims-conformance run arguments...]
# (Allure results go to WORKDIR/allure-results unless the arguments name another --alluredir.)
#
# The state directory is the one the profile's tls.ca_bundle points into (.interop/kamailio for
# profiles/interop-kamailio*.yaml); the reference nodes follow the profile's PICS core.transport
# and signalling.path.
# Exit status: that of `ims-conformance run` (0 pass, 1 fail/inconclusive, 2 error).
set -uo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
source "$HERE/../lib.sh"
PROFILE=$1 WORKDIR=$2; shift 2
cd "$ROOT"
STATE=$(profile_state_dir "$PROFILE")
transport=$(pics "$PROFILE" core.transport) signalling=$(pics "$PROFILE" signalling.path)
[ -n "$STATE" ] && [ -n "$transport" ] || die "$PROFILE: no tls.ca_bundle or core.transport"
rm -rf "$STATE"
"$HERE/start.sh" "$STATE" "$transport" "${signalling:-relay}" || exit 2
trap '"$HERE/stop.sh" "$STATE"' EXIT
# Allure results beside the verdicts: two runs at once (make test runs interop tests on two
# workers) must not share ./allure-results, which each run empties when it starts.
"$IMS" run --profile "$PROFILE" --workdir "$WORKDIR" --alluredir "$WORKDIR/allure-results" "$@"
