#!/usr/bin/env bash
# Shared by start.sh and test.sh: puts Yarn (the committed release), the npm
# registry this machine uses and the local Node headers in place, then
# installs dependencies when the lockfile or a package.json changed.

set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

log() { printf '\033[1;34m==>\033[0m %s\n' "$*"; }
die() { printf '\033[1;31mERROR:\033[0m %s\n' "$*" >&2; exit 1; }

command -v node >/dev/null || die "Node.js is required (20, 22 or 24)."
command -v npm >/dev/null || die "npm is required (it tells us which registry to use)."

YARN_RELEASE="$(ls "$ROOT"/.yarn/releases/yarn-*.cjs | head -n 1)"
yarn() { node "$YARN_RELEASE" "$@"; }

# Yarn does not read .npmrc: take the registry and the Node headers from npm,
# so nothing host-specific is committed and native builds never download.
if [ -z "${YARN_NPM_REGISTRY_SERVER:-}" ]; then
  YARN_NPM_REGISTRY_SERVER="$(npm config get registry | sed 's#/$##')"
  export YARN_NPM_REGISTRY_SERVER
fi
if [ -z "${npm_config_nodedir:-}" ]; then
  nodedir="$(npm config get nodedir 2>/dev/null || true)"
  if [ -n "$nodedir" ] && [ "$nodedir" != "undefined" ] && [ -f "$nodedir/include/node/node.h" ]; then
    export npm_config_nodedir="$nodedir"
  else
    # npm may not know it: the headers of the running Node are beside its binary.
    guess="$(dirname "$(dirname "$(command -v node)")")"
    [ -f "$guess/include/node/node.h" ] && export npm_config_nodedir="$guess"
  fi
fi
export YARN_ENABLE_TELEMETRY=0
export YARN_ENABLE_PROGRESS_BARS=0

install_stamp() {
  {
    node --version
    cat yarn.lock
    find . -name package.json -not -path '*/node_modules/*' -not -path './.git/*' \
      -not -path '*/dist/*' -print0 | sort -z | xargs -0 cat
  } | sha256sum | cut -d' ' -f1
}

ensure_install() {
  local stamp_file="node_modules/.progression-install-stamp"
  local want
  want="$(install_stamp)"
  if [ -f "$stamp_file" ] && [ "$(cat "$stamp_file")" = "$want" ]; then
    log "Dependencies are up to date."
    return
  fi
  log "Installing dependencies (Yarn $(yarn --version), registry from npm config)..."
  yarn install
  install_stamp >"$stamp_file"
}

port_in_use() {
  node -e '
    const s = require("node:net").createServer();
    s.once("error", () => process.exit(0));
    s.listen(Number(process.argv[1]), () => s.close(() => process.exit(1)));
  ' "$1"
}

free_port() {
  node -e '
    const s = require("node:net").createServer();
    s.listen(0, "127.0.0.1", () => { console.log(s.address().port); s.close(); });
  '
}

