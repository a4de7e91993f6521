import { ConfigReader } from '@backstage/config';
import { ScmIntegrations } from '@backstage/integration';
import {
  applicationName,
  gitCredentialsFor,
  readArgoCdInstances,
  readArgoCdStageConfig,
} from './config';

const instances = (list: object[]) =>
  readArgoCdInstances(
    new ConfigReader({
      argocd: { appLocatorMethods: [{ type: 'config', instances: list }] },
    }),
  );

describe('Argo CD instances, from the Argo CD plugins’ key', () => {
  it('reads every instance of every locator', () => {
    const read = readArgoCdInstances(
      new ConfigReader({
        argocd: {
          appLocatorMethods: [
            {
              type: 'config',
              instances: [{ name: 'a', url: 'https://a.example', token: 't1' }],
            },
            {
              type: 'config',
              instances: [{ name: 'b', url: 'http://b.example', token: 't2' }],
            },
          ],
        },
      }),
    );
    expect([...read.values()]).toEqual([
      { name: 'a', url: 'https://a.example', token: 't1' },
      { name: 'b', url: 'http://b.example', token: 't2' },
    ]);
  });

  it('refuses an instance without a token, a bad URL, or a name twice, naming the key', () => {
    expect(() => instances([{ name: 'a', url: 'https://a.example' }])).toThrow(
      "Invalid Progression configuration at 'argocd.appLocatorMethods[0].instances[0].token': Progression deploys through Argo CD instance a with an API token; set one (argocd account generate-token)",
    );
    expect(() =>
      instances([{ name: 'a', url: 'file:///etc/passwd', token: 't' }]),
    ).toThrow(
      "'argocd.appLocatorMethods[0].instances[0].url': 'file:///etc/passwd' is not an http or https URL",
    );
    expect(() =>
      instances([
        { name: 'a', url: 'https://a.example', token: 't' },
        { name: 'a', url: 'https://b.example', token: 't' },
      ]),
    ).toThrow(
      "'argocd.appLocatorMethods[0].instances[1].name': instance a is configured twice",
    );
  });
});

describe("a stage's deploy section", () => {
  const two = instances([
    { name: 'a', url: 'https://a.example', token: 't1' },
    { name: 'b', url: 'https://b.example', token: 't2' },
  ]);
  const read = (deploy: object, from = two) =>
    readArgoCdStageConfig(new ConfigReader(deploy), 'stages[0].deploy', from);

  it('has defaults, and takes the only instance when none is named', () => {
    expect(
      read(
        { kind: 'argocd' },
        instances([{ name: 'only', url: 'https://a.example', token: 't' }]),
      ),
    ).toEqual({
      instance: 'only',
      application: '{{ kubernetesId }}-{{ stage.name }}',
      git: {
        username: 'x-access-token',
        author: { name: 'Progression', email: 'progression@backstage.io' },
        pushAttempts: 5,
      },
    });
  });

  it('says what is wrong, naming the key', () => {
    expect(() => read({ kind: 'argocd' })).toThrow(
      "'stages[0].deploy.instance': name one of the Argo CD instances: a, b",
    );
    expect(() => read({ kind: 'argocd', instance: 'c' })).toThrow(
      "'stages[0].deploy.instance': no Argo CD instance 'c'; configured: a, b",
    );
    expect(() =>
      read({ kind: 'argocd', instance: 'a', application: '{{ team }}-app' }),
    ).toThrow(
      "'stages[0].deploy.application': unknown placeholder '{{ team }}'",
    );
    expect(() =>
      read({
        kind: 'argocd',
        instance: 'a',
        application: 'App_{{ stage.name }}',
      }),
    ).toThrow(
      "'stages[0].deploy.application': 'App_{{ stage.name }}' does not make an Application name (it gives 'App_stage')",
    );
    expect(() =>
      read({ kind: 'argocd', instance: 'a', git: { pushAttempts: 0 } }),
    ).toThrow(
      "'stages[0].deploy.git.pushAttempts': must be a whole number from 1 to 20",
    );
    expect(() => read({ kind: 'argocd' }, new Map())).toThrow(
      "'stages[0].deploy.kind': no Argo CD instance is configured; add one under argocd.appLocatorMethods[].instances",
    );
  });

  it("names the stage's Application from the template, or the entity's annotation", () => {
    const config = read({
      kind: 'argocd',
      instance: 'a',
      application: '{{ entity.name }}-{{ stage.namespace }}',
    });
    const stage = { name: 'dev', namespace: 'checkout-dev' } as any;
    const entity = {
      entityRef: 'component:default/checkout',
      name: 'checkout',
      namespace: 'default',
      kubernetesId: 'checkout',
    };
    expect(applicationName(entity, stage, config)).toEqual({
      name: 'checkout-checkout-dev',
      annotated: false,
    });
    expect(
      applicationName(
        {
          ...entity,
          annotations: {
            'progression.backstage.io/argocd-app.dev': 'shop-dev',
          },
        },
        stage,
        config,
      ),
    ).toEqual({ name: 'shop-dev', annotated: true });
    expect(() =>
      applicationName(
        {
          ...entity,
          annotations: { 'progression.backstage.io/argocd-app.dev': '../x' },
        },
        stage,
        config,
      ),
    ).toThrow(
      "the entity's annotation progression.backstage.io/argocd-app.dev: '../x' is not an Application name",
    );
  });
});

describe('Git credentials', () => {
  const git = (token?: string) => ({
    token,
    username: 'x-access-token',
    author: { name: 'P', email: 'p@example.com' },
    pushAttempts: 5,
  });
  const integrations = ScmIntegrations.fromConfig(
    new ConfigReader({
      integrations: {
        github: [{ host: 'github.com', token: 'ghp-from-integrations' }],
        gitlab: [
          {
            host: 'gitlab.example.com',
            apiBaseUrl: 'https://gitlab.example.com/api/v4',
            token: 'glpat-from-integrations',
          },
        ],
        gitea: [
          {
            host: 'gitea.example.com',
            username: 'bot',
            password: 'gitea-password',
          },
        ],
      },
    }),
  );

  it("come from Backstage's integrations when one matches the host, as the scaffolder's publish actions use them", async () => {
    expect(
      await gitCredentialsFor(
        integrations,
        'https://github.com/org/manifests.git',
        git('stage-token'),
      )(),
    ).toEqual({
      username: 'x-access-token',
      password: 'ghp-from-integrations',
    });
    expect(
      await gitCredentialsFor(
        integrations,
        'https://gitlab.example.com/org/manifests.git',
        git(),
      )(),
    ).toEqual({ username: 'oauth2', password: 'glpat-from-integrations' });
    expect(
      await gitCredentialsFor(
        integrations,
        'https://gitea.example.com/org/manifests.git',
        git(),
      )(),
    ).toEqual({ username: 'bot', password: 'gitea-password' });
  });

  it("else from the stage's git.token; none without either", async () => {
    expect(
      await gitCredentialsFor(
        integrations,
        'http://127.0.0.1:7180/manifests.git',
        git('stage-token'),
      )(),
    ).toEqual({ username: 'x-access-token', password: 'stage-token' });
    expect(
      await gitCredentialsFor(
        integrations,
        'http://127.0.0.1:7180/manifests.git',
        git(),
      )(),
    ).toBeUndefined();
  });
});
