export interface Config {
  /**
   * The Backstage Argo CD plugins' key, read as they read it: an app that
   * has them configured needs nothing new. Progression needs a token per
   * instance (`argocd account generate-token`); username and password
   * sessions are not used.
   */
  argocd?: {
    appLocatorMethods?: Array<{
      type: string;
      instances?: Array<{
        name: string;
        url: string;
        /** @visibility secret */
        token?: string;
      }>;
    }>;
  };
  progression?: {
    pipelines?: {
      [name: string]: {
        stages: Array<{
          deploy?: {
            /** 'argocd' for a GitOps stage (this module's deployer). */
            kind?: string;
            /** The Argo CD instance's name; default: the only one configured. */
            instance?: string;
            /**
             * The stage's Application, with placeholders
             * `{{ kubernetesId }}`, `{{ entity.name }}`,
             * `{{ entity.namespace }}`, `{{ stage.name }}` and
             * `{{ stage.namespace }}`. Default
             * '{{ kubernetesId }}-{{ stage.name }}'. An entity may name its
             * own with the annotation
             * `progression.backstage.io/argocd-app.<stage>`, only one that
             * deploys to the stage's namespace.
             */
            application?: string;
            git?: {
              /**
               * Pushes with this token when no entry of Backstage's
               * `integrations` matches the repository's host.
               * @visibility secret
               */
              token?: string;
              /** The user name sent with the token. Default 'x-access-token'. */
              username?: string;
              /** The commits' author. Default Progression <progression@backstage.io>. */
              author?: { name?: string; email?: string };
              /** How many times a push refused because the branch moved is made again (1-20). Default 5. */
              pushAttempts?: number;
            };
          };
        }>;
      };
    };
  };
}
