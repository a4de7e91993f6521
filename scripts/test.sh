#!/usr/bin/env bash
# Runs every test of the project and fails on any failure:
#   type check, lint, prettier, every package's unit tests (CI mode) with the
#   store tests on a real PostgreSQL 15 that this script starts, and the
#   browser end-to-end tests in Debian's headless Chromium against the demo.
# Installs what is missing first (dependencies, Chromium, PostgreSQL).
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

export CI=true
# TestDatabases would otherwise try Docker, which these machines do not run.
export BACKSTAGE_TEST_DISABLE_DOCKER=1

WORK="$(mktemp -d /tmp/progression-test.XXXXXX)"
PG_DATA="" PG_USER="" PG_BIN="" DEMO_PID="" SIMULATOR_PID=""

cleanup() {
  set +e
  stop_process_group "$DEMO_PID"
  stop_process_group "$SIMULATOR_PID"
  stop_process_group "$PROMETHEUS_PID"
  if [ -n "$PG_DATA" ] && [ -f "$PG_DATA/postmaster.pid" ]; then
    runuser -u "$PG_USER" -- "$PG_BIN/pg_ctl" -D "$PG_DATA" -m immediate stop >/dev/null 2>&1 \
      || "$PG_BIN/pg_ctl" -D "$PG_DATA" -m immediate stop >/dev/null 2>&1
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

ensure_chromium() {
  CHROMIUM_PATH="${CHROMIUM_PATH:-$(command -v chromium || true)}"
  if [ -z "$CHROMIUM_PATH" ]; then
    apt_install chromium
    CHROMIUM_PATH="$(command -v chromium)" || die "Chromium did not install."
  fi
  export CHROMIUM_PATH
  log "Browser: $("$CHROMIUM_PATH" --version 2>/dev/null | head -n 1)"
}

find_postgres_bin() {
  local dir
  for dir in /usr/lib/postgresql/15/bin /usr/lib/postgresql/*/bin; do
    if [ -x "$dir/initdb" ] && [ -x "$dir/pg_ctl" ]; then
      echo "$dir"
      return
    fi
  done
}

start_postgres() {
  PG_BIN="$(find_postgres_bin)"
  if [ -z "$PG_BIN" ]; then
    log "PostgreSQL server binaries not found; installing postgresql-15."
    apt_install postgresql-15 || true
    PG_BIN="$(find_postgres_bin)"
  fi
  [ -n "$PG_BIN" ] || die "PostgreSQL 15 is required for the store tests and could not be found or installed (looked in /usr/lib/postgresql/*/bin). Install postgresql-15 and run again."

  # PostgreSQL refuses to run as root.
  if [ "$(id -u)" -eq 0 ]; then
    PG_USER="$(id -un postgres 2>/dev/null || echo nobody)"
  else
    PG_USER="$(id -un)"
  fi
  local dir="$WORK/postgres" port
  mkdir -p "$dir"
  chown "$PG_USER" "$dir" "$WORK" 2>/dev/null || true
  chmod 711 "$WORK"
  PG_DATA="$dir/data"
  port="$(free_port)"
  local as=()
  [ "$(id -u)" -eq 0 ] && as=(runuser -u "$PG_USER" --)
  "${as[@]}" "$PG_BIN/initdb" -D "$PG_DATA" -U postgres --auth=trust -E UTF8 --no-sync >"$WORK/initdb.log" 2>&1 \
    || { cat "$WORK/initdb.log" >&2; die "initdb failed."; }
  "${as[@]}" "$PG_BIN/pg_ctl" -D "$PG_DATA" -l "$dir/server.log" -w -t 60 \
    -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=300" \
    start >/dev/null || { cat "$dir/server.log" >&2; die "PostgreSQL did not start."; }
  export BACKSTAGE_TEST_DATABASE_POSTGRES15_CONNECTION_STRING="postgresql://postgres@127.0.0.1:$port"
  # The store tests fail, rather than skip, when PostgreSQL is missing.
  export PROGRESSION_REQUIRE_POSTGRES=1
  log "PostgreSQL $("$PG_BIN/postgres" --version | awk '{print $3}') on 127.0.0.1:$port (data in $PG_DATA)"
}

