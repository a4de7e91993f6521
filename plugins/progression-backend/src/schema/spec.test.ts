import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import yaml from 'js-yaml';
import { PROMOTION_STATES } from '@progression-io/backstage-plugin-progression-common';
import { spec } from './openapi/generated';

const generator = path.resolve(
  __dirname,
  '../../scripts/generate-openapi-spec.js',
);
const generatedSpec = path.resolve(__dirname, 'openapi/generated');
const generatedTypes = path.resolve(
  __dirname,
  '../../../progression-common/src/schema/openapi/generated',
);

/** The files below a directory, by relative path, with their text. */
function readTree(dir: string, prefix = ''): Record<string, string> {
  const files: Record<string, string> = {};
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    const name = path.join(prefix, entry.name);
    if (entry.isDirectory()) {
      Object.assign(files, readTree(path.join(dir, entry.name), name));
    } else {
      files[name] = fs.readFileSync(path.join(dir, entry.name), 'utf8');
    }
  }
  return files;
}

describe('OpenAPI contract', () => {
  it('the generated spec matches src/schema/openapi.yaml (run `yarn generate:openapi` after editing it)', () => {
    const source = yaml.load(
      fs.readFileSync(path.resolve(__dirname, 'openapi.yaml'), 'utf8'),
    );
    expect(spec).toEqual(source);
  });

  it('the generated spec and -common types are what the generator writes now (run `yarn generate:openapi`)', () => {
    const out = fs.mkdtempSync(path.join(os.tmpdir(), 'progression-openapi-'));
    try {
      execFileSync(process.execPath, [
        generator,
        '--spec-dir',
        path.join(out, 'spec'),
        '--types-dir',
        path.join(out, 'types'),
      ]);
      expect(readTree(generatedSpec)).toEqual(readTree(path.join(out, 'spec')));
      expect(readTree(generatedTypes)).toEqual(
        readTree(path.join(out, 'types')),
      );
    } finally {
      fs.rmSync(out, { recursive: true, force: true });
    }
  }, 60_000);

  it("-common's PROMOTION_STATES are the contract's promotion states", () => {
    expect(PROMOTION_STATES).toEqual(
      spec.components.schemas.PromotionState.enum,
    );
  });

  it('is an OpenAPI 3.1 document', () => {
    expect(spec.openapi).toBe('3.1.0');
  });
});
