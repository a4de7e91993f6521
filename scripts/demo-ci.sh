#!/usr/bin/env bash
# Plays CI's part in the running demo (./scripts/start.sh), through the same
# REST API and static token a real CI uses (docs/api.md, "What CI does"):
#
#   scripts/demo-ci.sh release <version> [behaviour]   register a release; it flows into development by itself
#   scripts/demo-ci.sh promote <version> <stage>       ask for staging or production (production waits for a release manager)
#   scripts/demo-ci.sh status                          each stage's live version and what is on its way
#   scripts/demo-ci.sh seed                            the short history start.sh makes (see below)
#
# behaviour picks what the release does once deployed (the image tag says it
# to the cluster simulator): healthy (the default), unhealthy (fails its
# smoke checks: rolled back), errors (answers 30 % with 500: staging's
# error-rate gate fails), slow (600 ms: staging's load gate fails),
# failing-migration (production's migration Job fails before the deploy).
# The version registered is <version> for healthy, <version>-<behaviour>
# otherwise.
#
# Options (before the command): --entity <name> (default payments-api),
# --wait (wait until the promotion ends or waits for people, and print
# how it ended). PROGRESSION_URL and PROGRESSION_CI_TOKEN override the
# demo's backend and token.
set -euo pipefail

BASE="${PROGRESSION_URL:-http://localhost:7007}/api/progression/v1"
TOKEN="${PROGRESSION_CI_TOKEN:-progression-demo-ci-token}"
ENTITY=payments-api
WAIT=""

usage() {
  sed -n '2,21p' "$0" | sed 's/^# \{0,1\}//' >&2
  exit 2
}

while [ $# -gt 0 ]; do
  case "$1" in
    --entity) ENTITY="${2:?--entity needs a name}"; shift 2 ;;
    --wait) WAIT=1; shift ;;
    -h | --help) usage ;;
    *) break ;;
  esac
done
[[ "$ENTITY" =~ ^[a-z0-9][a-z0-9-]*$ ]] || { echo "demo-ci: not an entity name: $ENTITY" >&2; exit 2; }
ENTITY_URL="$BASE/entities/component/default/$ENTITY"

# The value of the JavaScript expression $1 over the JSON document on stdin
# (`v`; further arguments are `args`, so that no input becomes code):
# text as it is, anything else as JSON, nothing for undefined. Fails on an
# empty document.
jsq() {
  node -e '
    let s = "";
    process.stdin.on("data", d => (s += d)).on("end", () => {
      if (!s.trim()) process.exit(1);
      const r = new Function("v", "args", `return (${process.argv[1]});`)(
        JSON.parse(s),
        process.argv.slice(2),
      );
      if (r !== undefined) console.log(typeof r === "object" ? JSON.stringify(r) : r);
    });' "$@"
}

# Calls the API; prints the body; fails with the API's message on an error.
call() {
  local method="$1" url="$2" body="${3:-}" out status
  out="$(mktemp)"
  local args=(-sS -o "$out" -w '%{http_code}' -X "$method" -H "Authorization: Bearer $TOKEN")
  [ -n "$body" ] && args+=(-H 'Content-Type: application/json' -d "$body")
  status="$(curl "${args[@]}" "$url")" || { rm -f "$out"; echo "demo-ci: the demo's backend does not answer at $BASE; is ./scripts/start.sh running?" >&2; return 1; }
  if [ "$status" -ge 400 ]; then
    echo "demo-ci: $method ${url#"$BASE"} answered $status: $(jsq 'v.error?.message' <"$out")" >&2
    rm -f "$out"
    return 1
  fi
  cat "$out"
  rm -f "$out"
}

version_for() {
  local version="$1" behaviour="${2:-healthy}"
  [[ "$version" =~ ^[0-9]+\.[0-9]+\.[0-9]+$ ]] || { echo "demo-ci: give a version like 1.4.0, not $version" >&2; return 2; }
  case "$behaviour" in
    healthy) echo "$version" ;;
    unhealthy | errors | slow | failing-migration) echo "$version-$behaviour" ;;
    *) echo "demo-ci: unknown behaviour $behaviour (healthy, unhealthy, errors, slow, failing-migration)" >&2; return 2 ;;
  esac
}

