#!/usr/bin/env bash
# Writes a configuration that gives web-shop's production (the `fast-lane`
# pipeline) a deny window, for trying promotion windows in the demo and for
# the browser test of them. Load it after the others:
#
#   scripts/demo-window-config.sh .demo/app-config.window.yaml '* * * * *' 40s
#   ./scripts/start.sh --config .demo/app-config.window.yaml
#
# (start.sh loads app-config.yaml and its Prometheus overlay first.) The
# window opens
# at every cron time and lasts the duration: '* * * * *' 40s keeps
# production closed for the first 40 seconds of every minute; '0 18 * * 5'
# 62h is a weekend freeze. Backstage replaces lists instead of merging them,
# so FILE holds the pipeline's whole list of stages, read from
# app-config.yaml with the window added: the two cannot drift apart.
#
# Usage: scripts/demo-window-config.sh FILE [CRON] [DURATION] [TIMEZONE]
set -euo pipefail

[ $# -ge 1 ] && [ $# -le 4 ] || { echo "Usage: $0 FILE [CRON] [DURATION] [TIMEZONE]" >&2; exit 2; }
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

node - "$ROOT" "$1" "${2:-* * * * *}" "${3:-40s}" "${4:-UTC}" <<'JS'
const fs = require('node:fs');
const path = require('node:path');
const [root, file, schedule, duration, timezone] = process.argv.slice(2);
// The yaml package of Backstage's CLI, which reads the same files.
const cli = path.dirname(
  require.resolve('@backstage/cli/package.json', { paths: [root] }),
);
const YAML = require(require.resolve('yaml', { paths: [cli] }));

const base = YAML.parse(
  fs.readFileSync(path.join(root, 'app-config.yaml'), 'utf8'),
);
const stages = base?.progression?.pipelines?.['fast-lane']?.stages;
const production = Array.isArray(stages)
  ? stages.find(s => s.name === 'production')
  : undefined;
if (!production) {
  throw new Error('app-config.yaml has no production stage in the fast-lane pipeline');
}
// The backend checks the schedule, duration and time zone when it starts.
production.windows = [
  { kind: 'deny', name: 'demo freeze', schedule, duration, timezone },
];

fs.mkdirSync(path.dirname(path.resolve(file)), { recursive: true });
fs.writeFileSync(
  file,
  `# Written by scripts/demo-window-config.sh ('${schedule}', ${duration}, ${timezone});\n` +
    '# do not edit (change app-config.yaml or the script).\n' +
    YAML.stringify(
      { progression: { pipelines: { 'fast-lane': { stages } } } },
      { aliasDuplicateObjects: false, lineWidth: 0 },
    ),
);
JS
