#!/usr/bin/env node
/*
 * Adds Progression to the install test's app (prepare-app.js: an app
 * without it) by doing what the README's "Use it in your Backstage app"
 * says, block by block, so that the README is what is tested:
 *
 * - `yarn --cwd <package> add <names>`: each name becomes a dependency of
 *   that package (its packed tarball: nothing is on a registry);
 * - `// packages/backend/src/index.ts`: the lines go before backend.start();
 * - `// packages/backend/src/permissionPolicy.ts`: its imports are added and
 *   its class replaces the app's AppPolicy;
 * - `// packages/app/src/App.tsx, with …`: its imports are added and its
 *   features appended to the app's;
 * - YAML starting with `app:` or `progression:`: merged into
 *   app-config.yaml (lists appended);
 * - `# catalog-info.yaml`: each annotation it shows is on payments-api in
 *   the app's catalog.
 *
 * The alternatives the app does not use (an explicit App.tsx instead of
 * discovery, the legacy frontend system) are named as skipped. Any other block fails the test, so that a new step
 * cannot go untested.
 *
 * Usage: apply-readme.js <repository> <app folder> <tarball folder>
 */
const fs = require('node:fs');
const path = require('node:path');
const yaml = require('yaml');
const { packedTarballs, readJson, writeJson } = require('./packed');

const [repo, app, tarballs] = process.argv.slice(2).map(p => path.resolve(p));
const packed = packedTarballs(repo, tarballs);
const readme = fs.readFileSync(path.join(repo, 'README.md'), 'utf8');
const section = readme
  .split('\n## Use it in your Backstage app')[1]
  ?.split('\n## ')[0];
if (!section) throw new Error('README has no "Use it in your Backstage app"');

const inApp = file => path.join(app, file);
const edit = (file, change) =>
  fs.writeFileSync(inApp(file), change(fs.readFileSync(inApp(file), 'utf8')));
const done = [];

function addPackages(block) {
  const lines = block.split('\n').filter(l => l.trim() && !/^\s*#/.test(l));
  for (const line of lines) {
    const match =
      /^yarn --cwd (packages\/[\w-]+) add ((?:\s*@?[\w./-]+)+)$/.exec(
        line.trim(),
      );
    if (!match)
      throw new Error(`README: a command the test cannot do: ${line}`);
    const manifest = inApp(path.join(match[1], 'package.json'));
    const pkg = readJson(manifest);
    for (const name of match[2].trim().split(/\s+/)) {
      if (!packed[name])
        throw new Error(`README names ${name}: no such package`);
      pkg.dependencies[name] = packed[name];
      done.push(`${match[1]} depends on ${name}`);
    }
    writeJson(manifest, pkg);
  }
}

function addToBackend(code) {
  edit('packages/backend/src/index.ts', source => {
    if (!source.includes('\nbackend.start();')) {
      throw new Error('packages/backend/src/index.ts has no backend.start()');
    }
    return source.replace('\nbackend.start();', `\n${code}\nbackend.start();`);
  });
  done.push('packages/backend/src/index.ts: the backend block');
}

const IMPORT = /^import [\s\S]*?;$/gm;

/** `source` with `imports` added after its last import statement. */
function withImports(source, imports) {
  const last = [...source.matchAll(IMPORT)].pop();
  const at = last ? last.index + last[0].length : 0;
  return `${source.slice(0, at)}\n${imports.join('\n')}${source.slice(at)}`;
}

function replacePolicy(code) {
  const imports = code.match(IMPORT) ?? [];
  const policyClass = /^class AppPolicy[\s\S]*?^}$/m.exec(code)?.[0];
  if (!policyClass) throw new Error('README: the policy block has no class');
  edit('packages/backend/src/permissionPolicy.ts', source => {
    const existing = /^class AppPolicy[\s\S]*?^}$/m;
    if (!existing.test(source)) throw new Error('the app has no AppPolicy');
    return withImports(source, imports).replace(existing, policyClass);
  });
  done.push('packages/backend/src/permissionPolicy.ts: the policy class');
}

function addAppFeatures(code) {
  const imports = code.match(IMPORT) ?? [];
  const features = /features: \[\/\* \.\.\. \*\/ ([\w, ]+)\]/
    .exec(code)?.[1]
    .split(',')
    .map(f => f.trim());
  if (!features) throw new Error('README: the App.tsx block adds no features');
  edit('packages/app/src/App.tsx', source => {
    const list = /features: \[([^\]]*)\]/.exec(source);
    if (!list) throw new Error('packages/app/src/App.tsx has no features');
    const withFeatures = source.replace(
      list[0],
      `features: [${list[1].trim().replace(/,$/, '')}, ${features.join(', ')}]`,
    );
    return withImports(withFeatures, imports);
  });
  done.push(`packages/app/src/App.tsx: features ${features.join(', ')}`);
}

function mergeConfig(text) {
  const merge = (into, from) => {
    for (const [key, value] of Object.entries(from)) {
      if (Array.isArray(value) && Array.isArray(into[key])) {
        into[key] = [...into[key], ...value];
      } else if (value && typeof value === 'object' && into[key]) {
        merge(into[key], value);
      } else {
        into[key] = value;
      }
    }
  };
  edit('app-config.yaml', source => {
    const config = yaml.parse(source);
    merge(config, yaml.parse(text));
    return yaml.stringify(config);
  });
  done.push(`app-config.yaml: ${Object.keys(yaml.parse(text)).join(', ')}`);
}

function checkEntity(text) {
  const shown = yaml.parse(text).metadata.annotations;
  const entities = yaml
    .parseAllDocuments(fs.readFileSync(inApp('examples/entities.yaml'), 'utf8'))
    .map(d => d.toJS());
  const entity = entities.find(
    e => e?.kind === 'Component' && e.metadata.name === 'payments-api',
  );
  for (const key of Object.keys(shown)) {
    if (!entity?.metadata.annotations?.[key]) {
      throw new Error(`payments-api lacks the README's annotation ${key}`);
    }
  }
  done.push(`payments-api has ${Object.keys(shown).join(', ')}`);
}

const blocks = [...section.matchAll(/```(\w+)\n([\s\S]*?)```/g)];
for (const [, language, body] of blocks) {
  const first = body.split('\n')[0];
  if (language === 'sh') addPackages(body);
  else if (first.startsWith('// packages/backend/src/index.ts')) {
    addToBackend(body.split('\n').slice(1).join('\n'));
  } else if (first.startsWith('// packages/backend/src/permissionPolicy.ts')) {
    replacePolicy(body);
  } else if (first.startsWith('// packages/app/src/App.tsx, with')) {
    addAppFeatures(body);
  } else if (first.startsWith('// packages/app/src/App.tsx')) {
    done.push('skipped: the explicit App.tsx (the app discovers packages)');
  } else if (first.startsWith('// packages/app/src/components/catalog/')) {
    done.push('skipped: the legacy frontend system (the app uses the new)');
  } else if (language === 'yaml' && first === '# catalog-info.yaml') {
    checkEntity(body);
  } else if (language === 'yaml' && /^(app|progression):/.test(first)) {
    mergeConfig(body);
  } else {
    throw new Error(
      `README: a ${language} block the test does not do:\n${body}`,
    );
  }
}
console.log(`README steps applied:\n- ${done.join('\n- ')}`);