# Installs Debian packages when missing: as root directly, otherwise with sudo.
apt_install() {
  local runner=()
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || die "Installing $* needs root or sudo."
    runner=(sudo)
  fi
  command -v apt-get >/dev/null || die "Cannot install $*: no apt-get on this machine."
  log "Installing $* from Debian's packages..."
  "${runner[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  "${runner[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@"
}

# Runs a command every half second until it succeeds (0), the process PID
# exits (1) or SECONDS pass (1): waits for a server that PID starts.
# Usage: wait_while_alive PID SECONDS command [args...]
wait_while_alive() {
  local pid="$1" seconds="$2" deadline
  shift 2
  deadline=$(( $(date +%s) + seconds ))
  until "$@" >/dev/null 2>&1; do
    kill -0 "$pid" 2>/dev/null || return 1
    [ "$(date +%s)" -lt "$deadline" ] || return 1
    sleep 0.5
  done
}

# Starts the local cluster simulator with the demo workloads in the
# background (API https://127.0.0.1:6443, workloads on :7101-7103, the
# GitOps example's Git server on :7180 and Argo CD on :7181) and writes a
# kubeconfig for kubectl to .demo/kubeconfig. Sets SIMULATOR_PID.
start_simulator() {
  local log="$1"
  for port in 6443 7101 7102 7103 7180 7181; do
    if port_in_use "$port"; then
      die "Port $port is already in use; the cluster simulator needs it. Stop what listens there."
    fi
  done
  mkdir -p "$ROOT/.demo"
  setsid node "$ROOT/packages/kube-simulator/bin/kube-simulator" \
    --demo --tls --port 6443 --write-kubeconfig "$ROOT/.demo/kubeconfig" >"$log" 2>&1 &
  SIMULATOR_PID=$!
  if wait_while_alive "$SIMULATOR_PID" 30 grep -q 'listening on' "$log"; then
    log "Cluster simulator: https://127.0.0.1:6443 (KUBECONFIG=$ROOT/.demo/kubeconfig kubectl get pods -A)"
    # Its GitOps example (checkout): running, or why not.
    grep -E '^GitOps example' "$log" | while read -r line; do log "$line"; done
    return 0
  fi
  cat "$log" >&2
  die "The cluster simulator did not start."
}

# Starts a Prometheus for the demo when one is installed: it scrapes the
# demo workloads (:7101-7103) every 2 s, keeps its data in .demo/prometheus,
# and listens on 127.0.0.1:9090 (or a free port). Then writes
# .demo/app-config.prometheus.yaml (its URL and staging's metric gate, see
# demo-prometheus-config.sh) and sets DEMO_CONFIG_ARGS to load it after
# app-config.yaml. Without Prometheus DEMO_CONFIG_ARGS stays empty: the demo
# runs app-config.yaml alone, which has no metric gates, and says so.
# PROMETHEUS_BIN picks the binary (one that does not exist: no Prometheus).
# Sets PROMETHEUS_PID.
PROMETHEUS_PID=""
DEMO_CONFIG_ARGS=()
start_prometheus() {
  local log="$1" bin port overlay="$ROOT/.demo/app-config.prometheus.yaml"
  DEMO_CONFIG_ARGS=()
  # A file from an earlier run names a Prometheus that is gone.
  rm -f "$overlay"
  bin="${PROMETHEUS_BIN:-$(command -v prometheus || true)}"
  if [ -z "$bin" ] || [ ! -x "$bin" ]; then
    log "Prometheus is not installed: the demo runs without metric gates (apt-get install prometheus for staging's error-rate gate and the charts)."
    return 0
  fi
  port=9090
  if port_in_use "$port"; then port="$(free_port)"; fi
  mkdir -p "$ROOT/.demo/prometheus"
  cat >"$ROOT/.demo/prometheus.yml" <<YAML
global:
  scrape_interval: 2s
  evaluation_interval: 2s
# The error-ratio alert that freezes staging (its freezeOn).
rule_files:
  - '$ROOT/scripts/demo-prometheus-rules.yml'
scrape_configs:
  - job_name: demo-workloads
    static_configs:
      - targets: ['127.0.0.1:7101', '127.0.0.1:7102', '127.0.0.1:7103']
YAML
  setsid "$bin" --config.file="$ROOT/.demo/prometheus.yml" \
    --storage.tsdb.path="$ROOT/.demo/prometheus" \
    --storage.tsdb.retention.time=1d \
    --web.listen-address="127.0.0.1:$port" >"$log" 2>&1 &
  PROMETHEUS_PID=$!
  if ! wait_while_alive "$PROMETHEUS_PID" 30 curl -fsS -o /dev/null "http://127.0.0.1:$port/-/ready"; then
    cat "$log" >&2
    stop_process_group "$PROMETHEUS_PID"
    PROMETHEUS_PID=""
    log "Prometheus did not start: the demo runs without metric gates."
    return 0
  fi
  "$ROOT/scripts/demo-prometheus-config.sh" "http://127.0.0.1:$port" "$overlay" \
    || die "Could not write $overlay for the running Prometheus."
  DEMO_CONFIG_ARGS=(--config "$ROOT/app-config.yaml" --config "$overlay")
  # Loaded by default without --config; kept last so that its keys win.
  if [ -f "$ROOT/app-config.local.yaml" ]; then
    DEMO_CONFIG_ARGS+=(--config "$ROOT/app-config.local.yaml")
  fi
  log "Prometheus: http://127.0.0.1:$port (scraping the demo workloads); staging has its error-rate metric gate and freezes while DemoHighErrorRatio fires there ($overlay)"
}

stop_process_group() {
  local pid="$1"
  [ -n "$pid" ] || return 0
  kill -0 "$pid" 2>/dev/null || return 0
  kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null
  # The whole group, not only its leader: a start script may exit at once
  # while the backend it started still shuts down and holds its port.
  local i
  for i in $(seq 1 20); do
    kill -0 -- "-$pid" 2>/dev/null || kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.5
  done
  kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null
}
