import { HumanDuration } from '@backstage/types';

/** A webhook a promotion asks whether it may go on. */
interface ProgressionWebhook {
  /** Lowercase letters, digits and '-'; unique in the stage. */
  name: string;
  /** The http(s) URL the promotion is POSTed to, without credentials. */
  url: string;
  /**
   * When it is called: before the approval (`preflight`, default), after
   * the approval just before the deploy (`predeploy`), or after the
   * deploy (`verification`).
   */
  phase?: 'preflight' | 'predeploy' | 'verification';
  /** Default '10s', at most '2m'. */
  timeout?: string | HumanDuration;
  /**
   * Sent with the request, for example Authorization; never recorded in
   * evidence or logs.
   * @visibility secret
   */
  headers?: { [name: string]: string };
}

export interface Config {
  progression?: {
    pipelines?: {
      [name: string]: {
        stages: Array<{
          gates?: {
            /**
             * Webhooks that must answer 2xx for a promotion into this stage
             * to go on (one, or a list).
             */
            webhook?: ProgressionWebhook | ProgressionWebhook[];
          };
        }>;
      };
    };
  };
}
