#!/usr/bin/env bash
# Run a command in a fresh network namespace whose loopback is up, then delete the namespace.
# The interop parts listen on the binding's fixed addresses (127.0.0.11-15); inside their own
# namespace they cannot clash with a reference network or another run on the host. Needs root.
#   interop/netns.sh COMMAND [ARGS...]
set -euo pipefail
[ "$(id -u)" = 0 ] || { echo "interop/netns.sh: needs root (ip netns)" >&2; exit 2; }
NS="imsconf-$$"
ip netns add "$NS"
trap 'ip netns delete "$NS" 2>/dev/null || true' EXIT
ip -n "$NS" link set lo up
ip netns exec "$NS" "$@"
