import { TemplateExample } from '@backstage/plugin-scaffolder-node';
import yaml from 'yaml';

export const examples: TemplateExample[] = [
  {
    description:
      "Check that a catalog entity is ready for Progression: its pipeline annotation names a configured pipeline whose stages' clusters are configured",
    example: yaml.stringify({
      steps: [
        {
          id: 'validate',
          name: 'Validate the Progression pipeline',
          action: 'progression:pipeline:validate',
          input: {
            entityRef: 'component:default/payments-api',
          },
        },
      ],
    }),
  },
  {
    description:
      'Validate the entity a template is about to register, before it is in the catalog, and report problems without failing the step',
    example: yaml.stringify({
      steps: [
        {
          id: 'validate',
          name: 'Validate the new component',
          action: 'progression:pipeline:validate',
          input: {
            entity: {
              apiVersion: 'backstage.io/v1alpha1',
              kind: 'Component',
              metadata: {
                name: 'checkout-api',
                annotations: {
                  'progression.backstage.io/pipeline': 'standard',
                  'backstage.io/kubernetes-id': 'checkout-api',
                },
              },
              spec: { type: 'service', owner: 'team-payments' },
            },
            failOnProblems: false,
          },
        },
      ],
    }),
  },
];
