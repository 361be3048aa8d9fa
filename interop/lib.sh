# Shared by the interop start/stop scripts (sourced, bash). Every process is started in its own
# session, its PID written to $STATE/pids/NAME.pid, and stopped by that PID only.

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
IMS="${IMS:-$ROOT/.venv/bin/ims-conformance}"

die() { echo "interop: $*" >&2; exit 2; }

# profile_state_dir PROFILE: the state directory the profile's tls.ca_bundle points into
# (<state>/pki/ca.pem), where a part's start.sh keeps PKI, logs and PIDs; empty without one
profile_state_dir() {
  local ca
  ca=$(sed -n 's/^[[:space:]]*ca_bundle:[[:space:]]*//p' "$1" | head -n1)
  [ -z "$ca" ] || dirname "$(dirname "$ca")"
}

# pics PROFILE NAME: the value of a PICS item of the profile (`NAME: value` line), empty if absent
pics() { sed -n "s/^[[:space:]]*$2:[[:space:]]*\([a-z_0-9]*\).*/\1/p" "$1"; }

# spawn NAME LOGFILE CMD...: start CMD in its own session, record its PID
spawn() {
  local name=$1 log=$2; shift 2
  mkdir -p "$STATE/pids" "$(dirname "$log")"
  setsid "$@" </dev/null >>"$log" 2>&1 &
  echo $! >"$STATE/pids/$name.pid"
}

# wait_for_line NAME LOGFILE REGEX SECONDS: bounded wait for a line in a log, fail if NAME died
wait_for_line() {
  local name=$1 log=$2 re=$3 deadline=$((SECONDS + $4)) pid
  pid=$(cat "$STATE/pids/$name.pid")
  until grep -Eq "$re" "$log" 2>/dev/null; do
    kill -0 "$pid" 2>/dev/null || { tail -n 30 "$log" >&2; die "$name (pid $pid) exited"; }
    [ $SECONDS -lt $deadline ] || { tail -n 30 "$log" >&2; die "$name: no '$re' within $4 s"; }
    sleep 0.2
  done
}

# wait_for_port NAME HOST PORT SECONDS: bounded wait until HOST:PORT accepts TCP connections
wait_for_port() {
  local name=$1 host=$2 port=$3 deadline=$((SECONDS + $4)) pid
  pid=$(cat "$STATE/pids/$name.pid")
  until (exec 3<>"/dev/tcp/$host/$port") 2>/dev/null; do
    kill -0 "$pid" 2>/dev/null || die "$name (pid $pid) exited"
    [ $SECONDS -lt $deadline ] || die "$name: $host:$port not listening within $4 s"
    sleep 0.2
  done
}

# stop_all: SIGTERM to every recorded process group, then SIGKILL after 5 s; removes the PID files
stop_all() {
  local f pid deadline
  [ -d "$STATE/pids" ] || return 0
  for f in "$STATE"/pids/*.pid; do
    [ -e "$f" ] || continue
    pid=$(cat "$f")
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
  done
  deadline=$((SECONDS + 5))
  for f in "$STATE"/pids/*.pid; do
    [ -e "$f" ] || continue
    pid=$(cat "$f")
    while kill -0 "$pid" 2>/dev/null && [ $SECONDS -lt $deadline ]; do sleep 0.1; done
    kill -KILL -- "-$pid" 2>/dev/null || true
    rm -f "$f"
  done
}
