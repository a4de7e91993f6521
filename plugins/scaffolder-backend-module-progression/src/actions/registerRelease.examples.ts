import { TemplateExample } from '@backstage/plugin-scaffolder-node';
import yaml from 'yaml';

export const examples: TemplateExample[] = [
  {
    description:
      'Register the release a CI build produced, with its commit and build URL',
    example: yaml.stringify({
      steps: [
        {
          id: 'register',
          name: 'Register the release',
          action: 'progression:release:register',
          input: {
            entityRef: 'component:default/payments-api',
            version: '1.4.2',
            image: 'registry.example.com/payments-api:1.4.2',
            commit: '3f2c9ab',
            url: 'https://ci.example.com/payments-api/builds/812',
          },
        },
      ],
    }),
  },
  {
    description:
      'Register a release; registering the same version and image again is not an error (created is then false)',
    example: yaml.stringify({
      steps: [
        {
          id: 'register',
          name: 'Register the release',
          action: 'progression:release:register',
          input: {
            entityRef: 'component:default/payments-api',
            version: '1.4.2',
            image: 'registry.example.com/payments-api:1.4.2',
          },
        },
      ],
    }),
  },
];
