#!/usr/bin/env bash
# Stop what interop/kamailio/start.sh started, by the PIDs it recorded.
#   interop/kamailio/stop.sh [STATE_DIR]
set -uo pipefail
STATE="${1:-.interop/kamailio}"
source "$(cd "$(dirname "$0")" && pwd)/../lib.sh"
stop_all
