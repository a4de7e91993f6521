#!/usr/bin/env node
/*
 * Turns a copy of the repository's packages/app and packages/backend into
 * a Backstage app of its own that depends on Progression's packed tarballs
 * instead of the workspace: the root package.json lists only the app's
 * packages and maps every @progression-io package to its tarball (also for
 * the tarballs' dependencies on each other); the tests and the demo's
 * end-to-end tests are left out, as an adopter's app would not have them.
 *
 * Usage: prepare-app.js <repository> <app folder> <tarball folder>
 */
const fs = require('node:fs');
const path = require('node:path');

const [repo, app, tarballs] = process.argv.slice(2).map(p => path.resolve(p));
const readJson = file => JSON.parse(fs.readFileSync(file, 'utf8'));
const writeJson = (file, value) =>
  fs.writeFileSync(file, `${JSON.stringify(value, null, 2)}\n`);

// Each plugin's tarball, by package name.
const packed = {};
for (const dir of fs.readdirSync(path.join(repo, 'plugins'))) {
  const manifest = path.join(repo, 'plugins', dir, 'package.json');
  if (!fs.existsSync(manifest)) continue;
  const tarball = path.join(tarballs, `${dir}.tgz`);
  if (!fs.existsSync(tarball)) throw new Error(`no tarball ${tarball}`);
  packed[readJson(manifest).name] = `file:${tarball}`;
}

const root = readJson(path.join(repo, 'package.json'));
root.name = 'progression-install-test';
root.workspaces = ['packages/*'];
root.scripts = { tsc: 'tsc' };
root.resolutions = { ...root.resolutions, ...packed };
writeJson(path.join(app, 'package.json'), root);

for (const name of ['app', 'backend']) {
  const file = path.join(app, 'packages', name, 'package.json');
  const pkg = readJson(file);
  for (const field of ['dependencies', 'devDependencies']) {
    for (const dep of Object.keys(pkg[field] ?? {})) {
      if (packed[dep]) pkg[field][dep] = packed[dep];
      else if (String(pkg[field][dep]).startsWith('workspace:')) {
        throw new Error(`${name} depends on ${dep}, which is not packed`);
      }
    }
  }
  writeJson(file, pkg);
}

const tsconfig = readJson(path.join(app, 'tsconfig.json'));
tsconfig.include = ['packages/*/src', 'packages/*/config.d.ts'];
writeJson(path.join(app, 'tsconfig.json'), tsconfig);

// No tests: they reach into the repository (its simulator, its files).
const dropTests = dir => {
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, entry.name);
    if (entry.isDirectory()) dropTests(p);
    else if (/\.test\.tsx?$|^setupTests\.ts$/.test(entry.name)) fs.rmSync(p);
  }
};
for (const name of ['app', 'backend']) {
  dropTests(path.join(app, 'packages', name, 'src'));
  fs.rmSync(path.join(app, 'packages', name, 'e2e-tests'), {
    recursive: true,
    force: true,
  });
}
