import { Config } from '@backstage/config';
import { InputError } from '@backstage/errors';
import {
  DefaultAzureDevOpsCredentialsProvider,
  DefaultGithubCredentialsProvider,
  ScmIntegrations,
} from '@backstage/integration';
import {
  EntityTarget,
  ProgressionConfigError,
  StageConfig,
} from '@progression-io/backstage-plugin-progression-node';
import { ArgoCdInstance, isApplicationName } from './ArgoCdClient';
import { GitCredentials } from './GitRepository';

/** A stage's `deploy` section when `kind: argocd`. */
export interface ArgoCdStageConfig {
  /** The Argo CD instance's name in `argocd.appLocatorMethods[].instances[]`. */
  instance: string;
  /** The Application's name, placeholders not yet filled in. */
  application: string;
  git: {
    /** Used when no entry of Backstage's `integrations` matches the repository's host. */
    token?: string;
    username: string;
    author: { name: string; email: string };
    /** How many times a push the branch's moves refused is made again. */
    pushAttempts: number;
  };
}

export const DEFAULT_APPLICATION = '{{ kubernetesId }}-{{ stage.name }}';

const PLACEHOLDERS = [
  'kubernetesId',
  'entity.name',
  'entity.namespace',
  'stage.name',
  'stage.namespace',
] as const;
const PLACEHOLDER = /\{\{\s*([^}\s]*)\s*\}\}/g;

/** The entity annotation that names a stage's Application (it may only narrow). */
export const applicationAnnotation = (stage: string) =>
  `progression.backstage.io/argocd-app.${stage}`;

/**
 * The Argo CD instances the Backstage Argo CD plugins read
 * (`argocd.appLocatorMethods[].instances[]`), by name.
 */
export function readArgoCdInstances(
  config: Config,
): Map<string, ArgoCdInstance> {
  const instances = new Map<string, ArgoCdInstance>();
  const methods =
    config.getOptionalConfigArray('argocd.appLocatorMethods') ?? [];
  methods.forEach((method, m) => {
    (method.getOptionalConfigArray('instances') ?? []).forEach((i, n) => {
      const path = `argocd.appLocatorMethods[${m}].instances[${n}]`;
      const name = i.getString('name');
      const url = i.getString('url');
      try {
        const parsed = new URL(url);
        if (!['http:', 'https:'].includes(parsed.protocol)) throw new Error();
      } catch {
        throw new ProgressionConfigError(
          `${path}.url`,
          `'${url}' is not an http or https URL`,
        );
      }
      const token = i.getOptionalString('token');
      if (!token) {
        // username/password sessions are what the read-only plugins may
        // use; a deployer acts with a token of its own.
        throw new ProgressionConfigError(
          `${path}.token`,
          `Progression deploys through Argo CD instance ${name} with an API token; set one (argocd account generate-token)`,
        );
      }
      if (instances.has(name)) {
        throw new ProgressionConfigError(
          `${path}.name`,
          `instance ${name} is configured twice`,
        );
      }
      instances.set(name, { name, url, token });
    });
  });
  return instances;
}

/** Reads and checks a stage's `deploy` section (`kind: argocd`). */
export function readArgoCdStageConfig(
  deploy: Config | undefined,
  path: string,
  instances: Map<string, ArgoCdInstance>,
): ArgoCdStageConfig {
  if (instances.size === 0) {
    throw new ProgressionConfigError(
      `${path}.kind`,
      "no Argo CD instance is configured; add one under argocd.appLocatorMethods[].instances (the Backstage Argo CD plugins' key)",
    );
  }
  const instance =
    deploy?.getOptionalString('instance') ??
    (instances.size === 1 ? [...instances.keys()][0] : undefined);
  if (!instance || !instances.has(instance)) {
    throw new ProgressionConfigError(
      `${path}.instance`,
      instance
        ? `no Argo CD instance '${instance}'; configured: ${[
            ...instances.keys(),
          ].join(', ')}`
        : `name one of the Argo CD instances: ${[...instances.keys()].join(
            ', ',
          )}`,
    );
  }
  const application =
    deploy?.getOptionalString('application') ?? DEFAULT_APPLICATION;
  for (const [, name] of application.matchAll(PLACEHOLDER)) {
    if (!(PLACEHOLDERS as readonly string[]).includes(name)) {
      throw new ProgressionConfigError(
        `${path}.application`,
        `unknown placeholder '{{ ${name} }}'; use ${PLACEHOLDERS.map(
          p => `{{ ${p} }}`,
        ).join(', ')}`,
      );
    }
  }
  const example = renderApplication(application, {
    kubernetesId: 'example',
    'entity.name': 'example',
    'entity.namespace': 'default',
    'stage.name': 'stage',
    'stage.namespace': 'namespace',
  });
  if (!isApplicationName(example)) {
    throw new ProgressionConfigError(
      `${path}.application`,
      `'${application}' does not make an Application name (it gives '${example}')`,
    );
  }
  const pushAttempts = deploy?.getOptionalNumber('git.pushAttempts') ?? 5;
  if (
    !Number.isInteger(pushAttempts) ||
    pushAttempts < 1 ||
    pushAttempts > 20
  ) {
    throw new ProgressionConfigError(
      `${path}.git.pushAttempts`,
      'must be a whole number from 1 to 20',
    );
  }
  return {
    instance,
    application,
    git: {
      token: deploy?.getOptionalString('git.token'),
      username: deploy?.getOptionalString('git.username') ?? 'x-access-token',
      author: {
        name: deploy?.getOptionalString('git.author.name') ?? 'Progression',
        email:
          deploy?.getOptionalString('git.author.email') ??
          'progression@backstage.io',
      },
      pushAttempts,
    },
  };
}

