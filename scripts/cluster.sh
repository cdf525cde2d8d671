#!/usr/bin/env bash
# cluster.sh runs a local three-node ussync cluster on 127.0.0.1, to play
# with the private API and `ussync status`.
#
#   scripts/cluster.sh [start]     build ussync, start n0 n1 n2 (those not running)
#   scripts/cluster.sh status      `ussync status` of every running node
#   scripts/cluster.sh kill NODE   SIGKILL one node, as a crash would; `start` brings it back
#   scripts/cluster.sh stop [NODE...]  SIGTERM: the nodes leave the cluster and exit
#   scripts/cluster.sh clean       stop, then delete the data, logs, secret and token
#
# Node nI listens on 127.0.0.1 only: gossip on 79I6 (TCP and UDP), the private
# API on 79I7, the public endpoints on 79I8 (n0: 7946/7947/7948, n1:
# 7956/7957/7958, n2: 7966/7967/7968). Its site URL is
# http://site-I.localhost:79I8/ (browsers resolve *.localhost to loopback).
# Every node joins the other two.
#
# Everything lives in ${TMPDIR:-/tmp}/ussync-cluster: the binary, each node's
# data dir (nI/), log (nI.log) and pid file (nI.pid), and the cluster secret
# and API token (mode 600), made on the first start and kept until `clean`.
#
# Environment: USSYNC_BIN=/path/to/ussync runs that binary instead of building
# one from this checkout. Other USSYNC_* variables are not passed to the nodes.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
state="${TMPDIR:-/tmp}"
state="${state%/}/ussync-cluster"
nodes=(n0 n1 n2)
bin="${USSYNC_BIN:-$state/bin/ussync}"

# A developer's own settings must not leak into the nodes.
while IFS= read -r v; do
  unset "$v"
done < <(compgen -e -X '!USSYNC_*' || true)

die() {
  echo "cluster.sh: $*" >&2
  exit 1
}