# Waits until promotion $1 ends or waits for people; prints its state.
wait_for() {
  local id="$1" state="" i
  for i in $(seq 1 180); do
    state="$(call GET "$BASE/promotions/$id" | jsq 'v.promotion.state')"
    case "$state" in
      succeeded | failed | rolled-back | rejected | cancelled | skipped | awaiting-approval) break ;;
    esac
    sleep 2
  done
  echo "$state"
}

# The newest promotion of version $2 into stage $1, once there is one.
promotion_of() {
  local stage="$1" version="$2" i id
  for i in $(seq 1 60); do
    id="$(call GET "$ENTITY_URL/promotions?stage=$stage&limit=20" |
      jsq 'v.items.find(p => p.release.version === args[0])?.id' "$version")"
    [ -n "$id" ] && { echo "$id"; return 0; }
    sleep 1
  done
  echo "demo-ci: no promotion of $version to $stage appeared" >&2
  return 1
}

release() {
  local version image id commit
  version="$(version_for "$@")"
  image="registry.local/$ENTITY:$version"
  # A commit id of the version's own, as CI gives its build's.
  commit="$(printf '%s' "$ENTITY $version" | sha1sum | cut -c1-12)"
  # Registered before: the backend keeps releases as they were registered
  # (this script's commit time would differ, a 409), and nothing new flows.
  local known
  known="$(call GET "$ENTITY_URL/releases" | jsq 'v.items.find(r => r.version === args[0])?.createdAt' "$version")"
  if [ -n "$known" ]; then
    echo "$ENTITY $version was registered at $known; registering it again changes nothing (releases are immutable). Register a new version, or promote this one."
    return 0
  fi
  call POST "$ENTITY_URL/releases" "{\"version\":\"$version\",\"image\":\"$image\",\"commit\":\"$commit\",\"committedAt\":\"$(date -u +%Y-%m-%dT%H:%M:%SZ)\"}" >/dev/null
  echo "Registered $ENTITY $version ($image); it flows into the first stage by itself."
  if [ -n "$WAIT" ]; then
    id="$(promotion_of "$(first_stage)" "$version")"
    echo "$version in $(first_stage): $(wait_for "$id")"
  fi
}

first_stage() {
  call GET "$ENTITY_URL/environments" | jsq 'v.pipeline.stages[0].name'
}

promote() {
  local version="${1:?promote needs a version}" stage="${2:?promote needs a stage}" id
  [[ "$stage" =~ ^[a-z0-9-]+$ ]] || { echo "demo-ci: not a stage name: $stage" >&2; return 2; }
  id="$(call POST "$ENTITY_URL/promotions" "{\"stage\":\"$stage\",\"version\":\"$version\",\"reason\":\"demo CI\"}" | jsq 'v.id')"
  echo "Asked for $version in $stage: promotion $id."
  [ -z "$WAIT" ] || echo "$version in $stage: $(wait_for "$id")"
}

status() {
  call GET "$ENTITY_URL/environments" | jsq 'v.pipeline.stages
    .map(st => `${st.title.padEnd(12)} ${st.live ? `${st.live.version} (${st.live.health})` : "unknown"}${
      st.activePromotion ? `, on its way: ${st.activePromotion.version} (${st.activePromotion.state})` : ""}`)
    .join("\n")'
}

# The history start.sh makes, so that the tab has something to show and to
# promote on first open: 1.1.0 through development and staging, 1.2.0
# unhealthy rolled back in development, 1.2.1 waiting in development for
# someone to promote it. Production (approval) is left to the person.
seed() {
  WAIT=1
  # The catalog reads the example entities a while after the backend
  # answers.
  local i
  for i in $(seq 1 120); do
    call GET "$ENTITY_URL/environments" >/dev/null 2>&1 && break
    sleep 1
  done
  release 1.1.0
  promote 1.1.0 staging
  release 1.2.0 unhealthy
  release 1.2.1
  status
}

case "${1:-}" in
  release) shift; release "$@" ;;
  promote) shift; promote "$@" ;;
  status) status ;;
  seed) seed ;;
  *) usage ;;
esac
