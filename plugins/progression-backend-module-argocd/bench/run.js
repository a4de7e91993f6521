#!/usr/bin/env node
// Runs a benchmark from TypeScript through Backstage's node transform.
require('@backstage/cli/config/nodeTransform.cjs');
require(require('node:path').resolve(
  __dirname,
  process.argv[2] ?? 'gitops.ts',
));