# port NODE OFFSET: n0 → 7946+OFFSET, n1 → 7956+OFFSET, n2 → 7966+OFFSET.
port() {
  echo $((7946 + 10 * ${1#n} + $2))
}

gossip_addr() { echo "127.0.0.1:$(port "$1" 0)"; }
api_url() { echo "http://127.0.0.1:$(port "$1" 1)"; }
site_url() { echo "http://site-${1#n}.localhost:$(port "$1" 2)/"; }

# pid_of NODE prints the pid of NODE's running agent, or fails.
pid_of() {
  local pidfile="$state/$1.pid" pid
  [[ -f $pidfile ]] || return 1
  pid=$(<"$pidfile")
  [[ $pid =~ ^[0-9]+$ ]] || return 1
  # The pid may have been reused since: it must still be this node's agent.
  ps -ww -o args= -p "$pid" 2>/dev/null | grep -q -- "agent --name $1 " || return 1
  echo "$pid"
}

build() {
  if [[ -n ${USSYNC_BIN:-} ]]; then
    [[ -x $bin ]] || die "USSYNC_BIN=$bin is not an executable"
    return
  fi
  command -v go >/dev/null || die "go is not on PATH (or set USSYNC_BIN to a built ussync)"
  echo "building ussync into $bin"
  (cd "$root" && go build -o "$bin" .)
}

# secrets makes the cluster secret and API token on first use.
secrets() {
  mkdir -p "$state"
  chmod 700 "$state"
  (
    umask 077
    [[ -s $state/secret ]] || "$bin" keygen >"$state/secret"
    [[ -s $state/token ]] || "$bin" keygen >"$state/token"
  )
}

# api_status NODE [ARGS...] runs `ussync status` against NODE's private API.
api_status() {
  local node=$1
  shift
  USSYNC_API_TOKEN=$(<"$state/token") "$bin" status --api "$(api_url "$node")" "$@"
}

start_node() {
  local node=$1 pid other join=()
  for other in "${nodes[@]}"; do
    [[ $other == "$node" ]] || join+=(--join "$(gossip_addr "$other")")
  done
  mkdir -p "$state/$node"
  echo "== $(date -u +%Y-%m-%dT%H:%M:%SZ) cluster.sh start" >>"$state/$node.log"
  USSYNC_SECRET=$(<"$state/secret") USSYNC_API_TOKEN=$(<"$state/token") \
    nohup "$bin" agent --name "$node" \
    --data-dir "$state/$node" \
    --profile local \
    --bind "$(gossip_addr "$node")" \
    --api "127.0.0.1:$(port "$node" 1)" \
    --public "127.0.0.1:$(port "$node" 2)" \
    --site-url "$(site_url "$node")" \
    "${join[@]}" \
    </dev/null >>"$state/$node.log" 2>&1 &
  pid=$!
  echo "$pid" >"$state/$node.pid"
  for ((i = 0; i < 100; i++)); do
    if api_status "$node" >/dev/null 2>&1; then
      echo "started $node (pid $pid)"
      return
    fi
    if ! kill -0 "$pid" 2>/dev/null; then
      rm -f "$state/$node.pid"
      echo "cluster.sh: $node exited at start; the end of $state/$node.log:" >&2
      tail -n 5 "$state/$node.log" >&2
      exit 1
    fi
    sleep 0.2
  done
  die "$node does not answer at $(api_url "$node") after 20s; see $state/$node.log"
}

start() {
  build
  secrets
  for node in "${nodes[@]}"; do
    if pid=$(pid_of "$node"); then
      echo "$node already runs (pid $pid)"
    else
      start_node "$node"
    fi
  done
  # Membership settles in well under a second on loopback.
  local all="MEMBERS (${#nodes[@]}, ${#nodes[@]} alive)"
  for ((i = 0; i < 50; i++)); do
    api_status n0 2>/dev/null | grep -qF "$all" && break
    sleep 0.2
  done
  api_status n0 2>/dev/null | grep -qF "$all" || echo "cluster.sh: n0 does not list every node alive yet; see the logs" >&2

  local token
  token=$(<"$state/token")
  cat <<EOF

ussync local cluster, state in $state

  node  gossip           private API             site URL (public endpoints)
EOF
  for node in "${nodes[@]}"; do
    printf '  %-4s  %-15s  %-22s  %s\n' "$node" "$(gossip_addr "$node")" "$(api_url "$node")" "$(site_url "$node")"
  done
  cat <<EOF

  cluster secret (USSYNC_SECRET)   $(<"$state/secret")
  API token (USSYNC_API_TOKEN)     $token

Try:
  export USSYNC_API_TOKEN=$token
  $bin status --api $(api_url n1)
  curl -X PUT -H "Authorization: Bearer \$USSYNC_API_TOKEN" -H 'Content-Type: application/json' \\
    -d '{"verified_via":"registration"}' $(api_url n0)/v1/users/ann@example.com
  curl -X POST -H "Authorization: Bearer \$USSYNC_API_TOKEN" -H 'Content-Type: application/json' \\
    -d '{"email":"ann@example.com"}' $(api_url n0)/v1/sessions
  curl -H "Authorization: Bearer \$USSYNC_API_TOKEN" $(api_url n2)/v1/sessions/SESSION_ID
  scripts/cluster.sh kill n2; scripts/cluster.sh start   # crash and restart a node
  tail -f $state/n*.log
  scripts/cluster.sh stop
EOF
}

# stop_node NODE SIGNAL sends SIGNAL and waits for the agent to exit.
stop_node() {
  local node=$1 sig=$2 pid
  if ! pid=$(pid_of "$node"); then
    rm -f "$state/$node.pid"
    echo "$node is not running"
    return
  fi
  kill "-$sig" "$pid"
  # A node leaves the cluster and drains requests within 10 s.
  for ((i = 0; i < 75; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.2
  done
  if kill -0 "$pid" 2>/dev/null; then
    echo "cluster.sh: $node (pid $pid) still runs 15s after SIG$sig; killing it" >&2
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$state/$node.pid"
  echo "stopped $node (SIG$sig)"
}

check_node() {
  local n
  for n in "${nodes[@]}"; do
    [[ $1 == "$n" ]] && return
  done
  die "no node $1: the nodes are ${nodes[*]}"
}

cmd=${1:-start}
[[ $# -eq 0 ]] || shift
case $cmd in
start)
  [[ $# -eq 0 ]] || die "start takes no argument (it starts every node not running)"
  start
  ;;
stop)
  targets=("$@")
  [[ $# -gt 0 ]] || targets=("${nodes[@]}")
  for node in "${targets[@]}"; do
    check_node "$node"
    stop_node "$node" TERM
  done
  ;;
kill)
  [[ $# -eq 1 ]] || die "usage: cluster.sh kill NODE"
  check_node "$1"
  stop_node "$1" KILL
  ;;
status)
  [[ -f $state/token ]] || die "no cluster in $state; run: scripts/cluster.sh start"
  for node in "${nodes[@]}"; do
    echo "== $node ($(api_url "$node"))"
    api_status "$node" || true
    echo
  done
  ;;
clean)
  for node in "${nodes[@]}"; do
    stop_node "$node" TERM
  done
  rm -rf "$state"
  echo "removed $state"
  ;;
-h | --help | help)
  sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'
  ;;
*)
  die "unknown command $cmd; run: scripts/cluster.sh --help"
  ;;
esac
