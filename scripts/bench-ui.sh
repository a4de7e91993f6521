#!/usr/bin/env bash
# Benchmark of the Environments tab against the Overview tab on the
# production build of the app (packages/app/bench/tabLoad.js): builds the
# app when it is missing or older than the plugin's sources, starts the
# cluster simulator, Prometheus (when installed) and the backend serving the
# built app on :7007, measures in headless Chromium, and stops everything.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

ensure_install
command -v "${CHROMIUM_PATH:-/usr/bin/chromium}" >/dev/null \
  || die "Chromium is needed (apt-get install chromium, or run ./scripts/test.sh once)."
port_in_use 7007 && die "Port 7007 is in use; stop the demo first."

dist="$ROOT/packages/app/dist/index.html"
newest_source="$(find "$ROOT/plugins/progression/src" "$ROOT/packages/app/src" -type f -newer "$dist" 2>/dev/null | head -n 1 || true)"
if [ ! -f "$dist" ] || [ -n "$newest_source" ]; then
  log "Building the app for production (yarn workspace app build)..."
  yarn workspace app build
fi

BENCH_DIR="$(mktemp -d -t progression-bench-ui.XXXXXX)"
BACKEND_PID=""
trap 'stop_process_group "$BACKEND_PID"; stop_process_group "$SIMULATOR_PID"; stop_process_group "$PROMETHEUS_PID"; rm -rf "$BENCH_DIR"' EXIT
start_simulator "$BENCH_DIR/simulator.log"
start_prometheus "$BENCH_DIR/prometheus.log"
log "Starting the backend, which serves the built app on http://localhost:7007 ..."
setsid node "$YARN_RELEASE" workspace backend start >"$BENCH_DIR/backend.log" 2>&1 &
BACKEND_PID=$!
wait_while_alive "$BACKEND_PID" 300 curl -fsS -o /dev/null http://localhost:7007/.backstage/health/v1/readiness \
  || { tail -n 40 "$BENCH_DIR/backend.log" >&2; die "The backend did not start."; }
curl -fsS http://localhost:7007/ | grep -q '<div id="root">' \
  || die "The backend does not serve the built app on http://localhost:7007/."
node "$ROOT/packages/app/bench/tabLoad.js"
