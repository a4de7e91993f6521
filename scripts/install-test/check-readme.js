#!/usr/bin/env node
/*
 * The README's "Use it in your Backstage app" steps are the code of the
 * app the install test builds: each statement of its backend block is in
 * packages/backend/src/index.ts, and its frontend package is a dependency
 * of packages/app. One place for both, so that they cannot drift.
 *
 * Usage: check-readme.js <README.md> <app folder>
 */
const fs = require('node:fs');
const path = require('node:path');

const [readmeFile, app] = process.argv.slice(2);
const readme = fs.readFileSync(readmeFile, 'utf8');
const section = readme
  .split('\n## Use it in your Backstage app')[1]
  ?.split('\n## ')[0];
if (!section) throw new Error('README has no "Use it in your Backstage app"');
const block = heading =>
  new RegExp(`### ${heading}[\\s\\S]*?\`\`\`tsx?\\n([\\s\\S]*?)\`\`\``).exec(
    section,
  )?.[1];
const squash = text => text.replace(/\/\/.*$/gm, '').replace(/\s+/g, '');

const backend = block('Backend');
if (!backend) throw new Error('README has no backend code block');
const index = squash(
  fs.readFileSync(path.join(app, 'packages/backend/src/index.ts'), 'utf8'),
);
const statements = backend
  .split(';')
  .map(squash)
  .filter(s => s && !s.startsWith('//'));
const missing = statements.filter(s => !index.includes(s));
if (missing.length) {
  throw new Error(
    `packages/backend/src/index.ts lacks the README's ${missing.join('; ')}`,
  );
}

const frontend = /`(@[\w-]+\/backstage-plugin-progression)`/.exec(
  section.split('### Frontend, new frontend system')[1] ?? '',
)?.[1];
const appPackage = JSON.parse(
  fs.readFileSync(path.join(app, 'packages/app/package.json'), 'utf8'),
);
if (!frontend || !appPackage.dependencies[frontend]) {
  throw new Error(
    `packages/app does not depend on the README's frontend package ${frontend}`,
  );
}
console.log(
  `README steps found in the app: ${statements.length} backend statement(s), frontend package ${frontend}`,
);
