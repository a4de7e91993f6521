import { TemplateExample } from '@backstage/plugin-scaffolder-node';
import yaml from 'yaml';

export const examples: TemplateExample[] = [
  {
    description:
      'Promote a release to a stage and wait until it is deployed and verified; the step fails if the promotion fails or is rolled back',
    example: yaml.stringify({
      steps: [
        {
          id: 'promote',
          name: 'Promote to development',
          action: 'progression:promote',
          input: {
            entityRef: 'component:default/payments-api',
            stage: 'development',
            version: '1.4.2',
            reason: 'Requested from the release template',
            wait: true,
            timeout: '30m',
          },
        },
      ],
    }),
  },
  {
    description:
      "Request a promotion to the next stage without waiting for it; the step's promotionId output names it",
    example: yaml.stringify({
      steps: [
        {
          id: 'promote-staging',
          name: 'Promote to staging',
          action: 'progression:promote',
          input: {
            entityRef: 'component:default/payments-api',
            stage: 'staging',
            version: '1.4.2',
          },
        },
      ],
    }),
  },
];
