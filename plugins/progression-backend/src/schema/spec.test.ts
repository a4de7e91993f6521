import fs from 'node:fs';
import path from 'node:path';
import yaml from 'js-yaml';
import { spec } from './openapi/generated';

describe('OpenAPI contract', () => {
  it('the generated spec matches src/schema/openapi.yaml (run `yarn generate:openapi` after editing it)', () => {
    const source = yaml.load(
      fs.readFileSync(path.resolve(__dirname, 'openapi.yaml'), 'utf8'),
    );
    expect(spec).toEqual(source);
  });

  it('is an OpenAPI 3.1 document', () => {
    expect(spec.openapi).toBe('3.1.0');
  });
});
