import fs from 'node:fs';
import path from 'node:path';

/*
 * What makes the plugin packages publishable, checked on every package
 * under plugins/: a public scope and access, what the build leaves in the
 * tarball, the Backstage metadata, a changelog whose latest entry is the
 * package's version, and the compatibility line the README states.
 */
const root = path.resolve(__dirname, '../../..');
const plugins = fs
  .readdirSync(path.join(root, 'plugins'), { withFileTypes: true })
  .filter(e => e.isDirectory())
  .map(e => path.join(root, 'plugins', e.name))
  .filter(dir => fs.existsSync(path.join(dir, 'package.json')));
const read = (dir: string) =>
  JSON.parse(fs.readFileSync(path.join(dir, 'package.json'), 'utf8'));
const backstageRelease = JSON.parse(
  fs.readFileSync(path.join(root, 'backstage.json'), 'utf8'),
).version;

it('finds the plugin packages', () => {
  expect(plugins.length).toBeGreaterThanOrEqual(7);
});

it.each(plugins.map(dir => [path.basename(dir), dir]))(
  '%s is publishable',
  (_, dir) => {
    const pkg = read(dir);
    expect(pkg.private).toBeUndefined();
    expect(pkg.name).toMatch(/^@progression-io\/backstage-plugin-/);
    expect(pkg.version).toMatch(/^\d+\.\d+\.\d+/);
    expect(pkg.license).toBe('Apache-2.0');
    expect(pkg.publishConfig?.access).toBe('public');
    expect(pkg.files).toContain('dist');
    expect(pkg.scripts).toMatchObject({
      prepack: 'backstage-cli package prepack',
      postpack: 'backstage-cli package postpack',
    });
    expect(pkg.backstage.role).toBeTruthy();
    // A module names the plugin it extends; a plugin's packages name each other.
    const module = pkg.backstage.role === 'backend-plugin-module';
    expect(
      module
        ? Boolean(pkg.backstage.pluginPackage)
        : pkg.backstage.pluginPackages?.includes(pkg.name),
    ).toBe(true);
    // A config schema is shipped with the package.
    const schema: string | undefined = pkg.configSchema;
    expect(
      !schema ||
        (pkg.files.includes(schema) && fs.existsSync(path.join(dir, schema))),
    ).toBe(true);
    // What a consumer installs never includes an unpublished package.
    for (const dep of Object.keys(pkg.dependencies ?? {})) {
      expect(dep).not.toMatch(/^@internal\//);
    }
    const changelog = fs.readFileSync(path.join(dir, 'CHANGELOG.md'), 'utf8');
    expect(changelog.split('\n')[0]).toBe(`# ${pkg.name}`);
    expect(/^## (\S+)$/m.exec(changelog)?.[1]).toBe(pkg.version);
  },
);

it('states the Backstage release of backstage.json as the compatibility line', () => {
  const readme = fs.readFileSync(path.join(root, 'README.md'), 'utf8');
  expect(readme).toContain(
    `**Compatibility: built and tested against Backstage ${backstageRelease}**`,
  );
});
