import { HumanDuration } from '@backstage/types';

export interface Config {
  progression?: {
    pipelines?: {
      [name: string]: {
        stages: Array<{
          gates?: {
            /**
             * A test image run as a Kubernetes Job in the stage's namespace
             * after the deploy; its exit code decides.
             */
            testJob?: {
              /** The test image, for example grafana/k6:0.52.0. */
              image: string;
              /** The argv to run (no shell), e.g. [k6, run, /scripts/smoke.js]. */
              command: string[];
              args?: string[];
              /**
               * Environment variables; values may use `{{ stageUrl }}`, the
               * stage's URL for the entity (the only placeholder).
               */
              env?: { [name: string]: string };
              /** Default '10m', at most '1h'. */
              timeout?: string | HumanDuration;
              /** Retries after a failed pod (0-10). Default 0. */
              backoffLimit?: number;
              /** Only 'verification' (after the deploy), the default. */
              phase?: 'verification';
            };
          };
        }>;
      };
    };
  };
}