function renderApplication(template: string, values: Record<string, string>) {
  return template.replace(PLACEHOLDER, (_, name: string) => values[name]);
}

/**
 * The Application the entity's promotions into `stage` go through: the
 * template filled in, or the entity's annotation. The caller checks that
 * the Application deploys to the stage's namespace (an annotation can only
 * narrow which Application of that stage, never point elsewhere).
 */
export function applicationName(
  entity: EntityTarget,
  stage: StageConfig,
  config: ArgoCdStageConfig,
): { name: string; annotated: boolean } {
  const annotated = entity.annotations?.[applicationAnnotation(stage.name)];
  const name =
    annotated ??
    renderApplication(config.application, {
      kubernetesId: entity.kubernetesId,
      'entity.name': entity.name,
      'entity.namespace': entity.namespace,
      'stage.name': stage.name,
      'stage.namespace': stage.namespace,
    });
  if (!isApplicationName(name)) {
    // The entity's data, not the app's configuration, when it is annotated.
    if (annotated !== undefined) {
      throw new InputError(
        `the entity's annotation ${applicationAnnotation(
          stage.name,
        )}: '${name}' is not an Application name`,
      );
    }
    throw new ProgressionConfigError(
      'deploy.application',
      `'${name}' is not an Application name`,
    );
  }
  return { name, annotated: annotated !== undefined };
}

/**
 * Credentials for pushing to `url`: from Backstage's `integrations` when
 * one matches its host and has them (as the scaffolder's publish actions
 * use them), else the stage's `git.token`.
 */
export function gitCredentialsFor(
  integrations: ScmIntegrations,
  url: string,
  stage: ArgoCdStageConfig['git'],
): () => Promise<GitCredentials | undefined> {
  const fallback = stage.token
    ? { username: stage.username, password: stage.token }
    : undefined;
  return async () => {
    const integration = integrations.byUrl(url);
    if (!integration) return fallback;
    const token = (t?: string, username = 'x-access-token') =>
      t ? { username, password: t } : undefined;
    switch (integration.type) {
      case 'github': {
        const { token: t } =
          await DefaultGithubCredentialsProvider.fromIntegrations(
            integrations,
          ).getCredentials({ url });
        return token(t) ?? fallback;
      }
      case 'gitlab':
        return token((integration as any).config.token, 'oauth2') ?? fallback;
      case 'gitea': {
        const c = (integration as any).config;
        return c.username && c.password
          ? { username: c.username, password: c.password }
          : fallback;
      }
      case 'bitbucketServer': {
        const c = (integration as any).config;
        if (c.username && c.password)
          return { username: c.username, password: c.password };
        return token(c.token, 'x-token-auth') ?? fallback;
      }
      case 'bitbucketCloud': {
        const c = (integration as any).config;
        return c.username && (c.appPassword ?? c.token)
          ? { username: c.username, password: c.appPassword ?? c.token }
          : fallback;
      }
      case 'azure': {
        const credentials =
          await DefaultAzureDevOpsCredentialsProvider.fromIntegrations(
            integrations,
          ).getCredentials({ url });
        return token(credentials?.token, 'notempty') ?? fallback;
      }
      default:
        return fallback;
    }
  };
}
