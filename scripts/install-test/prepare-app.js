#!/usr/bin/env node
/*
 * Turns a copy of the repository's packages/app and packages/backend into
 * a Backstage app of its own, as an adopter has it before Progression: the
 * root package.json lists only the app's packages; the packages depend on
 * none of Progression's; the backend's index.ts and permission policy are
 * base-app/'s (the demo's without Progression); app-config.yaml has no
 * progression or argocd key, no Progression extension config and no CI
 * token for Progression. apply-readme.js then adds Progression by the
 * README's steps. The packages are not on a registry, so the root
 * package.json maps every @progression-io package to its tarball (also for
 * the tarballs' dependencies on each other). The tests and the demo's
 * end-to-end tests are left out, as an adopter's app would not have them.
 *
 * Usage: prepare-app.js <repository> <app folder> <tarball folder>
 */
const fs = require('node:fs');
const path = require('node:path');

const [repo, app, tarballs] = process.argv.slice(2).map(p => path.resolve(p));
const yaml = require('yaml');
const { packedTarballs, readJson, writeJson } = require('./packed');

const packed = packedTarballs(repo, tarballs);

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
      if (packed[dep]) delete pkg[field][dep];
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

// The app's and the backend's sources before Progression.
const base = path.join(__dirname, 'base-app');
for (const file of [
  'packages/app/src/App.tsx',
  'packages/backend/src/index.ts',
  'packages/backend/src/permissionPolicy.ts',
]) {
  fs.copyFileSync(path.join(base, file), path.join(app, file));
}

// The configuration before Progression. The guest signs in as sam, who
// owns nothing of payments-api's: the README's policy must refuse him what
// the allow-all policy before it allowed.
const configFile = path.join(app, 'app-config.yaml');
const config = yaml.parse(fs.readFileSync(configFile, 'utf8'));
delete config.progression;
delete config.argocd;
config.app.extensions = config.app.extensions.filter(
  extension => !Object.keys(extension).some(id => id.includes('progression')),
);
config.backend.auth.externalAccess = config.backend.auth.externalAccess.filter(
  access => !JSON.stringify(access).includes('progression'),
);
if (!config.backend.auth.externalAccess.length) delete config.backend.auth;
config.auth.providers.guest.userEntityRef = 'user:default/sam';
fs.writeFileSync(configFile, yaml.stringify(config));

// No package of Progression is left in the app's code or manifests.
const leftovers = [];
const scan = p => {
  if (fs.statSync(p).isDirectory()) {
    for (const entry of fs.readdirSync(p)) scan(path.join(p, entry));
  } else if (fs.readFileSync(p, 'utf8').includes('@progression-io/')) {
    leftovers.push(path.relative(app, p));
  }
};
for (const name of ['app', 'backend']) {
  scan(path.join(app, 'packages', name, 'src'));
  scan(path.join(app, 'packages', name, 'package.json'));
}
if (leftovers.length) {
  throw new Error(`Progression is still in ${leftovers.join(', ')}`);
}
console.log('A Backstage app without Progression, packages from tarballs');
