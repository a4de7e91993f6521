// Runs killableBackend.ts through Backstage's node transform.
require('@backstage/cli/config/nodeTransform.cjs');
require('./killableBackend.ts');
