/*
 * Shared by the install test's scripts: each plugin's packed tarball, by
 * package name, as a `file:` dependency, and JSON file helpers.
 */
const fs = require('node:fs');
const path = require('node:path');

const readJson = file => JSON.parse(fs.readFileSync(file, 'utf8'));
const writeJson = (file, value) =>
  fs.writeFileSync(file, `${JSON.stringify(value, null, 2)}\n`);

/** Each package under <repo>/plugins by name: `file:<tarballs>/<dir>.tgz`. */
function packedTarballs(repo, tarballs) {
  const packed = {};
  for (const dir of fs.readdirSync(path.join(repo, 'plugins'))) {
    const manifest = path.join(repo, 'plugins', dir, 'package.json');
    if (!fs.existsSync(manifest)) continue;
    const tarball = path.join(tarballs, `${dir}.tgz`);
    if (!fs.existsSync(tarball)) throw new Error(`no tarball ${tarball}`);
    packed[readJson(manifest).name] = `file:${tarball}`;
  }
  return packed;
}

module.exports = { packedTarballs, readJson, writeJson };
