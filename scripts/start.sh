#!/usr/bin/env bash
# Starts the Progression demo: Backstage (frontend http://localhost:3000,
# backend http://localhost:7007) with both plugins, an in-memory SQLite
# database, guest sign-in and example entities, and the local cluster
# simulator with the example services deployed in three stages. Installs what
# is missing first. Stop it with Ctrl-C.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

ensure_install

for port in 3000 7007; do
  if port_in_use "$port"; then
    die "Port $port is already in use; stop what listens there (a running demo?) and try again."
  fi
done

SIMULATOR_PID="" SEED_PID=""
trap 'stop_process_group "$SEED_PID"; stop_process_group "$SIMULATOR_PID"; stop_process_group "$PROMETHEUS_PID"' EXIT
trap 'exit 130' INT TERM
start_simulator "$ROOT/.demo/simulator.log"
start_prometheus "$ROOT/.demo/prometheus.log"

# A simulated CI makes a short history once the backend answers (releases
# through development and staging, one rolled back, one waiting in
# development), so that the tab has something to show and to promote on
# first open. PROGRESSION_DEMO_SEED=0 starts with none.
rm -f "$ROOT/.demo/seed.log"
if [ "${PROGRESSION_DEMO_SEED:-1}" != 0 ]; then
  setsid bash -c '
    for _ in $(seq 1 300); do
      curl -fsS -o /dev/null http://localhost:7007/.backstage/health/v1/readiness && break
      sleep 1
    done
    if "$1/scripts/demo-ci.sh" seed >"$1/.demo/seed.log" 2>&1; then
      echo "The demo history is made (scripts/demo-ci.sh seed)." >>"$1/.demo/seed.log"
    else
      echo "The demo history could not be made; see above." >>"$1/.demo/seed.log"
    fi' seed "$ROOT" &
  SEED_PID=$!
  log "A simulated CI makes a short history once the backend is up (log: .demo/seed.log)."
fi

# Extra `--config FILE`s (scripts/demo-window-config.sh) come after the
# demo's own, which then must be named too. yarn start reads them from
# packages/backend: a relative FILE is made absolute from here.
EXTRA_ARGS=()
previous=""
for arg in "$@"; do
  if [ "$previous" = --config ] && [[ "$arg" != /* ]]; then
    arg="$PWD/$arg"
  fi
  EXTRA_ARGS+=("$arg")
  previous="$arg"
done
if [ ${#DEMO_CONFIG_ARGS[@]} -eq 0 ] && [[ " $* " == *" --config "* ]]; then
  DEMO_CONFIG_ARGS=(--config "$ROOT/app-config.yaml")
fi

log "Starting the demo: open http://localhost:3000, press Enter (guest), then"
log "open payments-api and its Environments tab:"
log "  http://localhost:3000/catalog/default/component/payments-api/environments"
node "$YARN_RELEASE" start ${DEMO_CONFIG_ARGS[@]+"${DEMO_CONFIG_ARGS[@]}"} ${EXTRA_ARGS[@]+"${EXTRA_ARGS[@]}"}