start_demo() {
  for port in 3000 7007; do
    if port_in_use "$port"; then
      die "Port $port is in use; the end-to-end tests need it for the demo. Stop what listens there."
    fi
  done
  start_simulator "$WORK/simulator.log"
  start_prometheus "$WORK/prometheus.log"
  log "Starting the demo for the end-to-end tests (log: $WORK/demo.log)..."
  # The browser tests expect staging's metric gate: never a demo without it.
  if [ ${#DEMO_CONFIG_ARGS[@]} -eq 0 ]; then
    printf '\033[1;31mERROR:\033[0m %s\n' "The end-to-end tests need the demo with Prometheus (staging's metric gate); see $WORK/prometheus.log." >&2
    return 1
  fi
  setsid node "$YARN_RELEASE" start "${DEMO_CONFIG_ARGS[@]}" >"$WORK/demo.log" 2>&1 &
  DEMO_PID=$!
  wait_for_demo "$WORK/demo.log" || return 1
  log "Demo is up."
}

# Waits until the demo started as $DEMO_PID answers on the backend's
# readiness and the app's page; shows the end of its log $1 when it does
# not (or exits first).
wait_for_demo() {
  if ! wait_while_alive "$DEMO_PID" 300 curl -fsS -o /dev/null http://localhost:7007/.backstage/health/v1/readiness \
    || ! wait_while_alive "$DEMO_PID" 300 curl -fsS -o /dev/null http://localhost:3000; then
    tail -n 80 "$1" >&2
    return 1
  fi
}

FAILED=()
step() {
  local name="$1"
  shift
  log "$name"
  local started=$SECONDS
  if "$@"; then
    log "$name: ok ($((SECONDS - started)) s)"
  else
    printf '\033[1;31m==> %s: FAILED\033[0m\n' "$name"
    FAILED+=("$name")
  fi
}

ensure_kubectl() {
  # The simulator's tests drive the real kubectl; it is on the machine image.
  if command -v kubectl >/dev/null; then
    export PROGRESSION_REQUIRE_KUBECTL=1
    log "kubectl: $(kubectl version --client 2>/dev/null | head -n 1)"
  else
    die "kubectl is required by the cluster simulator's tests and was not found on PATH."
  fi
}

ensure_prometheus() {
  # Metric gates are tested against a real Prometheus (Debian's package).
  if ! command -v prometheus >/dev/null; then
    apt_install prometheus || true
  fi
  command -v prometheus >/dev/null \
    || die "Prometheus is required by the metric gate tests and could not be installed (apt-get install prometheus)."
  export PROGRESSION_REQUIRE_PROMETHEUS=1
  log "Prometheus: $(prometheus --version 2>&1 | head -n 1)"
}

ensure_install
ensure_chromium
ensure_kubectl
ensure_prometheus
start_postgres

step "Type check (yarn tsc)" yarn tsc
step "Lint (yarn lint:all)" yarn lint:all
step "Prettier (yarn prettier:check)" yarn prettier:check
step "Unit and store tests, SQLite and PostgreSQL (yarn test)" \
  yarn test --json --outputFile="$WORK/jest.json"

# Progression as an adopter installs it: packed, in a separate app.
step "Install test: packed packages in a separate app (scripts/install-test.sh)" \
  "$ROOT/scripts/install-test.sh"

export PROGRESSION_E2E_JSON="$WORK/e2e.json"
if step "Start the demo" start_demo; then
  step "Browser end-to-end tests (Playwright, headless Chromium)" yarn test:e2e --project demo
else
  FAILED+=("Browser end-to-end tests (the demo did not start)")
fi

# Stops the demo that runs and starts ./scripts/start.sh with ARGS (log:
# LOG), as a person does; waits until it answers and, unless
# PROGRESSION_DEMO_SEED=0, until its simulated CI has made the history.
restart_with_start_sh() {
  local log="$1" port i
  shift
  stop_process_group "$DEMO_PID"
  stop_process_group "$SIMULATOR_PID"
  stop_process_group "$PROMETHEUS_PID"
  DEMO_PID="" SIMULATOR_PID="" PROMETHEUS_PID=""
  for port in 3000 7007 6443 9090 7180 7181; do
    for i in $(seq 1 60); do
      port_in_use "$port" || break
      sleep 0.5
    done
  done
  log "Starting the demo as the README does: ./scripts/start.sh $* (log: $log)..."
  setsid "$ROOT/scripts/start.sh" "$@" >"$log" 2>&1 &
  DEMO_PID=$!
  wait_for_demo "$log" || return 1
  [ "${PROGRESSION_DEMO_SEED:-1}" = 0 ] && return 0
  if ! wait_while_alive "$DEMO_PID" 300 grep -q 'The demo history' "$ROOT/.demo/seed.log"; then
    tail -n 80 "$log" >&2
    return 1
  fi
  cat "$ROOT/.demo/seed.log"
  grep -q 'The demo history is made' "$ROOT/.demo/seed.log"
}

# The README's demo walk-through, literally: a fresh ./scripts/start.sh
# (which makes its short history through scripts/demo-ci.sh), then the
# steps the README lists.
if step "Start the demo as the README does" restart_with_start_sh "$WORK/start.log"; then
  PROGRESSION_E2E_JSON="$WORK/e2e-walkthrough.json" \
    step "The README's demo walk-through (Playwright)" yarn test:e2e --project walkthrough
else
  FAILED+=("The README's demo walk-through (the demo did not start)")
fi

# Promotion windows: the demo with a deny window on web-shop's production
# for the first 40 s of every minute (scripts/demo-window-config.sh).
"$ROOT/scripts/demo-window-config.sh" "$WORK/app-config.window.yaml" '* * * * *' 40s UTC
export PROGRESSION_DEMO_LOG="$WORK/start-windows.log"
if PROGRESSION_DEMO_SEED=0 step "Start the demo with a deny window" \
  restart_with_start_sh "$PROGRESSION_DEMO_LOG" --config "$WORK/app-config.window.yaml"; then
  PROGRESSION_E2E_JSON="$WORK/e2e-windows.json" \
    step "Promotion windows and freezes (Playwright)" yarn test:e2e --project windows
else
  FAILED+=("Promotion windows and freezes (the demo did not start)")
fi

# One closing line that counts every test that ran.
node -e '
  const fs = require("node:fs");
  const read = f => { try { return JSON.parse(fs.readFileSync(f, "utf8")); } catch { return undefined; } };
  const jest = read(process.argv[1]) ?? {};
  const stats = process.argv.slice(2).map(f => read(f)?.stats ?? {});
  const e2e = Object.fromEntries(["expected", "unexpected", "flaky", "skipped"].map(k => [k, stats.reduce((n, s) => n + (s[k] ?? 0), 0)]));
  const passed = (jest.numPassedTests ?? 0) + (e2e.expected ?? 0);
  const failed = (jest.numFailedTests ?? 0) + (e2e.unexpected ?? 0) + (e2e.flaky ?? 0);
  const skipped = (jest.numPendingTests ?? 0) + (e2e.skipped ?? 0);
  console.log(`unit tests: ${jest.numPassedTests ?? 0} passed, ${jest.numFailedTests ?? 0} failed; browser tests: ${e2e.expected ?? 0} passed, ${e2e.unexpected ?? 0} failed`);
  console.log(`${passed} passed, ${failed} failed, ${skipped} skipped`);
' "$WORK/jest.json" "$WORK/e2e.json" "$WORK/e2e-walkthrough.json" "$WORK/e2e-windows.json"

if [ ${#FAILED[@]} -gt 0 ]; then
  printf '\033[1;31mFailed steps:\033[0m\n'
  printf '  - %s\n' "${FAILED[@]}"
  exit 1
fi
log "All checks passed."
