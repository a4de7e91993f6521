#!/usr/bin/env bash
# The install test: Progression as an adopter installs it. Packs every
# plugin package (backstage-cli package build, then yarn pack, whose
# prepack points the manifest at dist), makes a separate Backstage app in a
# temporary folder from a copy of packages/app and packages/backend that
# depends on the tarballs instead of the workspace and has none of
# Progression (prepare-app.js), adds Progression to it by the README's "Use
# it in your Backstage app" steps (apply-readme.js), installs, type-checks
# and builds it, starts its backend and asks the environments route for
# payments-api: 200, and a mutating route as a user the README's policy
# refuses: 403, or the test fails.
#
# KEEP_INSTALL_TEST=1 keeps the temporary folder for a look afterwards.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

WORK="$(mktemp -d "${TMPDIR:-/tmp}/progression-install.XXXXXX")"
APP="$WORK/app"
BACKEND_PID=""
cleanup() {
  stop_process_group "$BACKEND_PID"
  for dir in "$ROOT"/plugins/*/; do
    (cd "$dir" && yarn backstage-cli package clean >/dev/null 2>&1) || true
  done
  if [ -z "${KEEP_INSTALL_TEST:-}" ]; then rm -rf "$WORK"; else log "Kept $WORK"; fi
}
trap cleanup EXIT

port_in_use 7007 && die "Port 7007 is in use; the installed app's backend needs it."

log "Install test: packing the plugin packages into $WORK/tarballs"
mkdir -p "$WORK/tarballs"
for dir in plugins/*/; do
  name="$(basename "$dir")"
  (
    cd "$dir"
    yarn backstage-cli package build >"$WORK/build-$name.log" 2>&1 ||
      { cat "$WORK/build-$name.log" >&2; die "building $name failed"; }
    yarn pack -o "$WORK/tarballs/$name.tgz" >"$WORK/pack-$name.log" 2>&1 ||
      { cat "$WORK/pack-$name.log" >&2; die "packing $name failed"; }
  )
done

log "Install test: a separate app in $APP"
mkdir -p "$APP/packages" "$APP/.yarn"
cp -r .yarn/releases "$APP/.yarn/"
cp .yarnrc.yml yarn.lock tsconfig.json backstage.json app-config.yaml "$APP/"
cp -r examples "$APP/"
for name in app backend; do
  mkdir -p "$APP/packages/$name"
  tar -C "packages/$name" --exclude=node_modules --exclude=dist \
    --exclude=dist-types -cf - . | tar -C "$APP/packages/$name" -xf -
done
node scripts/install-test/prepare-app.js . "$APP" "$WORK/tarballs"
node scripts/install-test/apply-readme.js . "$APP" "$WORK/tarballs"

cd "$APP"
log "Install test: yarn install"
# The app's lockfile is the repository's, which the tarballs change: on CI
# (CI=true) Yarn would refuse to write it.
YARN_ENABLE_IMMUTABLE_INSTALLS=false yarn install >"$WORK/install.log" 2>&1 ||
  { tail -50 "$WORK/install.log" >&2; die "yarn install of the app failed"; }
for manifest in "$ROOT"/plugins/*/package.json; do
  pkg="$(node -p "require('$manifest').name")"
  [ -f "node_modules/$pkg/dist/index.d.ts" ] ||
    die "$pkg is not installed from its tarball (no dist/index.d.ts)"
done

log "Install test: yarn tsc"
yarn tsc || die "the app does not type-check against the packed packages"

log "Install test: building the app and the backend"
yarn workspace app build >"$WORK/app-build.log" 2>&1 ||
  { tail -40 "$WORK/app-build.log" >&2; die "the app does not build"; }
yarn workspace backend build >"$WORK/backend-build.log" 2>&1 ||
  { tail -40 "$WORK/backend-build.log" >&2; die "the backend does not build"; }

log "Install test: starting the backend"
# Its own process group (setsid), so that the cleanup stops all of it.
# LOCAL_CLUSTER_TOKEN: the README's configuration block reads it; no
# cluster is asked for anything here.
LOCAL_CLUSTER_TOKEN=install-test-token \
  setsid bash -c 'cd packages/backend && exec node "$1" start' _ \
  "$APP/.yarn/releases/yarn-4.13.0.cjs" >"$WORK/backend.log" 2>&1 &
BACKEND_PID=$!
if ! wait_while_alive "$BACKEND_PID" 300 curl -fsS -o /dev/null \
  http://localhost:7007/.backstage/health/v1/readiness; then
  tail -60 "$WORK/backend.log" >&2
  die "the installed app's backend did not start"
fi
TOKEN="$(curl -fsS -X POST http://localhost:7007/api/auth/guest/refresh \
  -H 'X-Requested-With: XMLHttpRequest' |
  node -pe 'JSON.parse(require("fs").readFileSync(0)).backstageIdentity.token')"
# The catalog reads its locations after start-up: wait for the entity.
catalog_has_entity() {
  curl -fsS -o /dev/null -H "Authorization: Bearer $TOKEN" \
    http://localhost:7007/api/catalog/entities/by-name/component/default/payments-api
}
wait_while_alive "$BACKEND_PID" 180 catalog_has_entity ||
  die "the catalog of the installed app never listed payments-api"
URL=http://localhost:7007/api/progression/v1/entities/component/default/payments-api/environments
STATUS="$(curl -s -o "$WORK/environments.json" -w '%{http_code}' \
  -H "Authorization: Bearer $TOKEN" "$URL")"
if [ "$STATUS" != 200 ]; then
  cat "$WORK/environments.json" >&2
  tail -40 "$WORK/backend.log" >&2
  die "GET $URL answered $STATUS"
fi
node -e '
  const body = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
  const stages = body.pipeline.stages.map(s => s.name).join(", ");
  console.log(`environments of payments-api: 200, stages ${stages}`);
' "$WORK/environments.json"
# The README's policy is in force: sam (the guest here) owns nothing of
# payments-api's, so he may not register its releases; the allow-all
# policy the app had before let him.
STATUS="$(curl -s -o "$WORK/release.json" -w '%{http_code}' -X POST \
  -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \
  -d '{"version":"1.0.0","image":"registry.example/payments-api:1.0.0"}' \
  http://localhost:7007/api/progression/v1/entities/component/default/payments-api/releases)"
if [ "$STATUS" != 403 ]; then
  cat "$WORK/release.json" >&2
  die "a release registered by sam, who does not own payments-api, answered $STATUS, not 403: the README's policy is not in force"
fi
log "a release registered by a non-owner: 403 (the README's policy): $(
  node -pe 'JSON.parse(require("fs").readFileSync(process.argv[1], "utf8")).error?.message' \
    "$WORK/release.json"
)"
log "Install test passed"
