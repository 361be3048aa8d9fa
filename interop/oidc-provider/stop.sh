#!/usr/bin/env bash
# Stop what interop/oidc-provider/start.sh started, by the PIDs it recorded.
#   interop/oidc-provider/stop.sh [STATE_DIR]
set -uo pipefail
STATE="${1:-.interop/oidc-provider}"
source "$(cd "$(dirname "$0")" && pwd)/../lib.sh"
stop_all
