#!/usr/bin/env bash
# Writes the demo's configuration for a running Prometheus, loaded after
# app-config.yaml (`yarn start --config app-config.yaml --config FILE`):
# progression.prometheus.url, and staging's error-rate metric gate and its
# alert freeze (DemoHighErrorRatio, scripts/demo-prometheus-rules.yml) in the
# `standard` pipeline. app-config.yaml has neither, so that a demo without
# Prometheus runs without metric gates rather than with gates it cannot
# measure (which the backend refuses to start with). Backstage replaces
# lists instead of merging them, so FILE holds the pipeline's whole list of
# stages, read from app-config.yaml with the gate added: the two cannot
# drift apart.
#
# Usage: scripts/demo-prometheus-config.sh PROMETHEUS_URL FILE
set -euo pipefail

[ $# -eq 2 ] || { echo "Usage: $0 PROMETHEUS_URL FILE" >&2; exit 2; }
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

node - "$ROOT" "$1" "$2" <<'JS'
const fs = require('node:fs');
const path = require('node:path');
const [root, url, file] = process.argv.slice(2);
// The yaml package of Backstage's CLI, which reads the same files.
const cli = path.dirname(
  require.resolve('@backstage/cli/package.json', { paths: [root] }),
);
const YAML = require(require.resolve('yaml', { paths: [cli] }));

if (!/^https?:\/\/[^\s]+$/.test(url)) {
  throw new Error(`'${url}' is not an http(s) URL`);
}
const base = YAML.parse(
  fs.readFileSync(path.join(root, 'app-config.yaml'), 'utf8'),
);
const stages = base?.progression?.pipelines?.standard?.stages;
const staging = Array.isArray(stages)
  ? stages.find(s => s.name === 'staging')
  : undefined;
if (!staging) {
  throw new Error('app-config.yaml has no staging stage in the standard pipeline');
}
if (staging.gates?.metrics) {
  throw new Error("app-config.yaml's staging stage already has metric gates");
}

const metrics = YAML.parse(`
# The new version's share of 5xx answers, over the demo's background
# traffic (1 request/s per service).
- name: error-rate
  query: (sum(rate(http_requests_total{namespace="{{ namespace }}",app="{{ app }}",version="{{ version }}",status=~"5.."}[20s])) or vector(0)) / sum(rate(http_requests_total{namespace="{{ namespace }}",app="{{ app }}",version="{{ version }}"}[20s]))
  condition: '<= 0.05'
  unit: ratio
  initialDelay: 8s
  interval: 4s
  count: 3
  minTraffic:
    query: sum(rate(http_requests_total{namespace="{{ namespace }}",app="{{ app }}",version="{{ version }}"}[20s]))
    min: 0.2
`);
// After the smoke checks, where it is read best; gates run in their own order.
const { smoke, ...others } = staging.gates ?? {};
staging.gates = { ...(smoke && { smoke }), metrics, ...others };
// Closed to promotions while its own error ratio is too high (the
// `-errors` images); rollbacks still enter.
staging.freezeOn = {
  alerts: ['{alertname="DemoHighErrorRatio",namespace="staging"}'],
};

const overlay = {
  progression: {
    prometheus: { url },
    pipelines: { standard: { stages } },
  },
};
fs.mkdirSync(path.dirname(file), { recursive: true });
fs.writeFileSync(
  file,
  `# Written by scripts/demo-prometheus-config.sh for the Prometheus at ${url};\n` +
    '# do not edit (change app-config.yaml or the script).\n' +
    YAML.stringify(overlay, { aliasDuplicateObjects: false, lineWidth: 0 }),
);
JS
