import { Entity } from '@backstage/catalog-model';
import {
  PROGRESSION_CONTAINER_ANNOTATION,
  PROGRESSION_PIPELINE_ANNOTATION,
  getContainerName,
  getPipelineName,
  getStageUrlOverride,
  isProgressionAvailable,
} from './annotations';

function entity(annotations?: Record<string, string>): Entity {
  return {
    apiVersion: 'backstage.io/v1alpha1',
    kind: 'Component',
    metadata: { name: 'payments-api', annotations },
    spec: { type: 'service' },
  };
}

describe('annotations', () => {
  it('reads the pipeline name', () => {
    const e = entity({ [PROGRESSION_PIPELINE_ANNOTATION]: ' standard ' });
    expect(getPipelineName(e)).toBe('standard');
    expect(isProgressionAvailable(e)).toBe(true);
  });

  it.each([
    ['no annotations', undefined],
    ['other annotations', { 'backstage.io/kubernetes-id': 'payments-api' }],
    ['an empty value', { [PROGRESSION_PIPELINE_ANNOTATION]: '  ' }],
  ])('is not available with %s', (_, annotations) => {
    expect(isProgressionAvailable(entity(annotations))).toBe(false);
    expect(getPipelineName(entity(annotations))).toBeUndefined();
  });
});

describe('narrowing annotations', () => {
  it('reads the container name and per-stage URL overrides', () => {
    const e = entity({
      [PROGRESSION_CONTAINER_ANNOTATION]: ' api ',
      'progression.backstage.io/url.staging': 'http://127.0.0.1:7102/v2',
    });
    expect(getContainerName(e)).toBe('api');
    expect(getStageUrlOverride(e, 'staging')).toBe('http://127.0.0.1:7102/v2');
    expect(getStageUrlOverride(e, 'production')).toBeUndefined();
    expect(getContainerName(entity())).toBeUndefined();
  });
});
