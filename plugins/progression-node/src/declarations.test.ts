import fs from 'node:fs';
import path from 'node:path';

/*
 * TypeScript's `stripInternal` (on in Backstage's tsconfig) leaves out of
 * the type declarations every declaration whose doc comment contains the
 * text "@internal" anywhere, a package name such as "@internal/…"
 * included: the package build then misses exports (it once lost the
 * backend's plugin and StageGateConfigs). A doc comment may use the tag on
 * purpose; none may name a package of the `@internal` scope.
 */
const root = path.resolve(__dirname, '../..');

function sources(dir: string): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap(e => {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) {
      return e.name === 'node_modules' || e.name === 'dist' ? [] : sources(p);
    }
    return /\.tsx?$/.test(e.name) && !/\.test\.tsx?$/.test(e.name) ? [p] : [];
  });
}

it('no doc comment in the plugins names an @internal/ package', () => {
  const found = fs
    .readdirSync(root)
    .flatMap(plugin => {
      const src = path.join(root, plugin, 'src');
      return fs.existsSync(src) ? sources(src) : [];
    })
    .flatMap(file =>
      (fs.readFileSync(file, 'utf8').match(/\/\*\*[\s\S]*?\*\//g) ?? [])
        .filter(comment => comment.includes('@internal/'))
        .map(
          comment => `${path.relative(root, file)}: ${comment.slice(0, 80)}`,
        ),
    );
  expect(found).toEqual([]);
});
